"""A read-only, seekable file object over a file in a snapshot; reads chunks on demand."""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable
from itertools import accumulate

from mlgit.errors import CorruptObjectError
from mlgit.format.ids import raw_to_hex
from mlgit.format.tree import TreeEntry
from mlgit.store.objects import ObjectStore

__all__ = ["SnapshotFile"]


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
        self._starts = [0, *accumulate(n for _, n in entry.chunks)][:-1] if entry.chunks else []
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
