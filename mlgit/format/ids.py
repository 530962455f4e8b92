"""Object ids and file digests: XXH3-128, and the one place they change form.

Three types, distinct to mypy (``NewType``: plain str and bytes at run time), so
that a hex id, a raw id and a file's content digest cannot pass for one another:

- :data:`ObjectID`: an object's id as 32 lowercase hex characters (refs, pointer
  files, notes, snapshots' ``tree``/``parents``, the command line).
- :data:`RawObjectID`: the same id as its 16 raw bytes, big-endian as xxhash prints
  them (trees, pack indexes, every lookup in the store).
- :data:`FileDigest`: XXH3-128 of a regular file's whole content, 16 raw bytes, as a
  tree's file entry records it. It names no object (a file is stored as chunks).

Every conversion between text and bytes is here: :func:`hex_to_raw` and
:func:`parse_object_id` validate what they are given and raise FormatError;
:func:`raw_to_hex` checks the length. No other module calls ``bytes.fromhex`` or
``.hex()`` on an id (``tests/test_typed_ids.py`` checks). Decoders (trees, pack
indexes, snapshots) return typed values; where they took the bytes from a struct
field of exactly 16 bytes no further check runs, so hot paths pay nothing.
"""

from __future__ import annotations

import re
from typing import NewType

import xxhash

from mlgit.errors import FormatError

__all__ = [
    "HASH_NAME",
    "ID_HEX_LEN",
    "ID_LEN",
    "FileDigest",
    "FileHasher",
    "ObjectID",
    "RawObjectID",
    "digest_bytes",
    "digest_hex",
    "digest_to_hex",
    "file_digest",
    "hex_to_raw",
    "is_hex_prefix",
    "object_id",
    "parse_object_id",
    "raw_object_id",
    "raw_to_hex",
]

ObjectID = NewType("ObjectID", str)
"""An object id as 32 lowercase hex characters."""
RawObjectID = NewType("RawObjectID", bytes)
"""An object id as its 16 raw bytes."""
FileDigest = NewType("FileDigest", bytes)
"""XXH3-128 of a file's whole content (16 raw bytes); not an object id."""

HASH_NAME = "xxh3-128"
ID_LEN = 16
ID_HEX_LEN = 32
_HEX_RE = re.compile(r"[0-9a-f]+\Z")

Buffer = bytes | bytearray | memoryview


def digest_bytes(data: Buffer) -> bytes:
    """The 16-byte XXH3-128 of ``data``, untyped.

    For checksums (a pack index's last 16 bytes) and for comparing bytes read with
    the id they must match (``digest_bytes(data) != entry.oid``, on the read path:
    no wrapper call). An object's id is :func:`raw_object_id`, a file's digest
    :func:`file_digest`.
    """
    return xxhash.xxh3_128_digest(data)


def digest_hex(data: Buffer) -> str:
    """XXH3-128 of ``data`` as 32 hex characters, for names and keys.

    A pack's name, a cache file's; never an object id (that is :func:`object_id`).
    """
    return xxhash.xxh3_128_hexdigest(data)


def raw_object_id(data: Buffer) -> RawObjectID:
    """The raw id of an object whose canonical bytes are ``data``."""
    return RawObjectID(xxhash.xxh3_128_digest(data))


def object_id(data: Buffer) -> ObjectID:
    """The hex id of an object whose canonical bytes are ``data``."""
    return ObjectID(xxhash.xxh3_128_hexdigest(data))


def file_digest(data: Buffer) -> FileDigest:
    """The digest a tree records for a file whose whole content is ``data``."""
    return FileDigest(xxhash.xxh3_128_digest(data))


class FileHasher:
    """The :data:`FileDigest` of a file read piece by piece.

    ``update`` each piece in order, then :meth:`digest`. ``update`` is xxhash's own
    method (no wrapper call per piece).
    """

    __slots__ = ("_h", "update")

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()
        self.update = self._h.update

    def digest(self) -> FileDigest:
        """The digest of every piece given so far."""
        return FileDigest(self._h.digest())


def raw_to_hex(raw: RawObjectID) -> ObjectID:
    """Turn 16 raw id bytes into an :data:`ObjectID`; raise FormatError on a wrong length."""
    if len(raw) != ID_LEN:
        raise FormatError(f"object id must be {ID_LEN} bytes, got {len(raw)}")
    return ObjectID(raw.hex())


def hex_to_raw(oid: str) -> RawObjectID:
    """Turn a full hex id into its 16 raw bytes; raise FormatError if it is not one.

    Exactly 32 lowercase hex characters (what :func:`parse_object_id` accepts):
    ``bytes.fromhex`` alone would also take upper case, spaces and other lengths.
    """
    try:
        raw = bytes.fromhex(oid)
    except ValueError:
        raw = b""
    if len(raw) != ID_LEN or raw.hex() != oid:  # the round trip refuses "AB", " ", ...
        raise FormatError(f"not an object id: {oid[:64]!r}")
    return RawObjectID(raw)


def digest_to_hex(digest: FileDigest) -> str:
    """A file digest as 32 hex characters (how ``show`` and merge conflicts print it)."""
    if len(digest) != ID_LEN:
        raise FormatError(f"file digest must be {ID_LEN} bytes, got {len(digest)}")
    return digest.hex()


def parse_object_id(text: str) -> ObjectID:
    """Validate a full id (32 lowercase hex chars) and return it typed."""
    if len(text) != ID_HEX_LEN or not _HEX_RE.match(text):
        raise FormatError(f"not an object id: {text[:64]!r}")
    return ObjectID(text)


def is_hex_prefix(text: str) -> bool:
    """True when ``text`` could abbreviate an id: 4 to 32 lowercase hex characters."""
    return 4 <= len(text) <= ID_HEX_LEN and bool(_HEX_RE.match(text))
