"""Finding the git repository and its work tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from mlgit.errors import BadPathError, NotARepositoryError

__all__ = ["GitRepo", "discover"]


@dataclass
class GitRepo:
    """A git repository: its pygit2 handle, git dir and work tree (None if bare)."""

    git: pygit2.Repository
    git_dir: Path
    workdir: Path | None

    @property
    def ml_dir(self) -> Path:
        """Where the sidecar store lives: ``<git dir>/ml``."""
        return self.git_dir / "ml"

    def require_workdir(self) -> Path:
        """The work tree; BadPathError in a bare repository."""
        if self.workdir is None:
            raise BadPathError("this command needs a work tree, and this repository is bare")
        return self.workdir

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
        if (rel.parts and rel.parts[0] == ".git") or full == self.git_dir or (
            self.git_dir in full.parents
        ):
            raise BadPathError(f"{path} is inside the git directory")
        return rel.as_posix()


def discover(start: Path) -> GitRepo:
    """The repository containing ``start``; NotARepositoryError if there is none."""
    found = pygit2.discover_repository(str(start))
    if found is None:
        raise NotARepositoryError(
            f"not a git repository (or any parent up to /): {start}; run `git init` first"
        )
    repo = pygit2.Repository(found)
    git_dir = Path(repo.path).resolve()
    common = git_dir / "commondir"
    if common.is_file():  # a linked worktree shares the main repository's store
        git_dir = (git_dir / common.read_text().strip()).resolve()
    workdir = Path(repo.workdir).resolve() if repo.workdir else None
    return GitRepo(repo, git_dir, workdir)
