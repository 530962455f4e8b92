"""Checking a store: packs, indexes, objects, and the completeness of what roots reach.

Every pack and index must be readable, every object must match its id, every
root must name an object of its role, every snapshot reachable from the
roots must be complete and have the shape the format requires, and every
promotion chain must stay within one model's stage and name checkpoints.

The caller (``Repo.fsck``) gathers the roots: sidecar refs, pointer files in
every commit of every local branch and tag, and note records.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgit.errors import CorruptObjectError, FormatError
from mlgit.format.ids import RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.limits import MAX_FILES, MAX_SNAPSHOT_BYTES
from mlgit.format.promotion import Promotion, decode_promotion
from mlgit.format.snapshot import KIND_CHECKPOINT, decode_snapshot
from mlgit.format.tree import TYPE_DIR, TreeEntry, decode_tree
from mlgit.format.treeshape import (
    Node,
    Shape,
    check_limits,
    file_root_entry,
    shape_of,
    short_path,
    totals,
)
from mlgit.store import walk
from mlgit.store.lock import reader_lock
from mlgit.store.store import Store

__all__ = ["FsckReport", "Located", "Problem", "Root", "check", "check_midx", "check_objects",
           "check_reachable", "close"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with its ``kind``.

    ``corrupt``, ``missing``, ``wrong-type``, ``bad-index``, ``bad-midx``,
    ``orphan-pack``, ``bad-ref``, ``bad-pointer`` or ``bad-note``.
    """

    kind: str
    message: str
    object: str | None = None
    referenced_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml fsck --json`` prints it."""
        return {"kind": self.kind, "object": self.object, "referenced_by": self.referenced_by,
                "message": self.message}


@dataclass
class FsckReport:
    """What fsck looked at and what it found. ``ok`` is True when nothing is wrong."""

    packs: int = 0
    objects: int = 0
    snapshots: int = 0
    not_fetched: int = 0
    problems: list[Problem] = field(default_factory=list)
    corrupt: set[RawObjectID] = field(default_factory=set)
    missing: set[RawObjectID] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml fsck --json`` prints it."""
        return {"ok": self.ok, "packs": self.packs, "objects": self.objects,
                "snapshots": self.snapshots, "not_fetched": self.not_fetched,
                "problems": [p.to_json() for p in self.problems]}


Located = dict[RawObjectID, tuple[Any, Any]]
"""Good objects: id to (open PackReader, IndexEntry)."""


def check_objects(store: Store, report: FsckReport,
                  progress: Callable[[int, int], None] | None = None) -> Located:
    """Read every index and every object in every pack; return where the good ones are.

    A bad index is reported and its pack skipped; the rest is still checked; a
    pack without its index is reported as ``orphan-pack``. The returned readers
    stay open for :func:`check_reachable`; call :func:`close`. With writers
    running, use :func:`check` instead.
    """
    good: Located = {}
    names = _pack_names(store)
    stems = _indexed(names)
    _report_orphans(names, stems, report)
    _check_packs(sorted(stems), good, report, progress)
    check_midx(store, report)
    return good


def check(store: Store, roots: Callable[[], Iterable[Root]], report: FsckReport, *,
          promised: Callable[[], set[RawObjectID]] = lambda: set(),
          progress: Callable[[int, int], None] | None = None,
          lock_timeout: float = 600.0) -> None:
    """The whole check, the same answer while other processes add, fetch, push or gc.

    :func:`check_objects`, then :func:`check_reachable` from ``roots()``:

    - The store's ``gc`` lock is held shared, as writers hold it, so ``gc`` and
      pack consolidation (the only ones that delete packs) wait until the check
      is done (and the check waits up to ``lock_timeout`` seconds for a running
      gc: ConflictError after that).
    - ``roots()`` is read before the indexes: writers make objects durable and
      indexed before a ref, pointer or note names them, so everything a root
      read here names is in a pack listed afterwards.
    - Before anything is called missing, ``packs/`` is listed again and packs
      that appeared since are checked too; the walk is repeated if they hold
      anything.
    - A pack without its index may be a write in progress (its index comes
      next): it is an ``orphan-pack`` only if, once the walk is done, no other
      process holds the lock (nothing is mid-write) and it still has no index.
    """
    good: Located = {}
    with reader_lock(store.gc_locks[-1], timeout=lock_timeout) as alone:
        try:
            named = list(roots())
            known = promised()
            checked = _indexed(_pack_names(store))
            _check_packs(sorted(checked), good, report, progress)
            check_midx(store, report)
            walk_report = _walk(store, good, named, report, known)
            if walk_report.missing:
                new = _indexed(_pack_names(store)) - checked
                before = len(good)
                _check_packs(sorted(new), good, report, progress)
                if len(good) > before:
                    walk_report = _walk(store, good, named, report, known)
            report.snapshots += walk_report.snapshots
            report.not_fetched += walk_report.not_fetched
            report.missing |= walk_report.missing
            report.problems += walk_report.problems
            if alone():
                names = _pack_names(store)
                _report_orphans(names, _indexed(names), report)
        finally:
            close(good)


def _walk(store: Store, good: Located, roots: list[Root], report: FsckReport,
          promised: set[RawObjectID]) -> FsckReport:
    """:func:`check_reachable` into a fresh report that knows ``report``'s corrupt objects."""
    out = FsckReport(corrupt=report.corrupt)
    check_reachable(store, good, roots, out, promised)
    return out


_Name = tuple[Path, str]
"""A file of a ``packs/`` directory: (the directory, the file's name)."""


def _pack_names(store: Store) -> list[_Name]:
    """The files of every ``packs/`` the store reads (a shared store's, then the clone's own)."""
    out: list[_Name] = []
    for d in store.pack_dirs:
        try:
            out += [(d, n) for n in sorted(os.listdir(d))]
        except FileNotFoundError:
            continue
    return out


def _indexed(names: list[_Name]) -> set[_Name]:
    """The stems of the ``.idx`` files in ``names``, with their directory.

    An index without its pack is checked too, so reported as ``bad-index``: no
    writer ever leaves one.
    """
    return {(d, n[:-4]) for d, n in names if n.endswith(".idx")}


def _report_orphans(names: list[_Name], stems: set[_Name], report: FsckReport) -> None:
    for d, n in names:
        if n.endswith(".pack") and (d, n[:-5]) not in stems:
            report.problems.append(Problem(
                "orphan-pack", f"{n} has no index (an interrupted write; gc removes it)"))


def _check_packs(stems: list[_Name], good: Located, report: FsckReport,
                 progress: Callable[[int, int], None] | None) -> None:
    """Open and read every object of the packs ``stems``, adding the good ones to ``good``."""
    from mlgit.store.packs import PackReader

    bad_copies: list[tuple[RawObjectID, Problem]] = []
    for packs_dir, stem in stems:
        report.packs += 1
        try:
            reader = PackReader(packs_dir / f"{stem}.pack", packs_dir / f"{stem}.idx")
        except (FormatError, OSError) as err:
            report.problems.append(Problem("bad-index", f"{stem}: {err}"))
            continue
        kept = False
        for e in reader.entries:
            report.objects += 1
            try:
                reader.read(e)
                if e.oid not in good:
                    good[e.oid] = (reader, e)
                    kept = True
            except CorruptObjectError as err:
                report.corrupt.add(e.oid)
                bad_copies.append((e.oid, Problem("corrupt", str(err), raw_to_hex(e.oid))))
            if progress:
                progress(1, e.stored_len)
        if not kept:
            reader.close()
    # An object with one good copy is fine even if another copy is damaged.
    report.corrupt -= good.keys()
    report.problems += [p for oid, p in bad_copies if oid not in good]


def check_midx(store: Store, report: FsckReport) -> None:
    """Report each ``packs/`` multi-pack index that is not exactly its packs' indexes.

    One that readers would not use (corrupt, stale) or that says anything its
    packs' own indexes do not is a ``bad-midx`` problem; gc rewrites it.
    """
    from mlgit.store.midx import MIDX_NAME, MultiPackIndex, verify
    from mlgit.store.packs import PackIndex

    for d in store.pack_dirs:
        path = d / MIDX_NAME
        if not os.path.lexists(path):
            continue
        try:
            midx = MultiPackIndex(path)
        except (FormatError, OSError) as err:
            report.problems.append(Problem("bad-midx", f"{err} (readers use the packs' own "
                                           "indexes; gc rewrites it)"))
            continue
        sources: list[Iterable[bytes] | None] = []
        for stem, size in zip(midx.stems, midx.sizes, strict=True):
            try:
                if os.stat(d / f"{stem}.pack").st_size != size:
                    raise FormatError("not that size")
                sources.append(PackIndex(d / f"{stem}.idx", size).records())
            except (FormatError, OSError):
                sources.append(None)
        why = verify(midx, sources)
        if why is not None:
            report.problems.append(Problem("bad-midx", f"{MIDX_NAME}: {why} (readers do not "
                                           "trust it; gc rewrites it)"))


def close(located: Located) -> None:
    """Close the readers :func:`check_objects` left open."""
    for reader in {id(r): r for r, _ in located.values()}.values():
        reader.close()


Root = tuple[str, str, str]
"""A root: (hex id, what names it, the role it must have: ``walk.SNAPSHOT``, ``walk.TREE`` or
``walk.PROMOTION``; ``walk.ANY`` takes the role from the pack index's type)."""

_ROLE_TYPES = walk.ROLE_TYPES


@dataclass
class _TreeFacts:
    """What fsck keeps of a tree it read: its totals and its directory entries."""

    files: int
    nbytes: int
    dirs: list[TreeEntry]


_Top = tuple[str, str, RawObjectID, tuple[int, int] | None]
"""A tree a shape is checked from: (label, snapshot or root id, tree, the snapshot's claim)."""


@dataclass
class _Walked:
    """What :func:`check_reachable` keeps of the objects it decoded, for the final checks."""

    trees: dict[RawObjectID, _TreeFacts] = field(default_factory=dict)
    tops: list[_Top] = field(default_factory=list)
    chains: _Chains = field(default_factory=lambda: _Chains())


@dataclass
class _Chains:
    """What fsck keeps of the promotions it read, to check their chains once the walk is done."""

    # promotion: (model, stage)
    stage: dict[RawObjectID, tuple[str, str]] = field(default_factory=dict)
    # (promotion, its parent)
    links: list[tuple[RawObjectID, RawObjectID]] = field(default_factory=list)
    # (promotion, its checkpoint)
    named: list[tuple[RawObjectID, RawObjectID]] = field(default_factory=list)
    kinds: dict[RawObjectID, str] = field(default_factory=dict)  # snapshot read: its kind


# ``store`` is unused (the walk reads ``good``), kept: public, the same first argument as
# check_objects'.
def check_reachable(store: Store, good: Located, roots: Iterable[Root],  # noqa: ARG001
                    report: FsckReport,
                    promised: set[RawObjectID] | frozenset[RawObjectID] = frozenset()) -> None:
    """Walk from each (id, label, role) root; report what is missing, unreadable or malformed.

    Every object is decoded in the role it is referenced in (see
    :mod:`mlgit.store.walk`), and every chunk's length is checked against the
    tree. A root whose object is of another type (a ref naming a tree or a chunk)
    is ``wrong-type``. Then the shape rules (:mod:`mlgit.format.treeshape`): a
    file snapshot's tree holds one regular file, every directory entry claims what
    its subtree holds, every snapshot what its root tree holds, and no tree nests
    past the depth limit or holds too many empty directories; each break is
    ``corrupt``. Work and memory are bounded by the distinct objects, not by paths.
    An absent object in ``promised`` (a remote is known to have it: a clone that
    fetched only some versions) is counted as not fetched, not as missing.
    """
    seen: set[tuple[RawObjectID, str]] = set()
    stack: list[tuple[RawObjectID, str, int | None, str, bool]] = [
        (hex_to_raw(oid_hex), role, None, label, True) for oid_hex, label, role in roots]
    walked = _Walked()
    while stack:
        oid, role, length, parent, is_root = stack.pop()
        if (oid, role) in seen:
            continue
        seen.add((oid, role))
        hit = good.get(oid)
        if hit is None:
            if oid in promised and oid not in report.corrupt:
                report.not_fetched += 1
            elif oid not in report.corrupt and oid not in report.missing:
                report.missing.add(oid)
                report.problems.append(Problem(
                    "missing", f"object {raw_to_hex(oid)} is missing (needed by {parent})",
                    raw_to_hex(oid), parent))
            continue
        reader, entry = hit
        role = walk.resolve_role(role, entry.type)
        if length is not None and entry.raw_len != length:
            report.problems.append(Problem(
                "corrupt", f"chunk {raw_to_hex(oid)} has {entry.raw_len} bytes, {parent} "
                f"says {length}", raw_to_hex(oid), parent))
            continue
        if role == walk.LEAF:
            continue
        here = f"{role} {raw_to_hex(oid)}"
        if role == walk.SNAPSHOT:
            report.snapshots += 1
        try:
            refs = _decode(role, oid, reader.read(entry), is_root, parent, walked, report)
        except (FormatError, ValueError) as err:
            if is_root and entry.type != _ROLE_TYPES.get(role, entry.type):
                report.problems.append(Problem(
                    "wrong-type", f"{parent} names {walk.type_name(entry.type)} "
                    f"{raw_to_hex(oid)}, not a {role}", raw_to_hex(oid), parent))
            else:
                report.problems.append(Problem(
                    "corrupt", f"{here} does not decode as a {role}: {err}", raw_to_hex(oid),
                    parent))
            continue
        stack.extend((c, r, n, here, False) for c, r, n in refs)
    _check_shapes(walked.trees, walked.tops, report)
    _check_chains(walked.chains, report)


def _decode(role: str, oid: RawObjectID, data: bytes, is_root: bool, parent: str, walked: _Walked,
            report: FsckReport) -> list[walk.Ref]:
    """Decode ``data`` in ``role``, keep what the final checks need; return what it references.

    FormatError (or ValueError) if it does not decode so; a file snapshot's tree that
    does not hold one regular file is reported here and its references still returned.
    """
    here = f"{role} {raw_to_hex(oid)}"
    if role == walk.SNAPSHOT:
        snap = decode_snapshot(data)
        walked.chains.kinds[oid] = snap.kind
        walked.tops.append((here, raw_to_hex(oid), hex_to_raw(snap.tree),
                            (snap.files, snap.bytes)))
        return walk.references(role, data)
    if role in (walk.PROMOTION, walk.TRAIL):
        _note_promotion(walked.chains, oid, decode_promotion(data))
        return walk.references(role, data)
    entries = decode_tree(data)
    files, nbytes = totals(entries)
    walked.trees[oid] = _TreeFacts(files, nbytes, [e for e in entries if e.type == TYPE_DIR])
    if is_root:
        walked.tops.append((f"{parent}: {here}", raw_to_hex(oid), oid, None))
    if role == walk.FILE_TREE:
        try:
            file_root_entry(entries, here)
        except FormatError as err:
            report.problems.append(Problem("corrupt", str(err), raw_to_hex(oid), parent))
    return walk.tree_references(entries)


def _note_promotion(chains: _Chains, oid: RawObjectID, p: Promotion) -> None:
    chains.stage[oid] = (p.model, p.stage)
    if p.parent is not None:
        chains.links.append((oid, hex_to_raw(p.parent)))
    if p.checkpoint is not None:
        chains.named.append((oid, hex_to_raw(p.checkpoint)))


def _check_chains(chains: _Chains, report: FsckReport) -> None:
    """Report a promotion whose parent is another stage's record, or that names no checkpoint.

    Objects that were not read (missing, not fetched, damaged) are left out: they are
    reported already, or not here to check.
    """
    for oid, parent in chains.links:
        mine, theirs = chains.stage[oid], chains.stage.get(parent)
        if theirs is not None and theirs != mine:
            report.problems.append(Problem(
                "corrupt", f"promotion {raw_to_hex(oid)} ({'@'.join(mine)}) has parent "
                f"{raw_to_hex(parent)}, a record of {'@'.join(theirs)}", raw_to_hex(oid)))
    for oid, ckpt in chains.named:
        kind = chains.kinds.get(ckpt)
        if kind is not None and kind != KIND_CHECKPOINT:
            report.problems.append(Problem(
                "corrupt", f"promotion {raw_to_hex(oid)} ({'@'.join(chains.stage[oid])}) names "
                f"{raw_to_hex(ckpt)}, a {kind}, not a checkpoint", raw_to_hex(oid)))


def _check_shapes(trees: dict[RawObjectID, _TreeFacts], tops: list[_Top],
                  report: FsckReport) -> None:
    """Report claims that disagree with the trees read, and trees past the shape limits.

    Trees that could not be read are left out (they are reported already).
    """
    for tid, facts in trees.items():
        for d in facts.dirs:
            sub = trees.get(d.subtree)
            if sub is not None and (sub.files, sub.nbytes) != (d.files, d.size):
                report.problems.append(Problem(
                    "corrupt", f"tree {raw_to_hex(tid)}: directory {short_path(d.name)} claims "
                    f"{d.files} files and {d.size} bytes but its tree {raw_to_hex(d.subtree)} "
                    f"holds {sub.files} files and {sub.nbytes} bytes", raw_to_hex(tid)))

    def node_of(tid: RawObjectID) -> Node:
        f = trees[tid]
        return f.files, [d.subtree for d in f.dirs if d.subtree in trees]

    memo: dict[RawObjectID, Shape] = {}
    for label, obj, tid, claim in tops:
        top = trees.get(tid)
        if top is None:
            continue
        try:
            if claim is not None and (top.files, top.nbytes) != claim:
                raise FormatError(f"{label}: the snapshot claims {claim[0]} files and "
                                  f"{claim[1]} bytes but its tree holds {top.files} files "
                                  f"and {top.nbytes} bytes")
            if claim is not None and (claim[0] > MAX_FILES or claim[1] > MAX_SNAPSHOT_BYTES):
                raise FormatError(f"{label}: the snapshot claims {claim[0]} files and "
                                  f"{claim[1]} bytes, past the format's limits")
            check_limits(shape_of(node_of, tid, memo), label)
        except FormatError as err:
            report.problems.append(Problem("corrupt", str(err), obj))
