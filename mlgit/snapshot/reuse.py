"""Files already on disk that a checkout can reflink instead of writing again.

A read-only checkout (``checkouts/<id>/``) and a work tree that hold the same
version would otherwise be two full copies of the data. Where the filesystem can
reflink (:mod:`mlgit.store.reflink`), a file to write whose content is already
on disk becomes a reflink of that file: it shares the blocks until one side
changes. :class:`Reuse` gathers where such content may be:

- a **work tree** path, through its stat cache: a file is taken to hold what its
  tree says only while its stat (size, times, inode, mode) still matches the
  cache, as ``status`` takes it; it is checked before and after the clone, so a
  file changed meanwhile is never cloned (its bytes are written instead);
- a **read-only checkout**, which is trusted as it is read (built from verified
  chunks, read-only; see docs/format.md, "Reading").

Nothing is indexed unless the filesystem can reflink between the place and the
destination (the same device, and a probe clone in a scratch directory there
succeeds),
and then only the files whose content is wanted. Any doubt falls back to writing
the bytes from the store.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlgit.errors import FormatError
from mlgit.format.ids import FileDigest, RawObjectID
from mlgit.format.tree import TYPE_FILE, TreeEntry
from mlgit.snapshot import statcache
from mlgit.snapshot.scan import FileStat
from mlgit.snapshot.treewalk import TreeGetter, walk
from mlgit.store.reflink import clone_fd, probe

__all__ = ["Reuse"]


@dataclass(frozen=True)
class _Place:
    root: bytes
    is_file: bool
    cache: Path | None  # a work tree path's stat cache file; None: a read-only checkout
    tree: RawObjectID | None  # a checkout's root tree


class Reuse:
    """Where the content of files to write may already be on disk (see the module doc).

    Add places with :meth:`worktree` and :meth:`checkout`; the writer calls
    :meth:`prepare` once with the files it will write, then :meth:`clone_into`
    for each (from several threads at once). :attr:`cloned_files` and
    :attr:`cloned_bytes` count what was reflinked. ``scratch`` is a writable
    directory (the store's ``tmp/``) where the reflink probe runs.
    """

    def __init__(self, get: TreeGetter, scratch: Path) -> None:
        self._get = get
        self._scratch = scratch
        self._places: list[_Place] = []
        self._by_digest: dict[FileDigest, list[tuple[bytes, FileStat | None]]] = {}
        self._lock = threading.Lock()
        self.cloned_files = 0
        self.cloned_bytes = 0

    def worktree(self, root: str | os.PathLike[str], cache: Path, *,
                 is_file: bool = False) -> None:
        """A tracked path of the work tree and its stat cache file (read only if needed)."""
        self._places.append(_Place(os.fsencode(root), is_file, cache, None))

    def checkout(self, root: str | os.PathLike[str], tree: RawObjectID, *,
                 is_file: bool = False) -> None:
        """A complete read-only checkout at ``root`` of the snapshot whose root tree is ``tree``."""
        self._places.append(_Place(os.fsencode(root), is_file, None, tree))

    def prepare(self, dest: Path, writes: Iterable[TreeEntry]) -> bool:
        """Index the places for the files ``writes`` (to be written in directory ``dest``).

        False (nothing indexed) when no place is on ``dest``'s filesystem or that
        filesystem cannot reflink (probed in the scratch directory, which must be on
        the same filesystem).
        """
        wanted = {e.digest for e in writes if e.type == TYPE_FILE and e.size}
        if not wanted:
            return False
        try:
            dev = os.stat(dest).st_dev
            if os.stat(self._scratch).st_dev != dev:
                return False
        except OSError:
            return False
        here = [p for p in self._places if _device(p) == dev]
        if not here or not probe(self._scratch):
            return False
        for place in here:
            if not wanted:
                break
            try:
                found = list(self._index(place, wanted))
            except (FormatError, OSError):
                continue  # a tree that cannot be read (pruned, damaged): not a source
            for digest, path, vouch in found:
                self._by_digest.setdefault(digest, []).append((path, vouch))
        return bool(self._by_digest)

    def _index(self, place: _Place, wanted: set[FileDigest]
               ) -> Iterable[tuple[FileDigest, bytes, FileStat | None]]:
        base = os.path.dirname(place.root) if place.is_file else place.root
        if place.cache is None:
            assert place.tree is not None
            for path, e in walk(self._get, place.tree, base, os.path.join, dirs=False):
                if e.type == TYPE_FILE and e.digest in wanted:
                    yield e.digest, path, None
            return
        for rel, dc in statcache.load(place.cache).dirs.items():
            files = dc.files
            d = os.path.join(base, os.fsencode(rel)) if rel else base
            for e in self._get(dc.tree):
                vouch = files.get(e.name)
                if e.type == TYPE_FILE and vouch is not None and e.digest in wanted:
                    yield e.digest, os.path.join(d, e.name), vouch

    def clone_into(self, e: TreeEntry, fd: int) -> bool:
        """Make the new, empty file ``fd`` a reflink of a file holding ``e``'s content; True if so.

        False leaves ``fd`` empty for the caller to write.
        """
        for path, vouch in self._by_digest.get(e.digest, ()):
            if self._clone_one(path, vouch, e, fd):
                with self._lock:
                    self.cloned_files += 1
                    self.cloned_bytes += e.size
                return True
        return False

    @staticmethod
    def _clone_one(path: bytes, vouch: FileStat | None, e: TreeEntry, fd: int) -> bool:
        try:
            src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            before = os.fstat(src)
            if not stat.S_ISREG(before.st_mode) or before.st_size != e.size or (
                    vouch is not None and FileStat.of(before) != vouch):
                return False
            if not clone_fd(src, fd):
                return False
            after = os.fstat(src)
            if FileStat.of(after) == FileStat.of(before) and os.fstat(fd).st_size == e.size:
                return True
            os.ftruncate(fd, 0)  # the source changed while it was cloned: write the bytes
            return False
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            return False
        finally:
            os.close(src)


def _device(place: _Place) -> int | None:
    try:
        return os.stat(place.root).st_dev
    except OSError:
        return None
