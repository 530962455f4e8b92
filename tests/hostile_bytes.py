"""Stores written byte by byte from docs/format.md, for hostile-input tests.

Nothing here imports ``mlgit``: every byte is laid out with ``struct``, ``json``,
``xxhash`` and ``zstandard`` as the format doc describes it, so a test can build
what git-ml's own writers refuse to (bad names, lying lengths, wrong types,
deep trees, trailing frames) and a bug in git-ml's writer cannot hide a bug in
its reader.

Typical use::

    w = RawStore(repo / ".git/ml")
    b = Builder()
    tree = b.tree([b.file(b"x", b"hello\\n")])
    snap = b.snapshot("data", tree, files=1, nbytes=6)
    w.write(b.objects)            # one pack + index, named by the index's hash
    w.ref("datasets", "data", snap)
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash
import zstandard

# -- constants of docs/format.md ----------------------------------------------------------

TREE_MAGIC = b"MLGTREE\x01"
SNAP_MAGIC = b"MLGSNAP\x01"
PACK_MAGIC = b"MLGPACK\x01"
INDEX_MAGIC = b"MLGIDX\x00\x01"
PROM_MAGIC = b"MLGPROM\x01"
CHUNK, TREE, SNAPSHOT, BLOB, PROMOTION = 1, 2, 3, 4, 5
RAW, ZSTD = 0, 1
T_FILE, T_LINK, T_DIR = 1, 2, 3
ZERO16 = b"\0" * 16
CONFIG = {"chunk_avg": 4096, "chunk_max": 16384, "chunk_min": 1024, "compression": "zstd",
          "format": 1, "hash": "xxh3-128", "pack_size": 65536}


def oid(data: bytes) -> bytes:
    """The raw id of an object whose canonical bytes are ``data``."""
    return xxhash.xxh3_128_digest(data)


def hexid(data: bytes) -> str:
    """The text id of an object whose canonical bytes are ``data``."""
    return oid(data).hex()


# -- trees --------------------------------------------------------------------------------


def ent(name: bytes, body: bytes) -> bytes:
    """One tree entry: name length, name, then the type-specific ``body``."""
    return struct.pack("<H", len(name)) + name + body


def file_body(chunks: list[tuple[bytes, int]], size: int | None = None, flags: int = 0,
              digest: bytes | None = None) -> bytes:
    total = sum(n for _, n in chunks) if size is None else size
    return (struct.pack("<BBQ", T_FILE, flags, total) + (digest or ZERO16)
            + struct.pack("<I", len(chunks))
            + b"".join(c + struct.pack("<I", n) for c, n in chunks))


def link_body(target: bytes, size: int | None = None, flags: int = 0) -> bytes:
    return struct.pack("<BBQ", T_LINK, flags, len(target) if size is None else size) + target


def dir_body(subtree: bytes, size: int = 0, files: int = 0) -> bytes:
    return struct.pack("<BBQ", T_DIR, 0, size) + subtree + struct.pack("<Q", files)


def raw_tree(*entries: bytes, count: int | None = None) -> bytes:
    """Tree bytes from entries given in the order wanted (the caller sorts, or not)."""
    return TREE_MAGIC + struct.pack("<I", len(entries) if count is None else count) + b"".join(
        entries)


# -- snapshots ----------------------------------------------------------------------------


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def snapshot_fields(name: str, tree: bytes | str, **over: Any) -> dict[str, Any]:
    """The twelve snapshot fields with plausible values; ``over`` replaces any of them."""
    obj: dict[str, Any] = {
        "kind": "dataset", "name": name, "tree": tree.hex() if isinstance(tree, bytes) else tree,
        "root": "dir", "parents": [], "time": 1_700_000_000, "tz": 0,
        "author": "Mallory <m@example.com>", "message": "", "files": 1, "bytes": 0,
        "meta": {"path": name}}
    obj.update(over)
    return obj


def snapshot_bytes(obj: dict[str, Any] | bytes) -> bytes:
    """Snapshot object bytes: the magic and canonical JSON (or a body given as bytes)."""
    return SNAP_MAGIC + (obj if isinstance(obj, bytes) else canonical(obj))


def promotion_fields(model: str, stage: str, checkpoint: bytes | str | None,
                     parent: bytes | str | None = None, **over: Any) -> dict[str, Any]:
    """The eight promotion fields with plausible values; ``over`` replaces any of them."""
    def hx(v: bytes | str | None) -> str | None:
        return v.hex() if isinstance(v, bytes) else v

    obj: dict[str, Any] = {"model": model, "stage": stage, "checkpoint": hx(checkpoint),
                           "parent": hx(parent), "time": 1_700_000_000, "tz": 0,
                           "author": "Mallory <m@example.com>", "message": ""}
    obj.update(over)
    return obj


def promotion_bytes(obj: dict[str, Any] | bytes) -> bytes:
    """Promotion object bytes: the magic and canonical JSON (or a body given as bytes)."""
    return PROM_MAGIC + (obj if isinstance(obj, bytes) else canonical(obj))


# -- objects, packs, indexes --------------------------------------------------------------


@dataclass
class Obj:
    """One object as a pack holds it. ``stored``/``raw_len``/``id`` default to honest values."""

    data: bytes
    type: int = CHUNK
    codec: int = RAW
    stored: bytes | None = None
    raw_len: int | None = None
    id: bytes | None = None

    def entry(self) -> tuple[bytes, int, int, int, bytes]:
        """(id, type, codec, raw_len, stored) as they go into the pack."""
        stored = self.stored
        if stored is None:
            stored = self.data if self.codec == RAW else zstandard.ZstdCompressor(
                write_content_size=True).compress(self.data)
        return (self.id if self.id is not None else oid(self.data), self.type, self.codec,
                len(self.data) if self.raw_len is None else self.raw_len, stored)


Row = tuple[bytes, int, int, int, int, int]
"""An index entry: (id, offset, stored_len, raw_len, type, codec)."""


def pack_bytes(objs: list[Obj], magic: bytes = PACK_MAGIC) -> tuple[bytes, list[Row]]:
    """A pack of ``objs`` back to back, and the honest index rows for it (unsorted)."""
    body = bytearray(magic)
    rows: list[Row] = []
    for o in objs:
        i, t, c, n, stored = o.entry()
        rows.append((i, len(body), len(stored), n, t, c))
        body += struct.pack("<16sBBII", i, t, c, n, len(stored)) + stored
    return bytes(body), rows


def index_bytes(rows: list[Row], *, sort: bool = True, count: int | None = None,
                reserved: int = 0, magic: bytes = INDEX_MAGIC, checksum: bool = True) -> bytes:
    """Index bytes for ``rows`` (sorted by id unless ``sort`` is False)."""
    ordered = sorted(rows) if sort else list(rows)
    head = magic + struct.pack("<II", len(ordered) if count is None else count, reserved)
    body = head + b"".join(struct.pack("<16sQIIBB", *r) for r in ordered)
    return body + (oid(body) if checksum else ZERO16)


def stem_of(index: bytes) -> str:
    """A pack's name: ``pack-`` and the hex XXH3-128 of its index file's bytes."""
    return "pack-" + hexid(index)


class RawStore:
    """A store directory (``.git/ml``, or a remote's) written to directly."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for d in ("packs", "refs/datasets", "refs/checkpoints", "tmp", "cache", "checkouts"):
            (root / d).mkdir(parents=True, exist_ok=True)
        if not (root / "config").exists():
            (root / "config").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")

    def write_pack(self, pack: bytes, index: bytes, stem: str | None = None) -> str:
        """Put pack and index bytes in ``packs/`` (named by the index, unless ``stem``)."""
        name = stem or stem_of(index)
        (self.root / "packs" / f"{name}.pack").write_bytes(pack)
        (self.root / "packs" / f"{name}.idx").write_bytes(index)
        return name

    def write(self, objs: list[Obj]) -> str:
        """One honest pack and index holding ``objs``; returns the pack's stem."""
        pack, rows = pack_bytes(objs)
        return self.write_pack(pack, index_bytes(rows))

    def ref(self, kind: str, name: str, target: bytes | str, text: str | None = None) -> Path:
        """Write ``refs/<kind>/<name>`` naming ``target`` (or holding ``text`` verbatim)."""
        path = self.root / "refs" / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        hx = target.hex() if isinstance(target, bytes) else target
        path.write_text(text if text is not None else hx + "\n")
        return path


def pointer_text(name: str, sid: bytes | str, kind: str = "dataset") -> bytes:
    """A pointer file's bytes, as docs/format.md lays them out."""
    hx = sid.hex() if isinstance(sid, bytes) else sid
    return (f"# git-ml pointer: pins one version of the data beside it. Managed by `git ml`.\n"
            f"mlgit-pointer: 1\nkind: {kind}\nname: {name}\nid: {hx}\n").encode()


# -- a builder of whole snapshots ---------------------------------------------------------


@dataclass
class Builder:
    """Collects objects for a pack; each method returns the raw id of what it added.

    Methods build well-formed objects from raw parts; pass hand-made bytes to
    :meth:`add` for anything malformed.
    """

    objects: list[Obj] = field(default_factory=list)

    def add(self, data: bytes, type_: int, codec: int = ZSTD) -> bytes:
        if not any(o.data == data and o.type == type_ for o in self.objects):
            self.objects.append(Obj(data, type_, codec))
        return oid(data)

    def chunk(self, data: bytes) -> tuple[bytes, int]:
        return self.add(data, CHUNK, RAW), len(data)

    def file(self, name: bytes, data: bytes, executable: bool = False) -> bytes:
        """A file entry (one chunk, or none when empty), with its chunk added."""
        chunks = [self.chunk(data)] if data else []
        return ent(name, file_body(chunks, flags=int(executable), digest=oid(data)))

    def tree(self, entries: list[bytes], sort: bool = True) -> bytes:
        """A tree of entry bytes (sorted by name unless ``sort`` is False)."""
        if sort:
            entries = sorted(entries, key=lambda e: e[2:2 + struct.unpack("<H", e[:2])[0]])
        return self.add(raw_tree(*entries), TREE)

    def dir(self, name: bytes, subtree: bytes, files: int = 1, size: int = 0) -> bytes:
        return ent(name, dir_body(subtree, size, files))

    def snapshot(self, name: str, tree: bytes, **over: Any) -> bytes:
        return self.add(snapshot_bytes(snapshot_fields(name, tree, **over)), SNAPSHOT)

    def promotion(self, model: str, stage: str, checkpoint: bytes | None,
                  parent: bytes | None = None, **over: Any) -> bytes:
        """A promotion record (docs/format.md, "Promotion"); returns its raw id."""
        return self.add(promotion_bytes(promotion_fields(model, stage, checkpoint, parent,
                                                         **over)), PROMOTION)

    def dataset(self, name: str, files: dict[str, bytes], **over: Any) -> bytes:
        """A well-formed snapshot of ``files`` (``a/b.txt``: content); returns its raw id."""
        root: dict[str, Any] = {}
        for path, data in files.items():
            *dirs, leaf = path.split("/")
            node = root
            for d in dirs:
                node = node.setdefault(d, {})
            node[leaf] = data

        def build(node: dict[str, Any]) -> tuple[bytes, int, int]:
            entries, nfiles, nbytes = [], 0, 0
            for n, v in node.items():
                if isinstance(v, dict):
                    sub, f, b = build(v)
                    entries.append(self.dir(n.encode(), sub, f, b))
                    nfiles, nbytes = nfiles + f, nbytes + b
                else:
                    entries.append(self.file(n.encode(), v))
                    nfiles, nbytes = nfiles + 1, nbytes + len(v)
            return self.tree(entries), nfiles, nbytes

        tree, nfiles, nbytes = build(root)
        over.setdefault("files", nfiles)
        over.setdefault("bytes", nbytes)
        return self.snapshot(name, tree, **over)


def deep_tree(b: Builder, depth: int, leaf: bytes = b"deep\n") -> tuple[bytes, int]:
    """A tree ``depth`` directories deep (``d/d/.../f``), built iteratively; (root id, files)."""
    tree = b.tree([b.file(b"f", leaf)])
    for _ in range(depth):
        tree = b.tree([b.dir(b"d", tree, 1, len(leaf))])
    return tree, 1


def fifo(path: Path) -> Path:
    """A FIFO at ``path`` (a reader that opens it without care blocks forever)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path
