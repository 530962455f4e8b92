"""Shared fixtures. Every test is hermetic: a temporary HOME, no system git config,
a fixed git identity, no inherited GIT_* variables, and the installed ``git-ml``
(from this interpreter's environment) first on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from mlgit.api.repo import Repo
from mlgit.format.config import StoreConfig

BIN = Path(sys.executable).parent

# Property tests are reproducible: the same examples on every run (CI must not fail at
# random), and no example database written into the work tree.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile(os.environ.get("MLGIT_HYPOTHESIS_PROFILE", "deterministic"))

# Small sizes so that little test data exercises many chunks and many packs.
SMALL_CONFIG = StoreConfig(chunk_min=1024, chunk_avg=4096, chunk_max=16384, pack_size=64 << 10)


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith("GIT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.com")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test Author\n\temail = author@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real git binary."""
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True)


def run_gitml(cwd: Path, *args: str, check: bool = True,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``git ml ARGS`` through the real git and the installed git-ml."""
    p = subprocess.run(["git", "ml", *args], cwd=cwd, capture_output=True, text=True,
                       input=input)
    if check and p.returncode != 0:
        raise AssertionError(
            f"git ml {' '.join(args)} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def full_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``git-ml ARGS`` through the full CLI (click, every command): no quick or remembered
    answer, for comparing the entry point's answers with."""
    code = "import sys; from mlgit.cli.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True)


def run_as(who: str, cwd: Path, *args: str,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """``git ml ARGS`` (or ``git ARGS`` when the first is ``git``) as ``who`` (``Name <email>``).

    The identity is set as git takes it, in ``GIT_AUTHOR_*`` and ``GIT_COMMITTER_*``:
    one process per teammate, as two people on two machines.
    """
    name, email = who[:-1].split(" <")
    env = {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    cmd = ["git", *args[1:]] if args[0] == "git" else ["git", "ml", *args]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and p.returncode:
        raise AssertionError(f"{cmd} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def fsck_ok(*where: Path) -> None:
    """``git ml fsck --json`` passes (exit 0, no problem) in each repository or store."""
    for w in where:
        p = run_gitml(w, "fsck", "--json", check=False)
        report = json.loads(p.stdout)
        assert p.returncode == 0, (w, report["problems"])
        assert report["ok"], (w, report["problems"])


def note_records(root: Path, commit: str = "HEAD") -> list[dict[str, Any]]:
    """A commit's ML records as ``git ml note show --json`` gives them (no problem allowed)."""
    view = json.loads(run_gitml(root, "note", "show", commit, "--json").stdout)
    assert view["problems"] == []
    return list(view["records"])


@pytest.fixture
def gitml() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_gitml


@pytest.fixture
def bare_git_repo(tmp_path: Path) -> Path:
    """A git repository with no git-ml store."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    return root


@pytest.fixture
def repo_dir(bare_git_repo: Path) -> Path:
    """A git repository with a git-ml store using small chunks and packs."""
    r, _ = Repo.init(bare_git_repo, SMALL_CONFIG)
    r.close()
    return bare_git_repo


@pytest.fixture
def repo(repo_dir: Path) -> Iterator[Repo]:
    """An opened :class:`Repo` on ``repo_dir``."""
    r = Repo(repo_dir)
    yield r
    r.close()


def make_tree(root: Path, files: Mapping[str, bytes | str]) -> None:
    """Create files (``a/b.txt``: content) under root."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)


def read_tree(root: Path) -> dict[str, bytes | str]:
    """Files under root: regular files as bytes, symlinks as 'link:<target>', empty dirs '<dir>'."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        for d in list(dirnames):
            p = Path(dirpath) / d
            if p.is_symlink():
                out[str(rel_dir / d)] = f"link:{os.readlink(p)}"
                dirnames.remove(d)
            elif not any(p.iterdir()):
                out[str(rel_dir / d)] = "<dir>"
        for f in filenames:
            p = Path(dirpath) / f
            key = str(rel_dir / f)
            out[key] = f"link:{os.readlink(p)}" if p.is_symlink() else p.read_bytes()
    return out


# Fixtures of the remote transports live in their own modules (a real sshd, moto's S3
# server); they are imported here so every test module can use them.
try:  # noqa: SIM105 - a star import cannot go in a with block's expression
    from fixtures_ssh import *  # noqa: F403
except ImportError:  # pragma: no cover - until the module exists
    pass
try:  # noqa: SIM105
    from fixtures_s3 import *  # noqa: F403
except ImportError:  # pragma: no cover
    pass
