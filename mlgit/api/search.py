"""``--grep``: which datasets and runs a listing keeps (``git ml ls [REMOTE] --grep WORD``).

As ``git log --grep`` searches commit messages, a listing searches each dataset's
or run's name and the message of its newest version: a match is a case-insensitive
(Unicode case-folded) occurrence of the word as a fixed string, not a pattern.
Several words keep what matches any of them (as ``git log`` does without
``--all-match``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["grep_matches"]


def grep_matches(words: Sequence[str], name: str, message: str | None) -> bool:
    """True when ``name`` or ``message`` holds one of ``words`` (ignoring case); none: True."""
    if not words:
        return True
    hay = (name.casefold(), (message or "").casefold())
    return any(w.casefold() in h for w in words for h in hay)
