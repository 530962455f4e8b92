"""Reflinks: a copy of a file that shares its blocks with the original (``ioctl(FICLONE)``).

On filesystems that support it (XFS with ``reflink=1``, Btrfs, bcachefs, OCFS2,
ZFS 2.2+) a reflinked copy costs no data blocks until one side is written to; the
filesystem then copies only what changed. git-ml uses it where a file it must
write already exists on disk with the same content (a work tree and a read-only
checkout of the same version), and falls back to writing the bytes everywhere
else. Elsewhere (ext4, tmpfs, a source on another filesystem) the ioctl fails
with ``EOPNOTSUPP``, ``ENOTTY``, ``EXDEV`` or ``EINVAL``: that is an answer, not
an error, and the caller writes the bytes itself. A filesystem that said it
cannot clone is remembered (per device, for the life of the process), so the
ioctl is not tried again for every file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from pathlib import Path

from mlgit.store.fsutil import unique_tmp_name

__all__ = ["FICLONE", "clone_fd", "known_unsupported", "probe"]

FICLONE = 0x40049409
"""``_IOW(0x94, 9, int)`` from ``<linux/fs.h>``: clone all of the source into the target."""

# The filesystem cannot clone at all: remembered per device.
_CANNOT = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS})
# Not for this pair of files (another filesystem, a file the filesystem will not share
# blocks of, a target it will not change): fall back for this file only.
_NOT_HERE = frozenset({errno.EXDEV, errno.EINVAL, errno.EPERM, errno.ETXTBSY})

_lock = threading.Lock()
_unsupported: set[int] = set()
_probed: dict[int, bool] = {}


def known_unsupported(path: str | os.PathLike[str]) -> bool:
    """True if a clone into the filesystem holding ``path`` already failed in this process."""
    with _lock:
        return os.stat(path).st_dev in _unsupported


def clone_fd(src: int, dst: int) -> bool:
    """Make the regular file ``dst`` (open for writing, empty) a reflink of ``src``.

    True when it did. False when the filesystem cannot (``dst`` is then unchanged
    and the caller writes the bytes itself); any other failure (``ENOSPC``,
    ``EIO``...) raises OSError as a write would.
    """
    if sys.platform != "linux":
        return False
    import fcntl  # not on every platform

    dev = os.fstat(dst).st_dev
    with _lock:
        if dev in _unsupported:
            return False
    try:
        fcntl.ioctl(dst, FICLONE, src)
    except OSError as e:
        if e.errno in _CANNOT:
            with _lock:
                _unsupported.add(dev)
            return False
        if e.errno in _NOT_HERE:
            return False
        raise
    return True


def probe(directory: Path) -> bool:
    """Whether files in ``directory`` (writable) can be reflinked to each other.

    Tried once per filesystem per process with two one-byte files created in
    ``directory`` and removed at once.
    """
    if sys.platform != "linux":
        return False
    dev = os.stat(directory).st_dev
    with _lock:
        known = _probed.get(dev)
        if known is not None or dev in _unsupported:
            return bool(known) and dev not in _unsupported
    src_path = directory / unique_tmp_name(".reflink-probe")
    dst_path = directory / unique_tmp_name(".reflink-probe")
    ok = False
    try:
        src = os.open(src_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(src, b"\0")
            dst = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                ok = clone_fd(src, dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    except OSError:
        ok = False
    finally:
        for p in (src_path, dst_path):
            with contextlib.suppress(OSError):
                os.unlink(p)
    with _lock:
        _probed[dev] = ok
    return ok
