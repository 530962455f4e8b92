"""Pointer files in the work tree and in the git index."""

from __future__ import annotations

import os
from pathlib import Path

from mlgit.errors import PointerError
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, decode_pointer, encode_pointer
from mlgit.gitlink.index import indexed_pointers
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import atomic_write

__all__ = ["list_pointers", "pointer_path_for", "read_pointer", "tracked_path_for",
           "write_pointer"]


def pointer_path_for(rel: str) -> str:
    """The pointer file's path for a tracked path (both relative to the work tree)."""
    return rel.rstrip("/") + POINTER_SUFFIX


def tracked_path_for(pointer_rel: str) -> str:
    """The tracked data path for a pointer file's path."""
    return pointer_rel[: -len(POINTER_SUFFIX)]


def read_pointer(repo: GitRepo, pointer_rel: str) -> Pointer | None:
    """The pointer at ``pointer_rel`` in the work tree; None if absent, PointerError if bad."""
    path = repo.require_workdir() / pointer_rel
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise PointerError(f"{pointer_rel} is a directory, not a pointer file") from None
    return decode_pointer(data, pointer_rel)


def write_pointer(repo: GitRepo, pointer_rel: str, p: Pointer) -> None:
    """Write a pointer file atomically (nothing is written when it already says this)."""
    path = repo.require_workdir() / pointer_rel
    data = encode_pointer(p)
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write(path, data)


def list_pointers(repo: GitRepo) -> list[str]:
    """Pointer files git knows (in the index) plus any in the work tree's top levels.

    Sorted, relative to the work tree.
    """
    found = set(indexed_pointers(repo))
    work = repo.require_workdir()
    for e in os.scandir(work):
        if e.name.endswith(POINTER_SUFFIX) and e.is_file(follow_symlinks=False):
            found.add(e.name)
    return sorted(p for p in found if (Path(work) / p).is_file())
