"""Content-defined chunking (FastCDC, via pyfastcdc) of byte streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC

__all__ = ["Chunker"]


class Chunker:
    """Cuts a stream into content-defined chunks of ``min``..``max`` bytes.

    Identical content yields identical cuts wherever it appears, so an insert
    or change in a large file only changes the chunks around it.
    """

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        self.min_size = min_size
        self._cdc = FastCDC(avg_size, min_size=min_size, max_size=max_size)

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the stream's chunks as bytes; reads in bounded buffers, never the whole file."""
        for c in self._cdc.cut_stream(stream):
            # cut_stream reuses its buffer: copy before the next chunk is cut.
            yield bytes(c.data)

    def chunks_of(self, data: bytes) -> Iterator[bytes]:
        """Yield the chunks of an in-memory buffer."""
        if len(data) <= self.min_size:
            if data:
                yield data
            return
        for c in self._cdc.cut_buf(data):
            yield bytes(c.data)
