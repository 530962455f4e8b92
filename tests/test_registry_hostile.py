"""Hostile promotions and stage refs: from a remote, and planted in the victim's own store.

The remote's store (a bare origin's ``ml/``) is written byte by byte with
``hostile_bytes`` (docs/format.md's layout, never git-ml's writer): beside good refs,
stage refs that name a snapshot, malformed or non-canonical records, a record of
another stage, a chain that crosses stages, a record naming a dataset, a record whose
parent the remote lacks, a record claiming more bytes than a promotion may have, a
FIFO, and names that are not stage ref names. The victim runs the real ``git ml
fetch`` and ``pull``: every bad one is reported on one ``git-ml: error:`` line (exit
7, never 70), none gets a remote-tracking or local ref, the good ones are fetched
and usable, and the victim's store passes ``git ml fsck``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git, run_gitml
from hostile_bytes import (
    PROM_MAGIC,
    PROMOTION,
    ZSTD,
    Builder,
    Obj,
    RawStore,
    canonical,
    fifo,
    promotion_fields,
)

import mlgit

BAD = ("m@snap", "m@garbage", "m@spaced", "m@other", "m@mixed", "m@ondata", "m@orphan",
       "m@huge", "m@fifo")
IGNORED = ("m@beef", "noat", "m@p.lock", ".m@x")


@pytest.fixture
def hostile_origin(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bare origin whose store holds good refs and every hostile stage ref above."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    w = RawStore(origin / "ml")
    b = Builder()
    ds = b.dataset("data", {"a.txt": b"hello\n"})
    ck_tree = b.tree([b.file(b"w.bin", b"weights")])
    ck = b.snapshot("run", ck_tree, kind="checkpoint", meta={"step": 3}, files=1, bytes=7)
    first = b.promotion("m", "production", ck, message="first")
    good = b.promotion("m", "production", ck, first, time=1_700_000_100, message="again")
    other = b.promotion("x", "y", ck)
    mixed = b.promotion("m", "mixed", ck, other)
    on_ds = b.promotion("m", "ondata", ds)
    orphan = b.promotion("m", "orphan", ck, b"\x01" * 16)
    garbage = b.add(PROM_MAGIC + b'{"model":"m"}', PROMOTION)
    spaced = b.add(PROM_MAGIC + canonical(promotion_fields("m", "spaced", ck)).replace(
        b",", b", ", 1), PROMOTION)
    b.objects.append(Obj(PROM_MAGIC + b" " * (70 << 10), PROMOTION, ZSTD))
    huge = b.objects[-1].entry()[0]
    w.write(b.objects)
    w.ref("datasets", "data", ds)
    w.ref("checkpoints", "run", ck)
    for name, target in {"m@production": good, "m@snap": ck, "m@garbage": garbage,
                         "m@spaced": spaced, "m@other": other, "m@mixed": mixed,
                         "m@ondata": on_ds, "m@orphan": orphan, "m@huge": huge}.items():
        w.ref("stages", name, target)
    for name in IGNORED:
        w.ref("stages", name, good)
    fifo(w.root / "refs/stages/m@fifo")
    return origin, {"ck": ck.hex(), "good": good.hex(), "first": first.hex(), "m@snap": ck.hex(),
                    "m@garbage": garbage.hex(), "m@spaced": spaced.hex(),
                    "m@orphan": orphan.hex(), "m@huge": huge.hex()}


def _victim(tmp_path: Path, origin: Path) -> Path:
    v = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(v))
    run_gitml(v, "init")
    return v


def _refs(folder: Path) -> list[str]:
    """The ref files in a folder (lock files left out)."""
    return sorted(x.name for x in folder.iterdir() if not x.name.endswith(".lock"))


def _problems_named(stderr: str, ids: dict[str, str], errors_only: bool = True) -> set[str]:
    """The refs of BAD and IGNORED that stderr reports: by name, or by the id the ref names
    (a fetch reports an object it refused by id, as it does for a dataset's snapshot).

    Every line is an error (``errors_only``) or a warning: one line per problem.
    """
    lines = stderr.splitlines()
    assert lines, "no problem reported"
    for line in lines:
        assert line.startswith("git-ml: error: " if errors_only else "git-ml: "), line
        assert "internal error" not in line, line
    return {name for name in (*BAD, *IGNORED)
            if any(name in ln or (name in ids and ids[name] in ln) for ln in lines)}


@pytest.mark.parametrize("verb", ["fetch", "pull"])
def test_hostile_stage_refs_from_a_remote(tmp_path: Path, verb: str,
                                          hostile_origin: tuple[Path, dict[str, str]]) -> None:
    origin, ids = hostile_origin
    victim = _victim(tmp_path, origin)
    p = run_gitml(victim, verb, check=False)
    assert p.returncode == 7, p.stderr
    # (pull, as for any ref it does not need, warns of the ref it cannot read)
    assert _problems_named(p.stderr, ids, errors_only=verb == "fetch") == set(BAD)
    assert len(p.stderr.splitlines()) == len(BAD)
    tracked = victim / ".git/ml/refs/remotes/origin"
    assert _refs(tracked / "stages") == ["m@production"]
    assert (tracked / "datasets/data").exists()
    assert (tracked / "checkpoints/run").exists()
    local = _refs(victim / ".git/ml/refs/stages")
    assert local == (["m@production"] if verb == "pull" else [])
    # The good stage is usable, with its trail; the bad ones are named by nothing.
    assert mlgit.show("m@production", repo=victim).id == ids["ck"]
    trail = json.loads(run_gitml(victim, "stages", "m", "production", "--history",
                                 "--json").stdout)
    assert [r["message"] for r in trail] == ["again", "first"]
    listing = json.loads(run_gitml(victim, "stages", "--json").stdout)
    assert {r["stage"] for r in listing} == {"production"}
    report = json.loads(run_gitml(victim, "fsck", "--json").stdout)
    assert report["ok"], report["problems"]
    # Asking for a bad stage by name: reported the same way, nothing named.
    p = run_gitml(victim, "fetch", "origin", "m@other", check=False)
    assert p.returncode == 7
    assert _problems_named(p.stderr, ids, errors_only=False) >= {"m@other"}
    assert not (tracked / "stages/m@other").exists()
    # `ls REMOTE` lists the datasets and runs, whatever the stage refs hold.
    ls = run_gitml(victim, "ls", "origin", "--json", check=False)
    assert {e["name"] for e in json.loads(ls.stdout)} == {"data", "run"}


def test_hostile_stage_refs_in_the_own_store(tmp_path: Path,
                                             hostile_origin: tuple[Path, dict[str, str]]
                                             ) -> None:
    origin, ids = hostile_origin
    victim = _victim(tmp_path, origin)
    run_gitml(victim, "pull", check=False)
    stages = victim / ".git/ml/refs/stages"
    (stages / "m@link").symlink_to(stages / "m@production")
    (stages / "m@junk").write_text("not an id\n")
    (stages / "m@big").write_bytes(b"0" * (1 << 20))
    p = run_gitml(victim, "stages", "--json", check=False)
    assert p.returncode == 7
    assert [r["stage"] for r in json.loads(p.stdout) if r["remote"] is None] == ["production"]
    assert len(p.stderr.splitlines()) == 3
    assert all(ln.startswith("git-ml: error: ") for ln in p.stderr.splitlines())
    p = run_gitml(victim, "show", "m@junk", check=False)
    assert p.returncode == 7
    assert "corrupt" in p.stderr
    p = run_gitml(victim, "promote", "run", "junk", "--model", "m", check=False)
    assert p.returncode == 7
    assert mlgit.show("m@production", repo=victim).id == ids["ck"]
    report = json.loads(run_gitml(victim, "fsck", "--json", check=False).stdout)
    assert sorted(x["kind"] for x in report["problems"]) == ["bad-ref"] * 3
