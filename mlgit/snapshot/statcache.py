"""The stat cache: lets an unchanged file skip hashing, as git's index does.

One cache per tracked path, in ``.git/ml/cache/stat/<key>.json``. It records,
for each directory of the last snapshot built or materialized there, the tree
id and each regular file's (size, mtime, ctime, inode, executable bit). A file
whose stat matches is taken to hold what the tree says; any other file is
hashed. Entries whose mtime is within :data:`RACY_NS` of the moment the stat
was taken are never recorded (the "racy git" problem: a later write in the same
timestamp tick would go unnoticed). The cache is derived data: deleting it only
costs a rehash, and a cache that does not parse is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.format.ids import digest_bytes
from mlgit.snapshot.scan import FileStat
from mlgit.store.fsutil import atomic_write

__all__ = ["RACY_NS", "DirCache", "StatCache", "cache_path"]

RACY_NS = 30_000_000
_VERSION = 1


@dataclass(slots=True)
class DirCache:
    """The cached state of one directory: its tree id and its files' stats."""

    tree: bytes
    files: dict[bytes, FileStat] = field(default_factory=dict)
    links: dict[bytes, bytes] = field(default_factory=dict)
    dirs: set[bytes] = field(default_factory=set)


@dataclass
class StatCache:
    """Snapshot id and tree the path last matched, and per-directory entries."""

    snapshot: str = ""
    tree: str = ""
    dirs: dict[str, DirCache] = field(default_factory=dict)
    files: int = 0
    nbytes: int = 0


def cache_path(cache_dir: Path, tracked: Path) -> Path:
    """Where the stat cache of the tracked path ``tracked`` (absolute) lives."""
    key = digest_bytes(os.fsencode(str(tracked))).hex()
    return cache_dir / "stat" / f"{key}.json"


def load(path: Path) -> StatCache:
    """Read a cache; an empty one if it is missing or unreadable."""
    try:
        obj = json.loads(path.read_bytes())
        if obj.get("v") != _VERSION:
            return StatCache()
        dirs = {
            rel: DirCache(
                bytes.fromhex(tree),
                {os.fsencode(n): FileStat._make(v) for n, v in files.items()},
                {os.fsencode(n): os.fsencode(t) for n, t in links.items()},
                {os.fsencode(n) for n in dirs},
            )
            for rel, (tree, files, links, dirs) in obj["dirs"].items()
        }
        return StatCache(obj["snapshot"], obj["tree"], dirs, obj["files"], obj["bytes"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return StatCache()


def save(path: Path, cache: StatCache, stat_time_ns: int) -> None:
    """Write a cache, leaving out entries that are racy relative to ``stat_time_ns``."""
    limit = stat_time_ns - RACY_NS
    dirs = {}
    for rel, dc in cache.dirs.items():
        files = {
            os.fsdecode(n): [s.size, s.mtime_ns, s.ctime_ns, s.ino, int(s.executable)]
            for n, s in dc.files.items()
            if s.mtime_ns < limit and s.ctime_ns < limit
        }
        links = {os.fsdecode(n): os.fsdecode(t) for n, t in dc.links.items()}
        dirs[rel] = [dc.tree.hex(), files, links, sorted(os.fsdecode(n) for n in dc.dirs)]
    obj = {"v": _VERSION, "snapshot": cache.snapshot, "tree": cache.tree, "dirs": dirs,
           "files": cache.files, "bytes": cache.nbytes}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode())
