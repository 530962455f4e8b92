"""Bad input: a clear one-line error, a documented non-zero exit code, and nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import git, make_tree, run_gitml

from mlgit import errors


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under root (work tree and .git) with its mode and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = f"link {os.readlink(p)}"
            elif p.is_dir():
                out[rel] = f"dir {st.st_mode:o}"
            else:
                out[rel] = f"{st.st_mode:o} {hashlib.sha256(p.read_bytes()).hexdigest()}"
    return out


def assert_error(p: object, code: int, *needles: str) -> None:
    rc, err = p.returncode, p.stderr  # type: ignore[attr-defined]
    assert rc == code, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("git-ml: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


def test_not_a_git_repository(tmp_path: Path) -> None:
    before = fingerprint(tmp_path)
    p = run_gitml(tmp_path, "status", check=False)
    # git itself refuses `git ml` outside a repo? No: git runs git-ml anywhere.
    assert_error(p, errors.NotARepositoryError.exit_code, "not a git repository")
    assert fingerprint(tmp_path) == before


def test_before_init_says_how_to_fix(bare_git_repo: Path) -> None:
    make_tree(bare_git_repo, {"data/x": "x"})
    before = fingerprint(bare_git_repo)
    for args in (["add", "data"], ["status"], ["ls"], ["show", "data"], ["checkout"]):
        p = run_gitml(bare_git_repo, *args, check=False)
        assert_error(p, errors.NotInitializedError.exit_code, "git ml init")
    assert fingerprint(bare_git_repo) == before


@pytest.mark.parametrize("bad", ["missing_dir", "../outside", ".git", ".git/ml", "."])
def test_bad_paths(repo_dir: Path, bad: str) -> None:
    (repo_dir.parent / "outside").mkdir(exist_ok=True)
    make_tree(repo_dir, {"data/x": "x"})
    before = fingerprint(repo_dir)
    p = run_gitml(repo_dir, "add", bad, check=False)
    assert_error(p, errors.BadPathError.exit_code)
    assert fingerprint(repo_dir) == before


def test_path_tracked_by_git(repo_dir: Path) -> None:
    make_tree(repo_dir, {"data/x": "x"})
    git(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "tracked")
    before = fingerprint(repo_dir)
    p = run_gitml(repo_dir, "add", "data", check=False)
    assert_error(p, errors.BadPathError.exit_code, "tracked by git", "git rm -r --cached data")
    assert fingerprint(repo_dir) == before


def test_one_bad_path_among_good_ones_changes_nothing(repo_dir: Path) -> None:
    make_tree(repo_dir, {"a/x": "x"})
    before = fingerprint(repo_dir)
    p = run_gitml(repo_dir, "add", "a", "nope", check=False)
    assert_error(p, errors.BadPathError.exit_code, "nope")
    assert fingerprint(repo_dir) == before


def test_file_changing_while_read_is_refused(repo_dir: Path) -> None:
    big = repo_dir / "data" / "growing.log"
    make_tree(repo_dir, {"data/growing.log": os.urandom(32 << 20)})
    stop = threading.Event()

    def writer() -> None:
        fd = os.open(big, os.O_WRONLY | os.O_APPEND)
        try:
            while not stop.is_set():
                os.write(fd, b"x")
                time.sleep(0.0005)
        finally:
            os.close(fd)

    t = threading.Thread(target=writer)
    t.start()
    try:
        p = run_gitml(repo_dir, "add", "data", check=False)
    finally:
        stop.set()
        t.join()
    assert_error(p, errors.FileChangedError.exit_code, "growing.log", "changing")
    assert not (repo_dir / "data.mlgit").exists()
    assert not list((repo_dir / ".git/ml/refs/datasets").iterdir())


def test_unknown_revision(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/x": "x"})
    run_gitml(repo_dir, "add", "d")
    for rev in ("nosuch", "d~5", "ffffffff", "d@0000", "d~1"):
        p = run_gitml(repo_dir, "show", rev, check=False)
        assert_error(p, errors.RevisionError.exit_code)


def test_pointer_edited_into_nonsense(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/x": "x"})
    run_gitml(repo_dir, "add", "d")
    (repo_dir / "d.mlgit").write_text("id: not-an-id\nwhatever\n")
    before = fingerprint(repo_dir)
    for args in (["status"], ["checkout"], ["add", "d"]):
        p = run_gitml(repo_dir, *args, check=False)
        assert_error(p, errors.PointerError.exit_code, "d.mlgit")
    assert fingerprint(repo_dir) == before


def test_store_from_newer_format(repo_dir: Path) -> None:
    cfg = repo_dir / ".git/ml/config"
    obj = json.loads(cfg.read_text())
    obj["format"] = 99
    cfg.write_text(json.dumps(obj))
    make_tree(repo_dir, {"d/x": "x"})
    before = fingerprint(repo_dir)
    p = run_gitml(repo_dir, "add", "d", check=False)
    assert_error(p, errors.UnsupportedFormatError.exit_code, "newer", "upgrade")
    assert fingerprint(repo_dir) == before


def test_debug_shows_traceback(repo_dir: Path) -> None:
    p = run_gitml(repo_dir, "--debug", "show", "nosuch", check=False)
    assert p.returncode == errors.RevisionError.exit_code
    assert "Traceback" in p.stderr


def test_name_clash_between_paths(repo_dir: Path) -> None:
    make_tree(repo_dir, {"a/data/x": "x", "b/data/y": "y"})
    run_gitml(repo_dir, "add", "a/data")
    before = fingerprint(repo_dir)
    p = run_gitml(repo_dir, "add", "b/data", check=False)
    assert_error(p, errors.BadPathError.exit_code, "already used by a/data", "--name")
    assert fingerprint(repo_dir) == before
    p = run_gitml(repo_dir, "add", "--name", "data", "b/data", check=False)
    assert_error(p, errors.BadPathError.exit_code, "already used")
    run_gitml(repo_dir, "add", "--name", "data-b", "b/data")


def test_invalid_name(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/x": "x"})
    p = run_gitml(repo_dir, "add", "--name", "bad name~1", "d", check=False)
    assert_error(p, errors.UsageError.exit_code, "invalid name")


def test_usage_error_exit_code(repo_dir: Path) -> None:
    p = run_gitml(repo_dir, "add", check=False)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
