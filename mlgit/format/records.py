"""ML records in git notes (``refs/notes/ml``): JSON Lines, one self-contained record a line.

A record is a JSON object with at least ``type`` (one of :data:`RECORD_TYPES`)
and ``v`` (record version, 1). Lines are canonical JSON (sorted keys, no
spaces, ASCII), so identical records are identical lines and git's
``cat_sort_uniq`` notes merge keeps each once. Payloads (logs, graphs, result
files) are sidecar objects named by id; a line is at most :data:`MAX_LINE`
bytes. docs/notes.md documents every record type and field.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlgit.errors import FormatError

__all__ = ["MAX_LINE", "RECORD_TYPES", "RECORD_VERSION", "decode_note", "encode_record"]

RECORD_TYPES = ("checkpoint", "log", "graph", "results")
RECORD_VERSION = 1
MAX_LINE = 16 << 10


def _check_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FormatError("record holds a NaN or infinite number")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v)
    elif isinstance(value, list):
        for v in value:
            _check_finite(v)


def encode_record(record: dict[str, Any]) -> str:
    """One canonical JSON line (no newline); FormatError if it is not a valid record."""
    if record.get("type") not in RECORD_TYPES or record.get("v") != RECORD_VERSION:
        raise FormatError(f"not a git-ml record type/version: {record.get('type')!r}")
    _check_finite(record)
    try:
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as e:
        raise FormatError(f"record is not plain JSON: {e}") from None
    if len(line) > MAX_LINE:
        raise FormatError(f"record of {len(line)} bytes exceeds {MAX_LINE}; store the payload "
                          "as an object and name it by id")
    return line


def decode_note(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse a note: (records, problems). Each bad line is skipped and described in problems.

    Blank lines are ignored. Records of types this version does not know are kept
    (a newer git-ml may have written them); lines that are not JSON objects with a
    string ``type`` are reported and skipped, never fatal.
    """
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            problems.append(f"line {n} is not JSON: {line[:60]!r}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            problems.append(f"line {n} is not a git-ml record: {line[:60]!r}")
            continue
        records.append(obj)
    return records, problems
