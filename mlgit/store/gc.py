"""Garbage collection: remove what nothing reaches, repack the rest into fewer packs.

Only packs older than the grace period are touched (as git's ``gc.pruneExpire``):
a pack a writer is still filling, or one whose objects a writer is about to name,
is young. While it sweeps, gc holds the store's ``gc`` lock exclusively; writers
hold it shared while they write (:meth:`Store.writing`), so gc never deletes an
object that a concurrent ``add`` found and reused. New packs are durable before
any old pack is deleted (index first, then pack), so a crash at any point loses
nothing: at worst an object exists twice until the next gc.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mlgit.errors import CorruptObjectError, FormatError
from mlgit.format.ids import RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.pack import ENTRY_HEADER, PACK_MAGIC
from mlgit.store import walk
from mlgit.store.fsutil import force_remove
from mlgit.store.lock import lock_file
from mlgit.store.packs import PackReader, PackWriter, commit_into, pack_is_full
from mlgit.store.store import Store

__all__ = ["AUTO_PACK_LIMIT", "ConsolidateReport", "GcReport", "collect", "consolidate",
           "mark", "small_packs"]

AUTO_PACK_LIMIT = 50  # default of ``ml.autoPackLimit``, as git's ``gc.autoPackLimit``


@dataclass
class GcReport:
    """What gc did (or, with ``dry_run``, would do)."""

    live_objects: int = 0
    removed_objects: int = 0
    freed_bytes: int = 0
    packs_before: int = 0
    packs_after: int = 0
    removed_files: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def mark(store: Store, roots: Iterable[tuple[str, str]]) -> set[RawObjectID]:
    """Every object reachable from the given (hex id, role) roots (missing ones skipped).

    Objects are decoded in the role they are referenced in. A root that does not
    decode in its role (a ref naming a tree: fsck reports it) is walked in the
    role its index type gives, so gc keeps at least what it kept before roles.
    Iterative; each (object, role) is read once, so a hostile DAG costs its objects.
    """
    live: set[RawObjectID] = set()
    seen: set[tuple[RawObjectID, str]] = set()
    stack = [(hex_to_raw(r), role, True) for r, role in roots]
    objects = store.objects
    while stack:
        oid, role, is_root = stack.pop()
        if (oid, role) in seen:
            continue
        seen.add((oid, role))
        entry = objects.entry(oid)
        if entry is None:
            continue
        live.add(oid)
        role = walk.resolve_role(role, entry.type)
        if role != walk.LEAF:
            try:
                refs = walk.references(role, objects.get(oid))
            except FormatError:
                if is_root and role != walk.resolve_role(walk.ANY, entry.type):
                    stack.append((oid, walk.ANY, False))
                continue  # fsck reports it; what it names cannot be known
            stack.extend((c, r, False) for c, r, _ in refs)
    return live


class _PackCounter:
    """Counts the packs :class:`PackWriter` would write for objects of given stored sizes.

    The same cuts: a pack starts with its magic, each object adds its entry header
    and stored bytes, and a pack is closed when :func:`~mlgit.store.packs.pack_is_full`
    says so (and at the end).
    """

    def __init__(self, pack_size: int) -> None:
        self.pack_size = pack_size
        self.packs = 0
        self.pos = 0  # bytes in the open pack; 0: no pack open
        self.count = 0

    def add(self, stored_len: int) -> None:
        """One more object of ``stored_len`` stored bytes."""
        if not self.pos:
            self.pos, self.count = len(PACK_MAGIC), 0
        self.pos += ENTRY_HEADER.size + stored_len
        self.count += 1
        if pack_is_full(self.pos, self.count, self.pack_size):
            self.packs += 1
            self.pos = 0

    def finish(self) -> int:
        """The number of packs written, the open one included."""
        if self.pos:
            self.packs += 1
            self.pos = 0
        return self.packs


def _readable(r: PackReader, e: Any) -> bool:
    try:
        r.read(e)
        return True
    except (CorruptObjectError, FormatError):
        return False


def collect(store: Store, roots: Callable[[], Iterable[tuple[str, str]]], *, prune_before: float,
            dry_run: bool = False, lock_timeout: float = 600.0) -> GcReport:
    """Remove unreachable objects from packs older than ``prune_before`` (a Unix time).

    ``roots`` (called once the lock is held: roots read before it could miss a
    snapshot that a writer finished in between, and gc would delete it) returns
    (hex id, role) pairs.
    """
    report = GcReport(dry_run=dry_run)
    with lock_file(store.root / "gc", timeout=lock_timeout):
        live = mark(store, roots())
        readers = store.objects.readers()
        report.packs_before = len(readers)
        report.live_objects = len(live)
        old = [r for r in readers if os.stat(r.path).st_mtime < prune_before]
        bad = _bad_copies(readers)
        holds_bad = {rid for rid, _ in bad}
        keep_whole = []
        rewrite = []
        for r in old:
            dead = sum(1 for e in r.entries if e.oid not in live)
            small = os.stat(r.path).st_size < store.config.pack_size // 2
            if dead or (small and len(old) > 1) or id(r) in holds_bad:
                rewrite.append(r)
            else:
                keep_whole.append(r)
        copied: set[RawObjectID] = {e.oid for r in keep_whole for e in r.entries
                              if (id(r), e.oid) not in bad}
        for r in readers:
            if r not in old:
                copied.update(e.oid for e in r.entries if (id(r), e.oid) not in bad)
        new_packs: list[str] = []
        writer = PackWriter(store.tmp_dir, store.config.pack_size, commit_into(
            store.root / "packs", lambda _pack, idx: new_packs.append(idx.name[:-4])))
        counter = _PackCounter(store.config.pack_size)  # the writer's cuts, for a dry run
        unreadable = _copy_live(rewrite, live, copied, report,
                                counter.add if dry_run else None, writer)
        # A live object with no good copy anywhere: keep the pack that has it (fsck
        # reports it; `fsck --repair` can still fetch it), never delete the last copy.
        must_keep = {id(r) for r, oid in unreadable if oid not in copied}
        if not dry_run:
            writer.commit()  # the new packs are durable before any old one goes
            report.removed_files += _remove_rewritten(rewrite, new_packs, must_keep)
        written = counter.finish() if dry_run else len(new_packs)
        report.packs_after = report.packs_before - len(rewrite) + written + len(must_keep)
        if not dry_run:
            report.removed_files += _sweep_files(store, prune_before, live)
    return report


def _bad_copies(readers: list[PackReader]) -> set[tuple[int, RawObjectID]]:
    """(id of the pack reader, object id) of every damaged copy of an object stored twice.

    An object stored twice (a repair, or two writers racing) may have a damaged
    copy: every copy of such objects is checked, and gc rewrites packs holding a bad one.
    """
    copies: dict[RawObjectID, list[PackReader]] = {}
    for r in readers:
        for e in r.entries:
            copies.setdefault(e.oid, []).append(r)
    bad: set[tuple[int, RawObjectID]] = set()
    for oid, holders in copies.items():
        if len(holders) > 1:
            for r in holders:
                found = r.find(oid)
                if found is not None and not _readable(r, found):
                    bad.add((id(r), oid))
    return bad


def _copy_live(rewrite: list[PackReader], live: set[RawObjectID], copied: set[RawObjectID],
               report: GcReport, count: Callable[[int], None] | None,
               writer: PackWriter) -> list[tuple[PackReader, RawObjectID]]:
    """Copy the live objects of the packs to ``rewrite`` that no kept pack holds.

    Each object copied is added to ``copied``; dead ones are counted in ``report``.
    With ``count`` (a dry run) only the stored sizes go to it and ``writer`` gets
    nothing. Returns the (pack, id) pairs of live objects that could not be read:
    a damaged object is never copied forward.
    """
    unreadable: list[tuple[PackReader, RawObjectID]] = []
    for r in rewrite:
        for e in r.entries:
            if e.oid not in live:
                report.removed_objects += 1
                report.freed_bytes += e.stored_len
                continue
            if e.oid in copied:
                continue
            if not _readable(r, e):  # never copy a damaged object forward
                unreadable.append((r, e.oid))
                continue
            copied.add(e.oid)
            if count is not None:
                count(e.stored_len)
            else:
                writer.add(e.oid, e.type, e.codec, e.raw_len, r.read_stored(e))
    return unreadable


def _remove_rewritten(rewrite: list[PackReader], new_packs: list[str],
                      must_keep: set[int]) -> int:
    """Delete the packs rewritten (and their indexes); return the number of files removed.

    A pack whose content was rewritten under its own name (in ``new_packs``), or
    that holds the last copy of a live object (its reader's id in ``must_keep``), stays.
    """
    removed = 0
    for r in rewrite:
        if r.path.with_suffix(".idx").name[:-4] in new_packs or id(r) in must_keep:
            continue  # identical content rewritten under the same name, or kept
        r.path.with_suffix(".idx").unlink(missing_ok=True)
        r.path.unlink(missing_ok=True)
        removed += 2
    return removed


def _sweep_files(store: Store, prune_before: float, live: set[RawObjectID]) -> int:
    """Old temp files, packs without an index, checkouts of dead snapshots, stat caches."""
    removed = 0
    for d in (store.tmp_dir, store.root / "packs"):
        for name in os.listdir(d) if d.exists() else []:
            p = d / name
            if name.endswith(".lock"):
                continue  # lock files are never deleted (see mlgit.store.lock)
            if d.name == "packs" and (name.endswith(".idx") or (
                    name.endswith(".pack") and (d / (name[:-5] + ".idx")).exists())):
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if st.st_mtime < prune_before and stat.S_ISREG(st.st_mode):
                p.unlink(missing_ok=True)
                removed += 1
    checkouts = store.checkouts_dir
    for name in os.listdir(checkouts) if checkouts.exists() else []:
        stale_tmp = name.startswith(".") and os.lstat(checkouts / name).st_mtime < prune_before
        dead = not name.startswith(".") and _dead_checkout(name, live)
        if stale_tmp or dead:
            force_remove(checkouts / name)
            removed += 1
    stat_dir = store.cache_dir / "stat"
    if stat_dir.exists():
        shutil.rmtree(stat_dir, ignore_errors=True)  # may name trees just removed
    return removed


@dataclass
class ConsolidateReport:
    """What :func:`consolidate` did: packs merged into how many, and what they held."""

    small_packs: int = 0
    merged_packs: int = 0
    packs_written: int = 0
    objects: int = 0
    bytes: int = 0


def small_packs(store: Store) -> list[tuple[str, int]]:
    """(stem, size) of every indexed pack smaller than half the store's pack size.

    Cheap enough to run after every command that wrote a pack: one listing of
    ``packs/`` and one ``stat`` per pack; nothing is opened or read.
    """
    out = []
    packs = store.root / "packs"
    try:
        names = os.listdir(packs)
    except FileNotFoundError:
        return []
    stems = {n[:-4] for n in names if n.endswith(".idx")}
    for n in names:
        if n.endswith(".pack") and n[:-5] in stems:
            try:
                size = os.stat(packs / n).st_size
            except FileNotFoundError:
                continue  # removed meanwhile
            if size < store.config.pack_size // 2:
                out.append((n[:-5], size))
    return out


def _merge_count(sizes: list[int], limit: int) -> int:
    """How many of the smallest packs (``sizes`` ascending) to merge into one.

    As git's ``repack --geometric=2``: the packs left alone must each be at least
    twice the size of the next smaller one and of everything merged below them,
    so a byte is rewritten about log2(pack_size / its pack's size) times in all,
    not once per consolidation. If that would still leave more than ``limit``
    packs, all of them are merged.
    """
    split = 0
    for i in range(len(sizes) - 1, 0, -1):
        if sizes[i] < 2 * sizes[i - 1]:
            split = i + 1
            break
    total = sum(sizes[:split])
    while split < len(sizes) and sizes[split] < 2 * total:
        total += sizes[split]
        split += 1
    if len(sizes) - split + (1 if split else 0) > limit:
        split = len(sizes)
    return split if split > 1 else 0


def consolidate(store: Store, limit: int, *, lock_timeout: float = 0.0) -> ConsolidateReport:
    """Merge small packs into one when there are more than ``limit`` (0: never).

    As ``git gc --auto`` does for ``gc.autoPackLimit``, but nothing is pruned:
    every object of the merged packs is copied (verified first; a pack holding
    an object that does not verify is left as it is, for fsck and gc), the new
    pack is durable before any old one is deleted (index first, then pack), and
    it keeps the newest modification time of the packs it replaces, so gc's
    grace period counts from where it did. Runs under the store's ``gc`` lock,
    taken exclusively: while a writer or gc holds it, waits ``lock_timeout``
    seconds, then raises ConflictError and changes nothing. This store's object
    map forgets the deleted packs (their descriptors close) and serves the new one.
    """
    report = ConsolidateReport()
    if limit <= 0 or len(small_packs(store)) <= limit:
        return report
    with lock_file(store.root / "gc", timeout=lock_timeout):
        small = sorted(small_packs(store), key=lambda p: (p[1], p[0]))  # again, under the lock
        report.small_packs = len(small)
        if len(small) <= limit:
            return report
        chosen = {stem for stem, _ in small[:_merge_count([n for _, n in small], limit)]}
        by_stem = {r.path.name[:-len(".pack")]: r for r in store.objects.readers()}
        merge = [by_stem[s] for s, _ in small if s in chosen and s in by_stem]
        merge = [r for r in merge if all(_readable(r, e) for e in r.entries)]
        if len(merge) < 2:
            return report
        newest = max(os.stat(r.path).st_mtime for r in merge)
        new_packs: list[str] = []
        writer = PackWriter(store.tmp_dir, store.config.pack_size, commit_into(
            store.root / "packs", lambda _pack, idx: new_packs.append(idx.name[:-4])))
        copied: set[RawObjectID] = set()
        try:
            for r in merge:
                for e in r.entries:
                    if e.oid not in copied:
                        copied.add(e.oid)
                        writer.add(e.oid, e.type, e.codec, e.raw_len, r.read_stored(e))
                        report.bytes += e.stored_len
            writer.commit()  # durable before any old pack goes
        except BaseException:
            writer.abort()
            raise
        for stem in new_packs:
            for ext in (".pack", ".idx"):
                os.utime(store.root / "packs" / (stem + ext), (newest, newest))
        gone = []
        for r in merge:
            stem = r.path.name[:-len(".pack")]
            if stem in new_packs:
                continue  # the same content rewritten under the same name
            r.path.with_suffix(".idx").unlink(missing_ok=True)
            r.path.unlink(missing_ok=True)
            gone.append(stem)
        store.objects.forget(gone)
        report.merged_packs = len(merge)
        report.packs_written = len(new_packs)
        report.objects = len(copied)
    return report


def parse_prune(value: str, now: float | None = None) -> float:
    """``now``, ``never``, a Unix time, or an age like ``2.weeks.ago``/``3d``/``1h`` -> a cutoff."""
    now = time.time() if now is None else now
    v = value.strip().lower().removesuffix(".ago").removesuffix(" ago")
    if v == "now":
        return now + 1
    if v == "never":
        return 0.0
    units = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
             "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
             "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}
    for sep in (".", " ", ""):
        num, _, unit = v.partition(sep) if sep else (v.rstrip("abcdefghijklmnopqrstuvwxyz"),
                                                       "", v.lstrip("0123456789."))
        try:
            n = float(num)
        except ValueError:
            continue
        if unit in units:
            return now - n * units[unit]
    raise ValueError(f"cannot read {value!r} as an age (try 2.weeks.ago, 3d, 1h or now)")


def _dead_checkout(name: str, live: set[RawObjectID]) -> bool:
    """True if ``name`` (in ``checkouts/``) is a snapshot id that is not live.

    A name that is not an id is not git-ml's and is left alone.
    """
    try:
        return hex_to_raw(name) not in live
    except FormatError:
        return False


def _hex(oids: Iterable[RawObjectID]) -> list[str]:
    return [raw_to_hex(o) for o in oids]
