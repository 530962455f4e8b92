"""The envelope of a derived-data cache file: what it is, what it is for, and a checksum.

A cache file is one header line (ending in a newline) and a JSON body::

    {"kind":"results-rows","key":"<32 hex>","sum":"<32 hex>","v":1}
    <body: plain JSON>

``kind`` says what the body is, ``key`` what it was computed from (the caller's
digest of every input: a file whose key differs is stale), ``sum`` the
XXH3-128 of the body bytes (a file cut short, or changed by anything but its
writer's encoder, fails it) and ``v`` the envelope's version. :func:`decode_cache`
checks all four before it parses the body with the strict reader of
:mod:`mlgit.format.plainjson`; the caller then checks the body's fields.

Pure functions; they raise FormatError and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from mlgit.errors import FormatError
from mlgit.format import plainjson
from mlgit.format.ids import object_id

__all__ = ["CACHE_VERSION", "decode_cache", "encode_cache"]

CACHE_VERSION = 1
_MAX_HEADER = 512


def encode_cache(kind: str, key: str, body: Any) -> bytes:
    """The file for ``body`` (plain JSON) computed from ``key``, of ``kind``."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    header = {"kind": kind, "key": key, "sum": object_id(data), "v": CACHE_VERSION}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n" + data


def _header(data: bytes, kind: str) -> tuple[dict[str, Any], bytes]:
    end = data.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        raise FormatError(f"{kind} cache: no header line")
    try:
        header = json.loads(data[:end])
    except ValueError:
        raise FormatError(f"{kind} cache: the header is not JSON") from None
    if not isinstance(header, dict) or header.get("v") != CACHE_VERSION:
        raise FormatError(f"{kind} cache: not a version {CACHE_VERSION} cache file")
    if header.get("kind") != kind:
        raise FormatError(f"{kind} cache: the file holds {str(header.get('kind'))[:40]!r}")
    return header, data[end + 1:]


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def decode_cache(data: bytes, kind: str, key: str | None, *, strict: bool = True) -> Any:
    """The body of a cache file of ``kind`` computed from ``key`` (None: any key).

    FormatError when the file is of another kind or version, for another key,
    fails its checksum or is not JSON. With ``strict`` the body is read as
    :func:`mlgit.format.plainjson.loads` reads stored data; without, by the
    standard reader with ``NaN`` and ``Infinity`` refused, which is several
    times faster for a large body, and the caller checks every value it takes
    (a number may then be infinite, as ``1e400`` parses; a string may hold a
    lone surrogate).
    """
    header, body = _header(data, kind)
    if key is not None and header.get("key") != key:
        raise FormatError(f"{kind} cache: computed from other inputs (stale)")
    if header.get("sum") != object_id(body):
        raise FormatError(f"{kind} cache: checksum mismatch (damaged)")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(f"{kind} cache: the body is not ASCII JSON") from None
    if strict:
        return plainjson.loads(text, f"{kind} cache")
    try:
        return json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{kind} cache: the body is not JSON ({str(e)[:80]})") from None
