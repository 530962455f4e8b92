"""Reading the files of a snapshot by range, fetching only the chunks a read touches.

:class:`SnapshotFile` is a seekable file object over one file of a local store.
:func:`read_range` reads a byte range of a file from any :class:`ChunkSource`: the
local store with lazy fetching (:mod:`mlgit.api.ranges`) or a remote read without
a clone (:mod:`mlgit.sync.remoteread`); :mod:`mlgit.fs` builds on it.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import Protocol

from mlgit.errors import CorruptObjectError
from mlgit.format.ids import raw_to_hex
from mlgit.format.tree import ChunkRef, TreeEntry
from mlgit.store.objects import ObjectStore

__all__ = ["ChunkSource", "SnapshotFile", "chunk_starts", "read_range"]


class ChunkSource(Protocol):
    """Where a file's chunks come from."""

    def read_chunks(self, chunks: Sequence[ChunkRef]) -> Iterator[bytes]:
        """The bytes of each chunk of ``chunks``, in order.

        Each is verified against its id and has the length its tree records
        (CorruptObjectError otherwise). Chunks not at hand are fetched together,
        in as few reads as the source can, before the first is yielded or a
        bounded batch at a time.
        """


def chunk_starts(entry: TreeEntry) -> list[int]:
    """The offset in the file at which each chunk of file entry ``entry`` starts."""
    return [0, *accumulate(n for _, n in entry.chunks)][:-1] if entry.chunks else []


def read_range(source: ChunkSource, entry: TreeEntry, start: int, end: int,
               starts: list[int] | None = None) -> bytes:
    """Bytes ``start`` to ``end`` (exclusive, clipped to the file) of file entry ``entry``.

    Only the chunks the range overlaps are read (``starts``: :func:`chunk_starts`
    of ``entry``, computed when not given). Memory: the result, plus what the
    source holds of one batch of chunks.
    """
    end = min(end, entry.size)
    if start < 0 or start >= end:
        return b""
    if starts is None:
        starts = chunk_starts(entry)
    first = bisect.bisect_right(starts, start) - 1
    last = bisect.bisect_left(starts, end) - 1
    parts: list[memoryview] = []
    got = 0
    for i, data in enumerate(source.read_chunks(entry.chunks[first:last + 1]), first):
        lo = max(start - starts[i], 0)
        hi = min(end - starts[i], len(data))
        parts.append(memoryview(data)[lo:hi])  # no copy until the one join
        got += max(hi - lo, 0)
    if got != end - start:
        raise CorruptObjectError(f"{entry.name!r}: its chunks hold {got} of the "
                                 f"{end - start} bytes asked for")
    return b"".join(parts)


class SnapshotFile(io.RawIOBase):
    """Raw binary reader of one file entry. Only the chunks a read touches are fetched.

    Wrap it in ``io.BufferedReader`` for line iteration; :func:`mlgit.open`
    does that.

    ``on_close``, if given, is called once when the file is closed (explicitly,
    by leaving a ``with`` block, or when the object is garbage collected): the
    owner of what the file reads from (:func:`mlgit.open`'s ``Repo``) releases
    it there. Reading a closed file raises ValueError.
    """

    def __init__(self, objects: ObjectStore, entry: TreeEntry, name: str,
                 on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._on_close = on_close
        self._objects = objects
        self._chunks = entry.chunks
        self._starts = chunk_starts(entry)
        self._size = entry.size
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self.name = name

    def close(self) -> None:
        """Close the file and release what it owns (``on_close``); harmless to repeat."""
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._cached = None
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """Current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position as ``io.IOBase.seek`` does."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _chunk(self, i: int) -> bytes:
        if self._cached is None or self._cached[0] != i:
            cid, n = self._chunks[i]
            data = self._objects.get(cid)
            if len(data) != n:
                raise CorruptObjectError(f"chunk {raw_to_hex(cid)} has {len(data)} bytes, its tree "
                                         f"says {n}")
            self._cached = (i, data)
        return self._cached[1]

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read up to ``len(b)`` bytes into ``b``; 0 at end of file."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._pos >= self._size or len(b) == 0:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        data = self._chunk(i)
        off = self._pos - self._starts[i]
        n = min(len(b), len(data) - off)
        b[:n] = data[off : off + n]
        self._pos += n
        return n
