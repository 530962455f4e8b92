"""Crash safety: ``kill -9`` of ``git ml add``, ``commit-ckpt`` and ``push`` at random moments.

Each trial starts the command in its own session (so ``killpg`` reaches ``git-ml``
and every process it started, not only the ``git`` wrapper), kills it after a
delay drawn from a seeded generator and spread over the command's measured
duration, then checks what docs/format.md ("What a crash leaves behind") promises:

- ``git ml fsck --json`` finds nothing wrong except ``orphan-pack`` (a pack whose
  index was never written): every ref and pointer names a complete snapshot;
- the pointer file, if there is one, parses; the data being added is untouched;
- for push, the remote store passes the same checks;
- running the same command again succeeds, and the data read back (``git ml
  checkout``, ``git ml path``, ``git ml pull`` in a fresh clone) is exactly right.

The datasets are a few MiB against the fixture's 64 KiB packs, so a run writes
dozens of packs and kills land before, during and after the pack writes, the ref
update, the pointer write and the staging.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from conftest import SMALL_CONFIG, git, make_tree, read_tree, run_gitml

from mlgit.api.repo import Repo
from mlgit.format.pointer import decode_pointer
from mlgit.store import fsck as fsck_mod
from mlgit.store.store import Store

SEED = 20240611
ADD_TRIALS = 20
CKPT_TRIALS = 15
PUSH_TRIALS = 15


# -- helpers ---------------------------------------------------------------------------


def _dataset(rng: random.Random, files: int = 12, size: int = 260_000) -> dict[str, bytes]:
    """A few MiB of incompressible data in two directories (random: nothing deduplicates)."""
    return {f"part{i % 2}/f{i:02d}.bin": rng.randbytes(size + i * 1000) for i in range(files)}


def _run_killed(cwd: Path, args: list[str], delay: float) -> bool:
    """Run ``git ml ARGS`` and SIGKILL its whole process group after ``delay`` seconds.

    Returns True if the command finished (successfully) before the kill.
    """
    p = subprocess.Popen(["git", "ml", *args], cwd=cwd, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=delay)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # finished in between
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        # Anything left of the group (it should be gone with the kill) must not keep
        # writing while we check.
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            pass
        else:  # pragma: no cover
            os.killpg(p.pid, signal.SIGKILL)
            time.sleep(0.05)
        return p.returncode == 0
    assert p.returncode == 0, f"git ml {' '.join(args)} failed uninterrupted: {err.decode()}"
    return True


def _measure(cwd: Path, args: list[str]) -> float:
    t = time.monotonic()
    run_gitml(cwd, *args)
    return time.monotonic() - t


def _delays(rng: random.Random, duration: float, n: int) -> list[float]:
    """``n`` kill delays, stratified over [10%, 105%] of ``duration`` and shuffled."""
    lo, hi = 0.10 * duration, 1.05 * duration
    out = [lo + (hi - lo) * (i + rng.random()) / n for i in range(n)]
    rng.shuffle(out)
    return out


def _fsck_problems(root: Path) -> tuple[int, list[dict[str, object]]]:
    p = run_gitml(root, "fsck", "--json", check=False)
    assert p.returncode in (0, 1), f"fsck exited {p.returncode}: {p.stderr}"
    report = json.loads(p.stdout)
    assert report["ok"] == (p.returncode == 0)
    return p.returncode, report["problems"]


def _assert_store_sound(root: Path, context: str) -> int:
    """fsck finds nothing but orphan packs; pointers parse; packs/ holds only final names.

    Returns the number of packs (indexed or not), a rough measure of how far the
    killed command got.
    """
    _, problems = _fsck_problems(root)
    bad = [p for p in problems if p["kind"] != "orphan-pack"]
    assert not bad, f"{context}: fsck problems after the crash: {bad}"
    for p in root.glob("*.mlgit"):
        decode_pointer(p.read_bytes(), str(p))
    packs = root / ".git/ml/packs"
    names = [n for n in os.listdir(packs) if n != "multi-pack-index"]  # a final name too
    for n in names:
        assert n.startswith("pack-"), (context, n)
        assert n.endswith((".pack", ".idx")), (context, n)
        if n.endswith(".idx"):
            assert n[:-4] + ".pack" in names, f"{context}: {n} has no pack"
    return len(names)


def _clear_stale_git_index_lock(root: Path, stale: list[str], context: str) -> None:
    """git itself leaves ``index.lock`` behind when killed inside ``git add``.

    git-ml cannot tell a dead holder from a live one (nor can git, which tells the
    user to delete the file), so the test does what git tells the user to do.
    """
    lock = root / ".git/index.lock"
    if lock.exists():
        stale.append(context)
        lock.unlink()


def _clear_stale_git_lock(lock: Path, stale: list[str], context: str) -> None:
    """Remove a lock file a killed git (or libgit2) left, noting that it happened."""
    if lock.exists():
        stale.append(context)
        lock.unlink()


def _new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    r, _ = Repo.init(path, SMALL_CONFIG)
    r.close()
    return path


def _stages_spread(stages: list[int]) -> None:
    """The kills must have landed at several different points of the command."""
    assert len(set(stages)) >= 3, f"kills landed at too few stages: {stages}"


# -- git ml add ------------------------------------------------------------------------


def test_kill_during_add(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    want = _dataset(rng)
    scratch = _new_repo(tmp_path / "scratch")
    make_tree(scratch / "data", want)
    duration = _measure(scratch, ["add", "data"])
    stale_locks: list[str] = []
    stages: list[int] = []
    for i, delay in enumerate(_delays(rng, duration, ADD_TRIALS)):
        ctx = f"add trial {i} (kill after {delay:.3f}s of {duration:.3f}s)"
        root = _new_repo(tmp_path / f"add{i}")
        make_tree(root / "data", want)
        finished = _run_killed(root, ["add", "data"], delay)
        assert read_tree(root / "data") == want, f"{ctx}: the data being added changed"
        _clear_stale_git_index_lock(root, stale_locks, ctx)
        n = _assert_store_sound(root, ctx)
        ref = root / ".git/ml/refs/datasets/data"
        stages.append(n + (1000 if ref.exists() else 0) + (10_000 if finished else 0))
        # Again, to the end; then the data comes back exactly.
        run_gitml(root, "add", "data")
        _assert_store_sound(root, ctx + ", after re-running")
        pointer = decode_pointer((root / "data.mlgit").read_bytes())
        assert ref.read_text().strip() == pointer.id, ctx
        staged = git(root, "diff", "--cached", "--name-only").stdout.split()
        assert "data.mlgit" in staged, (ctx, staged)
        assert ".gitignore" in staged, (ctx, staged)
        shutil.rmtree(root / "data")
        run_gitml(root, "checkout")
        assert read_tree(root / "data") == want, f"{ctx}: checkout after re-running differs"
        assert run_gitml(root, "status").returncode == 0
        shutil.rmtree(root)
    _stages_spread(stages)


# -- git ml commit-ckpt ----------------------------------------------------------------


def test_kill_during_commit_ckpt(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    want = _dataset(rng, files=10)
    ck = tmp_path / "ck"
    make_tree(ck, want)
    scratch = _new_repo(tmp_path / "scratch")
    make_tree(scratch, {"train.py": "print(1)\n"})
    git(scratch, "add", "train.py")
    git(scratch, "commit", "-qm", "code")
    duration = _measure(scratch, ["commit-ckpt", str(ck), "--run", "r", "--step", "1"])
    stages: list[int] = []
    stale_locks: list[str] = []
    for i, delay in enumerate(_delays(rng, duration, CKPT_TRIALS)):
        ctx = f"commit-ckpt trial {i} (kill after {delay:.3f}s of {duration:.3f}s)"
        root = _new_repo(tmp_path / f"ck{i}")
        make_tree(root, {"train.py": "print(1)\n"})
        git(root, "add", "train.py")
        git(root, "commit", "-qm", "code")
        finished = _run_killed(root, ["commit-ckpt", str(ck), "--run", "r", "--step", "1"],
                               delay)
        assert read_tree(ck) == want, f"{ctx}: the checkpoint being committed changed"
        n = _assert_store_sound(root, ctx)
        ref = root / ".git/ml/refs/checkpoints/r"
        stages.append(n + (1000 if ref.exists() else 0) + (10_000 if finished else 0))
        notes = git(root, "notes", "--ref", "refs/notes/ml", "list", check=False)
        assert notes.returncode == 0, f"{ctx}: notes unreadable: {notes.stderr}"
        # A kill inside libgit2's update of refs/notes/ml leaves its .lock behind, as a
        # killed git does; the user deletes it as git says (nothing else may be left).
        _clear_stale_git_lock(root / ".git/refs/notes/ml.lock", stale_locks, ctx)
        assert not list((root / ".git/refs").rglob("*.lock")), f"{ctx}: stale git ref lock"
        run_gitml(root, "commit-ckpt", str(ck), "--run", "r", "--step", "1")
        _assert_store_sound(root, ctx + ", after re-running")
        hist = json.loads(run_gitml(root, "history", "--json", "r").stdout)
        assert 1 <= len(hist) <= 2, (ctx, hist)  # a finished first run adds one version
        path = Path(run_gitml(root, "path", "r").stdout.strip())
        assert read_tree(path) == want, f"{ctx}: the checkpoint read back differs"
        note = json.loads(run_gitml(root, "note", "show", "--json").stdout)
        runs = [r["run"] for r in note["records"] if r.get("type") == "checkpoint"]
        assert runs, (ctx, note)
        assert set(runs) == {"r"}, (ctx, note)
        _force_rmtree(root)
    _stages_spread(stages)


def _force_rmtree(path: Path) -> None:
    """Remove a repository whose ``checkouts/`` are read-only."""
    for dirpath, _, _ in os.walk(path):
        if not os.path.islink(dirpath):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path)


# -- git ml push -----------------------------------------------------------------------


def _check_remote_store(ml: Path, context: str) -> int:
    """The remote's store: every pack readable, every ref's snapshot complete.

    Returns the number of files in its ``packs/`` (0 if the store was never made).
    """
    if not (ml / "config").exists():
        packs = ml / "packs"
        assert not packs.exists() or not os.listdir(packs), (
            f"{context}: the remote has packs but no config")
        return 0
    store = Store.open(ml)
    try:
        report = fsck_mod.FsckReport()
        good = fsck_mod.check_objects(store, report)
        roots = [(oid, f"remote ref {kind}/{name}", "snapshot") for kind in store.ref_kinds()
                 for name, oid in store.refs.list(kind).items()]
        fsck_mod.check_reachable(store, good, roots, report)
        bad = [p for p in report.problems if p.kind != "orphan-pack"]
        assert not bad, f"{context}: remote store problems: {bad}"
        names = os.listdir(ml / "packs")
        for n in names:
            assert n.startswith("pack-"), (context, n)
            assert n.endswith((".pack", ".idx")), (context, n)
        return len(names)
    finally:
        store.close()


def test_kill_during_push(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    src = _new_repo(tmp_path / "src")
    want = _dataset(rng, files=12)
    make_tree(src / "data", want)
    run_gitml(src, "add", "data")
    git(src, "commit", "-qm", "v1")
    ck = tmp_path / "ck"
    make_tree(ck, {"w.bin": rng.randbytes(200_000)})
    run_gitml(src, "commit-ckpt", str(ck), "--run", "r1")
    ck_id = (src / ".git/ml/refs/checkpoints/r1").read_text().strip()

    def fresh_remote(name: str) -> Path:
        bare = tmp_path / f"{name}.git"
        git(tmp_path, "init", "-q", "--bare", str(bare))
        git(src, "remote", "add", name, str(bare))
        # The code goes first, without the pre-push hook: only `git ml push` moves data.
        git(src, "push", "-q", "--no-verify", name, "main")
        return bare

    scratch = fresh_remote("scratch")
    duration = _measure(src, ["push", "scratch"])
    stages: list[int] = []
    for i, delay in enumerate(_delays(rng, duration, PUSH_TRIALS)):
        ctx = f"push trial {i} (kill after {delay:.3f}s of {duration:.3f}s)"
        name = f"o{i}"
        bare = fresh_remote(name)
        finished = _run_killed(src, ["push", name], delay)
        n = _check_remote_store(bare / "ml", ctx)
        _assert_store_sound(src, ctx + " (local)")
        assert read_tree(src / "data") == want
        remote_ref = bare / "ml/refs/datasets/data"
        stages.append(n + (1000 if remote_ref.exists() else 0) + (10_000 if finished else 0))
        lock = list(bare.glob("refs/**/*.lock"))
        assert not lock, f"{ctx}: stale git lock in the remote: {lock}"
        run_gitml(src, "push", name)
        _check_remote_store(bare / "ml", ctx + ", after re-running")
        assert remote_ref.read_text() == (src / ".git/ml/refs/datasets/data").read_text()
        clone = tmp_path / f"clone{i}"
        git(tmp_path, "clone", "-q", str(bare), str(clone))
        run_gitml(clone, "pull")
        assert read_tree(clone / "data") == want, f"{ctx}: pulled data differs"
        ck_path = run_gitml(clone, "path", ck_id).stdout.strip()  # fetched lazily
        assert read_tree(Path(ck_path)) == read_tree(ck), f"{ctx}: checkpoint differs"
        assert _fsck_problems(clone)[0] == 0, ctx
        _force_rmtree(clone)
        shutil.rmtree(bare)
        git(src, "remote", "remove", name)
    _stages_spread(stages)
    shutil.rmtree(scratch)
