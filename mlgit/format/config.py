"""The store's config file (``.git/ml/config``): format version, hash, chunker, pack size."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.ids import HASH_NAME

__all__ = ["FORMAT_VERSION", "StoreConfig", "decode_config", "encode_config"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class StoreConfig:
    """Settings fixed when a store is created.

    ``chunk_min``/``chunk_avg``/``chunk_max`` are the FastCDC parameters;
    changing them only costs deduplication against older data, never
    correctness. ``pack_size`` is the size at which a pack being written is
    closed and a new one started.
    """

    format: int = FORMAT_VERSION
    hash: str = HASH_NAME
    compression: str = "zstd"
    chunk_min: int = 16 << 10
    chunk_avg: int = 64 << 10
    chunk_max: int = 256 << 10
    pack_size: int = 32 << 20


def encode_config(c: StoreConfig) -> bytes:
    """Render the config as pretty JSON."""
    return (json.dumps(asdict(c), indent=2, sort_keys=True) + "\n").encode()


def decode_config(data: bytes) -> StoreConfig:
    """Parse a config; UnsupportedFormatError for a newer format, FormatError for garbage."""
    try:
        obj: Any = json.loads(data)
    except ValueError as e:
        raise FormatError(f"store config is not JSON: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("format"), int):
        raise FormatError("store config has no format version")
    if obj["format"] > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"store format {obj['format']} is newer than this git-ml understands "
            f"({FORMAT_VERSION}); upgrade git-ml"
        )
    if obj.get("hash") != HASH_NAME:
        raise UnsupportedFormatError(f"store uses hash {obj.get('hash')!r}; this git-ml knows "
                                     f"only {HASH_NAME}")
    try:
        c = StoreConfig(**obj)
    except TypeError as e:
        raise FormatError(f"store config has unknown fields: {e}") from None
    ints = (c.chunk_min, c.chunk_avg, c.chunk_max, c.pack_size)
    if not all(isinstance(v, int) and v > 0 for v in ints) or not (
        64 <= c.chunk_min <= c.chunk_avg <= c.chunk_max <= (16 << 20)
    ):
        raise FormatError("store config has invalid chunker or pack sizes")
    return c
