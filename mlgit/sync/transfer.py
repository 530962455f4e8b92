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

from mlgit.errors import CorruptObjectError, FormatError, UnsupportedFormatError
from mlgit.format.compression import decompress
from mlgit.format.config import decode_config, encode_config
from mlgit.format.ids import digest_bytes, raw_to_hex
from mlgit.format.pack import (
    ENTRY_HEADER,
    OBJ_SNAPSHOT,
    OBJ_TREE,
    PACK_MAGIC,
    IndexEntry,
    decode_entry_header,
    decode_index,
    encode_entry_header,
    encode_index,
)
from mlgit.format.snapshot import decode_snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, decode_tree
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
def _children(store: Store, oid: bytes, type_: int) -> list[bytes]:
    if type_ == OBJ_SNAPSHOT:
        s = store.objects.get_snapshot(raw_to_hex(oid))
        return [bytes.fromhex(s.tree), *(bytes.fromhex(p) for p in s.parents),
                *(bytes.fromhex(str(c["id"])) for c in s.meta.get("config", []) or []
                  if isinstance(c, dict) and isinstance(c.get("id"), str))]
    if type_ == OBJ_TREE:
        out: list[bytes] = []
        for e in store.objects.get_tree(oid):
            if e.type == TYPE_DIR:
                out.append(e.subtree)
            elif e.type == TYPE_FILE:
                out.extend(cid for cid, _ in e.chunks)
        return out
    return []


def closure_postorder(store: Store, roots: Iterable[bytes], have: Callable[[bytes], bool]
                      ) -> list[bytes]:
    """Objects reachable from ``roots`` that ``have`` lacks, every object after its children.

    An object ``have`` reports is not descended into: a store with an object
    has everything it references (the invariant above).
    """
    order: list[bytes] = []
    seen: set[bytes] = set()
    for root in roots:
        if root in seen or have(root):
            continue
        stack: list[tuple[bytes, bool]] = [(root, False)]
        while stack:
            oid, expanded = stack.pop()
            if expanded:
                order.append(oid)
                continue
            if oid in seen:
                continue
            seen.add(oid)
            entry = store.objects.entry(oid)
            if entry is None:
                raise CorruptObjectError(f"object {raw_to_hex(oid)} is missing from the local "
                                         "store; run `git ml fetch` first")
            stack.append((oid, True))
            for child in reversed(_children(store, oid, entry.type)):
                if child not in seen and not have(child):
                    stack.append((child, False))
    return order


class _PackBuilder:
    """Writes stored objects into local temp packs and hands each finished one to ``emit``."""

    def __init__(self, tmp_dir: Path, pack_size: int,
                 emit: Callable[[Path, list[IndexEntry]], None]) -> None:
        self.tmp_dir = tmp_dir
        self.pack_size = pack_size
        self.emit = emit
        self.path: Path | None = None
        self.f: object | None = None
        self.entries: list[IndexEntry] = []
        self.pos = 0

    def add(self, oid: bytes, type_: int, codec: int, raw_len: int, stored: bytes) -> None:
        if self.path is None:
            self.path = self.tmp_dir / unique_tmp_name("push")
            with open(self.path, "wb") as f:
                f.write(PACK_MAGIC)
            self.pos = len(PACK_MAGIC)
            self.entries = []
        with open(self.path, "ab") as f:
            f.write(encode_entry_header(oid, type_, codec, raw_len, len(stored)))
            f.write(stored)
        self.entries.append(IndexEntry(oid, self.pos, len(stored), raw_len, type_, codec))
        self.pos += ENTRY_HEADER.size + len(stored)
        if self.pos >= self.pack_size:
            self.finish()

    def finish(self) -> None:
        if self.path is None:
            return
        path, entries = self.path, self.entries
        self.path = None
        try:
            self.emit(path, entries)
        finally:
            path.unlink(missing_ok=True)


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
    for oid in todo:
        e, stored = store.objects.get_stored(oid)
        builder.add(oid, e.type, e.codec, e.raw_len, stored)
        stats.objects += 1
        stats.bytes += len(stored)
        if progress:
            progress(1, len(stored))
    builder.finish()
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
    level = list(dict.fromkeys(roots))
    missing = [r for r in level if not have(r) and not remote.has(r)]
    if missing:
        raise CorruptObjectError(f"remote {backend.url} lacks object {raw_to_hex(missing[0])}")
    structure: dict[bytes, tuple[IndexEntry, bytes]] = {}  # snapshots and trees
    kids: dict[bytes, list[bytes]] = {}
    chunks: list[bytes] = []
    seen: set[bytes] = set(level)
    while level:
        got = read_objects(backend, remote, [o for o in level if not have(o)])
        nxt: list[bytes] = []
        for oid in level:
            local_entry = store.objects.entry(oid)
            if local_entry is not None:
                if local_entry.type not in (OBJ_SNAPSHOT, OBJ_TREE):
                    continue  # a chunk or blob we have
                e, data = local_entry, store.objects.get(oid)
                stored = b""
            else:
                e, stored = got[oid]
                data = decompress(e.codec, stored, e.raw_len)
            children: list[bytes] = []
            if e.type == OBJ_SNAPSHOT:
                s = decode_snapshot(data)
                children.append(bytes.fromhex(s.tree))
                if history:
                    children.extend(bytes.fromhex(p) for p in s.parents)
                for c in s.meta.get("config", []) or []:
                    if isinstance(c, dict) and isinstance(c.get("id"), str):
                        children.append(bytes.fromhex(c["id"]))
            elif e.type == OBJ_TREE:
                for t in decode_tree(data):
                    if t.type == TYPE_DIR:
                        children.append(t.subtree)
                    elif t.type == TYPE_FILE and chunks_too:
                        chunks.extend(c for c, _ in t.chunks if c not in seen and not have(c))
                        seen.update(c for c, _ in t.chunks)
            else:
                chunks.append(oid)
                continue
            if local_entry is None:
                structure[oid] = (e, stored)
                kids[oid] = children
            for c in children:
                if c not in seen:
                    if not have(c) and not remote.has(c):
                        raise CorruptObjectError(f"remote {backend.url} lacks object "
                                                 f"{raw_to_hex(c)}")
                    seen.add(c)
                    nxt.append(c)
        level = nxt
    chunk_ids = list(dict.fromkeys(chunks))
    for c in chunk_ids:
        if not remote.has(c):
            raise CorruptObjectError(f"remote {backend.url} lacks object {raw_to_hex(c)}")
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
