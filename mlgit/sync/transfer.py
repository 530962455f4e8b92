"""Moving objects between the local store and a :class:`Backend`, by id, as packs.

Negotiation is by object id: the remote's pack indexes say what it has (they
are cached locally; packs are immutable, so an index never changes). Both
directions keep one invariant, on which resuming depends: **an object is
written only after everything it references** (chunks, then trees from the
bottom up, then snapshots, then refs). So a store that has an object has all
of it, an interrupted push or fetch leaves both sides valid, and running it
again sends only what is still missing.

Objects travel as stored (compressed) bytes. Nothing a remote says is taken on
trust (docs/format.md, "Reading"): each index must be named by the hash of its
bytes, hold at most ``MAX_INDEX_ENTRIES`` entries and point inside a pack of at
most ``MAX_PACK_LEN`` bytes; each pack must start with the pack magic (checked
on the first read from it); every object fetched is verified against its id,
every tree and snapshot must decode in the role it is fetched in, and every
chunk must have the length its tree records, all before anything is stored.
Objects are stored under the type of that role, never the type the remote's
index claims. A remote that fails a check is named in the error and nothing of
what depends on the bad object is kept.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.errors import CorruptObjectError, FormatError, MlgitError, UnsupportedFormatError
from mlgit.format.compression import decompress
from mlgit.format.config import decode_config, encode_config
from mlgit.format.ids import RawObjectID, digest_bytes, digest_hex, raw_to_hex
from mlgit.format.limits import MAX_INDEX_LEN, MAX_PROMOTION_LEN, MAX_SNAPSHOT_LEN
from mlgit.format.pack import (
    ENTRY_HEADER,
    OBJ_BLOB,
    OBJ_CHUNK,
    PACK_MAGIC,
    IndexEntry,
    check_index_name,
    check_pack_magic,
    decode_entry_header,
    decode_index,
)
from mlgit.store import walk
from mlgit.store.fsutil import atomic_write
from mlgit.store.packs import BuiltPack, PackWriter, read_index_file
from mlgit.store.store import Store
from mlgit.sync.backend import Backend

__all__ = ["RemoteIndex", "TransferStats", "check_remote_config", "closure_postorder",
           "fetch_objects", "push_objects", "read_objects", "remote_cache_dir", "send_objects"]

Progress = Callable[[int, int], None]
OnBad = Callable[[MlgitError], None]
"""Told of bad input that was skipped so that the rest could go on (``Events.problem``)."""
_COALESCE_GAP = 1 << 20
_ROLE_TYPE = walk.ROLE_TYPES
_ROLE_MAX = {walk.SNAPSHOT: MAX_SNAPSHOT_LEN, walk.PROMOTION: MAX_PROMOTION_LEN,
             walk.TRAIL: MAX_PROMOTION_LEN}
"""The most bytes an object of a role may have, checked before it is read from a remote."""


@dataclass
class TransferStats:
    """What a transfer moved."""

    objects: int = 0
    bytes: int = 0
    packs: int = 0
    skipped: int = 0
    refs: list[str] = field(default_factory=list)
    failed: set[RawObjectID] = field(default_factory=set)  # roots not fetched (a check failed)


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
    """Every object the remote has, from its pack indexes (cached under ``cache_dir``).

    Each index, fetched or cached, is read bounded (``MAX_INDEX_LEN``), must be
    named by the hash of its bytes and decode with every entry inside a pack of
    at most ``MAX_PACK_LEN`` bytes; a cached copy that fails is read again from
    the remote. A remote index that fails is a FormatError naming the remote:
    passed to ``on_bad`` and its pack left out (so the rest can still be used),
    or raised without ``on_bad``. :attr:`magic_ok` holds the packs whose magic
    has been checked in this session.
    """

    def __init__(self, backend: Backend, cache_dir: Path, on_bad: OnBad | None = None) -> None:
        self.backend = backend
        self.cache_dir = cache_dir
        self.on_bad = on_bad
        self.entries: dict[RawObjectID, tuple[str, IndexEntry]] = {}
        self.loaded: set[str] = set()
        self.bad: set[str] = set()
        self.magic_ok: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Read the indexes of packs not seen yet."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for stem in self.backend.list_packs():
            if stem in self.loaded or stem in self.bad:
                continue
            try:
                entries = self._load(stem)
            except FormatError as err:
                self.bad.add(stem)
                if self.on_bad is None:
                    raise
                self.on_bad(err)
                continue
            self.loaded.add(stem)
            for ent in entries:
                self.entries.setdefault(ent.oid, (stem, ent))

    def _load(self, stem: str) -> list[IndexEntry]:
        """The entries of ``stem``'s index: the cached copy if it is sound, else the remote's."""
        cached = self.cache_dir / f"{stem}.idx"
        try:
            return read_index_file(cached)
        except (FileNotFoundError, FormatError):
            pass  # not cached yet, or a damaged copy: read the remote's
        data = self.backend.read_index(stem)  # its errors name the remote and the file
        try:
            if len(data) > MAX_INDEX_LEN:
                raise FormatError(f"{len(data)} bytes, more than the {MAX_INDEX_LEN} an "
                                  "index may have")
            entries = decode_index(data)
            check_index_name(stem, data)
        except FormatError as err:
            raise type(err)(f"remote {self.backend.url}: {stem}.idx: {err}") from None
        with contextlib.suppress(OSError):  # the cache only saves a download next time
            atomic_write(cached, data)
        return entries

    def has(self, oid: RawObjectID) -> bool:
        """True if the remote has the object."""
        return oid in self.entries


# -- push ---------------------------------------------------------------------------
def closure_postorder(store: Store, roots: Iterable[RawObjectID | tuple[RawObjectID, str]],
                      have: Callable[[RawObjectID], bool]) -> list[RawObjectID]:
    """Objects reachable from ``roots`` that ``have`` lacks, every object after its children.

    A root is an id (its role taken from the local index type) or (id, role):
    a note's payload is a tree, a checkpoint record's id a snapshot. Objects
    are decoded in the role they are referenced in (:mod:`mlgit.store.walk`).
    A snapshot or chunk ``have`` reports is not descended into (a store with a
    snapshot has all of it); trees are always walked, so bytes the other side
    holds in another role never hide what a tree references. An object neither
    the local store nor ``have`` has is a CorruptObjectError.
    """
    order: list[RawObjectID] = []
    emitted: set[RawObjectID] = set()
    seen: set[tuple[RawObjectID, str]] = set()
    for root in roots:
        oid0, role0 = root if isinstance(root, tuple) else (root, walk.ANY)
        stack: list[tuple[RawObjectID, str, bool]] = [(oid0, role0, False)]
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


def push_objects(store: Store, backend: Backend, roots: Iterable[RawObjectID], remote: RemoteIndex,
                 progress: Progress | None = None,
                 on_total: Callable[[int, int], None] | None = None) -> TransferStats:
    """Send every object reachable from ``roots`` that the remote lacks, as packs."""
    return send_objects(store, backend, closure_postorder(store, roots, remote.has), remote,
                        progress, on_total)


def send_objects(store: Store, backend: Backend, todo: list[RawObjectID], remote: RemoteIndex,
                 progress: Progress | None = None,
                 on_total: Callable[[int, int], None] | None = None) -> TransferStats:
    """Send ``todo`` (each object after everything it references: :func:`closure_postorder`)."""
    if on_total:
        sizes = [store.objects.entry(o) for o in todo]
        on_total(len(todo), sum(e.stored_len for e in sizes if e is not None))
    stats = TransferStats()

    def upload(built: BuiltPack) -> None:
        # Not put into this store: the backend copies it (and makes it durable there);
        # the writer removes the local temporary file afterwards.
        backend.put_pack(built.stem, built.file.close(), built.index)
        stats.packs += 1

    # ``todo`` never repeats an id: no dedup set to keep.
    writer = PackWriter(store.tmp_dir, store.config.pack_size, upload, dedup=False)
    try:
        for oid in todo:
            e, stored = store.objects.get_stored(oid)
            writer.add(oid, e.type, e.codec, e.raw_len, stored)
            stats.objects += 1
            stats.bytes += len(stored)
            if progress:
                progress(1, len(stored))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    remote.refresh()
    return stats


# -- fetch --------------------------------------------------------------------------
def read_objects(backend: Backend, remote: RemoteIndex, oids: list[RawObjectID],
                 bad: dict[RawObjectID, MlgitError] | None = None
                 ) -> dict[RawObjectID, tuple[IndexEntry, bytes]]:
    """Read objects (stored bytes, verified) with as few ranged reads as possible.

    Each pack's magic is checked on the first read from it in this session (that
    read is extended to offset 0 when it starts within ``_COALESCE_GAP`` of it,
    else 8 bytes are read first). An object that fails a check (bad magic, a
    pack shorter than its index says, bytes that do not match) goes into ``bad``
    with its error and is left out of the result; without ``bad`` the error is
    raised.
    """
    by_pack: dict[str, list[IndexEntry]] = {}
    for oid in oids:
        stem, e = remote.entries[oid]
        by_pack.setdefault(stem, []).append(e)
    out: dict[RawObjectID, tuple[IndexEntry, bytes]] = {}
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
            group, i = entries[i:j + 1], j + 1
            try:
                start = _checked_start(backend, remote, stem, group[0].offset)
                blob = backend.read_pack(stem, start, end - start)
                if stem not in remote.magic_ok:
                    _check_magic(backend, stem, blob[:len(PACK_MAGIC)])
                    remote.magic_ok.add(stem)
            except FormatError as err:
                if bad is None:
                    raise
                bad.update((e.oid, err) for e in group)
                continue
            for e in group:
                try:
                    out[e.oid] = (e, _verified(backend, stem, blob, e, start))
                except CorruptObjectError as err:
                    if bad is None:
                        raise
                    bad[e.oid] = err
    return out


def _checked_start(backend: Backend, remote: RemoteIndex, stem: str, offset: int) -> int:
    """Where to start a read at ``offset`` so that the pack's magic gets checked once.

    0 when the magic is still unchecked and ``offset`` is near it; otherwise
    ``offset`` (first reading and checking the 8 magic bytes if still unchecked).
    """
    if stem in remote.magic_ok:
        return offset
    if offset <= _COALESCE_GAP:
        return 0
    _check_magic(backend, stem, backend.read_pack(stem, 0, len(PACK_MAGIC)))
    remote.magic_ok.add(stem)
    return offset


def _check_magic(backend: Backend, stem: str, head: bytes) -> None:
    try:
        check_pack_magic(head)
    except FormatError as err:
        raise CorruptObjectError(f"remote {backend.url}: {stem}.pack: {err}") from None


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


Node = tuple[RawObjectID, str]
"""An object in the role it is fetched in: (raw id, walk role)."""


@dataclass
class _Walk:
    """What :func:`fetch_objects` learns before it stores anything."""

    graph: dict[Node, list[Node]] = field(default_factory=dict)  # structure -> children
    broken: dict[Node, MlgitError] = field(default_factory=dict)  # fails a check itself
    structure: dict[RawObjectID, tuple[int, IndexEntry, bytes]] = field(default_factory=dict)
    leaf_type: dict[RawObjectID, int] = field(default_factory=dict)  # leaves to fetch: stored type
    seen: set[Node] = field(default_factory=set)


def fetch_objects(store: Store, backend: Backend, roots: Iterable[RawObjectID], remote: RemoteIndex,
                  *, role: str = walk.SNAPSHOT, lengths: dict[RawObjectID, int] | None = None,
                  history: bool = True, chunks_too: bool = True,
                  progress: Progress | None = None,
                  on_total: Callable[[int, int], None] | None = None,
                  on_bad: OnBad | None = None) -> TransferStats:
    """Bring every object reachable from ``roots`` that the local store lacks.

    ``roots`` are used in ``role``: snapshots (refs, pointers, revisions), leaves
    (``mlgit.open``'s chunks, whose lengths ``lengths`` gives), or
    :data:`~mlgit.store.walk.ANY` (each root's index type decides: a repair).
    ``history`` False skips snapshots' parents (just these versions);
    ``chunks_too`` False brings only snapshots and trees (``mlgit.open`` then
    fetches the chunks of the one file it reads). Trees and snapshots are read
    level by level, from the local store when already there (a lazy fetch may
    have left them without their chunks), else from the remote; chunks are read
    last, grouped into coalesced ranged reads, and written before the trees
    that name them.

    Before anything is stored, every object is checked: verified against its
    id, a snapshot or tree decoded as one, a chunk's length compared with its
    tree's (or ``lengths``). A root whose closure fails a check is not fetched
    (what it shares with good roots still is): its error, naming the remote and
    the object, goes to ``on_bad``, or, without ``on_bad``, the first one is
    raised once everything else is stored. Objects are stored under the type of
    their role (chunk, blob, tree, snapshot), whatever the remote's index says.
    """
    stats = TransferStats()
    w = _Walk()
    root_nodes: list[Node] = []
    level: list[Node] = []
    for oid in dict.fromkeys(roots):
        r = role if role != walk.ANY else _root_role(store, remote, oid)
        node = (oid, r)
        if node not in root_nodes:
            root_nodes.append(node)
        n = lengths.get(oid) if lengths is not None else None
        kind = _leaf_root_type(store, remote, oid) if role == walk.ANY else OBJ_CHUNK
        _visit(store, backend, remote, w, node, n, None, kind, level)
    while level:
        level = _walk_level(store, backend, remote, w, level, history, chunks_too)
    tainted = _taint(w, root_nodes)
    keep = _reachable(w, [r for r in root_nodes if r not in tainted])
    chunk_ids = [oid for oid, r in keep if r == walk.LEAF and oid in w.leaf_type]
    if on_total:
        on_total(len(chunk_ids), sum(remote.entries[c][1].stored_len for c in chunk_ids))
    # Leaves first, in batches that bound memory, then structure from the bottom up.
    failed: dict[RawObjectID, MlgitError] = {}
    batch: list[RawObjectID] = []
    size = 0
    for c in chunk_ids:
        batch.append(c)
        size += remote.entries[c][1].stored_len
        if size >= 64 << 20:
            _store_batch(store, backend, remote, batch, w.leaf_type, stats, progress, failed)
            batch, size = [], 0
    _store_batch(store, backend, remote, batch, w.leaf_type, stats, progress, failed)
    if failed:
        w.broken.update(((c, walk.LEAF), err) for c, err in failed.items())
        tainted = _taint(w, root_nodes)
        keep = _reachable(w, [r for r in root_nodes if r not in tainted])
    for oid, r in _postorder(w, keep):
        if r == walk.LEAF or oid not in w.structure:
            continue
        type_, e, stored = w.structure[oid]
        store.objects.put_stored(oid, type_, e.codec, e.raw_len, stored)
        stats.objects += 1
        stats.bytes += len(stored)
    store.objects.flush()
    stats.failed = {oid for oid, r in root_nodes if (oid, r) in tainted}
    problems = [_not_fetched(node, tainted[node], node in w.broken)
                for node in root_nodes if node in tainted]
    for err in problems:
        if on_bad is not None:
            on_bad(err)
    if problems and on_bad is None:
        raise problems[0]
    return stats


def _root_role(store: Store, remote: RemoteIndex, oid: RawObjectID) -> str:
    """The role of a root given as :data:`~mlgit.store.walk.ANY`: from its index type."""
    e = store.objects.entry(oid)
    if e is None and remote.has(oid):
        e = remote.entries[oid][1]
    return walk.resolve_role(walk.ANY, e.type) if e is not None else walk.SNAPSHOT


def _leaf_root_type(store: Store, remote: RemoteIndex, oid: RawObjectID) -> int:
    """The type to store a leaf root of unknown role as: chunk or blob, as its index says."""
    e = store.objects.entry(oid)
    if e is None and remote.has(oid):
        e = remote.entries[oid][1]
    return OBJ_BLOB if e is not None and e.type == OBJ_BLOB else OBJ_CHUNK


def _visit(store: Store, backend: Backend, remote: RemoteIndex, w: _Walk, node: Node,
           length: int | None, parent: Node | None, leaf_type: int, level: list[Node]) -> None:
    """Take note of ``node``, referenced by ``parent`` (None: a root) with ``length``.

    Leaves the local store lacks are queued for fetching, structure objects for
    the next level; what fails a check before any read is marked broken (a
    chunk whose length disagrees with its tree breaks the tree).
    """
    oid, r = node
    have = store.objects.has_committed(oid)
    url = backend.url
    if not have and remote.has(oid):
        e = remote.entries[oid][1]
        if r == walk.LEAF and length is not None and e.raw_len != length:
            where = f"{parent[1]} {raw_to_hex(parent[0])}" if parent else "its tree"
            w.broken[parent or node] = CorruptObjectError(
                f"remote {url} has chunk {raw_to_hex(oid)} of {e.raw_len} bytes; "
                f"{where} says {length}")
        if r in _ROLE_MAX and e.raw_len > _ROLE_MAX[r]:
            w.broken[node] = CorruptObjectError(
                f"remote {url}: {r} {raw_to_hex(oid)} claims {e.raw_len} bytes, more "
                f"than the {_ROLE_MAX[r]} a {r} may have")
    if node in w.seen:
        return
    w.seen.add(node)
    if node in w.broken:
        return
    if not have and not remote.has(oid):
        what = "object" if r == walk.LEAF else r
        w.broken[node] = CorruptObjectError(f"remote {url} lacks {what} {raw_to_hex(oid)}")
        return
    if r == walk.LEAF:
        if not have:
            w.leaf_type.setdefault(oid, leaf_type)
        return
    level.append(node)


def _walk_level(store: Store, backend: Backend, remote: RemoteIndex, w: _Walk,
                level: list[Node], history: bool, chunks_too: bool) -> list[Node]:
    """Read and decode one level of trees and snapshots; return the next level."""
    have = store.objects.has_committed
    failed: dict[RawObjectID, MlgitError] = {}
    got = read_objects(backend, remote, list(dict.fromkeys(o for o, _ in level if not have(o))),
                       failed)
    nxt: list[Node] = []
    for node in level:
        oid, r = node
        local = store.objects.entry(oid)
        where = "the local store" if local is not None else f"remote {backend.url}"
        if oid in failed:
            w.broken[node] = failed[oid]  # could not be read (its error names the remote)
            continue
        try:
            if local is not None:
                e, data, stored = local, store.objects.get(oid), b""
            else:
                e, stored = got[oid]
                data = decompress(e.codec, stored, e.raw_len)
            refs = walk.references(r, data, history=history, chunks=chunks_too)
        except CorruptObjectError as err:
            w.broken[node] = err
            continue
        except (FormatError, ValueError) as err:
            w.broken[node] = CorruptObjectError(
                f"{where}: {r} {raw_to_hex(oid)} does not decode as a {r}: {err}")
            continue
        if local is None:
            w.structure.setdefault(oid, (_ROLE_TYPE[r], e, stored))
        children = w.graph.setdefault(node, [])
        for c, cr, n in refs:
            child = (c, cr)
            children.append(child)
            kind = OBJ_CHUNK if n is not None else OBJ_BLOB  # a tree's chunk, a config blob
            _visit(store, backend, remote, w, child, n, node, kind, nxt)
    return nxt


def _taint(w: _Walk, roots: list[Node]) -> dict[Node, MlgitError]:
    """Every node reachable from ``roots`` whose closure holds a broken node, with its error."""
    bad: dict[Node, MlgitError] = {}
    done: set[Node] = set()
    for root in roots:
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            kids = w.graph.get(node, [])
            if expanded:
                err = w.broken.get(node) or next((bad[c] for c in kids if c in bad), None)
                if err is not None:
                    bad[node] = err
                continue
            if node in done:
                continue
            done.add(node)
            stack.append((node, True))
            stack.extend((c, False) for c in kids if c not in done)
    return bad


def _reachable(w: _Walk, roots: list[Node]) -> dict[Node, None]:
    """Every node reachable from ``roots``, in a stable order."""
    out: dict[Node, None] = {}
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        if node in out:
            continue
        out[node] = None
        stack.extend(reversed([c for c in w.graph.get(node, []) if c not in out]))
    return out


def _postorder(w: _Walk, nodes: dict[Node, None]) -> list[Node]:
    """``nodes``, each after every node of ``nodes`` it (transitively) references."""
    order: list[Node] = []
    done: set[Node] = set()
    for root in nodes:
        if root in done:
            continue
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node in done:
                continue
            done.add(node)
            stack.append((node, True))
            stack.extend((c, False) for c in w.graph.get(node, [])
                         if c in nodes and c not in done)
    return order


def _not_fetched(node: Node, err: MlgitError, itself: bool) -> MlgitError:
    """The problem to report for a root that was not fetched because of ``err``."""
    if itself:
        return err
    oid, r = node
    return type(err)(f"{err} (so {r} {raw_to_hex(oid)} was not fetched)")


def _store_batch(store: Store, backend: Backend, remote: RemoteIndex, batch: list[RawObjectID],
                 types: dict[RawObjectID, int], stats: TransferStats, progress: Progress | None,
                 failed: dict[RawObjectID, MlgitError]) -> None:
    """Read and store a batch of leaves (as ``types`` says); failures go into ``failed``."""
    if not batch:
        return
    for oid, (e, stored) in read_objects(backend, remote, batch, failed).items():
        store.objects.put_stored(oid, types.get(oid, OBJ_CHUNK), e.codec, e.raw_len, stored)
        stats.objects += 1
        stats.bytes += len(stored)
        if progress:
            progress(1, len(stored))


def remote_cache_dir(store: Store, url: str) -> Path:
    """Where the indexes of the remote at ``url`` are cached: ``cache/remotes/<h>``.

    ``<h>`` is the hex XXH3-128 of the URL as configured (its file-system encoding).
    """
    return store.cache_dir / "remotes" / digest_hex(os.fsencode(url))
