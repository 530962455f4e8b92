"""Advisory locks: ``flock(2)`` on a ``<file>.lock`` beside the file they guard.

The kernel releases a lock when its holder dies, so a crash (kill -9, power
loss) never leaves a stale lock behind, unlike git's ``O_EXCL`` lock files.
Lock files are never deleted: deleting one while another process waits on it
would let two processes believe they hold the lock. Their names end in
``.lock``, which no ref name may, so they are never mistaken for refs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlgit.errors import ConflictError

__all__ = ["lock_fd", "lock_file", "reader_lock"]


@contextlib.contextmanager
def lock_file(path: Path, timeout: float = 10.0, shared: bool = False) -> Iterator[Path]:
    """Hold a lock on ``<path>.lock`` for the duration of the ``with`` block.

    Exclusive by default; ``shared`` locks coexist with each other but not with
    an exclusive one. Waits up to ``timeout`` seconds, then raises ConflictError.
    """
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait(fd, lock, timeout, shared)
        yield lock
    finally:
        os.close(fd)  # releases the lock


def lock_fd(fd: int, lock: Path, timeout: float, shared: bool) -> None:
    """Take ``flock(2)`` on the open file ``fd`` (the file ``lock``), waiting up to ``timeout`` s.

    For a lock held longer than a ``with`` block. ConflictError after the timeout.
    """
    _wait(fd, lock, timeout, shared)


def _wait(fd: int, lock: Path, timeout: float, shared: bool) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"{lock} is held by another git-ml process; try again when it is done"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


@contextlib.contextmanager
def reader_lock(path: Path, timeout: float = 600.0) -> Iterator[Callable[[], bool]]:
    """Hold ``<path>.lock`` shared, for a reader that needs what exclusive holders delete.

    Yields ``alone()``, which tells whether no other process holds the lock at
    that moment: it tries to take the lock exclusively without waiting. A failed
    try may leave the lock released (``flock(2)`` converts by unlocking first),
    so call it last, once nothing needs the shared lock any more; a successful one
    holds the lock exclusively until the block ends. When the lock file cannot be
    created (a read-only store) nothing is held and ``alone()`` says True.
    Waits up to ``timeout`` seconds for the shared lock, then raises ConflictError.
    """
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield lambda: True
        return

    def alone() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _wait(fd, lock, timeout, shared=True)
        yield alone
    finally:
        os.close(fd)
