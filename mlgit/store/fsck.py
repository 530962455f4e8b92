"""Checking a store: packs, indexes, objects, and the completeness of what roots reach.

Every pack and index must be readable, every object must match its id, and
every snapshot reachable from the given roots must be complete.

The caller (``Repo.fsck``) gathers the roots: sidecar refs, pointer files in
every commit of every local branch and tag, and note records.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mlgit.errors import CorruptObjectError, FormatError
from mlgit.format.ids import raw_to_hex
from mlgit.format.pack import OBJ_SNAPSHOT, OBJ_TREE, OBJECT_TYPE_NAMES
from mlgit.format.snapshot import decode_snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, decode_tree
from mlgit.store.store import Store

__all__ = ["FsckReport", "Problem", "check_objects", "check_reachable"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``kind`` is corrupt, missing, bad-index, orphan-pack or bad-ref."""

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
    corrupt: set[bytes] = field(default_factory=set)
    missing: set[bytes] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml fsck --json`` prints it."""
        return {"ok": self.ok, "packs": self.packs, "objects": self.objects,
                "snapshots": self.snapshots, "not_fetched": self.not_fetched,
                "problems": [p.to_json() for p in self.problems]}


def check_objects(store: Store, report: FsckReport,
                  progress: Callable[[int, int], None] | None = None) -> set[bytes]:
    """Read every index and every object in every pack; return the ids of good objects."""
    packs_dir = store.root / "packs"
    good: set[bytes] = set()
    names = sorted(os.listdir(packs_dir)) if packs_dir.exists() else []
    stems = {n[:-4] for n in names if n.endswith(".idx")}
    for n in names:
        if n.endswith(".pack") and n[:-5] not in stems:
            report.problems.append(Problem(
                "orphan-pack", f"{n} has no index (an interrupted write; gc removes it)"))
    from mlgit.store.packs import PackReader

    for stem in sorted(stems):
        report.packs += 1
        try:
            reader = PackReader(packs_dir / f"{stem}.pack", packs_dir / f"{stem}.idx")
        except (FormatError, OSError) as err:
            report.problems.append(Problem("bad-index", f"{stem}: {err}"))
            continue
        try:
            for e in reader.entries:
                report.objects += 1
                try:
                    reader.read(e)
                    good.add(e.oid)
                except CorruptObjectError as err:
                    report.corrupt.add(e.oid)
                    report.problems.append(Problem(
                        "corrupt", str(err), raw_to_hex(e.oid)))
                if progress:
                    progress(1, e.stored_len)
        finally:
            reader.close()
    # An object with one good copy is fine even if another copy is damaged.
    report.corrupt -= good
    report.problems = [p for p in report.problems if not (
        p.kind == "corrupt" and p.object is not None and bytes.fromhex(p.object) in good)]
    return good


def check_reachable(store: Store, good: set[bytes], roots: Iterable[tuple[str, str]],
                    report: FsckReport, promised: set[bytes] | frozenset[bytes] = frozenset()
                    ) -> None:
    """Walk from each (snapshot or tree id, label) root; report what is missing or unreadable.

    An absent object in ``promised`` (a remote is known to have it: a clone that
    fetched only some versions) is counted as not fetched, not as missing.
    """
    seen: set[bytes] = set()
    stack: list[tuple[bytes, str]] = []
    for oid_hex, label in roots:
        stack.append((bytes.fromhex(oid_hex), label))
    while stack:
        oid, parent = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        if oid not in good:
            if oid in promised and oid not in report.corrupt:
                report.not_fetched += 1
            elif oid not in report.corrupt:
                report.missing.add(oid)
                report.problems.append(Problem(
                    "missing", f"object {raw_to_hex(oid)} is missing (needed by {parent})",
                    raw_to_hex(oid), parent))
            continue
        entry = store.objects.entry(oid)
        if entry is None:
            continue
        here = f"{OBJECT_TYPE_NAMES.get(entry.type, 'object')} {raw_to_hex(oid)}"
        try:
            if entry.type == OBJ_SNAPSHOT:
                report.snapshots += 1
                s = decode_snapshot(store.objects.get(oid))
                stack.append((bytes.fromhex(s.tree), here))
                stack.extend((bytes.fromhex(p), here) for p in s.parents)
                for c in s.meta.get("config", []) or []:
                    if isinstance(c, dict) and isinstance(c.get("id"), str):
                        stack.append((bytes.fromhex(c["id"]), here))
            elif entry.type == OBJ_TREE:
                for t in decode_tree(store.objects.get(oid)):
                    if t.type == TYPE_DIR:
                        stack.append((t.subtree, here))
                    elif t.type == TYPE_FILE:
                        stack.extend((c, here) for c, _ in t.chunks)
        except (FormatError, ValueError) as err:
            report.problems.append(Problem("corrupt", f"{here} does not decode: {err}",
                                           raw_to_hex(oid), parent))
