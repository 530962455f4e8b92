r"""Promotion objects: one decision about which checkpoint holds a model's stage.

A promotion records that checkpoint ``checkpoint`` now holds ``stage`` (``production``,
``staging``, ...) for ``model``, or, with ``checkpoint`` null, that the stage was
emptied (a demotion). ``parent`` is the stage's previous record, so a stage's records
form a chain: its audit trail (who moved it, when, from which version, why). See
docs/format.md, "Promotion".

Canonical bytes: ``b"MLGPROM\x01"`` followed by the record as canonical JSON (ASCII,
keys sorted, no whitespace), as a snapshot is encoded. The decoder accepts exactly
what the encoder writes: every field present and valid, nothing else, at most
:data:`~mlgit.format.limits.MAX_PROMOTION_LEN` bytes, flat (no nesting); it re-encodes
and requires the same bytes, so one record has one id. It raises FormatError and
nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format import plainjson
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_PROMOTION_LEN, MAX_TIME
from mlgit.format.names import check_ref_name, check_stage_name

__all__ = ["PROMOTION_MAGIC", "Promotion", "decode_promotion", "encode_promotion"]

PROMOTION_MAGIC = b"MLGPROM\x01"
_KEYS = {"model", "stage", "checkpoint", "parent", "time", "tz", "author", "message"}


@dataclass(frozen=True)
class Promotion:
    """One record of a model's stage.

    ``checkpoint`` is the checkpoint snapshot that holds the stage from ``time`` on, or
    None when this record empties the stage. ``parent`` is the stage's previous record
    (None for its first). ``time`` is Unix seconds, ``tz`` the author's UTC offset in
    minutes; ``author`` is ``Name <email>``; ``message`` says why.
    """

    model: str
    stage: str
    checkpoint: ObjectID | None
    parent: ObjectID | None
    time: int
    tz: int
    author: str
    message: str

    @property
    def removed(self) -> bool:
        """True when this record empties the stage (a demotion)."""
        return self.checkpoint is None

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the canonical body)."""
        return {"model": self.model, "stage": self.stage, "checkpoint": self.checkpoint,
                "parent": self.parent, "time": self.time, "tz": self.tz,
                "author": self.author, "message": self.message}


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def encode_promotion(p: Promotion) -> bytes:
    """Encode a promotion as canonical bytes; FormatError if a field is invalid."""
    _validate(p)
    data = PROMOTION_MAGIC + _canonical(p.to_json())
    if len(data) > MAX_PROMOTION_LEN:
        raise FormatError(f"promotion of {len(data)} bytes exceeds {MAX_PROMOTION_LEN} "
                          "(shorten the message)")
    return data


def decode_promotion(data: bytes) -> Promotion:
    """Decode canonical promotion bytes; FormatError for anything else.

    The length is checked before anything is parsed, the JSON may not nest (every
    value is a string, an integer or null), and every field is checked as the
    encoder checks it.
    """
    if len(data) > MAX_PROMOTION_LEN:
        raise FormatError(f"promotion object of {len(data)} bytes exceeds {MAX_PROMOTION_LEN}")
    if data[:8] != PROMOTION_MAGIC:
        if data[:7] == PROMOTION_MAGIC[:7] and len(data) > 7:
            raise UnsupportedFormatError(f"promotion format version {data[7]} is not "
                                         "supported; upgrade git-ml")
        raise FormatError("not a promotion object (bad magic)")
    body = data[8:]
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("promotion JSON is not ASCII") from None
    obj = plainjson.loads(text, "promotion", max_depth=1)
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise FormatError("promotion JSON has missing or unknown fields")
    p = Promotion(model=obj["model"], stage=obj["stage"], checkpoint=obj["checkpoint"],
                  parent=obj["parent"], time=obj["time"], tz=obj["tz"], author=obj["author"],
                  message=obj["message"])
    _validate(p)
    if _canonical(obj) != body:
        raise FormatError("promotion JSON is not in canonical form")
    return p


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_id(value: Any, key: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise FormatError(f"promotion {key} must be an id or null")
    try:
        parse_object_id(value)
    except FormatError:
        raise FormatError(f"promotion {key} is not an object id: {value[:40]!r}") from None


def _validate(p: Promotion) -> None:
    """Check every field's type and range; FormatError naming the field."""
    for key in ("model", "stage", "author", "message"):
        if not isinstance(getattr(p, key), str):
            raise FormatError(f"promotion {key} must be a string")
    try:
        check_ref_name(p.model)
    except FormatError as e:
        raise FormatError(f"promotion model: {e}") from None
    try:
        check_stage_name(p.stage)
    except FormatError as e:
        raise FormatError(f"promotion stage: {e}") from None
    _check_id(p.checkpoint, "checkpoint")
    _check_id(p.parent, "parent")
    if p.checkpoint is None and p.parent is None:
        raise FormatError("a promotion that empties a stage must have a parent (the record "
                          "it removes)")
    if not _int(p.time) or not 0 <= p.time <= MAX_TIME:
        raise FormatError(f"promotion time must be an integer from 0 to {MAX_TIME}")
    if not _int(p.tz) or abs(p.tz) > 24 * 60:
        raise FormatError("promotion tz must be an integer from -1440 to 1440")
    plainjson.check_shown(p.author, "promotion author")
    plainjson.check_shown(p.message, "promotion message", lines=True)
