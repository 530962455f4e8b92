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
from mlgit.store import walk
from mlgit.store.store import Store

__all__ = ["FsckReport", "Located", "Problem", "check_objects", "check_reachable", "close"]


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


Located = dict[bytes, tuple[Any, Any]]
"""Good objects: id to (open PackReader, IndexEntry)."""


def check_objects(store: Store, report: FsckReport,
                  progress: Callable[[int, int], None] | None = None) -> Located:
    """Read every index and every object in every pack; return where the good ones are.

    A bad index is reported and its pack skipped; the rest is still checked. The
    returned readers stay open for :func:`check_reachable`; call :func:`close`.
    """
    packs_dir = store.root / "packs"
    good: Located = {}
    names = sorted(os.listdir(packs_dir)) if packs_dir.exists() else []
    stems = {n[:-4] for n in names if n.endswith(".idx")}
    for n in names:
        if n.endswith(".pack") and n[:-5] not in stems:
            report.problems.append(Problem(
                "orphan-pack", f"{n} has no index (an interrupted write; gc removes it)"))
    from mlgit.store.packs import PackReader

    bad_copies: list[Problem] = []
    for stem in sorted(stems):
        report.packs += 1
        try:
            reader = PackReader(packs_dir / f"{stem}.pack", packs_dir / f"{stem}.idx")
        except (FormatError, OSError) as err:
            report.problems.append(Problem("bad-index", f"{stem}: {err}"))
            continue
        for e in reader.entries:
            report.objects += 1
            try:
                reader.read(e)
                good.setdefault(e.oid, (reader, e))
            except CorruptObjectError as err:
                report.corrupt.add(e.oid)
                bad_copies.append(Problem("corrupt", str(err), raw_to_hex(e.oid)))
            if progress:
                progress(1, e.stored_len)
    # An object with one good copy is fine even if another copy is damaged.
    report.corrupt -= good.keys()
    report.problems += [p for p in bad_copies
                        if p.object is None or bytes.fromhex(p.object) not in good]
    return good


def close(located: Located) -> None:
    """Close the readers :func:`check_objects` left open."""
    for reader in {id(r): r for r, _ in located.values()}.values():
        reader.close()


def check_reachable(store: Store, good: Located, roots: Iterable[tuple[str, str]],
                    report: FsckReport, promised: set[bytes] | frozenset[bytes] = frozenset()
                    ) -> None:
    """Walk from each (snapshot or tree id, label) root; report what is missing or unreadable.

    Every object is decoded in the role it is referenced in (see
    :mod:`mlgit.store.walk`), and every chunk's length is checked against the
    tree. An absent object in ``promised`` (a remote is known to have it: a clone
    that fetched only some versions) is counted as not fetched, not as missing.
    """
    seen: set[tuple[bytes, str]] = set()
    stack: list[tuple[bytes, str, int | None, str]] = [
        (bytes.fromhex(oid_hex), walk.ANY, None, label) for oid_hex, label in roots]
    while stack:
        oid, role, length, parent = stack.pop()
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
            refs = walk.references(role, reader.read(entry))
        except (FormatError, ValueError) as err:
            report.problems.append(Problem("corrupt", f"{here} does not decode as a {role}: "
                                           f"{err}", raw_to_hex(oid), parent))
            continue
        stack.extend((c, r, n, here) for c, r, n in refs)
