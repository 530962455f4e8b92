"""Content-defined chunking (FastCDC, via pyfastcdc) of byte streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = ["Chunker"]


class Chunker:
    """Cuts a stream into content-defined chunks of ``min``..``max`` bytes.

    Identical content yields identical cuts wherever it appears, so an insert
    or change in a large file only changes the chunks around it.
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
        """Yield the stream's chunks as bytes; reads in bounded buffers, never the whole file."""
        for c in self._cdc.cut_stream(stream):
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
