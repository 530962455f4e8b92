"""The store's config file (``.git/ml/config``): format version, hash, chunker, pack size.

Format 1 is a store that holds its own objects. Format 2 adds ``shared``: the
absolute path of a shared object store (docs/format.md, "Shared stores") where
the clone keeps its objects, so that a git-ml that does not know shared stores
refuses the clone ("upgrade git-ml") instead of finding its objects missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.ids import HASH_NAME
from mlgit.format.limits import MAX_STORE_PATH_LEN

__all__ = ["FORMAT_SHARED", "FORMAT_VERSION", "StoreConfig", "check_config", "decode_config",
           "encode_config", "without_shared"]

FORMAT_VERSION = 2
"""The newest store format this git-ml reads."""
FORMAT_SHARED = 2
"""The format of a store whose objects live in a shared store (``shared`` set)."""


@dataclass(frozen=True)
class StoreConfig:
    """Settings fixed when a store is created.

    ``chunk_min``/``chunk_avg``/``chunk_max`` are the FastCDC parameters;
    changing them only costs deduplication against older data, never
    correctness. ``pack_size`` is the size at which a pack being written is
    closed and a new one started. ``shared`` (format 2 only; empty: none) is the
    absolute path of the shared store holding this clone's objects.
    """

    format: int = 1
    hash: str = HASH_NAME
    compression: str = "zstd"
    chunk_min: int = 16 << 10
    chunk_avg: int = 64 << 10
    chunk_max: int = 256 << 10
    pack_size: int = 32 << 20
    shared: str = ""


def encode_config(c: StoreConfig) -> bytes:
    """Render the config as pretty JSON (``shared`` only when set)."""
    fields = asdict(c)
    if not c.shared:
        del fields["shared"]
    return (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode()


def without_shared(c: StoreConfig) -> StoreConfig:
    """The config a store made from this one gets (a remote's): no shared store, format 1."""
    if not c.shared:
        return c
    return replace(c, shared="", format=1 if c.format == FORMAT_SHARED else c.format)


def decode_config(data: bytes) -> StoreConfig:
    """Parse a config; UnsupportedFormatError for a newer format, FormatError for garbage."""
    try:
        obj: Any = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"store config is not JSON: {str(e)[:100]}") from None
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
    check_config(c)
    return c


def check_config(c: StoreConfig) -> None:
    """Raise FormatError unless every setting is usable (the chunker's own limits included)."""
    ints = (c.chunk_min, c.chunk_avg, c.chunk_max, c.pack_size, c.format)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        raise FormatError("store config sizes must be integers")
    if c.format < 1:
        raise FormatError(f"store config format {c.format} is not a version")
    if not (64 <= c.chunk_min <= 1 << 20 and 256 <= c.chunk_avg <= 4 << 20
            and 1024 <= c.chunk_max <= 16 << 20 and c.chunk_min <= c.chunk_avg <= c.chunk_max):
        raise FormatError("store config has chunk sizes outside FastCDC's limits "
                          "(min 64 B-1 MiB, avg 256 B-4 MiB, max 1 KiB-16 MiB, min <= avg <= max)")
    if not 1024 <= c.pack_size <= 1 << 32:
        raise FormatError("store config pack_size must be between 1 KiB and 4 GiB")
    if c.compression != "zstd":
        raise UnsupportedFormatError(f"store compression {c.compression!r} is not supported")
    if not isinstance(c.shared, str):
        raise FormatError("store config shared must be a path")
    if c.shared:
        if c.format < FORMAT_SHARED:
            raise FormatError(f"store config names a shared store but is format {c.format}, "
                              f"not {FORMAT_SHARED}")
        if (not c.shared.startswith("/") or "\0" in c.shared or "\n" in c.shared
                or len(c.shared.encode("utf-8", "surrogateescape")) > MAX_STORE_PATH_LEN):
            raise FormatError("store config shared must be an absolute path (at most "
                              f"{MAX_STORE_PATH_LEN} bytes, one line)")
