"""Durable file writes: write to a temporary file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["atomic_write", "force_remove", "fsync_dir", "unique_tmp_name"]


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


def force_remove(path: str | os.PathLike[str]) -> None:
    """Delete a directory tree made read-only (a materialized checkout); never follows links."""
    for dirpath, dirnames, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    shutil.rmtree(path, ignore_errors=True)
