"""`git ml fsck` gives a consistent answer while another process writes the store.

A real writer runs in a separate process (``git ml add`` of changed data, ``git ml
gc --prune=now``, ``git ml push``, in a loop) while ``git ml fsck --json`` runs again
and again in the same clone: every fsck must find nothing wrong. Before issue 10,
fsck read the pack indexes first and the pointers later, so a version added in
between was ``missing``, a pack gc deleted meanwhile a ``bad-index``, and a pack
whose index was still being written an ``orphan-pack``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import git, make_tree, run_gitml

WRITER = textwrap.dedent("""
    import os, random, subprocess, sys
    from pathlib import Path

    root, rounds = Path(sys.argv[1]), int(sys.argv[2])
    rnd = random.Random(1)

    def ml(*args):
        p = subprocess.run(["git", "ml", *args], cwd=root, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"git ml {' '.join(args)}: {p.returncode} {p.stderr}")

    for i in range(rounds):
        for k in rnd.sample(range(200), 20):
            (root / "data" / f"f{k}.bin").write_bytes(rnd.randbytes(3000))
        (root / "data" / f"new{i}.bin").write_bytes(rnd.randbytes(20000))
        ml("add", "data")
        if i % 3 == 2:
            ml("gc", "--prune=now")
        if i % 4 == 3:
            ml("push", "origin")
    (root / "writer-done").write_text("ok")
""")


def test_fsck_is_consistent_while_another_process_adds_gcs_and_pushes(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(a, {f"data/f{i}.bin": os.urandom(3000) for i in range(200)})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "v1")
    git(a, "remote", "add", "origin", str(origin))
    run_gitml(a, "push", "origin")

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(a), "12"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reports: list[dict[str, object]] = []
    try:
        while writer.poll() is None:
            p = run_gitml(a, "fsck", "--json", check=False)
            assert p.returncode in (0, 1), p.stderr
            reports.append({"rc": p.returncode, **json.loads(p.stdout)})
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert (a / "writer-done").exists(), err
    wrong = [(r["rc"], r["problems"]) for r in reports if r["rc"] != 0 or r["problems"]]
    assert len(reports) >= 5, "fsck ran too few times while the writer ran"
    assert not wrong, f"{len(wrong)} of {len(reports)} fsck runs reported damage: {wrong[:3]}"
    final = json.loads(run_gitml(a, "fsck", "--json").stdout)
    assert final["ok"]
    assert final["snapshots"] >= 13


def test_fsck_still_reports_an_orphan_pack_when_no_writer_runs(tmp_path: Path) -> None:
    """The in-progress rule must not hide a real leftover: with no writer, an unindexed
    pack is an orphan."""
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(a, {"data/x.bin": os.urandom(3000)})
    run_gitml(a, "add", "data")
    packs = a / ".git" / "ml" / "packs"
    pack = next(p for p in packs.iterdir() if p.suffix == ".pack")
    (packs / ("pack-" + "0" * 64 + ".pack")).write_bytes(pack.read_bytes())
    p = run_gitml(a, "fsck", "--json", check=False)
    assert p.returncode == 1
    assert [x["kind"] for x in json.loads(p.stdout)["problems"]] == ["orphan-pack"]


def test_fsck_does_not_call_a_pack_being_written_an_orphan(tmp_path: Path) -> None:
    """A pack in packs/ whose index is not written yet, while its writer holds the
    store (as PackWriter does between the two renames), is not reported; once the
    writer is gone, it is."""
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(a, {"data/x.bin": os.urandom(3000)})
    run_gitml(a, "add", "data")
    packs = a / ".git" / "ml" / "packs"
    pack = next(p for p in packs.iterdir() if p.suffix == ".pack")
    (packs / ("pack-" + "1" * 64 + ".pack")).write_bytes(pack.read_bytes())
    hold = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from mlgit.store.store import Store
        s = Store.open(Path(sys.argv[1]))
        with s.writing():
            print("holding", flush=True)
            sys.stdin.readline()
        s.close()
    """)
    writer = subprocess.Popen([sys.executable, "-c", hold, str(a / ".git" / "ml")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "holding"
        p = run_gitml(a, "fsck", "--json", check=False)
        assert p.returncode == 0, p.stdout
        assert json.loads(p.stdout)["problems"] == []
    finally:
        writer.communicate("done\n", timeout=30)
    deadline = time.monotonic() + 10
    while writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    p = run_gitml(a, "fsck", "--json", check=False)
    assert [x["kind"] for x in json.loads(p.stdout)["problems"]] == ["orphan-pack"]
