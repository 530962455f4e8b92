"""Tree objects: one directory's sorted entries (see docs/format.md, "Tree").

Canonical bytes::

    magic   8  b"MLGTREE" + version byte 1
    count   u32
    entry*  count times, sorted strictly by name bytes:
      name_len u16, name
      type     u8   1 file, 2 symlink, 3 dir
      flags    u8   file: bit 0 = executable; others: 0
      size     u64  file: content bytes; symlink: target bytes; dir: file bytes below
      file:    digest[16] (XXH3-128 of the content), nchunks u32,
               nchunks x (chunk id[16], chunk length u32)
      symlink: target (size bytes)
      dir:     subtree id[16], files u64 (regular files and symlinks below)

All integers little-endian. :func:`decode_tree` accepts exactly the bytes
:func:`encode_tree` produces and raises FormatError for anything else.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.ids import ID_LEN, FileDigest, RawObjectID
from mlgit.format.names import check_entry_name

__all__ = [
    "MAX_CHUNK_LEN",
    "NO_DIGEST",
    "NO_SUBTREE",
    "TREE_MAGIC",
    "TYPE_DIR",
    "TYPE_FILE",
    "TYPE_SYMLINK",
    "ChunkRef",
    "TreeEntry",
    "decode_tree",
    "encode_tree",
]

TREE_MAGIC = b"MLGTREE\x01"
TYPE_FILE = 1
TYPE_SYMLINK = 2
TYPE_DIR = 3
FLAG_EXEC = 1
MAX_CHUNK_LEN = 64 << 20
MAX_SYMLINK_LEN = 4096

_HEAD = struct.Struct("<I")
_NAME = struct.Struct("<H")
_FIXED = struct.Struct("<BBQ")
_FILE = struct.Struct("<16sI")
_CHUNK = struct.Struct("<16sI")
_DIR = struct.Struct("<16sQ")

ChunkRef = tuple[RawObjectID, int]
"""A chunk of a file: (its raw id, its length)."""

NO_DIGEST = FileDigest(b"")
"""The ``digest`` of an entry that is not a file."""
NO_SUBTREE = RawObjectID(b"")
"""The ``subtree`` of an entry that is not a directory."""


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a tree. Which fields matter depends on ``type``.

    ``name`` is raw bytes (one path component). Files: ``size``, ``executable``,
    ``digest`` (the content's :data:`~mlgit.format.ids.FileDigest`) and ``chunks``.
    Symlinks: ``target``. Dirs: ``subtree`` (the tree's
    :data:`~mlgit.format.ids.RawObjectID`), ``size`` (bytes of files below) and
    ``files``. :func:`decode_tree` has checked every id's length, so readers of a
    decoded entry use them as they are.
    """

    name: bytes
    type: int
    size: int = 0
    executable: bool = False
    digest: FileDigest = NO_DIGEST
    chunks: tuple[ChunkRef, ...] = ()
    target: bytes = b""
    subtree: RawObjectID = NO_SUBTREE
    files: int = 0


def encode_tree(entries: Iterable[TreeEntry]) -> bytes:
    """Encode entries (any order; names must be unique) as canonical tree bytes."""
    ordered = sorted(entries, key=lambda e: e.name)
    out = [TREE_MAGIC, _HEAD.pack(len(ordered))]
    prev: bytes | None = None
    for e in ordered:
        check_entry_name(e.name)
        if e.name == prev:
            raise FormatError(f"duplicate tree entry name {e.name!r}")
        prev = e.name
        out.append(_NAME.pack(len(e.name)))
        out.append(e.name)
        if e.type == TYPE_FILE:
            _check_file(e)
            out.append(_FIXED.pack(TYPE_FILE, FLAG_EXEC if e.executable else 0, e.size))
            out.append(_FILE.pack(e.digest, len(e.chunks)))
            out.extend(_CHUNK.pack(cid, n) for cid, n in e.chunks)
        elif e.type == TYPE_SYMLINK:
            _check_symlink(e.target)
            out.append(_FIXED.pack(TYPE_SYMLINK, 0, len(e.target)))
            out.append(e.target)
        elif e.type == TYPE_DIR:
            if len(e.subtree) != ID_LEN:
                raise FormatError("dir entry needs a 16-byte subtree id")
            out.append(_FIXED.pack(TYPE_DIR, 0, e.size))
            out.append(_DIR.pack(e.subtree, e.files))
        else:
            raise FormatError(f"unknown tree entry type {e.type}")
    return b"".join(out)


def _check_file(e: TreeEntry) -> None:
    if len(e.digest) != ID_LEN:
        raise FormatError(f"file entry {e.name!r} needs a 16-byte digest")
    total = 0
    for cid, n in e.chunks:
        if len(cid) != ID_LEN or not 0 < n <= MAX_CHUNK_LEN:
            raise FormatError(f"file entry {e.name!r} has a bad chunk reference")
        total += n
    if total != e.size:
        raise FormatError(f"file entry {e.name!r}: chunks hold {total} bytes, size is {e.size}")


def _check_symlink(target: bytes) -> None:
    if not target or len(target) > MAX_SYMLINK_LEN or b"\0" in target:
        raise FormatError(f"bad symlink target {target[:64]!r}")


def decode_tree(data: bytes) -> list[TreeEntry]:
    """Decode canonical tree bytes into entries (sorted by name); FormatError on anything else."""
    try:
        return _decode(memoryview(data))
    except struct.error as e:
        raise FormatError(f"truncated tree: {e}") from None


def _check_magic(mv: memoryview) -> None:
    """FormatError unless ``mv`` starts with the tree magic (Unsupported...: another version)."""
    if bytes(mv[:8]) != TREE_MAGIC:
        if len(mv) >= 8 and bytes(mv[:7]) == TREE_MAGIC[:7]:
            raise UnsupportedFormatError(f"tree format version {mv[7]} is not supported; "
                                         "upgrade git-ml")
        raise FormatError("not a tree object (bad magic)")


def _decode(mv: memoryview) -> list[TreeEntry]:
    _check_magic(mv)
    (count,) = _HEAD.unpack_from(mv, 8)
    pos = 12
    end = len(mv)
    # Every entry takes at least 2+1+10+16+... bytes; refuse counts the data cannot hold.
    if count > (end - pos) // 13:
        raise FormatError(f"tree claims {count} entries in {end} bytes")
    entries: list[TreeEntry] = []
    prev = b""
    for _ in range(count):
        (nlen,) = _NAME.unpack_from(mv, pos)
        pos += 2
        name = bytes(mv[pos : pos + nlen])
        if len(name) != nlen:
            raise FormatError("truncated tree entry name")
        pos += nlen
        check_entry_name(name)
        if entries and name <= prev:
            raise FormatError(f"tree entries not strictly sorted at {name!r}")
        prev = name
        etype, flags, size = _FIXED.unpack_from(mv, pos)
        pos += _FIXED.size
        if etype == TYPE_FILE:
            if flags & ~FLAG_EXEC:
                raise FormatError(f"unknown file flags {flags:#x}")
            digest, nchunks = _FILE.unpack_from(mv, pos)
            pos += _FILE.size
            if nchunks > (end - pos) // _CHUNK.size:
                raise FormatError(f"file entry {name!r} claims {nchunks} chunks past the end")
            chunks = tuple(
                _CHUNK.unpack_from(mv, pos + i * _CHUNK.size) for i in range(nchunks)
            )
            pos += nchunks * _CHUNK.size
            e = TreeEntry(name, TYPE_FILE, size, bool(flags & FLAG_EXEC), digest, chunks)
            _check_file(e)
        elif etype == TYPE_SYMLINK:
            if flags:
                raise FormatError("symlink entry has flags")
            target = bytes(mv[pos : pos + size])
            if len(target) != size:
                raise FormatError("truncated symlink target")
            pos += size
            _check_symlink(target)
            e = TreeEntry(name, TYPE_SYMLINK, size, target=target)
        elif etype == TYPE_DIR:
            if flags:
                raise FormatError("dir entry has flags")
            subtree, files = _DIR.unpack_from(mv, pos)
            pos += _DIR.size
            e = TreeEntry(name, TYPE_DIR, size, subtree=subtree, files=files)
        else:
            raise FormatError(f"unknown tree entry type {etype}")
        entries.append(e)
    if pos != end:
        raise FormatError(f"{end - pos} trailing bytes after tree entries")
    return entries
