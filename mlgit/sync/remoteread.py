"""Reading a remote store without a clone: revisions, snapshots, trees and chunks, cached.

:class:`RemoteReader` is a read-only, store-like object reader over a
:class:`~mlgit.sync.backend.Backend` (a local path, SSH or S3): it resolves
revisions against the remote's refs and pack indexes (:func:`~mlgit.store.revision.resolve_in`,
the same grammar as a clone's), and reads each object it needs by a ranged read of
the pack that holds it (:func:`~mlgit.sync.transfer.iter_objects`: chunks a read
needs together are fetched in coalesced reads). No git repository is needed.

What it reads is checked as a clone's fetch checks it (docs/format.md, "Reading"):
each index bounded and named by its hash, each object verified against its id,
decoded in the role it is read in (a snapshot of at most ``MAX_SNAPSHOT_LEN``
bytes, a tree, a chunk of the length its tree records); anything else is a
CorruptObjectError naming the remote, and nothing of it is kept.

The cache, under ``cache_dir`` (safe to delete at any time)::

    <cache_dir>/store/           a git-ml store (packs and indexes) of the objects read,
                                 from any remote: content-addressed, verified on every read
    <cache_dir>/remotes/<h>/     the pack indexes of the remote whose URL hashes to <h>

Objects are cached per operation: what an operation read waits in memory until
the caller calls :meth:`RemoteReader.commit` (it succeeded: the objects are kept
for the cache, :class:`ObjectCache`, which writes them behind, a pack at a time)
or :meth:`RemoteReader.discard` (it failed: nothing of it is written, so a
failure leaves no trace). Small packs are consolidated as a clone's are
(:func:`mlgit.store.gc.consolidate`). Several processes may share one cache
directory (packs are written lock-free, as in any store). With ``cache_data``
False only snapshots, trees and indexes are cached; chunks are read from the
remote every time.

Thread-safe: one lock serializes the reader's use of its backend and its cache.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlgit.errors import (
    AmbiguousRevisionError,
    CorruptObjectError,
    FormatError,
    MlgitError,
    NotInitializedError,
)
from mlgit.format.compression import decompress
from mlgit.format.ids import ObjectID, digest_bytes, hex_to_raw, raw_to_hex
from mlgit.format.limits import MAX_SNAPSHOT_LEN
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_CHUNK, OBJ_SNAPSHOT, OBJ_TREE, IndexEntry
from mlgit.format.snapshot import Snapshot, decode_snapshot
from mlgit.format.tree import ChunkRef, TreeEntry, decode_tree
from mlgit.store import gc
from mlgit.store.refs import REF_KINDS
from mlgit.store.revision import resolve_in
from mlgit.store.store import Store
from mlgit.sync.backend import Backend
from mlgit.sync.transfer import RemoteIndex, check_remote_config, iter_objects

__all__ = ["BATCH_BYTES", "FLUSH_BYTES", "ObjectCache", "RemoteReader", "cache_store_dir",
           "remote_index_dir"]

BATCH_BYTES = 16 << 20
"""Chunks a read fetches in one go at most (raw bytes): bounds the memory of a read."""
FLUSH_BYTES = 32 << 20
"""Stored bytes of read objects kept in memory before they are written to the cache."""

_TREE_CACHE = 4096
_TYPE = {"snapshot": OBJ_SNAPSHOT, "tree": OBJ_TREE, "chunk": OBJ_CHUNK}


def cache_store_dir(cache_dir: Path) -> Path:
    """The cache's store of objects read from remotes: ``<cache_dir>/store``."""
    return cache_dir / "store"


def remote_index_dir(cache_dir: Path, url: str) -> Path:
    """Where the pack indexes of the remote at ``url`` are cached: ``remotes/<h>``.

    ``<h>`` is the hex XXH3-128 of the URL (UTF-8), as in a clone's
    :func:`~mlgit.sync.transfer.remote_cache_dir`.
    """
    return cache_dir / "remotes" / digest_bytes(url.encode("utf-8", "surrogateescape")).hex()


class RemoteReader:
    """The objects of the store at ``backend``, read on demand and cached under ``cache_dir``.

    Also a :class:`~mlgit.store.revision.RevisionSource` (:meth:`named`,
    :meth:`snapshot_ids_with_prefix`, :meth:`get_snapshot`) and a
    :class:`~mlgit.snapshot.reader.ChunkSource` (:meth:`read_chunks`). The
    backend is the reader's: :meth:`close` closes it.
    """

    def __init__(self, backend: Backend, cache_dir: Path, *, cache_data: bool = True) -> None:
        self.backend = backend
        self.url = backend.url
        self.cache_dir = cache_dir
        self.cache_data = cache_data
        self._lock = threading.RLock()
        self._index: RemoteIndex | None = None
        self._refs: dict[str, ObjectID] | None = None
        self._resolved: dict[str, ObjectID] = {}
        self._cache = ObjectCache(cache_store_dir(cache_dir))
        weakref.finalize(self, self._cache.close)  # what was kept is written at the end
        self._pending: dict[bytes, Stored] = {}
        self._trees: dict[bytes, list[TreeEntry]] = {}
        self._snapshots: dict[bytes, Snapshot] = {}
        self._last: tuple[bytes, bytes] | None = None  # (id, bytes) of the last chunk read

    # -- what the remote has ------------------------------------------------------------
    def index(self) -> RemoteIndex:
        """The remote's pack indexes (read once); NotInitializedError if it holds no store."""
        with self._lock:
            if self._index is None:
                if not check_remote_config(self.backend, None, create=False):
                    raise NotInitializedError(f"{self.url} holds no git-ml store (push to it "
                                              "first, or check the URL)")
                self._index = RemoteIndex(self.backend, remote_index_dir(self.cache_dir, self.url),
                                          save=False)
            return self._index

    def refs(self) -> dict[str, ObjectID]:
        """The remote's refs (``datasets/<name>``, ``checkpoints/<run>``), read once.

        A ref that cannot be read is left out (the others still resolve).
        """
        with self._lock:
            if self._refs is None:
                self._refs = self.backend.list_refs(on_bad=lambda _path, _err: None)
            return self._refs

    def names(self) -> list[str]:
        """Every dataset and checkpoint run name the remote has, sorted."""
        return sorted({ref.partition("/")[2] for ref in self.refs()})

    def forget(self) -> None:
        """Read refs and pack indexes afresh next time (names may have moved)."""
        with self._lock:
            self._refs = None
            self._resolved.clear()
            if self._index is not None:
                self._index.refresh()

    # -- RevisionSource ----------------------------------------------------------------
    def named(self, name: str) -> ObjectID | None:
        """The snapshot the remote's ref ``name`` holds (as a dataset or a run), or None.

        A remote has no remote-tracking refs: ``REMOTE/NAME`` names nothing here.
        AmbiguousRevisionError when a dataset and a run of that name differ.
        """
        if not is_ref_name(name):
            return None
        refs = self.refs()
        hits = {oid for kind in REF_KINDS if (oid := refs.get(f"{kind}/{name}")) is not None}
        if len(hits) > 1:
            raise AmbiguousRevisionError(f"{name!r} is both a dataset and a checkpoint run on "
                                         f"{self.url}; use its id")
        return next(iter(hits), None)

    def snapshot_ids_with_prefix(self, prefix: str) -> list[ObjectID]:
        """Ids of the remote's snapshots (by its indexes) that start with ``prefix``."""
        entries = self.index().entries
        return sorted(h for oid, (_, e) in entries.items()
                      if e.type == OBJ_SNAPSHOT and (h := raw_to_hex(oid)).startswith(prefix))

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """The snapshot ``oid``: from the cache, else read from the remote and checked."""
        raw = hex_to_raw(oid)
        with self._lock:
            snap = self._snapshots.get(raw)
            if snap is None:
                data = self._object(raw, "snapshot")
                try:
                    snap = decode_snapshot(data)
                except FormatError as e:
                    raise CorruptObjectError(f"remote {self.url}: snapshot {oid} does not "
                                             f"decode: {e}") from None
                self._snapshots[raw] = snap
            return snap

    def resolve(self, rev: str) -> ObjectID:
        """The snapshot id ``rev`` names on the remote (remembered until :meth:`forget`).

        The grammar of a clone's revisions (docs/revisions.md) over the remote's
        refs and snapshots; RevisionError if it names none.
        """
        with self._lock:
            oid = self._resolved.get(rev)
            if oid is None:
                oid = resolve_in(self, rev)
                self._resolved[rev] = oid
            return oid

    # -- trees and chunks ----------------------------------------------------------------
    def get_tree(self, oid: bytes) -> list[TreeEntry]:
        """The entries of tree ``oid``: from the cache, else read from the remote and checked."""
        with self._lock:
            entries = self._trees.get(oid)
            if entries is None:
                data = self._object(oid, "tree")
                try:
                    entries = decode_tree(data)
                except FormatError as e:
                    raise CorruptObjectError(f"remote {self.url}: tree {raw_to_hex(oid)} does "
                                             f"not decode: {e}") from None
                if len(self._trees) >= _TREE_CACHE:
                    self._trees.clear()
                self._trees[oid] = entries
            return entries

    def read_chunks(self, chunks: Sequence[ChunkRef]) -> Iterator[bytes]:
        """Each chunk's bytes, in order (see :class:`~mlgit.snapshot.reader.ChunkSource`).

        Chunks in the cache are read from it; the others are fetched from the
        remote in batches of at most :data:`BATCH_BYTES`, each batch in as few
        ranged reads as the packs allow. The last chunk read is kept in memory,
        so consecutive ranges that share a chunk (a file read block by block)
        read it once, cached or not.
        """
        i = 0
        while i < len(chunks):
            j, size = i, 0
            while j < len(chunks) and (j == i or size + chunks[j][1] <= BATCH_BYTES):
                size += chunks[j][1]
                j += 1
            last = self._last
            with self._lock:
                got = self._chunk_batch([c for c in chunks[i:j]
                                         if last is None or c[0] != last[0]])
            data = b""
            for cid, n in chunks[i:j]:
                if last is not None and cid == last[0] and len(last[1]) == n:
                    data = last[1]
                else:
                    data = got[cid] if cid in got else self._cached_chunk(cid, n)
                yield data
            self._last = (chunks[j - 1][0], data)
            i = j

    def _chunk_batch(self, batch: Sequence[ChunkRef]) -> dict[bytes, bytes]:
        """The chunks of ``batch`` the cache lacks, fetched and checked (length included)."""
        want: dict[bytes, int] = {}
        for cid, n in batch:
            if want.setdefault(cid, n) != n:
                raise CorruptObjectError(f"chunk {raw_to_hex(cid)} is listed with two lengths "
                                         f"({want[cid]} and {n})")
        missing = [cid for cid in want if not self._in_cache(cid)]
        return self._fetch(missing, "chunk", want) if missing else {}

    def _cached_chunk(self, cid: bytes, n: int) -> bytes:
        with self._lock:
            data = self._from_cache(cid)
            if data is None:  # the cache lost it meanwhile (deleted): read it again
                data = self._fetch([cid], "chunk", {cid: n})[cid]
        if len(data) != n:
            raise CorruptObjectError(f"chunk {raw_to_hex(cid)} has {len(data)} bytes, its "
                                     f"tree says {n}")
        return data

    # -- objects: cache, then remote -------------------------------------------------------
    def _in_cache(self, oid: bytes) -> bool:
        return oid in self._pending or self._cache.has(oid)

    def _from_cache(self, oid: bytes) -> bytes | None:
        """An object's verified bytes from what this operation read or the cache; else None."""
        pending = self._pending.get(oid)
        if pending is not None:
            _, e, stored = pending
            return decompress(e.codec, stored, e.raw_len)
        return self._cache.get(oid)

    def _object(self, oid: bytes, role: str) -> bytes:
        data = self._from_cache(oid)
        if data is None:
            data = self._fetch([oid], role, None)[oid]
        return data

    def _fetch(self, oids: list[bytes], role: str, lengths: dict[bytes, int] | None
               ) -> dict[bytes, bytes]:
        """Read ``oids`` (all in ``role``) from the remote, checked; kept until commit/discard."""
        index = self.index()
        if not all(index.has(o) for o in oids):
            index.refresh()  # packs pushed since the indexes were read
        for oid in oids:
            if not index.has(oid):
                raise CorruptObjectError(f"remote {self.url} lacks {role} {raw_to_hex(oid)}")
            e = index.entries[oid][1]
            if role == "snapshot" and e.raw_len > MAX_SNAPSHOT_LEN:
                raise CorruptObjectError(
                    f"remote {self.url}: snapshot {raw_to_hex(oid)} claims {e.raw_len} bytes, "
                    f"more than the {MAX_SNAPSHOT_LEN} a snapshot may have")
            if lengths is not None and e.raw_len != lengths[oid]:
                raise CorruptObjectError(
                    f"remote {self.url} has chunk {raw_to_hex(oid)} of {e.raw_len} bytes; "
                    f"its tree says {lengths[oid]}")
        out: dict[bytes, bytes] = {}
        for e, stored, data in iter_objects(self.backend, index, oids):
            out[e.oid] = data
            if role != "chunk" or self.cache_data:
                self._pending[e.oid] = (_TYPE[role], e, stored)
        return out

    # -- the cache -------------------------------------------------------------------------
    def commit(self) -> None:
        """Keep what the operation read: for the cache store (see :class:`ObjectCache`).

        Pack indexes it read are written into the cache now.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
            if self._index is not None and self._index.unsaved:
                self._index.save_unsaved()
            if pending:
                self._cache.keep(pending)

    def discard(self) -> None:
        """Forget what the operation read (it failed): nothing of it goes into the cache.

        Decoded snapshots and trees stay in memory (they were verified); pack
        indexes read wait for the next :meth:`commit`.
        """
        with self._lock:
            self._pending = {}

    def close(self) -> None:
        """Write what successful operations read into the cache; close the backend and cache."""
        with self._lock:
            self._pending = {}
            try:
                self.backend.close()
            finally:
                self._cache.close()


Stored = tuple[int, IndexEntry, bytes]
"""An object as kept for the cache: (type, its remote index entry, stored bytes)."""


class ObjectCache:
    """A git-ml store of objects read from remotes, written behind the reads.

    Objects that successful operations read are kept in memory and written to
    the store as one pack once they add up to :data:`FLUSH_BYTES` (and on
    :meth:`close`, also called when the reader is collected or the interpreter
    exits), so a loop of small reads does not write, and fsync, a pack per read.
    A cache that cannot be written (a read-only or full disk, a store another
    process damaged) is not an error: the objects were verified and served, and
    are read from the remote again next time. Every read from the store is
    verified against the object's id; a damaged copy counts as absent.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._store: Store | None = None
        self._kept: dict[bytes, Stored] = {}
        self._kept_bytes = 0
        self._lock = threading.RLock()
        self._packs_checked = 0

    def _open(self) -> Store | None:
        if self._store is None and (self.root / "config").is_file():
            with contextlib.suppress(OSError, MlgitError):
                self._store = Store.open(self.root)
        return self._store

    def has(self, oid: bytes) -> bool:
        """True if the object is kept or in the store."""
        with self._lock:
            if oid in self._kept:
                return True
            store = self._open()
            return store is not None and store.objects.has_committed(oid)

    def get(self, oid: bytes) -> bytes | None:
        """The object's verified bytes, or None when the cache lacks it (or holds it damaged)."""
        with self._lock:
            kept = self._kept.get(oid)
            if kept is not None:
                _, e, stored = kept
                return decompress(e.codec, stored, e.raw_len)
            store = self._open()
            if store is None or not store.objects.has_committed(oid):
                return None
            try:
                return store.objects.get(oid)
            except CorruptObjectError:
                return None

    def keep(self, objects: dict[bytes, Stored]) -> None:
        """Keep verified ``objects`` for the store; written once enough are kept."""
        with self._lock:
            for oid, obj in objects.items():
                if oid not in self._kept:
                    self._kept[oid] = obj
                    self._kept_bytes += len(obj[2])
            if self._kept_bytes >= FLUSH_BYTES:
                self.flush()

    def flush(self) -> None:
        """Write the kept objects into the store (created if absent) as one pack."""
        with self._lock:
            kept, self._kept, self._kept_bytes = self._kept, {}, 0
            if not kept:
                return
            with contextlib.suppress(OSError, MlgitError):
                store = self._open()
                if store is None:
                    store = self._store = Store.init(self.root)[0]
                try:
                    for oid, (type_, e, stored) in kept.items():
                        store.objects.put_stored(oid, type_, e.codec, e.raw_len, stored)
                    store.objects.flush()
                except BaseException:
                    store.objects.abort()
                    raise
                self._consolidate(store)

    def _consolidate(self, store: Store) -> None:
        """Merge the store's small packs once there are more than ``AUTO_PACK_LIMIT``."""
        if store.objects.packs_committed - self._packs_checked < 8:
            return  # checked at most every eighth pack written: one listing of packs/
        self._packs_checked = store.objects.packs_committed
        if len(gc.small_packs(store)) > gc.AUTO_PACK_LIMIT:
            with contextlib.suppress(MlgitError, OSError):
                gc.consolidate(store, gc.AUTO_PACK_LIMIT)

    def close(self) -> None:
        """Flush, then close the store (harmless to repeat)."""
        with self._lock:
            try:
                self.flush()
            finally:
                store, self._store = self._store, None
                if store is not None:
                    store.close()
