"""The object store: every object in every pack, by id.

Readers trust nothing: :meth:`ObjectStore.get` checks every object against
its id. Writers go through one :class:`PackWriter`; objects become visible to
other processes only when their pack is committed (:meth:`ObjectStore.flush`).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mlgit.errors import CorruptObjectError, FormatError, MlgitError
from mlgit.format.compression import compress
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw, raw_object_id, raw_to_hex
from mlgit.format.limits import MAX_PROMOTION_LEN
from mlgit.format.midx import MIDX_ROW
from mlgit.format.pack import OBJ_PROMOTION, OBJ_SNAPSHOT, OBJ_TREE, IndexEntry
from mlgit.format.promotion import Promotion, decode_promotion, encode_promotion
from mlgit.format.snapshot import Snapshot, decode_snapshot, encode_snapshot
from mlgit.format.tree import TreeEntry, decode_tree, encode_tree
from mlgit.store.lock import lock_file
from mlgit.store.midx import (
    MIDX_NAME,
    MIDX_PACK_THRESHOLD,
    MultiPackIndex,
    merge_into,
    merge_rows,
    write_midx,
)
from mlgit.store.midx import verify as midx_verify
from mlgit.store.packs import PackIndex, PackReader, PackWriter, commit_into

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["PUT_RESCAN_NS", "ObjectStore"]


class _Covered(NamedTuple):
    """A multi-pack index in use, and the reader of each pack it names (by pack number)."""

    midx: MultiPackIndex
    readers: tuple[PackReader, ...]


class _View(NamedTuple):
    """What lookups search: multi-pack indexes, then the packs none of them covers.

    ``foreign`` is ``uncovered`` without the packs this store's own writer
    committed (whose ids the writer remembers): what a write's dedup check searches.
    """

    covered: tuple[_Covered, ...]
    uncovered: tuple[PackReader, ...]
    foreign: tuple[PackReader, ...]


class _MidxState(NamedTuple):
    """A ``packs/``'s multi-pack index as last seen: its identity, and it or why not."""

    stamp: tuple[int, ...]
    midx: MultiPackIndex | None
    problem: str | None


_QUIET_NS = 2_000_000_000  # a directory unchanged this long is listed once, then stat'ed
PUT_RESCAN_NS = 1_000_000_000
"""A write whose object is not found looks for new packs at most this often (a listing
of ``packs/`` per new object would cost more than the object's own work)."""


_SPLIT = struct.Struct("16s18s")  # a pack index entry: its id, the rest
_ID = itemgetter(slice(0, 16))


def _each_row(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The 38-byte rows of blocks of whole rows."""
    width = MIDX_ROW.size
    for blk in blocks:
        yield from (blk[i:i + width] for i in range(0, len(blk), width))


def _as_rows(blk: bytes, pack: bytes) -> list[bytes]:
    """Pack index entries (a block of 34-byte records) as multi-pack index rows of ``pack``."""
    oids, rests = zip(*_SPLIT.iter_unpack(blk), strict=True)
    return list(map(b"".join, zip(oids, repeat(pack), rests, strict=False)))


def _rows(packs: list[tuple[str, PackReader]], first: int) -> Iterator[bytes]:
    """The multi-pack index rows of ``packs``, numbered from ``first``, in id order, each once.

    In 256 slices by the ids' first byte, each gathered from every pack (by its
    fan-out) and sorted in C: memory holds one slice, about 1/256 of the rows.
    """
    small: dict[int, list[bytes]] = {}  # packs whose fan-out cannot split a byte
    big: list[tuple[bytes, PackIndex]] = []
    for j, (_, r) in enumerate(packs):
        number = (first + j).to_bytes(4, "little")
        if r.index.byte_range(0) is None:
            for blk in r.index.blocks(0, len(r.index)):
                for row in _as_rows(blk, number):
                    small.setdefault(row[0], []).append(row)
        else:
            big.append((number, r.index))
    for b in range(256):
        rows = small.pop(b, [])
        for number, idx in big:
            lo, hi = idx.byte_range(b) or (0, 0)
            for blk in idx.blocks(lo, hi):
                rows += _as_rows(blk, number)
        rows.sort()
        if len(set(map(_ID, rows))) == len(rows):
            if rows:
                yield b"".join(rows)
        else:
            yield from merge_rows([rows])


class ObjectStore:
    """All packs in ``packs_dir`` (and ``also``); new ones go to ``packs_dir`` via ``tmp_dir``.

    ``also`` are more directories of packs, read but never written (a clone's own
    ``packs/`` when it shares a store). A pack name found in two of them is the
    same bytes (names follow from content): the first found is used.

    Nothing is held in memory per object: a lookup searches each directory's
    multi-pack index (:mod:`mlgit.store.midx`) for the packs it covers, then the
    own indexes of the packs it does not, read in place (:class:`~mlgit.store.packs.PackIndex`).
    A missing, stale or corrupt multi-pack index is not used (the packs' own
    indexes answer), and a :meth:`get` that finds nothing asks every pack's own
    index before it calls the object missing.
    """

    def __init__(self, packs_dir: Path, tmp_dir: Path, pack_size: int,
                 also: tuple[Path, ...] = (), gc_lock: Path | None = None) -> None:
        self.packs_dir = packs_dir
        self._dirs = (packs_dir, *also)
        self._gc_lock = gc_lock  # taken shared to write the multi-pack index in passing
        self._quiet: dict[Path, tuple[int, ...]] = {}  # listings of unchanged directories
        self.tmp_dir = tmp_dir
        self._lock = threading.RLock()
        self._readers: dict[str, PackReader] = {}
        self._view: _View | None = None
        self._midx: dict[Path, _MidxState] = {}
        self._chosen: dict[RawObjectID, tuple[PackReader, IndexEntry]] = {}  # good copies
        # Full packs are published on a thread of their own: no worker waits for fsyncs.
        self._writer = PackWriter(tmp_dir, pack_size, commit_into(packs_dir, self._on_commit),
                                  background=True)
        self._tree_cache: dict[RawObjectID, list[TreeEntry]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.packs_committed = 0  # packs this store's writer committed (see Store.writing)
        self._own: set[str] = set()  # their names
        self._put_scanned = -PUT_RESCAN_NS  # when a put last looked for new packs

    # -- index -----------------------------------------------------------
    def _load(self) -> _View:
        with self._lock:
            if self._view is None:
                # The view appears only once the scan built it: a lookup on another
                # thread must not search an empty one meanwhile (a write would take
                # every object for new).
                self._scan()
            assert self._view is not None
            return self._view

    def _scan(self, *, force: bool = True) -> bool:
        """Open packs (and multi-pack indexes) that appeared since the last scan; True if any did.

        A pack whose index vanishes between the listing and the opening was
        removed by gc or consolidation, which commit the packs replacing it
        first: the listing is taken again, so the replacement is seen. Without
        ``force``, a directory whose status is what it was when it was last
        listed, a listing taken after it had not changed for 2 seconds, is not
        listed again: any change since would have given it a later modification
        time, whatever the file system's clock granularity (as git's racy-index
        rule). A lookup that misses scans so; reads that must not miss force it.
        """
        found = False
        states = dict(self._midx)
        while True:
            vanished = False
            for d in self._dirs:
                try:
                    st = os.stat(d)
                    stamp = (st.st_mtime_ns, st.st_ino, st.st_size, st.st_nlink)
                    if not force and self._quiet.get(d) == stamp:
                        continue
                    now = time.time_ns()
                    listed = os.listdir(d)
                except FileNotFoundError:
                    continue
                if now - st.st_mtime_ns > _QUIET_NS:
                    self._quiet[d] = stamp
                else:
                    self._quiet.pop(d, None)
                midx = self._refresh_midx(d, MIDX_NAME in listed)
                readers = self._readers
                new = sorted(n for n in listed if n.endswith(".idx") and n[:-4] not in readers)
                sizes = dict(zip(midx.stems, midx.sizes, strict=True)) if midx and new else {}
                for name in new:
                    if name[:-4] in self._readers:
                        continue
                    reader = self._open(d, name[:-4], sizes.get(name[:-4]))
                    if reader is None:
                        vanished = True  # removed since the listing (index first, then pack)
                        continue
                    self._readers[name[:-4]] = reader
                    found = True
            if not vanished:
                break
        if found or states != self._midx or self._view is None:
            self._rebuild_view()
        return found

    def _open(self, d: Path, stem: str, size: int | None) -> PackReader | None:
        """The reader of pack ``stem`` in ``d``, or None if it vanished meanwhile.

        ``size`` is what a multi-pack index says of it (its own index is then left
        closed); a pack that disagrees makes that index unused, and is opened as
        any other.
        """
        pack, idx = d / (stem + ".pack"), d / (stem + ".idx")
        try:
            if not pack.exists():
                raise CorruptObjectError(f"pack index {stem}.idx has no pack file")
            if size is not None:
                try:
                    return PackReader(pack, idx, size=size, index=False)
                except FormatError as e:
                    self._distrust(d, str(e))
            return PackReader(pack, idx)
        except (FileNotFoundError, CorruptObjectError):
            if os.path.lexists(idx):
                raise
            return None

    def _refresh_midx(self, d: Path, present: bool) -> MultiPackIndex | None:
        """``d``'s multi-pack index if it can be used; opened again when the file changed."""
        path = d / MIDX_NAME
        old = self._midx.get(d)
        try:
            st = os.stat(path) if present else None
        except FileNotFoundError:
            st = None
        if st is None:
            self._midx.pop(d, None)
            return None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if old is not None and old.stamp == stamp:
            return old.midx
        try:
            midx: MultiPackIndex | None = MultiPackIndex(path)
            problem = None
        except (FormatError, OSError) as e:
            midx, problem = None, str(e)
        self._midx[d] = _MidxState(stamp, midx, problem)
        return midx

    def _distrust(self, d: Path, why: str) -> None:
        """Stop using ``d``'s multi-pack index (until the file is replaced)."""
        with self._lock:
            old = self._midx.get(d)
            if old is not None and old.midx is not None:
                self._midx[d] = _MidxState(old.stamp, None, why)
                self._rebuild_view()

    def _rebuild_view(self) -> None:
        """Point lookups at the usable multi-pack indexes and the packs none covers."""
        covered: list[_Covered] = []
        stems: set[str] = set()
        for d in self._dirs:
            state = self._midx.get(d)
            midx = state.midx if state is not None else None
            if midx is None:
                continue
            readers = [self._readers.get(s) for s in midx.stems]
            bad = [s for s, r, n in zip(midx.stems, readers, midx.sizes, strict=True)
                   if r is None or r.size != n]
            if bad:  # stale: it names a pack that is gone (or another pack of that name)
                self._midx[d] = _MidxState(state.stamp, None,  # type: ignore[union-attr]
                                           f"{MIDX_NAME} names {bad[0]}, which is not there")
                continue
            covered.append(_Covered(midx, tuple(r for r in readers if r is not None)))
            stems.update(midx.stems)
        uncovered = [(s, r) for s, r in self._readers.items() if s not in stems]
        self._view = _View(tuple(covered), tuple(r for _, r in uncovered),
                           tuple(r for s, r in uncovered if s not in self._own))

    def midx_problems(self) -> list[tuple[Path, str]]:
        """(directory, why) of every multi-pack index present but not used."""
        with self._lock:
            self._load()
            self._scan()
            return [(d, st.problem) for d, st in self._midx.items() if st.problem]

    def _on_commit(self, pack: Path, idx: Path) -> None:
        stem = idx.name[:-4]
        with self._lock:
            self.packs_committed += 1
            self._own.add(stem)
            if self._view is None:
                return  # nothing loaded yet: the next scan finds it
            if stem not in self._readers:
                self._readers[stem] = PackReader(pack, idx)
                self._rebuild_view()
        if self._gc_lock is not None and self.midx_due():
            # A long write (a million files) keeps its own lookups cheap as it goes.
            with contextlib.suppress(MlgitError, OSError), \
                    lock_file(self._gc_lock, timeout=0, shared=True):
                self.write_midx(force=False)

    def forget(self, stems: Iterable[str]) -> None:
        """Stop serving the packs named ``stems`` (deleted by gc or consolidation).

        Their objects are served from the packs that replaced them (found by a
        rescan). A forgotten reader is not closed here: a read in another thread
        may still hold it; its descriptor is released when the last reference goes.
        """
        with self._lock:
            gone = {s for s in stems if self._readers.pop(s, None) is not None}
            if not gone or self._view is None:
                return
            self._chosen = {o: h for o, h in self._chosen.items() if h[0] in
                            self._readers.values()}
            self._scan()

    def _lookup(self, oid: RawObjectID, *,
                own: bool = True) -> tuple[PackReader, IndexEntry] | None:
        """Search the view as last scanned; without ``own``, skip this writer's own packs."""
        hit = self._chosen.get(oid)
        if hit is not None:
            return hit
        view = self._view or self._load()
        for _ in range(len(self._dirs) + 1):  # once more per index found bad on the way
            try:
                for c in view.covered:
                    found = c.midx.find(oid)
                    if found is not None:
                        return c.readers[found[0]], found[1]
            except FormatError as err:
                self._distrust(c.midx.path.parent, str(err))
                view = self._view or self._load()
                continue
            break
        for r in view.uncovered if own else view.foreign:
            found_e = r.find(oid)
            if found_e is not None:
                return r, found_e
        return None

    def _find(self, oid: RawObjectID) -> tuple[PackReader, IndexEntry] | None:
        hit = self._lookup(oid)
        if hit is None:
            with self._lock:
                self._load()
                self._scan(force=False)
                hit = self._lookup(oid)
        return hit

    def _find_anywhere(self, oid: RawObjectID) -> tuple[PackReader, IndexEntry] | None:
        """:meth:`_find`, then every pack's own index.

        A multi-pack index is never the only word on an object being missing: one
        that missed it is no longer used.
        """
        hit = self._find(oid)
        if hit is not None:
            return hit
        with self._lock:
            self._scan()
            hit = self._lookup(oid)
            if hit is not None:
                return hit
            readers = list(self._readers.values())
            view = self._view
        for r in readers:
            e = r.find(oid)
            if e is not None:
                for c in view.covered if view else ():
                    if r in c.readers:
                        self._distrust(c.midx.path.parent, f"{MIDX_NAME} lacks an object "
                                       f"of {r.path.name}")
                return r, e
        return None

    # -- queries -----------------------------------------------------------
    def has(self, oid: RawObjectID) -> bool:
        """True if the object is in a committed pack or pending in this writer."""
        return oid in self._writer.pending or self._find(oid) is not None

    def has_committed(self, oid: RawObjectID) -> bool:
        """True if the object is in a committed pack (durable, visible to others)."""
        return self._find(oid) is not None

    def iter_ids(self, type_: int | None = None) -> Iterator[RawObjectID]:
        """Ids of every committed object (of one type, if given), sorted, each once.

        Lazy: read from the indexes a piece at a time, nothing kept per object.
        """
        with self._lock:
            self._load()
            self._scan()
            view = self._view
        assert view is not None
        sources: list[Iterator[tuple[bytes, int]]] = [
            ((row[:16], row[36]) for row in c.midx.iter_rows()) for c in view.covered]
        sources += [((rec[:16], rec[32]) for rec in r.index.records()) for r in view.uncovered]
        merged = heapq.merge(*sources) if len(sources) != 1 else sources[0]
        prev = b""
        for oid, t in merged:
            if oid != prev:
                prev = oid
                if type_ is None or t == type_:
                    yield RawObjectID(oid)

    def ids(self, type_: int | None = None) -> list[RawObjectID]:
        """Ids of every committed object (of one type, if given), sorted: :meth:`iter_ids`."""
        return list(self.iter_ids(type_))

    def get(self, oid: RawObjectID) -> bytes:
        """The verified bytes of an object; CorruptObjectError if missing or damaged."""
        hit = self._find(oid)
        if hit is None:
            if oid in self._writer.pending:
                self.flush()
            hit = self._find_anywhere(oid)
            if hit is None:
                raise CorruptObjectError(f"object {raw_to_hex(oid)} is missing from the store")
        reader, entry = hit
        try:
            return reader.read(entry)
        except CorruptObjectError:
            # Another pack may hold a good copy (e.g. one `fsck --repair` fetched).
            for other in list(self._readers.values()):
                e = other.find(oid) if other is not reader else None
                if e is not None:
                    try:
                        data = other.read(e)
                    except CorruptObjectError:
                        continue
                    with self._lock:
                        self._chosen[oid] = (other, e)
                    return data
            raise

    def entry(self, oid: RawObjectID) -> IndexEntry | None:
        """The index entry of a committed object, or None."""
        hit = self._find(oid)
        return hit[1] if hit else None

    def get_stored(self, oid: RawObjectID) -> tuple[IndexEntry, bytes]:
        """An object's index entry and stored (still compressed) bytes, to send elsewhere."""
        hit = self._find(oid) or self._find_anywhere(oid)
        if hit is None:
            raise CorruptObjectError(f"object {raw_to_hex(oid)} is missing from the store")
        reader, e = hit
        return e, reader.read_stored(e)

    def trust_midx(self) -> list[tuple[Path, str]]:
        """Check every multi-pack index in use against its packs' own indexes, in full.

        One that disagrees is no longer used; returns (directory, why) of each.
        For gc and fsck, which must not take a lookup's word on what exists.
        """
        with self._lock:
            self._load()
            self._scan()
            view = self._view
        bad = []
        for c in view.covered if view else ():
            why = midx_verify(c.midx, [r.index.records() for r in c.readers])
            if why is not None:
                self._distrust(c.midx.path.parent, why)
                bad.append((c.midx.path.parent, f"{MIDX_NAME}: {why}"))
        return bad

    def midx_due(self) -> bool:
        """True if lookups found more than the threshold of packs outside the index.

        The multi-pack index of ``packs_dir``, that is; nothing is read to answer.
        """
        with self._lock:
            view = self._view
            return view is not None and sum(
                1 for r in view.uncovered if r.path.parent == self.packs_dir
            ) > MIDX_PACK_THRESHOLD

    def write_midx(self, *, leave_out: Iterable[str] = (), force: bool = True) -> bool:
        """Write ``packs_dir``'s multi-pack index over its packs (but ``leave_out``).

        Without ``force``, only when more than
        :data:`~mlgit.store.midx.MIDX_PACK_THRESHOLD` packs are outside the one in
        use. Rows of the packs the current index covers are copied from it in
        blocks (:func:`~mlgit.store.midx.merge_into`; the writer checks their
        order, and a damaged one is rebuilt from the packs); the other packs' come
        from their own indexes. With fewer than
        two packs to cover, the file is removed instead. Callers hold the store's
        ``gc`` lock (shared: another writer's index is as good; gc holds it
        exclusively). Returns True if it wrote or removed the file.
        """
        skip = set(leave_out)
        with self._lock:
            self._load()
            self._scan()
            view = self._view
            assert view is not None
            state = self._midx.get(self.packs_dir)
            current = state.midx if state is not None else None
            mine = [(s, r) for s, r in self._readers.items()
                    if r.path.parent == self.packs_dir and s not in skip]
        old = next((c for c in view.covered if c.midx is current), None)
        old_stems = set(current.stems) if old is not None and current is not None else set()
        outside = [s for s, _ in mine if s not in old_stems]
        if not force and len(outside) <= MIDX_PACK_THRESHOLD:
            return False
        path = self.packs_dir / MIDX_NAME
        if len(mine) < 2:
            if not os.path.lexists(path):
                return False
            os.unlink(path)
            return True
        readers = dict(mine)
        if old is not None and current is not None and old_stems <= readers.keys():
            packs = list(zip(current.stems, current.sizes, strict=True))
            added = [(stem, readers[stem]) for stem in outside]
            try:  # the rows it has, copied in blocks; the newer packs' merged in
                write_midx(path, self.tmp_dir, packs + [(s, r.size) for s, r in added],
                           merge_into(current, _each_row(_rows(added, len(packs)))))
            except FormatError as e:  # it was damaged after all: build it from the packs
                self._distrust(self.packs_dir, str(e))
                write_midx(path, self.tmp_dir, [(s, r.size) for s, r in mine], _rows(mine, 0))
        else:
            write_midx(path, self.tmp_dir, [(s, r.size) for s, r in mine], _rows(mine, 0))
        with self._lock:
            self._scan()
        return True

    def put_stored(self, oid: RawObjectID, type_: int, codec: int, raw_len: int, stored: bytes,
                   force: bool = False) -> None:
        """Add an object received as stored bytes; the caller has verified it against ``oid``.

        ``force`` writes it even if a copy exists (repairing a damaged copy).
        """
        if force or not self.has(oid):
            self._writer.add(oid, type_, codec, raw_len, stored)

    def readers(self) -> list[PackReader]:
        """Every committed pack (scanning for new ones first)."""
        self._load()
        with self._lock:
            self._scan()
            return list(self._readers.values())

    def get_tree(self, oid: RawObjectID) -> list[TreeEntry]:
        """Decode a tree object (cached; trees are immutable)."""
        cached = self._tree_cache.get(oid)
        if cached is None:
            try:
                cached = decode_tree(self.get(oid))
            except CorruptObjectError:
                raise
            except FormatError as e:
                raise type(e)(f"tree {raw_to_hex(oid)}: {e}") from None
            if len(self._tree_cache) > 4096:
                self._tree_cache.clear()
            self._tree_cache[oid] = cached
        return cached

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """Decode a snapshot object by hex id."""
        try:
            return decode_snapshot(self.get(hex_to_raw(oid)))
        except CorruptObjectError:
            raise
        except FormatError as e:
            raise type(e)(f"snapshot {oid}: {e}") from None

    def get_promotion(self, oid: ObjectID) -> Promotion:
        """Decode a promotion (a stage's record) by hex id.

        One that claims more than ``MAX_PROMOTION_LEN`` bytes is refused before it is read.
        """
        raw = hex_to_raw(oid)
        e = self.entry(raw)
        if e is not None and e.raw_len > MAX_PROMOTION_LEN:
            raise FormatError(f"promotion {oid}: {e.raw_len} bytes, more than the "
                              f"{MAX_PROMOTION_LEN} a promotion may have")
        try:
            return decode_promotion(self.get(raw))
        except CorruptObjectError:
            raise
        except FormatError as e:
            raise type(e)(f"promotion {oid}: {e}") from None

    # -- writes ------------------------------------------------------------
    def put(self, type_: int, data: bytes, oid: RawObjectID | None = None) -> RawObjectID:
        """Store an object unless present; return its raw id.

        ``oid``, if given, must be ``raw_object_id(data)`` (callers that already
        hashed pass it to avoid hashing twice). Compression runs outside any
        lock, so several threads can store objects at once.

        "Present" is: written by this store's writer, or in a pack the store's
        view holds (its own packs' ids are the writer's, so they are not searched).
        A miss looks for packs other processes committed at most once every
        :data:`PUT_RESCAN_NS` (a listing of ``packs/`` per new object would cost
        more than the object): an object committed elsewhere within that time may
        be written again, a harmless duplicate that lookups, ``gc`` and the
        multi-pack index resolve to one copy.
        """
        if oid is None:
            oid = raw_object_id(data)
        if self._writer.wrote(oid) or self._lookup(oid, own=False) is not None:
            return oid
        now = time.monotonic_ns()
        if now - self._put_scanned >= PUT_RESCAN_NS:
            with self._lock:
                self._put_scanned = now
                found = self._scan(force=False)
            if found and self._lookup(oid, own=False) is not None:
                return oid
        codec, stored = compress(data)
        self._writer.add(oid, type_, codec, len(data), stored)
        return oid

    def put_tree(self, entries: list[TreeEntry]) -> RawObjectID:
        """Encode and store a tree; return its raw id."""
        data = encode_tree(entries)
        oid = self.put(OBJ_TREE, data)
        self._tree_cache[oid] = sorted(entries, key=lambda e: e.name)
        return oid

    def remember_tree(self, oid: RawObjectID, entries: list[TreeEntry]) -> None:
        """Seed the tree cache with entries the caller just encoded as ``oid``."""
        if len(self._tree_cache) > 4096:
            self._tree_cache.clear()
        self._tree_cache[oid] = entries

    def put_snapshot(self, s: Snapshot) -> ObjectID:
        """Encode and store a snapshot; return its hex id."""
        return raw_to_hex(self.put(OBJ_SNAPSHOT, encode_snapshot(s)))

    def put_promotion(self, p: Promotion) -> ObjectID:
        """Encode and store a promotion; return its hex id."""
        return raw_to_hex(self.put(OBJ_PROMOTION, encode_promotion(p)))

    def compress_pool(self) -> ThreadPoolExecutor:
        """A shared pool for storing chunks in parallel (created on first use)."""
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor  # start-up time

                self._pool = ThreadPoolExecutor(max(2, os.cpu_count() or 1),
                                                thread_name_prefix="mlgit-compress")
            return self._pool

    def flush(self) -> None:
        """Commit pending objects: after return they are durable and visible."""
        self._writer.commit()

    @property
    def bytes_written(self) -> int:
        """Bytes this process appended to packs (after compression)."""
        return self._writer.bytes_written

    def abort(self) -> None:
        """Discard the pack being written."""
        self._writer.abort()

    def close(self) -> None:
        """Abort uncommitted writes and close every pack."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # before abort: no job may append after it
        self.abort()
        with self._lock:
            for r in self._readers.values():
                r.close()
            self._readers.clear()
            self._view = None
            self._midx.clear()
            self._quiet.clear()
            self._chosen.clear()
