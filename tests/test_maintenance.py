"""git ml fsck and git ml gc: finding damage, repairing it, and pruning without losing data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, read_tree, run_gitml

from mlgit.api.repo import Repo
from mlgit.format.ids import hex_to_raw
from mlgit.format.pack import OBJ_CHUNK


def _repo_with_history(root: Path) -> dict[str, bytes | str]:
    make_tree(root, {f"data/f{i}.bin": os.urandom(6000) for i in range(20)})
    run_gitml(root, "add", "data")
    git(root, "commit", "-qm", "v1")
    (root / "data/f0.bin").write_bytes(os.urandom(6000))
    run_gitml(root, "add", "data")
    git(root, "commit", "-qam", "v2")
    ck = root.parent / "ck"
    make_tree(ck, {"w.bin": os.urandom(8000)})
    run_gitml(root, "commit-ckpt", str(ck), "--run", "r")
    (root.parent / "log.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    run_gitml(root, "note", "add", "--log", str(root.parent / "log.csv"))
    return read_tree(root / "data")


def _fsck(root: Path) -> tuple[int, dict[str, Any]]:
    p = run_gitml(root, "fsck", "--json", check=False)
    return p.returncode, json.loads(p.stdout)


def test_fsck_clean(repo_dir: Path) -> None:
    _repo_with_history(repo_dir)
    rc, report = _fsck(repo_dir)
    assert rc == 0
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["snapshots"] >= 3
    assert "ok" in run_gitml(repo_dir, "fsck").stdout


def _flip_a_byte_in_a_chunk(root: Path) -> str:
    """Damage a chunk of data/f1.bin, a file of the current version."""
    with Repo(root) as r:
        from mlgit.snapshot.treewalk import lookup

        snap = r.snapshot(r.resolve("data"))
        chunk = lookup(r.store.objects.get_tree, hex_to_raw(snap.tree), "f1.bin").chunks[0][0]
        for reader in r.store.objects.readers():
            e = reader.find(chunk)
            if e is not None:
                raw = bytearray(reader.path.read_bytes())
                raw[e.offset + 26 + e.stored_len // 2] ^= 0x55
                reader.path.write_bytes(bytes(raw))
                return chunk.hex()
    raise AssertionError("no chunk found")


def test_fsck_names_a_corrupt_object_and_repair_restores_it(repo_dir: Path,
                                                           tmp_path: Path) -> None:
    want = _repo_with_history(repo_dir)
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo_dir, "remote", "add", "origin", str(origin))
    run_gitml(repo_dir, "push")
    bad = _flip_a_byte_in_a_chunk(repo_dir)
    rc, report = _fsck(repo_dir)
    assert rc == 1
    kinds = {(p["kind"], p["object"]) for p in report["problems"]}
    assert ("corrupt", bad) in kinds
    import shutil

    shutil.rmtree(repo_dir / "data")
    p = run_gitml(repo_dir, "checkout", check=False)
    assert p.returncode != 0
    assert bad in p.stderr
    assert not (repo_dir / "data").exists()
    out = run_gitml(repo_dir, "fsck", "--repair", "origin").stdout
    assert "repaired 1 objects" in out
    assert "ok" in out
    run_gitml(repo_dir, "checkout")
    assert read_tree(repo_dir / "data") == want
    gc = run_gitml(repo_dir, "gc", "--prune", "now", check=False)  # drops the damaged copy
    rc, report = _fsck(repo_dir)
    assert rc == 0, (gc.stdout, gc.stderr, report)


def test_fsck_reports_missing_objects_and_who_needs_them(repo_dir: Path) -> None:
    _repo_with_history(repo_dir)
    with Repo(repo_dir) as r:
        readers = r.store.objects.readers()
        victim = max(readers, key=lambda x: sum(1 for e in x.entries if e.type == OBJ_CHUNK))
    victim.path.with_suffix(".idx").unlink()
    victim.path.unlink()
    rc, report = _fsck(repo_dir)
    assert rc == 1
    missing = [p for p in report["problems"] if p["kind"] == "missing"]
    assert missing
    assert all(p["referenced_by"] for p in missing)


def test_gc_removes_only_unreachable_old_objects(repo_dir: Path) -> None:
    want = _repo_with_history(repo_dir)
    with Repo(repo_dir) as r:
        garbage = [r.store.objects.put(OBJ_CHUNK, os.urandom(5000)) for _ in range(5)]
        r.store.objects.flush()
    young = run_gitml(repo_dir, "gc").stdout  # default grace period: nothing is old enough
    assert "removed 0 objects" in young
    dry = run_gitml(repo_dir, "gc", "--prune", "now", "--dry-run").stdout
    assert "would remove 5 objects" in dry
    with Repo(repo_dir) as r:
        assert all(r.store.objects.has_committed(g) for g in garbage)
    out = run_gitml(repo_dir, "gc", "--prune", "now").stdout
    assert "removed 5 objects" in out
    with Repo(repo_dir) as r:
        assert not any(r.store.objects.has_committed(g) for g in garbage)
    assert _fsck(repo_dir)[0] == 0
    import shutil

    shutil.rmtree(repo_dir / "data")
    run_gitml(repo_dir, "checkout")
    assert read_tree(repo_dir / "data") == want
    assert json.loads(run_gitml(repo_dir, "show", "--json", "data~1").stdout)["id"]
    assert run_gitml(repo_dir, "path", "r").stdout.strip()


def test_gc_keeps_an_added_but_uncommitted_dataset(repo_dir: Path) -> None:
    _repo_with_history(repo_dir)
    make_tree(repo_dir, {"fresh/x.bin": os.urandom(7000)})
    run_gitml(repo_dir, "add", "fresh")
    (repo_dir / ".git/ml/refs/datasets/fresh").unlink()  # only the pointer names it now
    run_gitml(repo_dir, "gc", "--prune", "now")
    assert _fsck(repo_dir)[0] == 0
    import shutil

    shutil.rmtree(repo_dir / "fresh")
    run_gitml(repo_dir, "checkout", "fresh")
    assert len((repo_dir / "fresh/x.bin").read_bytes()) == 7000


def test_gc_during_adds_loses_nothing(repo_dir: Path) -> None:
    """Adds and gc --prune=now race; every committed version stays complete."""
    _repo_with_history(repo_dir)
    script = (
        "import os, sys, mlgit\n"
        "root = sys.argv[1]\n"
        "for i in range(12):\n"
        "    d = os.path.join(root, 'busy')\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    open(os.path.join(d, 'f.bin'), 'wb').write(os.urandom(20000))\n"
        "    mlgit.add(d, repo=root)\n"
    )
    import sys

    adder = subprocess.Popen([sys.executable, "-c", script, str(repo_dir)])
    try:
        while adder.poll() is None:
            run_gitml(repo_dir, "gc", "--prune", "now")
    finally:
        adder.wait()
    assert adder.returncode == 0
    run_gitml(repo_dir, "gc", "--prune", "now")
    rc, report = _fsck(repo_dir)
    assert rc == 0, report
    hist = json.loads(run_gitml(repo_dir, "history", "--json", "busy").stdout)
    assert len(hist) == 12
    for h in hist:
        assert Path(run_gitml(repo_dir, "path", h["id"]).stdout.strip()).exists()


@pytest.mark.parametrize("bad", ["yesterday-ish", "3 fortnights"])
def test_gc_bad_prune(repo_dir: Path, bad: str) -> None:
    p = run_gitml(repo_dir, "gc", "--prune", bad, check=False)
    assert p.returncode == 2
    assert "age" in p.stderr
