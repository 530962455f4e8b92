r"""Snapshot objects: one version of a dataset or checkpoint (see docs/format.md, "Snapshot").

Canonical bytes: ``b"MLGSNAP\x01"`` followed by the snapshot as canonical JSON
(UTF-8, keys sorted, no whitespace, ``ensure_ascii``). Decoding re-encodes and
requires the same bytes, so one snapshot has exactly one id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.names import check_ref_name

__all__ = [
    "KIND_CHECKPOINT",
    "KIND_DATASET",
    "ROOT_DIR",
    "ROOT_FILE",
    "SNAPSHOT_MAGIC",
    "Snapshot",
    "decode_snapshot",
    "encode_snapshot",
]

SNAPSHOT_MAGIC = b"MLGSNAP\x01"
KIND_DATASET = "dataset"
KIND_CHECKPOINT = "checkpoint"
ROOT_DIR = "dir"
ROOT_FILE = "file"
_KEYS = {"kind", "name", "tree", "root", "parents", "time", "tz", "author", "message", "files",
         "bytes", "meta"}


@dataclass(frozen=True)
class Snapshot:
    """A version of a dataset or checkpoint.

    ``tree`` is the root tree. ``root`` says what the tracked path was: ``"dir"``
    (the tree is the directory) or ``"file"`` (the tree holds exactly that one
    file). ``time`` is Unix seconds and ``tz`` the author's UTC offset in
    minutes. ``files`` counts regular files and symlinks; ``bytes`` is the
    regular files' content size. ``meta`` is free-form JSON (checkpoint lineage lives there).
    """

    kind: str
    name: str
    tree: ObjectID
    root: str
    parents: tuple[ObjectID, ...]
    time: int
    tz: int
    author: str
    message: str
    files: int
    bytes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The snapshot as a JSON-ready dict (the canonical body, without id)."""
        return {
            "kind": self.kind, "name": self.name, "tree": self.tree, "root": self.root,
            "parents": list(self.parents), "time": self.time, "tz": self.tz,
            "author": self.author, "message": self.message, "files": self.files,
            "bytes": self.bytes, "meta": self.meta,
        }


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def encode_snapshot(s: Snapshot) -> bytes:
    """Encode a snapshot as canonical bytes; FormatError if a field is invalid."""
    _validate(s)
    try:
        return SNAPSHOT_MAGIC + _canonical(s.to_json())
    except (TypeError, ValueError) as e:
        raise FormatError(f"snapshot metadata is not plain JSON: {e}") from None


def decode_snapshot(data: bytes) -> Snapshot:
    """Decode canonical snapshot bytes; FormatError for anything else."""
    if data[:8] != SNAPSHOT_MAGIC:
        if data[:7] == SNAPSHOT_MAGIC[:7] and len(data) > 7:
            raise UnsupportedFormatError(f"snapshot format version {data[7]} is not supported; "
                                         "upgrade git-ml")
        raise FormatError("not a snapshot object (bad magic)")
    body = data[8:]
    try:
        obj = json.loads(body.decode("ascii"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"snapshot is not valid JSON: {str(e)[:100]}") from None
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise FormatError("snapshot JSON has missing or unknown fields")
    try:
        s = Snapshot(
            kind=obj["kind"], name=obj["name"], tree=obj["tree"], root=obj["root"],
            parents=tuple(obj["parents"]) if isinstance(obj["parents"], list) else obj["parents"],
            time=obj["time"], tz=obj["tz"], author=obj["author"], message=obj["message"],
            files=obj["files"], bytes=obj["bytes"], meta=obj["meta"],
        )
    except TypeError as e:
        raise FormatError(f"bad snapshot: {e}") from None
    _validate(s)
    try:
        canonical = _canonical(obj)
    except (TypeError, ValueError, RecursionError):
        raise FormatError("snapshot JSON is not in canonical form") from None
    if canonical != body:
        raise FormatError("snapshot JSON is not in canonical form")
    return s


def _reject_constant(name: str) -> None:
    raise FormatError(f"snapshot JSON contains {name}")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate(s: Snapshot) -> None:
    if s.kind not in (KIND_DATASET, KIND_CHECKPOINT):
        raise FormatError(f"unknown snapshot kind {s.kind!r}")
    if not isinstance(s.name, str):
        raise FormatError("snapshot name must be a string")
    check_ref_name(s.name)
    if not isinstance(s.tree, str):
        raise FormatError("snapshot tree must be an id")
    parse_object_id(s.tree)
    if s.root not in (ROOT_DIR, ROOT_FILE):
        raise FormatError(f"unknown snapshot root {s.root!r}")
    if not isinstance(s.parents, tuple) or len(s.parents) > 64:
        raise FormatError("snapshot parents must be a list of at most 64 ids")
    for p in s.parents:
        if not isinstance(p, str):
            raise FormatError("snapshot parent must be an id")
        parse_object_id(p)
    for key in ("time", "tz", "files", "bytes"):
        if not _int(getattr(s, key)):
            raise FormatError(f"snapshot {key} must be an integer")
    if s.files < 0 or s.bytes < 0 or abs(s.tz) > 24 * 60:
        raise FormatError("snapshot counts or timezone out of range")
    if not isinstance(s.author, str) or not isinstance(s.message, str):
        raise FormatError("snapshot author and message must be strings")
    if not isinstance(s.meta, dict):
        raise FormatError("snapshot meta must be an object")
