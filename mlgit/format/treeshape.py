"""The shape a snapshot's tree must have (docs/format.md, "Tree", "Shape").

Trees are content-addressed, so one tree may be referenced any number of times:
sixty tree objects that each name the next one twice describe 2**60 paths. What a
walk may enumerate is therefore bounded by what the snapshot claims, and each
claim is checked where a walk reaches it:

- a directory entry's ``files`` and ``size`` equal the totals of its subtree's
  entries (:func:`totals`, which takes each subdirectory entry's own claim; checked
  level by level, the claims are exact all the way down);
- the root tree's totals equal the snapshot's ``files`` and ``bytes``, at most
  ``MAX_FILES`` and ``MAX_SNAPSHOT_BYTES``;
- directories nest at most ``MAX_TREE_DEPTH`` levels below the root;
- at most ``MAX_EMPTY_DIRS`` directory paths hold no file (nothing else bounds them);
- a ``root: "file"`` snapshot's tree holds exactly one entry, a regular file.

A walk that enumerates files therefore does work bounded by the snapshot's
``files`` times the depth, and one that creates directories by that plus
``MAX_EMPTY_DIRS``. :func:`shape` measures depth and empty directories over the
distinct trees only (memoized, iterative, cycle-safe), so a walk can refuse a
hostile tree before it enumerates anything.

Pure functions over tree entries (and, for :func:`shape`, a function returning a
tree's entries); they raise FormatError and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from mlgit.errors import FormatError
from mlgit.format.ids import RawObjectID, raw_to_hex
from mlgit.format.limits import MAX_EMPTY_DIRS, MAX_FILES, MAX_SNAPSHOT_BYTES, MAX_TREE_DEPTH
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry

__all__ = ["Node", "Shape", "check_claim", "check_limits", "check_root", "check_shape",
           "file_root_entry", "shape", "shape_of", "short_path", "totals"]

_CAP = 1 << 62
"""Counts past this are kept at it: past every limit, and ints stay small."""


def short_path(path: str | bytes, limit: int = 160) -> str:
    """``path`` for a one-line message: decoded, and cut in the middle when long."""
    text = os.fsdecode(path) if isinstance(path, bytes) else path
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    if len(text) <= limit:
        return repr(text)
    return repr(f"{text[: limit // 2]}...{text[-limit // 2:]}")


def totals(entries: list[TreeEntry]) -> tuple[int, int]:
    """(files, bytes) a tree with these entries holds, as its directory entry must claim.

    Files and symlinks count one file each (their own entry) and subdirectories
    their entry's ``files``; bytes are regular files' sizes and subdirectories'
    ``size`` (symlink targets are not counted).
    """
    files = 0
    nbytes = 0
    for e in entries:
        t = e.type
        if t == TYPE_DIR:
            files += e.files
            nbytes += e.size
        else:
            files += 1
            if t == TYPE_FILE:
                nbytes += e.size
    return files, nbytes


def check_claim(entries: list[TreeEntry], e: TreeEntry, path: str | bytes,
                where: str = "") -> None:
    """FormatError unless dir entry ``e`` (at ``path``) claims what its subtree ``entries`` hold."""
    files, nbytes = totals(entries)
    if files != e.files or nbytes != e.size:
        raise FormatError(
            f"{where + ': ' if where else ''}directory {short_path(path)} claims {e.files} "
            f"files and {e.size} bytes but its tree {raw_to_hex(e.subtree)} holds {files} files "
            f"and {nbytes} bytes")


def check_root(entries: list[TreeEntry], files: int, nbytes: int, where: str = "") -> None:
    """FormatError unless a root tree's ``entries`` hold what its snapshot claims.

    The claims must also be within MAX_FILES and MAX_SNAPSHOT_BYTES, which bounds
    every walk below (each subtree's claims are checked against these).
    """
    got_files, got_bytes = totals(entries)
    label = f"{where}: " if where else ""
    if got_files != files or got_bytes != nbytes:
        raise FormatError(f"{label}the snapshot claims {files} files and {nbytes} bytes but "
                          f"its tree holds {got_files} files and {got_bytes} bytes")
    if files > MAX_FILES or nbytes > MAX_SNAPSHOT_BYTES:
        raise FormatError(f"{label}the snapshot claims {files} files and {nbytes} bytes, "
                          f"past the format's limits ({MAX_FILES} files, "
                          f"{MAX_SNAPSHOT_BYTES} bytes)")


def file_root_entry(entries: list[TreeEntry], where: str = "") -> TreeEntry:
    """The one entry of a ``root: "file"`` snapshot's tree; FormatError unless a regular file."""
    if len(entries) != 1 or entries[0].type != TYPE_FILE:
        kinds = {TYPE_DIR: "a directory", TYPE_FILE: "a file"}
        held = (f"{len(entries)} entries" if len(entries) != 1
                else kinds.get(entries[0].type, "a symlink"))
        raise FormatError(f"{where + ': ' if where else ''}a file snapshot must hold exactly "
                          f"one regular file; its tree holds {held}")
    return entries[0]


@dataclass(frozen=True, slots=True)
class Shape:
    """What a tree holds below it, counted per path (counts stop growing at 2**62).

    ``height``: directory levels; ``dirs``: directory paths; ``empty``: directory
    paths holding no file; ``files``: its own total (from its entries).
    """

    height: int
    dirs: int
    empty: int
    files: int


Node = tuple[int, list[RawObjectID]]
"""What :func:`shape_of` needs of one tree: (its files total, its subdirectories' tree ids)."""


def shape(get: Callable[[RawObjectID], list[TreeEntry]], root: RawObjectID,
          memo: dict[RawObjectID, Shape] | None = None) -> Shape:
    """The :class:`Shape` of tree ``root``; ``get`` returns a tree's entries by raw id.

    Each distinct tree is read once (twice through ``get``, which should cache),
    whatever the number of paths; ``memo`` may be shared between calls. A tree
    that contains itself (which only a hash collision could build) is a FormatError.
    """
    def node_of(tid: RawObjectID) -> Node:
        entries = get(tid)
        return totals(entries)[0], [e.subtree for e in entries if e.type == TYPE_DIR]

    return shape_of(node_of, root, memo)


def shape_of(node_of: Callable[[RawObjectID], Node], root: RawObjectID,
             memo: dict[RawObjectID, Shape] | None = None) -> Shape:
    """:func:`shape` over trees given as :data:`Node` (what fsck keeps of each tree)."""
    memo = {} if memo is None else memo
    open_: set[RawObjectID] = set()
    stack: list[tuple[RawObjectID, bool]] = [(root, False)]
    while stack:
        tid, finish = stack.pop()
        if finish:
            height = dirs = empty = 0
            files, subs = node_of(tid)
            for sub_id in subs:
                sub = memo[sub_id]
                height = max(height, sub.height + 1)
                dirs += 1 + sub.dirs
                empty += 1 + sub.dirs if sub.files == 0 else sub.empty
            memo[tid] = Shape(height, min(dirs, _CAP), min(empty, _CAP), min(files, _CAP))
            open_.discard(tid)
            continue
        if tid in memo:
            continue
        if tid in open_:
            raise FormatError(f"tree {raw_to_hex(tid)} contains itself")
        open_.add(tid)
        stack.append((tid, True))
        stack.extend((sub_id, False) for sub_id in node_of(tid)[1] if sub_id not in memo)
    return memo[root]


def check_shape(get: Callable[[RawObjectID], list[TreeEntry]], root: RawObjectID, where: str = "",
                memo: dict[RawObjectID, Shape] | None = None) -> Shape:
    """:func:`shape`, and FormatError past MAX_TREE_DEPTH levels or MAX_EMPTY_DIRS empty dirs."""
    return check_limits(shape(get, root, memo), where)


def check_limits(s: Shape, where: str = "") -> Shape:
    """``s``, or FormatError if it nests past MAX_TREE_DEPTH or has past MAX_EMPTY_DIRS."""
    label = f"{where}: " if where else ""
    if s.height > MAX_TREE_DEPTH:
        raise FormatError(f"{label}the tree nests {s.height} directories deep, more than the "
                          f"format's limit of {MAX_TREE_DEPTH}")
    if s.empty > MAX_EMPTY_DIRS:
        count = "more than 2**62" if s.empty >= _CAP else str(s.empty)
        raise FormatError(f"{label}the tree holds {count} directories without files, more "
                          f"than the format's limit of {MAX_EMPTY_DIRS}")
    return s
