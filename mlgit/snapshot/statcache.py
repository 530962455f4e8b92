"""The stat cache: lets an unchanged file skip hashing, as git's index does.

One cache per tracked path, in ``.git/ml/cache/stat/<key>.json``. It records,
for each directory of the last snapshot built or materialized there, the tree
id and each regular file's (size, mtime, ctime, inode, executable bit). A file
whose stat matches is taken to hold what the tree says; any other file is
hashed. The cache is derived data: deleting it only costs a rehash, and a
cache that does not parse is ignored.

Racy entries (git's "racy git" problem): a file written again within the same
timestamp tick as the stat the cache recorded keeps that stat, so its change
would go unnoticed. Three rules keep such a file from being vouched for:

- :func:`save` leaves out entries whose mtime or ctime is within :data:`RACY_NS`
  of the moment the scan began (timestamps finer than that: ext4, xfs, btrfs...);
- and, for an mtime and a ctime of whole seconds (a filesystem with 1 s or 2 s
  timestamps: ext3, ext4 with small inodes, FAT, HFS+, some network
  filesystems), within :data:`COARSE_RACY_NS`;
- :func:`load` takes no entry whose mtime or ctime is not older than the cache
  file's own mtime (git's rule against its index file: whatever the
  granularity, a file touched in the tick the cache was written in is hashed
  again). Each directory records its newest entry time, so this costs nothing
  per file.

:func:`matches` answers "is this path exactly as the cache recorded it" with
``lstat`` calls alone (no hashing, no store): what ``status`` and ``add`` ask
first.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.errors import FormatError
from mlgit.format.gitindex import MODE_EXECUTABLE, MODE_FILE, IndexEntry, index_chunks
from mlgit.format.ids import RawObjectID, digest_hex, hex_to_raw, raw_to_hex
from mlgit.format.racy import COARSE_RACY_NS, RACY_NS, SECOND_NS, is_racy
from mlgit.snapshot.scan import FileStat, is_skipped
from mlgit.store.fsutil import replace_file

__all__ = ["COARSE_RACY_NS", "RACY_NS", "DirCache", "GitIndexTarget", "StatCache", "cache_path",
           "dir_signature", "git_index_path", "load", "matches", "save", "write_git_index"]

_VERSION = 3
_OLD_VERSIONS = (2,)  # read (no newest entry time per directory: worked out on load)
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


def matches(path: bytes, cache: StatCache, *, is_file: bool) -> bool:
    """True if ``path`` is exactly as ``cache`` recorded it, found with ``lstat`` alone.

    Every directory's listing and every file's stat must equal what the cache
    vouches for (its signatures, racy entries excluded), so the tree built now
    would be the cache's :attr:`StatCache.tree`. False at the first difference,
    and for anything a build would warn about or refuse (a name a scan skips,
    an entry that is not a file, directory or symlink, a directory that cannot
    be listed): the caller then builds the tree, which reports it.
    """
    dirs = cache.dirs
    if not cache.tree or not dirs:
        return False
    try:
        if is_file:
            return _file_matches(path, dirs)
        seen = 0
        stack = [(path, "")]
        while stack:
            where, rel = stack.pop()
            dc = dirs.get(rel)
            if dc is None or not dc.sig:
                return False
            seen += 1
            sig, subdirs = _listing_signature(where)
            if sig != dc.sig:
                return False
            for name in subdirs:
                stack.append((os.path.join(where, name),
                              f"{rel}/{os.fsdecode(name)}" if rel else os.fsdecode(name)))
        return seen == len(dirs)
    except (OSError, _Doubt):
        return False


class _Doubt(Exception):
    """An entry :func:`matches` leaves to a full build."""


def _file_matches(path: bytes, dirs: dict[str, DirCache]) -> bool:
    dc = dirs.get("")
    if dc is None or not dc.sig or len(dirs) != 1:
        return False
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return False
    name = os.path.basename(path)
    return dir_signature({name: FileStat.of(st)}, {}, ()) == dc.sig


def _listing_signature(where: bytes) -> tuple[str, list[bytes]]:
    """:func:`dir_signature` of the directory ``where`` as a scan would see it, and its subdirs.

    _Doubt for an entry a scan would skip or warn about. (A listing and one
    ``fstatat`` per name relative to the directory: the cheapest way to stat
    from Python.)
    """
    names = os.listdir(where)
    names.sort()
    files = [b"F"]
    links = [b"L"]
    subdirs: list[bytes] = []
    pack = _SIG.pack
    lstat = os.stat
    fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            if is_skipped(name):
                raise _Doubt(name)
            st = lstat(name, dir_fd=fd, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                files.append(pack(len(name), st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                  st.st_ino, (mode & 0o100) != 0))
                files.append(name)
            elif stat.S_ISDIR(mode):
                subdirs.append(name)
            elif stat.S_ISLNK(mode):
                links += [name, b"\0", os.readlink(name, dir_fd=fd), b"\0"]
            else:
                raise _Doubt(name)
    finally:
        os.close(fd)
    parts = files + links
    parts.append(b"D")
    for name in subdirs:
        parts += [name, b"\0"]
    return digest_hex(b"".join(parts)), subdirs


class DirCache:
    """The cached state of one directory: tree id, listing signature, files' stats.

    ``sig`` is empty when some entry could not be cached (racy), which forces a
    per-file comparison. The per-file stats are parsed from the cache file only
    when asked for (most directories of a large unchanged dataset never are);
    entries whose mtime or ctime is ``racy_from`` or later are then left out.
    """

    __slots__ = ("_files", "_raw", "racy_from", "sig", "tree")

    def __init__(self, tree: RawObjectID, sig: str, files: dict[bytes, FileStat] | None = None,
                 raw: str | None = None, racy_from: int | None = None) -> None:
        self.tree = tree
        self.sig = sig
        self._files = files
        self._raw = raw
        self.racy_from = racy_from

    @property
    def files(self) -> dict[bytes, FileStat]:
        """Each regular file's stat, by name."""
        if self._files is None:
            obj = json.loads(self._raw) if self._raw else {}
            limit = self.racy_from
            self._files = {os.fsencode(n): FileStat._make(v) for n, v in obj.items()
                           if limit is None or max(v[1], v[2]) < limit}
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


def git_index_path(path: Path) -> Path:
    """The private git index kept beside the stat cache file ``path`` (see :func:`save`)."""
    return path.with_suffix(".index")


@dataclass(frozen=True)
class GitIndexTarget:
    """What :func:`save` needs to write a tracked path's private git index as well."""

    full: bytes
    """The tracked path, absolute."""
    prefix: bytes
    """The tracked path relative to the work tree, ``/``-separated: what git calls it."""
    hash_name: str
    """The repository's object format (``sha1``, ``sha256``)."""


def load(path: Path) -> StatCache:
    """Read a cache; an empty one if it is missing or unreadable.

    Entries not older than the cache file itself are left out (racy: see the
    module docstring), and their directories' signatures dropped.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            written = os.fstat(fd).st_mtime_ns
            with os.fdopen(fd, "rb", closefd=False) as f:
                obj = json.loads(f.read())
        finally:
            os.close(fd)
        version = obj.get("v")
        if version == _VERSION:
            dirs = {rel: _dir_cache(tree, sig, raw, newest, written)
                    for rel, (tree, sig, raw, newest) in obj["dirs"].items()}
        elif version in _OLD_VERSIONS:
            dirs = {rel: _dir_cache(tree, sig, raw, None, written)
                    for rel, (tree, sig, raw) in obj["dirs"].items()}
        else:
            return StatCache()
        return StatCache(obj["snapshot"], obj["tree"], dirs, obj["files"], obj["bytes"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, FormatError):
        return StatCache()


def _dir_cache(tree: str, sig: str, raw: str, newest: int | None, written: int) -> DirCache:
    """One directory's entry; its signature only if every file in it is older than the cache."""
    if not isinstance(sig, str) or not isinstance(raw, str):
        raise TypeError("bad stat cache entry")
    dc = DirCache(hex_to_raw(tree), sig, raw=raw, racy_from=written)
    if newest is None:  # an old cache: look at the entries
        newest = max((max(s.mtime_ns, s.ctime_ns) for s in _parse(raw)), default=0)
    if not isinstance(newest, int) or newest >= written:
        dc.sig = ""
    return dc


def _parse(raw: str) -> list[FileStat]:
    return [FileStat._make(v) for v in json.loads(raw).values()] if raw else []


def save(path: Path, cache: StatCache, stat_time_ns: int,
         git_index: GitIndexTarget | None = None) -> None:
    """Write a cache, leaving out entries that are racy relative to ``stat_time_ns``.

    ``stat_time_ns`` is the wall-clock time just before the stats were taken.
    Not durable (no fsync): the cache is derived data, a file that a crash left
    torn does not parse and only costs a rehash.

    With ``git_index``, the same stats are written as a git index
    (:mod:`mlgit.format.gitindex`) at :func:`git_index_path`, for
    :mod:`mlgit.gitlink.statindex` to check with git itself (see
    :func:`write_git_index`). The old index is removed before the cache is
    written, so an index never outlives the cache it was written with.
    """
    index_path = git_index_path(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(index_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, _cache_pieces(cache, stat_time_ns))
    if git_index is not None:
        write_git_index(path, cache, stat_time_ns, git_index)


def _cache_pieces(cache: StatCache, stat_time_ns: int) -> Iterator[bytes]:
    """The cache file's JSON, one directory at a time (a large cache is never one string)."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    head = {"v": _VERSION, "snapshot": cache.snapshot, "tree": cache.tree,
            "files": cache.files, "bytes": cache.nbytes}
    yield (dumps(head)[:-1] + ',"dirs":{').encode()
    sep = ""
    for rel, dc in cache.dirs.items():
        kept = [(n, s) for n, s in dc.files.items()
                if not is_racy(s.mtime_ns, s.ctime_ns, stat_time_ns)]
        files = {os.fsdecode(n): [s.size, s.mtime_ns, s.ctime_ns, s.ino, int(s.executable)]
                 for n, s in kept}
        sig = dc.sig if len(files) == len(dc.files) else ""
        newest = max((max(s.mtime_ns, s.ctime_ns) for _, s in kept), default=0)
        entry = [raw_to_hex(dc.tree), sig, dumps(files), newest]
        yield f"{sep}{dumps(rel)}:{dumps(entry)}".encode()
        sep = ","
    yield b"}}"


def write_git_index(path: Path, cache: StatCache, stat_time_ns: int,
                    target: GitIndexTarget) -> bool:
    """Write the git index of ``cache`` beside the stat cache file ``path``; False if it cannot.

    ``cache`` must hold what the files' ``lstat`` gave after ``stat_time_ns``
    (a cache just built, or one :func:`matches` just vouched for). git compares
    whole seconds: an entry whose mtime or ctime falls in the second of
    ``stat_time_ns`` (less :data:`RACY_NS`) or later is smudged (git sees it
    changed), and so is an entry :func:`save` would leave out. owner and device
    are taken from the tracked path itself (a file owned otherwise only shows as
    changed, which is safe).
    """
    made = _git_index_entries(cache, target, stat_time_ns)
    if made is None:
        return False
    try:
        replace_file(git_index_path(path), index_chunks(made[1], made[0], target.hash_name))
    except FormatError:
        return False
    return True


def _children(dirs: dict[str, DirCache]) -> dict[str, list[str]] | None:
    """Each directory's subdirectories (their keys); None if a key has no parent."""
    children: dict[str, list[str]] = {rel: [] for rel in dirs}
    for rel in dirs:
        if rel:
            parent = children.get(rel.rpartition("/")[0])
            if parent is None:
                return None
            parent.append(rel)
    return children


def _git_index_entries(cache: StatCache, target: GitIndexTarget, stat_time_ns: int
                       ) -> tuple[int, Iterator[IndexEntry]] | None:
    """How many git index entries ``cache``'s files make, and the entries in git's order.

    None if there is nothing to write. The entries are made one directory at a
    time (git's order is by path bytes: a directory's files and its
    subdirectories' paths, ``name/...``, sorted together), so a large index
    never has them all in memory.
    """
    # Kept (not smudged): not racy, and older than the second of the scan (less RACY_NS).
    second = stat_time_ns - RACY_NS
    second -= second % SECOND_NS
    try:
        root = os.lstat(target.full)
    except OSError:
        return None
    dirs = cache.dirs
    if stat.S_ISREG(root.st_mode):
        if len(dirs) != 1 or "" not in dirs or len(dirs[""].files) != 1:
            return None
    elif not stat.S_ISDIR(root.st_mode) or "" not in dirs:
        return None
    children = _children(dirs)
    if children is None:
        return None
    dev, uid, gid = root.st_dev, root.st_uid, root.st_gid
    alone = stat.S_ISREG(root.st_mode)

    def entry(path: bytes, s: FileStat) -> IndexEntry:
        size, mtime_ns, ctime_ns, ino, executable = s
        if max(mtime_ns, ctime_ns) >= second or is_racy(mtime_ns, ctime_ns, stat_time_ns):
            mtime_ns = 0  # smudged
        return IndexEntry(path, ctime_ns, mtime_ns, dev, ino,
                          MODE_EXECUTABLE if executable else MODE_FILE, uid, gid, size)

    def listing(rel: str) -> Iterator[tuple[bytes, FileStat | None, str]]:
        """A directory's files and subdirectories in git's order: (path, stat or None, rel)."""
        base = (target.prefix + b"/" + os.fsencode(rel) if rel else target.prefix) + b"/"
        items: list[tuple[bytes, FileStat | None, str]] = [
            (base + name, s, rel) for name, s in dirs[rel].files.items()]
        items += [(base + os.fsencode(sub.rpartition("/")[2]) + b"/", None, sub)
                  for sub in children[rel]]
        items.sort(key=lambda item: item[0])
        return iter(items)

    def walk() -> Iterator[IndexEntry]:
        if alone:
            yield entry(target.prefix, next(iter(dirs[""].files.values())))
            return
        stack = [listing("")]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif item[1] is None:
                stack.append(listing(item[2]))
            else:
                yield entry(item[0], item[1])

    return sum(len(dc.files) for dc in dirs.values()), walk()
