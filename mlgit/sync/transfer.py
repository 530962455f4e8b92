"""Moving objects between the local store and a :class:`Backend`, by id, as packs.

Negotiation is by object id: the remote's pack indexes say what it has (they
are cached locally; packs are immutable, so an index never changes). Both
directions keep one invariant, on which resuming depends: **an object is
written only after everything it references** (chunks, then trees from the
bottom up, then snapshots, then refs). So a store that has an object has all
of it, an interrupted push or fetch leaves both sides valid, and running it
again sends only what is still missing.

Objects travel as stored (compressed) bytes. Everything fetched is verified
against its id before it is kept; a remote that sends bytes that do not match
is named in the error and nothing of that object is kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mlgit.errors import CorruptObjectError, FormatError, UnsupportedFormatError
from mlgit.format.compression import decompress
from mlgit.format.config import decode_config, encode_config
from mlgit.format.ids import digest_bytes, raw_to_hex
from mlgit.format.pack import (
    ENTRY_HEADER,
    PACK_MAGIC,
    IndexEntry,
    decode_entry_header,
    decode_index,
    encode_entry_header,
    encode_index,
)
from mlgit.store import walk
from mlgit.store.fsutil import atomic_write, unique_tmp_name
from mlgit.store.store import Store
from mlgit.sync.backend import Backend

__all__ = ["RemoteIndex", "TransferStats", "check_remote_config", "fetch_objects",
           "push_objects", "read_objects", "remote_cache_dir"]

Progress = Callable[[int, int], None]
_COALESCE_GAP = 1 << 20


@dataclass
class TransferStats:
    """What a transfer moved."""

    objects: int = 0
    bytes: int = 0
    packs: int = 0
    skipped: int = 0
    refs: list[str] = field(default_factory=list)


def check_remote_config(backend: Backend, store: Store, create: bool) -> bool:
    """Check the remote store's format; create it (with our config) if ``create``.

    Returns False when there is no store there and ``create`` is False.
    """
    data = backend.read_config()
    if data is None:
        if not create:
            return False
        backend.init(encode_config(store.config))
        return True
    try:
        decode_config(data)
    except UnsupportedFormatError as e:
        raise UnsupportedFormatError(f"remote {backend.url}: {e}") from None
    except FormatError as e:
        raise FormatError(f"remote {backend.url}: bad store config: {e}") from None
    return True


class RemoteIndex:
    """Every object the remote has, from its pack indexes (cached under ``cache_dir``)."""

    def __init__(self, backend: Backend, cache_dir: Path) -> None:
        self.backend = backend
        self.cache_dir = cache_dir
        self.entries: dict[bytes, tuple[str, IndexEntry]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the indexes of packs not seen yet."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        known = {stem for stem, _ in self.entries.values()}
        for stem in self.backend.list_packs():
            if stem in known:
                continue
            cached = self.cache_dir / f"{stem}.idx"
            data = cached.read_bytes() if cached.exists() else None
            if data is None or digest_bytes(data[:-16]) != data[-16:]:
                data = self.backend.read_index(stem)
                atomic_write(cached, data)
            try:
                entries = decode_index(data)
            except FormatError as err:
                raise FormatError(f"remote {self.backend.url}: index of {stem}: {err}") from None
            for ent in entries:
                self.entries.setdefault(ent.oid, (stem, ent))

    def has(self, oid: bytes) -> bool:
        """True if the remote has the object."""
        return oid in self.entries


# -- push ---------------------------------------------------------------------------
def closure_postorder(store: Store, roots: Iterable[bytes], have: Callable[[bytes], bool]
                      ) -> list[bytes]:
    """Objects reachable from ``roots`` that ``have`` lacks, every object after its children.

    Objects are decoded in the role they are referenced in (:mod:`mlgit.store.walk`).
    A snapshot or chunk ``have`` reports is not descended into (a store with a
    snapshot has all of it); trees are always walked, so bytes the other side
    holds in another role never hide what a tree references.
    """
    order: list[bytes] = []
    emitted: set[bytes] = set()
    seen: set[tuple[bytes, str]] = set()
    for root in roots:
        stack: list[tuple[bytes, str, bool]] = [(root, walk.ANY, False)]
        while stack:
            oid, role, expanded = stack.pop()
            if expanded:
                if oid not in emitted and not have(oid):
                    emitted.add(oid)
                    order.append(oid)
                continue
            if (oid, role) in seen:
                continue
            seen.add((oid, role))
            entry = store.objects.entry(oid)
            if entry is None:
                if have(oid):
                    continue
                raise CorruptObjectError(f"object {raw_to_hex(oid)} is missing from the local "
                                         "store; run `git ml fetch` first")
            role = walk.resolve_role(role, entry.type)
            if role not in walk.TREE_ROLES and have(oid):
                continue
            stack.append((oid, role, True))
            if role != walk.LEAF:
                refs = walk.references(role, store.objects.get(oid))
                for child, child_role, _ in reversed(refs):
                    if (child, child_role) not in seen:
                        stack.append((child, child_role, False))
    return order


class _PackBuilder:
    """Writes stored objects into a local temp pack and hands each finished one to ``emit``.

    Unlike :class:`~mlgit.store.packs.PackWriter` the pack is not committed into
    this store: ``emit`` uploads it, and the temp file is removed afterwards.
    """

    def __init__(self, tmp_dir: Path, pack_size: int,
                 emit: Callable[[Path, list[IndexEntry]], None]) -> None:
        self.tmp_dir = tmp_dir
        self.pack_size = pack_size
        self.emit = emit
        self.path: Path | None = None
        self.f: BinaryIO | None = None
        self.entries: list[IndexEntry] = []
        self.pos = 0

    def add(self, oid: bytes, type_: int, codec: int, raw_len: int, stored: bytes) -> None:
        """Append one object; the pack is emitted once it reaches ``pack_size``."""
        if self.f is None:
            self.path = self.tmp_dir / unique_tmp_name("push")
            self.f = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
            self.f.write(PACK_MAGIC)
            self.pos = len(PACK_MAGIC)
            self.entries = []
        self.f.write(encode_entry_header(oid, type_, codec, raw_len, len(stored)))
        self.f.write(stored)
        self.entries.append(IndexEntry(oid, self.pos, len(stored), raw_len, type_, codec))
        self.pos += ENTRY_HEADER.size + len(stored)
        if self.pos >= self.pack_size:
            self.finish()

    def finish(self) -> None:
        """Emit the pack being built, if any, and remove its temp file."""
        if self.f is None or self.path is None:
            return
        self.f.close()
        path, entries = self.path, self.entries
        self.f, self.path = None, None
        try:
            self.emit(path, entries)
        finally:
            path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the pack being built."""
        if self.f is not None and self.path is not None:
            self.f.close()
            self.path.unlink(missing_ok=True)
        self.f, self.path = None, None


def push_objects(store: Store, backend: Backend, roots: Iterable[bytes], remote: RemoteIndex,
                 progress: Progress | None = None,
                 on_total: Callable[[int, int], None] | None = None) -> TransferStats:
    """Send every object reachable from ``roots`` that the remote lacks, as packs."""
    todo = closure_postorder(store, roots, remote.has)
    if on_total:
        sizes = [store.objects.entry(o) for o in todo]
        on_total(len(todo), sum(e.stored_len for e in sizes if e is not None))
    stats = TransferStats()

    def emit(path: Path, entries: list[IndexEntry]) -> None:
        index = encode_index(entries)
        stem = "pack-" + digest_bytes(index).hex()
        backend.put_pack(stem, path, index)
        stats.packs += 1

    builder = _PackBuilder(store.tmp_dir, store.config.pack_size, emit)
    try:
        for oid in todo:
            e, stored = store.objects.get_stored(oid)
            builder.add(oid, e.type, e.codec, e.raw_len, stored)
            stats.objects += 1
            stats.bytes += len(stored)
            if progress:
                progress(1, len(stored))
        builder.finish()
    except BaseException:
        builder.abort()
        raise
    remote.refresh()
    return stats


# -- fetch --------------------------------------------------------------------------
def read_objects(backend: Backend, remote: RemoteIndex, oids: list[bytes]
               ) -> dict[bytes, tuple[IndexEntry, bytes]]:
    """Read objects (stored bytes, verified) with as few ranged reads as possible."""
    by_pack: dict[str, list[IndexEntry]] = {}
    for oid in oids:
        stem, e = remote.entries[oid]
        by_pack.setdefault(stem, []).append(e)
    out: dict[bytes, tuple[IndexEntry, bytes]] = {}
    for stem, entries in by_pack.items():
        entries.sort(key=lambda e: e.offset)
        i = 0
        while i < len(entries):
            j = i
            end = entries[i].offset + ENTRY_HEADER.size + entries[i].stored_len
            while j + 1 < len(entries) and entries[j + 1].offset - end < _COALESCE_GAP and (
                    end - entries[i].offset < 64 << 20):
                j += 1
                end = max(end, entries[j].offset + ENTRY_HEADER.size + entries[j].stored_len)
            start = entries[i].offset
            blob = backend.read_pack(stem, start, end - start)
            for e in entries[i:j + 1]:
                out[e.oid] = (e, _verified(backend, stem, blob, e, start))
            i = j + 1
    return out


def _verified(backend: Backend, stem: str, blob: bytes, e: IndexEntry, base: int) -> bytes:
    off = e.offset - base
    oid = raw_to_hex(e.oid)
    try:
        head = decode_entry_header(blob, off)
        if (head.oid, head.type, head.codec, head.raw_len, head.stored_len) != (
                e.oid, e.type, e.codec, e.raw_len, e.stored_len):
            raise FormatError("entry header disagrees with the index")
        stored = blob[off + ENTRY_HEADER.size: off + ENTRY_HEADER.size + e.stored_len]
        data = decompress(e.codec, stored, e.raw_len)
    except FormatError as err:
        raise CorruptObjectError(f"remote {backend.url} sent a corrupt object {oid} "
                                 f"({stem}): {err}; nothing of it was kept") from None
    if digest_bytes(data) != e.oid:
        raise CorruptObjectError(f"remote {backend.url} sent object {oid} whose bytes do not "
                                 "match its id; nothing of it was kept")
    return stored


def fetch_objects(store: Store, backend: Backend, roots: Iterable[bytes], remote: RemoteIndex,
                  *, history: bool = True, chunks_too: bool = True,
                  progress: Progress | None = None,
                  on_total: Callable[[int, int], None] | None = None) -> TransferStats:
    """Bring every object reachable from ``roots`` that the local store lacks.

    ``history`` False skips snapshots' parents (just these versions);
    ``chunks_too`` False brings only snapshots and trees (``mlgit.open`` then
    fetches the chunks of the one file it reads). Trees and snapshots are read
    level by level, from the local store when already there (a lazy fetch may
    have left them without their chunks), else from the remote; chunks are read
    last, grouped into coalesced ranged reads, and written before the trees
    that name them.
    """
    stats = TransferStats()
    have = store.objects.has_committed
    level: list[tuple[bytes, str]] = [(r, walk.ANY) for r in dict.fromkeys(roots)]
    missing = [r for r, _ in level if not have(r) and not remote.has(r)]
    if missing:
        raise CorruptObjectError(f"remote {backend.url} lacks object {raw_to_hex(missing[0])}")
    structure: dict[bytes, tuple[IndexEntry, bytes]] = {}  # snapshots and trees
    kids: dict[bytes, list[bytes]] = {}
    chunks: list[bytes] = []
    lengths: dict[bytes, int] = {}
    seen: set[tuple[bytes, str]] = set(level)
    while level:
        got = read_objects(backend, remote,
                           list(dict.fromkeys(o for o, _ in level if not have(o))))
        nxt: list[tuple[bytes, str]] = []
        for oid, role in level:
            local_entry = store.objects.entry(oid)
            if local_entry is not None:
                role = walk.resolve_role(role, local_entry.type)
                if role == walk.LEAF:
                    continue  # a chunk or blob we have
                e, data, stored = local_entry, store.objects.get(oid), b""
            else:
                e, stored = got[oid]
                role = walk.resolve_role(role, e.type)
                if role == walk.LEAF:
                    chunks.append(oid)
                    continue
                data = decompress(e.codec, stored, e.raw_len)
            try:
                refs = walk.references(role, data, history=history, chunks=chunks_too)
            except FormatError as err:
                raise CorruptObjectError(f"remote {backend.url}: {role} {raw_to_hex(oid)} "
                                         f"does not decode: {err}") from None
            children = [c for c, r, _ in refs if r != walk.LEAF]
            for c, r, n in refs:
                if r == walk.LEAF and n is not None:
                    lengths[c] = n
            if local_entry is None:
                structure[oid] = (e, stored)
                kids[oid] = children
            for c, r, _ in refs:
                if (c, r) in seen:
                    continue
                seen.add((c, r))
                if not have(c) and not remote.has(c):
                    raise CorruptObjectError(f"remote {backend.url} lacks object "
                                             f"{raw_to_hex(c)}")
                if r == walk.LEAF:
                    if not have(c):
                        chunks.append(c)
                else:
                    nxt.append((c, r))
        level = nxt
    chunk_ids = list(dict.fromkeys(chunks))
    for c in chunk_ids:
        if not remote.has(c):
            raise CorruptObjectError(f"remote {backend.url} lacks object {raw_to_hex(c)}")
        n = lengths.get(c)
        if n is not None and remote.entries[c][1].raw_len != n:
            raise CorruptObjectError(f"remote {backend.url} sent chunk {raw_to_hex(c)} of "
                                     f"{remote.entries[c][1].raw_len} bytes; its tree says {n}")
    if on_total:
        on_total(len(chunk_ids), sum(remote.entries[c][1].stored_len for c in chunk_ids))
    # Leaves first, in batches that bound memory, then structure from the bottom up.
    batch: list[bytes] = []
    size = 0
    for c in chunk_ids:
        batch.append(c)
        size += remote.entries[c][1].stored_len
        if size >= 64 << 20:
            _store_batch(store, backend, remote, batch, stats, progress)
            batch, size = [], 0
    _store_batch(store, backend, remote, batch, stats, progress)
    for oid in _postorder(kids):
        e, stored = structure[oid]
        store.objects.put_stored(oid, e.type, e.codec, e.raw_len, stored)
        stats.objects += 1
        stats.bytes += len(stored)
    store.objects.flush()
    return stats


def _postorder(kids: dict[bytes, list[bytes]]) -> list[bytes]:
    """The keys of ``kids``, each after every key it (transitively) references."""
    order: list[bytes] = []
    done: set[bytes] = set()
    for root in kids:
        if root in done:
            continue
        stack: list[tuple[bytes, bool]] = [(root, False)]
        while stack:
            oid, expanded = stack.pop()
            if expanded:
                order.append(oid)
                continue
            if oid in done:
                continue
            done.add(oid)
            stack.append((oid, True))
            stack.extend((c, False) for c in kids[oid] if c in kids and c not in done)
    return order


def _store_batch(store: Store, backend: Backend, remote: RemoteIndex, batch: list[bytes],
                 stats: TransferStats, progress: Progress | None) -> None:
    if not batch:
        return
    for oid, (e, stored) in read_objects(backend, remote, batch).items():
        store.objects.put_stored(oid, e.type, e.codec, e.raw_len, stored)
        stats.objects += 1
        stats.bytes += len(stored)
        if progress:
            progress(1, len(stored))


def remote_cache_dir(store: Store, url: str) -> Path:
    """Where the indexes of the remote at ``url`` are cached."""
    return store.cache_dir / "remotes" / digest_bytes(os.fsencode(url)).hex()
