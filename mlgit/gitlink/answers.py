"""Remembered answers: a read-only command's output, valid while what it read is unchanged.

``git ml status`` and ``git ml add PATH`` with nothing changed print the same
lines each time, and what they print depends on a known, small set of files:
the git index, the pointer files, the stat caches, a ref, a ``.gitignore``.
:func:`remember` keeps the output with the ``lstat`` of each such file (a
*witness*) and the stat indexes to check with git (:mod:`.statindex`);
:func:`recall` gives the output back only while every witness has exactly the
recorded stat and git finds every tracked path unchanged. Anything else
(another key, a changed or missing witness, a record that does not parse)
answers None and the command does its work.

Witness kinds: ``CONTENT`` compares device, inode, mode, size, mtime and ctime
(a file written again, even in place, has a new ctime); ``PLACE`` compares
device, inode and mode only (a directory on the way to a file, which must stay
the same directory but may gain entries).

Racy witnesses (git's "racy git" problem): a file changed within a timestamp
tick of being read could keep its stat. :func:`remember` records nothing when a
content witness's mtime or ctime is not older than the command's start by
:data:`RACY_NS` (by :data:`COARSE_RACY_NS` for whole-second timestamps). The
next run remembers it.

Records live in ``<cache dir>/answers/``; they are derived data, written
atomically but not durably. Imports nothing but :mod:`os` and
:mod:`.statindex`: this is on the start-up path.
"""

from __future__ import annotations

import os
import zlib

from mlgit.format.racy import COARSE_RACY_NS, RACY_NS, is_racy
from mlgit.gitlink.statindex import unchanged

__all__ = ["COARSE_RACY_NS", "CONTENT", "MAX_RECORD_LEN", "PLACE", "RACY_NS", "FilesChanged",
           "recall", "record_path", "remember"]

CONTENT = b"c"
PLACE = b"p"
MAX_RECORD_LEN = 16 << 20
_MAGIC = b"mlgit-answer 2"


class FilesChanged(Exception):
    """:func:`recall`: every witness holds, but git finds a tracked path's files changed.

    The remembered answer is void, and so would be any answer that vouches for
    the files from their stat: the caller can go straight to the whole work.
    """


def record_path(cache_dir: str, key: bytes) -> str:
    """Where the answer for ``key`` is kept (the key itself is stored and compared too)."""
    return os.path.join(cache_dir, "answers", f"{zlib.crc32(key):08x}")


def _signature(kind: bytes, st: os.stat_result) -> bytes:
    if kind == PLACE:
        return b"%d %d %d" % (st.st_dev, st.st_ino, st.st_mode)
    return b"%d %d %d %d %d %d" % (st.st_dev, st.st_ino, st.st_mode, st.st_size,
                                   st.st_mtime_ns, st.st_ctime_ns)


def remember(cache_dir: str, key: bytes, witnesses: list[tuple[bytes, str]],
             checks: list[tuple[str, str]], output: bytes, started_ns: int,
             checked: dict[str, os.stat_result] | None = None) -> bool:
    """Keep ``output`` as the answer for ``key`` while ``witnesses`` and ``checks`` hold.

    ``witnesses`` are ``(CONTENT or PLACE, absolute path)``, ``checks`` the
    ``(stat index, tracked path)`` pairs :func:`recall` asks git about. Call it
    after working out ``output`` from those files, with ``started_ns`` the
    wall-clock time before any of them was read. Records nothing (False) if a
    witness is missing or racy; an old record for ``key`` is removed first
    either way. ``checked`` maps files to their ``lstat`` taken before they
    were read (each stat index before git checked it, git's index before
    anything read it): content witnesses too, with no racy rule, for files
    whose writers replace them (a new inode) and never write them in place.

    :func:`recall` asks git only whether each listed file kept its stat
    (``others=False``): every directory of a tracked path must be a CONTENT
    witness (an entry added or removed changes the directory's mtime), and
    the caller must have found with the full check that the stat index lists
    every file there is.
    """
    path = record_path(cache_dir, key)
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.unlink(path)
    except FileNotFoundError:
        pass
    checked = checked or {}
    fields = [_MAGIC, key, b"%d" % (len(witnesses) + len(checked))]
    for kind, wpath in witnesses:
        try:
            st = os.lstat(wpath)
        except OSError:
            return False
        if kind == CONTENT and is_racy(st.st_mtime_ns, st.st_ctime_ns, started_ns):
            return False
        fields += [kind, os.fsencode(wpath), _signature(kind, st)]
    for wpath, st in checked.items():
        fields += [CONTENT, os.fsencode(wpath), _signature(CONTENT, st)]
    fields.append(b"%d" % len(checks))
    for index_file, rel in checks:
        fields += [os.fsencode(index_file), os.fsencode(rel)]
    fields.append(output)
    data = b"".join(b"%d:%s," % (len(f), f) for f in fields)
    if len(data) > MAX_RECORD_LEN:
        return False
    from pathlib import Path

    from mlgit.store.fsutil import replace_file  # (not on the recall path's start-up)

    os.makedirs(os.path.dirname(path), exist_ok=True)
    replace_file(Path(path), data)
    return True


def recall(cache_dir: str, key: bytes, git_dir: str, work_tree: str,
           env: dict[str, str]) -> bytes | None:
    """The output remembered for ``key`` if every witness and git check still holds; else None.

    ``git_dir`` and ``work_tree`` are the repository's (this work tree's git
    dir), ``env`` the environment git runs in. FilesChanged when only the git
    check fails (or git cannot run).
    """
    try:
        fd = os.open(record_path(cache_dir, key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, MAX_RECORD_LEN + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        fields = _split(data)
        it = iter(fields)
        if next(it) != _MAGIC or next(it) != key:
            return None
        for _ in range(int(next(it))):
            kind, wpath, sig = next(it), next(it), next(it)
            if kind not in (CONTENT, PLACE) or _signature(kind, os.lstat(wpath)) != sig:
                return None
        checks = [(os.fsdecode(next(it)), os.fsdecode(next(it))) for _ in range(int(next(it)))]
        output = next(it)
        if next(it, None) is not None:
            return None
    except (StopIteration, ValueError, OSError):
        return None
    if checks and not unchanged(checks, git_dir, work_tree, env, others=False):
        raise FilesChanged(key)
    return output


def _split(data: bytes) -> list[bytes]:
    """The fields of a record (``<len>:<bytes>,`` each); ValueError if malformed or too long."""
    if len(data) > MAX_RECORD_LEN:
        raise ValueError("record too long")
    out = []
    pos = 0
    while pos < len(data):
        colon = data.index(b":", pos, pos + 12)
        n = int(data[pos:colon])
        end = colon + 1 + n
        if n < 0 or data[end:end + 1] != b",":
            raise ValueError("bad field")
        out.append(data[colon + 1:end])
        pos = end + 1
    return out
