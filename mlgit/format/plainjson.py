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

__all__ = ["check_plain", "is_number", "loads"]


def _refuse_constant(name: str) -> Any:
    raise FormatError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(f"number {text[:40]} is out of range")
    return value


# A lone surrogate can only come from a \uD800-\uDFFF escape (decoded text has none).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def loads(text: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``text`` as plain JSON (see the module docstring); FormatError naming ``what``."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except FormatError as e:
        raise FormatError(f"{what}: {e}") from None
    except RecursionError:
        raise FormatError(f"{what}: JSON nested deeper than {max_depth} levels") from None
    except ValueError as e:  # JSONDecodeError, the int digit limit
        raise FormatError(f"{what} is not valid JSON: {str(e)[:100]}") from None
    # The hooks refused every non-finite number; strings need a look only if escaped so.
    _check(value, what, max_depth, scalars=_SURROGATE_ESCAPE.search(text) is not None)
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
        return "a string holds a lone surrogate (not UTF-8)" if _bad_string(v) else None
    if isinstance(v, float):
        return None if math.isfinite(v) else "holds a NaN or infinite number"
    if v is None or isinstance(v, (bool, int)):
        return None
    return f"{type(v).__name__} is not a JSON value"


def _check(value: Any, what: str, max_depth: int, scalars: bool) -> None:
    """Depth of every container (and, with ``scalars``, every key and scalar)."""
    if not isinstance(value, (dict, list)):
        bad = _bad_scalar(value) if scalars else None
        if bad:
            raise FormatError(f"{what}: {bad}")
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > max_depth:
            raise FormatError(f"{what}: JSON nested deeper than {max_depth} levels")
        if isinstance(v, dict):
            if scalars:
                for k in v:
                    if not isinstance(k, str) or _bad_string(k):
                        raise FormatError(f"{what}: a key is not a valid string")
            items = v.values()
        else:
            items = v
        for item in items:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif scalars:
                bad = _bad_scalar(item)
                if bad:
                    raise FormatError(f"{what}: {bad}")


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
