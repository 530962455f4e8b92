"""``git ml results``: the results table over the whole history, as a user reads it.

Repositories are made with the real ``git`` and ``git ml`` (``commit-ckpt``,
``note add --results``); hand-written note lines stand in for what a teammate's
(or an older) git-ml wrote. Two teammates are two clones of one bare origin on a
local path. The cache is exercised through the files it keeps in
``.git/ml/cache/results/``: changed notes, moved branches and damaged or forged
cache files must all give the same table as a cold read.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_as, run_gitml

import mlgit
from mlgit.api import results_table
from mlgit.api.events import Events
from mlgit.errors import FormatError, UsageError
from mlgit.format.ids import object_id
from mlgit.format.limits import MAX_RESULTS_CACHE_LEN
from mlgit.format.meta import ConfigRef, config_digest
from mlgit.format.resultrows import rows_from_cache

ME = "Test Author <author@example.com>"
ALICE = "Alice Smith <alice@example.com>"
BOB = "Bob Jones <bob@example.com>"
EXIT_USAGE = 2
EXIT_FORMAT = 7


def _table(root: Path, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(run_gitml(root, "results", "--json", *args).stdout)
    return rows


def _csv(root: Path, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(run_gitml(root, "results", "--csv", *args).stdout)))


def _head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").stdout.strip()


def _commit(root: Path, msg: str) -> str:
    (root / "train.py").write_text(f"# {msg}\n")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", msg)
    return _head(root)


def _ckpt(root: Path, run: str, step: int, *extra: str) -> str:
    """``commit-ckpt`` of a fresh tiny checkpoint; its id."""
    ck = root.parent / f"ck-{run}-{step}"
    make_tree(ck, {"w.bin": f"{run} {step} {os.urandom(8).hex()}"})
    return run_gitml(root, "commit-ckpt", str(ck), "--run", run, "--step", str(step), "-q",
                     *extra).stdout.strip()


def _results(root: Path, metrics: dict[str, float], *extra: str, who: str = ME) -> None:
    f = root.parent / "eval.json"
    f.write_text(json.dumps(metrics))
    run_as(who, root, "note", "add", "--results", str(f), *extra)


def _dataset_id(root: Path, name: str) -> str:
    [entry] = [e for e in json.loads(run_gitml(root, "ls", "--json").stdout)
               if e["name"] == name]
    return str(entry["id"])


def _records(root: Path, commit: str = "HEAD") -> list[dict[str, Any]]:
    view = json.loads(run_gitml(root, "note", "show", commit, "--json").stdout)
    return list(view["records"])


def _line(rec: dict[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))


def _append_note(root: Path, lines: list[str], commit: str = "HEAD") -> None:
    """Add lines to a commit's note with git itself (a teammate's, or an older git-ml's)."""
    git(root, "notes", "--ref", "ml", "append", "-m", "\n".join(lines), commit)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a test dataset ``test`` and a first commit."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(root, {"test/x.csv": "1,2\n", "train.py": "# v0\n"})
    run_gitml(root, "add", "test")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v0")
    return root


# -- the table ------------------------------------------------------------------------------


def test_one_row_per_checkpoint_and_test_set_in_text_json_csv_and_python(repo: Path) -> None:
    cfg = repo.parent / "cfg.json"
    cfg.write_text('{"lr": 0.1}')
    c1 = _head(repo)
    k1 = _ckpt(repo, "ra", 1, "--config", str(cfg))
    _results(repo, {"acc": 0.8, "loss": 0.5}, "--dataset", "test")
    c2 = _commit(repo, "v2")
    k2 = _ckpt(repo, "ra", 2, "--config", str(cfg))
    _results(repo, {"acc": 0.9, "loss": 0.3}, "--dataset", "test")
    test_id = _dataset_id(repo, "test")

    rows = _table(repo)
    assert [(r["run"], r["step"], r["checkpoint"], r["commit"]) for r in rows] == [
        ("ra", 2, k2, c2), ("ra", 1, k1, c1)]
    # The config digest: in the checkpoint record, and the same as one computed from the
    # checkpoint's own metadata.
    [ck_rec] = [r for r in _records(repo) if r["type"] == "checkpoint"]
    meta = json.loads(run_gitml(repo, "show", k2, "--json", "--no-files").stdout)["meta"]
    digest = config_digest([ConfigRef(c["name"], c["id"], c["size"]) for c in meta["config"]])
    assert digest is not None
    assert ck_rec["config"] == digest
    assert {r["config"] for r in rows} == {digest}
    for r in rows:
        assert r["dataset"] == {"name": "test", "id": test_id}
        assert r["author"] == ME
        assert isinstance(r["time"], int)
        assert isinstance(r["commit_time"], int)
        [src] = r["sources"]
        assert src["name"] == "eval.json"
        assert src["commit"] == r["commit"]
        assert src["author"] == ME
    assert rows[0]["metrics"] == {"acc": 0.9, "loss": 0.3}
    [res] = [x for x in _records(repo) if x["type"] == "results"]
    assert rows[0]["sources"][0]["object"] == res["object"]

    text = run_gitml(repo, "results").stdout.splitlines()
    assert text[0].split() == ["date", "run", "step", "checkpoint", "commit", "config",
                               "dataset", "acc", "loss", "author"]
    assert len(text) == 3
    assert text[1].split()[2:8] == ["ra", "2", k2[:10], c2[:10], digest[:8],
                                    f"test@{test_id[:8]}"]
    assert "0.9*" in text[1]
    assert "0.3*" in text[1]  # the best of each metric is starred (lowest loss)
    assert "0.8 " in text[2]
    assert text[1].endswith("Test Author")

    table = _csv(repo)
    assert list(table[0]) == ["checkpoint", "run", "step", "commit", "config", "dataset",
                              "dataset_id", "author", "time", "acc", "loss"]
    assert [(t["checkpoint"], t["step"], t["acc"], t["loss"]) for t in table] == [
        (k2, "2", "0.9", "0.3"), (k1, "1", "0.8", "0.5")]
    assert table[0]["time"].endswith("Z")
    assert table[0]["dataset_id"] == test_id

    typed = mlgit.results(repo=repo)
    assert [r.to_json() for r in typed] == rows
    assert typed[0].dataset is not None
    assert typed[0].dataset.name == "test"
    assert run_gitml(repo, "results", "--json", "--csv", check=False).returncode == EXIT_USAGE


def _two_runs_two_sets(repo: Path) -> tuple[str, str]:
    """Runs ra and rb, each measured on ``test`` and ``holdout`` (rb's holdout without loss)."""
    make_tree(repo, {"holdout/y.csv": "3,4\n"})
    run_gitml(repo, "add", "holdout")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "holdout")
    ka = _ckpt(repo, "ra", 1)
    _results(repo, {"acc": 0.7, "loss": 0.6}, "--dataset", "test", "--checkpoint", ka)
    _results(repo, {"acc": 0.6, "loss": 0.8, "f1": 0.5}, "--dataset", "holdout",
             "--checkpoint", ka)
    kb = _ckpt(repo, "rb", 1)
    _results(repo, {"acc": 0.75, "loss": 0.4}, "--dataset", "test", "--checkpoint", kb)
    _results(repo, {"acc": 0.65}, "--dataset", "holdout", "--checkpoint", kb)
    return ka, kb


def test_filters_sort_and_limit(repo: Path) -> None:
    ka, kb = _two_runs_two_sets(repo)
    everything = _table(repo)
    assert len(everything) == 4
    assert {(r["checkpoint"], r["dataset"]["name"]) for r in everything} == {
        (ka, "test"), (ka, "holdout"), (kb, "test"), (kb, "holdout")}

    assert {r["dataset"]["name"] for r in _table(repo, "--run", "rb")} == {"test", "holdout"}
    assert {r["run"] for r in _table(repo, "--run", "rb")} == {"rb"}
    assert {r["run"] for r in _table(repo, "--run", "rb", "--run", "ra")} == {"ra", "rb"}
    assert {r["run"] for r in _table(repo, "--dataset", "holdout")} == {"ra", "rb"}
    holdout = _dataset_id(repo, "holdout")
    assert len(_table(repo, "--dataset", f"holdout@{holdout[:6]}")) == 2
    assert _table(repo, "--dataset", f"test@{holdout[:6]}") == []
    f1 = _table(repo, "--metric", "f1")
    assert [(r["run"], r["metrics"]) for r in f1] == [("ra", {"f1": 0.5})]

    by_loss = _table(repo, "--sort", "loss")  # lower is better for a loss; none last
    assert [r["metrics"].get("loss") for r in by_loss] == [0.4, 0.6, 0.8, None]
    by_acc = _table(repo, "--sort", "acc")  # higher is better
    assert [r["metrics"]["acc"] for r in by_acc] == [0.75, 0.7, 0.65, 0.6]
    [best] = _table(repo, "--sort", "acc", "--dataset", "holdout", "-n", "1")
    assert (best["run"], best["metrics"]["acc"]) == ("rb", 0.65)
    text = run_gitml(repo, "results", "--sort", "loss", "--metric", "loss").stdout.splitlines()
    assert text[0].split()[-2:] == ["loss", "author"]
    assert "0.4*" in text[1]
    assert len(text) == 4

    assert [r.run for r in mlgit.results(repo=repo, run="ra", dataset="test",
                                         metric=["acc", "loss"])] == ["ra"]
    p = run_gitml(repo, "results", "--dataset", "test@xyz", check=False)
    assert p.returncode == EXIT_USAGE
    assert "NAME@ID" in p.stderr


# -- what a model version is -------------------------------------------------------------------


def test_results_name_their_checkpoint_or_the_one_run_of_their_commit(repo: Path) -> None:
    c0 = _head(repo)
    k1 = _ckpt(repo, "ra", 1)
    _results(repo, {"acc": 0.5}, "--dataset", "test")  # after step 1: step 1's
    k2 = _ckpt(repo, "ra", 2)  # training goes on at the same commit
    _results(repo, {"acc": 0.6}, "--dataset", "test")  # step 2's
    _results(repo, {"loss": 0.2}, "--dataset", "test")  # step 2's too: one row, merged
    c1 = _commit(repo, "eval code")
    # Results noted on a later commit, naming the checkpoint they measured.
    _results(repo, {"acc": 0.55, "f1": 0.4}, "--dataset", "test", "--checkpoint", "ra~1")
    rows = {(r["checkpoint"], r["dataset"]["name"]): r for r in _table(repo)}
    assert set(rows) == {(k1, "test"), (k2, "test")}
    r1, r2 = rows[k1, "test"], rows[k2, "test"]
    assert (r1["run"], r1["step"], r1["commit"]) == ("ra", 1, c0)  # trained at c0
    assert r1["metrics"] == {"acc": 0.55, "f1": 0.4}  # the newest record wins acc
    assert {s["commit"] for s in r1["sources"]} == {c0, c1}
    assert (r2["run"], r2["step"], r2["commit"]) == ("ra", 2, c0)
    assert r2["metrics"] == {"acc": 0.6, "loss": 0.2}
    assert len(r2["sources"]) == 2

    # Two runs on one commit: results naming neither measure the commit.
    c2 = _commit(repo, "two runs")
    _ckpt(repo, "ra", 3)
    _ckpt(repo, "rb", 1)
    _results(repo, {"acc": 0.9}, "--dataset", "test")
    # No checkpoint at all on a commit: the commit is the model version.
    c3 = _commit(repo, "no training")
    _results(repo, {"acc": 0.1}, "--dataset", "test")
    _results(repo, {"acc": 0.2})  # no test dataset named: a row of its own
    rows3 = [r for r in _table(repo) if r["checkpoint"] is None]
    assert sorted((r["commit"], r["dataset"]["name"] if r["dataset"] else "-",
                   r["metrics"]["acc"]) for r in rows3) == sorted([
        (c2, "test", 0.9), (c3, "test", 0.1), (c3, "-", 0.2)])
    assert all(r["run"] is None and r["step"] is None and r["config"] is None for r in rows3)
    text = run_gitml(repo, "results", "--metric", "acc").stdout.splitlines()
    assert [line.split()[2:6] for line in text].count(["-", "-", "-", c3[:10]]) == 2

    # The same checkpoint on two versions of the test set: two rows.
    make_tree(repo, {"test/x.csv": "1,2\n5,6\n"})
    run_gitml(repo, "add", "test")
    _results(repo, {"acc": 0.58}, "--dataset", "test", "--checkpoint", k1)
    assert len([r for r in _table(repo, "--run", "ra") if r["checkpoint"] == k1]) == 2


def test_note_add_checkpoint_must_name_a_checkpoint_and_changes_nothing(repo: Path) -> None:
    f = repo.parent / "eval.json"
    f.write_text('{"acc": 1}')
    before = git(repo, "notes", "--ref", "ml", "list", check=False).stdout
    p = run_gitml(repo, "note", "add", "--results", str(f), "--checkpoint", "test", check=False)
    assert p.returncode == EXIT_USAGE
    assert "is a dataset, not a checkpoint" in p.stderr
    p = run_gitml(repo, "note", "add", "--checkpoint", "test", check=False)
    assert p.returncode == EXIT_USAGE
    p = run_gitml(repo, "note", "add", "--results", str(f), "--checkpoint", "nope", check=False)
    assert p.returncode == 5  # an unknown revision
    assert git(repo, "notes", "--ref", "ml", "list", check=False).stdout == before


def test_history_of_one_metric_for_one_run_on_one_test_set(repo: Path) -> None:
    commits = []
    for step, acc in ((1, 0.5), (2, 0.7), (3, 0.6)):
        commits.append(_commit(repo, f"step {step}"))
        _ckpt(repo, "ra", step)
        _results(repo, {"acc": acc, "loss": 1 - acc}, "--dataset", "test")
    _commit(repo, "fine-tune")
    _ckpt(repo, "rb", 1, "--parent", "ra")
    _results(repo, {"acc": 0.99}, "--dataset", "test", "--checkpoint", "rb")
    points = json.loads(run_gitml(repo, "results", "--history", "--metric", "acc", "--run", "ra",
                                  "--dataset", "test", "--json").stdout)
    assert [(p["step"], p["commit"], p["value"]) for p in points] == [
        (3, commits[2], 0.6), (2, commits[1], 0.7), (1, commits[0], 0.5)]
    assert [p["best"] for p in points] == [False, True, False]
    assert [None if p["change"] is None else round(p["change"], 6) for p in points] == [
        -0.1, 0.2, None]
    assert {p["metric"] for p in points} == {"acc"}
    assert "metrics" not in points[0]
    text = run_gitml(repo, "results", "--history", "--metric", "loss", "--run", "ra").stdout
    lines = text.splitlines()  # one test set only: --dataset may be left out
    assert lines[0].split() == ["date", "commit", "step", "checkpoint", "dataset", "loss",
                                "change", "author"]
    assert "0.3*" in lines[2]  # the lowest loss is the best
    assert "+0.1" in lines[1]
    rows = _csv(repo, "--history", "--metric", "acc", "--run", "ra")
    assert [r["value"] for r in rows] == ["0.6", "0.7", "0.5"]
    assert [r["best"] for r in rows] == ["false", "true", "false"]

    p = run_gitml(repo, "results", "--history", "--metric", "acc", check=False)
    assert p.returncode == EXIT_USAGE
    assert "--run" in p.stderr
    assert "ra, rb" in p.stderr
    p = run_gitml(repo, "results", "--history", "--run", "ra", check=False)
    assert p.returncode == EXIT_USAGE
    p = run_gitml(repo, "results", "--history", "--metric", "nope", "--run", "ra", check=False)
    assert p.returncode == EXIT_USAGE
    hist = mlgit.results_history("acc", run="ra", dataset="test", repo=repo)
    assert [h.to_json() for h in hist] == points
    with pytest.raises(UsageError):
        mlgit.results_history("acc", repo=repo)


# -- teammates -----------------------------------------------------------------------------------


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
    make_tree(a, {"test/x.csv": "1,2\n", "train.py": "# v0\n"})
    run_as(ALICE, a, "add", "test")
    git(a, "add", "-A")
    run_as(ALICE, a, "git", "commit", "-qm", "v0")
    _ckpt(a, "alice-run", 1)
    _results(a, {"acc": 0.8}, "--dataset", "test", who=ALICE)
    git(a, "remote", "add", "origin", str(origin))
    run_as(ALICE, a, "git", "push", "-q", "-u", "origin", "main")
    return a


def test_a_teammates_fetched_results_appear_with_their_author(
        alice: Path, origin: Path, tmp_path: Path) -> None:
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_as(BOB, bob, "pull")
    assert [r["author"] for r in _table(bob)] == [ALICE]
    run_as(BOB, bob, "git", "commit", "-q", "--allow-empty", "-m", "bob's change")
    kb = _ckpt(bob, "bob-run", 1)
    _results(bob, {"acc": 0.85}, "--dataset", "test", who=BOB)
    run_as(BOB, bob, "git", "push", "-q", "origin", "main")
    assert [r["author"] for r in _table(alice)] == [ALICE]  # not fetched yet

    run_as(ALICE, alice, "git", "fetch", "-q", "origin")  # Bob's commit: on origin/main only
    run_as(ALICE, alice, "fetch")  # his notes merged, his objects fetched
    rows = _table(alice)
    assert (rows[0]["author"], rows[0]["run"], rows[0]["checkpoint"]) == (BOB, "bob-run", kb)
    assert {r["author"] for r in rows} == {ALICE, BOB}
    assert "Bob Jones" in run_gitml(alice, "results", "--run", "bob-run").stdout
    assert [r["author"] for r in _table(alice, "main")] == [ALICE]  # main alone: not Bob's

    # Notes fetched by git alone (not merged into refs/notes/ml) count too.
    _results(bob, {"acc": 0.86, "f1": 0.3}, "--dataset", "test", "--checkpoint", kb, who=BOB)
    run_as(BOB, bob, "git", "push", "-q", "origin", "refs/notes/ml")
    git(alice, "fetch", "-q", "origin", "+refs/notes/ml:refs/notes/remotes/origin/ml")
    # (the metric's key, quoted: a hex id in the note may hold the letters "f1")
    assert '"f1"' not in git(alice, "notes", "--ref", "ml", "show", rows[0]["commit"]).stdout
    [bobs] = _table(alice, "--run", "bob-run")
    assert bobs["metrics"] == {"acc": 0.86, "f1": 0.3}
    assert len(bobs["sources"]) == 2
    assert {s["author"] for s in bobs["sources"]} == {BOB}


def test_a_checkpoint_known_only_from_the_store_and_fetched_later(
        alice: Path, origin: Path, tmp_path: Path) -> None:
    """Results naming a checkpoint that no note records take its run and step from its
    snapshot, and the table follows the store when the snapshot arrives."""
    k = _ckpt(alice, "early", 7)
    # A note without the checkpoint's record (a hand-made one, or one that lost it).
    kept = [line for line in git(alice, "notes", "--ref", "ml", "show").stdout.splitlines()
            if k not in line]
    git(alice, "notes", "--ref", "ml", "add", "-f", "-m", "\n".join(kept))
    _results(alice, {"acc": 0.4}, "--dataset", "test", "--checkpoint", k, who=ALICE)
    [row] = _table(alice, "--run", "early")
    assert (row["checkpoint"], row["step"], row["commit"]) == (k, 7, _head(alice))
    run_gitml(alice, "push", "origin")

    # Bob has the notes but not the snapshot: the checkpoint's run is unknown...
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    git(bob, "fetch", "-q", "origin", "+refs/notes/ml:refs/notes/ml")
    [row] = [r for r in _table(bob) if r["checkpoint"] == k]
    assert (row["run"], row["step"]) == (None, None)
    # ... until the store has it: the cached table is not served any more.
    run_gitml(bob, "fetch")
    [row] = [r for r in _table(bob) if r["checkpoint"] == k]
    assert (row["run"], row["step"]) == ("early", 7)


# -- the cache ---------------------------------------------------------------------------------


def _cache(root: Path) -> Path:
    return root / ".git" / "ml" / "cache" / "results"


def _rows_files(root: Path) -> list[Path]:
    return sorted(_cache(root).glob("rows-*.json"))


def test_the_cache_follows_notes_and_branches(repo: Path) -> None:
    _ckpt(repo, "ra", 1)
    _results(repo, {"acc": 0.5}, "--dataset", "test")
    first = _table(repo)
    [cached] = _rows_files(repo)
    stamp = cached.stat().st_mtime_ns, cached.stat().st_ino
    assert _table(repo) == first  # warm: served as it is
    assert (cached.stat().st_mtime_ns, cached.stat().st_ino) == stamp
    assert (_cache(repo) / "facts.json").is_file()

    # A new note: a new key, a new row.
    side = _commit(repo, "side")
    _results(repo, {"acc": 0.6}, "--dataset", "test")
    # (both noted within a second or two: their order is not what this test is about)
    assert sorted(r["metrics"]["acc"] for r in _table(repo)) == [0.5, 0.6]
    assert len(_rows_files(repo)) == 2
    # A note rewritten in place (same commits, other notes commit).
    git(repo, "notes", "--ref", "ml", "remove", side)
    assert [r["metrics"]["acc"] for r in _table(repo)] == [0.5]
    # A branch moved back: the commits walked change, not the notes.
    _results(repo, {"acc": 0.7}, "--dataset", "test")
    assert [r["metrics"]["acc"] for r in _table(repo)] == [0.7, 0.5]
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert [r["metrics"]["acc"] for r in _table(repo)] == [0.5]
    git(repo, "branch", "keep", side)  # reachable again from a branch
    assert [r["metrics"]["acc"] for r in _table(repo)] == [0.7, 0.5]
    for i in range(results_table.KEEP_ROWS + 2):
        _commit(repo, f"more {i}")
        _table(repo)
    assert len(_rows_files(repo)) == results_table.KEEP_ROWS
    shutil.rmtree(_cache(repo))
    assert [r["metrics"]["acc"] for r in _table(repo)] == [0.7, 0.5]


def _forged(path: Path, mutate: Any) -> None:
    """Rewrite a rows cache file with ``mutate`` applied to its first row, checksum valid.

    An infinite number is written as ``1e400`` (what a JSON parser reads as infinity).
    """
    header, _, body = path.read_bytes().partition(b"\n")
    key = json.loads(header)["key"]
    obj = json.loads(body)
    mutate(obj["rows"][0])
    text = json.dumps(obj, separators=(",", ":")).replace("Infinity", "1e400").encode()
    envelope = {"kind": "results-rows", "key": key, "sum": object_id(text), "v": 1}
    path.write_bytes(json.dumps(envelope).encode() + b"\n" + text)


FORGED = {
    "author-escape": lambda r: r.__setitem__(9, "\x1b]0;pwned\x07"),
    "author-c1": lambda r: r.__setitem__(9, "x\x9by"),
    "author-surrogate": lambda r: r.__setitem__(9, "\udc80"),
    "metric-infinite": lambda r: r[8].__setitem__("acc", 1e400),
    "metric-string": lambda r: r[8].__setitem__("acc", "0.9"),
    "metric-bool": lambda r: r[8].__setitem__("acc", True),
    "checkpoint-short": lambda r: r.__setitem__(0, "ab" * 8),
    "checkpoint-newline": lambda r: r.__setitem__(0, "ab" * 16 + "\n" + "cd" * 16),
    "commit-upper": lambda r: r.__setitem__(3, r[3].upper()),
    "run-bad": lambda r: r.__setitem__(1, "a run"),
    "step-negative": lambda r: r.__setitem__(2, -1),
    "step-float": lambda r: r.__setitem__(2, 1.5),
    "time-huge": lambda r: r.__setitem__(10, 10 ** 20),
    "dataset-half": lambda r: r.__setitem__(7, None),
    "sources-empty": lambda r: r.__setitem__(11, []),
    "source-short": lambda r: r[11].__setitem__(0, r[11][0][:3]),
    "row-short": lambda r: r.pop(),
    "row-object": lambda r: r.__setitem__(8, [1, 2]),
}


@pytest.mark.parametrize("form", sorted(FORGED))
def test_a_forged_cache_field_is_refused_in_python(form: str) -> None:
    row = ["ab" * 16, "ra", 1, "c" * 40, 1_700_000_000, None, "test", "cd" * 16,
           {"acc": 0.5}, ME, 1_700_000_001, [["c" * 40, "eval.json", "ef" * 16, "json", ME,
                                              1_700_000_001]]]
    assert len(rows_from_cache([list(row)])) == 1
    FORGED[form](row)
    with pytest.raises(FormatError):
        rows_from_cache([row])


def test_damaged_stale_and_forged_caches_never_change_the_table(repo: Path) -> None:
    _ckpt(repo, "ra", 1)
    _results(repo, {"acc": 0.5, "loss": 0.1}, "--dataset", "test")
    _commit(repo, "two")
    _results(repo, {"acc": 0.6}, "--dataset", "test")
    good = run_gitml(repo, "results", "--json").stdout
    [path] = _rows_files(repo)
    valid = path.read_bytes()
    head, notes = _head(repo), git(repo, "rev-parse", "refs/notes/ml").stdout.strip()
    # Another state, whose table is a stale file for this one.
    _commit(repo, "three")
    _results(repo, {"acc": 0.7}, "--dataset", "test")
    newer = run_gitml(repo, "results", "--json").stdout
    [new_path] = [p for p in _rows_files(repo) if p != path]
    stale = _cache(repo) / "stale.json"
    shutil.copy(new_path, stale)
    git(repo, "reset", "-q", "--hard", head)
    git(repo, "update-ref", "refs/notes/ml", notes)
    assert run_gitml(repo, "results", "--json").stdout == good
    assert path.read_bytes() == valid

    damage = {
        "truncated": valid[: len(valid) // 2],
        "flipped": valid[:-10] + bytes([valid[-10] ^ 1]) + valid[-9:],
        "garbage": os.urandom(4096),
        "empty": b"",
        "no-header": valid.partition(b"\n")[2],
        "other-kind": valid.replace(b'"kind":"results-rows"', b'"kind":"results-facts"', 1),
        "stale": new_path.read_bytes(),
    }
    for name, data in damage.items():
        path.write_bytes(data)
        assert run_gitml(repo, "results", "--json").stdout == good, name
        assert path.read_bytes() == valid, name  # rebuilt and rewritten
    _forged(path, lambda _row: None)  # the forger's own file, unchanged, is read as it is
    forged = path.read_bytes()
    assert run_gitml(repo, "results", "--json").stdout == good
    assert path.read_bytes() == forged
    for form in ("author-escape", "metric-infinite", "checkpoint-newline", "run-bad",
                 "sources-empty"):
        _forged(path, FORGED[form])
        p = run_gitml(repo, "results")
        assert "pwned" not in p.stdout
        assert path.read_bytes() == valid, form  # refused, rebuilt
        assert run_gitml(repo, "results", "--json").stdout == good, form
    path.unlink()
    path.symlink_to(stale)  # a symbolic link is never followed
    assert run_gitml(repo, "results", "--json").stdout == good
    path.unlink()
    with path.open("wb") as f:  # larger than any cache may be: not read
        f.truncate(MAX_RESULTS_CACHE_LEN + 1)
    assert run_gitml(repo, "results", "--json").stdout == good
    path.unlink()
    path.mkdir()  # not even a file: the table is right, the cache is not written
    p = run_gitml(repo, "results", "--json")
    assert p.stdout == good
    path.rmdir()
    (_cache(repo) / "facts.json").write_bytes(b"{not json")
    assert run_gitml(repo, "results", "--json").stdout == good
    assert newer != good


def test_a_warm_table_reads_no_note_and_still_reports_problems(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ckpt(repo, "ra", 1)
    _results(repo, {"acc": 0.5}, "--dataset", "test")
    bad = '{"type":"results","v":1,"name":"t","dataset":{"name":"x"}}'
    _append_note(repo, [bad])
    n = git(repo, "notes", "--ref", "ml", "show").stdout.splitlines().index(bad) + 1
    ev = Events()
    cold = mlgit.results(repo=repo, events=ev)
    assert len(ev.problems) == 1
    assert f"line {n}: results record.object is missing" in str(ev.problems[0])

    def unread(*_args: Any) -> str:
        raise AssertionError("a warm table must not read notes")

    monkeypatch.setattr(results_table, "read_note_blob", unread)
    ev2 = Events()
    assert mlgit.results(repo=repo, events=ev2) == cold
    assert [str(e) for e in ev2.problems] == [str(e) for e in ev.problems]
    with pytest.raises(FormatError):
        mlgit.results(repo=repo)  # without events, the problem is raised


# -- bad and old records -----------------------------------------------------------------------


def test_bad_records_are_problems_and_the_good_rows_stay(repo: Path) -> None:
    k = _ckpt(repo, "ra", 1)
    _results(repo, {"acc": 0.5}, "--dataset", "test")
    test_id = _dataset_id(repo, "test")
    good = {"type": "results", "v": 1, "object": "ab" * 16, "name": "other.json",
            "format": "json", "metrics": {"acc": 0.7}, "dataset": {"name": "test",
                                                                   "id": test_id},
            "time": 1_700_000_000, "author": BOB}
    _append_note(repo, [
        "not json",
        _line({**good, "metrics": {"acc": "high"}}),
        _line({**good, "checkpoint": test_id, "name": "on-a-dataset.json"}),
        _line(good),
    ])
    n = git(repo, "notes", "--ref", "ml", "show").stdout.splitlines().index("not json") + 1
    for _ in range(2):  # cold, then warm: the same problems, the same rows
        p = run_gitml(repo, "results", "--json", check=False)
        assert p.returncode == EXIT_FORMAT, p.stderr
        errors = p.stderr.splitlines()
        assert len(errors) == 3, p.stderr
        assert all(e.startswith("git-ml: error: ") for e in errors)
        assert f"line {n}:" in errors[0]
        assert f"line {n + 1}:" in errors[1]
        assert "it is a dataset" in errors[2]
        rows = json.loads(p.stdout)
        # The good line (no checkpoint named, noted before ra's only checkpoint) measures
        # ra's checkpoint too: one row of two records, the newest one's acc.
        assert {(r["checkpoint"], r["metrics"]["acc"], len(r["sources"])) for r in rows} == {
            (k, 0.5, 2), (test_id, 0.7, 1)}
    [bad] = [r for r in rows if r["checkpoint"] == test_id]
    assert bad["run"] is None


def test_records_of_older_git_ml_versions(repo: Path) -> None:
    """No author, time or config digest: the commit's author and time, the store's config."""
    cfg = repo.parent / "cfg.json"
    cfg.write_text("{}")
    k = _ckpt(repo, "ra", 1, "--config", str(cfg))
    [ck] = [r for r in _records(repo) if r["type"] == "checkpoint"]
    digest = ck.pop("config")
    test_id = _dataset_id(repo, "test")
    old = {"type": "results", "v": 1, "object": "ab" * 16, "name": "eval.json",
           "format": "json", "metrics": {"acc": 0.5}, "dataset": {"name": "test",
                                                                  "id": test_id}}
    note = repo.parent / "note.txt"
    note.write_text(_line(ck) + "\n" + _line(old) + "\n")
    git(repo, "notes", "--ref", "ml", "add", "-f", "-F", str(note))
    run_as(ALICE, repo, "git", "commit", "-q", "--allow-empty", "-m", "by alice")
    git(repo, "notes", "--ref", "ml", "add", "-f", "-m", _line({**old, "checkpoint": k}))
    alice_time = int(git(repo, "log", "-1", "--format=%at").stdout)
    rows = _table(repo)
    assert len(rows) == 1
    [row] = rows
    assert (row["checkpoint"], row["config"]) == (k, digest)
    assert {(s["author"], s["time"]) for s in row["sources"] if s["commit"] == _head(repo)} == {
        (ALICE, alice_time)}
    assert {s["author"] for s in row["sources"]} == {ALICE, ME}


def test_without_a_store_the_table_is_read_from_the_notes(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "commit", "-q", "--allow-empty", "-m", "one")
    p = run_gitml(root, "results")
    assert p.stdout == ""
    assert p.stderr.startswith("git-ml: no results yet")
    assert _table(root) == []
    assert run_gitml(root, "results", "--csv").stdout.splitlines() == [
        "checkpoint,run,step,commit,config,dataset,dataset_id,author,time"]
    _append_note(root, [_line({"type": "results", "v": 1, "object": "ab" * 16, "name": "e",
                               "format": "json", "metrics": {"acc": 1}, "dataset": None,
                               "time": 1_700_000_000, "author": BOB})])
    [row] = _table(root)
    assert (row["checkpoint"], row["dataset"], row["author"]) == (None, None, BOB)
    assert run_gitml(root, "results", "--run", "nope").stderr == "git-ml: no results match\n"
    assert not (root / ".git" / "ml").exists()
