"""Three-way merge of snapshot trees: what git-ml's merge driver does with two versions.

Given the trees of a common base and of two versions ("ours" and "theirs"), a
path changed on one side only takes that side; a path changed identically on
both sides takes that change; a path changed differently on both sides (content,
executable bit and content both, type, or deleted on one side and modified on
the other) is a :class:`Conflict`, and the merged tree holds ours at that path.
Directories changed on both sides are merged entry by entry; a file's content
and executable bit are merged separately.

The merge works on trees and file entries only: no chunk is read, and a
subtree that only one side changed is taken whole without being read. It is
iterative (an explicit stack, so any depth), and every tree it reads is checked
as the walks check them (:class:`~mlgit.snapshot.treewalk.Checked`: each subtree
against its entry's claims, the depth, the empty-directory budget), so its work
is bounded by what the three snapshots claim. :func:`verify_tree` then checks
the merged tree's shape (claims of the subtrees taken whole, depth, empty
directories) over its distinct trees, so a merge never writes a snapshot that a
reader would refuse.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlgit.format.ids import RawObjectID, digest_to_hex, raw_to_hex
from mlgit.format.tree import NO_SUBTREE, TYPE_DIR, TYPE_FILE, ChunkRef, TreeEntry
from mlgit.format.treeshape import (
    check_claim,
    check_root,
    check_shape,
    file_root_entry,
    totals,
)
from mlgit.snapshot.treewalk import Checked, TreeGetter

__all__ = ["BOTH_ADDED", "BOTH_MODIFIED", "DELETED_BY_THEM", "DELETED_BY_US", "TYPE_CHANGED",
           "Conflict", "MergeInput", "MergeResult", "merge_trees", "side_json", "verify_tree"]

BOTH_MODIFIED = "both-modified"
BOTH_ADDED = "both-added"
DELETED_BY_US = "deleted-by-us"
DELETED_BY_THEM = "deleted-by-them"
TYPE_CHANGED = "type-changed"

Claim = tuple[int, int]
TreePutter = Callable[[list[TreeEntry]], RawObjectID]
"""Stores a tree's entries and returns its raw id."""


@dataclass(frozen=True)
class MergeInput:
    """One side of a merge: its root tree (None: an empty tree), claims and label."""

    tree: RawObjectID | None
    claim: Claim | None = None
    where: str = ""


@dataclass(frozen=True)
class Conflict:
    """A path changed differently on both sides; each side's entry there (None: absent).

    ``kind`` is one of ``both-modified``, ``both-added``, ``deleted-by-us``,
    ``deleted-by-them`` and ``type-changed``. ``path`` is ``/``-separated,
    relative to the dataset's root (for a file dataset: the file's name).
    """

    path: str
    kind: str
    base: TreeEntry | None
    ours: TreeEntry | None
    theirs: TreeEntry | None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml status --json`` prints it (docs/cli.md, "Conflict object")."""
        return {"path": self.path, "kind": self.kind, "base": side_json(self.base),
                "ours": side_json(self.ours), "theirs": side_json(self.theirs)}


def side_json(e: TreeEntry | None) -> dict[str, Any] | None:
    """One side's entry at a conflicting path: type, size and id (None: absent there).

    The id is a file's content digest (XXH3-128 of its bytes), a directory's tree
    id, and None for a symlink.
    """
    if e is None:
        return None
    if e.type == TYPE_FILE:
        return {"type": "file", "size": e.size, "id": digest_to_hex(e.digest)}
    if e.type == TYPE_DIR:
        return {"type": "dir", "size": e.size, "id": raw_to_hex(e.subtree)}
    return {"type": "symlink", "size": e.size, "id": None}


@dataclass
class MergeResult:
    """The merged root tree (None unless built), its totals and the conflicts, in path order."""

    tree: RawObjectID | None
    files: int
    bytes: int
    conflicts: list[Conflict] = field(default_factory=list)


def _content(e: TreeEntry) -> tuple[int, bytes, bytes, tuple[ChunkRef, ...]]:
    """What an entry holds, apart from a file's executable bit."""
    if e.type == TYPE_FILE:
        return e.type, e.digest, b"", e.chunks
    if e.type == TYPE_DIR:
        return e.type, e.subtree, b"", ()
    return e.type, b"", e.target, ()


def _same(a: TreeEntry | None, b: TreeEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return _content(a) == _content(b) and (a.type != TYPE_FILE or a.executable == b.executable)


def _is_dir(e: TreeEntry | None) -> bool:
    return e is not None and e.type == TYPE_DIR


def _merge_files(b: TreeEntry, o: TreeEntry, t: TreeEntry) -> TreeEntry | None:
    """Three files merged attribute by attribute (content, executable bit); None if they clash."""
    cb, co, ct = _content(b), _content(o), _content(t)
    if co == ct or cb == ct:
        content = o
    elif cb == co:
        content = t
    else:
        return None
    xb, xo, xt = b.executable, o.executable, t.executable
    if xo == xt or xb == xt:
        executable = xo
    elif xb == xo:
        executable = xt
    else:
        return None
    return dataclasses.replace(content, name=o.name, executable=executable)


def _conflict_kind(b: TreeEntry | None, o: TreeEntry | None, t: TreeEntry | None) -> str:
    if o is None:
        return DELETED_BY_US
    if t is None:
        return DELETED_BY_THEM
    if b is None:
        return BOTH_ADDED
    return TYPE_CHANGED if o.type != t.type else BOTH_MODIFIED


def _join(prefix: str, name: bytes) -> str:
    n = os.fsdecode(name)
    return f"{prefix}/{n}" if prefix else n


@dataclass
class _Frame:
    """A directory being merged: its names left, each side's entries, what is merged so far."""

    names: Iterator[bytes]
    b: dict[bytes, TreeEntry]
    o: dict[bytes, TreeEntry]
    t: dict[bytes, TreeEntry]
    path: str
    depth: int
    name: bytes = b""
    keep: bool = True
    out: list[TreeEntry] = field(default_factory=list)


def _frame(eb: list[TreeEntry], eo: list[TreeEntry], et: list[TreeEntry], path: str,
           depth: int, name: bytes = b"", keep: bool = True) -> _Frame:
    b = {e.name: e for e in eb}
    o = {e.name: e for e in eo}
    t = {e.name: e for e in et}
    return _Frame(iter(sorted(b.keys() | o.keys() | t.keys())), b, o, t, path, depth, name,
                  keep)


def merge_trees(get: TreeGetter, base: MergeInput, ours: MergeInput, theirs: MergeInput, *,
                file_root: bool = False, put: TreePutter | None = None) -> MergeResult:
    """Merge ``theirs`` into ``ours`` against ``base``; see the module docstring.

    With ``put`` the merged tree is stored (bottom-up, one call per new tree) and
    its id returned; without, only the conflicts are worked out. ``file_root``:
    the trees are file snapshots' (one regular file each, whatever its name; the
    result is named as ours). FormatError if a tree read breaks the shape rules.
    """
    cb, co, ct = Checked(get, base.where), Checked(get, ours.where), Checked(get, theirs.where)
    eb = cb.root(base.tree, base.claim) if base.tree is not None else []
    eo = co.root(ours.tree, ours.claim) if ours.tree is not None else []
    et = ct.root(theirs.tree, theirs.claim) if theirs.tree is not None else []
    if file_root:
        return _merge_file_roots(eb, eo, et, base, ours, theirs, put)
    conflicts: list[Conflict] = []
    stack = [_frame(eb, eo, et, "", 1)]
    while True:
        f = stack[-1]
        name = next(f.names, None)
        if name is None:
            stack.pop()
            if not stack:
                break
            parent = stack[-1]
            if f.out or f.keep:
                files, nbytes = totals(f.out)
                sub = put(f.out) if put is not None else NO_SUBTREE
                parent.out.append(TreeEntry(f.name, TYPE_DIR, nbytes, subtree=sub, files=files))
            continue
        b, o, t = f.b.get(name), f.o.get(name), f.t.get(name)
        if _same(o, t) or _same(b, t):
            if o is not None:
                f.out.append(o)
            continue
        if _same(b, o):
            if t is not None:
                f.out.append(t)
            continue
        path = _join(f.path, name)
        if (o is None or _is_dir(o)) and (t is None or _is_dir(t)):
            # Both changed a directory (or one deleted it): merge what is inside. The
            # directory itself stays, when nothing is left in it, if its existence
            # merges to "there" (an empty directory is data too).
            d = f.depth
            xb, xo, xt = _is_dir(b), o is not None, t is not None
            stack.append(_frame(
                cb.below(b, d, path) if b is not None and xb else [],
                co.below(o, d, path) if o is not None else [],
                ct.below(t, d, path) if t is not None else [],
                path, d + 1, name, keep=xo if xo == xt or xb == xt else xt))
            continue
        if b is not None and o is not None and t is not None and (
                b.type == o.type == t.type == TYPE_FILE):
            merged = _merge_files(b, o, t)
            if merged is not None:
                f.out.append(merged)
                continue
        conflicts.append(Conflict(path, _conflict_kind(b, o, t), b, o, t))
        if o is not None:
            f.out.append(o)
    files, nbytes = totals(f.out)
    return MergeResult(put(f.out) if put is not None else None, files, nbytes, conflicts)


def _merge_file_roots(eb: list[TreeEntry], eo: list[TreeEntry], et: list[TreeEntry],
                      base: MergeInput, ours: MergeInput, theirs: MergeInput,
                      put: TreePutter | None) -> MergeResult:
    """The merge of three file snapshots' single entries (compared whatever their names)."""
    o = file_root_entry(eo, ours.where)
    t = dataclasses.replace(file_root_entry(et, theirs.where), name=o.name)
    b = dataclasses.replace(file_root_entry(eb, base.where), name=o.name) if eb else None
    conflicts: list[Conflict] = []
    if _same(o, t) or _same(b, t):
        out = o
    elif _same(b, o):
        out = t
    else:
        merged = _merge_files(b, o, t) if b is not None else None
        if merged is None:
            conflicts.append(Conflict(os.fsdecode(o.name), BOTH_ADDED if b is None
                                      else BOTH_MODIFIED, b, o, t))
        out = merged or o
    files, nbytes = totals([out])
    return MergeResult(put([out]) if put is not None else None, files, nbytes, conflicts)


def verify_tree(get: TreeGetter, root: RawObjectID, claim: Claim, where: str = "",
                file_root: bool = False) -> None:
    """FormatError unless tree ``root`` has the shape a snapshot claiming ``claim`` needs.

    Checks the root's totals and the format's limits, every directory entry's
    claims against its subtree, the depth and the empty directories; each
    distinct (subtree, claim) pair is checked once, so the work is bounded by the
    number of distinct trees, not of paths.
    """
    entries = get(root)
    check_root(entries, claim[0], claim[1], where)
    if file_root:
        file_root_entry(entries, where)
        return
    check_shape(get, root, where)
    seen: set[tuple[RawObjectID, int, int]] = set()
    stack = [(root, "")]
    while stack:
        tid, path = stack.pop()
        for e in get(tid):
            if e.type != TYPE_DIR:
                continue
            key = (e.subtree, e.files, e.size)
            if key in seen:
                continue
            seen.add(key)
            sub_path = _join(path, e.name)
            check_claim(get(e.subtree), e, sub_path, where)
            stack.append((e.subtree, sub_path))
