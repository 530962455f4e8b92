"""Note records carry their author: two people's results on one commit stay two lines.

Alice and Bob are two clones of one bare origin on a local path, each with its own
identity (as git takes it: ``GIT_AUTHOR_NAME``/``EMAIL``, then ``user.name``/``email``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_as, run_gitml

import mlgit
from mlgit.format.records import LogRecord, ResultsRecord, decode_note

ALICE = "Alice Smith <alice@example.com>"
BOB = "Bob Jones <bob@example.com>"


def _records(root: Path, kind: str) -> list[dict[str, Any]]:
    view = json.loads(run_gitml(root, "note", "show", "--json").stdout)
    return [r for r in view["records"] if r["type"] == kind]


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(r))
    return r


@pytest.fixture
def alice(tmp_path: Path, origin: Path) -> Path:
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init")
    make_tree(a, {"test/x.csv": "1,2\n", "train.py": "print(1)\n"})
    run_as(ALICE, a, "add", "test")
    git(a, "add", "train.py")
    run_as(ALICE, a, "git", "commit", "-qm", "v1")
    git(a, "remote", "add", "origin", str(origin))
    run_as(ALICE, a, "git", "push", "-q", "-u", "origin", "main")
    return a


def test_two_peoples_identical_results_on_one_commit_are_both_kept(
        alice: Path, origin: Path, tmp_path: Path) -> None:
    results = tmp_path / "eval.json"
    results.write_text('{"acc": 0.91, "loss": 0.3}\n')
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_as(BOB, bob, "pull")

    # The same file, on the same commit and test dataset, by each of them.
    run_as(ALICE, alice, "note", "add", "--results", str(results), "--dataset", "test")
    run_as(BOB, bob, "note", "add", "--results", str(results), "--dataset", "test")
    run_as(ALICE, alice, "push")
    run_as(BOB, bob, "fetch")  # merges Alice's note into Bob's (cat_sort_uniq)
    run_as(BOB, bob, "push")
    run_as(ALICE, alice, "fetch")

    for root in (alice, bob):
        recs = _records(root, "results")
        assert sorted(r["author"] for r in recs) == [ALICE, BOB]
        a, b = ({k: v for k, v in r.items() if k not in ("author", "time")} for r in recs)
        assert a == b  # the same results: only who (and when) tells them apart
        text = run_gitml(root, "note", "show").stdout
        assert "by Alice Smith" in text
        assert "by Bob Jones" in text
        log = run_gitml(root, "log").stdout
        assert "by Alice Smith" in log
        assert "by Bob Jones" in log
        entry = json.loads(run_gitml(root, "log", "--json").stdout)[0]
        assert sorted(r["author"] for r in entry["results"]) == [ALICE, BOB]
        run_gitml(root, "fsck")
    with mlgit.Repo(alice) as r:
        typed = [x for x in r.show_note().records if isinstance(x, ResultsRecord)]
    assert sorted(x.author for x in typed) == [ALICE, BOB]


def test_every_writer_records_the_author(alice: Path, tmp_path: Path) -> None:
    log = tmp_path / "train.csv"
    log.write_text("epoch,loss\n0,0.5\n1,0.4\n")
    graph = tmp_path / "model.json"
    graph.write_text(json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
    ck = tmp_path / "ck"
    make_tree(ck, {"w.bin": os.urandom(100)})
    run_as(BOB, alice, "commit-ckpt", str(ck), "--run", "r", "--log", str(log),
        "--graph", str(graph))
    run_as(ALICE, alice, "note", "add", "--log", str(log))
    recs = json.loads(run_gitml(alice, "note", "show", "--json").stdout)["records"]
    assert [(r["type"], r["author"]) for r in recs] == [
        ("checkpoint", BOB), ("log", BOB), ("graph", BOB), ("log", ALICE)]
    git(alice, "config", "user.name", "Carol")  # no GIT_AUTHOR_*: git's config decides
    git(alice, "config", "user.email", "carol@example.com")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_AUTHOR")}
    subprocess.run(["git", "ml", "note", "add", "--log", str(log)], cwd=alice, env=env,
                   check=True, capture_output=True)
    assert _records(alice, "log")[-1]["author"] == "Carol <carol@example.com>"


def test_old_records_without_author_still_read(alice: Path) -> None:
    obj = "ab" * 16
    old = {"type": "results", "v": 1, "object": obj, "name": "old.json", "format": "json",
           "metrics": {"acc": 0.5}, "time": 1_700_000_000}
    git(alice, "notes", "--ref", "ml", "add", "-m", json.dumps(old, sort_keys=True,
                                                             separators=(",", ":")))
    p = run_gitml(alice, "note", "show")
    assert "results    old.json: acc=0.5" in p.stdout
    assert " by " not in p.stdout
    (rec,) = json.loads(run_gitml(alice, "note", "show", "--json").stdout)["records"]
    assert "author" not in rec
    (typed,), problems = decode_note(json.dumps(old))
    assert isinstance(typed, ResultsRecord)
    assert typed.author == ""
    assert not problems


@pytest.mark.parametrize("author", [7, ["x"], {"name": "x"}, "Eve\x1b[2J <eve@x>"])
def test_a_wrong_author_makes_the_line_invalid(author: object) -> None:
    rec = {"type": "log", "v": 1, "object": "cd" * 16, "name": "l.csv", "format": "csv",
           "author": author}
    good = {**rec, "author": ALICE}
    records, problems = decode_note(json.dumps(rec) + "\n" + json.dumps(good))
    assert [type(r) for r in records] == [LogRecord]
    assert isinstance(records[0], LogRecord)
    assert records[0].author == ALICE
    assert len(problems) == 1
    assert "author" in problems[0]


def test_a_wrong_author_is_shown_as_invalid_by_the_cli(alice: Path) -> None:
    bad = {"type": "graph", "v": 1, "object": "cd" * 16, "name": "g.json",
           "format": "keras-json", "author": 12}
    git(alice, "notes", "--ref", "ml", "add", "-m", json.dumps(bad))
    for args in (("note", "show"), ("log",)):
        p = run_gitml(alice, *args, check=False)
        assert p.returncode == 7, p.stderr
        assert "graph record.author: must be a string" in p.stderr
