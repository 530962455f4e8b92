"""The ``mlgit://`` fsspec filesystem: the files of any snapshot, read-only, read by range.

``mlgit://REV/PATH`` (:mod:`mlgit.fs.urls`) is ``PATH`` in the snapshot revision
``REV`` names. The filesystem reads from a repository (``repo=PATH``, default:
the one the current directory is in) or, with no clone, straight from a remote
store (``remote="s3://bucket/prefix"``, an ``ssh://`` URL or a path): see
:mod:`mlgit.fs.source` and docs/reading-data.md.

Contracts:

- Read-only: every method that would write raises :class:`~mlgit.fs.errors.ReadOnlyError`
  (a ``PermissionError`` with ``EROFS`` and a ``NotImplementedError``) before
  anything is done.
- A read of a byte range reads only the chunks it overlaps
  (:func:`mlgit.snapshot.reader.read_range`); every object is verified against
  its id, every tree checked against what its parent claims (walks) and every
  chunk against the length its tree records.
- Bad input (an unknown revision, a path the snapshot lacks, an unreachable
  remote) raises the exception fsspec's callers expect (:mod:`mlgit.fs.errors`)
  with git-ml's one-line message, and leaves nothing behind: what an operation
  read is cached only when it succeeds.
- Symbolic links in a snapshot are followed by ``info``, ``open`` and
  ``cat_file`` when they point inside the snapshot (at most 40 in a row); ``ls``,
  ``find`` and ``walk`` list them as they are (``islink``), never descending
  through them. A link that leaves the snapshot names nothing.
- Picklable: an instance is rebuilt from its storage options (fsspec's
  ``__reduce__``), so it travels to Dask workers; each process opens its own
  source. Names are resolved in each process: read a pinned version by id where
  several processes must agree.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import posixpath
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from mlgit.errors import BadPathError, MlgitError, RevisionError
from mlgit.format.ids import ObjectID, digest_to_hex, hex_to_raw, raw_to_hex
from mlgit.format.snapshot import ROOT_FILE, Snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TYPE_SYMLINK, ChunkRef, TreeEntry
from mlgit.format.treeshape import file_root_entry
from mlgit.fs import urls
from mlgit.fs.errors import os_error, read_only
from mlgit.fs.source import Options, Source, open_source
from mlgit.snapshot.reader import chunk_starts, read_range
from mlgit.snapshot.treewalk import Checked

__all__ = ["DEFAULT_BLOCK_SIZE", "MAX_LINKS", "MlgitFile", "MlgitFileSystem"]

DEFAULT_BLOCK_SIZE = 8 << 20
"""What an open file reads ahead by default (``block_size`` sets it)."""
MAX_LINKS = 40
"""Symbolic links followed in a row before ``ELOOP``, as Linux's path walk."""
_FSSPEC_OPTIONS = frozenset({"use_listings_cache", "listings_expiry_time", "max_paths",
                             "skip_instance_cache", "asynchronous", "loop"})
Info = dict[str, Any]


@dataclass(frozen=True)
class _Root:
    """A revision resolved: the segment as written, its snapshot id and snapshot."""

    segment: str
    oid: ObjectID
    snapshot: Snapshot


@dataclass(frozen=True)
class _Found:
    """What a path names: its entry (None: the snapshot's root directory), its real path.

    ``inner`` is the path in the snapshot after following links.
    """

    root: _Root
    inner: str
    entry: TreeEntry | None


def _find_entry(entries: list[TreeEntry], name: str) -> TreeEntry | None:
    """The entry called ``name`` in a tree's entries (sorted by name bytes), or None."""
    key = os.fsencode(name)
    i = bisect.bisect_left(entries, key, key=lambda e: e.name)
    return entries[i] if i < len(entries) and entries[i].name == key else None


def _refuser(what: str, target: int = 0) -> Callable[..., None]:
    """A write method that refuses: raises ReadOnlyError naming its ``target``-th path."""
    def refuse(self: MlgitFileSystem, *args: Any, **kwargs: Any) -> None:
        path = args[target] if len(args) > target else next(iter(kwargs.values()), "")
        shown = self.unstrip_protocol(self._strip_protocol(path)) if isinstance(
            path, (str, os.PathLike)) else ""
        raise read_only(what, shown)

    refuse.__doc__ = f"Refused (ReadOnlyError): the filesystem is read-only, it cannot {what}."
    return refuse


class MlgitFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Snapshots of a git-ml repository or remote store as a read-only fsspec filesystem.

    Storage options (all optional; docs/reading-data.md):

    ``repo``
        A path inside the repository to read (default: the current directory's).
    ``remote``
        Read this remote store with no clone: ``s3://bucket/prefix``,
        ``ssh://[user@]host[:port]/path``, ``[user@]host:path`` or a local path
        (absolute, for workers that start elsewhere). Not with ``repo``.
    ``endpoint``
        For ``s3://``: the endpoint of an S3-compatible service.
    ``ssh_command``, ``remote_command``
        For SSH: the ssh command line (default: git's choice, ``GIT_SSH_COMMAND``
        included) and the git-ml command on the host (default ``git-ml``).
    ``timeout``
        Seconds a remote may stay silent.
    ``cache_dir``
        Where a remote's objects and indexes are cached (default
        ``~/.cache/mlgit``; fsspec's ``FSSPEC_MLGIT_CACHE_DIR`` sets it too).
    ``cache_data``
        False: cache snapshots, trees and indexes only, not file contents.
    ``block_size``
        Read-ahead of open files, in bytes (default 8 MiB).
    """

    protocol = urls.PROTOCOL
    root_marker = ""
    cachable = True

    def __init__(self, repo: str | os.PathLike[str] | None = None, remote: str | None = None,
                 *, endpoint: str | None = None, ssh_command: str | None = None,
                 remote_command: str | None = None, timeout: float | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, cache_data: bool = True,
                 block_size: int | None = None, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - _FSSPEC_OPTIONS)
        if unknown:
            raise TypeError(f"mlgit:// has no storage option {unknown[0]!r} (see "
                            "docs/reading-data.md)")
        super().__init__(**kwargs)
        if block_size is not None and (isinstance(block_size, bool)
                                       or not isinstance(block_size, int) or block_size < 1):
            raise ValueError(f"mlgit:// block_size must be a positive number of bytes, not "
                             f"{block_size!r}")
        self.options = Options(
            repo=os.fspath(repo) if repo is not None else None,
            remote=os.fspath(remote) if remote is not None else None,
            endpoint=endpoint, ssh_command=ssh_command, remote_command=remote_command,
            timeout=timeout,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            cache_data=cache_data)
        self.blocksize = block_size or DEFAULT_BLOCK_SIZE
        self._src: Source | None = None
        self._starts: dict[int, tuple[tuple[ChunkRef, ...], list[int]]] = {}
        self._lock = threading.RLock()
        self._local = threading.local()

    # -- paths ---------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return urls.strip_protocol(os.fspath(path))

    @staticmethod
    def _get_kwargs_from_urls(_path: str) -> dict[str, Any]:
        return {}  # everything is in the storage options; the URL names a revision and a path

    # -- the source, one operation at a time -----------------------------------------------
    def _source(self) -> Source:
        with self._lock:
            if self._src is None:
                self._src = open_source(self.options)
            return self._src

    @contextlib.contextmanager
    def _op(self, path: str) -> Iterator[Source]:
        """One operation: its source; what it read is cached if it succeeds, else dropped.

        git-ml's errors leave as the OSError kinds fsspec's callers expect
        (:func:`~mlgit.fs.errors.os_error`), naming ``path``'s URL.
        """
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            src = self._source()
            try:
                yield src
            except BaseException:
                if depth == 0:
                    src.discard()
                raise
            if depth == 0:
                src.commit()
        except MlgitError as e:
            raise os_error(e, self.unstrip_protocol(path)) from e
        finally:
            self._local.depth = depth

    def close(self) -> None:
        """Close the source (connections, the repository); the next use opens it again."""
        with self._lock:
            src, self._src = self._src, None
        if src is not None:
            src.close()

    def invalidate_cache(self, path: str | None = None) -> None:
        """Resolve names afresh (a name read before may have moved); ids never change."""
        with self._lock:
            if self._src is not None:
                self._src.forget()
        super().invalidate_cache(path)

    # -- resolving a path ------------------------------------------------------------------
    def _root(self, src: Source, segment: str) -> _Root:
        try:
            rev = urls.unquote_rev(segment)
        except UnicodeDecodeError:
            raise RevisionError(f"bad revision {segment!r}: its %-escapes are not "
                                "UTF-8") from None
        oid = src.resolve(rev)
        return _Root(segment, oid, src.get_snapshot(oid))

    def _root_entries(self, src: Source, root: _Root) -> list[TreeEntry]:
        return src.get_tree(hex_to_raw(root.snapshot.tree))

    def _file_root(self, src: Source, root: _Root) -> TreeEntry | None:
        """A file snapshot's one file (the root itself is a file), else None."""
        if root.snapshot.root != ROOT_FILE:
            return None
        return file_root_entry(self._root_entries(src, root), f"snapshot {root.oid}")

    def _find(self, src: Source, path: str, follow: bool = True) -> _Found:
        """What ``path`` (``REV/PATH``) names, following links inside the snapshot.

        With ``follow`` False a link at the end is returned as itself. BadPathError
        (FileNotFoundError) for a path the snapshot lacks or a link that leaves it;
        NotADirectoryError for a path through a file; ELOOP past :data:`MAX_LINKS`.
        """
        segment, inner = urls.split(path)
        root = self._root(src, segment)
        only = self._file_root(src, root)
        if only is not None:
            if inner:
                raise NotADirectoryError(errno.ENOTDIR, "a snapshot of one file has no paths "
                                         "below it", self.unstrip_protocol(path))
            return _Found(root, "", only)
        parts = inner.split("/") if inner else []
        links = 0
        walked: list[str] = []
        tree = hex_to_raw(root.snapshot.tree)
        i = 0
        while i < len(parts):
            e = _find_entry(src.get_tree(tree), parts[i])
            if e is None:
                raise BadPathError(f"{'/'.join([*walked, parts[i]])!r} is not in snapshot "
                                   f"{root.oid[:12]} ({urls.unquote_rev(segment)})")
            last = i == len(parts) - 1
            if e.type == TYPE_SYMLINK and (follow or not last):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links",
                                  self.unstrip_protocol(path))
                parts = self._through_link(walked, e, parts[i + 1:], root)
                walked, tree, i = [], hex_to_raw(root.snapshot.tree), 0
                if not parts:
                    return _Found(root, "", None)
                continue
            if last:
                return _Found(root, "/".join([*walked, parts[i]]), e)
            if e.type != TYPE_DIR:
                raise NotADirectoryError(errno.ENOTDIR, f"{'/'.join([*walked, parts[i]])!r} "
                                         "is not a directory", self.unstrip_protocol(path))
            walked.append(parts[i])
            tree = e.subtree
            i += 1
        return _Found(root, "", None)

    @staticmethod
    def _through_link(walked: list[str], link: TreeEntry, rest: list[str], root: _Root
                      ) -> list[str]:
        """The components, from the snapshot's root, of a path through symlink ``link``."""
        target = os.fsdecode(link.target)
        where = "/".join([*walked, os.fsdecode(link.name)])
        if target.startswith("/"):
            raise BadPathError(f"{where!r} in snapshot {root.oid[:12]} is a symlink to an "
                               f"absolute path ({target!r}), outside the snapshot")
        joined = posixpath.normpath(posixpath.join(*walked, target) if walked else target)
        if joined == ".." or joined.startswith("../"):
            raise BadPathError(f"{where!r} in snapshot {root.oid[:12]} is a symlink that "
                               f"leaves the snapshot ({target!r})")
        parts = [p for p in joined.split("/") if p and p != "."]
        return parts + rest

    # -- info -------------------------------------------------------------------------------
    def _entry_info(self, name: str, e: TreeEntry) -> Info:
        """The info of a tree entry called ``name`` (a stripped path), not following links."""
        if e.type == TYPE_DIR:
            return {"name": name, "size": e.size, "type": "directory", "files": e.files,
                    "id": raw_to_hex(e.subtree)}
        if e.type == TYPE_FILE:
            return {"name": name, "size": e.size, "type": "file", "executable": e.executable,
                    "digest": digest_to_hex(e.digest)}
        return {"name": name, "size": e.size, "type": "other", "islink": True,
                "destination": os.fsdecode(e.target)}

    def _root_info(self, name: str, root: _Root) -> Info:
        s = root.snapshot
        return {"name": name, "size": s.bytes, "type": "directory", "files": s.files,
                "id": s.tree, "snapshot": root.oid, "snapshot_name": s.name, "kind": s.kind,
                "time": s.time}

    def _info_of(self, src: Source, path: str) -> Info:
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        found = self._find(src, path, follow=False)
        if found.entry is not None and found.entry.type == TYPE_SYMLINK:
            link = found.entry
            try:
                found = self._find(src, path)
            except (BadPathError, OSError):
                return self._entry_info(path, link)  # dangling: the link itself
            info = self._found_info(path, found)
            info.update(islink=True, destination=os.fsdecode(link.target))
            return info
        return self._found_info(path, found)

    def _found_info(self, path: str, found: _Found) -> Info:
        if found.entry is None:
            return self._root_info(path, found.root)
        return self._entry_info(path, found.entry)

    def info(self, path: str, **_kwargs: Any) -> Info:
        """The file, directory or link ``path`` names (a file snapshot's root is a file).

        Files: ``size``, ``executable``, ``digest`` (XXH3-128 of the content);
        directories: ``size`` (bytes below), ``files``, ``id`` (the tree); a
        revision's root also ``snapshot`` (its id), ``snapshot_name``, ``kind``,
        ``time``. A link is described by what it points to, with ``islink`` and
        ``destination``.
        """
        path = self._strip_protocol(path)
        with self._op(path) as src:
            return self._info_of(src, path)

    def modified(self, path: str) -> datetime:
        """When the snapshot holding ``path`` was made (its files have no times of their own)."""
        path = self._strip_protocol(path)
        with self._op(path) as src:
            segment, _ = urls.split(path)
            if not segment:
                raise IsADirectoryError(errno.EISDIR, "the root has no time", "mlgit://")
            self._find(src, path)
            return datetime.fromtimestamp(self._root(src, segment).snapshot.time, UTC)

    created = modified

    # -- listing ----------------------------------------------------------------------------
    def ls(self, path: str, detail: bool = True, **_kwargs: Any) -> list[Info] | list[str]:
        """The entries of directory ``path`` (a file: the file itself), in name order.

        The root (``mlgit://``) lists the names revisions can use, as directories.
        """
        out = self._listing(self._strip_protocol(path))
        return out if detail else [i["name"] for i in out]

    def _listing(self, path: str) -> list[Info]:
        with self._op(path) as src:
            return self._ls(src, path)

    def _ls(self, src: Source, path: str) -> list[Info]:
        if not path:
            return [{"name": urls.quote_rev(n), "size": 0, "type": "directory"}
                    for n in src.names()]
        found = self._find(src, path)
        if found.entry is None:
            entries = self._root_entries(src, found.root)
        elif found.entry.type == TYPE_DIR:
            entries = src.get_tree(found.entry.subtree)
        else:
            return [self._info_of(src, path)]
        return [self._entry_info(f"{path}/{os.fsdecode(e.name)}", e) for e in entries]

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **_kwargs: Any) -> list[str] | dict[str, Info]:
        """Every file (and link; with ``withdirs`` every directory) below ``path``, sorted.

        Walks the snapshot's trees without recursion, each subtree checked
        against its directory entry's claims; links are listed, not followed.
        ``maxdepth`` counts levels below ``path`` (1: its entries).
        """
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        path = self._strip_protocol(path)
        out: dict[str, Info] = {}
        with self._op(path) as src:
            if not path:
                for name in src.names():
                    segment = urls.quote_rev(name)
                    if withdirs:
                        out[segment] = {"name": segment, "size": 0, "type": "directory"}
                    if maxdepth is None or maxdepth > 1:
                        self._find_below(src, segment, None if maxdepth is None
                                         else maxdepth - 1, withdirs, out)
            else:
                self._find_below(src, path, maxdepth, withdirs, out)
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def _find_below(self, src: Source, path: str, maxdepth: int | None, withdirs: bool,
                    out: dict[str, Info]) -> None:
        found = self._find(src, path)
        check = Checked(src.get_tree, f"snapshot {found.root.oid}")
        if found.entry is None:
            s = found.root.snapshot
            if found.inner == "" and s.root == ROOT_FILE:
                out[path] = self._info_of(src, path)
                return
            entries = check.root(hex_to_raw(s.tree), (s.files, s.bytes))
            level = 1
        elif found.entry.type == TYPE_DIR:
            depth = found.inner.count("/") + 1  # the directory's own level below the root
            entries = check.below(found.entry, depth, found.inner)
            level = depth + 1
        else:
            out[path] = self._info_of(src, path)
            return
        if withdirs:
            out[path] = self._info_of(src, path)
        self._walk_entries(check, path, entries, level, maxdepth, withdirs, out)

    def _walk_entries(self, check: Checked, path: str, entries: list[TreeEntry], level: int,
                      maxdepth: int | None, withdirs: bool, out: dict[str, Info]) -> None:
        """Add what ``entries`` (of directory ``path``; they sit at ``level``) hold.

        Iterative; each subtree entered is checked (:class:`~mlgit.snapshot.treewalk.Checked`:
        its claims, the depth, the budget of empty directories). A directory that
        claims no file is entered only to list directories (``withdirs``).
        """
        stack: list[tuple[str, list[TreeEntry], int, int]] = [(path, entries, level, 1)]
        while stack:
            prefix, items, lvl, depth = stack.pop()
            for e in items:
                name = f"{prefix}/{os.fsdecode(e.name)}"
                if e.type != TYPE_DIR:
                    out[name] = self._entry_info(name, e)
                    continue
                if withdirs:
                    out[name] = self._entry_info(name, e)
                if (maxdepth is None or depth < maxdepth) and (e.files > 0 or withdirs):
                    stack.append((name, check.below(e, lvl, name), lvl + 1, depth + 1))

    def walk(self, path: str, maxdepth: int | None = None, topdown: bool = True,
             on_error: str | Callable[[OSError], None] = "omit", **kwargs: Any
             ) -> Iterator[tuple[str, Any, Any]]:
        """``os.walk`` over a snapshot, as fsspec's ``walk`` (without recursion).

        Yields (path, dirs, files) for each directory; with ``topdown`` the
        caller may prune ``dirs`` in place. Links are files here.
        """
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        detail = kwargs.pop("detail", False)
        top = self._strip_protocol(path)
        # (path, depth left, listing to yield after its children: bottom-up only)
        stack: list[tuple[str, int | None, tuple[str, Any, Any] | None]] = [
            (top, maxdepth, None)]
        while stack:
            p, left, pending = stack.pop()
            if pending is not None:
                yield pending
                continue
            try:
                listing = self._listing(p)
            except OSError as e:
                if on_error == "raise":
                    raise
                if callable(on_error):
                    on_error(e)
                continue
            dirs: dict[str, Info] = {}
            files: dict[str, Info] = {}
            for info in listing:
                name = info["name"].rsplit("/", 1)[-1]
                if info["name"] == p:
                    files[""] = info
                elif info["type"] == "directory":
                    dirs[name] = info
                else:
                    files[name] = info
            shown_dirs: Any = dirs if detail else list(dirs)
            shown = (p, shown_dirs, files if detail else list(files))
            if topdown:
                yield shown  # the caller may prune shown_dirs
            else:
                stack.append((p, None, shown))
            if left is None or left > 1:
                children = [(f"{p}/{d}" if p else d) for d in list(shown_dirs) if d in dirs]
                stack.extend((c, None if left is None else left - 1, None)
                             for c in reversed(children))

    # -- reading ----------------------------------------------------------------------------
    def _file(self, src: Source, path: str) -> TreeEntry:
        found = self._find(src, path)
        e = found.entry
        if e is None or e.type == TYPE_DIR:
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.unstrip_protocol(path))
        return e

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **_kwargs: Any) -> bytes:
        """Bytes ``start`` to ``end`` of a file (negative: from its end), read by chunk."""
        path = self._strip_protocol(path)
        with self._op(path) as src:
            e = self._file(src, path)
            lo = 0 if start is None else (start if start >= 0 else max(0, e.size + start))
            hi = e.size if end is None else (end if end >= 0 else e.size + end)
            return read_range(src, e, lo, min(hi, e.size), self._starts_of(e))

    def _starts_of(self, e: TreeEntry) -> list[int]:
        """:func:`~mlgit.snapshot.reader.chunk_starts` of ``e``, remembered for a few files.

        A file of 10 GiB has 160,000 chunks: many small ranges of it must not
        each add them up again. Keyed by the entry's chunk list (the source
        caches its trees, so a file's entry is the same object while it is read).
        """
        key = id(e.chunks)
        with self._lock:
            hit = self._starts.get(key)
            if hit is not None and hit[0] is e.chunks:
                return hit[1]
        starts = chunk_starts(e)
        with self._lock:
            if len(self._starts) >= 16:
                self._starts.pop(next(iter(self._starts)))
            self._starts[key] = (e.chunks, starts)
        return starts

    def _read(self, path: str, entry: TreeEntry, starts: list[int], start: int, end: int
              ) -> bytes:
        """Bytes ``start`` to ``end`` of the open file ``path`` (its entry as opened)."""
        with self._op(path) as src:
            return read_range(src, entry, start, end, starts)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True,  # noqa: ARG002 - fsspec's signature; nothing to commit
              cache_options: dict[str, Any] | None = None,
              **kwargs: Any) -> MlgitFile:
        if mode != "rb":
            raise read_only(f"open a file in mode {mode!r}", self.unstrip_protocol(path))
        path = self._strip_protocol(path)
        kwargs.pop("size", None)  # what fsspec's reopen passes; the entry knows
        with self._op(path) as src:
            entry = self._file(src, path)
        return MlgitFile(self, path, entry, block_size=block_size or self.blocksize,
                         cache_type=kwargs.pop("cache_type", "readahead"),
                         cache_options=cache_options, **kwargs)

    # -- writing: refused --------------------------------------------------------------------
    mkdir = _refuser("create a directory")
    makedirs = _refuser("create directories")
    rmdir = _refuser("remove a directory")
    rm_file = _refuser("remove a file")
    _rm = _refuser("remove a file")
    rm = _refuser("remove files")
    touch = _refuser("create a file")
    cp_file = _refuser("copy a file within it (get copies out of it)", target=1)
    copy = _refuser("copy files within it (get copies out of it)", target=1)
    mv = _refuser("move files")
    put_file = _refuser("upload a file", target=1)
    put = _refuser("upload files", target=1)
    pipe_file = _refuser("write a file")
    pipe = _refuser("write files")


class MlgitFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a snapshot opened for reading: fsspec's buffered file over ranged reads.

    It keeps the tree entry it was opened on, so a name that moves while it is
    open does not change what it reads. Each fetch of a range is one operation
    of its filesystem (:meth:`MlgitFileSystem._op`).
    """

    def __init__(self, fs: MlgitFileSystem, path: str, entry: TreeEntry, *,
                 block_size: int, cache_type: str = "readahead",
                 cache_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.entry = entry
        self._starts = fs._starts_of(entry)
        super().__init__(fs, path, mode="rb", block_size=block_size, cache_type=cache_type,
                         cache_options=cache_options, size=entry.size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        fs: MlgitFileSystem = self.fs
        return fs._read(self.path, self.entry, self._starts, start, end)
