"""Summarize an evaluation or test result file as a flat dict of numeric metrics.

:func:`summarize_results` detects the format from the content:

``json``
    A JSON object of metrics. Numbers are kept (booleans, strings, lists and
    non-finite values are not); nested objects are flattened with ``/``
    (``{"val": {"acc": 0.9}}`` gives ``val/acc``).
``junit``
    JUnit XML, a ``<testsuites>`` root or a single ``<testsuite>``. Metrics:
    ``tests``, ``failures``, ``errors``, ``skipped``, ``passed`` and ``time``
    (seconds), summed over the top-level suites. A suite's attribute is used when
    present, otherwise the count comes from its ``<testcase>`` elements. Input
    with a ``<!DOCTYPE`` or ``<!ENTITY`` declaration is refused, so no entity can
    expand.

This module only reads files.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgit.errors import UsageError

__all__ = ["RESULTS_FORMATS", "ResultsSummary", "summarize_results"]

RESULTS_FORMATS = ("json", "junit")
_MAX_BYTES = 256 << 20
_COUNTS = ("tests", "failures", "errors", "skipped")


@dataclass(frozen=True)
class ResultsSummary:
    """A result file's format (``"json"`` or ``"junit"``) and its metrics by name."""

    format: str
    metrics: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{"format": ..., "metrics": {name: number}}``."""
        return {"format": self.format, "metrics": dict(sorted(self.metrics.items()))}


def _unknown(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}; known result formats: a JSON object of metrics "
                      "(json), JUnit XML (junit)")


def _flatten(obj: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for k, v in obj.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}/")
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            yield prefix + str(k), float(v)


def _number(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        f = float(v.replace(",", ""))
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _suite_counts(suite: ET.Element) -> dict[str, float]:
    """The counts and time of one ``<testsuite>``: its attributes, else its test cases."""
    cases = list(suite.iter("testcase"))
    counted = {
        "tests": float(len(cases)),
        "failures": float(sum(1 for c in cases if c.find("failure") is not None)),
        "errors": float(sum(1 for c in cases if c.find("error") is not None)),
        "skipped": float(sum(1 for c in cases if c.find("skipped") is not None)),
        "time": sum(_number(c.get("time")) or 0.0 for c in cases),
    }
    out = {}
    for key in (*_COUNTS, "time"):
        attr = _number(suite.get(key))
        if attr is None and key == "skipped":
            attr = _number(suite.get("disabled"))
        out[key] = attr if attr is not None else counted[key]
    return out


def _junit(path: Path, data: bytes) -> ResultsSummary:
    try:
        # Parsed as text, so expat reads UTF-8 whatever the XML declaration says: the
        # declaration check below then sees every byte the parser will.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _unknown(path, "XML that is not UTF-8") from e
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise UsageError(f"{path}: JUnit XML with a DOCTYPE or ENTITY declaration is refused "
                         "(entities could expand without bound); remove the declaration")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise _unknown(path, f"XML that does not parse ({e})") from e
    if root.tag == "testsuite":
        suites = [root]
    elif root.tag == "testsuites":
        suites = root.findall("testsuite")
    else:
        raise _unknown(path, f"XML whose root is <{root.tag}>, not <testsuites> or <testsuite>")
    totals = dict.fromkeys((*_COUNTS, "time"), 0.0)
    if suites:
        for s in suites:
            for k, v in _suite_counts(s).items():
                totals[k] += v
    else:  # an empty <testsuites>, perhaps with its own totals
        totals = _suite_counts(root)
    totals["passed"] = max(0.0, totals["tests"] - totals["failures"] - totals["errors"]
                           - totals["skipped"])
    return ResultsSummary("junit", totals)


def summarize_results(path: Path) -> ResultsSummary:
    """Summarize the result file at ``path`` (JSON metrics or JUnit XML).

    Raises :class:`~mlgit.errors.UsageError` for any other content (the message
    names the known formats), for a JSON value that is not an object, for JUnit
    XML with a DOCTYPE or entity declaration, and for files over 256 MiB. An
    unreadable path raises the ``OSError``.
    """
    path = Path(path)
    if path.is_dir():
        raise _unknown(path, "a directory")
    with path.open("rb") as f:
        data = f.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise UsageError(f"{path}: larger than 256 MiB; not read as a result file")
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        try:
            obj = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as e:
            raise _unknown(path, f"JSON that does not parse ({e})") from e
        if not isinstance(obj, dict):
            raise _unknown(path, "JSON that is not an object")
        return ResultsSummary("json", dict(_flatten(obj)))
    if stripped.startswith(b"<"):
        return _junit(path, data)
    if stripped.startswith(b"["):
        raise _unknown(path, "JSON that is not an object")
    raise _unknown(path, "content in no known format")
