"""Lock files (``<file>.lock``, created with O_EXCL), as git uses them."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mlgit.errors import ConflictError

__all__ = ["lock_file"]


@contextlib.contextmanager
def lock_file(path: Path, timeout: float = 10.0) -> Iterator[Path]:
    """Hold ``<path>.lock`` for the duration of the ``with`` block.

    Waits up to ``timeout`` seconds for another holder, then raises
    ConflictError naming the lock so a user can remove a stale one.
    """
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"{lock} is held by another process; if no git-ml is running, remove it"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
