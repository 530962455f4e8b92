r"""Pack files and their indexes (see docs/format.md, "Packs").

Pack file::

    magic  8  b"MLGPACK\x01"
    entry* header (26 bytes) + stored bytes, back to back:
           id[16] type u8 codec u8 raw_len u32 stored_len u32

Each entry header repeats what the index says, so a pack can be re-indexed
(and checked) without its index.

Index file (``pack-<name>.idx``)::

    magic    8  b"MLGIDX\x00\x01"
    count    u32, reserved u32 (0)
    entry*   count times, sorted strictly by id, 34 bytes each:
             id[16] offset u64 stored_len u32 raw_len u32 type u8 codec u8
    checksum 16 XXH3-128 of all bytes before it

``offset`` points at the entry header inside the pack. All integers
little-endian. The decoders raise FormatError and nothing else.

A store reads its own indexes in place (positioned reads) rather than decoding them:
:class:`IndexScan` checks an index fed piece by piece, keeping nothing per entry
but a small fan-out table, and :func:`find_record` finds an id among fixed-width
records with one C-level search; :func:`decode_index` is for a remote's index.
"""

from __future__ import annotations

import re
import struct
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import accumulate, compress, islice, repeat
from operator import add, itemgetter, lt, ne, not_, rshift
from typing import NamedTuple

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.compression import CODEC_RAW, CODEC_ZSTD, MAX_OBJECT_LEN
from mlgit.format.ids import (
    ID_LEN,
    FileHasher,
    RawObjectID,
    digest_bytes,
    digest_hex,
    digest_to_hex,
    raw_to_hex,
)
from mlgit.format.limits import MAX_INDEX_ENTRIES, MAX_INDEX_LEN, MAX_PACK_LEN

__all__ = [
    "is_pack_stem",
    "ENTRY_HEADER",
    "INDEX_ENTRY",
    "INDEX_HEAD_LEN",
    "INDEX_MAGIC",
    "IndexScan",
    "MAX_OBJECT_LEN",
    "OBJ_BLOB",
    "OBJ_CHUNK",
    "OBJ_PROMOTION",
    "OBJ_SNAPSHOT",
    "OBJ_TREE",
    "OBJECT_TYPE_NAMES",
    "PACK_MAGIC",
    "IndexEntry",
    "check_entry",
    "check_index_name",
    "check_pack_magic",
    "fanout_bits",
    "fanout_range",
    "find_record",
    "index_count",
    "decode_entry_header",
    "decode_index",
    "encode_entry_header",
    "encode_index",
    "iter_pack_entries",
    "pack_stem",
]

PACK_MAGIC = b"MLGPACK\x01"
INDEX_MAGIC = b"MLGIDX\x00\x01"
OBJ_CHUNK = 1
OBJ_TREE = 2
OBJ_SNAPSHOT = 3
OBJ_BLOB = 4
OBJ_PROMOTION = 5
OBJECT_TYPE_NAMES = {OBJ_CHUNK: "chunk", OBJ_TREE: "tree", OBJ_SNAPSHOT: "snapshot",
                     OBJ_BLOB: "blob", OBJ_PROMOTION: "promotion"}

ENTRY_HEADER = struct.Struct("<16sBBII")
INDEX_ENTRY = struct.Struct("<16sQIIBB")
_INDEX_HEAD = struct.Struct("<8sII")
INDEX_HEAD_LEN = _INDEX_HEAD.size
_CHECKSUM_LEN = 16
_PREFIX = struct.Struct(">I30x")  # an index entry's first 4 id bytes, as a number
_TYPES = frozenset(OBJECT_TYPE_NAMES)
_CODECS = frozenset((CODEC_RAW, CODEC_ZSTD))


class IndexEntry(NamedTuple):
    """Where one object lives in a pack. ``oid`` is the object's raw id.

    A named tuple: millions of these are built when indexes load. The decoders
    take ``oid`` from a 16-byte struct field, so it needs no further check.
    """

    oid: RawObjectID
    offset: int
    stored_len: int
    raw_len: int
    type: int
    codec: int


def _check_fields(type_: int, codec: int, raw_len: int, stored_len: int) -> None:
    if type_ not in OBJECT_TYPE_NAMES:
        raise FormatError(f"unknown object type {type_}")
    if codec not in (CODEC_RAW, CODEC_ZSTD):
        raise FormatError(f"unknown compression codec {codec}")
    if raw_len > MAX_OBJECT_LEN or stored_len > MAX_OBJECT_LEN:
        raise FormatError(f"object of {raw_len} bytes exceeds the {MAX_OBJECT_LEN} limit")
    if codec == CODEC_RAW and raw_len != stored_len:
        raise FormatError("raw object whose stored and raw lengths differ")


def encode_entry_header(oid: RawObjectID, type_: int, codec: int, raw_len: int,
                        stored_len: int) -> bytes:
    """Encode the 26-byte header that precedes each object in a pack."""
    if len(oid) != ID_LEN:
        raise FormatError("object id must be 16 bytes")
    _check_fields(type_, codec, raw_len, stored_len)
    return ENTRY_HEADER.pack(oid, type_, codec, raw_len, stored_len)


def decode_entry_header(data: bytes | memoryview, pos: int = 0) -> IndexEntry:
    """Decode the entry header at ``pos``; the result's ``offset`` is ``pos``."""
    try:
        oid, type_, codec, raw_len, stored_len = ENTRY_HEADER.unpack_from(data, pos)
    except struct.error:
        raise FormatError("truncated pack entry header") from None
    _check_fields(type_, codec, raw_len, stored_len)
    return IndexEntry(oid, pos, stored_len, raw_len, type_, codec)


def iter_pack_entries(data: bytes | memoryview) -> Iterator[IndexEntry]:
    """Walk a whole pack's bytes, yielding each entry; FormatError if it is malformed."""
    if bytes(data[:8]) != PACK_MAGIC:
        raise FormatError("not a pack file (bad magic)")
    pos = 8
    end = len(data)
    while pos < end:
        e = decode_entry_header(data, pos)
        pos += ENTRY_HEADER.size + e.stored_len
        if pos > end:
            raise FormatError("truncated pack: last object runs past the end")
        yield e


def check_pack_magic(head: bytes) -> None:
    """FormatError unless ``head`` (a pack's first 8 bytes) is the pack magic."""
    if head != PACK_MAGIC:
        if head[:7] == PACK_MAGIC[:7] and len(head) == len(PACK_MAGIC):
            raise UnsupportedFormatError(f"pack version {head[7]} is not supported; "
                                         "upgrade git-ml")
        raise FormatError("not a pack file (bad magic)")


_STEM_RE = re.compile(r"pack-[0-9a-f]{32}")


def pack_stem(index: bytes) -> str:
    """The name of the pack whose index file is ``index``: ``pack-`` and its hex XXH3-128."""
    return "pack-" + digest_hex(index)


def is_pack_stem(stem: str) -> bool:
    """True if ``stem`` has the form of a pack's name: ``pack-`` and 32 lowercase hex digits.

    The one rule for a pack's name, that every reader of a store's ``packs/`` (and of a
    remote's: :mod:`mlgit.sync.layout`) applies; :func:`pack_stem` makes such names.
    """
    return _STEM_RE.fullmatch(stem) is not None


def check_index_name(stem: str, index: bytes) -> None:
    """FormatError unless ``stem`` (``pack-<h>``) is the name the index bytes give their pack.

    A pack is named by the hash of its index file, so a reader that checks the
    name knows the index is the one that was published under it.
    """
    if pack_stem(index) != stem:
        raise FormatError("the index is not named by the hash of its bytes (a pack's name "
                          "is pack- and the XXH3-128 of its index file)")


def encode_index(entries: Sequence[IndexEntry]) -> bytes:
    """Encode index bytes for ``entries`` (any order; unique ids; at most MAX_INDEX_ENTRIES)."""
    if len(entries) > MAX_INDEX_ENTRIES:
        raise FormatError(f"a pack index holds at most {MAX_INDEX_ENTRIES} entries, "
                          f"not {len(entries)}")
    ordered = sorted(entries, key=lambda e: e.oid)
    parts = [_INDEX_HEAD.pack(INDEX_MAGIC, len(ordered), 0)]
    prev = b""
    for e in ordered:
        if e.oid == prev:
            raise FormatError("duplicate id in pack index")
        prev = e.oid
        _check_fields(e.type, e.codec, e.raw_len, e.stored_len)
        if e.offset < len(PACK_MAGIC):
            raise FormatError(f"pack index entry {raw_to_hex(e.oid)} points into the pack header")
        if e.offset + ENTRY_HEADER.size + e.stored_len > MAX_PACK_LEN:
            raise FormatError(f"pack index entry {raw_to_hex(e.oid)} lies past the {MAX_PACK_LEN} "
                              "bytes a pack may have")
        parts.append(INDEX_ENTRY.pack(e.oid, e.offset, e.stored_len, e.raw_len, e.type, e.codec))
    body = b"".join(parts)
    return body + digest_bytes(body)


def decode_index(data: bytes, pack_size: int | None = None) -> list[IndexEntry]:
    """Decode index bytes, checking checksum, count, order and bounds.

    Every entry must lie inside a pack of ``pack_size`` bytes, or, when the size
    is not known (a remote's pack), of at most
    :data:`~mlgit.format.limits.MAX_PACK_LEN`. At most
    :data:`~mlgit.format.limits.MAX_INDEX_ENTRIES` entries, checked before
    anything is allocated for them.
    """
    index_count(data[:_INDEX_HEAD.size], len(data))  # header, count and size
    if digest_bytes(data[:-_CHECKSUM_LEN]) != data[-_CHECKSUM_LEN:]:
        raise FormatError("pack index checksum mismatch")
    rows = list(INDEX_ENTRY.iter_unpack(memoryview(data)[_INDEX_HEAD.size:-_CHECKSUM_LEN]))
    # Checks in bulk (this runs for every pack a command opens), then per row on failure.
    oids = [r[0] for r in rows]
    if oids != sorted(set(oids)):  # strictly increasing (done in C)
        raise FormatError("pack index entries not strictly sorted")
    limit = pack_size if pack_size is not None else MAX_PACK_LEN
    header = len(PACK_MAGIC)
    for oid, off, slen, rlen, type_, codec in rows:
        if (type_ not in OBJECT_TYPE_NAMES or codec > CODEC_ZSTD or rlen > MAX_OBJECT_LEN
                or slen > MAX_OBJECT_LEN or (codec == CODEC_RAW and rlen != slen)):
            _check_fields(type_, codec, rlen, slen)
        if off < header or off + ENTRY_HEADER.size + slen > limit:
            raise FormatError(f"pack index entry {raw_to_hex(oid)} points past its pack")
    return list(map(IndexEntry._make, rows))


def check_entry(e: IndexEntry, limit: int) -> IndexEntry:
    """``e`` if its fields are valid and it lies inside a pack of ``limit`` bytes; else FormatError.

    For an entry read from a file that was checked when it was opened: a file
    changed in place since is caught entry by entry.
    """
    _check_fields(e.type, e.codec, e.raw_len, e.stored_len)
    if e.offset < len(PACK_MAGIC) or e.offset + ENTRY_HEADER.size + e.stored_len > limit:
        raise FormatError(f"index entry {raw_to_hex(e.oid)} points past its pack")
    return e


def index_count(head: bytes, size: int) -> int:
    """The entry count of an index of ``size`` bytes whose first 16 bytes are ``head``.

    Checks the magic, the reserved field, the count's limit and that ``size`` is
    exactly what the count needs; FormatError (or UnsupportedFormatError) else.
    """
    if size < _INDEX_HEAD.size + _CHECKSUM_LEN or len(head) < _INDEX_HEAD.size:
        raise FormatError("truncated pack index")
    if size > MAX_INDEX_LEN:
        raise FormatError(f"pack index is {size} bytes, more than the {MAX_INDEX_LEN} allowed")
    magic, count, reserved = _INDEX_HEAD.unpack_from(head, 0)
    if magic != INDEX_MAGIC:
        if magic[:7] == INDEX_MAGIC[:7]:
            raise UnsupportedFormatError(f"pack index version {magic[7]} is not supported; "
                                         "upgrade git-ml")
        raise FormatError("not a pack index (bad magic)")
    if reserved != 0:
        raise FormatError("pack index reserved field is not zero")
    if count > MAX_INDEX_ENTRIES:
        raise FormatError(f"pack index claims {count} entries, more than the "
                          f"{MAX_INDEX_ENTRIES} allowed")
    expect = _INDEX_HEAD.size + count * INDEX_ENTRY.size + _CHECKSUM_LEN
    if size != expect:
        raise FormatError(f"pack index is {size} bytes, {count} entries need {expect}")
    return int(count)


def fanout_bits(count: int) -> int:
    """Bits of id a reader's in-memory fan-out over ``count`` sorted ids uses (about 4 per bucket).

    At most 16, so the table is at most 256 KiB; about one byte per entry below that.
    """
    return max(0, min(16, count.bit_length() - 2))


def fanout_range(ends: array[int], bits: int, oid: bytes) -> tuple[int, int]:
    """The [lo, hi) positions of the records whose id shares ``oid``'s first ``bits`` bits.

    ``ends[b]`` is the number of records whose bucket is at most ``b``.
    """
    b = int.from_bytes(oid[:4], "big") >> (32 - bits) if bits else 0
    return (ends[b - 1] if b else 0), ends[b]


def find_record(buf: bytes, oid: bytes, base: int, width: int,
                lo: int, hi: int) -> int:
    """The position in [lo, hi) of the ``width``-byte record starting with ``oid``, or -1.

    ``buf`` holds records from ``base``. One C-level search of
    the range; a match that does not start a record is skipped, so the records
    need not even be sorted for the answer to be right (only found in its range).
    """
    end = base + hi * width
    find = buf.find
    pos = find(oid, base + lo * width, end)
    while pos >= 0:
        q, r = divmod(pos - base, width)
        if not r:
            return q
        pos = find(oid, pos + 1, end)
    return -1


class IndexScan:
    """Checks a pack index fed in order, piece by piece, keeping nothing per entry.

    Everything :func:`decode_index` checks (size, magic, count, checksum, strict
    order, known types and codecs, lengths, every entry inside a pack of
    ``pack_size`` bytes, or of at most ``MAX_PACK_LEN``), plus the index's name
    (the XXH3-128 of all its bytes). :meth:`finish` raises the first problem,
    the checksum's first, and returns the fan-out a reader searches with
    (:func:`fanout_bits`, :func:`fanout_range`). The checks run in bulk, in C,
    over each piece's entries; memory is bounded by the piece's size.
    """

    def __init__(self, size: int, pack_size: int | None = None) -> None:
        self.size = size
        self._limit = pack_size if pack_size is not None else MAX_PACK_LEN
        self._fed = 0
        self._carry = b""
        self._sum = FileHasher()  # every byte before the checksum
        self._all = FileHasher()  # every byte: the pack's name
        self._tail = bytearray()
        self.count = -1
        self.bits = 0
        self._prev = b""
        self._counts: Counter[int] = Counter()
        self._error: FormatError | None = None

    def feed(self, data: bytes) -> None:
        """The next ``len(data)`` bytes of the index."""
        if self._fed + len(data) > self.size:
            raise FormatError("pack index is longer than its size")
        self._all.update(data)
        start, self._fed = self._fed, self._fed + len(data)
        n = max(0, min(self._fed, self.size - _CHECKSUM_LEN) - start)
        body = data[:n]
        self._sum.update(body)
        self._tail += data[n:]
        buf = self._carry + body if self._carry else body
        if self.count < 0:
            if len(buf) < _INDEX_HEAD.size:
                self._carry = buf
                return
            self.count = index_count(buf[:_INDEX_HEAD.size], self.size)
            self.bits = fanout_bits(self.count)
            buf = buf[_INDEX_HEAD.size:]
        k = len(buf) - len(buf) % INDEX_ENTRY.size
        if k and self._error is None:
            try:
                self._check(buf[:k])
            except FormatError as e:
                self._error = e
        self._carry = buf[k:]

    def _check(self, blk: bytes) -> None:
        oids, offs, slens, rlens, types, codecs = zip(*INDEX_ENTRY.iter_unpack(blk), strict=True)
        if not (self._prev < oids[0] and all(map(lt, oids, islice(oids, 1, None)))):
            raise FormatError("pack index entries not strictly sorted")
        self._prev = oids[-1]
        if (not _TYPES.issuperset(types) or not _CODECS.issuperset(codecs)
                or max(slens) > MAX_OBJECT_LEN or max(rlens) > MAX_OBJECT_LEN):
            for t, c, r, sl in zip(types, codecs, rlens, slens, strict=True):
                _check_fields(t, c, r, sl)
        if any(map(ne, compress(rlens, map(not_, codecs)), compress(slens, map(not_, codecs)))):
            raise FormatError("raw object whose stored and raw lengths differ")
        if (min(offs) < len(PACK_MAGIC)
                or max(map(add, offs, slens)) + ENTRY_HEADER.size > self._limit):
            for oid, off, sl in zip(oids, offs, slens, strict=True):
                if off < len(PACK_MAGIC) or off + ENTRY_HEADER.size + sl > self._limit:
                    raise FormatError(f"pack index entry {raw_to_hex(oid)} points past its pack")
        if self.bits:
            prefixes = map(itemgetter(0), _PREFIX.iter_unpack(blk))
            self._counts.update(map(rshift, prefixes, repeat(32 - self.bits)))
        else:
            self._counts[0] += len(oids)

    def finish(self) -> tuple[str, array[int]]:
        """The pack's name (``pack-<h>``) and the fan-out; FormatError if anything was wrong."""
        if self._fed != self.size or self.count < 0 or self._carry:
            raise FormatError("truncated pack index")
        if self._sum.digest() != bytes(self._tail):
            raise FormatError("pack index checksum mismatch")
        if self._error is not None:
            raise self._error
        counts = self._counts
        ends = array("I", accumulate(counts.get(b, 0) for b in range(1 << self.bits)))
        return "pack-" + digest_to_hex(self._all.digest()), ends
