"""Files on disk: durable writes and bounded reads of files that may be hostile.

Every durable write in git-ml goes through this module, in one order: write a
temporary file (in the target's directory or the store's ``tmp/``, on the same
filesystem), fsync it, rename it over the final name, fsync the final name's
directory. A reader (or a crash at any point) sees the old file or the whole new
one, never a mix; a write that fails or is interrupted by an exception removes its
temporary file. Only a kill leaves one behind, under a name no reader looks at
(``gc`` sweeps old ones). :class:`DurableFile` is that sequence for a file written
piece by piece; :func:`atomic_write` for bytes in memory; :func:`copy_into_place`
for a copy of another file; :func:`move_into_place` for a temporary file already
written by other means; :func:`move_dir_into_place` for a finished directory
(made durable first with :func:`fsync_tree` when another library wrote it), and
:func:`rename_aside` to remove one (renamed away first, so a reader never sees
part of one). Derived data that may be lost at any time (caches) skips the
fsyncs: :func:`replace_file` is only atomic.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterable

from mlgit.errors import FormatError

__all__ = ["COPY_RANGE_UNSUPPORTED", "DurableFile", "atomic_write", "copy_into_place",
           "force_remove", "fsync_dir", "fsync_tree", "move_dir_into_place", "move_into_place",
           "open_regular", "read_bounded", "rename_aside", "replace_file", "unique_tmp_name"]


def open_regular(path: str | os.PathLike[str], what: str | None = None,
                 error: type[FormatError] = FormatError) -> int:
    """A read-only file descriptor on the regular file at ``path`` (the caller closes it).

    Opened with ``O_NOFOLLOW | O_NONBLOCK``: a symlink in the last component, a
    FIFO (which never blocks the open), a device, a socket or a directory is
    refused with ``error`` naming ``what`` (default: the path). A missing file
    raises FileNotFoundError.
    """
    label = what or os.fsdecode(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(f"{label} is a symbolic link, not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{label} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(path: str | os.PathLike[str], limit: int, what: str | None = None,
                 error: type[FormatError] = FormatError) -> bytes:
    """The whole content of the regular file at ``path``, which must be at most ``limit`` bytes.

    For every file git-ml reads that another party may have written (refs,
    configs, indexes, pointer files, a remote's files). The file is opened with
    ``O_NOFOLLOW | O_NONBLOCK``: a symlink in the last component, a FIFO, a
    device, a socket or a directory is refused without being read (and a FIFO
    never blocks the open); a file larger than ``limit`` is refused before
    anything is read, and one that grows past it while being read, once the
    limit is reached. Refusals raise ``error`` (a FormatError class) naming
    ``what`` (default: the path). A missing file raises FileNotFoundError, as
    :func:`open` does.
    """
    label = what or os.fsdecode(path)
    fd = open_regular(path, label, error)
    try:
        st = os.fstat(fd)
        if st.st_size > limit:
            raise error(f"{label} is {st.st_size} bytes, more than the {limit} allowed")
        parts: list[bytes] = []
        got = 0
        while got <= limit:
            piece = os.read(fd, min(limit + 1 - got, 1 << 20))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        if got > limit:
            raise error(f"{label} grew past the {limit} bytes allowed while being read")
        return b"".join(parts)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Fsync a directory so that renames and creations inside it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Fsync every regular file and directory below ``root`` (and ``root``), deepest first.

    For a directory another library wrote (a SavedModel TensorFlow saved) before
    :func:`move_dir_into_place` renames it: after return its content survives a
    crash. Iterative; symlinks are not followed (nor synced), other kinds of
    files are skipped.
    """
    dirs: list[bytes] = []
    stack = [os.fsencode(root)]
    while stack:
        d = stack.pop()
        dirs.append(d)
        with os.scandir(d) as it:
            entries = list(it)
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            elif e.is_file(follow_symlinks=False):
                _fsync_file(Path(os.fsdecode(e.path)))
    for d in reversed(dirs):
        fsync_dir(Path(os.fsdecode(d)))


def unique_tmp_name(prefix: str) -> str:
    """A file name no other process or thread will pick: prefix, pid and random hex."""
    return f"{prefix}.{os.getpid()}.{os.urandom(6).hex()}.tmp"


class DurableFile:
    """A new file written under a temporary name in ``tmp_dir``, then put in place durably.

    ``with DurableFile(tmp_dir, prefix) as f: f.write(...); f.commit(dest)``. The
    temporary file is created exclusively (``O_EXCL``, mode ``mode`` before the
    umask) under :func:`unique_tmp_name` ``(prefix)``; ``tmp_dir`` must be on
    ``dest``'s filesystem. :meth:`commit` fsyncs, closes and renames it to
    ``dest`` and fsyncs ``dest``'s directory; leaving the ``with`` block (or
    calling :meth:`discard`) without a commit removes it, on every path. Not
    thread-safe: one writer at a time. ``buffer`` is the write buffer's size
    (Python's default if -1): a writer of many small pieces passes a larger one
    so that they cost few ``write`` calls.
    """

    def __init__(self, tmp_dir: Path, prefix: str, mode: int = 0o644, *,
                 buffer: int = -1) -> None:
        self.path = tmp_dir / unique_tmp_name(prefix)
        self._file: BinaryIO | None = None
        self._gone = False  # renamed into place or removed
        try:
            self._file = os.fdopen(
                os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode),
                "wb", buffering=buffer, closefd=True)
        except BaseException:  # an interrupt between the open and the fdopen included
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (buffered; nothing is durable before :meth:`commit`)."""
        if self._file is None:
            raise ValueError(f"{self.path.name} is closed")
        self._file.write(data)

    def close(self) -> Path:
        """Flush and close the file without syncing it; its temporary path, to read it back.

        For a file that is copied elsewhere rather than put in place (a pack to
        upload). :meth:`discard` still removes it.
        """
        f, self._file = self._file, None
        if f is not None:
            f.close()
        return self.path

    def commit(self, dest: Path, *, overwrite: bool = True) -> bool:
        """Make the file ``dest``, durably: fsync, close, rename, fsync ``dest``'s directory.

        With ``overwrite=False`` an existing ``dest`` is kept (for content-addressed
        names, where it holds the same bytes) and False returned. On any failure
        the temporary file is removed and the error raised.
        """
        if self._gone:
            raise ValueError(f"{self.path.name} was already committed or discarded")
        if not overwrite and dest.exists():
            self.discard()  # no fsync spent on bytes that are not kept
            return False
        try:
            f, self._file = self._file, None
            if f is not None:
                with f:
                    f.flush()
                    os.fsync(f.fileno())
            else:
                _fsync_file(self.path)
        except BaseException:
            self.discard()
            raise
        moved = move_into_place(self.path, dest, overwrite=overwrite, synced=True)
        self._gone = True
        return moved

    def discard(self) -> None:
        """Close and remove the temporary file unless it was committed (idempotent)."""
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
        if not self._gone:
            self._gone = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> DurableFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(tmp: Path, dest: Path, *, overwrite: bool = True,
                    synced: bool = False) -> bool:
    """Rename the written temporary file ``tmp`` to ``dest`` durably; True if it was moved.

    Fsyncs ``tmp`` (unless the caller did: ``synced``), renames it over ``dest``
    (same filesystem) and fsyncs ``dest``'s directory. With ``overwrite=False`` an
    existing ``dest`` is kept, ``tmp`` removed and False returned. ``tmp`` is
    removed whenever it is not moved, the error (if any) raised.
    """
    try:
        if not overwrite and dest.exists():
            os.unlink(tmp)
            return False
        if not synced:
            _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)
    return True


def copy_into_place(src: Path, dest: Path, *, tmp_dir: Path | None = None,
                    overwrite: bool = True, link: bool = False) -> bool:
    """Copy the file ``src`` to ``dest`` durably (through a temporary file); True if copied.

    The copy goes to a temporary file beside ``dest`` or in ``tmp_dir`` (same
    filesystem as ``dest``) and is then moved with :func:`move_into_place`; with
    ``overwrite=False`` an existing ``dest`` is kept and nothing copied. With
    ``link`` the temporary file is a hard link to ``src`` where the filesystem
    allows one (an immutable file, such as a pack, then costs no second copy).
    """
    if not overwrite and dest.exists():
        return False
    tmp = (tmp_dir if tmp_dir is not None else dest.parent) / unique_tmp_name(
        dest.name if tmp_dir is not None else "." + dest.name)
    try:
        try:
            if not link:
                raise OSError(errno.EXDEV, "no link asked for")
            os.link(src, tmp, follow_symlinks=False)
        except OSError:
            _copy_file(src, tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return move_into_place(tmp, dest, overwrite=overwrite)


COPY_RANGE_UNSUPPORTED = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                    errno.EBADF, errno.ETXTBSY})
"""What ``copy_file_range(2)`` answers when it cannot copy between two files (copy by hand)."""


def _copy_file(src: Path, dest: Path) -> None:
    """Copy ``src`` to the new file ``dest`` inside the kernel where it can.

    ``copy_file_range(2)`` (which shares the blocks, a reflink, on filesystems
    that can: XFS, Btrfs), else :func:`shutil.copyfile` (``sendfile``).
    """
    with open(src, "rb") as fin:
        size = os.fstat(fin.fileno()).st_size
        with open(dest, "xb") as fout:
            done = 0
            try:
                while done < size:
                    n = os.copy_file_range(fin.fileno(), fout.fileno(), size - done, done, done)
                    if n == 0:
                        break  # shorter than it was: copy what there is, as copyfile would
                    done += n
                return
            except OSError as e:
                if e.errno not in COPY_RANGE_UNSUPPORTED or done:
                    raise
    os.unlink(dest)
    shutil.copyfile(src, dest)


def move_dir_into_place(tmp: Path, dest: Path) -> bool:
    """Rename the finished directory ``tmp`` to ``dest`` and fsync ``dest``'s parent.

    For directories whose content the caller already made durable (a
    materialized checkout, synced with syncfs). False, with ``tmp`` left for the
    caller to remove, when ``dest`` already exists (another process finished the
    same one first); any other failure raises.
    """
    try:
        os.rename(tmp, dest)
    except OSError:
        if not dest.exists():
            raise
        return False
    fsync_dir(dest.parent)
    return True


def rename_aside(path: Path, aside: Path) -> bool:
    """Rename the directory ``path`` to ``aside`` (beside it) to delete it; False if it was gone.

    The first step of removing a tree readers may be using: the rename is one
    step, so a reader sees the whole directory at ``path`` or nothing, never a
    tree half deleted. ``aside`` should be a name readers ignore (a
    ``.<name>.<pid>.<rand>.tmp``, which gc sweeps if the deletion is cut short);
    the caller then deletes it with :func:`force_remove`.
    """
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    return True


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *,
                 tmp_dir: Path | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably (:class:`DurableFile`).

    Readers see either the old file or the whole new one, never a part; after
    return the new content survives a crash. The temporary file is a hidden one
    beside ``path``, or in ``tmp_dir`` (same filesystem) for directories that must
    only ever hold final names (a store's ``packs/``).
    """
    prefix = path.name if tmp_dir is not None else "." + path.name
    with DurableFile(tmp_dir if tmp_dir is not None else path.parent, prefix, mode) as f:
        f.write(data)
        f.commit(path)


def replace_file(path: Path, data: bytes | Iterable[bytes], mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically but not durably: for derived data only.

    ``data`` is the bytes, or an iterable of pieces (a large file written as it
    is made; an exception from it leaves ``path`` as it was). Readers see the
    old file or the whole new one; after a crash the file may be the old one,
    the new one, or empty or torn (so its reader must treat a file that does
    not parse as absent). The temporary file is a hidden one beside ``path``,
    removed if the write fails.
    """
    tmp = path.parent / unique_tmp_name("." + path.name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            for piece in (data,) if isinstance(data, bytes) else data:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def force_remove(path: str | bytes | os.PathLike[str]) -> None:
    """Delete a tree made read-only (a materialized checkout), or a file; never follows links.

    Iterative, so a tree of any depth goes; errors are ignored (what could not be
    removed stays; callers that care check afterwards).
    """
    top = os.fsencode(path)
    try:
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            os.unlink(top)
            return
    except OSError:
        return
    stack: list[tuple[bytes, bool]] = [(top, False)]
    while stack:
        p, emptied = stack.pop()
        if emptied:
            with contextlib.suppress(OSError):
                os.rmdir(p)
            continue
        with contextlib.suppress(OSError):
            os.chmod(p, 0o755)  # a directory (scandir said so without following links)
        stack.append((p, True))
        try:
            with os.scandir(p) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append((e.path, False))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(e.path)
