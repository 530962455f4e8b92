"""Reading and writing pack files and their indexes.

Packs are built in one place, :class:`PackWriter`, for a store's own packs and
for the packs a push uploads alike. Write ordering (docs/format.md, "Write
ordering", done by :func:`commit_into` with :mod:`~mlgit.store.fsutil`'s durable
writes): objects are appended to a pack in ``tmp/``; on commit the pack is
fsynced and renamed into ``packs/``, the directory fsynced, then its index is
written to a temporary file, fsynced and renamed, and the directory fsynced.
Only then may a ref name anything in it. Readers consider a pack to exist only
when its ``.idx`` exists, so a crash at any point leaves at worst an unindexed
pack or a temp file, which nothing reads (a later ``gc`` removes them).

Reading checks what docs/format.md asks of readers before any object is read:
the index is a regular file of at most ``MAX_INDEX_LEN`` bytes named by the
hash of its bytes, with every entry inside the pack; the pack is a regular file
(opened without following a symlink) that starts with the pack magic.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlgit.errors import CorruptObjectError, FormatError
from mlgit.format.compression import decompress
from mlgit.format.ids import ID_LEN, RawObjectID, digest_bytes, raw_to_hex
from mlgit.format.limits import MAX_INDEX_ENTRIES, MAX_INDEX_LEN, MAX_PACK_LEN
from mlgit.format.pack import (
    ENTRY_HEADER,
    INDEX_ENTRY,
    INDEX_HEAD_LEN,
    PACK_MAGIC,
    IndexEntry,
    IndexScan,
    check_entry,
    check_index_name,
    check_pack_magic,
    decode_entry_header,
    decode_index,
    encode_entry_header,
    encode_index,
    fanout_range,
    find_record,
    pack_stem,
)
from mlgit.store.fsutil import DurableFile, atomic_write, open_regular, read_bounded

__all__ = ["BuiltPack", "PackIndex", "PackReader", "PackWriter", "Publish", "commit_into",
           "pack_is_full", "read_index_file", "read_records", "search_records"]


_PUBLISHING = 2  # full packs a background writer publishes at once (more: add waits)
_WRITE_BUFFER = 1 << 20  # a pack is written to disk in pieces of this size, not per object
_CHUNK = 256 << 10  # bytes of an index read at a time (the memory a scan or copy holds)


def read_index_file(path: Path, pack_size: int | None = None) -> list[IndexEntry]:
    """Read and decode the index file at ``path`` (``pack-<h>.idx``), checking its name.

    Bounded (:data:`~mlgit.format.limits.MAX_INDEX_LEN`, a regular file, no
    symlink followed), named by the hash of its bytes, and decoded with
    :func:`~mlgit.format.pack.decode_index` (entries inside a pack of
    ``pack_size`` bytes, or of at most ``MAX_PACK_LEN`` if not given).
    FormatError naming the file for anything else.
    """
    data = read_bounded(path, MAX_INDEX_LEN, path.name)
    try:
        entries = decode_index(data, pack_size=pack_size)
        check_index_name(path.name[:-len(".idx")], data)
        return entries
    except FormatError as e:
        raise type(e)(f"{path.name}: {e}") from None


_WINDOW = 1024  # records one search reads at once; a longer range is narrowed by probes


def search_records(fd: int, oid: RawObjectID, base: int, width: int, lo: int,
                   hi: int) -> tuple[int, bytes] | None:
    """(position, bytes) of the ``width``-byte record in [lo, hi) that starts with ``oid``.

    The records (sorted by id) start at byte ``base`` of the file ``fd``. A range
    of up to 1,024 records is read at once and searched in C; a longer one is
    first narrowed by probes of 16 bytes, so no read is larger whatever the range
    (a hostile fan-out cannot make a lookup read a whole file). None if absent.
    """
    while hi - lo > _WINDOW:
        mid = (lo + hi) // 2
        key = os.pread(fd, ID_LEN, base + mid * width)
        if key == oid:
            lo, hi = mid, mid + 1
        elif len(key) == ID_LEN and key < oid:
            lo = mid + 1
        else:
            hi = mid
    data = os.pread(fd, (hi - lo) * width, base + lo * width)
    i = find_record(data, oid, 0, width, 0, len(data) // width)
    return None if i < 0 else (lo + i, data[i * width:(i + 1) * width])


def read_records(fd: int, base: int, width: int, lo: int, hi: int) -> Iterator[bytes]:
    """Records [lo, hi) of the file ``fd`` (from byte ``base``), in blocks of about 1 MiB.

    FormatError if the file ends before them.
    """
    step = max(1, _CHUNK // width)
    for at in range(lo, hi, step):
        n = min(step, hi - at) * width
        blk = os.pread(fd, n, base + at * width)
        if len(blk) != n:
            raise FormatError("index file is shorter than it was")
        yield blk


class PackIndex:
    """A pack's index file, checked in one streaming pass, then searched in place.

    Opening reads the file in 1 MiB pieces through :class:`~mlgit.format.pack.IndexScan`
    (every check of docs/format.md, its name included) and keeps its descriptor,
    with a fan-out of about one byte per entry; nothing is built or kept per
    entry, and no page of the file stays in memory. A lookup is a fan-out step
    and one positioned read of a few entries, searched in C; only the entry found
    is decoded (and checked again: :func:`~mlgit.format.pack.check_entry`).
    """

    def __init__(self, path: Path, pack_size: int | None = None) -> None:
        self.path = path
        self._limit = pack_size if pack_size is not None else MAX_PACK_LEN
        self._fd = -1
        fd = open_regular(path, path.name)
        try:
            size = os.fstat(fd).st_size
            if size > MAX_INDEX_LEN:
                raise FormatError(f"pack index is {size} bytes, more than the "
                                  f"{MAX_INDEX_LEN} allowed")
            scan = IndexScan(size, pack_size)
            pos = 0
            while pos < size:
                data = os.pread(fd, min(_CHUNK, size - pos), pos)
                if not data:
                    break  # shrank meanwhile: finish() says truncated
                scan.feed(data)
                pos += len(data)
            stem, self._ends = scan.finish()
            if stem != path.name[:-len(".idx")]:
                raise FormatError("the index is not named by the hash of its bytes (a pack's "
                                  "name is pack- and the XXH3-128 of its index file)")
        except BaseException as e:
            os.close(fd)
            if isinstance(e, FormatError):
                raise type(e)(f"{path.name}: {e}") from None
            raise
        self.count = scan.count
        self._bits = scan.bits
        self._fd = fd

    def find(self, oid: RawObjectID) -> IndexEntry | None:
        """The pack's entry for ``oid``, or None; FormatError if the file changed in place."""
        lo, hi = fanout_range(self._ends, self._bits, oid)
        if lo == hi:
            return None
        hit = search_records(self._fd, oid, INDEX_HEAD_LEN, INDEX_ENTRY.size, lo, hi)
        if hit is None:
            return None
        e = IndexEntry._make(INDEX_ENTRY.unpack(hit[1]))
        try:
            return check_entry(e, self._limit)
        except FormatError as err:
            raise FormatError(f"{self.path.name}: {err}") from None

    def __len__(self) -> int:
        return self.count

    def byte_range(self, b: int) -> tuple[int, int] | None:
        """[lo, hi) of the entries whose id starts with byte ``b``, from the fan-out alone.

        None when the fan-out is too coarse to say (fewer than 8 bits: a small index).
        """
        shift = self._bits - 8
        if shift < 0:
            return None
        ends = self._ends
        return (ends[(b << shift) - 1] if b else 0), ends[((b + 1) << shift) - 1]

    def blocks(self, lo: int, hi: int) -> Iterator[bytes]:
        """Entries [lo, hi) as blocks of whole 34-byte entries (about 1 MiB each)."""
        return read_records(self._fd, INDEX_HEAD_LEN, INDEX_ENTRY.size, lo, hi)

    def records(self) -> Iterator[bytes]:
        """Every entry's 34 bytes, in id order (read in 1 MiB pieces)."""
        width = INDEX_ENTRY.size
        for blk in read_records(self._fd, INDEX_HEAD_LEN, width, 0, self.count):
            yield from (blk[i:i + width] for i in range(0, len(blk), width))

    def __iter__(self) -> Iterator[IndexEntry]:
        """Every entry, in id order, decoded one at a time."""
        unpack = INDEX_ENTRY.unpack
        return (IndexEntry._make(unpack(r)) for r in self.records())

    def close(self) -> None:
        """Close the file (once; a later lookup raises OSError)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()


class PackReader:
    """One pack file opened for random reads, and its index (:class:`PackIndex`).

    Opening checks the pack (a regular file, not followed through a symlink,
    starting with the pack magic; of ``size`` bytes when that is given, as a
    multi-pack index records it) and, with ``index`` (the default), its index.
    Without, the index is opened on first use: a pack a multi-pack index covers
    is read without ever opening its own index.
    """

    def __init__(self, pack_path: Path, idx_path: Path, *, size: int | None = None,
                 index: bool = True) -> None:
        self.path = pack_path
        self.idx_path = idx_path
        self._index: PackIndex | None = None
        self._lock = threading.Lock()
        self.fd = open_regular(pack_path, pack_path.name)
        try:
            self.size = os.fstat(self.fd).st_size
            if index:  # first: a truncated pack is an index pointing past it
                self._index = PackIndex(idx_path, self.size)
            try:
                if size is not None and size != self.size:
                    raise FormatError(f"{self.size} bytes, not the {size} the multi-pack "
                                      "index says")
                check_pack_magic(os.pread(self.fd, len(PACK_MAGIC), 0))
            except FormatError as e:
                raise type(e)(f"{pack_path.name}: {e}") from None
        except BaseException:
            self.close()
            raise

    @property
    def index(self) -> PackIndex:
        """The pack's index, opened (and checked) on first use."""
        idx = self._index
        if idx is None:
            with self._lock:
                if self._index is None:
                    self._index = PackIndex(self.idx_path, self.size)
                idx = self._index
        return idx

    @property
    def indexed(self) -> bool:
        """True once the pack's own index is open."""
        return self._index is not None

    @property
    def entries(self) -> PackIndex:
        """Every entry of the pack (iterable in id order, with a length), from its index."""
        return self.index

    def find(self, oid: RawObjectID) -> IndexEntry | None:
        """Return this pack's entry for ``oid`` (searched in its index), or None."""
        return self.index.find(oid)

    def read(self, e: IndexEntry) -> bytes:
        """Return the verified, decompressed bytes of entry ``e``.

        Raises CorruptObjectError if the pack's entry header disagrees with the
        index, the data does not decompress, or it does not hash to its id.
        """
        want = ENTRY_HEADER.size + e.stored_len
        buf = os.pread(self.fd, want, e.offset)
        oid = raw_to_hex(e.oid)
        if len(buf) != want:
            raise CorruptObjectError(f"object {oid} is truncated in {self.path.name}")
        try:
            head = decode_entry_header(buf)
            if (head.oid, head.type, head.stored_len, head.raw_len, head.codec) != (
                e.oid, e.type, e.stored_len, e.raw_len, e.codec
            ):
                raise FormatError("entry header disagrees with the index")
            data = decompress(e.codec, buf[ENTRY_HEADER.size :], e.raw_len)
        except FormatError as err:
            raise CorruptObjectError(
                f"object {oid} in {self.path.name} is corrupt: {err}") from None
        if digest_bytes(data) != e.oid:
            raise CorruptObjectError(
                f"object {oid} in {self.path.name} is corrupt: its bytes do not match its id"
            )
        return data

    def read_stored(self, e: IndexEntry) -> bytes:
        """The entry's bytes as stored (compressed, unverified), for copying to another store."""
        buf = os.pread(self.fd, e.stored_len, e.offset + ENTRY_HEADER.size)
        if len(buf) != e.stored_len:
            raise CorruptObjectError(f"object {raw_to_hex(e.oid)} is truncated in {self.path.name}")
        return buf

    def close(self) -> None:
        """Close the pack's file descriptor and index (once: a second call does nothing)."""
        idx, self._index = getattr(self, "_index", None), None
        if idx is not None:
            idx.close()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        # A reader dropped without close() (its store forgot it, or was never closed)
        # still gives its descriptor back.
        if getattr(self, "fd", -1) >= 0:
            self.close()


@dataclass
class BuiltPack:
    """A pack :class:`PackWriter` has finished: its temporary file, name and index.

    ``file`` holds the pack's bytes (magic, then every entry); ``index`` is the
    encoded index of ``entries`` and ``stem`` the name both share
    (:func:`~mlgit.format.pack.pack_stem`).
    """

    file: DurableFile
    stem: str
    index: bytes
    entries: list[IndexEntry]


Publish = Callable[[BuiltPack], None]
"""What a :class:`PackWriter` does with each finished pack (its temporary file is
removed afterwards, unless the publisher moved it into place)."""


def pack_is_full(pos: int, count: int, pack_size: int) -> bool:
    """The cut rule: a pack of ``pos`` bytes holding ``count`` objects takes no more.

    A pack is closed once it reaches ``pack_size`` bytes or holds
    :data:`~mlgit.format.limits.MAX_INDEX_ENTRIES` objects (and at the end).
    """
    return pos >= pack_size or count >= MAX_INDEX_ENTRIES


def commit_into(packs_dir: Path, on_commit: Callable[[Path, Path], None]) -> Publish:
    """The publisher of a store's own packs: into ``packs_dir``, in the write order.

    The pack is fsynced and renamed into ``packs_dir``, the directory fsynced;
    then its index is written the same way (through the writer's ``tmp/``, so
    ``packs/`` only ever holds final names); then ``on_commit(pack, idx)`` is told,
    so the object store can start serving it. No fsync per object: two per pack.
    """
    def publish(built: BuiltPack) -> None:
        pack_path = packs_dir / (built.stem + ".pack")
        idx_path = packs_dir / (built.stem + ".idx")
        built.file.commit(pack_path)
        atomic_write(idx_path, built.index, tmp_dir=built.file.path.parent)
        on_commit(pack_path, idx_path)
    return publish


class PackWriter:
    """Appends objects to packs in ``tmp_dir`` and hands each finished one to ``publish``.

    The one place packs are built. A pack is finished when it is full
    (:func:`pack_is_full`) and on :meth:`commit`; ``publish`` receives it as a
    :class:`BuiltPack`: :func:`commit_into` makes it part of a local store, a
    push uploads it. Its temporary file is removed once ``publish`` returns or
    raises (when ``publish`` raises, the objects of that pack are forgotten and
    the error propagates). Thread-safe: :meth:`add` may be called from several
    threads. A full pack is published outside the writer's lock, so the other
    threads go on appending to the next pack meanwhile (its fsyncs do not stall
    them): by the thread whose :meth:`add` filled it, or with ``background`` on a
    thread of its own (at most :data:`_PUBLISHING` packs at a time), so that no
    adding thread waits for an fsync. :meth:`commit` waits for every pack being
    published and raises the error of one that failed; until then (or
    :meth:`abort`) :meth:`add` raises it too. With ``dedup``
    (the default) an object this writer already wrote is skipped; without,
    callers that never repeat an id save the memory.
    """

    def __init__(self, tmp_dir: Path, pack_size: int, publish: Publish, *,
                 dedup: bool = True, background: bool = False) -> None:
        self.tmp_dir = tmp_dir
        self.pack_size = pack_size
        self._publish = publish
        self._dedup = dedup
        self._background = background
        self._lock = threading.Lock()
        self._published = threading.Condition(self._lock)
        self._publishing = 0  # full packs being published by the thread that filled them
        self._failed: BaseException | None = None  # the first such publish that raised
        self._file: DurableFile | None = None
        self._entries: list[IndexEntry] = []
        self._pos = 0
        # Ids in the packs being written or published (not yet committed). Committed
        # ids are found through the committed indexes; aborted ones are forgotten.
        self.pending: set[RawObjectID] = set()
        self._committed: set[RawObjectID] = set()  # by this writer: exact dedup across threads
        self.bytes_written = 0

    def add(self, oid: RawObjectID, type_: int, codec: int, raw_len: int, stored: bytes) -> None:
        """Append one object (already compressed) unless this writer already wrote it."""
        header = encode_entry_header(oid, type_, codec, raw_len, len(stored))
        with self._lock:
            if self._failed is not None:
                raise self._failed
            if oid in self.pending or oid in self._committed:
                return
            if self._file is None:
                self._open()
            f = self._file
            assert f is not None
            f.write(header)
            f.write(stored)
            self._entries.append(IndexEntry(oid, self._pos, len(stored), raw_len, type_, codec))
            self._pos += len(header) + len(stored)
            self.bytes_written += len(header) + len(stored)
            self.pending.add(oid)
            if not pack_is_full(self._pos, len(self._entries), self.pack_size):
                return
            full = self._detach_locked()
        if not self._background:
            self._finish_noting(*full, reraise=True)
            return
        try:
            threading.Thread(target=self._finish_noting, args=full, name="mlgit-publish").start()
        except BaseException:  # no thread to be had (or an interrupt): publish it here
            self._finish_noting(*full, reraise=True)
            raise
        with self._lock:
            while self._publishing > _PUBLISHING:  # bounds the packs waiting for fsyncs
                self._published.wait()

    def _finish_noting(self, f: DurableFile, entries: list[IndexEntry], *,
                       reraise: bool = False) -> None:
        """:meth:`_finish`; a failure is kept for :meth:`commit` and :meth:`add` to raise."""
        try:
            self._finish(f, entries)
        except BaseException as e:
            with self._lock:
                self._failed = self._failed or e
            if reraise:
                raise

    def wrote(self, oid: RawObjectID) -> bool:
        """True if this writer wrote ``oid``: pending, or in a pack it committed (with dedup)."""
        return oid in self.pending or oid in self._committed

    def _open(self) -> None:
        f = DurableFile(self.tmp_dir, "pack", buffer=_WRITE_BUFFER)
        try:
            f.write(PACK_MAGIC)
        except BaseException:
            f.discard()
            raise
        self._file = f
        self._pos = len(PACK_MAGIC)
        self._entries = []

    def commit(self) -> None:
        """Finish the pack being written, if any, and publish it (see :func:`commit_into`).

        Returns once every pack this writer finished is published: raises the
        error of one whose publishing failed (its objects are not in the store).
        """
        with self._lock:
            full = self._detach_locked() if self._file is not None else None
        failed: BaseException | None = None
        if full is not None:
            try:
                self._finish(*full)
            except BaseException as e:  # noqa: BLE001 - raised below, after the wait
                failed = e
        with self._lock:
            while self._publishing:
                self._published.wait()
            failed, self._failed = failed or self._failed, None
        if failed is not None:
            raise failed

    def _detach_locked(self) -> tuple[DurableFile, list[IndexEntry]]:
        """Take the pack being written out of the writer, to be published; the lock held."""
        f, entries = self._file, self._entries
        assert f is not None
        self._file, self._entries = None, []
        self._publishing += 1
        return f, entries

    def _finish(self, f: DurableFile, entries: list[IndexEntry]) -> None:
        """Publish a detached pack (no lock held); its ids move from pending to committed."""
        ids = [e.oid for e in entries]
        done = False
        try:
            index = encode_index(entries)
            self._publish(BuiltPack(f, pack_stem(index), index, entries))
            done = True
        finally:
            f.discard()  # nothing if the publisher moved it into place
            with self._lock:
                if done and self._dedup:
                    self._committed.update(ids)
                self.pending.difference_update(ids)
                self._publishing -= 1
                self._published.notify_all()

    def abort(self) -> None:
        """Drop the pack being written (objects in published packs stay).

        Waits for the full packs being published; a failure to publish one that
        :meth:`commit` has not reported yet is forgotten: the caller gives up
        everything not committed.
        """
        with self._lock:
            while self._publishing:
                self._published.wait()
            self._failed = None
            if self._file is not None:
                self._file.discard()
                self._file = None
            self.pending.difference_update(e.oid for e in self._entries)
            self._entries = []
