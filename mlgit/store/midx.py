"""A ``packs/`` directory's multi-pack index: opened in place, checked, written durably.

The file is ``packs/multi-pack-index`` (docs/format.md, "Multi-pack index"). It
is derived data: a reader that finds it missing, stale (it names a pack that is
not there, or of another size) or corrupt uses the packs' own indexes instead,
and nothing it says is needed for an object to be read. Opening it checks its
size, header, pack table, fan-out and checksum (read in pieces); a lookup reads
the few rows of one fan-out bucket, and the row it finds is checked; :func:`verify`
checks every row against the packs' own indexes (``git ml fsck``, and ``gc``
before it trusts the file to say what exists). Writers: :func:`write_midx`,
through :class:`~mlgit.store.fsutil.DurableFile` (the one durable write).
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from mlgit.errors import FormatError
from mlgit.format.ids import FileHasher, RawObjectID
from mlgit.format.midx import (
    MIDX_FANOUT_LEN,
    MIDX_HEAD_LEN,
    MIDX_ROW,
    MidxWriter,
    decode_fanout,
    decode_midx_packs,
    decode_row,
    midx_bucket,
    midx_layout,
)
from mlgit.format.pack import INDEX_ENTRY, IndexEntry
from mlgit.store.fsutil import DurableFile, open_regular
from mlgit.store.packs import read_records, search_records

__all__ = ["MIDX_NAME", "MIDX_PACK_THRESHOLD", "MultiPackIndex", "merge_into", "merge_rows",
           "verify", "write_midx"]

MIDX_NAME = "multi-pack-index"
MIDX_PACK_THRESHOLD = 8
"""A writer that leaves more packs than this outside a ``packs/``'s multi-pack index
rewrites it (:meth:`mlgit.store.objects.ObjectStore.write_midx`)."""

_CHUNK = 256 << 10  # bytes read at a time: the checksum pass, row blocks, write batches
_CHECKSUM_LEN = 16


class MultiPackIndex:
    """One multi-pack index file, checked when opened and then read in place.

    ``stems`` and ``sizes`` are its pack table (by pack number); ``stamp`` the
    file's identity when opened, so a reader notices when it is replaced. The
    descriptor stays open; a lookup reads the few rows of one fan-out bucket
    (:func:`~mlgit.store.packs.search_records`), so nothing of the file stays in
    memory but its 256 KiB fan-out. FormatError (naming the file) if any
    open-time check fails.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        fd = open_regular(path, path.name)
        try:
            st = os.fstat(fd)
            self.stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            size = st.st_size
            self.layout = midx_layout(os.pread(fd, MIDX_HEAD_LEN, 0), size)
            h = FileHasher()
            pos, body = 0, size - _CHECKSUM_LEN
            while pos < body:
                data = os.pread(fd, min(_CHUNK, body - pos), pos)
                if not data:
                    raise FormatError("truncated multi-pack index")
                h.update(data)
                pos += len(data)
            if h.digest() != os.pread(fd, _CHECKSUM_LEN, body):
                raise FormatError("multi-pack index checksum mismatch")
            lay = self.layout
            packs = decode_midx_packs(os.pread(fd, lay.rows_at - MIDX_HEAD_LEN, MIDX_HEAD_LEN),
                                      lay.packs)
            self.fanout = decode_fanout(os.pread(fd, MIDX_FANOUT_LEN, lay.fanout_at), lay.rows)
        except BaseException as e:
            os.close(fd)
            if isinstance(e, FormatError):
                raise type(e)(f"{path.name}: {e}") from None
            raise
        self.stems = [s for s, _ in packs]
        self.sizes = [n for _, n in packs]
        self._fd = fd

    @property
    def rows(self) -> int:
        """Objects it holds."""
        return self.layout.rows

    def find(self, oid: RawObjectID) -> tuple[int, IndexEntry] | None:
        """(pack number, entry) of ``oid``, or None; FormatError if its row is bad."""
        lo, hi = midx_bucket(self.fanout, oid)
        if lo == hi:
            return None
        hit = search_records(self._fd, oid, self.layout.rows_at, MIDX_ROW.size, lo, hi)
        if hit is None:
            return None
        try:
            return decode_row(hit[1], 0, self.sizes, hit[0])
        except FormatError as e:
            raise type(e)(f"{self.path.name}: {e}") from None

    def row(self, i: int) -> tuple[int, IndexEntry]:
        """Row ``i``'s (pack number, entry), checked; FormatError if it is bad."""
        try:
            blk = next(read_records(self._fd, self.layout.rows_at, MIDX_ROW.size, i, i + 1))
            return decode_row(blk, 0, self.sizes, i)
        except FormatError as e:
            raise type(e)(f"{self.path.name}: {e}") from None

    def blocks(self, lo: int, hi: int) -> Iterator[bytes]:
        """Rows [lo, hi) as blocks of whole rows (about 1 MiB each)."""
        return read_records(self._fd, self.layout.rows_at, MIDX_ROW.size, lo, hi)

    def key(self, i: int) -> bytes:
        """Row ``i``'s id (16 bytes; fewer past the end of a damaged file)."""
        return os.pread(self._fd, 16, self.layout.rows_at + i * MIDX_ROW.size)

    def iter_rows(self) -> Iterator[bytes]:
        """Every row's 38 bytes, in id order (read in 1 MiB pieces)."""
        width = MIDX_ROW.size
        for blk in self.blocks(0, self.layout.rows):
            yield from (blk[i:i + width] for i in range(0, len(blk), width))

    def close(self) -> None:
        """Close the file (once; lookups afterwards raise OSError)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()


def merge_rows(sources: Sequence[Iterable[bytes]]) -> Iterator[bytes]:
    """The rows of ``sources`` (each sorted by id) in id order, each id once (the first)."""
    merged: Iterable[bytes] = sources[0] if len(sources) == 1 else heapq.merge(*sources)
    prev = b""
    for row in merged:
        oid = row[:16]
        if oid != prev:
            prev = oid
            yield row


def merge_into(midx: MultiPackIndex, rows: Iterable[bytes]) -> Iterator[bytes]:
    """``midx``'s rows with ``rows`` (sorted strictly by id) merged in, in id order.

    Runs of old rows between two new ones are copied as blocks (at most 1 MiB at
    a time), so adding a few packs to a large index costs a copy of its bytes and
    a search per new row, not work per old row. An id the index already has keeps
    its row. Rows of a damaged index come out of order, which the writer refuses.
    """
    fan, total = midx.fanout, midx.rows
    done = 0
    for row in rows:
        oid = row[:16]
        lo, hi = midx_bucket(fan, oid)
        lo, hi = max(done, lo), max(done, hi)
        while lo < hi:  # the first old row not below oid
            mid = (lo + hi) // 2
            if midx.key(mid) < oid:
                lo = mid + 1
            else:
                hi = mid
        yield from midx.blocks(done, lo)
        done = lo
        if done < total and midx.key(done) == oid:
            continue
        yield row
    yield from midx.blocks(done, total)


def write_midx(path: Path, tmp_dir: Path, packs: Sequence[tuple[str, int]],
               rows: Iterable[bytes]) -> int:
    """Write the multi-pack index of ``packs`` ((stem, size) by pack number) to ``path``.

    ``rows`` (rows, or blocks of whole rows) come sorted strictly by id
    (:func:`merge_rows`, :func:`merge_into`). Streamed in about 1 MiB at a time through a
    :class:`~mlgit.store.fsutil.DurableFile` in ``tmp_dir`` (``path``'s
    filesystem), so memory stays small and the file appears whole and durable
    or not at all. Returns the number of rows.
    """
    w = MidxWriter(packs)
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)  # not ours (readers refuse it); an empty one goes, else OSError
    with DurableFile(tmp_dir, MIDX_NAME) as f:
        f.write(w.head())
        batch: list[bytes] = []
        size = 0
        for row in rows:  # a row, or a block of whole rows (merge_into)
            batch.append(row)
            size += len(row)
            if size >= _CHUNK:
                f.write(w.add(batch))
                batch, size = [], 0
        f.write(w.add(batch))
        f.write(w.finish())
        f.commit(path)
    return w.rows


def verify(midx: MultiPackIndex, entries: Sequence[Iterable[bytes] | None]) -> str | None:
    """Why ``midx`` does not say exactly what its packs' own indexes say, or None.

    ``entries[j]`` gives pack number ``j``'s index entries (34 bytes each, in id
    order), or is None when that pack cannot be read. Every row is checked (order,
    pack number, fields, inside its pack) and must be its pack's own entry;
    every entry of every pack must have a row (in that pack or another).
    Memory is bounded by a piece of the file; time is linear in the rows.
    """
    if any(e is None for e in entries) or len(entries) != len(midx.stems):
        return "it names a pack that cannot be read"
    try:
        prev = b""
        counts = [0] * (1 << 16)
        for i, row in enumerate(midx.iter_rows()):
            oid = row[:16]
            if oid <= prev:
                return f"row {i} is out of order"
            prev = oid
            counts[int.from_bytes(oid[:2], "big")] += 1
            midx.row(i)
        total = 0
        for b, n in enumerate(counts):
            total += n
            if midx.fanout[b] != total:
                return "its fan-out does not count its rows"
        matched = 0
        for j, source in enumerate(entries):
            assert source is not None
            for rec in source:
                found = midx.find(RawObjectID(rec[:16]))
                if found is None:
                    return f"it lacks an object of {midx.stems[j]}"
                pack, e = found
                if pack == j:
                    if INDEX_ENTRY.pack(*e) != rec:
                        return f"its row of an object of {midx.stems[j]} differs from that pack's"
                    matched += 1
        if matched != midx.rows:
            return "it has rows its packs do not hold"
    except FormatError as e:
        return str(e)
    return None
