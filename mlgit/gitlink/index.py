"""The git index: is a path tracked, which pointer files does git know, stage files.

Queries run the real ``git ls-files`` (a few milliseconds); staging goes
through pygit2 and happens only when the staged blob differs from the file.
"""

from __future__ import annotations

import hashlib

from mlgit.errors import BadPathError
from mlgit.format.pointer import POINTER_SUFFIX
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import atomic_write

__all__ = ["ensure_ignored", "indexed_pointers", "stage", "tracked_under"]


def _split(out: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


def tracked_under(repo: GitRepo, rel: str) -> list[str]:
    """Index entries at ``rel`` or below it."""
    return _split(repo.run_git("ls-files", "-z", "--", f":(literal){rel}"))


def indexed_pointers(repo: GitRepo) -> list[str]:
    """Every pointer file (``*.mlgit``) in the git index."""
    return [p for p in _split(repo.run_git("ls-files", "-z", "--", f":(glob)**/*{POINTER_SUFFIX}"))
            if p.endswith(POINTER_SUFFIX)]


def _blob_id(data: bytes, hex_len: int) -> str:
    h = hashlib.sha256() if hex_len == 64 else hashlib.sha1()  # git object id, not security
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def stage(repo: GitRepo, rels: list[str]) -> None:
    """``git add`` these work-tree paths, unless the index already holds their content."""
    work = repo.require_workdir()
    staged = {}
    for line in repo.run_git("ls-files", "-s", "-z", "--",
                             *(f":(literal){r}" for r in rels)).split(b"\0"):
        if line:
            meta, _, path = line.partition(b"\t")
            staged[path.decode("utf-8", "surrogateescape")] = meta.split()[1].decode()
    todo = [r for r in rels
            if r not in staged or _blob_id((work / r).read_bytes(), len(staged[r])) != staged[r]]
    if not todo:
        return
    index = repo.git.index
    index.read()
    for rel in todo:
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
