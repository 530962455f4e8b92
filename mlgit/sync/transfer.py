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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.errors import CorruptObjectError, FormatError, MlgitError, UnsupportedFormatError
from mlgit.format.compression import decompress
from mlgit.format.config import decode_config, encode_config, without_shared
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
from mlgit.store.fsutil import DurableFile, atomic_write, read_bounded
from mlgit.store.packs import BuiltPack, PackWriter, commit_into, read_index_file
from mlgit.store.store import Store
from mlgit.sync.backend import Backend
from mlgit.sync.packcopy import (
    Downloaded,
    contiguous,
    download_pack,
    pack_end,
    unit_order,
    whole_packs,
)

__all__ = ["RemoteIndex", "TransferStats", "check_remote_config", "closure_postorder",
           "fetch_objects", "iter_objects", "push_objects", "read_objects", "remote_cache_dir",
           "send_objects", "verify_object"]

Progress = Callable[[int, int], None]
OnBad = Callable[[MlgitError], None]
"""Told of bad input that was skipped so that the rest could go on (``Events.problem``)."""
_COALESCE_GAP = 1 << 20
_COPY_THREADS = 2
"""Whole packs copied at once from or to a backend that takes concurrent use."""
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


def check_remote_config(backend: Backend, store: Store | None, create: bool) -> bool:
    """Check the remote store's format; create it (with ``store``'s config) if ``create``.

    Returns False when there is no store there and ``create`` is False (``store``
    may then be None: a reader with no store of its own).
    """
    data = backend.read_config()
    if data is None:
        if not create:
            return False
        if store is None:
            raise ValueError("creating a remote store needs a local store's config")
        backend.init(encode_config(without_shared(store.config)))
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

    With ``save`` False nothing is written: indexes read from the remote wait in
    :attr:`unsaved` until :meth:`save_unsaved` (a reader that caches only what a
    successful operation read: :mod:`mlgit.sync.remoteread`).
    """

    def __init__(self, backend: Backend, cache_dir: Path, on_bad: OnBad | None = None, *,
                 save: bool = True) -> None:
        self.backend = backend
        self.cache_dir = cache_dir
        self.on_bad = on_bad
        self.save = save
        self.entries: dict[RawObjectID, tuple[str, IndexEntry]] = {}
        self.counts: dict[str, int] = {}  # objects in each pack loaded
        self.loaded: set[str] = set()
        self.bad: set[str] = set()
        self.magic_ok: set[str] = set()
        self.unsaved: dict[str, bytes] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the indexes of packs not seen yet."""
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
            self.counts[stem] = len(entries)
            for ent in entries:
                self.entries.setdefault(ent.oid, (stem, ent))

    def _load(self, stem: str) -> list[IndexEntry]:
        """The entries of ``stem``'s index: the cached copy if it is sound, else the remote's."""
        cached = self.cache_dir / f"{stem}.idx"
        try:
            return read_index_file(cached)
        except (FileNotFoundError, NotADirectoryError, FormatError):
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
        if self.save:
            self._write(stem, data)
        else:
            self.unsaved[stem] = data
        return entries

    def index_bytes(self, stem: str) -> bytes:
        """The bytes of pack ``stem``'s index (loaded before), checked against its name again.

        From the cache when it holds a sound copy, else from the remote; FormatError
        naming the remote if they do not hash to ``stem``.
        """
        data = self.unsaved.get(stem)
        if data is None:
            try:
                data = read_bounded(self.cache_dir / f"{stem}.idx", MAX_INDEX_LEN)
                check_index_name(stem, data)
                return data
            except (OSError, FormatError):
                data = self.backend.read_index(stem)
        try:
            if len(data) > MAX_INDEX_LEN:
                raise FormatError(f"{len(data)} bytes, more than the {MAX_INDEX_LEN} an "
                                  "index may have")
            check_index_name(stem, data)
        except FormatError as err:
            raise type(err)(f"remote {self.backend.url}: {stem}.idx: {err}") from None
        return data

    def _write(self, stem: str, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the cache only saves a download next time
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.cache_dir / f"{stem}.idx", data)

    def save_unsaved(self) -> None:
        """Write the indexes that wait in :attr:`unsaved` into the cache (see ``save``)."""
        for stem, data in list(self.unsaved.items()):
            self._write(stem, data)
            del self.unsaved[stem]

    def has(self, oid: RawObjectID) -> bool:
        """True if the remote has the object."""
        return oid in self.entries


# -- push ---------------------------------------------------------------------------
def closure_postorder(store: Store, roots: Iterable[RawObjectID | tuple[RawObjectID, str]],
                      have: Callable[[RawObjectID], bool],
                      children: dict[RawObjectID, list[RawObjectID]] | None = None
                      ) -> list[RawObjectID]:
    """Objects reachable from ``roots`` that ``have`` lacks, every object after its children.

    A root is an id (its role taken from the local index type) or (id, role):
    a note's payload is a tree, a checkpoint record's id a snapshot. Objects
    are decoded in the role they are referenced in (:mod:`mlgit.store.walk`).
    A snapshot or chunk ``have`` reports is not descended into (a store with a
    snapshot has all of it); trees are always walked, so bytes the other side
    holds in another role never hide what a tree references. An object neither
    the local store nor ``have`` has is a CorruptObjectError. ``children``, if
    given, receives what each object of the result that is not a leaf references
    (for :func:`send_objects` to order whole packs).
    """
    order: list[RawObjectID] = []
    emitted: set[RawObjectID] = set()
    seen: set[tuple[RawObjectID, str]] = set()
    pending: dict[tuple[RawObjectID, str], list[RawObjectID]] = {}  # refs of nodes on the stack
    for root in roots:
        oid0, role0 = root if isinstance(root, tuple) else (root, walk.ANY)
        stack: list[tuple[RawObjectID, str, bool]] = [(oid0, role0, False)]
        while stack:
            oid, role, expanded = stack.pop()
            if expanded:
                if oid not in emitted and not have(oid):
                    emitted.add(oid)
                    order.append(oid)
                kids = pending.pop((oid, role), None)
                if children is not None and kids is not None and oid in emitted:
                    children.setdefault(oid, []).extend(kids)
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
                if children is not None:
                    pending[(oid, role)] = [c for c, _, _ in refs]
                for child, child_role, _ in reversed(refs):
                    if (child, child_role) not in seen:
                        stack.append((child, child_role, False))
    return order


def push_objects(store: Store, backend: Backend, roots: Iterable[RawObjectID], remote: RemoteIndex,
                 progress: Progress | None = None,
                 on_total: Callable[[int, int], None] | None = None) -> TransferStats:
    """Send every object reachable from ``roots`` that the remote lacks, as packs."""
    children: dict[RawObjectID, list[RawObjectID]] = {}
    todo = closure_postorder(store, roots, remote.has, children)
    return send_objects(store, backend, todo, remote, progress, on_total, children)


def send_objects(store: Store, backend: Backend, todo: list[RawObjectID], remote: RemoteIndex,
                 progress: Progress | None = None,
                 on_total: Callable[[int, int], None] | None = None,
                 children: dict[RawObjectID, list[RawObjectID]] | None = None) -> TransferStats:
    """Send ``todo`` (each object after everything it references: :func:`closure_postorder`).

    With ``children`` (what :func:`closure_postorder` recorded for ``todo``), a
    local pack of at least half the pack size all of whose objects are sent
    goes as it is (:meth:`Backend.put_pack` of its file and index: a copy
    inside the kernel for a local path); the other objects are packed anew.
    Packs become visible on the remote in an order where nothing arrives
    before what it references (:func:`~mlgit.sync.packcopy.unit_order`); if
    whole packs and new ones reference each other in a cycle, every object is
    packed anew.
    """
    if on_total:
        sizes = [store.objects.entry(o) for o in todo]
        on_total(len(todo), sum(e.stored_len for e in sizes if e is not None))
    stats = TransferStats()
    kids = children or {}
    whole = _local_whole_packs(store, todo) if children is not None and todo else {}
    waves = _push_order(todo, whole, kids) if whole else None
    if waves is None:
        whole, waves = {}, [[_LOOSE]]

    def upload(built: BuiltPack) -> None:
        # Not put into this store: the backend copies it (and makes it durable there);
        # the writer removes the local temporary file afterwards.
        backend.put_pack(built.stem, built.file.close(), built.index)
        stats.packs += 1

    def put_whole(stem: str) -> None:
        path, _, index = whole[stem]
        backend.put_pack(stem, path, index)

    # ``todo`` never repeats an id: no dedup set to keep.
    writer = PackWriter(store.tmp_dir, store.config.pack_size, upload, dedup=False)
    in_whole = {e.oid for _, es, _ in whole.values() for e in es}
    from concurrent.futures import ThreadPoolExecutor  # start-up time

    threads = _COPY_THREADS if backend.concurrent and whole else 1
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="mlgit-push") as pool:
            for wave in waves:  # a wave's units reference only earlier waves': at once
                if any(u in whole for u in wave):
                    writer.commit()  # what earlier waves packed anew is there before them
                futures = [(u, pool.submit(put_whole, u)) for u in wave if u in whole]
                for u in wave:
                    if u in whole:
                        continue
                    for oid in todo:
                        if oid in in_whole or (u == _LEAVES and oid in kids) or (
                                u == _LOOSE and whole and oid not in kids):
                            continue
                        e, stored = store.objects.get_stored(oid)
                        writer.add(oid, e.type, e.codec, e.raw_len, stored)
                        stats.objects += 1
                        stats.bytes += len(stored)
                        if progress:
                            progress(1, len(stored))
                for u, fut in futures:
                    fut.result()
                    entries = whole[u][1]
                    n = sum(e.stored_len for e in entries)
                    stats.packs += 1
                    stats.objects += len(entries)
                    stats.bytes += n
                    if progress:
                        progress(len(entries), n)
            writer.commit()
    except BaseException:
        writer.abort()
        raise
    remote.refresh()
    return stats


def _push_order(todo: list[RawObjectID], whole: dict[str, tuple[Path, list[IndexEntry], bytes]],
                children: dict[RawObjectID, list[RawObjectID]]) -> list[list[str]] | None:
    """The waves in which :func:`send_objects` makes its units visible, or None (a cycle).

    Units: each whole pack (its name), :data:`_LEAVES` (the other objects that
    reference nothing) and :data:`_LOOSE` (the other objects that do).
    """
    member = {e.oid: stem for stem, (_, es, _) in whole.items() for e in es}

    def unit(o: RawObjectID) -> str:
        return member.get(o) or (_LOOSE if o in children else _LEAVES)

    sent = set(todo)
    deps: dict[str, set[str]] = {}
    for parent, kids in children.items():
        if parent not in sent:
            continue  # from a closure that was not sent (its planning failed)
        up = unit(parent)
        for c in kids:
            uc = unit(c) if c in sent else up
            if uc != up:
                deps.setdefault(up, set()).add(uc)
    return unit_order([_LEAVES, *whole, _LOOSE], deps)


_LEAVES = "leaves"
"""In :func:`send_objects`' plan: the unit of the objects referencing nothing not in a whole
pack (packed anew first; not a pack's name)."""


def _local_whole_packs(store: Store, todo: list[RawObjectID]
                       ) -> dict[str, tuple[Path, list[IndexEntry], bytes]]:
    """Local packs to send whole: (file, entries by offset, index bytes) by name.

    Those of at least half the pack size whose every object is in ``todo``, whose
    entries lie back to back up to the end of the file, and whose index still
    hashes to its name; each object is counted in one pack only.
    """
    want = set(todo)
    floor = store.config.pack_size // 2
    out: dict[str, tuple[Path, list[IndexEntry], bytes]] = {}
    claimed: set[RawObjectID] = set()
    for reader in store.objects.readers():
        path = reader.path
        try:
            if path.stat().st_size < floor:
                continue
            if any(e.oid not in want or e.oid in claimed for e in reader.entries):
                continue
            entries = sorted(reader.entries, key=lambda e: e.offset)
            if not contiguous(entries) or pack_end(entries) != path.stat().st_size:
                continue
            stem = path.name[:-len(".pack")]
            index = read_bounded(path.with_name(stem + ".idx"), MAX_INDEX_LEN)
            check_index_name(stem, index)
        except (OSError, FormatError):
            continue  # gone meanwhile (gc), or not as expected: its objects are packed anew
        claimed.update(e.oid for e in entries)
        out[stem] = (path, entries, index)
    return out


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
    return {e.oid: (e, stored) for e, stored, _ in iter_objects(backend, remote, oids, bad)}


def iter_objects(backend: Backend, remote: RemoteIndex, oids: list[RawObjectID],
                 bad: dict[RawObjectID, MlgitError] | None = None
                 ) -> Iterator[tuple[IndexEntry, bytes, bytes]]:
    """:func:`read_objects`, one object at a time: (entry, stored bytes, verified bytes).

    The reads are grouped as :func:`read_objects` groups them (at most one group,
    of at most 64 MiB, is held at a time); objects come in pack and offset order,
    not in the order of ``oids``.
    """
    by_pack: dict[str, list[IndexEntry]] = {}
    for oid in oids:
        stem, e = remote.entries[oid]
        by_pack.setdefault(stem, []).append(e)
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
                    stored, data = verify_object(f"remote {backend.url}", stem, blob, e, start)
                except CorruptObjectError as err:
                    if bad is None:
                        raise
                    bad[e.oid] = err
                    continue
                yield e, stored, data


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


def verify_object(where: str, stem: str, blob: bytes | memoryview, e: IndexEntry, base: int
                  ) -> tuple[bytes, bytes]:
    """Entry ``e`` of pack ``stem`` in ``blob`` (the pack's bytes from offset ``base``), checked.

    Returns its stored bytes and its bytes once its header agrees with ``e``, it
    decompresses to ``e.raw_len`` bytes and they hash to its id; else
    CorruptObjectError naming ``where`` (``remote URL``).
    """
    off = e.offset - base
    oid = raw_to_hex(e.oid)
    try:
        head = decode_entry_header(blob, off)
        if (head.oid, head.type, head.codec, head.raw_len, head.stored_len) != (
                e.oid, e.type, e.codec, e.raw_len, e.stored_len):
            raise FormatError("entry header disagrees with the index")
        stored = bytes(blob[off + ENTRY_HEADER.size: off + ENTRY_HEADER.size + e.stored_len])
        data = decompress(e.codec, stored, e.raw_len)
    except FormatError as err:
        raise CorruptObjectError(f"{where} sent a corrupt object {oid} ({stem}): {err}; "
                                 "nothing of it was kept") from None
    if digest_bytes(data) != e.oid:
        raise CorruptObjectError(f"{where} sent object {oid} whose bytes do not match its id; "
                                 "nothing of it was kept")
    return stored, data


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
    # The local store had no pack when the fetch began (a new clone): nothing is looked up
    # there (each miss would list its packs again). What another process adds meanwhile
    # is only fetched twice.
    empty: bool = False


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
    w = _Walk(empty=not store.objects.readers())
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
    failed: dict[RawObjectID, MlgitError] = {}
    with _WholePacks(store, backend, remote, w, keep, chunk_ids, stats, progress) as whole:
        # Leaves first (whole packs holding only leaves are committed once checked), in
        # batches that bound memory; then structure from the bottom up.
        loose = [c for c in chunk_ids if not whole.has(c)]
        whole.download(failed)  # a demoted pack's good leaves are written from its copy
        _store_leaves(store, backend, remote, loose, w.leaf_type, stats, progress, failed)
        if failed:
            w.broken.update(((c, walk.LEAF), err) for c, err in failed.items())
            tainted = _taint(w, root_nodes)
            keep = _reachable(w, [r for r in root_nodes if r not in tainted])
        order = whole.plan(keep)  # demotes what cannot go whole: its leaves go in the batch
        store.objects.flush()  # every leaf is durable before any structure names it
        for unit in order:
            if unit is not None:
                whole.commit(unit)
                continue
            for oid, r in _postorder(w, keep):
                if r != walk.LEAF and oid in w.structure and not whole.has(oid):
                    type_, e, stored = w.structure[oid]
                    store.objects.put_stored(oid, type_, e.codec, e.raw_len, stored)
                    stats.objects += 1
                    stats.bytes += len(stored)
            store.objects.flush()
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


_LOOSE = ""
"""In :class:`_WholePacks`' plans: the unit of structure not in a whole pack (no stem is "")."""


class _WholePacks:
    """The remote packs a fetch copies whole (:mod:`mlgit.sync.packcopy`), as it goes.

    A remote pack qualifies when the fetch writes every object in it, each under
    the type the remote's index gives it, and it is at least half the local pack
    size (smaller ones are rebuilt into full packs, as before). It is downloaded
    into ``tmp/`` and checked object by object; one holding only leaves is then
    committed at once, one holding structure waits for :meth:`plan`, which
    orders the commits so that nothing is committed before what it references.
    A pack that cannot go whole (an object failed a check, a root it serves was
    not fetched, an ordering cycle) is demoted: its good leaves go into the
    store's writer and its structure is written as any other. Used as a context
    manager: what was not committed is removed on the way out.
    """

    def __init__(self, store: Store, backend: Backend, remote: RemoteIndex, w: _Walk,
                 keep: dict[Node, None], chunk_ids: list[RawObjectID], stats: TransferStats,
                 progress: Progress | None) -> None:
        self.store, self.backend, self.remote, self.w = store, backend, remote, w
        self.stats, self.progress = stats, progress
        self.leaves = set(chunk_ids)
        self.wanted: dict[RawObjectID, int] = {c: w.leaf_type[c] for c in chunk_ids}
        self.structure: set[RawObjectID] = set()
        for oid, r in keep:
            if r != walk.LEAF and oid in w.structure:
                t = w.structure[oid][0]
                self.structure.add(oid)
                if self.wanted.setdefault(oid, t) != t:
                    self.wanted[oid] = -1  # wanted in two roles: never whole
        ents = remote.entries
        floor = store.config.pack_size // 2
        self.packs = {stem: es for stem, es in whole_packs(
            self.wanted, lambda o: ents[o][0] if o in ents else None, remote.counts,
            lambda o: ents[o][1]).items() if pack_end(es) >= floor}
        self.member: dict[RawObjectID, str] = {e.oid: s for s, es in self.packs.items()
                                               for e in es}
        self.got: dict[str, tuple[Downloaded, bytes]] = {}
        self.publish = commit_into(store.objects.packs_dir, lambda _pack, _idx: None)

    def __enter__(self) -> _WholePacks:
        return self

    def __exit__(self, *exc: object) -> None:
        for got, _ in self.got.values():
            got.file.discard()
        self.got.clear()

    def has(self, oid: RawObjectID) -> bool:
        """True if ``oid`` comes with a whole pack (not demoted)."""
        return oid in self.member

    def _on_entry(self, e: IndexEntry) -> None:
        if self.progress and e.oid in self.leaves:
            self.progress(1, e.stored_len)

    def download(self, failed: dict[RawObjectID, MlgitError]) -> None:
        """Download and check every whole pack; commit those of leaves only.

        Leaves that fail a check go into ``failed``; their pack is demoted. A
        backend that takes concurrent reads copies two packs at a time (checking
        one while the other is copied, committing while the next ones are).
        """
        todo: list[tuple[str, list[IndexEntry], bytes]] = []
        for stem, entries in list(self.packs.items()):
            try:
                todo.append((stem, entries, self.remote.index_bytes(stem)))
            except FormatError:
                self._forget(stem)  # the remote changed under us: read it object by object
        if not todo:
            return
        from concurrent.futures import Future, ThreadPoolExecutor  # start-up time

        threads = _COPY_THREADS if self.backend.concurrent else 1
        with ThreadPoolExecutor(threads, thread_name_prefix="mlgit-fetch") as pool:
            futures: list[tuple[str, Future[Downloaded]]] = []
            try:
                for stem, entries, index in todo:
                    f = DurableFile(self.store.tmp_dir, "pack")
                    self.got[stem] = (Downloaded(f, entries), index)  # discarded on the way out
                    futures.append((stem, pool.submit(download_pack, self.backend, stem, entries,
                                                      f, self._on_entry)))
                for stem, fut in futures:
                    got = fut.result()
                    self.got[stem] = (got, self.got[stem][1])
                    if got.bad:
                        failed.update((o, err) for o, err in got.bad.items() if o in self.leaves)
                        self.demote(stem)
                    elif not any(e.oid in self.structure for e in got.entries):
                        self.commit(stem)
            except BaseException:
                for _, fut in futures:
                    fut.cancel()
                raise

    def _forget(self, stem: str) -> None:
        for e in self.packs.pop(stem):
            self.member.pop(e.oid, None)

    def demote(self, stem: str) -> None:
        """Write the good leaves of downloaded pack ``stem`` through the store's writer."""
        got, _ = self.got.pop(stem)
        try:
            fd = os.open(got.file.close(), os.O_RDONLY | os.O_CLOEXEC)
            try:
                for e in got.entries:
                    if e.oid not in self.leaves or e.oid in got.bad:
                        continue
                    stored = os.pread(fd, e.stored_len, e.offset + ENTRY_HEADER.size)
                    self.store.objects.put_stored(e.oid, self.wanted[e.oid], e.codec,
                                                  e.raw_len, stored, force=True)
                    self.stats.objects += 1
                    self.stats.bytes += e.stored_len
            finally:
                os.close(fd)
        finally:
            got.file.discard()
            self._forget(stem)

    def commit(self, stem: str) -> None:
        """Put downloaded pack ``stem`` into the store (pack, then index, each durable)."""
        got, index = self.got.pop(stem)
        try:
            self.publish(BuiltPack(got.file, stem, index, got.entries))
        finally:
            got.file.discard()  # nothing once it is in place
        self.stats.objects += len(got.entries)
        self.stats.bytes += sum(e.stored_len for e in got.entries)
        self.stats.packs += 1

    def plan(self, keep: dict[Node, None]) -> list[str | None]:
        """The order of the commits left: pack stems, and None for the structure not in one.

        Packs holding structure no longer kept (a root failed) are demoted first;
        if the packs and the other structure reference each other in a cycle,
        every pack left is demoted (the structure is then written as before).
        """
        kept = {oid for oid, r in keep if r != walk.LEAF and oid in self.w.structure}
        for stem in [s for s, (g, _) in self.got.items()
                     if any(e.oid in self.structure and e.oid not in kept for e in g.entries)]:
            self.demote(stem)
        while True:
            deps: dict[str, set[str]] = {}
            for node in keep:
                oid, r = node
                if r == walk.LEAF or oid not in kept:
                    continue
                up = self._unit(oid, r)
                for child in self.w.graph.get(node, ()):
                    uc = self._unit(*child) if child in keep else None
                    if uc is not None and uc != up:
                        deps.setdefault(up or _LOOSE, set()).add(uc)
            waves = unit_order([*self.got, _LOOSE], deps)
            if waves is not None:
                return [u or None for wave in waves for u in wave]
            for stem in list(self.got):
                self.demote(stem)

    def _unit(self, oid: RawObjectID, role: str) -> str | None:
        """The unit that commits ``oid``: a pending pack's stem, _LOOSE, or None (durable)."""
        stem = self.member.get(oid)
        if stem is not None and stem in self.got:
            return stem
        if role != walk.LEAF and oid in self.w.structure:
            return _LOOSE
        return None


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
    have = not w.empty and store.objects.has_committed(oid)
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
    def have(oid: RawObjectID) -> bool:
        return not w.empty and store.objects.has_committed(oid)

    failed: dict[RawObjectID, MlgitError] = {}
    got = read_objects(backend, remote, list(dict.fromkeys(o for o, _ in level if not have(o))),
                       failed)
    nxt: list[Node] = []
    for node in level:
        oid, r = node
        local = None if w.empty else store.objects.entry(oid)
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


def _store_leaves(store: Store, backend: Backend, remote: RemoteIndex, leaves: list[RawObjectID],
                  types: dict[RawObjectID, int], stats: TransferStats, progress: Progress | None,
                  failed: dict[RawObjectID, MlgitError]) -> None:
    """Read and store ``leaves`` in batches of about 64 MiB (:func:`_store_batch`)."""
    batch: list[RawObjectID] = []
    size = 0
    for c in leaves:
        batch.append(c)
        size += remote.entries[c][1].stored_len
        if size >= 64 << 20:
            _store_batch(store, backend, remote, batch, types, stats, progress, failed)
            batch, size = [], 0
    _store_batch(store, backend, remote, batch, types, stats, progress, failed)


def _store_batch(store: Store, backend: Backend, remote: RemoteIndex, batch: list[RawObjectID],
                 types: dict[RawObjectID, int], stats: TransferStats, progress: Progress | None,
                 failed: dict[RawObjectID, MlgitError]) -> None:
    """Read and store a batch of leaves (as ``types`` says); failures go into ``failed``."""
    if not batch:
        return
    for oid, (e, stored) in read_objects(backend, remote, batch, failed).items():
        # Missing here when the walk looked (``force`` skips asking the store again).
        store.objects.put_stored(oid, types.get(oid, OBJ_CHUNK), e.codec, e.raw_len, stored,
                                 force=True)
        stats.objects += 1
        stats.bytes += len(stored)
        if progress:
            progress(1, len(stored))


def remote_cache_dir(store: Store, url: str) -> Path:
    """Where the indexes of the remote at ``url`` are cached: ``cache/remotes/<h>``.

    ``<h>`` is the hex XXH3-128 of the URL as configured (its file-system encoding).
    """
    return store.cache_dir / "remotes" / digest_hex(os.fsencode(url))
