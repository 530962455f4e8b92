"""A local copy of the parts of a remote's packs that were read: sparse files and their ranges.

A remote's packs are immutable (a pack's name is the hash of its index), so the
bytes at an offset of a pack never change: a cache can hold any part of a pack
at its own offset. For each pack ``<stem>`` of the remote this keeps, in the
remote's cache directory (:func:`mlgit.sync.remoteread.remote_index_dir`)::

    <stem>.pack     a sparse file: the ranges read, at their offsets in the pack
    <stem>.ranges   the ranges it holds: records of (offset u64, length u32), little-endian

A range's bytes are written before its record is appended, so a record names
bytes that were written; nothing is fsynced, because nothing here is trusted:
every object read from the cache is verified against its id as one read from
the remote is (:func:`mlgit.sync.transfer.verify_object`), and one that fails
counts as absent (it is read from the remote again). Several processes may
write one pack's files at once: they write the same bytes at the same offsets,
and each appends whole 12-byte records (``O_APPEND``). The lookups cost no
memory per object: the remote's index says where an object is, and the ranges
(merged) say whether the cache holds it.

The ranges file is read bounded (:data:`MAX_RANGES_LEN`), only what was appended
since it was last read; past the bound it is ignored (the pack is read from the
remote again). Nothing is written outside ``root``; no symlink is followed.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
import threading
from pathlib import Path

from mlgit.errors import FormatError
from mlgit.format.limits import MAX_PACK_LEN
from mlgit.store.fsutil import open_regular
from mlgit.sync.layout import check_pack_name

__all__ = ["MAX_RANGES_LEN", "PackCache"]

_RECORD = struct.Struct("<QI")
MAX_RANGES_LEN = 64 << 20
"""A ranges file longer than this is ignored (5 million records)."""
_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_PACKS = 16


class _Ranges:
    """Merged, sorted, disjoint [start, end) ranges of one pack."""

    __slots__ = ("ends", "seen", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.seen = 0  # bytes of the ranges file read so far

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_left(self.ends, start)  # the first range that ends at or after start
        j = bisect.bisect_right(self.starts, end)  # ranges i to j-1 touch [start, end)
        if i < j:
            start = min(start, self.starts[i])
            end = max(end, self.ends[j - 1])
        self.starts[i:j] = [start]
        self.ends[i:j] = [end]

    def covers(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.starts, start) - 1
        return i >= 0 and self.ends[i] >= end


def _merged(pieces: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """The (offset, length) ranges ``pieces`` cover, adjacent ones merged (fewer records)."""
    out: list[tuple[int, int]] = []
    for off, data in sorted(pieces, key=lambda p: p[0]):
        if out and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + len(data))
        else:
            out.append((off, len(data)))
    return out


class PackCache:
    """The cached ranges of a remote's packs under ``root`` (created on the first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._ranges: dict[str, _Ranges] = {}
        self._fds: dict[str, int] = {}  # pack files open for reading, least recently used first
        self._lock = threading.Lock()

    def _load(self, stem: str) -> _Ranges:
        """The ranges of ``stem``, with what other processes appended since the last look."""
        r = self._ranges.get(stem)
        if r is None:
            r = self._ranges[stem] = _Ranges()
        path = self.root / f"{stem}.ranges"
        try:
            fd = open_regular(path, path.name)
        except (OSError, FormatError):
            return r  # none yet (or not a regular file: ignored)
        try:
            size = os.fstat(fd).st_size
            if size <= r.seen or size > MAX_RANGES_LEN:
                return r
            usable = size - size % _RECORD.size
            data = os.pread(fd, usable - r.seen, r.seen)  # what was appended since
        except OSError:
            return r
        finally:
            os.close(fd)
        whole = len(data) - len(data) % _RECORD.size
        for off, n in _RECORD.iter_unpack(data[:whole]):
            if off + n <= MAX_PACK_LEN:
                r.add(off, off + n)
        r.seen += whole
        return r

    def covers(self, stem: str, offset: int, length: int) -> bool:
        """True if the cache holds bytes ``offset`` to ``offset + length`` of pack ``stem``.

        The ranges file is looked at again only when what was read of it does not
        cover them (another process may have added them since).
        """
        with self._lock:
            r = self._ranges.get(stem)
            if r is not None and r.covers(offset, offset + length):
                return True
            return self._load(stem).covers(offset, offset + length)

    def read(self, stem: str, offset: int, length: int) -> bytes | None:
        """Those bytes (unverified: the caller verifies what it takes), or None."""
        if not self.covers(stem, offset, length):
            return None
        with self._lock:
            fd = self._fds.pop(stem, None)
            if fd is None:
                try:
                    fd = open_regular(self.root / f"{stem}.pack", f"{stem}.pack")
                except (OSError, FormatError):
                    return None
            self._fds[stem] = fd  # the most recently used last
            while len(self._fds) > _OPEN_PACKS:
                os.close(self._fds.pop(next(iter(self._fds))))
            try:
                data = os.pread(fd, length, offset)
            except OSError:
                return None
        return data if len(data) == length else None

    def close(self) -> None:
        """Close the pack files kept open for reading (harmless to repeat)."""
        with self._lock:
            fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fds", None):
            self.close()

    def write(self, stem: str, pieces: list[tuple[int, bytes]]) -> None:
        """Keep ``pieces`` (offset, bytes) of pack ``stem``: the bytes, then their records.

        A cache that cannot be written (a read-only or full disk) is not an error:
        what was not recorded is read from the remote again next time.
        """
        check_pack_name(stem)
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / f"{stem}.pack", os.O_WRONLY | os.O_CREAT | _FLAGS, 0o644)
            try:
                for off, data in pieces:
                    view = memoryview(data)
                    while view:
                        n = os.pwrite(fd, view, off)
                        view, off = view[n:], off + n
            finally:
                os.close(fd)
            records = b"".join(_RECORD.pack(off, n) for off, n in _merged(pieces))
            fd = os.open(self.root / f"{stem}.ranges",
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | _FLAGS, 0o644)
            try:
                os.write(fd, records)
            finally:
                os.close(fd)
            with self._lock:
                r = self._load(stem)
                for off, n in _merged(pieces):
                    r.add(off, off + n)
