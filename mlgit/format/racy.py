"""The racy-timestamp rule (git's "racy git"): which stats may not be vouched for.

A file written again within the timestamp tick of a stat taken of it keeps that
stat, so its change would go unnoticed. A stat is *racy* relative to the moment
``stat_time_ns`` (wall clock, taken before the stat) when its mtime or ctime is
within :data:`RACY_NS` of that moment, or within :data:`COARSE_RACY_NS` when
both timestamps are whole seconds (a filesystem with 1 s or 2 s timestamps).
The stat cache (:mod:`mlgit.snapshot.statcache`) and the remembered answers
(:mod:`mlgit.gitlink.answers`) use this one rule. No imports: it is on the
start-up path.
"""

from __future__ import annotations

__all__ = ["COARSE_RACY_NS", "RACY_NS", "SECOND_NS", "is_racy"]

RACY_NS = 30_000_000
COARSE_RACY_NS = 2_000_000_000
SECOND_NS = 1_000_000_000


def is_racy(mtime_ns: int, ctime_ns: int, stat_time_ns: int) -> bool:
    """Whether a stat with these times may not be vouched for (see the module docstring)."""
    newest = mtime_ns if mtime_ns > ctime_ns else ctime_ns
    coarse = not (mtime_ns % SECOND_NS or ctime_ns % SECOND_NS)
    return newest >= stat_time_ns - (COARSE_RACY_NS if coarse else RACY_NS)
