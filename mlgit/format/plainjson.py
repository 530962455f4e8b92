r"""Plain JSON from stored data: what git-ml accepts where JSON may be hostile.

Snapshot bodies and note records are JSON that a teammate or a remote wrote.
:func:`loads` parses such text into *plain JSON*: objects with string keys,
arrays, strings, integers, finite floats, booleans and null, nested at most
:data:`~mlgit.format.limits.MAX_JSON_DEPTH` deep, with every string encodable as
UTF-8 (no lone surrogates from ``\ud800`` escapes, which would make printing the
value fail). ``NaN``, ``Infinity`` and numbers that overflow to infinity
(``1e400``) are refused, so anything decoded here can be written back out as
strict JSON (``allow_nan=False``).

Pure functions; they raise FormatError and nothing else.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mlgit.errors import FormatError
from mlgit.format.limits import MAX_JSON_DEPTH

__all__ = ["check_plain", "check_shown", "is_number", "loads"]

# Characters a terminal acts on (C0 controls, DEL, C1 controls): a string git-ml prints
# as it is may not hold them, or a teammate's data could move the cursor or recolour it.
_CONTROL = frozenset(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)])
_TAB_OK = _CONTROL - {"\t"}
_LINES_OK = _CONTROL - set("\t\n\r")


def check_shown(value: str, where: str, lines: bool = False) -> str:
    """Return ``value`` if git-ml may print it as it is; FormatError naming ``where`` if not.

    Allowed: no control character but tab (and, with ``lines``, line ends).
    """
    if not (_LINES_OK if lines else _TAB_OK).isdisjoint(value):
        raise FormatError(f"{where} holds control characters: {value[:40]!r}")
    return value


class _NotFinite:
    """What the parse hooks put where a NaN, an Infinity or an overflowing number was."""

    def __init__(self, text: str) -> None:
        self.text = text


def _finite_float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


# A lone surrogate can only come from a \uD800-\uDFFF escape (decoded text has none).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def loads(text: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``text`` as plain JSON (see the module docstring).

    FormatError naming ``what`` and, for a bad value, where it is
    (``snapshot: meta.x: NaN is not a finite number``).
    """
    found: list[str] = []

    def not_finite(name: str) -> _NotFinite:
        found.append(name)
        return _NotFinite(name)

    def number(t: str) -> float | _NotFinite:
        v = _finite_float(t)
        if isinstance(v, _NotFinite):
            found.append(t)
        return v

    try:
        value = json.loads(text, parse_constant=not_finite, parse_float=number)
    except RecursionError:
        raise FormatError(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except ValueError as e:  # JSONDecodeError, the int digit limit
        raise FormatError(f"{what} is not valid JSON: {str(e)[:100]}") from None
    # Floats were checked as they were parsed; strings need a look only if escaped so.
    _check(value, what, max_depth,
           scalars=bool(found) or _SURROGATE_ESCAPE.search(text) is not None)
    return value


def check_plain(value: Any, what: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Check that ``value`` is plain JSON, walking it iteratively (no recursion on depth).

    Depth counts containers: a bare scalar is depth 0, ``{}`` and ``[]`` depth 1.
    """
    _check(value, what, max_depth, scalars=True)


def _bad_string(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_scalar(v: Any) -> str | None:
    """What is wrong with a non-container value, or None."""
    if isinstance(v, str):
        return "holds a lone surrogate (not UTF-8)" if _bad_string(v) else None
    if isinstance(v, _NotFinite):
        return f"{v.text[:40]} is not a finite number"
    if isinstance(v, float):
        return None if math.isfinite(v) else f"{v} is not a finite number"
    if v is None or isinstance(v, (bool, int)):
        return None
    return f"{type(v).__name__} is not a JSON value"


def _where(what: str, path: tuple[str | int, ...]) -> str:
    """``what: a.b[0].c``, the place of a bad value (``what`` alone at the top)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part[:40]}"
    return f"{what}: {out}" if out else what


def _check(value: Any, what: str, max_depth: int, scalars: bool) -> None:
    """Depth of every container (and, with ``scalars``, every key and scalar)."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 0, ())]
    while stack:
        v, depth, path = stack.pop()
        if not isinstance(v, (dict, list)):
            bad = _bad_scalar(v) if scalars else None
            if bad:
                raise FormatError(f"{_where(what, path)}: {bad}")
            continue
        if depth + 1 > max_depth:
            raise FormatError(f"{_where(what, path)}: JSON nested deeper than {max_depth} "
                              "levels")
        if isinstance(v, dict):
            for k, item in v.items():
                if scalars and (not isinstance(k, str) or _bad_string(k)):
                    raise FormatError(f"{_where(what, path)}: a key is not a valid string")
                if scalars or isinstance(item, (dict, list)):
                    stack.append((item, depth + 1, (*path, k)))
        else:
            for i, item in enumerate(v):
                if scalars or isinstance(item, (dict, list)):
                    stack.append((item, depth + 1, (*path, i)))


def is_number(v: Any) -> bool:
    """True for a JSON number git-ml can print and compare.

    That is a finite float or an int that converts to one (booleans are not numbers).
    """
    if isinstance(v, bool):
        return False
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, int):
        return abs(v) < 2 ** 1023
    return False
