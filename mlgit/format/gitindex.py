"""Encode a git index file (version 2) whose entries carry stat data only.

git-ml keeps, beside each tracked path's stat cache, a private git index that
lists the path's files with the stat data the cache recorded, so that the real
``git diff-files`` and ``git ls-files --others`` (C, threaded, no Python per
file) can answer "did anything change since?" (see
:mod:`mlgit.gitlink.statindex`). The object id of every entry is a fixed
placeholder that names no blob: such an index is never used to commit, and an
entry git would compare by content (a "racy" one) compares unequal, so the
answer errs on the side of "changed".

The byte layout is git's ``gitformat-index(5)``, version 2: the ``DIRC``
header, entries sorted by path bytes (each 62 bytes of stat data, object id and
flags for SHA-1, 74 for SHA-256, then the path and 1 to 8 NUL bytes to a
multiple of 8), and the trailing checksum of the whole file in the
repository's hash.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from mlgit.errors import FormatError

__all__ = ["CHUNK", "MODE_EXECUTABLE", "MODE_FILE", "MODE_SYMLINK", "PLACEHOLDER_BYTE",
           "IndexEntry", "encode_index", "index_chunks"]

MODE_FILE = 0o100644
MODE_EXECUTABLE = 0o100755
MODE_SYMLINK = 0o120000
PLACEHOLDER_BYTE = b"\x5a"
"""Every entry's object id is this byte repeated: no blob (a hash would have to equal it)."""

CHUNK = 1 << 20
"""About how many bytes :func:`index_chunks` yields at a time."""
_HEADER = struct.Struct(">4sII")
_STAT = struct.Struct(">10I")
_FLAGS = struct.Struct(">H")
_NAME_MASK = 0xFFF
_U32 = 0xFFFFFFFF
_HASHES = {"sha1": 20, "sha256": 32}


class IndexEntry(NamedTuple):
    """One entry: the path (bytes, ``/``-separated, relative to the work tree) and its stat."""

    path: bytes
    ctime_ns: int
    mtime_ns: int
    dev: int
    ino: int
    mode: int
    uid: int
    gid: int
    size: int


def encode_index(entries: Iterable[IndexEntry], hash_name: str) -> bytes:
    """The index file holding ``entries`` (any order; sorted here), for a ``hash_name`` repository.

    ``hash_name`` is git's ``extensions.objectFormat`` (``sha1`` or
    ``sha256``). Stat fields are truncated to 32 bits, as git stores them.
    FormatError for an unknown hash, an empty, absolute or NUL-holding path, or
    a path given twice.
    """
    ordered = sorted(entries)
    return b"".join(index_chunks(ordered, len(ordered), hash_name))


def index_chunks(entries: Iterable[IndexEntry], count: int, hash_name: str) -> Iterator[bytes]:
    """:func:`encode_index` in pieces of about :data:`CHUNK` bytes, for a large index.

    ``entries`` must come sorted by path (git's order: bytes), ``count`` of
    them: a large index is then written without holding its entries. A
    FormatError (an entry out of order, another count) comes before the piece
    that would hold it, and always before the last piece (the checksum), so a
    caller writing the pieces out must discard what it wrote.
    """
    oid_len = _HASHES.get(hash_name)
    if oid_len is None:
        raise FormatError(f"unknown git object format {hash_name!r}")
    import hashlib  # start-up time (OpenSSL): only when an index is written

    digest = hashlib.new(hash_name)
    oid = PLACEHOLDER_BYTE * oid_len
    fixed = _STAT.size + oid_len + _FLAGS.size
    pack = _STAT.pack
    # what follows the stat data of a path of each length: the id and flags, then the padding
    tails: dict[int, bytes] = {}
    pads = [b"\0" * (8 - (fixed + n) % 8) for n in range(8)]
    parts = [_HEADER.pack(b"DIRC", 2, count)]
    append = parts.append
    size = 0
    last = b""
    second = 1_000_000_000
    seen = 0
    try:
        for path, ctime_ns, mtime_ns, dev, ino, mode, uid, gid, fsize in entries:
            seen += 1
            if path <= last or path[:1] == b"/" or b"\0" in path:
                raise FormatError(f"git index entry {path!r} is not a relative path given once")
            last = path
            n = len(path)
            tail = tails.get(n)
            if tail is None:
                tail = tails[n] = oid + _FLAGS.pack(min(n, _NAME_MASK))
            ctime_s, ctime_n = divmod(ctime_ns, second)
            mtime_s, mtime_n = divmod(mtime_ns, second)
            append(pack(ctime_s & _U32, ctime_n, mtime_s & _U32, mtime_n, dev & _U32,
                        ino & _U32, mode, uid & _U32, gid & _U32, fsize & _U32))
            append(tail)
            append(path)
            append(pads[n % 8])
            size += fixed + n + 8
            if size >= CHUNK:
                piece = b"".join(parts)
                digest.update(piece)
                yield piece
                parts.clear()
                size = 0
    except struct.error as e:
        raise FormatError(f"git index entry out of range: {e}") from None
    if seen != count:
        raise FormatError(f"git index of {count} entries given {seen}")
    piece = b"".join(parts)
    digest.update(piece)
    yield piece
    yield digest.digest()
