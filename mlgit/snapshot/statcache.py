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
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.errors import FormatError
from mlgit.format.ids import RawObjectID, digest_hex, hex_to_raw, raw_to_hex
from mlgit.snapshot.scan import FileStat
from mlgit.store.fsutil import atomic_write

__all__ = ["RACY_NS", "DirCache", "StatCache", "cache_path", "dir_signature", "load", "save"]

RACY_NS = 30_000_000
_VERSION = 2
_SIG = struct.Struct("<HqqqQ?")


def dir_signature(files: dict[bytes, FileStat], links: dict[bytes, bytes],
                  dirs: Iterable[bytes]) -> str:
    """A digest of a directory listing: every name, file stat, symlink target and subdir name.

    In hex, as the cache file stores it (it names no object).

    Equal signatures mean the listing and every file's stat are unchanged, so
    the whole directory can be vouched for without looking at single entries.
    """
    parts = [b"F"]
    for name, st in sorted(files.items()):
        parts.append(_SIG.pack(len(name), st[0], st[1], st[2], st[3], st[4]))
        parts.append(name)
    parts.append(b"L")
    for name, target in sorted(links.items()):
        parts += [name, b"\0", target, b"\0"]
    parts.append(b"D")
    for name in sorted(dirs):
        parts += [name, b"\0"]
    return digest_hex(b"".join(parts))


class DirCache:
    """The cached state of one directory: tree id, listing signature, files' stats.

    ``sig`` is empty when some entry could not be cached (racy), which forces a
    per-file comparison. The per-file stats are parsed from the cache file only
    when asked for (most directories of a large unchanged dataset never are).
    """

    __slots__ = ("_files", "_raw", "sig", "tree")

    def __init__(self, tree: RawObjectID, sig: str, files: dict[bytes, FileStat] | None = None,
                 raw: str | None = None) -> None:
        self.tree = tree
        self.sig = sig
        self._files = files
        self._raw = raw

    @property
    def files(self) -> dict[bytes, FileStat]:
        """Each regular file's stat, by name."""
        if self._files is None:
            obj = json.loads(self._raw) if self._raw else {}
            self._files = {os.fsencode(n): FileStat._make(v) for n, v in obj.items()}
        return self._files


@dataclass
class StatCache:
    """Snapshot id and tree the path last matched, per-directory entries, and totals."""

    snapshot: str = ""
    tree: str = ""
    dirs: dict[str, DirCache] = field(default_factory=dict)
    files: int = 0
    nbytes: int = 0


def cache_path(cache_dir: Path, tracked: Path) -> Path:
    """Where the stat cache of the tracked path ``tracked`` (absolute) lives."""
    key = digest_hex(os.fsencode(str(tracked)))
    return cache_dir / "stat" / f"{key}.json"


def load(path: Path) -> StatCache:
    """Read a cache; an empty one if it is missing or unreadable."""
    try:
        obj = json.loads(path.read_bytes())
        if obj.get("v") != _VERSION:
            return StatCache()
        dirs = {rel: DirCache(hex_to_raw(tree), sig, raw=raw)
                for rel, (tree, sig, raw) in obj["dirs"].items()}
        return StatCache(obj["snapshot"], obj["tree"], dirs, obj["files"], obj["bytes"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, FormatError):
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
        sig = dc.sig if len(files) == len(dc.files) else ""
        dirs[rel] = [raw_to_hex(dc.tree), sig, json.dumps(files, separators=(",", ":"))]
    obj = {"v": _VERSION, "snapshot": cache.snapshot, "tree": cache.tree, "dirs": dirs,
           "files": cache.files, "bytes": cache.nbytes}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode())
