"""The object store: every object in every pack, by id.

Readers trust nothing: :meth:`ObjectStore.get` checks every object against
its id. Writers go through one :class:`PackWriter`; objects become visible to
other processes only when their pack is committed (:meth:`ObjectStore.flush`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mlgit.errors import CorruptObjectError, FormatError
from mlgit.format.compression import compress
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw, raw_object_id, raw_to_hex
from mlgit.format.limits import MAX_PROMOTION_LEN
from mlgit.format.pack import OBJ_PROMOTION, OBJ_SNAPSHOT, OBJ_TREE, IndexEntry
from mlgit.format.promotion import Promotion, decode_promotion, encode_promotion
from mlgit.format.snapshot import Snapshot, decode_snapshot, encode_snapshot
from mlgit.format.tree import TreeEntry, decode_tree, encode_tree
from mlgit.store.packs import PackReader, PackWriter, commit_into

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["ObjectStore"]


class ObjectStore:
    """All packs under ``packs_dir``; new objects go to packs written via ``tmp_dir``."""

    def __init__(self, packs_dir: Path, tmp_dir: Path, pack_size: int) -> None:
        self.packs_dir = packs_dir
        self.tmp_dir = tmp_dir
        self._lock = threading.RLock()
        self._readers: dict[str, PackReader] = {}
        self._index: dict[RawObjectID, tuple[PackReader, IndexEntry]] | None = None
        self._writer = PackWriter(tmp_dir, pack_size, commit_into(packs_dir, self._on_commit))
        self._tree_cache: dict[RawObjectID, list[TreeEntry]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.packs_committed = 0  # packs this store's writer committed (see Store.writing)

    # -- index -----------------------------------------------------------
    def _load(self) -> dict[RawObjectID, tuple[PackReader, IndexEntry]]:
        with self._lock:
            if self._index is None:
                self._index = {}
                self._scan()
            return self._index

    def _scan(self) -> bool:
        """Open packs that appeared since the last scan; True if any did.

        A pack whose index vanishes between the listing and the opening was
        removed by gc or consolidation, which commit the packs replacing it
        first: the listing is taken again, so the replacement is seen.
        """
        assert self._index is not None
        found = False
        while True:
            try:
                names = sorted(os.listdir(self.packs_dir))
            except FileNotFoundError:
                return found
            vanished = False
            for name in names:
                if not name.endswith(".idx"):
                    continue
                stem = name[:-4]
                if stem in self._readers:
                    continue
                pack, idx = self.packs_dir / (stem + ".pack"), self.packs_dir / name
                try:
                    if not pack.exists():
                        raise CorruptObjectError(f"pack index {name} has no pack file")
                    reader = PackReader(pack, idx)
                except (FileNotFoundError, CorruptObjectError):
                    if os.path.lexists(idx):
                        raise
                    vanished = True  # removed since the listing (index first, then pack)
                    continue
                self._add_reader(stem, reader)
                found = True
            if not vanished:
                return found

    def _add_reader(self, stem: str, reader: PackReader) -> None:
        assert self._index is not None
        self._readers[stem] = reader
        for e in reader.entries:
            self._index.setdefault(e.oid, (reader, e))

    def _on_commit(self, pack: Path, idx: Path) -> None:
        with self._lock:
            self.packs_committed += 1
            if self._index is None:
                return  # nothing loaded yet: the next scan finds it
            stem = idx.name[:-4]
            if stem not in self._readers:
                self._add_reader(stem, PackReader(pack, idx))

    def forget(self, stems: Iterable[str]) -> None:
        """Stop serving the packs named ``stems`` (deleted by gc or consolidation).

        Their objects are served from the packs that replaced them (found by a
        rescan). A forgotten reader is not closed here: a read in another thread
        may still hold it; its descriptor is released when the last reference goes.
        """
        with self._lock:
            gone = [self._readers.pop(s) for s in stems if s in self._readers]
            if not gone or self._index is None:
                return
            self._index.clear()  # rebuilt in place: concurrent lookups retry under the lock
            for r in self._readers.values():
                for e in r.entries:
                    self._index.setdefault(e.oid, (r, e))
            self._scan()

    def _find(self, oid: RawObjectID) -> tuple[PackReader, IndexEntry] | None:
        index = self._load()
        hit = index.get(oid)
        if hit is None:
            with self._lock:
                index = self._load()  # the same dict, unless the store was closed meanwhile
                self._scan()
                hit = index.get(oid)
        return hit

    # -- queries -----------------------------------------------------------
    def has(self, oid: RawObjectID) -> bool:
        """True if the object is in a committed pack or pending in this writer."""
        return oid in self._writer.pending or self._find(oid) is not None

    def has_committed(self, oid: RawObjectID) -> bool:
        """True if the object is in a committed pack (durable, visible to others)."""
        return self._find(oid) is not None

    def ids(self, type_: int | None = None) -> list[RawObjectID]:
        """Ids of every committed object (of one type, if given), sorted."""
        index = self._load()
        with self._lock:
            self._scan()
            return sorted(k for k, (_, e) in index.items() if type_ is None or e.type == type_)

    def get(self, oid: RawObjectID) -> bytes:
        """The verified bytes of an object; CorruptObjectError if missing or damaged."""
        hit = self._find(oid)
        if hit is None:
            if oid in self._writer.pending:
                self.flush()
                hit = self._find(oid)
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
                        if self._index is not None:
                            self._index[oid] = (other, e)
                    return data
            raise

    def entry(self, oid: RawObjectID) -> IndexEntry | None:
        """The index entry of a committed object, or None."""
        hit = self._find(oid)
        return hit[1] if hit else None

    def get_stored(self, oid: RawObjectID) -> tuple[IndexEntry, bytes]:
        """An object's index entry and stored (still compressed) bytes, to send elsewhere."""
        hit = self._find(oid)
        if hit is None:
            raise CorruptObjectError(f"object {raw_to_hex(oid)} is missing from the store")
        reader, e = hit
        return e, reader.read_stored(e)

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
        """
        if oid is None:
            oid = raw_object_id(data)
        if self.has(oid):
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
            self._index = None
