"""Files on disk: durable writes and bounded reads of files that may be hostile.

Writes go to a temporary file, fsync, rename, fsync the directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from mlgit.errors import FormatError

__all__ = ["atomic_write", "force_remove", "fsync_dir", "open_regular", "read_bounded",
           "unique_tmp_name"]


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


def unique_tmp_name(prefix: str) -> str:
    """A file name no other process or thread will pick: prefix, pid and random hex."""
    return f"{prefix}.{os.getpid()}.{os.urandom(6).hex()}.tmp"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Readers see either the old file or the whole new one, never a part; after
    return the new content survives a crash.
    """
    tmp = path.parent / unique_tmp_name("." + path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb", closefd=True) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


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
