"""Reading trees: flatten, diff, and look up a path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mlgit.errors import BadPathError
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry

__all__ = ["Change", "TreeGetter", "diff_trees", "flatten", "lookup"]

TreeGetter = Callable[[bytes], list[TreeEntry]]
"""Returns the entries of a tree by raw id (the store's, or an in-memory one)."""


@dataclass(frozen=True)
class Change:
    """One path that differs: ``status`` is A (added), D (removed), M (modified), T (type)."""

    status: str
    path: str
    old_size: int | None
    new_size: int | None

    def to_json(self) -> dict[str, object]:
        """JSON form, as ``git ml diff --json`` prints it."""
        return {"status": self.status, "path": self.path, "old_size": self.old_size,
                "new_size": self.new_size}


def _join(prefix: str, name: bytes) -> str:
    n = os.fsdecode(name)
    return f"{prefix}/{n}" if prefix else n


def flatten(get: TreeGetter, root: bytes, prefix: str = "",
            dirs: bool = False) -> Iterator[tuple[str, TreeEntry]]:
    """Every file and symlink below ``root`` as (path, entry), in path order.

    With ``dirs=True`` directories are yielded too (before their contents).
    """
    for e in get(root):
        path = _join(prefix, e.name)
        if e.type == TYPE_DIR:
            if dirs:
                yield path, e
            yield from flatten(get, e.subtree, path, dirs)
        else:
            yield path, e


def _same(a: TreeEntry, b: TreeEntry) -> bool:
    if a.type != b.type:
        return False
    if a.type == TYPE_FILE:
        return a.digest == b.digest and a.executable == b.executable
    if a.type == TYPE_DIR:
        return a.subtree == b.subtree
    return a.target == b.target


def diff_trees(get_a: TreeGetter, a: bytes | None, get_b: TreeGetter, b: bytes | None,
               prefix: str = "") -> Iterator[Change]:
    """Files and symlinks that differ between two trees (None: an empty tree), in path order.

    Identical subtrees are skipped without being read.
    """
    if a == b:
        return
    ea = {e.name: e for e in get_a(a)} if a is not None else {}
    eb = {e.name: e for e in get_b(b)} if b is not None else {}
    for name in sorted(ea.keys() | eb.keys()):
        x, y = ea.get(name), eb.get(name)
        path = _join(prefix, name)
        if x is not None and y is not None and _same(x, y):
            continue
        xd = x is not None and x.type == TYPE_DIR
        yd = y is not None and y.type == TYPE_DIR
        if xd or yd:
            if x is not None and not xd:
                yield Change("D", path, x.size, None)
            yield from diff_trees(get_a, x.subtree if xd and x else None,
                                  get_b, y.subtree if yd and y else None, path)
            if y is not None and not yd:
                yield Change("A", path, None, y.size)
        elif x is None:
            assert y is not None
            yield Change("A", path, None, y.size)
        elif y is None:
            yield Change("D", path, x.size, None)
        else:
            yield Change("M" if x.type == y.type else "T", path, x.size, y.size)


def lookup(get: TreeGetter, root: bytes, path: str) -> TreeEntry:
    """The entry at ``path`` (``/``-separated, relative) below ``root``; BadPathError if none."""
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        raise BadPathError("path names the snapshot's root, not a file")
    tree = root
    for i, part in enumerate(parts):
        found = next((e for e in get(tree) if e.name == os.fsencode(part)), None)
        if found is None:
            raise BadPathError(f"{path!r} is not in the snapshot")
        if i == len(parts) - 1:
            return found
        if found.type != TYPE_DIR:
            raise BadPathError(f"{'/'.join(parts[: i + 1])!r} is not a directory in the snapshot")
        tree = found.subtree
    raise AssertionError("unreachable")
