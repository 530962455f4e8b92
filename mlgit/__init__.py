"""git-ml: version datasets and ML checkpoints the way git versions code.

The Python surface (every function takes ``repo``: a path inside the git
repository, default the current directory)::

    import mlgit
    path = mlgit.checkout("data~1")          # a local copy of that version, to read
    with mlgit.open("data", "train/x.csv") as f: ...   # stream one file, no copy
    mlgit.prefetch("data", ["train/"])        # fetch many files lazily in one transfer
    mlgit.add("data/", message="v2")          # snapshot a directory (like `git ml add`)
    mlgit.show("data").snapshot.parents
    [e.name for e in mlgit.ls()]

Errors are :class:`mlgit.errors.MlgitError` subclasses with one-line messages.
TensorFlow support is ``mlgit.tf``, imported only when used (``import mlgit.tf``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlgit.api.repo import AddResult, ListEntry, Repo, SnapshotInfo
from mlgit.errors import MlgitError

if TYPE_CHECKING:
    from mlgit.api.checkpoints import CkptResult


def __getattr__(name: str) -> Any:
    """Load rarely used names on first use (keeps ``git ml status`` start-up short)."""
    if name == "CkptResult":
        from mlgit.api.checkpoints import CkptResult

        return CkptResult
    raise AttributeError(f"module 'mlgit' has no attribute {name!r}")

__all__ = ["AddResult", "CkptResult", "ListEntry", "MlgitError", "Repo", "SnapshotInfo",
           "__version__", "add", "checkout", "commit_ckpt", "latest_checkpoint", "ls", "open",
           "prefetch", "release", "show"]
__version__ = "0.1.0"

RepoPath = str | os.PathLike[str] | None


def checkout(rev: str, repo: RepoPath = None, *, worktree: bool = True) -> Path:
    """Path of a local copy of snapshot ``rev``, to read and never to write to.

    When a tracked path of the work tree pins exactly ``rev`` and is clean, that
    path (the work tree's own copy: it changes when the work tree does; pass
    ``worktree=False`` for a copy that never changes). Otherwise a read-only
    checkout under ``.git/ml/checkouts/``, materialized once and reused, which
    stays in place while this process runs (no eviction or ``git ml gc`` removes
    it) or until :func:`release`. Safe to call from several processes at once:
    each gets a complete tree. For a snapshot of a single file the path is that file.
    """
    with Repo(repo) as r:
        return r.checkout(rev, worktree=worktree)


def release(path: str | os.PathLike[str]) -> bool:
    """Let eviction and gc remove the read-only checkout holding ``path`` again.

    ``path`` is one :func:`checkout` returned (or a path inside it); True if this
    process held it. The path may vanish at the next eviction (making a new
    checkout past ``ml.checkouts.maxSize``, or ``git ml gc``).
    """
    from mlgit.api.copies import release as release_checkout

    return release_checkout(path)


def add(path: str | os.PathLike[str], *, name: str | None = None, message: str = "",
        repo: RepoPath = None) -> AddResult:
    """Snapshot ``path`` as a dataset, as ``git ml add`` does; return the result."""
    with Repo(repo if repo is not None else Path(path).absolute().parent) as r:
        return r.add([Path(path).absolute()], name=name, message=message)[0]


def open(rev: str, path: str = "", repo: RepoPath = None) -> BinaryIO:
    """A binary file object over ``path`` in snapshot ``rev`` that reads chunks on demand.

    The file owns the repository handle it opened: closing it (``close()``, the
    end of a ``with`` block, or garbage collection) releases every file
    descriptor, so a loop over many files holds a constant number. To read many
    files, :meth:`Repo.open` on one long-lived ``Repo`` shares its store.
    """
    r = Repo(repo)
    try:
        return r.open(rev, path, close_repo=True)
    except BaseException:
        r.close()
        raise


def prefetch(rev: str, paths: list[str] | None = None, repo: RepoPath = None) -> int:
    """Fetch in one go what :func:`open` would fetch file by file; return the chunks fetched.

    ``paths`` are files or directories of snapshot ``rev`` (None: all of it).
    Then ``mlgit.open`` over those files reads only the local store.
    """
    with Repo(repo) as r:
        return r.prefetch(rev, paths)


def commit_ckpt(path: str | os.PathLike[str], *, run: str, step: int | None = None,
                metrics: dict[str, float] | None = None,
                config_files: list[str | os.PathLike[str]] | None = None, message: str = "",
                datasets: list[str] | None = None, parent: str | None = None,
                repo: RepoPath = None) -> CkptResult:
    """Store a checkpoint with its lineage, as ``git ml commit-ckpt`` does."""
    with Repo(repo) as r:
        return r.commit_ckpt(path, run=run, step=step, metrics=metrics,
                             config_files=config_files, message=message, datasets=datasets,
                             parent=parent)


def latest_checkpoint(run: str, repo: RepoPath = None) -> Path:
    """Path of ``run``'s newest checkpoint (read-only), e.g. to resume training."""
    with Repo(repo) as r:
        return r.latest_checkpoint(run)


def show(rev: str, repo: RepoPath = None, files: bool = True) -> SnapshotInfo:
    """Snapshot ``rev`` with its metadata (and file list unless ``files`` is False)."""
    with Repo(repo) as r:
        return r.show(rev, files=files)


def ls(repo: RepoPath = None) -> list[ListEntry]:
    """Every dataset and checkpoint run with its newest snapshot."""
    with Repo(repo) as r:
        return r.ls()
