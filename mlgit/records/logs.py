"""Summarize a training log: the scalars it records, each with its last and best value.

:func:`summarize_log` reads one log and returns a :class:`LogSummary`. The format
is detected from the content (a file name containing ``tfevents`` also marks an
event file):

``tfevents``
    A TensorFlow event file, or a directory holding event files (searched
    recursively). The Keras ``TensorBoard`` callback (and git-ml's
    ``CheckpointCallback``) write ``train/`` and ``validation/`` subdirectories;
    scalar names from a file in a subdirectory are prefixed with its path, e.g.
    ``validation/epoch_loss``. Read by :mod:`mlgit.records.tfevents` (the
    TFRecord framing checked here, events decoded by TensorBoard's protobuf
    classes: TensorFlow is never imported when TensorBoard is installed); both
    ``simple_value`` scalars (TF1) and tensor-encoded scalars (TF2
    ``tf.summary.scalar``) count. As in TensorBoard, a record cut short at the
    end of a file (a log still being written) or failing its checksum ends that
    file; a record over 64 MiB (a huge graph) is skipped unread.
``csv``
    Keras ``CSVLogger`` output: a header row that names an ``epoch`` (or
    ``step``) column; every other numeric column is a scalar, its step the epoch.
``jsonl``
    One JSON object per line; numeric fields (nested objects flattened with
    ``/``) are scalars; a ``step`` (else ``epoch``) field is the step.
``text``
    Any other UTF-8 text: no scalars.

Non-finite values (NaN, infinities) are skipped, so every number in a summary is
valid JSON. A scalar whose values are all skipped is left out. This module only
reads files; it never prints and never writes.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgit.errors import FormatError, UsageError
from mlgit.format.records import best_mode
from mlgit.records.tfevents import event_scalars, is_record_header

__all__ = ["LOG_FORMATS", "LogSummary", "ScalarSummary", "best_mode", "summarize_log"]

LOG_FORMATS = ("tfevents", "csv", "jsonl", "text")
_STEP_FIELDS = ("step", "epoch")
_SNIFF = 64 << 10


@dataclass(frozen=True)
class ScalarSummary:
    """One scalar series: its last value, best value (by ``mode``), count and last step.

    ``mode`` is ``"min"`` or ``"max"`` (see :func:`best_mode`); ``count`` is the
    number of finite values; ``last_step`` is the step of ``last`` or None when
    the log records no steps.
    """

    last: float
    best: float
    mode: str
    count: int
    last_step: int | None

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{"last", "best", "mode", "count", "last_step"}``."""
        return {"last": self.last, "best": self.best, "mode": self.mode, "count": self.count,
                "last_step": self.last_step}


@dataclass(frozen=True)
class LogSummary:
    """A log's format (one of :data:`LOG_FORMATS`) and its scalars by name."""

    format: str
    scalars: dict[str, ScalarSummary]

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{"format": ..., "scalars": {name: ScalarSummary.to_json()}}``."""
        return {"format": self.format,
                "scalars": {k: v.to_json() for k, v in sorted(self.scalars.items())}}


class _Series:
    """Collects the values of one scalar in the order they are read."""

    def __init__(self) -> None:
        self.points: list[tuple[int | None, float]] = []

    def add(self, step: int | None, value: float) -> None:
        if math.isfinite(value):
            self.points.append((step, value))


def _summaries(series: dict[str, _Series], sort_by_step: bool = False
               ) -> dict[str, ScalarSummary]:
    out: dict[str, ScalarSummary] = {}
    for name, s in series.items():
        pts = s.points
        if not pts:
            continue
        if sort_by_step and all(step is not None for step, _ in pts):
            # A stable sort: values written at the same step keep file order.
            pts = sorted(pts, key=lambda p: p[0] if p[0] is not None else 0)
        mode = best_mode(name)
        values = [v for _, v in pts]
        best = min(values) if mode == "min" else max(values)
        out[name] = ScalarSummary(pts[-1][1], best, mode, len(pts), pts[-1][0])
    return out


def _as_number(v: object) -> float | None:
    """A JSON/CSV value as a float, or None if it is not a number (bools are not)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _as_step(v: object) -> int | None:
    f = _as_number(v)
    if f is None or not math.isfinite(f):
        return None
    return int(f)


# -- format detection ------------------------------------------------------------

def _is_event_file_name(path: Path) -> bool:
    return "tfevents" in path.name


def _event_files(directory: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for f in sorted(filenames):
            if "tfevents" in f:
                files.append(Path(dirpath) / f)
    return files


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _unknown(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}; known log formats: TensorFlow event files (tfevents), "
                      "Keras CSVLogger csv, JSON lines (jsonl), UTF-8 text")


# -- tfevents ---------------------------------------------------------------------

def _read_events(path: Path, prefix: str, series: dict[str, _Series]) -> None:
    where = str(path)
    try:
        with path.open("rb") as f:
            for step, tag, value in event_scalars(f, where):
                series.setdefault(prefix + tag, _Series()).add(step, value)
    except FormatError as e:
        raise UsageError(f"not a readable TensorFlow event file: {e}") from None


def _summarize_events(path: Path) -> LogSummary:
    series: dict[str, _Series] = {}
    if path.is_dir():
        files = _event_files(path)
        if not files:
            raise _unknown(path, "a directory without TensorFlow event files")
        for f in files:
            rel = f.parent.relative_to(path).as_posix()
            _read_events(f, "" if rel == "." else rel + "/", series)
    else:
        _read_events(path, "", series)
    return LogSummary("tfevents", _summaries(series, sort_by_step=True))


# -- text formats ----------------------------------------------------------------

def _lines(path: Path) -> Iterator[str]:
    """The file's lines, decoded as UTF-8 (a BOM is dropped); UsageError if it is not UTF-8."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            yield from f
    except UnicodeDecodeError as e:
        raise _unknown(path, "binary content that is not a TensorFlow event file") from e


def _csv_dialect(first_line: str) -> str | None:
    """The delimiter if ``first_line`` is a CSVLogger-style header (has epoch/step), else None."""
    for delim in (",", "\t", ";"):
        cells = [c.strip().lower() for c in next(csv.reader([first_line], delimiter=delim))]
        if len(cells) >= 2 and any(c in _STEP_FIELDS for c in cells):
            return delim
    return None


def _summarize_csv(path: Path, delim: str) -> LogSummary:
    series: dict[str, _Series] = {}
    reader = csv.reader(_lines(path), delimiter=delim)
    header = [c.strip() for c in next(reader)]
    lowered = [c.lower() for c in header]
    step_col = next((lowered.index(f) for f in _STEP_FIELDS if f in lowered), None)
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        step = _as_step(row[step_col]) if step_col is not None and step_col < len(row) else None
        for i, cell in enumerate(row[: len(header)]):
            if i == step_col or lowered[i] in _STEP_FIELDS:
                continue
            v = _as_number(cell.strip())
            if v is not None:
                series.setdefault(header[i], _Series()).add(step, v)
    return LogSummary("csv", _summaries(series))


def _flatten(obj: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in obj.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}/")
        else:
            yield prefix + str(k), v


def _is_jsonl(head_text: str) -> bool:
    """True if the first non-blank line of ``head_text`` is a complete JSON object."""
    for line in head_text.splitlines():
        if line.strip():
            try:
                return isinstance(json.loads(line), dict)
            except ValueError:
                return False
    return False


def _summarize_jsonl(path: Path) -> LogSummary | None:
    """The jsonl summary, or None if some non-blank line is not a JSON object."""
    series: dict[str, _Series] = {}
    for line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        step_key = next((k for k in _STEP_FIELDS if k in obj), None)
        step = _as_step(obj[step_key]) if step_key is not None else None
        for name, v in _flatten(obj):
            if name in _STEP_FIELDS:
                continue
            num = v if isinstance(v, int | float) and not isinstance(v, bool) else None
            if num is not None:
                series.setdefault(name, _Series()).add(step, float(num))
    return LogSummary("jsonl", _summaries(series))


def _check_text(path: Path) -> None:
    dec = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                if b"\x00" in block:
                    raise _unknown(path, "binary content that is not a TensorFlow event file")
                dec.decode(block)
        dec.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise _unknown(path, "binary content that is not a TensorFlow event file") from e


# -- entry point -----------------------------------------------------------------

def summarize_log(path: Path) -> LogSummary:
    """Summarize the training log at ``path`` (a file, or a directory of event files).

    Returns the detected format and, for each scalar, its last and best values.
    Raises :class:`~mlgit.errors.UsageError` for binary content that is not a
    TensorFlow event file (the message names the known formats), for a directory
    without event files and for an event file whose events do not decode;
    :class:`~mlgit.errors.MissingDependencyError` for event
    files when neither TensorBoard nor TensorFlow is installed.
    An unreadable path raises the ``OSError``.
    """
    path = Path(path)
    if path.is_dir():
        return _summarize_events(path)
    with path.open("rb") as f:
        head = f.read(_SNIFF)
    if is_record_header(head) or (_is_event_file_name(path) and not head):
        return _summarize_events(path)
    if _looks_binary(head):
        raise _unknown(path, "binary content that is not a TensorFlow event file")
    text = head.decode("utf-8", "ignore").removeprefix("\ufeff")
    if _is_jsonl(text):
        summary = _summarize_jsonl(path)
        if summary is not None:
            return summary
    first = next(iter(io.StringIO(text)), "")
    delim = _csv_dialect(first.rstrip("\r\n"))
    if delim is not None:
        return _summarize_csv(path, delim)
    _check_text(path)
    return LogSummary("text", {})
