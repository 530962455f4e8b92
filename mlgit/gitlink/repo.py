"""Finding the git repository and its work tree; running git for index queries.

Discovery walks up from a directory as git does (a ``.git`` directory, a
``.git`` file naming the git dir of a linked worktree, or a bare repository)
without importing pygit2, which costs more start-up time than a whole
``git ml status`` on unchanged data may take. The pygit2 handle is opened on
first use of :attr:`GitRepo.git`.

Given git's environment (:class:`~mlgit.gitlink.env.GitEnv`), discovery honours
it as git does: ``GIT_DIR`` names the git dir (relative to the starting
directory); the work tree is then ``GIT_WORK_TREE``, else ``core.worktree``, else
none if ``core.bare`` is true, else the starting directory itself (git's rule
for ``GIT_DIR`` without a work tree). ``GIT_WORK_TREE`` alone replaces the work
tree of the repository found by walking up, and the walk up never enters a
directory of ``GIT_CEILING_DIRECTORIES``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgit.errors import BadPathError, GitCommandError, NotARepositoryError
from mlgit.gitlink.env import GitEnv

__all__ = ["GitRepo", "discover"]


@dataclass
class GitRepo:
    """A git repository: its git dir, the store's git dir and the work tree (None if bare).

    ``own_git_dir`` is this work tree's git dir; ``git_dir`` is the common one
    (they differ in a linked worktree, which shares the main repository's store).
    """

    own_git_dir: Path
    git_dir: Path
    workdir: Path | None
    env: GitEnv = field(default_factory=GitEnv)
    """What git takes from the environment (the ssh client, for SSH remotes)."""
    warn: Callable[[str], None] | None = field(default=None, repr=False)
    """Where warnings about settings go (the CLI's; else Python's :mod:`warnings`)."""
    memo: dict[str, Any] = field(default_factory=dict, repr=False)
    """Files read once per opened repository (the shared settings file)."""
    _git: Any = field(default=None, repr=False)

    @property
    def git(self) -> Any:
        """The ``pygit2.Repository`` (imported and opened on first use)."""
        if self._git is None:
            import pygit2  # 60 ms of start-up: only when needed

            self._git = pygit2.Repository(str(self.own_git_dir))
        return self._git

    @property
    def ml_dir(self) -> Path:
        """Where the sidecar store lives: ``<git dir>/ml``."""
        return self.git_dir / "ml"

    def require_workdir(self) -> Path:
        """The work tree; BadPathError in a bare repository."""
        if self.workdir is None:
            raise BadPathError("this command needs a work tree, and this repository is bare")
        return self.workdir

    def run_git(self, *args: str, input: bytes | None = None) -> bytes:
        """Run the real ``git`` on this repository (``input`` on its stdin); return its stdout."""
        cmd = ["git", f"--git-dir={self.own_git_dir}"]
        if self.workdir is not None:
            cmd.append(f"--work-tree={self.workdir}")
        p = subprocess.run([*cmd, *args], capture_output=True, input=input,
                           cwd=self.workdir or self.own_git_dir)
        if p.returncode != 0:
            stderr = p.stderr.decode(errors="replace")
            lines = stderr.strip().splitlines()
            first = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))),
                         lines[-1] if lines else f"exit code {p.returncode}")
            raise GitCommandError(f"git {args[0]} failed: {first}", stderr)
        return p.stdout

    def relpath(self, path: Path) -> str:
        """``path`` relative to the work tree, ``/``-separated; BadPathError if outside or in .git.

        ``path`` may be relative to the current directory; it is not resolved
        through a final symlink.
        """
        work = self.require_workdir()
        absolute = Path(path).absolute()
        parent = absolute.parent.resolve()
        plain = absolute.name not in ("", ".", "..")
        full = parent / absolute.name if plain else absolute.resolve()
        try:
            rel = full.relative_to(work)
        except ValueError:
            raise BadPathError(f"{path} is outside the repository at {work}") from None
        if (rel.parts and rel.parts[0] == ".git") or full in (self.git_dir, self.own_git_dir) or (
            self.git_dir in full.parents or self.own_git_dir in full.parents
        ):
            raise BadPathError(f"{path} is inside the git directory")
        return rel.as_posix()


def _is_git_dir(d: Path) -> bool:
    """True for a git dir: HEAD, and objects/ and refs/ here or in its common dir.

    A linked worktree's git dir (``.git/worktrees/<name>``) has its own HEAD but
    shares objects and refs with the main repository through ``commondir``.
    """
    if not (d / "HEAD").is_file():
        return False
    common = _common_dir(d)
    return (common / "objects").is_dir() and (common / "refs").is_dir()


def _common_dir(git_dir: Path) -> Path:
    """The common git dir of ``git_dir`` (itself, unless it is a linked worktree's)."""
    common = git_dir / "commondir"
    if common.is_file():
        try:
            text = common.read_text(errors="replace").strip()
        except OSError:
            return git_dir
        return (git_dir / text).resolve() if text else git_dir
    return git_dir


def discover(start: Path, env: GitEnv | None = None) -> GitRepo:
    """The repository containing ``start``; NotARepositoryError if there is none.

    With ``env``, ``GIT_DIR``, ``GIT_WORK_TREE`` and ``GIT_CEILING_DIRECTORIES``
    apply as in git (module docstring); the repository records ``env`` for what
    else git takes from the environment.
    """
    here = Path(os.path.abspath(start))
    if not here.is_dir():
        raise NotARepositoryError(f"{start} is not a directory")
    env = env or GitEnv()
    if env.git_dir is not None:
        return _explicit(here, env)
    repo = _walk_up(here.resolve(), start, env.ceiling_dirs)
    repo.env = env
    if env.work_tree is not None:
        repo.workdir = _work_tree_path(here, env.work_tree)
    return repo


def _work_tree_path(base: Path, text: str) -> Path:
    path = (base / text).resolve()
    if not path.is_dir():
        raise NotARepositoryError(f"GIT_WORK_TREE={text} is not a directory")
    return path


def _explicit(here: Path, env: GitEnv) -> GitRepo:
    """The repository ``GIT_DIR`` names (git's ``setup_explicit_git_dir``)."""
    assert env.git_dir is not None
    own = (here / env.git_dir).resolve()
    if not own.is_dir() or not _is_git_dir(own):
        raise NotARepositoryError(f"not a git repository: GIT_DIR={env.git_dir}")
    repo = GitRepo(own, _common_dir(own), None, env)
    if env.work_tree is not None:
        repo.workdir = _work_tree_path(here, env.work_tree)
        return repo
    core = _core_settings(own)
    if "core.worktree" in core:
        repo.workdir = _work_tree_path(own, core["core.worktree"])
    elif core.get("core.bare", "false") != "true":
        repo.workdir = here.resolve()  # git: the current directory is the work tree
    return repo


def _core_settings(git_dir: Path) -> dict[str, str]:
    """``core.worktree`` and ``core.bare`` (``true``/``false``) from the repository's config."""
    p = subprocess.run(["git", f"--git-dir={git_dir}", "config", "-z", "--get-regexp",
                        r"^core\.(worktree|bare)$"], capture_output=True)
    out: dict[str, str] = {}
    for item in p.stdout.split(b"\0") if p.returncode == 0 else []:
        key, _, value = item.decode(errors="replace").partition("\n")
        if key == "core.bare":
            out[key] = "true" if value.lower() in ("", "true", "yes", "on", "1") else "false"
        elif key == "core.worktree" and value:
            out[key] = os.path.expanduser(value)
    return out


def _walk_up(here: Path, start: Path, ceilings: tuple[str, ...]) -> GitRepo:
    """Look for a repository at ``here`` and each parent, as git does."""
    stop = {Path(c).resolve() for c in ceilings}
    for d in (here, *here.parents):
        if d != here and d in stop:
            break
        dotgit = d / ".git"
        if dotgit.is_dir() and _is_git_dir(dotgit):
            return GitRepo(dotgit, _common_dir(dotgit), d)
        if dotgit.is_file():
            text = dotgit.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                own = (d / text[len("gitdir:"):].strip()).resolve()
                if _is_git_dir(own):
                    return GitRepo(own, _common_dir(own), d)
        if _is_git_dir(d) and d.name != ".git":
            return GitRepo(d, _common_dir(d), None)
        if d.name == ".git" and _is_git_dir(d):
            return GitRepo(d, _common_dir(d), d.parent)
    raise NotARepositoryError(
        f"not a git repository (or any parent up to /): {start}; run `git init` first")
