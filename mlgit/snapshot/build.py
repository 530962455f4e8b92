"""Build the tree of a directory or file: stat cache first, hash only what changed.

:func:`build_tree` scans the path, hashes the files whose stat the cache does
not vouch for (on a thread pool: reading and zstd release the GIL), stores
their new chunks, and writes the trees bottom-up. With ``dry=True`` nothing is
stored: chunk ids and trees are computed and trees kept in memory, which is
how ``status`` compares a working tree with a snapshot.

Files are read in bounded chunks, never whole. A file whose stat changes while
it is read is read again (up to 3 times), then refused with FileChangedError,
so a torn file is never stored.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mlgit.errors import BadPathError, FileChangedError
from mlgit.format.chunking import Chunker
from mlgit.format.ids import (
    FileDigest,
    FileHasher,
    RawObjectID,
    file_digest,
    raw_object_id,
    raw_to_hex,
)
from mlgit.format.limits import MAX_EMPTY_DIRS
from mlgit.format.pack import OBJ_CHUNK, OBJ_TREE
from mlgit.format.tree import (
    NO_SUBTREE,
    TYPE_DIR,
    TYPE_FILE,
    TYPE_SYMLINK,
    ChunkRef,
    TreeEntry,
    encode_tree,
)
from mlgit.snapshot.scan import DirNode, FileStat, scan_dir, scan_file
from mlgit.snapshot.statcache import DirCache, StatCache, dir_signature
from mlgit.store.store import Store

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

_T = TypeVar("_T")
_R = TypeVar("_R")

__all__ = ["BuildResult", "Progress", "build_tree", "hash_file", "map_ahead"]

Progress = Callable[[int, int], None]
"""Called with (files, bytes) hashed since the last call."""

_RETRIES = 3
_PIPELINE_MIN = 4 << 20
_IN_FLIGHT = 16
_WORKERS = min(4, (os.cpu_count() or 1) + 1)
_NONE: dict[bytes, TreeEntry] = {}  # no file of a directory hashed (never written to)
_BATCH_FILES = 32
_BATCH_BYTES = 2 << 20


@dataclass
class BuildResult:
    """The root tree and what it took to build it.

    ``trees`` holds every tree built in dry mode (id to entries) so that they
    can be read without the store. ``cache`` is the stat cache to save and
    ``stat_time_ns`` the moment before the scan (for the racy check).
    """

    root: RawObjectID
    files: int
    total_bytes: int
    hashed_files: int
    hashed_bytes: int
    cache: StatCache
    stat_time_ns: int
    trees: dict[RawObjectID, list[TreeEntry]] = field(default_factory=dict)
    new_chunks: set[RawObjectID] = field(default_factory=set)


def hash_file(path: bytes, expect: FileStat, store: Store | None, chunker: Chunker,
              progress: Progress | None = None) -> TreeEntry:
    """Chunk, hash and (unless ``store`` is None) store one regular file.

    Returns its tree entry (name is the basename). Retries when the file
    changes under us; FileChangedError after :data:`_RETRIES` attempts.
    """
    for _attempt in range(_RETRIES):
        entry = _hash_once(path, expect, store, chunker)
        if entry is not None:
            if progress:
                progress(1, entry.size)
            return entry
        try:
            expect = FileStat.of(os.lstat(path))
        except FileNotFoundError:
            raise FileChangedError(f"{os.fsdecode(path)} vanished while being read") from None
    raise FileChangedError(
        f"{os.fsdecode(path)} kept changing while being read; stop writing to it and retry"
    )


def _hash_once(path: bytes, expect: FileStat, store: Store | None,
               chunker: Chunker) -> TreeEntry | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise FileChangedError(f"{os.fsdecode(path)} vanished while being read") from None
    except OSError as e:
        raise BadPathError(f"cannot read {os.fsdecode(path)}: {e.strerror}") from None
    if expect.size <= chunker.single_max:
        return _hash_small(fd, path, expect, store)
    with os.fdopen(fd, "rb", buffering=0) as f:
        before = FileStat.of(os.fstat(fd))
        if before != expect:
            return None
        whole = FileHasher()
        chunks: list[ChunkRef] = []
        total = 0
        if before.size <= chunker.single_max:  # it grew since it was scanned: no fast path
            pieces = chunker.chunks_of(f.read(before.size + 1))
        else:
            pieces = chunker.chunks(f)
        # A large file's chunks are compressed on a small pool while the next ones are
        # cut (zstd releases the GIL); at most _IN_FLIGHT chunks wait, bounding memory.
        objects = store.objects if store is not None else None
        pool = objects.compress_pool() if objects is not None and (
            before.size > _PIPELINE_MIN) else None
        waiting: deque[Future[RawObjectID]] = deque()
        try:
            for data in pieces:
                whole.update(data)
                cid = raw_object_id(data)
                if pool is not None and objects is not None:
                    waiting.append(pool.submit(objects.put, OBJ_CHUNK, data, cid))
                    if len(waiting) > _IN_FLIGHT:
                        waiting.popleft().result()
                elif objects is not None:
                    objects.put(OBJ_CHUNK, data, cid)
                chunks.append((cid, len(data)))
                total += len(data)
        finally:
            for fut in waiting:
                fut.result()
        after = FileStat.of(os.fstat(fd))
    if after != before or total != before.size:
        return None
    name = os.path.basename(path)
    return TreeEntry(name, TYPE_FILE, total, before.executable, whole.digest(), tuple(chunks))


def _hash_small(fd: int, path: bytes, expect: FileStat, store: Store | None) -> TreeEntry | None:
    """:func:`_hash_once` of a file scanned at most ``single_max`` bytes long; closes ``fd``.

    Such a file is one chunk (none if empty), whose id is the file's digest, so
    it is read in one call and hashed once: the same entry the chunker gives.
    One ``fstat``, after the read: a file whose stat is still the scanned one
    was not written to since the scan (and so not during the read either).
    """
    try:
        data = os.read(fd, expect.size + 1)
        while len(data) <= expect.size:  # a short read (network and FUSE filesystems)
            more = os.read(fd, expect.size + 1 - len(data))
            if not more:
                break
            data += more
        after = FileStat.of(os.fstat(fd))
    finally:
        os.close(fd)
    if after != expect or len(data) != expect.size:
        return None
    name = os.path.basename(path)
    if not data:
        return TreeEntry(name, TYPE_FILE, 0, expect.executable, file_digest(data), ())
    cid = raw_object_id(data)
    if store is not None:
        store.objects.put(OBJ_CHUNK, data, cid)
    # One chunk: the file's XXH3-128 is its chunk's id (the same bytes hashed).
    return TreeEntry(name, TYPE_FILE, len(data), expect.executable, FileDigest(cid),
                     ((cid, len(data)),))


def _batches(todo: list[tuple[DirNode, bytes, FileStat]]
             ) -> Iterator[list[tuple[DirNode, bytes, FileStat]]]:
    """``todo`` in order, cut into jobs of at most :data:`_BATCH_FILES` files.

    A job holds about :data:`_BATCH_BYTES` bytes at most (a larger file is a job of
    its own): one task per small file would cost more than the file's own work.
    """
    batch: list[tuple[DirNode, bytes, FileStat]] = []
    nbytes = 0
    for item in todo:
        if batch and (len(batch) >= _BATCH_FILES or nbytes + item[2].size > _BATCH_BYTES):
            yield batch
            batch, nbytes = [], 0
        batch.append(item)
        nbytes += item[2].size
    if batch:
        yield batch


def map_ahead(pool: ThreadPoolExecutor, fn: Callable[[_T], _R], items: Iterable[_T],
               ahead: int) -> Iterator[_R]:
    """``pool.map(fn, items)`` with at most ``ahead`` jobs submitted and not yet taken.

    Results come in order. ``Executor.map`` submits every job at once: a
    million-file add's jobs and futures alone are tens of megabytes. Jobs not
    started when a result raises are cancelled.
    """
    waiting: deque[Future[_R]] = deque()
    try:
        for item in items:
            waiting.append(pool.submit(fn, item))
            if len(waiting) >= ahead:
                yield waiting.popleft().result()
        while waiting:
            yield waiting.popleft().result()
    finally:
        for f in waiting:
            f.cancel()


def build_tree(store: Store, path: bytes, *, is_file: bool, old: StatCache, dry: bool = False,
               warn: Callable[[str], None] = lambda _m: None,
               progress: Progress | None = None,
               on_total: Callable[[int, int], None] | None = None,
               only: frozenset[bytes] | None = None) -> BuildResult:
    """Build (and unless ``dry``, store) the tree of ``path``.

    ``old`` is the stat cache from the last build or materialization of the
    same path; its trees must be in the store. ``on_total`` is told the number
    of files and bytes that need hashing before hashing starts. ``only``
    limits a directory's top level to those names (a TensorFlow checkpoint
    prefix's files).
    """
    stat_time = time.time_ns()
    root_node = scan_file(path) if is_file else scan_dir(path, warn, only=only)
    chunker = Chunker(store.config.chunk_min, store.config.chunk_avg, store.config.chunk_max)
    nodes = root_node.walk()
    _check_empty_dirs(nodes, path)

    # Decide, per file, whether the cache vouches for it.
    todo: list[tuple[DirNode, bytes, FileStat]] = []
    sigs: dict[str, str] = {}
    for node in nodes:
        sig = sigs[node.rel] = dir_signature(node.files, node.links, node.dirs)
        dc = old.dirs.get(node.rel)
        if dc is not None and dc.sig == sig:
            continue  # listing and every stat unchanged: all files vouched for
        cached = dc.files if dc is not None else {}
        for name, st in node.files.items():
            if cached.get(name) != st:
                todo.append((node, name, st))
    if on_total:
        on_total(len(todo), sum(st.size for _, _, st in todo))

    hashed: dict[str, dict[bytes, TreeEntry]] = {}  # by directory, then name
    target_store = None if dry else store
    if todo:
        def job(batch: list[tuple[DirNode, bytes, FileStat]]) -> list[TreeEntry]:
            join = os.path.join
            out = [hash_file(join(node.path, name), st, target_store, chunker)
                   for node, name, st in batch]
            if progress:  # once per job, not once per small file
                progress(len(out), sum(e.size for e in out))
            return out

        if len(todo) == 1:
            results = job(todo)
        else:
            from concurrent.futures import ThreadPoolExecutor  # start-up time

            with ThreadPoolExecutor(_WORKERS) as pool:
                results = [e for part in map_ahead(pool, job, _batches(todo), _WORKERS * 4)
                           for e in part]
        for (node, name, _), entry in zip(todo, results, strict=True):
            hashed.setdefault(node.rel, {})[name] = entry
        del results
    ntodo = len(todo)
    del todo  # (a large add's peak memory: one tuple per file)

    result = BuildResult(NO_SUBTREE, 0, 0, ntodo,
                         sum(e.size for here in hashed.values() for e in here.values()),
                         StatCache(), stat_time)
    # Bottom-up without recursion: in reversed pre-order every child comes before its parent.
    # Each directory's totals (files and symlinks, bytes of files) come from the scan, as
    # its tree holds them: no subtree is decoded again to count it.
    ids: dict[str, RawObjectID] = {}
    totals: dict[str, tuple[int, int]] = {}
    for node in reversed(nodes):
        sub_ids = {name: ids.pop(child.rel) for name, child in node.dirs.items()}
        sub_totals = {name: totals.pop(child.rel) for name, child in node.dirs.items()}
        ids[node.rel] = _build_node(store, node, sub_ids, sub_totals, old, sigs, hashed, result,
                                    dry)
        nbytes = 0
        for name, st in node.files.items():
            e = hashed.get(node.rel, _NONE).get(name)
            nbytes += e.size if e is not None else st.size
        totals[node.rel] = (
            len(node.files) + len(node.links) + sum(f for f, _ in sub_totals.values()),
            nbytes + sum(b for _, b in sub_totals.values()))
    result.root = ids[root_node.rel]
    root_hex = raw_to_hex(result.root)
    result.files, result.total_bytes = totals[root_node.rel]
    result.cache.tree = root_hex
    result.cache.files, result.cache.nbytes = result.files, result.total_bytes
    return result


def _check_empty_dirs(nodes: list[DirNode], path: bytes) -> None:
    """BadPathError if more than MAX_EMPTY_DIRS directories hold no file (no snapshot may)."""
    holds: dict[str, bool] = {}
    empty = 0
    for node in reversed(nodes):  # children first
        full = bool(node.files or node.links) or any(
            holds[child.rel] for child in node.dirs.values())
        holds[node.rel] = full
        empty += not full
    empty -= not holds[nodes[0].rel]  # the root itself is not a directory entry
    if empty > MAX_EMPTY_DIRS:
        raise BadPathError(f"{os.fsdecode(path)} holds {empty} directories without files; "
                           f"git-ml stores at most {MAX_EMPTY_DIRS}")


def _build_node(store: Store, node: DirNode, sub_ids: dict[bytes, RawObjectID],
                sub_totals: dict[bytes, tuple[int, int]], old: StatCache,
                sigs: dict[str, str], hashed: dict[str, dict[bytes, TreeEntry]],
                result: BuildResult, dry: bool) -> RawObjectID:
    """Build (or reuse from the stat cache) one directory's tree.

    Its subtrees' ids and totals (files, bytes) are given.
    """
    dc = old.dirs.get(node.rel)
    new_dc = DirCache(NO_SUBTREE, sigs[node.rel], node.files)
    if (
        dc is not None and dc.sig == new_dc.sig
        and all(child.rel in old.dirs and old.dirs[child.rel].tree == sub_ids[name]
                for name, child in node.dirs.items())
    ):
        # Nothing in this directory changed: reuse its tree without reading the store.
        new_dc.tree = dc.tree
        result.cache.dirs[node.rel] = new_dc
        return dc.tree
    old_by_name: dict[bytes, TreeEntry] = {}
    here = hashed.get(node.rel, _NONE)
    if dc is not None and any(n not in here for n in node.files):
        old_by_name = {e.name: e for e in _get_tree(store, dc.tree, result)}
    entries: list[TreeEntry] = []
    for name in node.files:
        e = here.get(name) or old_by_name.get(name)
        if e is None or e.type != TYPE_FILE:
            raise FileChangedError(
                f"stat cache out of step for {node.rel}/{os.fsdecode(name)}; "
                "delete .git/ml/cache and retry")
        entries.append(e)
    for name, target in node.links.items():
        entries.append(TreeEntry(name, TYPE_SYMLINK, len(target), target=target))
    for name in node.dirs:
        nfiles, nbytes = sub_totals[name]
        entries.append(TreeEntry(name, TYPE_DIR, nbytes, subtree=sub_ids[name], files=nfiles))
    data = encode_tree(entries)
    tree_id = raw_object_id(data)
    ordered = sorted(entries, key=lambda e: e.name)
    if dry:
        result.trees[tree_id] = ordered
    else:
        store.objects.put(OBJ_TREE, data, tree_id)
        store.objects.remember_tree(tree_id, ordered)
    new_dc.tree = tree_id
    result.cache.dirs[node.rel] = new_dc
    return tree_id


def _get_tree(store: Store, tree_id: RawObjectID, result: BuildResult) -> list[TreeEntry]:
    got = result.trees.get(tree_id)
    return got if got is not None else store.objects.get_tree(tree_id)
