"""Reading a repository's snapshots by range, for ``mlgit.fs``: the local store, fetching lazily.

:class:`RepoReader` gives what :mod:`mlgit.fs` (and later readers) need of a
repository: revisions resolved as everywhere else (``Core.resolve``: names, ids,
prefixes, ``name~N``, remote-tracking names), snapshots and trees from the
store, and the chunks of a byte range. What the store lacks comes from the
lazy-fetch remote (``ml.lazyFetch``, ``ml.remote``: docs/remotes.md) as
:func:`mlgit.open` fetches it: a snapshot's trees when it is first resolved,
and then only the chunks a read needs, one batch at a time, over one connection
kept for the reader's life. Fetched objects are stored in the repository's
store (verified, durable, consolidated as any lazy fetch's are). Imported data
(``git ml import``) comes from its source, as checkout's does: the chunks a read
lacks are asked of the sources of the imported snapshots this reader resolved
first, then of the lazy-fetch remote.

A :class:`~mlgit.store.revision.RevisionSource`-like reader and a
:class:`~mlgit.snapshot.reader.ChunkSource`; thread-safe (one lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from mlgit.api import fetching, imports, inspect
from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.errors import CorruptObjectError, RevisionError
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.snapshot import Snapshot
from mlgit.format.tree import ChunkRef, TreeEntry
from mlgit.store import walk
from mlgit.sync.backend import Backend
from mlgit.sync.remote import RemoteSpec, no_store_error, open_backend, resolve_remote
from mlgit.sync.transfer import RemoteIndex, check_remote_config, fetch_objects, remote_cache_dir

__all__ = ["BATCH_BYTES", "RepoReader"]

BATCH_BYTES = 16 << 20
"""Chunks fetched from the lazy remote in one go at most (raw bytes)."""


class RepoReader:
    """The snapshots of ``repo`` for reading by range; the reader owns ``repo`` (closes it)."""

    def __init__(self, repo: Core) -> None:
        self.repo = repo
        self._lock = threading.RLock()
        # Open connections by URL, in the order they are asked: import sources, the lazy remote.
        self._remotes: dict[str, tuple[Backend, RemoteIndex]] = {}
        self._sources: dict[str, RemoteSpec] = {}  # the imported snapshots' sources, by URL

    def resolve(self, rev: str) -> ObjectID:
        """The snapshot id ``rev`` names; its snapshot and trees fetched lazily when not here.

        RevisionError if it names none (here, or on the lazy remote).
        """
        with self._lock:
            # The lazy resolution mlgit.open uses: snapshot and trees, not the chunks.
            oid = fetching.resolve_fetching(self.repo, rev, whole=False)
            if not self.repo.store.objects.has_committed(hex_to_raw(oid)):
                raise RevisionError(f"snapshot {oid} ({rev!r}) is not in the local store, and "
                                    "there is no remote to fetch it from")
            source = imports.source_spec(self.repo, oid)
            if source is not None:
                self._sources.setdefault(source.url, source)
            return oid

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """The snapshot ``oid`` (verified)."""
        with self._lock:
            return self.repo.snapshot(oid)

    def get_tree(self, oid: RawObjectID) -> list[TreeEntry]:
        """The entries of tree ``oid`` (verified, cached by the store)."""
        with self._lock:
            return self.repo.store.objects.get_tree(oid)

    def names(self) -> list[str]:
        """Every name a revision can use alone or as ``REMOTE/NAME``, sorted.

        Local datasets and runs, then ``REMOTE/NAME`` for each remote-tracking ref.
        Refs that cannot be read are left out.
        """
        with self._lock:
            found = inspect.ls(self.repo, Events())
        return sorted({e.name if e.remote is None else f"{e.remote}/{e.name}" for e in found})

    def read_chunks(self, chunks: Sequence[ChunkRef]) -> Iterator[bytes]:
        """Each chunk's bytes, in order (see :class:`~mlgit.snapshot.reader.ChunkSource`).

        Chunks the store lacks are fetched from the lazy remote in batches of at
        most :data:`BATCH_BYTES`, each in one transfer.
        """
        objects = self.repo.store.objects
        i = 0
        while i < len(chunks):
            j, size = i, 0
            while j < len(chunks) and (j == i or size + chunks[j][1] <= BATCH_BYTES):
                size += chunks[j][1]
                j += 1
            with self._lock:
                missing = {c: n for c, n in chunks[i:j] if not objects.has_committed(c)}
                if missing:
                    self._fetch(missing)
            for cid, n in chunks[i:j]:
                data = objects.get(cid)
                if len(data) != n:
                    raise CorruptObjectError(f"chunk {raw_to_hex(cid)} has {len(data)} bytes, "
                                             f"its tree says {n}")
                yield data
            i = j

    def _connect(self, remote: str | RemoteSpec) -> tuple[Backend, RemoteIndex]:
        """The kept connection to ``remote`` and its index (opened on first use)."""
        repo = self.repo
        spec = (remote if isinstance(remote, RemoteSpec) else
                resolve_remote(repo.git, remote, repo.ssh_command))
        kept = self._remotes.get(spec.url)
        if kept is not None:
            return kept
        backend = open_backend(spec)
        try:
            if not check_remote_config(backend, repo.store, create=False):
                raise no_store_error(spec)
            index = RemoteIndex(backend, remote_cache_dir(repo.store, spec.url))
        except BaseException:
            backend.close()
            raise
        self._remotes[spec.url] = (backend, index)
        return backend, index

    def _fetch(self, missing: dict[RawObjectID, int]) -> None:
        """Bring ``missing`` chunks (id → length) into the store.

        From the sources of the imported snapshots resolved so far, then the lazy remote.
        """
        repo = self.repo
        wanted: list[str | RemoteSpec] = list(self._sources.values())
        lazy = fetching.lazy_remote(repo)
        if lazy is not None:
            wanted.append(lazy)
        if not wanted:
            first = raw_to_hex(next(iter(missing)))
            raise CorruptObjectError(f"chunk {first} is not in the local store, and lazy "
                                     "fetching is off (ml.lazyFetch) or there is no remote")
        left = dict(missing)
        for n, remote in enumerate(wanted):
            backend, index = self._connect(remote)
            if not all(index.has(c) for c in left):
                index.refresh()
            last = n == len(wanted) - 1
            here = left if last else {c: k for c, k in left.items() if index.has(c)}
            if here:
                with repo.store.writing():
                    fetch_objects(repo.store, backend, list(here), index, role=walk.LEAF,
                                  lengths=here)
            left = {c: k for c, k in left.items() if c not in here}
            if not left:
                break
        repo.consolidate_packs()

    def commit(self) -> None:
        """Nothing to do: what was fetched is in the repository's store already."""

    def discard(self) -> None:
        """Nothing to do (a lazy fetch is kept, as :func:`mlgit.open`'s is)."""

    def forget(self) -> None:
        """Nothing to forget: refs are read from the store each time."""

    def close(self) -> None:
        """Close the remotes' connections and the repository."""
        with self._lock:
            remotes, self._remotes = list(self._remotes.values()), {}
            try:
                for backend, _ in remotes:
                    backend.close()
            finally:
                self.repo.close()
