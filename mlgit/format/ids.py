"""Object ids: XXH3-128 of an object's canonical uncompressed bytes.

An :data:`ObjectID` is the id as 32 lowercase hex characters; on disk (trees,
pack indexes) it is the 16 raw bytes, big-endian as xxhash prints them.
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
    "ObjectID",
    "digest_bytes",
    "hex_to_raw",
    "is_hex_prefix",
    "object_id",
    "parse_object_id",
    "raw_to_hex",
]

ObjectID = NewType("ObjectID", str)
HASH_NAME = "xxh3-128"
ID_LEN = 16
ID_HEX_LEN = 32
_HEX_RE = re.compile(r"[0-9a-f]+\Z")


def digest_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """Return the 16-byte XXH3-128 digest of ``data``."""
    return xxhash.xxh3_128_digest(data)


def object_id(data: bytes | bytearray | memoryview) -> ObjectID:
    """Return the id of an object whose canonical bytes are ``data``."""
    return ObjectID(xxhash.xxh3_128_hexdigest(data))


def raw_to_hex(raw: bytes) -> ObjectID:
    """Turn 16 raw id bytes into an :data:`ObjectID`; raise FormatError on a wrong length."""
    if len(raw) != ID_LEN:
        raise FormatError(f"object id must be {ID_LEN} bytes, got {len(raw)}")
    return ObjectID(raw.hex())


def hex_to_raw(oid: str) -> bytes:
    """Turn a full hex id into its 16 raw bytes; raise FormatError if it is not one."""
    return bytes.fromhex(parse_object_id(oid))


def parse_object_id(text: str) -> ObjectID:
    """Validate a full id (32 lowercase hex chars) and return it typed."""
    if len(text) != ID_HEX_LEN or not _HEX_RE.match(text):
        raise FormatError(f"not an object id: {text[:64]!r}")
    return ObjectID(text)


def is_hex_prefix(text: str) -> bool:
    """True when ``text`` could abbreviate an id: 4 to 32 lowercase hex characters."""
    return 4 <= len(text) <= ID_HEX_LEN and bool(_HEX_RE.match(text))
