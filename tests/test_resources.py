"""Running out of resources: a full disk during ``add`` and ``checkout``, a read-only store.

"Disk full" is simulated per process with ``RLIMIT_FSIZE`` (set in the child, with
SIGXFSZ ignored so an oversized write fails with EFBIG instead of killing it), and
for real with a small tmpfs (ENOSPC) where mounting is allowed. The read-only store
is a read-only bind mount of ``.git/ml`` in a private mount namespace (``unshare
-m``): the tests run as root, for whom permission bits stop nothing.

Every failure must be one clear line on stderr and a non-zero exit, and leave the
store consistent (fsck finds nothing but orphan packs), refs and pointer files as
they were, no temporary files behind, and a re-run without the limit must work.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SMALL_CONFIG, git, make_tree, read_tree, run_gitml

from mlgit.api.repo import Repo


def _fsize_limit(nbytes: int) -> Callable[[], None]:
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


def _limited(cwd: Path, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "ml", *args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=_fsize_limit(limit))


def _one_line_error(p: subprocess.CompletedProcess[str], *words: str) -> None:
    assert p.returncode != 0, p.stdout
    assert p.returncode != 70, f"internal error: {p.stderr}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("git-ml: error: "), p.stderr
    low = lines[0].lower()
    assert any(w in low for w in words), lines[0]


def _assert_consistent(root: Path) -> None:
    p = run_gitml(root, "fsck", "--json", check=False)
    assert p.returncode in (0, 1), p.stderr
    problems = json.loads(p.stdout)["problems"]
    assert all(x["kind"] == "orphan-pack" for x in problems), problems
    tmp = root / ".git/ml/tmp"
    left = [n for n in os.listdir(tmp) if n.startswith("pack") and n.endswith(".tmp")]
    assert not left, f"temporary packs left behind: {left}"
    work = [os.path.join(d, n) for d, dirs, files in os.walk(root) if ".git" not in d
            for n in dirs + files if n.startswith(".mlgit.") and n.endswith(".tmp")]
    assert not work, f"temporary files left in the work tree: {work}"


def _refs(root: Path) -> dict[str, str]:
    base = root / ".git/ml/refs"
    return {str(p.relative_to(base)): p.read_text() for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".lock") and not p.name.startswith(".")}


def _dataset(n: int = 12, size: int = 50_000) -> dict[str, bytes]:
    return {f"d{i % 3}/f{i:02d}.bin": os.urandom(size) for i in range(n)}


# -- disk full during add ------------------------------------------------------------------


@pytest.mark.parametrize("limit", [3_000, 40_000])
@pytest.mark.parametrize("first", [True, False])
def test_add_on_a_full_disk(repo_dir: Path, limit: int, first: bool) -> None:
    """A write that fails mid-add (first version, or a new version of a dataset)."""
    if not first:
        make_tree(repo_dir / "data", _dataset())
        run_gitml(repo_dir, "add", "data")
        git(repo_dir, "commit", "-qm", "v1")
    want = _dataset()
    shutil.rmtree(repo_dir / "data", ignore_errors=True)
    make_tree(repo_dir / "data", want)
    refs = _refs(repo_dir)
    pointer = (repo_dir / "data.mlgit").read_bytes() if not first else None
    staged = git(repo_dir, "diff", "--cached", "--name-only").stdout
    p = _limited(repo_dir, limit, "add", "data")
    _one_line_error(p, "too large", "no space", "file size")
    assert _refs(repo_dir) == refs
    if first:
        assert not (repo_dir / "data.mlgit").exists()
    else:
        assert (repo_dir / "data.mlgit").read_bytes() == pointer
    assert git(repo_dir, "diff", "--cached", "--name-only").stdout == staged
    assert read_tree(repo_dir / "data") == want
    _assert_consistent(repo_dir)
    run_gitml(repo_dir, "add", "data")
    _assert_consistent(repo_dir)
    shutil.rmtree(repo_dir / "data")
    run_gitml(repo_dir, "checkout")
    assert read_tree(repo_dir / "data") == want


# -- disk full during checkout -------------------------------------------------------------


def _two_versions(root: Path) -> tuple[dict[str, bytes], dict[str, bytes], bytes]:
    v1 = _dataset()
    make_tree(root / "data", v1)
    run_gitml(root, "add", "data")
    git(root, "commit", "-qm", "v1")
    p1 = (root / "data.mlgit").read_bytes()
    v2 = {k: (v + os.urandom(30_000) if i % 2 else v) for i, (k, v) in enumerate(v1.items())}
    v2["new/extra.bin"] = os.urandom(60_000)
    make_tree(root / "data", v2)
    run_gitml(root, "add", "data")
    git(root, "commit", "-qam", "v2")
    return v1, v2, p1


@pytest.mark.parametrize("limit", [10_000, 55_000])
def test_fresh_checkout_on_a_full_disk(repo_dir: Path, limit: int) -> None:
    _, v2, _ = _two_versions(repo_dir)
    shutil.rmtree(repo_dir / "data")
    refs = _refs(repo_dir)
    p = _limited(repo_dir, limit, "checkout")
    _one_line_error(p, "too large", "no space", "file size")
    assert not os.path.lexists(repo_dir / "data"), "a partial checkout was left behind"
    assert [n for n in os.listdir(repo_dir) if n.startswith(".mlgit.")] == []
    assert _refs(repo_dir) == refs
    _assert_consistent(repo_dir)
    run_gitml(repo_dir, "checkout")
    assert read_tree(repo_dir / "data") == v2


def test_checkout_over_an_old_version_on_a_full_disk(repo_dir: Path) -> None:
    """Updating in place: files may be old or new after the failure, never torn."""
    v1, v2, p1 = _two_versions(repo_dir)
    (repo_dir / "data.mlgit").write_bytes(p1)  # pin v1 while v2 is on disk
    refs = _refs(repo_dir)
    p = _limited(repo_dir, 30_000, "checkout")
    _one_line_error(p, "too large", "no space", "file size")
    got = read_tree(repo_dir / "data")
    for k, v in got.items():
        assert v in (v1.get(k), v2.get(k)), f"{k} is neither version ({len(v)} bytes)"
    assert _refs(repo_dir) == refs
    _assert_consistent(repo_dir)
    run_gitml(repo_dir, "checkout")
    assert read_tree(repo_dir / "data") == v1


def test_readonly_copy_on_a_full_disk(repo_dir: Path) -> None:
    _, v2, _ = _two_versions(repo_dir)
    p = _limited(repo_dir, 20_000, "path", "--copy", "data")
    _one_line_error(p, "too large", "no space", "file size")
    assert os.listdir(repo_dir / ".git/ml/checkouts") == []
    _assert_consistent(repo_dir)
    path = Path(run_gitml(repo_dir, "path", "--copy", "data").stdout.strip())
    assert read_tree(path) == v2


# -- a real full filesystem (ENOSPC) -------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, if this process may mount one."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_add_on_a_really_full_filesystem(small_fs: Path) -> None:
    root = small_fs / "repo"
    root.mkdir()
    git(root, "init", "-q")
    Repo.init(root, SMALL_CONFIG)[0].close()
    make_tree(root / "small", {"a.bin": os.urandom(20_000)})
    run_gitml(root, "add", "small")
    git(root, "commit", "-qm", "small")
    refs = _refs(root)
    want = _dataset(n=10, size=250_000)  # 2.5 MB: fits once, not twice
    make_tree(root / "big", want)
    p = run_gitml(root, "add", "big", check=False)
    _one_line_error(p, "no space", "too large")
    assert _refs(root) == refs
    assert not (root / "big.mlgit").exists()
    _assert_consistent(root)
    shutil.rmtree(root / "small")
    run_gitml(root, "checkout", "small")
    assert len((root / "small/a.bin").read_bytes()) == 20_000


# -- a read-only store ---------------------------------------------------------------------


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount --bind / /mnt && mount -o remount,bind,ro / /mnt"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return f"cannot make a read-only bind mount here: {p.stderr.strip()}"
    return None


def _tree_state(path: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            out[str(p.relative_to(path))] = (st.st_mode, digest)
    return out


def test_add_to_a_readonly_store(repo_dir: Path) -> None:
    why = _can_unshare()
    if why:
        pytest.skip(why)
    make_tree(repo_dir / "data", _dataset(n=6))
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "v1")
    make_tree(repo_dir / "data", {"d0/f00.bin": os.urandom(50_000), "more/x.bin": b"x" * 9})
    make_tree(repo_dir / "other", {"y.bin": os.urandom(10_000)})
    ml = repo_dir / ".git/ml"
    store_before = _tree_state(ml)
    pointer = (repo_dir / "data.mlgit").read_bytes()
    ignore = (repo_dir / ".gitignore").read_bytes()
    index = (repo_dir / ".git/index").read_bytes()
    for args in (["add", "data"], ["add", "other"]):
        script = (f'mount --bind "{ml}" "{ml}" && mount -o remount,bind,ro "{ml}" "{ml}" '
                  f'&& exec git ml {" ".join(args)}')
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           cwd=repo_dir, capture_output=True, text=True)
        _one_line_error(p, "read-only")
        assert _tree_state(ml) == store_before
        assert (repo_dir / "data.mlgit").read_bytes() == pointer
        assert not (repo_dir / "other.mlgit").exists()
        assert (repo_dir / ".gitignore").read_bytes() == ignore
        assert (repo_dir / ".git/index").read_bytes() == index
    _assert_consistent(repo_dir)
    run_gitml(repo_dir, "add", "data", "other")
