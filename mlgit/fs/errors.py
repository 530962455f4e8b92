"""git-ml's errors as the exceptions fsspec users catch (``OSError`` and its kinds).

fsspec's callers (pandas, PyArrow, Dask, ``fsspec.open``) handle a missing file
as ``FileNotFoundError``, a refusal as ``PermissionError`` and any other I/O
failure as ``OSError``; they know nothing of :class:`~mlgit.errors.MlgitError`.
:func:`os_error` turns one into the other, with the ``mlgit://`` URL as the
``filename`` and git-ml's one-line message as the ``strerror``; the original
stays the ``__cause__``. The table (docs/reading-data.md, "Errors"):

==========================================  =========================================
git-ml error                                raised as
==========================================  =========================================
RevisionError (unknown, ambiguous, ``~N``)  FileNotFoundError (ENOENT)
BadPathError                                FileNotFoundError (ENOENT)
NotARepositoryError, NotInitializedError    FileNotFoundError (ENOENT)
RemoteUnreachableError                      ConnectionError (ECONNREFUSED)
RemoteAuthError                             PermissionError (EACCES)
RemoteProtocolError, RemoteRefusedError     OSError (EPROTO, EIO)
FormatError, CorruptObjectError             OSError (EIO): data that failed its checks
ConflictError                               OSError (EBUSY)
UsageError                                  ValueError (an option that cannot be used)
anything else                               OSError (EIO)
==========================================  =========================================

Writing is refused with :class:`ReadOnlyError`, which is both a
``PermissionError`` (``EROFS``, as the kernel answers a write to a read-only
mount) and a ``NotImplementedError`` (what fsspec's own read-only filesystems,
``tar``, ``libarchive``, ``github``, raise for a write).
"""

from __future__ import annotations

import errno

from mlgit.errors import (
    BadPathError,
    ConflictError,
    MlgitError,
    NotARepositoryError,
    NotInitializedError,
    RemoteAuthError,
    RemoteProtocolError,
    RemoteUnreachableError,
    RevisionError,
    UsageError,
)

__all__ = ["ReadOnlyError", "os_error", "read_only"]


class ReadOnlyError(PermissionError, NotImplementedError):
    """A write to the read-only ``mlgit://`` filesystem (``errno.EROFS``)."""


def read_only(what: str, path: str = "") -> ReadOnlyError:
    """The error for a write (``what``: ``open for writing``, ``rm``...) to ``path``."""
    return ReadOnlyError(errno.EROFS, f"the mlgit:// filesystem is read-only: cannot {what}",
                         path or "mlgit://")


def os_error(err: MlgitError, url: str) -> OSError | ValueError:
    """``err`` as the exception fsspec's callers expect (see the module's table)."""
    message = str(err)
    if isinstance(err, (RevisionError, BadPathError, NotARepositoryError, NotInitializedError)):
        return FileNotFoundError(errno.ENOENT, message, url)
    if isinstance(err, RemoteUnreachableError):
        return ConnectionError(errno.ECONNREFUSED, message, url)
    if isinstance(err, RemoteAuthError):
        return PermissionError(errno.EACCES, message, url)
    if isinstance(err, RemoteProtocolError):
        return OSError(errno.EPROTO, message, url)
    if isinstance(err, ConflictError):
        return OSError(errno.EBUSY, message, url)
    if isinstance(err, UsageError):
        return ValueError(f"{url}: {message}")
    return OSError(errno.EIO, message, url)
