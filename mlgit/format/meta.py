"""Typed snapshot metadata: a checkpoint's lineage, decoded once when its snapshot is.

A snapshot's ``meta`` is JSON (docs/format.md, "Snapshot"). For a checkpoint it
carries the lineage that ``commit-ckpt`` writes (docs/notes.md, "Checkpoint
snapshots"); :func:`decode_checkpoint_meta` turns it into a
:class:`CheckpointMeta` or raises FormatError naming the field
(``meta.config[0].id: not an object id``). Every field is optional (an older
or hand-made checkpoint may lack one), but one that is present must have its
type; keys this version does not know are allowed and ignored, so a newer
git-ml can add some. A dataset's ``meta`` is free-form except that ``path``,
when present, is a string (:func:`check_dataset_meta`).

Consumers read these typed values, never ``meta.get(...)``: the config ids are
references that gc must keep (docs/format.md), the source prefix becomes a
path (the caller checks it as one), the rest is shown to the user.

Pure functions; they raise FormatError and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlgit.errors import FormatError
from mlgit.format.ids import ID_HEX_LEN, ObjectID, is_hex_prefix, object_id
from mlgit.format.plainjson import check_shown, is_number

__all__ = [
    "SOURCE_TYPES",
    "CheckpointMeta",
    "CodeInfo",
    "ConfigRef",
    "DatasetRef",
    "SourceInfo",
    "check_dataset_meta",
    "config_digest",
    "dataset_ref",
    "decode_checkpoint_meta",
    "list_at",
    "metrics_at",
    "obj_at",
    "opt_bool",
    "opt_id",
    "opt_int",
    "opt_str",
    "req_id",
    "req_str",
]

SOURCE_TYPES = ("file", "dir", "tf-prefix")
_MAX_HEX = 128  # a git commit id (40 or 64 hex) or a digest (32)


# -- field readers, shared with note records (format/records.py) ---------------------------


def _fail(where: str, what: str, value: Any) -> FormatError:
    return FormatError(f"{where}: {what}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A short rendering of a bad value for a one-line message."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10 ** 30 else f"a number of {len(str(abs(value)))} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40])
    return "an object" if isinstance(value, dict) else "a list"


def req_str(obj: dict[str, Any], key: str, where: str) -> str:
    """``obj[key]`` as a string; FormatError naming ``where.key`` if absent or not one."""
    if key not in obj:
        raise FormatError(f"{where}.{key} is missing")
    return _str(obj[key], f"{where}.{key}")


def opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    """``obj[key]`` as a string, or None when absent or null."""
    v = obj.get(key)
    return None if v is None else _str(v, f"{where}.{key}")


def _str(v: Any, where: str) -> str:
    """A string shown to the user as it is: no control characters (see ``check_shown``)."""
    if not isinstance(v, str):
        raise _fail(where, "must be a string", v)
    return check_shown(v, where)


def req_id(obj: dict[str, Any], key: str, where: str) -> ObjectID:
    """``obj[key]`` as a full object id (32 lowercase hex); FormatError otherwise."""
    if key not in obj:
        raise FormatError(f"{where}.{key} is missing")
    return _id(obj[key], f"{where}.{key}")


def opt_id(obj: dict[str, Any], key: str, where: str) -> ObjectID | None:
    """``obj[key]`` as an object id, or None when absent or null."""
    v = obj.get(key)
    return None if v is None else _id(v, f"{where}.{key}")


def _id(v: Any, where: str) -> ObjectID:
    if not isinstance(v, str) or len(v) != ID_HEX_LEN or not is_hex_prefix(v):
        raise _fail(where, "must be an object id (32 lowercase hex)", v)
    return ObjectID(v)


def _hex(v: Any, where: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not 4 <= len(v) <= _MAX_HEX or v.strip("0123456789abcdef"):
        raise _fail(where, "must be lowercase hex or null", v)
    return v


def opt_int(obj: dict[str, Any], key: str, where: str, lo: int = 0,
            hi: int = (1 << 63) - 1) -> int | None:
    """``obj[key]`` as an integer in ``lo..hi``, or None when absent or null."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _fail(f"{where}.{key}", f"must be an integer from {lo} to {hi}", v)
    return v


def opt_bool(obj: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
    """``obj[key]`` as a boolean (``default`` when absent)."""
    v = obj.get(key, default)
    if not isinstance(v, bool):
        raise _fail(f"{where}.{key}", "must be true or false", v)
    return v


def obj_at(v: Any, where: str) -> dict[str, Any]:
    """``v`` if it is a JSON object; FormatError naming ``where`` otherwise."""
    if not isinstance(v, dict):
        raise _fail(where, "must be an object", v)
    return v


def list_at(v: Any, where: str) -> list[Any]:
    """``v`` if it is a JSON array; FormatError naming ``where`` otherwise."""
    if not isinstance(v, list):
        raise _fail(where, "must be a list", v)
    return v


def metrics_at(v: Any, where: str) -> dict[str, float]:
    """A ``{name: finite number}`` object (absent or null: empty); names shown as they are."""
    if v is None:
        return {}
    out: dict[str, float] = {}
    for k, n in obj_at(v, where).items():
        check_shown(k, f"{where} name")
        if not is_number(n):
            raise _fail(f"{where}.{k[:60]}", "must be a finite number", n)
        out[k] = n
    return out


# -- checkpoint metadata -----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigRef:
    """A config file kept with a checkpoint: its file name, blob id and size."""

    name: str
    id: ObjectID
    size: int


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a checkpoint was trained on (or results measured on).

    Its name, snapshot id, and the pointer's path when it came from HEAD's tree.
    """

    name: str
    id: ObjectID
    path: str | None = None

    def to_json(self) -> dict[str, str]:
        """JSON form: ``{name, id[, path]}``."""
        d = {"name": self.name, "id": str(self.id)}
        if self.path is not None:
            d["path"] = self.path
        return d


@dataclass(frozen=True)
class CodeInfo:
    """The code a checkpoint came from: HEAD's commit, branch, dirty flag, diff digest."""

    commit: str | None
    branch: str | None
    dirty: bool
    diff: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{commit, branch, dirty, diff}``."""
        return {"commit": self.commit, "branch": self.branch, "dirty": self.dirty,
                "diff": self.diff}


@dataclass(frozen=True)
class SourceInfo:
    """What the checkpoint's path was: ``file``, ``dir`` or ``tf-prefix``, and the prefix."""

    type: str
    path: str
    prefix: str | None = None


@dataclass(frozen=True)
class CheckpointMeta:
    """A checkpoint snapshot's metadata, typed (see docs/notes.md)."""

    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    config: tuple[ConfigRef, ...] = ()
    code: CodeInfo | None = None
    datasets: tuple[DatasetRef, ...] = ()
    source: SourceInfo | None = None

    @property
    def tf_prefix(self) -> str | None:
        """The prefix's file name for a ``tf-prefix`` checkpoint, else None.

        Not yet checked as a path: whoever joins it to a directory checks it.
        """
        if self.source is None or self.source.type != "tf-prefix":
            return None
        return self.source.prefix


def config_digest(config: tuple[ConfigRef, ...] | list[ConfigRef]) -> str | None:
    """One digest for a checkpoint's config files (None when it has none).

    32 lowercase hex, the XXH3-128 of the canonical JSON of ``[[name, blob id], ...]`` sorted by
    name: two checkpoints trained with the same config files (same names, same
    bytes) have the same digest, whatever their sizes or order. ``commit-ckpt``
    writes it in the checkpoint record (``config``); ``git ml results`` shows it.
    """
    if not config:
        return None
    pairs = sorted([c.name, str(c.id)] for c in config)
    return str(object_id(json.dumps(pairs, separators=(",", ":"), ensure_ascii=True).encode()))


def dataset_ref(v: Any, where: str, with_path: bool = True) -> DatasetRef:
    """A ``{name, id[, path]}`` object as a :class:`DatasetRef`."""
    d = obj_at(v, where)
    return DatasetRef(req_str(d, "name", where), req_id(d, "id", where),
                      opt_str(d, "path", where) if with_path else None)


def _code(v: Any, where: str) -> CodeInfo | None:
    if v is None:
        return None
    c = obj_at(v, where)
    return CodeInfo(_hex(c.get("commit"), f"{where}.commit"), opt_str(c, "branch", where),
                    opt_bool(c, "dirty", where), _hex(c.get("diff"), f"{where}.diff"))


def _config(v: Any, where: str) -> tuple[ConfigRef, ...]:
    out = []
    for i, item in enumerate(list_at(v, where) if v is not None else []):
        at = f"{where}[{i}]"
        c = obj_at(item, at)
        size = opt_int(c, "size", at)
        if size is None:
            raise FormatError(f"{at}.size is missing")
        out.append(ConfigRef(req_str(c, "name", at), req_id(c, "id", at), size))
    return tuple(out)


def _source(v: Any, where: str) -> SourceInfo | None:
    if v is None:
        return None
    s = obj_at(v, where)
    kind = req_str(s, "type", where)
    if kind not in SOURCE_TYPES:
        raise _fail(f"{where}.type", f"must be one of {', '.join(SOURCE_TYPES)}", kind)
    return SourceInfo(kind, req_str(s, "path", where), opt_str(s, "prefix", where))


def decode_checkpoint_meta(meta: dict[str, Any]) -> CheckpointMeta:
    """Validate a checkpoint snapshot's ``meta`` and return it typed.

    FormatError naming the field (``meta.config[0].id ...``) for a value of the
    wrong type.
    """
    w = "meta"
    datasets = meta.get("datasets")
    return CheckpointMeta(
        step=opt_int(meta, "step", w),
        metrics=metrics_at(meta.get("metrics"), f"{w}.metrics"),
        config=_config(meta.get("config"), f"{w}.config"),
        code=_code(meta.get("code"), f"{w}.code"),
        datasets=tuple(dataset_ref(d, f"{w}.datasets[{i}]") for i, d in enumerate(
            list_at(datasets, f"{w}.datasets") if datasets is not None else [])),
        source=_source(meta.get("source"), f"{w}.source"),
    )


def check_dataset_meta(meta: dict[str, Any]) -> None:
    """A dataset snapshot's ``meta``: free-form, but ``path`` is a string when present."""
    if "path" in meta and not isinstance(meta["path"], str):
        raise _fail("meta.path", "must be a string", meta["path"])
