"""ML records in git notes (``refs/notes/ml``): JSON Lines, one self-contained record a line.

A record is a JSON object with at least ``type`` (one of :data:`RECORD_TYPES`)
and ``v`` (record version, 1). Lines are canonical JSON (sorted keys, no
spaces, ASCII), so identical records are identical lines and git's
``cat_sort_uniq`` notes merge keeps each once. Payloads (logs, graphs, result
files) are sidecar objects named by id; a line is at most :data:`MAX_LINE`
bytes. docs/notes.md documents every record type and field.

Notes are written by teammates, so :func:`decode_note` trusts nothing: each line
becomes a typed record (:class:`CheckpointRecord`, :class:`LogRecord`,
:class:`GraphRecord`, :class:`ResultsRecord`, :class:`SamplesRecord`,
:class:`VerifyRecord`, or :class:`OtherRecord` for a type
or version this git-ml does not know), or a problem naming the line and what is
wrong with it (not JSON, too long, too deep, NaN, a list where an object belongs,
a missing or non-hex id...). Decoding never raises. Consumers read the typed
fields, never the raw dict; ``to_json()`` gives the record as stored (plain
JSON: no NaN or Infinity, so ``--json`` output stays strict JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlgit.errors import FormatError
from mlgit.format import plainjson
from mlgit.format.ids import ID_HEX_LEN, ObjectID, is_hex_prefix
from mlgit.format.limits import MAX_TIME
from mlgit.format.meta import (
    DatasetRef,
    dataset_ref,
    list_at,
    metrics_at,
    obj_at,
    opt_bool,
    opt_id,
    opt_int,
    opt_str,
    req_id,
    req_str,
)
from mlgit.format.names import is_ref_name
from mlgit.format.plainjson import check_shown, is_number
from mlgit.format.samples import ArraySpec, check_array_name, decode_specs

__all__ = [
    "MAX_LINE",
    "MAX_PROBLEMS_PER_NOTE",
    "RECORD_TYPES",
    "RECORD_VERSION",
    "CheckpointRecord",
    "GraphRecord",
    "LogRecord",
    "OtherRecord",
    "PayloadRecord",
    "Record",
    "ResultsRecord",
    "SamplesRecord",
    "ScalarStat",
    "VerifyMismatch",
    "VerifyRecord",
    "best_mode",
    "best_value",
    "decode_note",
    "decode_record",
    "encode_record",
    "metric_values",
]

RECORD_TYPES = ("checkpoint", "log", "graph", "results", "samples", "verify")
RECORD_VERSION = 1
MAX_LINE = 16 << 10
MAX_PROBLEMS_PER_NOTE = 10
"""Malformed lines of one note reported one by one; the rest are counted in one more."""

_MIN_WORDS = ("loss", "error", "mae", "mse", "rmse", "perplexity")


def best_mode(name: str) -> str:
    """``"min"`` if lower is better for metric ``name`` (a loss or error), else ``"max"``.

    Lower is better when the name contains (case-insensitively) one of ``loss``,
    ``error``, ``mae``, ``mse``, ``rmse`` or ``perplexity``.
    """
    low = name.lower()
    return "min" if any(w in low for w in _MIN_WORDS) else "max"


# -- the records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What every record has: its ``type``, version ``v`` and the JSON as stored (``raw``)."""

    type: str
    v: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The record as stored (plain JSON, unknown fields included)."""
        return self.raw

    def roots(self) -> list[tuple[ObjectID, str]]:
        """The objects this record names that the store must keep: (id, walk role)."""
        return []


@dataclass(frozen=True)
class CheckpointRecord(Record):
    """A checkpoint noted on the commit that was HEAD (``commit-ckpt``)."""

    id: ObjectID
    run: str
    step: int | None
    metrics: dict[str, float]
    parent: ObjectID | None
    datasets: tuple[DatasetRef, ...]
    dirty: bool
    time: int | None
    author: str
    message: str
    config: str | None = None
    """The digest of its config files (:func:`~mlgit.format.meta.config_digest`); None
    when it has none or the record predates the field."""

    def roots(self) -> list[tuple[ObjectID, str]]:
        """The checkpoint snapshot."""
        return [(self.id, "snapshot")]


@dataclass(frozen=True)
class PayloadRecord(Record):
    """A stored file (or directory): its object (a tree), file name, format and size.

    ``author`` is who noted it (``Name <email>``, as git records a commit's
    author); ``""`` for records written before git-ml recorded it.
    """

    object: ObjectID
    name: str
    format: str
    size: int | None
    time: int | None
    checkpoint: ObjectID | None
    author: str

    def roots(self) -> list[tuple[ObjectID, str]]:
        """The payload's tree."""
        return [(self.object, "tree")]


@dataclass(frozen=True)
class ScalarStat:
    """One scalar of a training log: last and best value, how best is chosen, count."""

    last: float
    best: float
    mode: str
    count: int | None
    last_step: int | None


@dataclass(frozen=True)
class LogRecord(PayloadRecord):
    """A training log and the summary of its scalars."""

    scalars: dict[str, ScalarStat]


@dataclass(frozen=True)
class GraphRecord(PayloadRecord):
    """A graph definition and its (free-form, small) summary."""

    summary: dict[str, Any]

    @property
    def size_label(self) -> str:
        """The summary's layer count (Keras) or op count (GraphDef), or ``""``."""
        for key in ("layers", "ops"):
            v = self.summary.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                return str(v)
        return ""


@dataclass(frozen=True)
class ResultsRecord(PayloadRecord):
    """Test results: their metrics and the test dataset's snapshot."""

    metrics: dict[str, float]
    dataset: DatasetRef | None

    def roots(self) -> list[tuple[ObjectID, str]]:
        """The results' tree and the test dataset's snapshot."""
        out = super().roots()
        if self.dataset is not None:
            out.append((self.dataset.id, "snapshot"))
        return out


@dataclass(frozen=True)
class SamplesRecord(PayloadRecord):
    """A checkpoint's adequacy samples: inputs and the outputs the model gave at commit time.

    The payload is a ``samples.npz``; ``checkpoint`` is required; ``inputs`` and
    ``outputs`` describe its arrays (checked against them when they are read).
    """

    count: int
    inputs: tuple[ArraySpec, ...]
    outputs: tuple[ArraySpec, ...]


@dataclass(frozen=True)
class VerifyMismatch:
    """One sample whose output differed: where, and by how much (None: not a finite number)."""

    index: int
    output: str
    position: tuple[int, ...]
    expected: float | None
    got: float | None
    error: float | None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as stored in a ``verify`` record and printed by ``verify --json``."""
        return {"index": self.index, "output": self.output, "position": list(self.position),
                "expected": self.expected, "got": self.got, "error": self.error}


@dataclass(frozen=True)
class VerifyRecord(Record):
    """The outcome of ``git ml verify REV``: did the reloaded model give the recorded outputs.

    Names the checkpoint and the samples payload it ran, but keeps neither alive
    (the checkpoint's own records do): it is an audit line, not a root.
    """

    checkpoint: ObjectID
    samples: ObjectID
    run: str | None
    passed: bool
    count: int
    mismatched: int
    atol: float
    rtol: float
    max_error: float | None
    worst: tuple[VerifyMismatch, ...]
    time: int | None
    author: str


@dataclass(frozen=True)
class OtherRecord(Record):
    """A record of a type (or version) this git-ml does not know: kept and shown raw."""

    def roots(self) -> list[tuple[ObjectID, str]]:
        """Its ``id`` (a snapshot) and ``object`` (a tree), when they are ids, as in v1."""
        out: list[tuple[ObjectID, str]] = []
        for key, role in (("id", "snapshot"), ("object", "tree")):
            v = self.raw.get(key)
            if isinstance(v, str) and len(v) == ID_HEX_LEN and is_hex_prefix(v):
                out.append((ObjectID(v), role))
        return out


# -- decoding ------------------------------------------------------------------------------


def _text(obj: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    """A string the CLI prints (the readers refuse control characters in it)."""
    return req_str(obj, key, where) if required else (opt_str(obj, key, where) or "")


def _checkpoint(r: dict[str, Any], base: tuple[str, int, dict[str, Any]]) -> CheckpointRecord:
    w = "checkpoint record"
    run = req_str(r, "run", w)
    if not is_ref_name(run):
        raise FormatError(f"{w}.run is not a run name: {run[:40]!r}")
    ds = r.get("datasets")
    return CheckpointRecord(
        *base, id=req_id(r, "id", w), run=run, step=opt_int(r, "step", w),
        metrics=metrics_at(r.get("metrics"), f"{w}.metrics"), parent=opt_id(r, "parent", w),
        datasets=tuple(dataset_ref(d, f"{w}.datasets[{i}]", False) for i, d in enumerate(
            list_at(ds, f"{w}.datasets") if ds is not None else [])),
        dirty=opt_bool(r, "dirty", w), time=opt_int(r, "time", w, 0, MAX_TIME),
        author=_text(r, "author", w, required=False),
        message=_text(r, "message", w, required=False), config=opt_id(r, "config", w))


def _payload(r: dict[str, Any], w: str) -> dict[str, Any]:
    name = _text(r, "name", w)
    if not name:
        raise FormatError(f"{w}.name is empty")
    return {"object": req_id(r, "object", w), "name": name, "format": _text(r, "format", w),
            "size": opt_int(r, "size", w), "time": opt_int(r, "time", w, 0, MAX_TIME),
            "checkpoint": opt_id(r, "checkpoint", w),
            "author": _text(r, "author", w, required=False)}


def _scalars(v: Any, where: str) -> dict[str, ScalarStat]:
    out: dict[str, ScalarStat] = {}
    for name, s in (obj_at(v, where) if v is not None else {}).items():
        at = f"{where}.{name[:60]}"
        check_shown(name, f"{where} name")
        stat = obj_at(s, at)
        nums = metrics_at({k: stat.get(k) for k in ("last", "best")}, at)
        if len(nums) != 2:
            raise FormatError(f"{at} needs numbers last and best")
        mode = stat.get("mode", best_mode(name))
        if mode not in ("min", "max"):
            raise FormatError(f"{at}.mode must be \"min\" or \"max\"")
        out[name] = ScalarStat(nums["last"], nums["best"], mode, opt_int(stat, "count", at),
                               opt_int(stat, "last_step", at))
    return out


def _samples(r: dict[str, Any], base: tuple[str, int, dict[str, Any]]) -> SamplesRecord:
    w = "samples record"
    payload = _payload(r, w)
    if payload["checkpoint"] is None:
        raise FormatError(f"{w}.checkpoint is missing")
    count, ins, outs = decode_specs(r.get("inputs"), r.get("outputs"), r.get("count"), w)
    return SamplesRecord(*base, **payload, count=count, inputs=ins, outputs=outs)


def _number_or_null(v: Any, where: str, lo: float | None = None) -> float | None:
    if v is None:
        return None
    if not is_number(v) or (lo is not None and v < lo):
        raise FormatError(f"{where} must be a finite number{'' if lo is None else f' >= {lo:g}'}"
                          " or null")
    return float(v)


def _mismatch(v: Any, where: str) -> VerifyMismatch:
    m = obj_at(v, where)
    index = opt_int(m, "index", where)
    if index is None:
        raise FormatError(f"{where}.index is missing")
    pos = list_at(m.get("position", []), f"{where}.position")
    if len(pos) > 32 or any(isinstance(n, bool) or not isinstance(n, int) or n < 0
                            for n in pos):
        raise FormatError(f"{where}.position must list at most 32 integers >= 0")
    return VerifyMismatch(index, check_array_name(m.get("output"), f"{where}.output"),
                          tuple(pos), _number_or_null(m.get("expected"), f"{where}.expected"),
                          _number_or_null(m.get("got"), f"{where}.got"),
                          _number_or_null(m.get("error"), f"{where}.error", 0))


def _verify(r: dict[str, Any], base: tuple[str, int, dict[str, Any]]) -> VerifyRecord:
    w = "verify record"
    run = opt_str(r, "run", w)
    if run is not None and not is_ref_name(run):
        raise FormatError(f"{w}.run is not a run name: {run[:40]!r}")
    passed = r.get("passed")
    if not isinstance(passed, bool):
        raise FormatError(f"{w}.passed must be true or false")
    count, mismatched = opt_int(r, "count", w), opt_int(r, "mismatched", w)
    if count is None or mismatched is None or mismatched > count:
        raise FormatError(f"{w} needs count and mismatched, integers with mismatched <= count")
    tol = {k: _number_or_null(r.get(k), f"{w}.{k}", 0) for k in ("atol", "rtol")}
    if tol["atol"] is None or tol["rtol"] is None:
        raise FormatError(f"{w} needs atol and rtol")
    worst = list_at(r.get("worst", []), f"{w}.worst")
    if len(worst) > 100:
        raise FormatError(f"{w}.worst lists more than 100 mismatches")
    return VerifyRecord(
        *base, checkpoint=req_id(r, "checkpoint", w), samples=req_id(r, "samples", w), run=run,
        passed=passed, count=count, mismatched=mismatched, atol=tol["atol"], rtol=tol["rtol"],
        max_error=_number_or_null(r.get("max_error"), f"{w}.max_error", 0),
        worst=tuple(_mismatch(m, f"{w}.worst[{i}]") for i, m in enumerate(worst)),
        time=opt_int(r, "time", w, 0, MAX_TIME), author=_text(r, "author", w, required=False))


def _typed(r: dict[str, Any]) -> Record:
    t, v = r.get("type"), r.get("v")
    if not isinstance(t, str) or not t:
        raise FormatError("not a git-ml record (no string \"type\")")
    check_shown(t, "record type")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise FormatError(f"{t[:40]} record: \"v\" must be a version number, got {v!r:.40}")
    base = (t, v, r)
    if t not in RECORD_TYPES or v != RECORD_VERSION:
        return OtherRecord(*base)
    if t == "checkpoint":
        return _checkpoint(r, base)
    if t == "samples":
        return _samples(r, base)
    if t == "verify":
        return _verify(r, base)
    w = f"{t} record"
    if t == "log":
        return LogRecord(*base, **_payload(r, w), scalars=_scalars(r.get("scalars"),
                                                                   f"{w}.scalars"))
    if t == "graph":
        summary = r.get("summary")
        return GraphRecord(*base, **_payload(r, w),
                           summary=obj_at(summary, f"{w}.summary") if summary is not None
                           else {})
    ds = r.get("dataset")
    return ResultsRecord(*base, **_payload(r, w),
                         metrics=metrics_at(r.get("metrics"), f"{w}.metrics"),
                         dataset=None if ds is None else dataset_ref(ds, f"{w}.dataset", False))


def decode_record(line: str) -> Record:
    """One note line as a typed record; FormatError saying what is wrong with it."""
    if len(line) > MAX_LINE:
        raise FormatError(f"line of {len(line)} bytes exceeds {MAX_LINE}")
    obj = plainjson.loads(line, "record")
    if not isinstance(obj, dict):
        raise FormatError(f"not a git-ml record (a JSON {type(obj).__name__}, not an object)")
    return _typed(obj)


def decode_note(text: str, where: str = "note") -> tuple[list[Record], list[str]]:
    """Parse a note: (records, problems). Never raises.

    Each problem is one line of text, ``"<where>, line N: <what is wrong>"``; the
    line is skipped and the others are kept. Blank lines are ignored. Records of
    types (or versions) this git-ml does not know are kept as :class:`OtherRecord`.
    At most :data:`MAX_PROBLEMS_PER_NOTE` problems are listed one by one; one more
    counts the rest.
    """
    records: list[Record] = []
    problems: list[str] = []
    extra = 0
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            records.append(decode_record(line))
        except FormatError as e:
            if len(problems) < MAX_PROBLEMS_PER_NOTE:
                problems.append(f"{where}, line {n}: {e}")
            else:
                extra += 1
    if extra:
        problems.append(f"{where}: {extra} more malformed line{'s' if extra > 1 else ''}")
    return records, problems


def encode_record(record: dict[str, Any]) -> str:
    """One canonical JSON line (no newline); FormatError if it is not a valid record.

    The line must decode as what it claims to be (:func:`decode_record`): what a
    reader would refuse is never written.
    """
    if record.get("type") not in RECORD_TYPES or record.get("v") != RECORD_VERSION:
        raise FormatError(f"not a git-ml record type/version: {record.get('type')!r}")
    plainjson.check_plain(record, "record")
    try:
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as e:
        raise FormatError(f"record is not plain JSON: {e}") from None
    if len(line) > MAX_LINE:
        raise FormatError(f"record of {len(line)} bytes exceeds {MAX_LINE}; store the payload "
                          "as an object and name it by id")
    decode_record(line)
    return line


# -- metrics across records -----------------------------------------------------------------


def metric_values(records: Iterable[Record], metric: str) -> list[float]:
    """The values of ``metric`` in checkpoint and results records, in order."""
    return [r.metrics[metric] for r in records
            if isinstance(r, (CheckpointRecord, ResultsRecord)) and metric in r.metrics]


def best_value(values: Iterable[float], metric: str) -> float | None:
    """The best of ``values`` for ``metric`` (by :func:`best_mode`), or None if empty."""
    vs = list(values)
    if not vs:
        return None
    return min(vs) if best_mode(metric) == "min" else max(vs)
