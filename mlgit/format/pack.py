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
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.compression import CODEC_RAW, CODEC_ZSTD, MAX_OBJECT_LEN
from mlgit.format.ids import ID_LEN, RawObjectID, digest_bytes, digest_hex, raw_to_hex
from mlgit.format.limits import MAX_INDEX_ENTRIES, MAX_PACK_LEN

__all__ = [
    "is_pack_stem",
    "ENTRY_HEADER",
    "INDEX_ENTRY",
    "INDEX_MAGIC",
    "MAX_OBJECT_LEN",
    "OBJ_BLOB",
    "OBJ_CHUNK",
    "OBJ_PROMOTION",
    "OBJ_SNAPSHOT",
    "OBJ_TREE",
    "OBJECT_TYPE_NAMES",
    "PACK_MAGIC",
    "IndexEntry",
    "check_index_name",
    "check_pack_magic",
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
_CHECKSUM_LEN = 16


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
    if len(data) < _INDEX_HEAD.size + _CHECKSUM_LEN:
        raise FormatError("truncated pack index")
    magic, count, reserved = _INDEX_HEAD.unpack_from(data, 0)
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
    if len(data) != expect:
        raise FormatError(f"pack index is {len(data)} bytes, {count} entries need {expect}")
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
