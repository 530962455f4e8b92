"""Reading a remote store without a clone: revisions, snapshots, trees and chunks, cached.

:class:`RemoteReader` is a read-only, store-like object reader over a
:class:`~mlgit.sync.backend.Backend` (a local path, SSH or S3): it resolves
revisions against the remote's refs and pack indexes
(:func:`~mlgit.store.revision.resolve_in`, the same grammar as a clone's), and
reads each object it needs by a ranged read of the pack that holds it
(:func:`~mlgit.sync.transfer.iter_objects`: the chunks one read needs are fetched
together, in coalesced reads). No git repository is needed.

What it reads is checked as a clone's fetch checks it (docs/format.md, "Reading"):
each index bounded and named by its hash, each object verified against its id,
decoded in the role it is read in (a snapshot of at most ``MAX_SNAPSHOT_LEN``
bytes, a tree, a chunk of the length its tree records); anything else is a
CorruptObjectError naming the remote, and nothing of it is kept.

The cache, under ``cache_dir`` (safe to delete at any time)::

    <cache_dir>/remotes/<h>/<stem>.idx      the pack indexes of the remote whose URL
                                            hashes to <h>
    <cache_dir>/remotes/<h>/<stem>.pack     the ranges of that pack read so far (sparse)
    <cache_dir>/remotes/<h>/<stem>.ranges   which ranges (:mod:`mlgit.sync.packcache`)

An object in the cache is read from it and verified as one from the remote is;
the remote's index, in memory anyway, says where each object is, so the cache
costs no memory per object. What an operation read waits in memory until the
caller calls :meth:`RemoteReader.commit` (it succeeded: the pack ranges and the
indexes it read are written into the cache) or :meth:`RemoteReader.discard` (it
failed: nothing of it is written, so a failure leaves no trace; an operation that
reads more than :data:`PENDING_BYTES` writes what it read, verified, as it goes,
which bounds its memory). Several
processes may share one cache directory. With ``cache_data`` False only
snapshots, trees and indexes are cached; chunks are read from the remote every
time.

Thread-safe: one lock serializes the reader's use of its backend and its cache.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlgit.errors import (
    AmbiguousRevisionError,
    CorruptObjectError,
    FormatError,
    NotInitializedError,
)
from mlgit.format.ids import ObjectID, RawObjectID, digest_hex, hex_to_raw, raw_to_hex
from mlgit.format.limits import MAX_PROMOTION_LEN, MAX_SNAPSHOT_LEN
from mlgit.format.names import is_ref_name, is_stage_name, split_stage_ref_name
from mlgit.format.pack import ENTRY_HEADER, OBJ_SNAPSHOT, IndexEntry, encode_entry_header
from mlgit.format.promotion import Promotion, decode_promotion
from mlgit.format.snapshot import Snapshot, decode_snapshot
from mlgit.format.tree import ChunkRef, TreeEntry, decode_tree
from mlgit.store.refs import SNAPSHOT_KINDS, STAGES
from mlgit.store.revision import resolve_in
from mlgit.sync.backend import Backend
from mlgit.sync.packcache import PackCache
from mlgit.sync.transfer import RemoteIndex, check_remote_config, iter_objects, verify_object

__all__ = ["BATCH_BYTES", "PENDING_BYTES", "RemoteReader", "remote_index_dir"]

BATCH_BYTES = 16 << 20
"""Chunks a read fetches in one go at most (raw bytes): bounds the memory of a read."""
PENDING_BYTES = 32 << 20
"""What one operation may read before it is written into the cache while it goes on."""

_TREE_CACHE = 4096


def remote_index_dir(cache_dir: Path, url: str) -> Path:
    """The cache of the remote at ``url``: ``remotes/<h>`` (indexes and pack ranges).

    ``<h>`` is the hex XXH3-128 of the URL (UTF-8), as in a clone's
    :func:`~mlgit.sync.transfer.remote_cache_dir`.
    """
    return cache_dir / "remotes" / digest_hex(url.encode("utf-8", "surrogateescape"))


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
        self._packs = PackCache(remote_index_dir(cache_dir, backend.url))
        self._pending: list[tuple[str, int, bytes]] = []  # (stem, offset, bytes) to cache
        self._pending_bytes = 0
        self._trees: dict[RawObjectID, list[TreeEntry]] = {}
        self._snapshots: dict[RawObjectID, Snapshot] = {}
        self._last: tuple[RawObjectID, bytes] | None = None  # (id, bytes) of the last chunk read

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
        return sorted({name for ref in self.refs()
                       for kind, _, name in [ref.partition("/")] if kind in SNAPSHOT_KINDS})

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
        hits = {oid for kind in SNAPSHOT_KINDS if (oid := refs.get(f"{kind}/{name}")) is not None}
        if len(hits) > 1:
            raise AmbiguousRevisionError(f"{name!r} is both a dataset and a checkpoint run on "
                                         f"{self.url}; use its id")
        return next(iter(hits), None)

    def stage_record(self, model: str, stage: str) -> Promotion | None:
        """The newest record of the remote's ``model@stage`` (its ref), or None.

        A remote has no remote-tracking refs: ``REMOTE/MODEL`` names nothing here.
        CorruptObjectError when the ref names a record of another model or stage.
        """
        if not (is_ref_name(model) and is_stage_name(stage)):
            return None
        oid = self.refs().get(f"{STAGES}/{model}@{stage}")
        if oid is None:
            return None
        data = self._objects([hex_to_raw(oid)], "promotion")[hex_to_raw(oid)]
        try:
            p = decode_promotion(data)
        except FormatError as e:
            raise CorruptObjectError(f"remote {self.url}: promotion {oid} does not "
                                     f"decode: {e}") from None
        if (p.model, p.stage) != (model, stage):
            raise CorruptObjectError(f"remote {self.url}: ref stages/{model}@{stage} names "
                                     f"promotion {oid}, a record of {p.model}@{p.stage}")
        return p

    def stages_of(self, model: str) -> list[str]:
        """The stages the remote has a ref for of ``model``, sorted."""
        found = {split[1] for ref in self.refs() if ref.startswith(f"{STAGES}/")
                 if (split := split_stage_ref_name(ref.partition("/")[2])) is not None
                 and split[0] == model}
        return sorted(found)

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
                data = self._objects([raw], "snapshot")[raw]
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
    def get_tree(self, oid: RawObjectID) -> list[TreeEntry]:
        """The entries of tree ``oid``: from the cache, else read from the remote and checked."""
        with self._lock:
            entries = self._trees.get(oid)
            if entries is None:
                data = self._objects([oid], "tree")[oid]
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

        Read in batches of at most :data:`BATCH_BYTES`: what the cache holds from
        it, the rest from the remote in as few ranged reads as the packs allow.
        The last chunk read is kept in memory, so consecutive ranges that share a
        chunk (a file read block by block) read it once, cached or not.
        """
        i = 0
        while i < len(chunks):
            j, size = i, 0
            while j < len(chunks) and (j == i or size + chunks[j][1] <= BATCH_BYTES):
                size += chunks[j][1]
                j += 1
            last = self._last
            want: dict[RawObjectID, int] = {}
            for cid, n in chunks[i:j]:
                if want.setdefault(cid, n) != n:
                    raise CorruptObjectError(f"chunk {raw_to_hex(cid)} is listed with two "
                                             f"lengths ({want[cid]} and {n})")
            if last is not None and want.get(last[0]) == len(last[1]):
                del want[last[0]]
            with self._lock:
                got = self._objects(list(want), "chunk", want)
            data = b""
            for cid, _ in chunks[i:j]:
                if cid in got:
                    data = got[cid]
                elif last is not None and cid == last[0]:
                    data = last[1]
                else:  # pragma: no cover - _objects returns every id or raises
                    raise CorruptObjectError(f"chunk {raw_to_hex(cid)} was not read")
                yield data
            self._last = (chunks[j - 1][0], data)
            i = j

    # -- objects: the cache, then the remote -----------------------------------------------
    def _locate(self, oids: list[RawObjectID], role: str, lengths: dict[RawObjectID, int] | None
                ) -> dict[RawObjectID, tuple[str, IndexEntry]]:
        """Where each object is in the remote's packs; its size checked against its role."""
        index = self.index()
        if not all(index.has(o) for o in oids):
            index.refresh()  # packs pushed since the indexes were read
        out: dict[RawObjectID, tuple[str, IndexEntry]] = {}
        for oid in oids:
            if not index.has(oid):
                raise CorruptObjectError(f"remote {self.url} lacks {role} {raw_to_hex(oid)}")
            stem, e = index.entries[oid]
            bound = {"snapshot": MAX_SNAPSHOT_LEN, "promotion": MAX_PROMOTION_LEN}.get(role)
            if bound is not None and e.raw_len > bound:
                raise CorruptObjectError(
                    f"remote {self.url}: {role} {raw_to_hex(oid)} claims {e.raw_len} bytes, "
                    f"more than the {bound} a {role} may have")
            if lengths is not None and e.raw_len != lengths[oid]:
                raise CorruptObjectError(
                    f"remote {self.url} has chunk {raw_to_hex(oid)} of {e.raw_len} bytes; "
                    f"its tree says {lengths[oid]}")
            out[oid] = (stem, e)
        return out

    def _objects(self, oids: list[RawObjectID], role: str,
                 lengths: dict[RawObjectID, int] | None = None) -> dict[RawObjectID, bytes]:
        """The verified bytes of ``oids`` (all in ``role``): from the cache, else the remote.

        What is read from the remote waits for :meth:`commit` to be cached.
        """
        if not oids:
            return {}
        where = self._locate(oids, role, lengths)
        out: dict[RawObjectID, bytes] = {}
        missing: list[RawObjectID] = []
        for oid, (stem, e) in where.items():
            size = ENTRY_HEADER.size + e.stored_len
            blob = self._packs.read(stem, e.offset, size)
            if blob is not None:
                try:
                    out[oid] = verify_object(f"the cache of {self.url}", stem, blob, e,
                                             e.offset)[1]
                    continue
                except CorruptObjectError:
                    pass  # a damaged cached copy: read the remote's
            missing.append(oid)
        keep = role != "chunk" or self.cache_data
        for e, stored, data in iter_objects(self.backend, self.index(), missing):
            out[e.oid] = data
            if keep:
                head = encode_entry_header(e.oid, e.type, e.codec, e.raw_len, e.stored_len)
                self._pending.append((where[e.oid][0], e.offset, head + stored))
                self._pending_bytes += len(stored)
        if self._pending_bytes > PENDING_BYTES:
            self._write_pending()  # a long operation: what it read so far, verified
        return out

    # -- the cache -------------------------------------------------------------------------
    def commit(self) -> None:
        """Keep what the operation read: its pack ranges and the indexes it read, cached."""
        with self._lock:
            if self._index is not None and self._index.unsaved:
                self._index.save_unsaved()
            self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        by_stem: dict[str, list[tuple[int, bytes]]] = {}
        for stem, off, data in pending:
            by_stem.setdefault(stem, []).append((off, data))
        for stem, pieces in by_stem.items():
            self._packs.write(stem, pieces)

    def discard(self) -> None:
        """Forget what the operation read (it failed): nothing of it goes into the cache.

        Decoded snapshots and trees stay in memory (they were verified); pack
        indexes read wait for the next :meth:`commit`.
        """
        with self._lock:
            self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        """Close the backend and the cache's files (what a pending operation read is dropped)."""
        with self._lock:
            self._pending, self._pending_bytes = [], 0
            try:
                self.backend.close()
            finally:
                self._packs.close()
