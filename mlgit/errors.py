"""Every error git-ml raises on purpose, with its exit code.

Each class carries the exit code the CLI returns for it (``exit_code``) and
whether a traceback is worth showing (``traceback``: only for internal bugs).
Messages are one line, say what is wrong and, where there is one, how to fix it.
``docs/exit-codes.md`` is the table of these codes; keep the two in step
(``tests/test_docs.py`` checks they agree).

Every layer may import this module; it imports nothing from git-ml.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRevisionError",
    "BadPathError",
    "ConflictError",
    "CorruptObjectError",
    "FileChangedError",
    "FormatError",
    "GitCommandError",
    "MlgitError",
    "NotARepositoryError",
    "NotInitializedError",
    "PointerError",
    "RemoteAuthError",
    "RemoteError",
    "RemoteProtocolError",
    "RemoteRefusedError",
    "RemoteUnreachableError",
    "RevisionError",
    "UnsupportedFormatError",
    "UsageError",
    "VerificationError",
]


class MlgitError(Exception):
    """Base of every error git-ml raises on purpose; ``str()`` is one line."""

    exit_code = 1
    traceback = False


class NotARepositoryError(MlgitError):
    """The current directory (or the ``repo`` given) is not inside a git repository."""

    exit_code = 3


class NotInitializedError(MlgitError):
    """The repository has no sidecar store yet: ``git ml init`` was never run."""

    exit_code = 4


class RevisionError(MlgitError):
    """A revision names no snapshot (unknown name, unknown id, ``~N`` past the root)."""

    exit_code = 5


class AmbiguousRevisionError(RevisionError):
    """An id prefix matches more than one snapshot; the message lists them."""

    exit_code = 5


class BadPathError(MlgitError):
    """A path argument that cannot be used: missing, outside the work tree, in .git, tracked."""

    exit_code = 6


class FormatError(MlgitError):
    """Bytes that do not decode: a malformed object, pack, index, ref or config.

    Every decoder in :mod:`mlgit.format` raises this and only this on bad input.
    """

    exit_code = 7


class CorruptObjectError(FormatError):
    """An object's bytes do not hash to its id, or it is missing from the store."""

    exit_code = 7


class PointerError(FormatError):
    """A pointer file (``*.mlgit``) that does not parse, or that git-ml must not use.

    (Its data path breaks git's path rules or collides with another path, or the
    file is a symlink, FIFO, directory or too large.)
    """

    exit_code = 7


class UnsupportedFormatError(FormatError):
    """The store (or an object) was written by a newer git-ml format version.

    A FormatError too, so that "every decoder raises FormatError" still holds.
    """

    exit_code = 8


class UsageError(MlgitError):
    """An argument that is not usable as given (an invalid name, options that clash)."""

    exit_code = 2


class GitCommandError(MlgitError):
    """The git binary failed; ``stderr`` holds all it said."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class ConflictError(MlgitError):
    """A ref moved under us (compare-and-swap lost) or a lock is held by someone else."""

    exit_code = 9


class FileChangedError(MlgitError):
    """A file kept changing while it was being read; nothing of it was stored."""

    exit_code = 10


class RemoteError(MlgitError):
    """A remote store could not be used; the base of the four kinds below.

    Raised by the sync backends (:mod:`mlgit.sync`), never with ``RemoteError``
    itself: each failure is one of its subclasses, whose exit codes tell a script
    whether to retry (unreachable), fix credentials (authentication), or fix or
    upgrade the other side (protocol, refused).
    """

    exit_code = 11


class RemoteUnreachableError(RemoteError):
    """The remote cannot be reached, or the connection was lost or went silent.

    Connection refused, unknown host, no route, a timeout, a TLS failure, a
    session that dropped or stopped answering for ``ml.timeout`` seconds.
    Usually worth retrying once the network (or the URL) is fixed.
    """

    exit_code = 11


class RemoteAuthError(RemoteError):
    """The remote did not accept who we are: login, host key, credentials, access."""

    exit_code = 12


class RemoteProtocolError(RemoteError, FormatError):
    """The remote answered with something that is not git-ml's protocol.

    Garbage on the SSH channel (a shell startup file printing to standard output),
    a malformed answer, more or fewer bytes than asked for, an S3 service that
    ignored a ranged read. A FormatError too: bytes from outside that do not
    decode, so code that skips a bad remote file skips these the same way.
    """

    exit_code = 13


class RemoteRefusedError(RemoteError):
    """The remote was reached but refuses, or cannot carry out, what git-ml asks.

    git-ml missing or too old on the host, another protocol version, a failure
    on the server's side (its disk is full, an S3 error status), an S3-compatible
    service without the conditional writes git-ml needs for safe ref updates.
    """

    exit_code = 14


class VerificationError(MlgitError):
    """An adequacy test failed: the model did not give the outputs recorded with its samples.

    ``git ml verify`` (and ``git ml export``, which verifies what it wrote) raise
    it when a sample's output differs beyond the tolerance, an output is missing
    or has another shape, or the model cannot run the samples at all.
    """

    exit_code = 15
