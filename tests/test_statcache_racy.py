"""Racy entries of the stat cache: a file written in the timestamp tick the cache saw it in.

Such a file keeps its stat when written again, so the cache must not vouch for it
(git's "racy git" problem). The rules (mlgit/snapshot/statcache.py): entries within
30 ms of the scan are not saved; whole-second times (coarse filesystems) within 2 s
are not saved; entries not older than the cache file itself are not taken on load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SMALL_CONFIG, git, make_tree, run_gitml

from mlgit.api.core import Core
from mlgit.api.repo import Repo
from mlgit.api.status import status_if_unchanged


def _cache_file(root: Path) -> Path:
    (cache,) = (root / ".git" / "ml" / "cache" / "stat").glob("*.json")
    return cache


def _readd(root: Path) -> tuple[bool, int]:
    """Add ``data`` again in-process: (a new version made, files hashed)."""
    with Repo(root) as r:
        res = r.add([root / "data"])[0]
    return res.created, res.hashed_files


def test_entries_not_older_than_the_cache_file_are_hashed_again(repo_dir: Path) -> None:
    data = repo_dir / "data"
    make_tree(data, {"old.bin": b"o" * 500, "sub/new.bin": b"n" * 700})
    past = time.time() - 120.5
    os.utime(data / "old.bin", (past, past))
    time.sleep(0.05)
    between = time.time_ns()  # after old.bin's ctime, before new.bin's
    time.sleep(0.05)
    os.utime(data / "sub" / "new.bin", (past + 60, past + 60))
    time.sleep(0.1)  # every ctime out of the 30 ms window
    assert _readd(repo_dir) == (True, 2)
    assert _readd(repo_dir) == (False, 0)  # the cache vouches for both
    with Core(repo_dir) as core:
        assert status_if_unchanged(core) is not None
    # As if the cache had been written in the tick new.bin was last touched in (a coarse
    # filesystem): new.bin might have changed since with the same stat, so it is hashed.
    os.utime(_cache_file(repo_dir), ns=(between, between))
    with Core(repo_dir) as core:
        assert status_if_unchanged(core) is None
    assert _readd(repo_dir) == (False, 1)
    assert _readd(repo_dir) == (False, 0)  # the add wrote a new cache


def test_whole_second_mtimes_on_a_fine_filesystem_are_cached(repo_dir: Path) -> None:
    """Whole-second mtimes (``tar x``, ``cp -p``) with a fine ctime are no coarse filesystem."""
    data = repo_dir / "data"
    make_tree(data, {"a.bin": b"a" * 500, "b.bin": b"b" * 600, "c.bin": b"c" * 700})
    now = time.time()
    os.utime(data / "a.bin", (now - 100.5, now - 100.5))
    os.utime(data / "b.bin", (int(now) - 100, int(now) - 100))
    os.utime(data / "c.bin", (int(now), int(now)))
    time.sleep(0.1)
    assert _readd(repo_dir) == (True, 3)
    assert _readd(repo_dir) == (False, 0)


def test_old_caches_are_read(repo_dir: Path) -> None:
    """A version 2 cache (no newest time per directory) still vouches for old entries."""
    import json

    data = repo_dir / "data"
    make_tree(data, {"a.bin": b"a" * 500, "d/b.bin": b"b" * 600})
    for f in (data / "a.bin", data / "d" / "b.bin"):
        os.utime(f, (time.time() - 50.5,) * 2)
    time.sleep(0.1)
    _readd(repo_dir)
    cache = _cache_file(repo_dir)
    obj = json.loads(cache.read_text())
    obj["v"] = 2
    obj["dirs"] = {rel: entry[:3] for rel, entry in obj["dirs"].items()}
    cache.write_text(json.dumps(obj))
    assert _readd(repo_dir) == (False, 0)


MiB = 1 << 20


@pytest.fixture(scope="module")
def coarse_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on a loop-mounted ext4 with 128-byte inodes: timestamps of whole seconds."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("a 1 s timestamp filesystem needs root and mkfs.ext4 (e2fsprogs)")
    base = tmp_path_factory.mktemp("ext4-128")
    image, mount = base / "image", base / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], check=True,
                   capture_output=True)
    p = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here: {p.stderr.strip()}")
    try:
        probe = mount / "probe"
        probe.write_bytes(b"")
        if probe.stat().st_mtime_ns % 1_000_000_000:
            pytest.skip("this kernel keeps sub-second timestamps on 128-byte inodes")
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_change_in_the_same_second_as_the_add_is_seen_on_a_coarse_filesystem(
        coarse_fs: Path) -> None:
    """Written, added 0.1 s later, written again in the same second: the same stat."""
    root = coarse_fs / "repo"
    root.mkdir()
    git(root, "init", "-q")
    Repo.init(root, SMALL_CONFIG)[0].close()
    data = root / "data"
    make_tree(data, {"keep.bin": b"k" * 900})
    f = data / "f.txt"
    for _ in range(10):
        time.sleep(1.02 - time.time() % 1)  # just after a second begins
        f.write_text("hello")
        time.sleep(0.1)  # past the 30 ms window of the fine-grained rule
        with Repo(root) as r:
            r.add([data])
        before = f.stat()
        f.write_text("HELLO")
        after = f.stat()
        if (before.st_mtime_ns, before.st_ctime_ns, before.st_ino) == (
                after.st_mtime_ns, after.st_ctime_ns, after.st_ino):
            break
    else:
        pytest.skip("never wrote twice within one second (a very loaded machine)")
    with Repo(root) as r:
        (entry,) = r.status()
    assert entry.state == "modified"
    assert [c.path for c in entry.changes] == ["f.txt"]
    out = run_gitml(root, "status").stdout
    assert "modified  data/f.txt" in out
