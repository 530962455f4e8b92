"""The model registry in one clone: ``git ml promote``, ``demote``, ``stages``, ``MODEL@STAGE``.

Through the real ``git`` and the installed ``git-ml`` (and the Python API): records and
their trail, revisions naming a stage (with the precedence docs/revisions.md states),
``--at`` over records of known times, bad input that changes nothing, fsck and gc
keeping promotions (and reporting broken ones), the promotion codec (round trip,
malformed bytes raise only FormatError).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_gitml
from hypothesis import given
from hypothesis import strategies as st

import mlgit
from mlgit import errors
from mlgit.api.registry import parse_when
from mlgit.api.repo import Repo
from mlgit.format.ids import ObjectID, object_id
from mlgit.format.limits import MAX_PROMOTION_LEN
from mlgit.format.names import is_stage_name, split_stage_ref_name
from mlgit.format.promotion import (
    PROMOTION_MAGIC,
    Promotion,
    decode_promotion,
    encode_promotion,
)

WHO = "Test Author <author@example.com>"


def _ckpt(root: Path, run: str, step: int, acc: float) -> ObjectID:
    make_tree(root.parent / f"w-{run}", {"w.bin": os.urandom(2000) + f"{step}".encode()})
    return ObjectID(run_gitml(root, "commit-ckpt", str(root.parent / f"w-{run}"), "--run", run,
                              "--step", str(step), "--metric", f"acc={acc}", "-q"
                              ).stdout.strip())


@pytest.fixture
def ml(tmp_path: Path) -> Path:
    """A clone with a commit, a dataset, run resnet-a (steps 1 and 2) and run resnet-b."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(root, {"data/x.txt": "x\n", "train.py": "print(1)\n"})
    run_gitml(root, "add", "data")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "v1")
    _ckpt(root, "resnet-a", 1, 0.8)
    _ckpt(root, "resnet-a", 2, 0.9)
    _ckpt(root, "resnet-b", 5, 0.95)
    return root


def _ids(root: Path) -> dict[str, str]:
    with Repo(root) as r:
        return {rev: r.resolve(rev) for rev in ("resnet-a", "resnet-a~1", "resnet-b", "data")}


def _stages(root: Path, *args: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(run_gitml(root, "stages", *args, "--json").stdout)
    return out


def _store_state(root: Path) -> dict[str, bytes]:
    """Every file of the store but caches and locks: what a refused command must not change."""
    ml = root / ".git" / "ml"
    return {str(p.relative_to(ml)): p.read_bytes() for p in sorted(ml.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")
            and p.relative_to(ml).parts[0] not in ("cache", "tmp")}


def test_promote_records_and_stages_shows_metrics(ml: Path) -> None:
    ids = _ids(ml)
    out = run_gitml(ml, "promote", "resnet-a", "production", "-m", "passed A/B").stdout
    assert out.startswith(f"resnet-a@production: resnet-a@{ids['resnet-a'][:12]} (step 2, "
                          "acc=0.9)")
    [rec] = _stages(ml)
    assert rec["model"] == "resnet-a"
    assert rec["stage"] == "production"
    assert rec["checkpoint"] == ids["resnet-a"]
    assert (rec["run"], rec["step"], rec["metrics"]) == ("resnet-a", 2, {"acc": 0.9})
    assert (rec["author"], rec["message"], rec["remote"]) == (WHO, "passed A/B", None)
    assert (rec["parent"], rec["previous"], rec["removed"]) == (None, None, False)
    assert abs(rec["time"] - time.time()) < 3600
    assert (ml / ".git/ml/refs/stages/resnet-a@production").read_text().strip() == rec["id"]
    # The text listing names the model, the stage, what holds it and why.
    text = run_gitml(ml, "stages").stdout
    assert "resnet-a" in text
    assert "production" in text
    assert f"resnet-a@{ids['resnet-a'][:12]} (step 2, acc=0.9)" in text
    assert "passed A/B" in text
    # `git ml ls` still lists datasets and runs only.
    assert {e["kind"] for e in json.loads(run_gitml(ml, "ls", "--json").stdout)} == {
        "dataset", "checkpoint"}


def test_model_defaults_and_model_option(ml: Path) -> None:
    ids = _ids(ml)
    run_gitml(ml, "promote", "resnet-b", "staging", "--model", "resnet")
    # MODEL@STAGE as the revision: the model is that one, not the checkpoint's run.
    r = json.loads(run_gitml(ml, "promote", "resnet@staging", "production", "--json").stdout)
    assert (r["model"], r["stage"], r["checkpoint"], r["run"]) == (
        "resnet", "production", ids["resnet-b"], "resnet-b")
    assert r["created"] is True
    assert r["replaced"] is None
    assert [(x["model"], x["stage"]) for x in _stages(ml)] == [("resnet", "production"),
                                                              ("resnet", "staging")]
    assert [x["stage"] for x in _stages(ml, "resnet")] == ["production", "staging"]
    assert _stages(ml, "resnet-a") == []


def test_history_is_the_audit_trail(ml: Path) -> None:
    ids = _ids(ml)
    run_gitml(ml, "promote", "resnet-a~1", "production", "-m", "first")
    run_gitml(ml, "promote", "resnet-a", "production", "-m", "better\nacc 0.9")
    back = run_gitml(ml, "promote", "resnet-a~1", "production", "-m", "roll back").stdout
    assert f"; was {ids['resnet-a'][:12]}" in back
    run_gitml(ml, "demote", "resnet-a", "production", "-m", "incident 42")
    trail = _stages(ml, "resnet-a", "production", "--history")
    assert [x["message"] for x in trail] == ["incident 42", "roll back", "better\nacc 0.9",
                                             "first"]
    assert [x["checkpoint"] for x in trail] == [None, ids["resnet-a~1"], ids["resnet-a"],
                                                ids["resnet-a~1"]]
    assert [x["previous"] for x in trail] == [ids["resnet-a~1"], ids["resnet-a"],
                                              ids["resnet-a~1"], None]
    assert [x["parent"] for x in trail] == [x["id"] for x in trail[1:]] + [None]
    assert [x["removed"] for x in trail] == [True, False, False, False]
    assert len(_stages(ml, "resnet-a", "production", "--history", "-n", "2")) == 2
    # Without --history: the record that holds it now (here: the demotion).
    [now] = _stages(ml, "resnet-a", "production")
    assert now["removed"] is True
    text = run_gitml(ml, "stages", "resnet-a", "production", "--history").stdout
    assert "nothing (removed)" in text
    assert "    acc 0.9" in text  # every line of a message, indented
    # Demoting an emptied stage, promoting what holds it: nothing recorded, exit 0.
    assert "is already empty" in run_gitml(ml, "demote", "resnet-a", "production").stdout
    run_gitml(ml, "promote", "resnet-a", "production")
    before = _store_state(ml)
    again = run_gitml(ml, "promote", "resnet-a", "production", "--json").stdout
    assert json.loads(again)["created"] is False
    assert _store_state(ml) == before


def test_model_at_stage_is_a_revision_everywhere(ml: Path) -> None:
    ids = _ids(ml)
    run_gitml(ml, "promote", "resnet-a", "production")
    run_gitml(ml, "promote", "resnet-b", "production", "--model", "resnet-a")
    run_gitml(ml, "promote", "resnet-a", "staging")
    assert mlgit.show("resnet-a@production", repo=ml, files=False).id == ids["resnet-b"]
    path = mlgit.checkout("resnet-a@staging", repo=ml)
    assert path == mlgit.checkout(ids["resnet-a"], repo=ml)
    # ~N follows the checkpoint's parents (not the stage's earlier records).
    assert mlgit.show("resnet-a@staging~1", repo=ml, files=False).id == ids["resnet-a~1"]
    shown = run_gitml(ml, "show", "resnet-a@production", "--json").stdout
    assert json.loads(shown)["id"] == ids["resnet-b"]
    assert run_gitml(ml, "path", "resnet-a@staging").stdout.strip() == str(path)
    chain = json.loads(run_gitml(ml, "lineage", "resnet-a@staging", "--json").stdout)
    assert [x["id"] for x in chain] == [ids["resnet-a"], ids["resnet-a~1"]]
    # NAME@PREFIX keeps working beside it.
    assert mlgit.show(f"resnet-a@{ids['resnet-a~1'][:6]}", repo=ml).id == ids["resnet-a~1"]
    # Emptied and unknown stages are revision errors (exit 5) with a one-line message.
    run_gitml(ml, "demote", "resnet-a", "staging")
    p = run_gitml(ml, "show", "resnet-a@staging", check=False)
    assert p.returncode == 5
    assert p.stderr.strip().startswith("git-ml: error: 'resnet-a@staging': stage staging of "
                                       "resnet-a is empty")
    p = run_gitml(ml, "show", "resnet-a@canary", check=False)
    assert p.returncode == 5
    assert "its stages: production, staging" in p.stderr
    assert len(p.stderr.splitlines()) == 1
    with pytest.raises(errors.RevisionError, match="no stage of 'nope' is recorded"):
        mlgit.checkout("nope@production", repo=ml)


def test_stage_names_never_look_like_id_prefixes(ml: Path) -> None:
    """The precedence rule: what follows ``@`` is an id prefix when it is 4 to 32 hex
    digits (either case) and can then never be a stage, so no store content makes
    ``NAME@X`` mean two things."""
    for bad in ("beef", "BEEF", "cafe1234", "0000", "a" * 32, "dEaD"):
        assert not is_stage_name(bad)
        p = run_gitml(ml, "promote", "resnet-a", bad, check=False)
        assert p.returncode == 2, bad
        assert "read as an id prefix" in p.stderr
    for ok in ("production", "abc", "a1", "a" * 33, "deadbeefx", "v1.2", "x" * 64):
        assert is_stage_name(ok), ok
    for bad in ("x" * 65, "bad name", "-x", "a..b", "p.lock", "", "a@b", "a/b", "a~1"):
        assert not is_stage_name(bad), bad
    assert split_stage_ref_name("resnet@production") == ("resnet", "production")
    assert split_stage_ref_name("resnet@beef") is None
    # A short hex stage ("abc": 3 digits, no id prefix) is a stage; 4+ hex is a prefix.
    ids = _ids(ml)
    run_gitml(ml, "promote", "resnet-b", "abc", "--model", "resnet-a")
    assert mlgit.show("resnet-a@abc", repo=ml).id == ids["resnet-b"]
    assert mlgit.show(f"resnet-a@{ids['resnet-a'][:4].upper()}", repo=ml).id == ids["resnet-a"]


def test_bad_input_is_one_line_and_changes_nothing(ml: Path) -> None:
    run_gitml(ml, "promote", "resnet-a", "production")
    before = _store_state(ml)
    cases: list[tuple[tuple[str, ...], int, str]] = [
        (("promote", "data", "production"), 2, "is a dataset, not a checkpoint"),
        (("promote", "nope", "production"), 5, "unknown revision"),
        (("promote", "resnet-a", "bad name"), 2, "invalid stage name"),
        (("promote", "resnet-a", "beef"), 2, "read as an id prefix"),
        (("promote", "resnet-a", "staging", "--model", "a@b"), 2, "invalid name"),
        (("promote", "resnet-a", "staging", "-m", "red \x1b[31m alert"), 2,
         "control characters"),
        (("promote", "resnet-a", "production", "-m", "\x07"), 2, "control characters"),
        (("promote", "resnet-a", "staging", "-m", "x" * (MAX_PROMOTION_LEN + 1)), 2,
         "shorten the message"),
        (("demote", "resnet-a", "staging"), 5, "has no stage 'staging' to remove"),
        (("demote", "resnet-a", "BEEF"), 2, "invalid stage name"),
        (("stages", "resnet-a", "staging"), 5, "has no stage 'staging'"),
        (("stages", "resnet-a", "--history"), 2, "need a MODEL and a STAGE"),
        (("stages", "--at", "next tuesday"), 2, "cannot read 'next tuesday' as a time"),
        (("stages", "bad name"), 2, "invalid model name"),
    ]
    for args, code, needle in cases:
        p = run_gitml(ml, *args, check=False)
        assert p.returncode == code, (args, p.stderr)
        lines = p.stderr.splitlines()
        assert len(lines) == 1, (args, p.stderr)
        assert lines[0].startswith("git-ml: error: "), (args, p.stderr)
        assert needle in lines[0], (args, p.stderr)
        assert p.stdout == ""
    assert _store_state(ml) == before
    with pytest.raises(errors.UsageError):
        mlgit.promote("data", "production", repo=ml)
    with pytest.raises(errors.UsageError):
        mlgit.stages(history=True, repo=ml)
    assert _store_state(ml) == before


def test_python_api(ml: Path) -> None:
    ids = _ids(ml)
    r = mlgit.promote("resnet-a", "production", message="ship it", repo=ml)
    assert isinstance(r, mlgit.PromoteResult)
    assert r.created
    assert isinstance(r.record, mlgit.StageRecord)
    assert (r.record.checkpoint, r.record.step, r.record.metrics) == (ids["resnet-a"], 2,
                                                                      {"acc": 0.9})
    assert r.to_json()["created"] is True
    mlgit.promote("resnet-a~1", "production", message="roll back", repo=ml)
    [now] = mlgit.stages("resnet-a", repo=ml)
    assert now.checkpoint == ids["resnet-a~1"]
    assert now.previous == ids["resnet-a"]
    assert [x.message for x in mlgit.stages("resnet-a", "production", history=True,
                                            repo=ml)] == ["roll back", "ship it"]
    assert [x.message for x in mlgit.stages("resnet-a", "production", repo=ml)] == ["roll back"]
    gone = mlgit.demote("resnet-a", "production", message="retired", repo=ml)
    assert gone.record.removed
    assert gone.record.to_json()["removed"] is True
    assert mlgit.stages(repo=ml)[0].removed
    with pytest.raises(errors.RevisionError):
        mlgit.checkout("resnet-a@production", repo=ml)


def _record_at(store_root: Path, model: str, stage: str, ckpt: str | None, t: int) -> str:
    """Write a promotion of a known time through the store (as `promote` would, at ``t``)."""
    with Repo(store_root) as r:
        store = r.store
        name = f"{model}@{stage}"
        parent = store.refs.get("stages", name)
        with store.writing():
            oid = store.objects.put_promotion(Promotion(
                model, stage, ObjectID(ckpt) if ckpt else None, parent, t, 60, WHO, f"at {t}"))
            store.objects.flush()
            store.refs.update("stages", name, oid, parent)
    return oid


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("utc")
def test_at_answers_what_held_a_stage_then(ml: Path) -> None:
    ids = _ids(ml)
    day = 1_740_787_200  # 2025-03-01T00:00:00Z
    a, b = ids["resnet-a~1"], ids["resnet-a"]
    _record_at(ml, "resnet", "production", a, day - 86400)       # 28 Feb
    _record_at(ml, "resnet", "production", b, day + 10 * 3600)   # 1 March, 10:00
    _record_at(ml, "resnet", "production", None, day + 86400 + 60)  # 2 March: removed
    _record_at(ml, "resnet", "staging", b, day + 3600)

    def held(*args: str) -> list[tuple[str, str | None]]:
        return [(x["stage"], x["checkpoint"]) for x in _stages(ml, *args)]

    # A day: every record that held the stage at some time that day.
    assert held("resnet", "production", "--at", "2025-03-01") == [("production", b),
                                                                  ("production", a)]
    assert held("resnet", "--at", "2025-03-01") == [("production", b), ("production", a),
                                                    ("staging", b)]
    # A moment: the one record in force.
    assert held("resnet", "production", "--at", "2025-03-01T09:59:59Z") == [("production", a)]
    assert held("resnet", "production", "--at", "2025-03-01 10:00") == [("production", b)]
    assert held("resnet", "production", "--at", f"@{day + 86400 + 60}") == [("production", None)]
    assert held("resnet", "production", "--at", "now") == [("production", None)]
    # Before the first record: nothing held it.
    assert held("resnet", "production", "--at", "2025-02-27") == []
    assert held("resnet", "--at", "2025-03-01T00:30Z") == [("production", a)]
    text = run_gitml(ml, "stages", "resnet", "production", "--at", "2025-03-01").stdout
    assert "2025-03-01 11:00:00 +0100" in text  # in the author's zone, as recorded


@pytest.mark.usefixtures("utc")
def test_parse_when() -> None:
    now = 1_740_830_400.0  # 2025-03-01T12:00:00Z
    day = (1_740_787_200, 1_740_873_599)
    assert parse_when("2025-03-01", now) == day
    assert parse_when("today", now) == day
    assert parse_when(" yesterday ", now) == (day[0] - 86400, day[1] - 86400)
    assert parse_when("2025-03-01T14:30", now) == (1_740_839_400,) * 2
    assert parse_when("2025-03-01T14:30+01:00", now) == (1_740_835_800,) * 2
    assert parse_when("2025-03-01T14:30:00Z", now) == (1_740_839_400,) * 2
    assert parse_when("@1700000000", now) == (1_700_000_000,) * 2
    assert parse_when("now", now) == (int(now),) * 2
    assert parse_when("3.days.ago", now) == (int(now) - 3 * 86400,) * 2
    assert parse_when("12h", now) == (int(now) - 12 * 3600,) * 2
    for bad in ("", "never", "2025-02-30", "soon", "@", "@12x", "2025-13-01T00:00"):
        with pytest.raises(errors.UsageError):
            parse_when(bad, now)


def test_fsck_and_gc_keep_promoted_checkpoints(ml: Path) -> None:
    ids = _ids(ml)
    run_gitml(ml, "promote", "resnet-a~1", "production")
    run_gitml(ml, "promote", "resnet-a", "production")
    run_gitml(ml, "demote", "resnet-a", "production")
    run_gitml(ml, "promote", "resnet-b", "staging", "--model", "resnet-a")
    # Nothing but the stages names these checkpoints any more.
    for run in ("resnet-a", "resnet-b"):
        (ml / ".git/ml/refs/checkpoints" / run).unlink()
    git(ml, "notes", "--ref", "ml", "remove", "HEAD")
    run_gitml(ml, "gc", "--prune", "now")
    report = json.loads(run_gitml(ml, "fsck", "--json").stdout)
    assert report["ok"], report["problems"]
    for oid in (ids["resnet-a"], ids["resnet-a~1"], ids["resnet-b"]):
        assert (mlgit.checkout(oid, repo=ml) / "w.bin").is_file()  # whole, in the store
    assert len(_stages(ml, "resnet-a", "production", "--history")) == 3
    assert mlgit.checkout("resnet-a@staging", repo=ml).is_dir()


def test_fsck_reports_broken_promotions(ml: Path) -> None:
    ids = _ids(ml)
    run_gitml(ml, "promote", "resnet-a", "production")
    with Repo(ml) as r:
        store = r.store
        good = store.refs.get("stages", "resnet-a@production")
        assert good is not None
        with store.writing():
            other = store.objects.put_promotion(Promotion(
                "vgg", "production", ObjectID(ids["resnet-a"]), None, 1, 0, WHO, ""))
            mixed = store.objects.put_promotion(Promotion(
                "resnet-a", "canary", ObjectID(ids["resnet-a"]), good, 2, 0, WHO, ""))
            dataset = store.objects.put_promotion(Promotion(
                "resnet-a", "shadow", ObjectID(ids["data"]), None, 3, 0, WHO, ""))
            store.objects.flush()
        store.refs.update("stages", "resnet-a@wrong", other, None)
        store.refs.update("stages", "resnet-a@canary", mixed, None)
        store.refs.update("stages", "resnet-a@shadow", dataset, None)
        store.refs.update("stages", "resnet-a@tree", ObjectID(ids["data"]), None)
    p = run_gitml(ml, "fsck", "--json", check=False)
    assert p.returncode == 1
    problems = json.loads(p.stdout)["problems"]
    kinds = sorted((x["kind"], x["message"].split(":")[0]) for x in problems)
    messages = " | ".join(x["message"] for x in problems)
    assert ("bad-ref", "ref stages/resnet-a@wrong names promotion "
            f"{other}, a record of vgg@production") in [
        (x["kind"], x["message"]) for x in problems]
    assert "a record of resnet-a@production" in messages  # canary's parent
    assert f"names {ids['data']}, a dataset, not a checkpoint" in messages
    assert "names a snapshot" in messages  # a stage ref naming a snapshot: wrong-type
    assert len(kinds) == 4, problems
    # Reading them is refused the same way, one line, exit 7.
    p = run_gitml(ml, "show", "resnet-a@wrong", check=False)
    assert p.returncode == 7
    assert "a record of vgg@production" in p.stderr
    # `stages` lists the good ones and reports each bad one.
    p = run_gitml(ml, "stages", "--json", check=False)
    assert p.returncode == 7
    assert [x["stage"] for x in json.loads(p.stdout)] == ["canary", "production", "shadow"]
    assert len(p.stderr.splitlines()) == 2


# -- the promotion codec --------------------------------------------------------------------
ids_ = st.text("0123456789abcdef", min_size=32, max_size=32).map(ObjectID)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda s: ".." not in s and not s.endswith(".lock"))
stage_names = names.filter(is_stage_name)
texts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


@st.composite
def promotions(draw: st.DrawFn) -> Promotion:
    ckpt = draw(st.none() | ids_)
    parent = draw(ids_) if ckpt is None else draw(st.none() | ids_)
    return Promotion(draw(names), draw(stage_names), ckpt, parent,
                     draw(st.integers(0, 253402300799)), draw(st.integers(-1440, 1440)),
                     draw(texts), draw(texts | st.just("line\nline\r\n\ttab")))


@given(promotions())
def test_promotion_round_trip(p: Promotion) -> None:
    data = encode_promotion(p)
    assert data.startswith(PROMOTION_MAGIC)
    assert decode_promotion(data) == p
    assert object_id(encode_promotion(decode_promotion(data))) == object_id(data)


def _format_error_or_equal(data: bytes) -> None:
    try:
        p = decode_promotion(data)
    except errors.FormatError:
        return
    assert encode_promotion(p) == data  # accepted: exactly what the encoder writes


@given(promotions(), st.binary(max_size=200), st.randoms(use_true_random=False))
def test_promotion_decoder_raises_only_format_errors(p: Promotion, junk: bytes,
                                                     rnd: random.Random) -> None:
    data = encode_promotion(p)
    _format_error_or_equal(junk)
    _format_error_or_equal(PROMOTION_MAGIC + junk)
    _format_error_or_equal(data + junk[:1])
    for cut in range(0, len(data), max(1, len(data) // 16)):
        _format_error_or_equal(data[:cut])
    for _ in range(8):
        b = bytearray(data)
        b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        _format_error_or_equal(bytes(b))


@pytest.mark.parametrize("body", [
    b"{}", b"[]", b"null",
    b'{"author":"a","checkpoint":null,"message":"","model":"m","parent":null,"stage":"p",'
    b'"time":1,"tz":0}',  # a removal with no parent
    b'{"author":"a","checkpoint":"' + b"0" * 32 + b'","message":"","model":"m","parent":null,'
    b'"stage":"beef","time":1,"tz":0}',  # a hex stage
    b'{"author":"a","checkpoint":"' + b"0" * 32 + b'","message":"","model":"m@x",'
    b'"parent":null,"stage":"p","time":1,"tz":0}',
    b'{"author":"a","checkpoint":"' + b"0" * 32 + b'","message":"","model":"m","parent":null,'
    b'"stage":"p","time":1.0,"tz":0}',
    b'{"author":"a","checkpoint":"' + b"0" * 32 + b'","message":"","model":"m","parent":null,'
    b'"stage":"p","time":1,"tz":0,"x":1}',
    b'{"author":"a\\u001b[2J","checkpoint":"' + b"0" * 32 + b'","message":"","model":"m",'
    b'"parent":null,"stage":"p","time":1,"tz":0}',
    b'{"author":"a","checkpoint":["' + b"0" * 32 + b'"],"message":"","model":"m",'
    b'"parent":null,"stage":"p","time":1,"tz":0}',
    b'{"author":"a", "checkpoint":"' + b"0" * 32 + b'","message":"","model":"m",'
    b'"parent":null,"stage":"p","time":1,"tz":0}',  # not canonical
    b"[" * 10000,
])
def test_promotion_decoder_refuses(body: bytes) -> None:
    with pytest.raises(errors.FormatError):
        decode_promotion(PROMOTION_MAGIC + body)


def test_promotion_limits_and_versions() -> None:
    p = Promotion("m", "p", ObjectID("0" * 32), None, 1, 0, "a", "x" * MAX_PROMOTION_LEN)
    with pytest.raises(errors.FormatError, match="shorten the message"):
        encode_promotion(p)
    with pytest.raises(errors.FormatError, match="exceeds"):
        decode_promotion(PROMOTION_MAGIC + b" " * MAX_PROMOTION_LEN)
    with pytest.raises(errors.UnsupportedFormatError):
        decode_promotion(b"MLGPROM\x02{}")
