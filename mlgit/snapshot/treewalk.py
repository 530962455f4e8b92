"""Reading trees: flatten, diff, and look up a path.

Every walk is iterative (an explicit stack), so no tree is too deep to walk, and
checked as it goes (:mod:`mlgit.format.treeshape`): each subtree it enters must
hold what its directory entry claims, it nests at most ``MAX_TREE_DEPTH`` levels,
and the walk creates at most ``MAX_EMPTY_DIRS`` directories that hold no file.
Given the root's claims (a snapshot's ``files`` and ``bytes``), a walk's work is
bounded by what the snapshot legitimately holds, however its trees are shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from mlgit.errors import BadPathError, FormatError
from mlgit.format.ids import RawObjectID
from mlgit.format.limits import MAX_EMPTY_DIRS, MAX_TREE_DEPTH
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry
from mlgit.format.treeshape import check_claim, check_root, short_path, totals

__all__ = ["Change", "Checked", "TreeGetter", "diff_trees", "flatten", "lookup", "walk"]

TreeGetter = Callable[[RawObjectID], list[TreeEntry]]
"""Returns the entries of a tree by raw id (the store's, or an in-memory one)."""

Claim = tuple[int, int]
"""What a snapshot says its root tree holds: (files, bytes)."""

P = TypeVar("P", str, bytes)


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


class Checked:
    """One walk's reads of one tree, each checked: a getter that refuses a hostile shape.

    :meth:`root` checks the root's totals against the snapshot's claims;
    :meth:`below` checks a subtree against its directory entry, the depth, and
    (counting every directory entered that holds no file) the empty-directory
    budget. ``where`` prefixes messages (e.g. ``snapshot <id>``); paths in them are
    shown relative to ``base`` (the directory a walk builds its paths under).
    """

    __slots__ = ("base", "empty", "get", "where")

    def __init__(self, get: TreeGetter, where: str = "", base: str | bytes = "") -> None:
        self.get = get
        self.where = where
        self.base = base
        self.empty = 0

    def _shown(self, path: str | bytes) -> str | bytes:
        """``path`` relative to ``base``, for a message."""
        base = self.base
        if isinstance(path, bytes) and isinstance(base, bytes) and base and path.startswith(base):
            return path[len(base):].lstrip(b"/")
        if isinstance(path, str) and isinstance(base, str) and base and path.startswith(base):
            return path[len(base):].lstrip("/")
        return path

    def root(self, tree: RawObjectID, claim: Claim | None) -> list[TreeEntry]:
        """The root tree's entries; FormatError unless they hold ``claim`` (when given).

        Without a claim the root must still hold no more than a snapshot may
        (MAX_FILES, MAX_SNAPSHOT_BYTES), which bounds the walk just as well.
        """
        entries = self.get(tree)
        if claim is None:
            claim = totals(entries)
        check_root(entries, claim[0], claim[1], self.where)
        return entries

    def below(self, e: TreeEntry, depth: int, path: str | bytes) -> list[TreeEntry]:
        """Dir entry ``e``'s subtree, whose entries sit ``depth`` levels below the root.

        FormatError past MAX_TREE_DEPTH, past MAX_EMPTY_DIRS directories without
        files, or if the subtree does not hold what ``e`` claims.
        """
        if depth > MAX_TREE_DEPTH:
            raise FormatError(f"{self.where + ': ' if self.where else ''}directories nest "
                              f"deeper than the format's limit of {MAX_TREE_DEPTH} at "
                              f"{short_path(self._shown(path))}")
        if e.files == 0:
            self.empty += 1
            if self.empty > MAX_EMPTY_DIRS:
                raise FormatError(f"{self.where + ': ' if self.where else ''}the tree holds "
                                  f"more than {MAX_EMPTY_DIRS} directories without files")
        entries = self.get(e.subtree)
        check_claim(entries, e, self._shown(path), self.where)
        return entries


def _join(prefix: str, name: bytes) -> str:
    n = os.fsdecode(name)
    return f"{prefix}/{n}" if prefix else n


def walk(get: TreeGetter | Checked, root: RawObjectID, base: P, join: Callable[[P, bytes], P], *,
         claim: Claim | None = None, dirs: bool = True) -> Iterator[tuple[P, TreeEntry]]:
    """Every entry below ``root`` as (path, entry), in path order, paths built by ``join``.

    With ``dirs`` a directory is yielded before its contents and every directory
    is entered; without, only files and symlinks are yielded and a directory whose
    entry claims no file is not entered (it can hold nothing to yield). Checked as
    :class:`Checked` says; ``claim`` is what the root must hold.
    """
    check = get if isinstance(get, Checked) else Checked(get)
    stack: list[tuple[Iterator[TreeEntry], P, int]] = [
        (iter(check.root(root, claim)), base, 1)]
    while stack:
        entries, prefix, depth = stack.pop()
        for e in entries:
            path = join(prefix, e.name)
            if e.type != TYPE_DIR:
                yield path, e
                continue
            if dirs:
                yield path, e
            elif e.files == 0:
                continue
            # Descend; this directory's remaining entries resume after the subtree's.
            stack.append((entries, prefix, depth))
            stack.append((iter(check.below(e, depth, path)), path, depth + 1))
            break


def flatten(get: TreeGetter, root: RawObjectID, prefix: str = "", dirs: bool = False,
            claim: Claim | None = None, where: str = "") -> Iterator[tuple[str, TreeEntry]]:
    """Every file and symlink below ``root`` as (path, entry), in path order.

    With ``dirs=True`` directories are yielded too (before their contents).
    ``claim`` is the snapshot's (files, bytes) for the root; see :func:`walk`.
    """
    return walk(Checked(get, where), root, prefix, _join, claim=claim, dirs=dirs)


def _same(a: TreeEntry, b: TreeEntry) -> bool:
    if a.type != b.type:
        return False
    if a.type == TYPE_FILE:
        return a.digest == b.digest and a.executable == b.executable
    if a.type == TYPE_DIR:
        return a.subtree == b.subtree
    return a.target == b.target


_Sub = tuple[TreeEntry | None, TreeEntry | None, str]
"""A pair of directories still to compare: (old entry or None, new entry or None, path)."""


def _diff_level(ea: list[TreeEntry], eb: list[TreeEntry], prefix: str) -> list[Change | _Sub]:
    """What differs between two directories' entries, with the subdirectories to compare.

    A side whose directory claims no file is left out of the comparison (it can
    contribute no change).
    """
    da = {e.name: e for e in ea}
    db = {e.name: e for e in eb}
    out: list[Change | _Sub] = []
    for name in sorted(da.keys() | db.keys()):
        x, y = da.get(name), db.get(name)
        if x is not None and y is not None and _same(x, y):
            continue
        path = _join(prefix, name)
        xd = x is not None and x.type == TYPE_DIR
        yd = y is not None and y.type == TYPE_DIR
        if xd or yd:
            if x is not None and not xd:
                out.append(Change("D", path, x.size, None))
            xs = x if xd and x is not None and x.files else None
            ys = y if yd and y is not None and y.files else None
            if xs is not None or ys is not None:
                out.append((xs, ys, path))
            if y is not None and not yd:
                out.append(Change("A", path, None, y.size))
        elif x is None:
            assert y is not None
            out.append(Change("A", path, None, y.size))
        elif y is None:
            out.append(Change("D", path, x.size, None))
        else:
            out.append(Change("M" if x.type == y.type else "T", path, x.size, y.size))
    return out


def diff_trees(get_a: TreeGetter, a: RawObjectID | None, get_b: TreeGetter, b: RawObjectID | None,
               prefix: str = "", claims: tuple[Claim | None, Claim | None] = (None, None),
               where: tuple[str, str] = ("", "")) -> Iterator[Change]:
    """Files and symlinks that differ between two trees (None: an empty tree), in path order.

    Identical subtrees are skipped without being read. ``claims`` are the two
    snapshots' (files, bytes) for the roots; every subtree read is checked as
    :class:`Checked` says.
    """
    if a == b:
        return
    ca, cb = Checked(get_a, where[0]), Checked(get_b, where[1])
    ea = ca.root(a, claims[0]) if a is not None else []
    eb = cb.root(b, claims[1]) if b is not None else []
    stack: list[Iterator[Change | _Sub]] = [iter(_diff_level(ea, eb, prefix))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        if isinstance(item, Change):
            yield item
            continue
        x, y, path = item
        depth = len(stack)
        sa = ca.below(x, depth, path) if x is not None else []
        sb = cb.below(y, depth, path) if y is not None else []
        stack.append(iter(_diff_level(sa, sb, path)))


def lookup(get: TreeGetter, root: RawObjectID, path: str) -> TreeEntry:
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
