"""The git index: is a path tracked, stage files, keep the data path ignored."""

from __future__ import annotations

from mlgit.errors import BadPathError
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import atomic_write

__all__ = ["ensure_ignored", "stage", "tracked_under"]


def tracked_under(repo: GitRepo, rel: str) -> list[str]:
    """Index entries at ``rel`` or below it."""
    prefix = rel.rstrip("/") + "/"
    return [e.path for e in repo.git.index if e.path == rel or e.path.startswith(prefix)]


def stage(repo: GitRepo, rels: list[str]) -> None:
    """``git add`` these work-tree paths."""
    index = repo.git.index
    index.read()
    for rel in rels:
        index.add(rel)
    index.write()


def ensure_ignored(repo: GitRepo, rel: str) -> str:
    """Add ``/<name>`` to the ``.gitignore`` beside ``rel``; return that .gitignore's path.

    Leaves the file alone when the line is already there.
    """
    work = repo.require_workdir()
    parent, _, name = rel.rstrip("/").rpartition("/")
    if any(c in name for c in "*?[]!#\\\n") or name.startswith(" ") or name.endswith(" "):
        raise BadPathError(f"{rel!r} has characters a .gitignore pattern cannot hold literally")
    ignore_rel = f"{parent}/.gitignore" if parent else ".gitignore"
    path = work / ignore_rel
    line = f"/{name}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    if line not in text.splitlines():
        sep = "" if not text or text.endswith("\n") else "\n"
        atomic_write(path, (text + sep + line + "\n").encode())
    return ignore_rel
