"""Walk a directory (or one file) with lstat only: the raw material of a snapshot.

Never follows a symlink. Sockets, fifos and devices are skipped with a
warning, and so is any entry named ``.git`` (a nested repository).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["TMP_PREFIX", "DirNode", "FileStat", "scan_dir", "scan_file"]

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
        """Return this node and every node below it, parents before children."""
        out = [self]
        for d in self.dirs.values():
            out.extend(d.walk())
        return out


def _rel(rel: str, name: bytes) -> str:
    return f"{rel}/{os.fsdecode(name)}" if rel else os.fsdecode(name)


def scan_dir(path: bytes, warn: Callable[[str], None], rel: str = "",
             only: frozenset[bytes] | None = None) -> DirNode:
    """Scan the directory at ``path`` recursively (its top level limited to ``only``, if given)."""
    node = DirNode(path, rel)
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    if only is not None:
        entries = [e for e in entries if os.fsencode(e.name) in only]
    for e in entries:
        name: bytes = e.name if isinstance(e.name, bytes) else os.fsencode(e.name)
        if name.lower() == b".git":
            warn(f"skipping {_rel(rel, name)}: nested git directory")
            continue
        if name.startswith(TMP_PREFIX) and name.endswith(b".tmp"):
            warn(f"skipping {_rel(rel, name)}: left behind by an interrupted git-ml checkout")
            continue
        st = e.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            node.files[name] = FileStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                                        bool(mode & 0o100))
        elif stat.S_ISDIR(mode):
            node.dirs[name] = scan_dir(os.path.join(path, name), warn, _rel(rel, name))
        elif stat.S_ISLNK(mode):
            node.links[name] = os.readlink(os.path.join(path, name))
        else:
            warn(f"skipping {_rel(rel, name)}: not a regular file, directory or symlink")
    return node


def scan_file(path: bytes) -> DirNode:
    """A one-entry node for a single regular file or symlink (a file dataset)."""
    parent, name = os.path.split(path)
    node = DirNode(parent or b".", "")
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        node.links[name] = os.readlink(path)
    else:
        node.files[name] = FileStat.of(st)
    return node
