"""Walk a directory (or one file) with lstat only: the raw material of a snapshot.

Never follows a symlink. Sockets, fifos and devices are skipped with a
warning, and so is any entry that names a git directory (``.git`` in any case, and
the forms git's ``core.protectNTFS``/``protectHFS`` refuse: ``is_git_dir_name``),
which no tree may hold. Iterative: no directory is too deep to scan, but one
nested deeper than MAX_TREE_DEPTH levels is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from mlgit.errors import BadPathError
from mlgit.format.limits import MAX_TREE_DEPTH
from mlgit.format.paths import is_git_dir_name

__all__ = ["TMP_PREFIX", "DirNode", "FileStat", "is_skipped", "scan_dir", "scan_file"]

TMP_PREFIX = b".mlgit."
"""Names of temporary files checkout writes beside their targets; scans skip them."""


class FileStat(NamedTuple):
    """What the stat cache keys a regular file on (a plain tuple, for speed)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    executable: bool

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        """Build from an ``os.stat_result``."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                   bool(st.st_mode & 0o100))


@dataclass(slots=True)
class DirNode:
    """One scanned directory: its regular files, symlinks and subdirectories by name."""

    path: bytes
    rel: str
    files: dict[bytes, FileStat] = field(default_factory=dict)
    links: dict[bytes, bytes] = field(default_factory=dict)
    dirs: dict[bytes, DirNode] = field(default_factory=dict)

    def walk(self) -> list[DirNode]:
        """Return this node and every node below it, parents before children (pre-order)."""
        out: list[DirNode] = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.dirs.values()))
        return out


_GIT_FIRST = frozenset(b".gG\xe2\xef")
"""First bytes a name ``is_git_dir_name`` accepts can start with (``.``, ``g``/``G`` of an
NTFS ``git~1``, an HFS-ignorable code point), unless it holds a ``\\``: a cheap test
that spares the full one for almost every name of a large scan. ``TMP_PREFIX`` starts
with ``.`` too."""


def is_skipped(name: bytes) -> bool:
    """Whether a scan skips the entry ``name`` whatever it is, warning about it.

    A name git reserves for a git directory, or a temporary file an interrupted
    checkout left (:func:`scan_dir` warns about each).
    """
    if name[0] not in _GIT_FIRST and b"\\" not in name:
        return False
    return is_git_dir_name(name) or (name.startswith(TMP_PREFIX) and name.endswith(b".tmp"))


def _rel(rel: str, name: bytes) -> str:
    return f"{rel}/{os.fsdecode(name)}" if rel else os.fsdecode(name)


def scan_dir(path: bytes, warn: Callable[[str], None], rel: str = "",
             only: frozenset[bytes] | None = None) -> DirNode:
    """Scan the directory at ``path`` and everything below it (its top level limited to ``only``).

    Iterative, so any depth is walked; a directory nested deeper than
    MAX_TREE_DEPTH levels below ``path`` is a BadPathError (no snapshot may hold it).
    """
    root = DirNode(path, rel)
    stack: list[tuple[DirNode, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        subdirs = _scan_one(node, warn, only if node is root else None)
        if subdirs and depth + 1 > MAX_TREE_DEPTH:
            from mlgit.format.treeshape import short_path  # start-up time: errors only

            where = _rel(node.rel, next(iter(subdirs)))
            raise BadPathError(
                f"{os.fsdecode(path)}: directories nest deeper than {MAX_TREE_DEPTH} levels "
                f"(at {short_path(where)}); git-ml stores at most {MAX_TREE_DEPTH}")
        stack.extend((child, depth + 1) for child in reversed(subdirs.values()))
    return root


def _scan_one(node: DirNode, warn: Callable[[str], None],
              only: frozenset[bytes] | None) -> dict[bytes, DirNode]:
    """Fill ``node`` from one directory listing; return its new subdirectory nodes (unscanned)."""
    path, rel = node.path, node.rel
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    if only is not None:
        entries = [e for e in entries if os.fsencode(e.name) in only]
    for e in entries:
        name: bytes = e.name if isinstance(e.name, bytes) else os.fsencode(e.name)
        if name[0] in _GIT_FIRST or b"\\" in name:  # cheap: most names go straight on
            if is_git_dir_name(name):
                warn(f"skipping {_rel(rel, name)}: a nested git directory (or a name git "
                     "reserves for one)")
                continue
            if name.startswith(TMP_PREFIX) and name.endswith(b".tmp"):
                warn(f"skipping {_rel(rel, name)}: left behind by an interrupted git-ml "
                     "checkout")
                continue
        st = e.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            node.files[name] = FileStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                                        bool(mode & 0o100))
        elif stat.S_ISDIR(mode):
            node.dirs[name] = DirNode(os.path.join(path, name), _rel(rel, name))
        elif stat.S_ISLNK(mode):
            node.links[name] = os.readlink(os.path.join(path, name))
        else:
            warn(f"skipping {_rel(rel, name)}: not a regular file, directory or symlink")
    return node.dirs


def scan_file(path: bytes) -> DirNode:
    """A one-entry node for a single regular file (a file dataset or checkpoint).

    A file snapshot holds exactly one regular file (docs/format.md), so a symlink
    or anything else is a BadPathError.
    """
    parent, name = os.path.split(path)
    node = DirNode(parent or b".", "")
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise BadPathError(f"{os.fsdecode(path)} is {what}; store the file itself")
    node.files[name] = FileStat.of(st)
    return node
