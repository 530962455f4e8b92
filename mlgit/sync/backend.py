"""Where a remote's sidecar store lives, behind one small interface.

A :class:`Backend` knows nothing of objects: it stores the files of a store's
layout (``config``, ``packs/pack-<h>.pack`` and ``.idx``, ``refs/<kind>/<name>``:
:mod:`mlgit.sync.layout`, whose names and rules every backend uses) and offers the
few operations sync needs. Every backend (a local path, SSH, S3)
passes the same conformance suite (``tests/test_backends.py``), as restic's
backends do. Contracts every implementation keeps:

- A pack is visible (in :meth:`Backend.list_packs`) only once both its pack file
  and its index are completely written: :meth:`Backend.put_pack` writes the pack,
  then the index, each atomically. It never replaces a file that exists (a pack's
  name is the hash of its index), so it is idempotent and completes an upload that
  was cut off between the two.
- :meth:`Backend.update_ref` is a compare-and-swap: it fails with ConflictError,
  changing nothing, when the ref does not hold ``expect``. :meth:`Backend.delete_ref`
  is the same for a removal: it removes the ref only if it holds ``expect``.
- Reads return exactly the bytes asked for or raise (a range outside the pack, or
  a negative one, is a FormatError), into memory (:meth:`Backend.read_pack`) or
  into a file (:meth:`Backend.read_pack_into`, for whole packs); no method retries
  silently forever, and none prints or reads the environment. Only a backend whose
  :attr:`Backend.concurrent` is True is used from several threads at once.
- A remote that cannot be used raises one of the kinds of
  :class:`~mlgit.errors.RemoteError` (unreachable, authentication, protocol,
  refused), never a bare MlgitError, so that every backend's failures exit alike.
- Every read is bounded by the kind of file (:mod:`mlgit.format.limits`): a
  config of at most ``MAX_CONFIG_LEN`` bytes, an index of at most
  ``MAX_INDEX_LEN``, a ref of at most ``MAX_REF_LEN``; anything larger, and on a
  file system anything that is not a regular file (a symlink, a FIFO, a
  device), is a FormatError naming the remote, refused before it is read.
  :meth:`Backend.list_refs` leaves out a ref that cannot be read and tells
  ``on_bad`` (or raises, without it), so one bad ref does not hide the others.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from mlgit.errors import ConflictError, FormatError
from mlgit.format.config import decode_config
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_CONFIG_LEN, MAX_INDEX_LEN
from mlgit.store.fsutil import (
    COPY_RANGE_UNSUPPORTED,
    atomic_write,
    copy_into_place,
    open_regular,
    read_bounded,
)
from mlgit.store.refs import OnBadRef, RefStore
from mlgit.sync.layout import (
    CONFIG,
    INDEX_SUFFIX,
    PACKS,
    REF_KINDS,
    REFS,
    STORE_DIRS,
    check_pack_name,
    check_ref_path,
    complete_packs,
    index_file,
    pack_file,
)

__all__ = ["COPY_PIECE", "Backend", "LocalBackend", "OnBadRef"]

COPY_PIECE = 8 << 20
"""Bytes read at a time by the default :meth:`Backend.read_pack_into`."""


class Backend(ABC):
    """The operations sync needs from a remote store. ``url`` is safe to print."""

    url: str
    concurrent = False
    """True when several threads may use the backend at once (reading and putting packs)."""

    @abstractmethod
    def read_config(self) -> bytes | None:
        """The store's config file, or None when there is no store there yet."""

    @abstractmethod
    def init(self, config: bytes) -> None:
        """Create the store with this config if there is none (a no-op otherwise)."""

    @abstractmethod
    def list_packs(self) -> list[str]:
        """Stems (``pack-<h>``) of every pack whose index is complete, sorted."""

    @abstractmethod
    def read_index(self, stem: str) -> bytes:
        """The whole index file of pack ``stem``."""

    @abstractmethod
    def read_pack(self, stem: str, offset: int, length: int) -> bytes:
        """``length`` bytes of pack ``stem`` from ``offset`` (a ranged read)."""

    def read_pack_into(self, stem: str, offset: int, length: int, fd: int, at: int) -> None:
        """Write ``length`` bytes of pack ``stem`` from ``offset`` into file ``fd`` at ``at``.

        A ranged read (the same checks and errors as :meth:`read_pack`) whose bytes
        go to a file: a whole pack copied in one call. By default
        :meth:`read_pack` in pieces of :data:`COPY_PIECE` bytes; a backend on a
        mounted filesystem copies inside the kernel.
        """
        if offset < 0 or length < 0:
            raise FormatError(f"{self.url}: bad range {offset}+{length} of {stem}.pack")
        done = 0
        while done < length:
            n = min(COPY_PIECE, length - done)
            view = memoryview(self.read_pack(stem, offset + done, n))
            while view:
                k = os.pwrite(fd, view, at + done)
                view, done = view[k:], done + k

    @abstractmethod
    def put_pack(self, stem: str, pack: Path, index: bytes) -> None:
        """Upload a pack (from a local file) and then its index; idempotent."""

    @abstractmethod
    def list_refs(self, on_bad: OnBadRef | None = None) -> dict[str, ObjectID]:
        """Every sidecar ref (``datasets/<name>``, ``checkpoints/<run>``) and its id.

        A ref that cannot be read is left out and passed to ``on_bad`` with its
        path and a FormatError naming the remote; without ``on_bad`` it is raised.
        """

    @abstractmethod
    def update_ref(self, ref: str, new: ObjectID, expect: ObjectID | None) -> None:
        """Set ``ref`` to ``new`` if it holds ``expect`` (None: absent); else ConflictError."""

    @abstractmethod
    def delete_ref(self, ref: str, expect: ObjectID) -> None:
        """Remove ``ref`` if it holds ``expect``; else ConflictError, changing nothing.

        A ref that does not exist is a ConflictError too (someone removed it first).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class LocalBackend(Backend):
    """A store on a mounted filesystem: another repository's ``.git/ml``.

    When that repository keeps its objects in a shared store (its config names
    one: docs/format.md, "Shared stores"), packs are listed and read from the
    shared store's ``packs/`` as well as its own; packs pushed to it go to its
    own ``packs/``, which it reads too (its gc moves them into the shared store).
    """

    concurrent = True

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.url = url or str(root)
        self._dirs: list[Path] | None = None

    def _pack_dirs(self) -> list[Path]:
        """The store's ``packs/``, then its shared store's when its config names one."""
        if self._dirs is None:
            dirs = [self.root / PACKS]
            data = self.read_config()
            try:
                config = decode_config(data) if data is not None else None
            except FormatError:
                config = None  # check_remote_config reports it
            if config is not None and config.shared:
                dirs.append(Path(config.shared) / PACKS)
            self._dirs = dirs
        return self._dirs

    def _pack_dir(self, stem: str) -> Path:
        """The ``packs/`` holding pack ``stem``'s index (the store's own when neither does)."""
        check_pack_name(stem)
        for d in self._pack_dirs():
            if (d / f"{stem}{INDEX_SUFFIX}").exists():
                return d
        return self.root / PACKS

    def read_config(self) -> bytes | None:
        """See :meth:`Backend.read_config`."""
        try:
            return read_bounded(self.root / CONFIG, MAX_CONFIG_LEN, f"{self.url}: config")
        except FileNotFoundError:
            return None

    def init(self, config: bytes) -> None:
        """See :meth:`Backend.init`."""
        for d in STORE_DIRS:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        if not (self.root / CONFIG).exists():
            atomic_write(self.root / CONFIG, config)

    def list_packs(self) -> list[str]:
        """See :meth:`Backend.list_packs`."""
        found: set[str] = set()
        for d in self._pack_dirs():
            try:
                found.update(complete_packs(os.listdir(d)))
            except FileNotFoundError:
                continue
        return sorted(found)

    def read_index(self, stem: str) -> bytes:
        """See :meth:`Backend.read_index`."""
        return read_bounded(self._pack_dir(stem).parent / index_file(stem), MAX_INDEX_LEN,
                            f"{self.url}: {stem}.idx")

    def read_pack(self, stem: str, offset: int, length: int) -> bytes:
        """See :meth:`Backend.read_pack` (the pack must be a regular file, not a symlink)."""
        path = self._pack_dir(stem).parent / pack_file(stem)
        if offset < 0 or length < 0:
            raise FormatError(f"{self.url}: bad range {offset}+{length} of {stem}.pack")
        fd = open_regular(path, f"{self.url}: {stem}.pack")
        try:
            want = max(0, min(length, os.fstat(fd).st_size - offset))
            parts: list[bytes] = []
            got = 0
            while got < want:
                piece = os.pread(fd, want - got, offset + got)
                if not piece:
                    break
                parts.append(piece)
                got += len(piece)
            data = b"".join(parts)
        finally:
            os.close(fd)
        if len(data) != length:
            raise FormatError(f"{self.url}: {stem}.pack is shorter than its index says")
        return data

    def read_pack_into(self, stem: str, offset: int, length: int, fd: int, at: int) -> None:
        """See :meth:`Backend.read_pack_into`: ``copy_file_range(2)``, inside the kernel.

        Where the kernel cannot (another kind of file system, an old kernel), the
        bytes are read and written in pieces.
        """
        path = self._pack_dir(stem).parent / pack_file(stem)
        if offset < 0 or length < 0:
            raise FormatError(f"{self.url}: bad range {offset}+{length} of {stem}.pack")
        src = open_regular(path, f"{self.url}: {stem}.pack")
        try:
            if os.fstat(src).st_size < offset + length:
                raise FormatError(f"{self.url}: {stem}.pack is shorter than its index says")
            done = 0
            while done < length:
                try:
                    n = os.copy_file_range(src, fd, length - done, offset + done, at + done)
                except OSError as e:
                    if e.errno not in COPY_RANGE_UNSUPPORTED:
                        raise
                    super().read_pack_into(stem, offset + done, length - done, fd, at + done)
                    return
                if n == 0:
                    raise FormatError(f"{self.url}: {stem}.pack is shorter than its index says")
                done += n
        finally:
            os.close(src)

    def put_pack(self, stem: str, pack: Path, index: bytes) -> None:
        """See :meth:`Backend.put_pack`."""
        check_pack_name(stem)
        packs = self.root / "packs"
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        # Both through tmp/: packs/ only ever holds complete, final names.
        copy_into_place(pack, packs / f"{stem}.pack", tmp_dir=tmp_dir, overwrite=False)
        if not (packs / f"{stem}.idx").exists():
            atomic_write(packs / f"{stem}.idx", index, tmp_dir=tmp_dir)

    def list_refs(self, on_bad: OnBadRef | None = None) -> dict[str, ObjectID]:
        """See :meth:`Backend.list_refs`."""
        refs = RefStore(self.root / REFS, f"{self.url}: ")
        return {f"{kind}/{name}": oid for kind in REF_KINDS
                for name, oid in refs.list(kind, on_bad).items()}

    def update_ref(self, ref: str, new: ObjectID, expect: ObjectID | None) -> None:
        """See :meth:`Backend.update_ref` (a RefStore compare-and-swap)."""
        kind, _, name = check_ref_path(ref).partition("/")
        try:
            RefStore(self.root / REFS, f"{self.url}: ").update(
                kind, name, parse_object_id(new), expect)
        except ConflictError as e:
            raise ConflictError(f"{self.url}: {e}") from None

    def delete_ref(self, ref: str, expect: ObjectID) -> None:
        """See :meth:`Backend.delete_ref` (a RefStore compare-and-delete under the ref's lock)."""
        kind, _, name = check_ref_path(ref).partition("/")
        try:
            RefStore(self.root / REFS, f"{self.url}: ").delete(kind, name,
                                                                parse_object_id(expect))
        except ConflictError as e:
            raise ConflictError(f"{self.url}: {e}") from None
