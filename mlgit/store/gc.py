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

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgit.errors import CorruptObjectError, FormatError
from mlgit.format.ids import RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.pack import ENTRY_HEADER, PACK_MAGIC
from mlgit.store import checkouts, walk
from mlgit.store.lock import lock_file
from mlgit.store.midx import MIDX_NAME, MultiPackIndex
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
    evicted_checkouts: int = 0
    checkout_bytes: int = 0
    shared_skipped: str = ""

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
            dry_run: bool = False, lock_timeout: float = 600.0,
            others: Callable[[], set[RawObjectID] | str] | None = None) -> GcReport:
    """Remove unreachable objects from packs older than ``prune_before`` (a Unix time).

    ``roots`` (called once the lock is held: roots read before it could miss a
    snapshot that a writer finished in between, and gc would delete it) returns
    (hex id, role) pairs. For a clone that shares a store, ``others`` (called
    under the locks too) returns the ids every other clone of the shared store
    needs, or why they cannot be known (a clone that cannot be read): then no
    pack of the shared store is touched (``report.shared_skipped`` says why),
    only this clone's own packs. A clone's own packs are moved into the shared
    store as they are rewritten.
    """
    report = GcReport(dry_run=dry_run)
    with contextlib.ExitStack() as held:
        for lock in store.gc_locks:
            held.enter_context(lock_file(lock, timeout=lock_timeout))
        store.objects.trust_midx()  # what exists is never taken from a lookup's word alone
        live = mark(store, roots())
        if store.shared is not None:
            need = others() if others is not None else "nothing says what other clones need"
            if isinstance(need, str):
                report.shared_skipped = need
            else:
                live |= need
        readers = store.objects.readers()
        report.packs_before = len(readers)
        report.live_objects = len(live)
        own = store.packs_dir

        def prunable(r: PackReader) -> bool:
            return r.path.parent != own or not report.shared_skipped

        old = [r for r in readers if os.stat(r.path).st_mtime < prune_before and prunable(r)]
        bad = _bad_copies(readers)
        holds_bad = {rid for rid, _ in bad}
        keep_whole = []
        rewrite = []
        for r in old:
            dead = sum(1 for e in r.entries if e.oid not in live)
            small = os.stat(r.path).st_size < store.config.pack_size // 2
            moved = r.path.parent != own  # a clone's own pack goes into its shared store
            if dead or (small and len(old) > 1) or id(r) in holds_bad or moved:
                rewrite.append(r)
            else:
                keep_whole.append(r)
        copied: set[RawObjectID] = {e.oid for r in keep_whole for e in r.entries
                              if (id(r), e.oid) not in bad}
        for r in readers:
            if r not in old:
                copied.update(e.oid for e in r.entries if (id(r), e.oid) not in bad)
        new_packs: list[str] = []
        writer = PackWriter(store.pack_tmp_dir, store.config.pack_size, commit_into(
            own, lambda _pack, idx: new_packs.append(idx.name[:-4])))
        counter = _PackCounter(store.config.pack_size)  # the writer's cuts, for a dry run
        unreadable = _copy_live(rewrite, live, copied, report,
                                counter.add if dry_run else None, writer)
        # A live object with no good copy anywhere: keep the pack that has it (fsck
        # reports it; `fsck --repair` can still fetch it), never delete the last copy.
        must_keep = {id(r) for r, oid in unreadable if oid not in copied}
        if not dry_run:
            writer.commit()  # the new packs are durable before any old one goes
            doomed = _doomed(rewrite, own, new_packs, must_keep)
            # The multi-pack index of what stays, before anything goes: readers never
            # find it naming a deleted pack.
            store.objects.write_midx(leave_out=[r.path.name[:-len(".pack")] for r in doomed])
            report.removed_files += _remove(doomed)
            store.objects.forget(r.path.name[:-len(".pack")] for r in doomed)
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


def _doomed(rewrite: list[PackReader], packs_dir: Path, new_packs: list[str],
            must_keep: set[int]) -> list[PackReader]:
    """The packs rewritten that are to be deleted.

    A pack whose content was rewritten under its own name (in ``new_packs``) into
    ``packs_dir`` where it is, or that holds the last copy of a live object (its
    reader's id in ``must_keep``), stays.
    """
    out = []
    for r in rewrite:
        same = r.path.parent == packs_dir and r.path.with_suffix(".idx").name[:-4] in new_packs
        if not (same or id(r) in must_keep):
            out.append(r)
    return out


def _remove(doomed: list[PackReader]) -> int:
    """Delete the packs (index first, then pack); return the number of files removed."""
    for r in doomed:
        r.path.with_suffix(".idx").unlink(missing_ok=True)
        r.path.unlink(missing_ok=True)
    return 2 * len(doomed)


def _sweep_files(store: Store, prune_before: float, live: set[RawObjectID]) -> int:
    """Old temp files, packs without an index, checkouts of dead snapshots, stat caches.

    A checkout a process holds stays (:func:`mlgit.store.checkouts.remove_dead`).
    """
    removed = 0
    dirs = dict.fromkeys((store.tmp_dir, store.pack_tmp_dir, *store.pack_dirs))
    for d in dirs:
        for name in os.listdir(d) if d.exists() else []:
            p = d / name
            if name.endswith(".lock"):
                continue  # lock files are never deleted (see mlgit.store.lock)
            if d.name == "packs" and (name.endswith(".idx") or name == MIDX_NAME or (
                    name.endswith(".pack") and (d / (name[:-5] + ".idx")).exists())):
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if st.st_mtime < prune_before and stat.S_ISREG(st.st_mode):
                p.unlink(missing_ok=True)
                removed += 1
    removed += checkouts.remove_dead(store.checkouts_dir,
                                     lambda name: not _dead_checkout(name, live), prune_before)
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
    packs = store.packs_dir
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
    with lock_file(store.gc_locks[-1], timeout=lock_timeout):
        small = sorted(small_packs(store), key=lambda p: (p[1], p[0]))  # again, under the lock
        report.small_packs = len(small)
        if len(small) <= limit:
            return report
        chosen = {stem for stem, _ in small[:_merge_count([n for _, n in small], limit)]}
        by_stem = {r.path.name[:-len(".pack")]: r for r in store.objects.readers()
                   if r.path.parent == store.packs_dir}
        merge = [by_stem[s] for s, _ in small if s in chosen and s in by_stem]
        merge = [r for r in merge if all(_readable(r, e) for e in r.entries)]
        if len(merge) < 2:
            return report
        newest = max(os.stat(r.path).st_mtime for r in merge)
        new_packs: list[str] = []
        writer = PackWriter(store.pack_tmp_dir, store.config.pack_size, commit_into(
            store.packs_dir, lambda _pack, idx: new_packs.append(idx.name[:-4])))
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
                os.utime(store.packs_dir / (stem + ext), (newest, newest))
        gone = [r.path.name[:-len(".pack")] for r in merge]
        gone = [stem for stem in gone if stem not in new_packs]  # else: the same content
        # The multi-pack index of what stays first: it never names a deleted pack.
        store.objects.write_midx(leave_out=gone, force=_midx_covers_any(store, gone))
        for stem in gone:
            (store.packs_dir / (stem + ".idx")).unlink(missing_ok=True)
            (store.packs_dir / (stem + ".pack")).unlink(missing_ok=True)
        store.objects.forget(gone)
        report.merged_packs = len(merge)
        report.packs_written = len(new_packs)
        report.objects = len(copied)
    return report


def _midx_covers_any(store: Store, stems: list[str]) -> bool:
    """True if ``packs_dir``'s multi-pack index (read as a reader would) names one of ``stems``."""
    try:
        return bool(set(MultiPackIndex(store.packs_dir / MIDX_NAME).stems) & set(stems))
    except (FormatError, OSError):
        return False


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
