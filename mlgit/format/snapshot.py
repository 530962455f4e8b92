r"""Snapshot objects: one version of a dataset or checkpoint (see docs/format.md, "Snapshot").

Canonical bytes: ``b"MLGSNAP\x01"`` followed by the snapshot as canonical JSON
(UTF-8, keys sorted, no whitespace, ``ensure_ascii``). Decoding re-encodes and
requires the same bytes, so one snapshot has exactly one id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format import plainjson
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.kinds import KIND_CHECKPOINT, KIND_DATASET, ROOT_DIR, ROOT_FILE
from mlgit.format.limits import MAX_FILES, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_LEN, MAX_TIME
from mlgit.format.meta import CheckpointMeta, check_dataset_meta, decode_checkpoint_meta
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
_KEYS = {"kind", "name", "tree", "root", "parents", "time", "tz", "author", "message", "files",
         "bytes", "meta"}


@dataclass(frozen=True)
class Snapshot:
    """A version of a dataset or checkpoint.

    ``tree`` is the root tree. ``root`` says what the tracked path was: ``"dir"``
    (the tree is the directory) or ``"file"`` (the tree holds exactly that one
    file). ``time`` is Unix seconds and ``tz`` the author's UTC offset in
    minutes. ``files`` counts regular files and symlinks; ``bytes`` is the
    regular files' content size. ``meta`` is JSON; for a checkpoint it holds the
    lineage, read typed through :attr:`checkpoint` (never ``meta.get(...)``).
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

    @cached_property
    def checkpoint(self) -> CheckpointMeta | None:
        """A checkpoint's metadata, typed (decoded once); None for a dataset.

        FormatError if it does not decode (a decoded snapshot has been checked already).
        """
        if self.kind != KIND_CHECKPOINT or not isinstance(self.meta, dict):
            return None
        return decode_checkpoint_meta(self.meta)


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def encode_snapshot(s: Snapshot) -> bytes:
    """Encode a snapshot as canonical bytes; FormatError if a field is invalid."""
    _validate(s)
    obj = s.to_json()
    plainjson.check_plain(obj, "snapshot")
    try:
        data = SNAPSHOT_MAGIC + _canonical(obj)
    except (TypeError, ValueError) as e:
        raise FormatError(f"snapshot metadata is not plain JSON: {e}") from None
    if len(data) > MAX_SNAPSHOT_LEN:
        raise FormatError(f"snapshot of {len(data)} bytes exceeds {MAX_SNAPSHOT_LEN}")
    return data


def decode_snapshot(data: bytes) -> Snapshot:
    """Decode canonical snapshot bytes; FormatError for anything else.

    Bounds are checked before anything is trusted: the length
    (``MAX_SNAPSHOT_LEN``), JSON nesting (``MAX_JSON_DEPTH``, walked
    iteratively), finite numbers only, ``time``/``files``/``bytes`` within their
    limits, and a checkpoint's ``meta`` decoded into typed values.
    """
    if len(data) > MAX_SNAPSHOT_LEN:
        raise FormatError(f"snapshot object of {len(data)} bytes exceeds {MAX_SNAPSHOT_LEN}")
    if data[:8] != SNAPSHOT_MAGIC:
        if data[:7] == SNAPSHOT_MAGIC[:7] and len(data) > 7:
            raise UnsupportedFormatError(f"snapshot format version {data[7]} is not supported; "
                                         "upgrade git-ml")
        raise FormatError("not a snapshot object (bad magic)")
    body = data[8:]
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("snapshot JSON is not ASCII") from None
    obj = plainjson.loads(text, "snapshot")
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise FormatError("snapshot JSON has missing or unknown fields")
    s = Snapshot(
        kind=obj["kind"], name=obj["name"], tree=obj["tree"], root=obj["root"],
        parents=tuple(obj["parents"]) if isinstance(obj["parents"], list) else obj["parents"],
        time=obj["time"], tz=obj["tz"], author=obj["author"], message=obj["message"],
        files=obj["files"], bytes=obj["bytes"], meta=obj["meta"],
    )
    _validate(s)
    try:
        canonical = _canonical(obj)
    except (TypeError, ValueError, RecursionError):
        raise FormatError("snapshot JSON is not in canonical form") from None
    if canonical != body:
        raise FormatError("snapshot JSON is not in canonical form")
    return s


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_text(value: Any, key: str, one_line: bool) -> None:
    """An author (one line) or message: a string without control characters."""
    if not isinstance(value, str):
        raise FormatError(f"snapshot {key} must be a string")
    plainjson.check_shown(value, f"snapshot {key}", lines=not one_line)


def _validate(s: Snapshot) -> None:
    """Check every field's type and range; FormatError naming the field."""
    if s.kind not in (KIND_DATASET, KIND_CHECKPOINT):
        raise FormatError(f"unknown snapshot kind {str(s.kind)[:40]!r}")
    if not isinstance(s.name, str):
        raise FormatError("snapshot name must be a string")
    check_ref_name(s.name)
    if not isinstance(s.tree, str):
        raise FormatError("snapshot tree must be an id")
    parse_object_id(s.tree)
    if s.root not in (ROOT_DIR, ROOT_FILE):
        raise FormatError(f"unknown snapshot root {str(s.root)[:40]!r}")
    if not isinstance(s.parents, tuple) or len(s.parents) > 64:
        raise FormatError("snapshot parents must be a list of at most 64 ids")
    for p in s.parents:
        if not isinstance(p, str):
            raise FormatError("snapshot parent must be an id")
        parse_object_id(p)
    for key, hi in (("time", MAX_TIME), ("files", MAX_FILES), ("bytes", MAX_SNAPSHOT_BYTES)):
        v = getattr(s, key)
        if not _int(v):
            raise FormatError(f"snapshot {key} must be an integer")
        if not 0 <= v <= hi:
            shown = str(v) if abs(v) < 10 ** 30 else f"of {len(str(abs(v)))} digits"
            raise FormatError(f"snapshot {key} {shown} is out of range (0 to {hi})")
    if not _int(s.tz) or abs(s.tz) > 24 * 60:
        raise FormatError("snapshot tz must be an integer from -1440 to 1440")
    _check_text(s.author, "author", one_line=True)
    _check_text(s.message, "message", one_line=False)
    if not isinstance(s.meta, dict):
        raise FormatError("snapshot meta must be an object")
    if s.kind == KIND_CHECKPOINT:
        _ = s.checkpoint  # decodes (and caches) the typed metadata, or raises
    else:
        check_dataset_meta(s.meta)
