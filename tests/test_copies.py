"""No triple copies: the work tree's own copy, reflinks, and the budget of read-only checkouts.

Reflinks are tested for real on a loop-mounted XFS made with ``reflink=1`` (needs
root, ``mkfs.xfs`` and a loop device; skipped where they are missing), where the
free space the filesystem reports shows that a checkout of the work tree's version
costs no data blocks; and their absence on the filesystem of the test's temporary
directory (ext4 here), where the ioctl is tried, fails, and the bytes are written.
Holds and eviction are tested across real processes: a checkout a running process
holds is never evicted, by gc or by a new checkout passing ``ml.checkouts.maxSize``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SMALL_CONFIG, git, make_tree, read_tree, run_gitml

import mlgit
from mlgit.api.repo import Repo
from mlgit.errors import UsageError
from mlgit.format.ids import ObjectID
from mlgit.store import checkouts, reflink

MiB = 1 << 20


def _free(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture(scope="module")
def reflink_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on a loop-mounted XFS that can reflink (skipped where one cannot be made)."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("a reflink filesystem needs root and mkfs.xfs (apt-get install xfsprogs)")
    base = tmp_path_factory.mktemp("xfs")
    image, mount = base / "image", base / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(320 * MiB)  # sparse: costs what is written
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True,
                   capture_output=True)
    p = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot loop-mount an XFS image here: {p.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _settle(top: Path) -> None:
    """Date every file below ``top`` a minute back, so the stat cache vouches for all of them.

    (A file modified within 30 ms of ``add`` is racy: the stat cache leaves it out, and a
    file it does not vouch for is never a source of a reflink.)
    """
    when = time.time() - 60
    for f in top.rglob("*"):
        os.utime(f, (when, when))
    time.sleep(0.1)  # and their ctimes, which utime just set, older than 30 ms


def _new_repo(where: Path, name: str) -> Path:
    root = where / name
    root.mkdir()
    git(root, "init", "-q")
    r, _ = Repo.init(root, SMALL_CONFIG)
    r.close()
    return root


# -- reflinks ---------------------------------------------------------------------------


def test_a_checkout_of_the_worktree_version_shares_its_blocks(reflink_fs: Path) -> None:
    root = _new_repo(reflink_fs, "shares")
    make_tree(root, {f"data/f{i}.bin": os.urandom(4 * MiB) for i in range(4)})
    _settle(root / "data")
    r = mlgit.add(root / "data", repo=root)
    want = read_tree(root / "data")
    before = _free(reflink_fs)
    path = mlgit.checkout("data", repo=root, worktree=False)
    used = before - _free(reflink_fs)
    assert path == root / ".git/ml/checkouts" / r.id
    assert read_tree(path) == want
    assert used < 2 * MiB, f"a 16 MiB checkout took {used} bytes: not reflinked"
    # Its cost, for the budget, is what it wrote: nothing.
    assert (root / ".git/ml/checkouts" / f"{r.id}.use").read_text() == "0\n"
    # The copies are files of their own: writing one leaves the other alone.
    (root / "data/f0.bin").write_bytes(b"changed")
    assert (path / "f0.bin").read_bytes() == want["f0.bin"]


def test_a_work_tree_rebuilt_from_a_checkout_shares_its_blocks(reflink_fs: Path) -> None:
    root = _new_repo(reflink_fs, "rebuilt")
    make_tree(root, {f"data/f{i}.bin": os.urandom(4 * MiB) for i in range(4)})
    mlgit.add(root / "data", repo=root)
    want = read_tree(root / "data")
    path = mlgit.checkout("data", repo=root, worktree=False)
    shutil.rmtree(root / "data")
    before = _free(reflink_fs)
    run_gitml(root, "checkout")
    used = before - _free(reflink_fs)
    assert read_tree(root / "data") == want
    assert used < 2 * MiB, f"a 16 MiB work tree took {used} bytes: not reflinked"
    fsck = run_gitml(root, "status")
    assert "modified" not in fsck.stdout
    assert read_tree(path) == want


def test_a_changed_work_tree_file_is_written_not_cloned(reflink_fs: Path) -> None:
    """A file whose stat no longer matches the stat cache is never the source of a clone."""
    root = _new_repo(reflink_fs, "changed")
    make_tree(root, {"data/a.bin": os.urandom(2 * MiB), "data/b.bin": os.urandom(2 * MiB)})
    _settle(root / "data")
    mlgit.add(root / "data", repo=root)
    want = read_tree(root / "data")
    # Same size, new bytes, and the mtime put back: only ctime (and the bytes) differ.
    st = os.stat(root / "data/a.bin")
    (root / "data/a.bin").write_bytes(os.urandom(2 * MiB))
    os.utime(root / "data/a.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    path = mlgit.checkout("data", repo=root, worktree=False)
    assert read_tree(path) == want
    cost = int((path.parent / f"{path.name}.use").read_text())
    assert cost == 2 * MiB  # a.bin written, b.bin cloned


def test_the_ioctl_is_tried_and_the_bytes_written_where_it_cannot(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(100_000))
    dst.touch()
    with src.open("rb") as s, dst.open("r+b") as d:
        cloned = reflink.clone_fd(s.fileno(), d.fileno())
    if cloned:
        pytest.skip("the temporary directory's filesystem can reflink; see the XFS tests")
    assert dst.read_bytes() == b""
    assert reflink.known_unsupported(tmp_path)
    assert not reflink.probe(tmp_path)
    # A checkout there writes every byte, and counts them against the budget.
    root = _new_repo(tmp_path, "repo")
    make_tree(root, {"data/a.bin": os.urandom(300_000), "data/b/c.txt": "c"})
    r = mlgit.add(root / "data", repo=root)
    path = mlgit.checkout("data", repo=root, worktree=False)
    assert read_tree(path) == read_tree(root / "data")
    assert (path.parent / f"{r.id}.use").read_text() == f"{r.bytes}\n"


def test_a_clone_across_filesystems_falls_back_without_condemning_either(
        reflink_fs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 10_000)
    dst = reflink_fs / "cross-dst"
    dst.touch()
    with src.open("rb") as s, dst.open("r+b") as d:
        assert not reflink.clone_fd(s.fileno(), d.fileno())  # EXDEV
    assert dst.read_bytes() == b""
    assert not reflink.known_unsupported(reflink_fs)
    assert reflink.probe(reflink_fs)


# -- the work tree's own copy ---------------------------------------------------------------


def test_checkout_returns_the_clean_work_tree_and_a_copy_otherwise(repo_dir: Path) -> None:
    make_tree(repo_dir, {"data/a.txt": "v1", "data/b.bin": os.urandom(5000)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    (repo_dir / "data/a.txt").write_text("v2")
    r2 = mlgit.add(repo_dir / "data", repo=repo_dir)
    assert mlgit.checkout("data", repo=repo_dir) == repo_dir / "data"
    assert run_gitml(repo_dir, "path", "data").stdout.strip() == str(repo_dir / "data")
    # Another version than the pointer's: a read-only checkout.
    old = mlgit.checkout("data~1", repo=repo_dir)
    assert old.parent == repo_dir / ".git/ml/checkouts"
    assert (old / "a.txt").read_text() == "v1"
    # Dirty: the checkout holds the version asked for, not the edit.
    (repo_dir / "data/a.txt").write_text("edited")
    dirty = mlgit.checkout("data", repo=repo_dir)
    assert dirty == repo_dir / ".git/ml/checkouts" / r2.id
    assert (dirty / "a.txt").read_text() == "v2"
    # --copy / worktree=False: never the work tree.
    (repo_dir / "data/a.txt").write_text("v2")
    assert mlgit.checkout("data", repo=repo_dir) == repo_dir / "data"
    copy = run_gitml(repo_dir, "path", "--copy", "data").stdout.strip()
    assert copy == str(repo_dir / ".git/ml/checkouts" / r2.id)


def test_checkout_of_a_clean_file_snapshot_is_the_file(repo_dir: Path) -> None:
    (repo_dir / "model.bin").write_bytes(os.urandom(3000))
    mlgit.add(repo_dir / "model.bin", repo=repo_dir)
    assert mlgit.checkout("model.bin", repo=repo_dir) == repo_dir / "model.bin"
    p = mlgit.checkout("model.bin", repo=repo_dir, worktree=False)
    assert p.parent.parent == repo_dir / ".git/ml/checkouts"
    assert p.read_bytes() == (repo_dir / "model.bin").read_bytes()


# -- holds, recency, the budget ------------------------------------------------------------


def _versions(repo_dir: Path, n: int, size: int) -> list[ObjectID]:
    ids: list[ObjectID] = []
    for i in range(n):
        make_tree(repo_dir, {"data/f.bin": os.urandom(size), "data/i.txt": str(i)})
        ids.append(mlgit.add(repo_dir / "data", repo=repo_dir).id)
    return ids


def _made(repo_dir: Path) -> set[str]:
    return {n for n in os.listdir(repo_dir / ".git/ml/checkouts")
            if len(n) == 32 and not n.startswith(".")}


@contextlib.contextmanager
def _holder(repo_dir: Path, rev: str) -> Iterator[Path]:
    """Another process that took ``mlgit.checkout(rev)`` and keeps running until the block ends."""
    code = ("import sys, mlgit\n"
            "p = mlgit.checkout(sys.argv[1], repo=sys.argv[2], worktree=False)\n"
            "print(p, flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, rev, str(repo_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield Path(proc.stdout.readline().strip())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


def test_a_new_checkout_past_the_budget_evicts_the_least_recently_used(repo_dir: Path) -> None:
    ids = _versions(repo_dir, 4, 20_000)
    git(repo_dir, "config", "ml.checkouts.maxSize", "50k")  # two checkouts fit, not three
    for rev in ("data~3", "data~2", "data~3"):  # the third call makes ~3 the newest use
        run_gitml(repo_dir, "path", "--copy", rev)
        time.sleep(0.01)
    assert _made(repo_dir) == {ids[0], ids[1]}
    p = run_gitml(repo_dir, "path", "--copy", "data~1")
    assert p.stderr == ""
    assert _made(repo_dir) == {ids[0], ids[2]}  # ~2 was the least recently used
    fsck = run_gitml(repo_dir, "fsck")
    assert fsck.returncode == 0


def test_a_checkout_a_running_process_holds_is_never_evicted(repo_dir: Path) -> None:
    ids = _versions(repo_dir, 3, 20_000)
    git(repo_dir, "config", "ml.checkouts.maxSize", "1")
    with _holder(repo_dir, "data~2") as held:
        assert held == repo_dir / ".git/ml/checkouts" / ids[0]
        run_gitml(repo_dir, "path", "--copy", "data~1")  # past the budget: ~1 is new, ~2 held
        assert _made(repo_dir) == {ids[0], ids[1]}
        gc = run_gitml(repo_dir, "gc")
        assert "evicted 1 read-only checkouts" in gc.stdout
        assert "those left are in use" in gc.stderr
        assert _made(repo_dir) == {ids[0]}
        assert read_tree(held)["i.txt"] == b"0"
    gc = run_gitml(repo_dir, "gc")
    assert "evicted 1 read-only checkouts" in gc.stdout
    assert _made(repo_dir) == set()
    assert [n for n in os.listdir(repo_dir / ".git/ml/checkouts")] == []


def test_release_lets_eviction_take_a_checkout_again(repo_dir: Path) -> None:
    ids = _versions(repo_dir, 2, 10_000)
    git(repo_dir, "config", "ml.checkouts.maxSize", "1")
    p = mlgit.checkout("data~1", repo=repo_dir)
    assert run_gitml(repo_dir, "gc").stdout.count("evicted") == 0
    assert _made(repo_dir) == {ids[0]}
    assert mlgit.release(p / "f.bin")
    assert not mlgit.release(p)
    assert "evicted 1 read-only checkouts" in run_gitml(repo_dir, "gc").stdout
    assert not p.exists()
    # Asked for again: made again, complete.
    again = mlgit.checkout("data~1", repo=repo_dir)
    assert again == p
    assert read_tree(again)["i.txt"] == b"0"
    mlgit.release(again)


def test_no_budget_and_a_bad_one(repo_dir: Path) -> None:
    ids = _versions(repo_dir, 3, 10_000)
    git(repo_dir, "config", "ml.checkouts.maxSize", "0")  # no limit
    for rev in ("data~2", "data~1"):
        run_gitml(repo_dir, "path", "--copy", rev)
    assert "evicted" not in run_gitml(repo_dir, "gc").stdout
    assert _made(repo_dir) == {ids[0], ids[1]}
    for bad in ("10x", "-1"):
        git(repo_dir, "config", "ml.checkouts.maxSize", bad)
        for args in (("gc",), ("path", "--copy", "data")):
            p = run_gitml(repo_dir, *args, check=False)
            assert p.returncode == 2, p.stderr
            assert p.stderr.count("\n") == 1
            assert "ml.checkouts.maxSize" in p.stderr
        assert _made(repo_dir) == {ids[0], ids[1]}  # nothing changed
        assert not [n for n in os.listdir(repo_dir / ".git/ml/checkouts") if ids[2] in n]
    with Repo(repo_dir) as r, pytest.raises(UsageError):
        r.checkout("data", worktree=False)


def test_eviction_racing_checkouts_never_yields_a_partial_tree(repo_dir: Path) -> None:
    """One process evicts everything it can in a loop; another checks out, reads, releases."""
    _versions(repo_dir, 2, 30_000)
    want = {rev: read_tree(mlgit.checkout(rev, repo=repo_dir, worktree=False))
            for rev in ("data~1", "data")}
    for rev in want:
        mlgit.release(repo_dir / ".git/ml/checkouts" / mlgit.show(rev, repo=repo_dir).id)
    evictor = ("import sys, pathlib\n"
               "from mlgit.store import checkouts\n"
               "d = pathlib.Path(sys.argv[1])\n"
               "while not (d / 'stop').exists():\n"
               "    checkouts.evict(d, 1)\n")
    proc = subprocess.Popen([sys.executable, "-c", evictor,
                             str(repo_dir / ".git/ml/checkouts")])
    try:
        for i in range(40):
            rev = ("data~1", "data")[i % 2]
            path = mlgit.checkout(rev, repo=repo_dir, worktree=False)
            assert read_tree(path) == want[rev]
            assert mlgit.release(path)
    finally:
        (repo_dir / ".git/ml/checkouts/stop").touch()
        assert proc.wait(timeout=60) == 0
        (repo_dir / ".git/ml/checkouts/stop").unlink()


def test_listing_orders_by_last_use_and_reads_costs(repo_dir: Path) -> None:
    ids = _versions(repo_dir, 2, 10_000)
    for rev in ("data", "data~1"):
        run_gitml(repo_dir, "path", "--copy", rev)
        time.sleep(0.01)
    where = repo_dir / ".git/ml/checkouts"
    uses = checkouts.listing(where)
    assert [u.name for u in uses] == [ids[1], ids[0]]
    sizes = {i.id: i.snapshot.bytes for i in (mlgit.show(x, repo=repo_dir, files=False)
                                             for x in ids)}
    assert [u.cost for u in uses] == [sizes[ids[1]], sizes[ids[0]]]
    # A checkout without a cost record (an older git-ml's) costs its files' sizes.
    (where / f"{ids[0]}.use").unlink()
    assert {u.name: u.cost for u in checkouts.listing(where)}[ids[0]] == sizes[ids[0]]


def test_gc_removes_leftovers_but_not_a_held_checkout_of_a_dead_snapshot(repo_dir: Path) -> None:
    ids = _versions(repo_dir, 1, 5000)
    where = repo_dir / ".git/ml/checkouts"
    with _holder(repo_dir, ids[0]):
        git(repo_dir, "rm", "-q", "--cached", "data.mlgit")
        (repo_dir / "data.mlgit").unlink()
        shutil.rmtree(repo_dir / ".git/ml/refs/datasets")
        (repo_dir / ".git/ml/refs/datasets").mkdir()
        stale = where / ".deadbeef.1.aa.tmp"
        stale.mkdir()
        os.utime(stale, (0, 0))
        orphan = where / ("ab" * 16 + ".use")
        orphan.touch()
        os.utime(orphan, (0, 0))
        run_gitml(repo_dir, "gc", "--prune", "now")
        assert _made(repo_dir) == {ids[0]}  # dead, but held
        assert not stale.exists()
        assert not orphan.exists()
    run_gitml(repo_dir, "gc", "--prune", "now")
    assert os.listdir(where) == []
