r"""The multi-pack index: one sorted table of the objects of many packs (docs/format.md).

As git's ``multi-pack-index``: a reader finds any object of the packs it covers
with one fan-out lookup and one read and search of a few rows, without reading
those packs' own indexes. Layout (little-endian)::

    magic    8  b"MLGMIDX\x01"
    packs    u32 P, reserved u32 (0)
    pack*    P times, 24 bytes: name[16] (the pack's <h>, raw) size u64 (the pack file's)
    row*     N times, 38 bytes, sorted strictly by id:
             id[16] pack u32 offset u64 stored_len u32 raw_len u32 type u8 codec u8
    fanout   65536 u32: fanout[i] = rows whose id's first two bytes are at most i
    checksum 16 XXH3-128 of every byte before it

``N`` follows from the file's size. A row holds the same fields as the pack's own
index entry, with the pack's number in the table. The decoders raise FormatError
and nothing else; :class:`MidxWriter` produces the bytes.
"""

from __future__ import annotations

import struct
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import accumulate, islice
from operator import itemgetter, le, lt

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.compression import CODEC_ZSTD, MAX_OBJECT_LEN
from mlgit.format.ids import ID_LEN, FileHasher, RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.limits import MAX_MIDX_PACKS, MAX_PACK_LEN
from mlgit.format.pack import OBJECT_TYPE_NAMES, IndexEntry, check_entry, is_pack_stem

__all__ = ["MIDX_FANOUT_LEN", "MIDX_HEAD_LEN", "MIDX_MAGIC", "MIDX_ROW", "MidxLayout",
           "MidxWriter", "decode_fanout", "decode_midx_packs", "decode_row", "midx_bucket",
           "midx_layout", "row_bytes"]

MIDX_MAGIC = b"MLGMIDX\x01"
_HEAD = struct.Struct("<8sII")
MIDX_HEAD_LEN = _HEAD.size
_PACK = struct.Struct("<16sQ")
MIDX_ROW = struct.Struct("<16sIQIIBB")
_FANOUT_BITS = 16
MIDX_FANOUT_LEN = 4 << _FANOUT_BITS
_CHECKSUM_LEN = 16
_PREFIX = struct.Struct(">H36x")  # a row's first two id bytes, as a number
_ROW_ID = struct.Struct("16s22x")
_ROW_PACK = struct.Struct("<16xI18x")
MAX_MIDX_ROWS = (1 << 32) - 1  # the fan-out's counts are u32
_TYPES = frozenset(OBJECT_TYPE_NAMES)


class MidxLayout:
    """Where each part of a multi-pack index of a given size lies."""

    __slots__ = ("fanout_at", "packs", "rows", "rows_at", "size")

    def __init__(self, packs: int, rows: int) -> None:
        self.packs = packs
        self.rows = rows
        self.rows_at = MIDX_HEAD_LEN + _PACK.size * packs
        self.fanout_at = self.rows_at + MIDX_ROW.size * rows
        self.size = self.fanout_at + MIDX_FANOUT_LEN + _CHECKSUM_LEN


def midx_layout(head: bytes, size: int) -> MidxLayout:
    """Check the 16-byte header against the file's ``size``; the layout it implies.

    The pack count is at most :data:`~mlgit.format.limits.MAX_MIDX_PACKS`, and
    the rows left between the pack table and the fan-out must be whole.
    """
    if len(head) < MIDX_HEAD_LEN or size < MIDX_HEAD_LEN + MIDX_FANOUT_LEN + _CHECKSUM_LEN:
        raise FormatError("truncated multi-pack index")
    magic, packs, reserved = _HEAD.unpack_from(head, 0)
    if magic != MIDX_MAGIC:
        if magic[:7] == MIDX_MAGIC[:7]:
            raise UnsupportedFormatError(f"multi-pack index version {magic[7]} is not "
                                         "supported; upgrade git-ml")
        raise FormatError("not a multi-pack index (bad magic)")
    if reserved != 0:
        raise FormatError("multi-pack index reserved field is not zero")
    if not 0 < packs <= MAX_MIDX_PACKS:
        raise FormatError(f"multi-pack index names {packs} packs (1 to {MAX_MIDX_PACKS})")
    room = size - MidxLayout(packs, 0).size
    if room < 0 or room % MIDX_ROW.size or room // MIDX_ROW.size > MAX_MIDX_ROWS:
        raise FormatError(f"multi-pack index of {size} bytes does not hold whole rows "
                          f"after its {packs} packs")
    return MidxLayout(packs, room // MIDX_ROW.size)


def decode_midx_packs(data: bytes, packs: int) -> list[tuple[str, int]]:
    """The pack table (``packs`` entries of 24 bytes): (stem, size) per pack number.

    Each name at most once; each size at least the pack magic and at most
    ``MAX_PACK_LEN``.
    """
    if len(data) != _PACK.size * packs:
        raise FormatError("truncated multi-pack index pack table")
    out: list[tuple[str, int]] = []
    for name, size in _PACK.iter_unpack(data):
        stem = "pack-" + raw_to_hex(RawObjectID(name))
        if not 8 <= size <= MAX_PACK_LEN:
            raise FormatError(f"multi-pack index gives {stem} an impossible size {size}")
        out.append((stem, int(size)))
    if len({s for s, _ in out}) != len(out):
        raise FormatError("multi-pack index names a pack twice")
    return out


def decode_fanout(data: bytes, rows: int) -> array[int]:
    """The 65,536 cumulative counts: never decreasing, the last one ``rows``."""
    if len(data) != MIDX_FANOUT_LEN:
        raise FormatError("truncated multi-pack index fan-out")
    fan = array("I")
    fan.frombytes(data)
    if fan.itemsize != 4:  # pragma: no cover - every platform git-ml runs on
        raise FormatError("this platform has no 32-bit array type")
    if struct.pack("<I", 1) != bytes(array("I", [1])):
        fan.byteswap()
    if fan[-1] != rows or not all(map(le, fan, islice(fan, 1, None))):
        raise FormatError("multi-pack index fan-out does not count its rows in order")
    return fan


def midx_bucket(fan: array[int], oid: bytes) -> tuple[int, int]:
    """The [lo, hi) row numbers the fan-out gives ``oid``'s first two bytes."""
    b = int.from_bytes(oid[:2], "big")
    return (fan[b - 1] if b else 0), fan[b]


def decode_row(buf: bytes, at: int, sizes: Sequence[int], row: int) -> tuple[int, IndexEntry]:
    """Row number ``row`` (its bytes at ``at`` in ``buf``): pack number and entry, checked.

    FormatError otherwise: the pack must be in the table and the entry valid and inside that pack's
    recorded size.
    """
    oid, pack, off, slen, rlen, type_, codec = MIDX_ROW.unpack_from(buf, at)
    if pack >= len(sizes):
        raise FormatError(f"multi-pack index row {row} names pack {pack}, past its "
                          f"{len(sizes)} packs")
    e = IndexEntry(oid, off, slen, rlen, type_, codec)
    if (type_ in _TYPES and codec <= CODEC_ZSTD and slen <= MAX_OBJECT_LEN
            and rlen <= MAX_OBJECT_LEN and (codec or rlen == slen) and off >= 8
            and off + 26 + slen <= sizes[pack]):
        return pack, e  # the common case, checked without a call
    return pack, check_entry(e, sizes[pack])


def row_bytes(pack: int, record: bytes) -> bytes:
    """The row of a pack index's 34-byte entry ``record`` in pack number ``pack``."""
    return record[:ID_LEN] + pack.to_bytes(4, "little") + record[ID_LEN:]


class MidxWriter:
    """Produces a multi-pack index's bytes: :meth:`head`, :meth:`add` rows, :meth:`finish`.

    ``packs`` are (stem, size) in pack-number order. Rows must come sorted strictly
    by id (checked); their pack numbers must be in the table (checked). The
    checksum is computed as the bytes go out, so the caller streams them to a file.
    """

    def __init__(self, packs: Sequence[tuple[str, int]]) -> None:
        if not 0 < len(packs) <= MAX_MIDX_PACKS:
            raise FormatError(f"a multi-pack index covers 1 to {MAX_MIDX_PACKS} packs")
        if len({s for s, _ in packs}) != len(packs):
            raise FormatError("a multi-pack index names each pack once")
        self._packs = len(packs)
        self._hash = FileHasher()
        self._counts: Counter[int] = Counter()
        self._prev = b""
        self.rows = 0
        table = b"".join(_PACK.pack(hex_to_raw(s[5:]), size) for s, size in packs
                         if is_pack_stem(s))
        if len(table) != _PACK.size * len(packs):
            raise FormatError("a multi-pack index names packs by pack-<h>")
        self._head = _HEAD.pack(MIDX_MAGIC, len(packs), 0) + table
        self._hash.update(self._head)

    def head(self) -> bytes:
        """The header and pack table: the file's first bytes."""
        return self._head

    def add(self, rows: Iterable[bytes]) -> bytes:
        """The bytes of ``rows`` (38 bytes each, see :func:`row_bytes`), after the previous ones."""
        blk = b"".join(rows)
        if not blk:
            return blk
        if len(blk) % MIDX_ROW.size:
            raise FormatError("a multi-pack index row is 38 bytes")
        oids = list(map(itemgetter(0), _ROW_ID.iter_unpack(blk)))
        if not (self._prev < oids[0] and all(map(lt, oids, islice(oids, 1, None)))):
            raise FormatError("multi-pack index rows must be sorted strictly by id")
        if max(map(itemgetter(0), _ROW_PACK.iter_unpack(blk))) >= self._packs:
            raise FormatError("multi-pack index row names a pack past its table")
        self._prev = oids[-1]
        self.rows += len(oids)
        if self.rows > MAX_MIDX_ROWS:
            raise FormatError(f"a multi-pack index holds at most {MAX_MIDX_ROWS} rows")
        self._counts.update(map(itemgetter(0), _PREFIX.iter_unpack(blk)))
        self._hash.update(blk)
        return blk

    def finish(self) -> bytes:
        """The fan-out and the checksum: the file's last bytes."""
        counts = self._counts
        fan = array("I", accumulate(counts.get(b, 0) for b in range(1 << _FANOUT_BITS)))
        if struct.pack("<I", 1) != bytes(array("I", [1])):
            fan.byteswap()
        tail = fan.tobytes()
        self._hash.update(tail)
        return tail + self._hash.digest()
