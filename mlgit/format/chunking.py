"""Content-defined chunking (FastCDC, via pyfastcdc) of byte streams.

One chunking rule, whatever the reader: ``Chunker.chunks(stream)`` and
``Chunker.chunks_of(data)`` cut the same bytes into the same chunks, whether the
stream is a file, a pipe or a reader that returns short reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = ["Chunker"]


class Chunker:
    """Cuts a stream into content-defined chunks of ``min``..``max`` bytes.

    Identical content yields identical cuts wherever it appears, so an insert
    or change in a large file only changes the chunks around it. Content of at
    most ``single_max`` bytes is one chunk (none if empty), by either method.
    """

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        self.min_size = min_size
        # A file up to half the largest chunk is one chunk: content-defined cuts
        # inside it would gain little deduplication and cost a FastCDC pass.
        self.single_max = max_size // 2
        self._params = (avg_size, min_size, max_size)
        self._local = threading.local()

    @property
    def _cdc(self) -> Any:
        # One FastCDC per thread (it is not safe to share), imported on first use:
        # an unchanged re-add never chunks anything.
        cdc = getattr(self._local, "cdc", None)
        if cdc is None:
            from pyfastcdc import FastCDC

            avg, lo, hi = self._params
            cdc = self._local.cdc = FastCDC(avg, min_size=lo, max_size=hi)
        return cdc

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the stream's chunks as bytes: the chunks ``chunks_of`` cuts.

        Reads in bounded buffers (at most ``single_max + 1`` bytes held besides
        FastCDC's own), never the whole file; short reads are read on until the
        stream returns no bytes.
        """
        head = _read_up_to(stream, self.single_max + 1)
        if len(head) <= self.single_max:
            if head:
                yield head
            return
        for c in self._cdc.cut_stream(_Prefixed(head, stream)):
            # cut_stream reuses its buffer: copy before the next chunk is cut.
            yield bytes(c.data)

    def chunks_of(self, data: bytes) -> Iterator[bytes]:
        """Yield the chunks of an in-memory buffer."""
        if len(data) <= self.single_max:
            if data:
                yield data
            return
        for c in self._cdc.cut_buf(data):
            yield bytes(c.data)


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Read until ``n`` bytes or the end of the stream, however short each read is."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Prefixed:
    """A reader that returns ``head`` first, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readinto(self, buf: memoryview) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            got = readinto(buf)
            return got or 0
        data = self._stream.read(len(buf))
        buf[:len(data)] = data
        return len(data)
