"""The hot verbs' quick answer: ``git ml status`` and ``git ml add`` with nothing changed.

``mlgit.cli.entry`` answers them from the stat caches without loading click or the
store; anything else goes to the full CLI. These tests run both through the real
git and compare with the full CLI (``mlgit.cli.main``), and check what each path
loads (the quick answer never imports click, the store or the tree builder).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import full_cli, git, make_tree, run_gitml

from mlgit.api import add as api_add
from mlgit.api import status as api_status
from mlgit.api.core import Core
from mlgit.api.repo import Repo
from mlgit.errors import BadPathError

FILES = {f"d{i % 3}/f{i}.bin": os.urandom(200 + i) for i in range(12)} | {"top.txt": "hello"}


def _settle(top: Path) -> None:
    """Date every file below ``top`` a minute back, so the stat cache vouches for all of them."""
    when = time.time() - 60.5
    for f in top.rglob("*"):
        os.utime(f, (when, when), follow_symlinks=False)
    time.sleep(0.1)  # their ctimes, which utime just set, older than the racy window


def _loaded(cwd: Path, *args: str) -> tuple[str, set[str]]:
    """Output of the entry point for ARGS, and which of a few heavy modules it imported."""
    code = ("import sys; from mlgit.cli.entry import main; main(sys.argv[1:]); "
            "heavy = ['click', 'mlgit.cli.main', 'mlgit.store.store', 'mlgit.snapshot.build', "
            "'pygit2', 'mlgit.store.objects']; "
            "print(*[m for m in heavy if m in sys.modules], sep=',', file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                       text=True, check=True)
    return p.stdout, {m for m in p.stderr.strip().split(",") if m}


@pytest.fixture
def tracked(repo_dir: Path) -> Path:
    """``repo_dir`` with ``data/`` added and committed, its stat cache vouching for every file."""
    make_tree(repo_dir / "data", FILES)
    _settle(repo_dir / "data")
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "data")
    return repo_dir


def test_unchanged_status_is_answered_without_the_cli_or_the_store(tracked: Path) -> None:
    out = run_gitml(tracked, "status").stdout
    assert out == full_cli(tracked, "status").stdout
    assert out.startswith("data: clean (data ")
    stdout, heavy = _loaded(tracked, "status")
    assert stdout == out
    assert heavy == set()


def test_unchanged_add_is_answered_without_the_cli_or_the_store(tracked: Path) -> None:
    full = full_cli(tracked, "add", "data")
    assert full.returncode == 0, full.stderr
    out = run_gitml(tracked, "add", "data").stdout
    assert out == full.stdout
    assert "(unchanged) -> data.mlgit" in out
    stdout, heavy = _loaded(tracked, "add", "data")
    assert (stdout, heavy) == (out, set())
    assert git(tracked, "status", "--porcelain").stdout == ""
    # From a subdirectory, the path as the user gives it.
    stdout, heavy = _loaded(tracked / "data", "add", ".")
    assert stdout == full_cli(tracked / "data", "add", ".").stdout
    assert heavy == set()


def test_a_file_changed_in_place_with_its_mtime_put_back_is_seen(tracked: Path) -> None:
    """Same size, same mtime: only the ctime tells (the status goes the full way)."""
    f = tracked / "data" / "d1" / "f1.bin"
    st = f.stat()
    f.write_bytes(bytes(st.st_size))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = run_gitml(tracked, "status").stdout
    assert out == full_cli(tracked, "status").stdout
    assert "data: modified (1 changes" in out
    assert "modified  data/d1/f1.bin" in out
    _, heavy = _loaded(tracked, "status")
    assert "click" in heavy  # the full CLI answered
    added = run_gitml(tracked, "add", "data").stdout
    assert "(unchanged)" not in added
    assert "hashed 1," in added


def test_a_file_changed_right_after_add_is_seen(repo_dir: Path) -> None:
    """Written just before the add and again just after it, same size: status sees it.

    (On a filesystem with whole-second timestamps both writes share one stat: see
    tests/test_statcache_racy.py, which makes that case on a real one.)
    """
    make_tree(repo_dir / "data", FILES)
    f = repo_dir / "data" / "top.txt"
    f.write_text("hello")
    run_gitml(repo_dir, "add", "data")
    f.write_text("HELLO")
    out = run_gitml(repo_dir, "status").stdout
    assert "modified  data/top.txt" in out, out


@pytest.mark.parametrize("change", ["new file", "removed file", "new dir", "symlink", "missing",
                                    "git dir name", "fifo"])
def test_any_change_or_doubt_goes_the_full_way(tracked: Path, change: str) -> None:
    data = tracked / "data"
    if change == "new file":
        (data / "d0" / "new.bin").write_bytes(b"new")
    elif change == "removed file":
        (data / "d2" / "f2.bin").unlink()
    elif change == "new dir":
        (data / "d9").mkdir()
        (data / "d9" / "x").write_bytes(b"x")
    elif change == "symlink":
        (data / "link").symlink_to("top.txt")
    elif change == "missing":
        subprocess.run(["rm", "-rf", str(data)], check=True)
    elif change == "git dir name":
        (data / ".git").mkdir()
    else:
        os.mkfifo(data / "pipe")
    with Core(tracked) as core:
        assert api_status.status_if_unchanged(core) is None
        if change == "missing":
            with pytest.raises(BadPathError, match="no such file"):
                api_add.add_if_unchanged(core, [data])
        else:
            assert api_add.add_if_unchanged(core, [data]) is None
    status = run_gitml(tracked, "status", check=False)
    full = full_cli(tracked, "status")
    assert (status.returncode, status.stdout, status.stderr) == (
        full.returncode, full.stdout, full.stderr)
    if change in ("git dir name", "fifo"):  # skipped: clean, with the scan's warning
        assert "data: clean" in status.stdout
        assert "warning: skipping " in status.stderr
    else:
        assert "clean" not in status.stdout


def test_pointer_trouble_goes_the_full_way(tracked: Path) -> None:
    # Another pointer file naming the same dataset: add must refuse, not answer "unchanged".
    make_tree(tracked / "copy", {"x": "x"})
    (tracked / "copy.mlgit").write_text((tracked / "data.mlgit").read_text())
    with Core(tracked) as core:
        assert api_add.add_if_unchanged(core, [tracked / "data"]) is None
    p = run_gitml(tracked, "add", "data", check=False)
    assert p.returncode != 0
    assert "already used by copy" in p.stderr
    # An unreadable pointer file: status reports it (and exits non-zero) as the full CLI does.
    (tracked / "copy.mlgit").write_text("not a pointer")
    status, full = run_gitml(tracked, "status", check=False), full_cli(tracked, "status")
    assert (status.returncode, status.stdout, status.stderr) == (
        full.returncode, full.stdout, full.stderr)
    assert status.returncode != 0


def test_unstaged_pointer_or_missing_ignore_line_is_fixed_by_the_full_add(tracked: Path) -> None:
    git(tracked, "rm", "-q", "--cached", "data.mlgit")
    with Core(tracked) as core:
        assert api_add.add_if_unchanged(core, [tracked / "data"]) is None
    run_gitml(tracked, "add", "data")
    assert git(tracked, "ls-files", "data.mlgit").stdout.strip() == "data.mlgit"
    (tracked / ".gitignore").write_text("")
    with Core(tracked) as core:
        assert api_add.add_if_unchanged(core, [tracked / "data"]) is None
    run_gitml(tracked, "add", "data")
    assert "/data" in (tracked / ".gitignore").read_text().splitlines()


def test_no_store_goes_the_full_way(bare_git_repo: Path) -> None:
    p = run_gitml(bare_git_repo, "status", check=False)
    assert p.returncode != 0
    assert "git ml init" in p.stderr


def test_no_datasets_goes_the_full_way(repo_dir: Path) -> None:
    out = run_gitml(repo_dir, "status").stdout
    assert "no datasets tracked here" in out


def test_a_file_dataset_and_two_paths(repo_dir: Path) -> None:
    make_tree(repo_dir, {"model.bin": os.urandom(3000)})
    make_tree(repo_dir / "data", FILES)
    _settle(repo_dir / "data")
    os.utime(repo_dir / "model.bin", (time.time() - 60.5,) * 2)
    time.sleep(0.1)
    run_gitml(repo_dir, "add", "model.bin", "data")
    out = run_gitml(repo_dir, "add", "model.bin", "data").stdout
    assert out == full_cli(repo_dir, "add", "model.bin", "data").stdout
    assert out.count("(unchanged)") == 2
    stdout, heavy = _loaded(repo_dir, "status")
    assert heavy == set()
    assert stdout == full_cli(repo_dir, "status").stdout
    assert "model.bin: clean" in stdout
    assert "data: clean" in stdout
    with Repo(repo_dir) as r:
        assert [e.state for e in r.status()] == ["clean", "clean"]


def test_a_clone_with_a_shared_store_goes_the_full_way(tmp_path: Path) -> None:
    """Opening a shared store checks it and registers the clone: the quick answer skips neither."""
    root = tmp_path / "a"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init", "--shared", str(tmp_path / "store"))
    make_tree(root / "data", FILES)
    _settle(root / "data")
    run_gitml(root, "add", "data")
    with Core(root) as core:
        assert not core.has_store()
        assert api_status.status_if_unchanged(core) is None
    _, heavy = _loaded(root, "status")
    assert "click" in heavy
    assert run_gitml(root, "status").stdout.startswith("data: clean")
