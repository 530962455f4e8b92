"""Read-only checkouts (``checkouts/<id>/``): who is using them, when, what they cost, eviction.

Beside every checkout ``checkouts/<id>/`` lives ``checkouts/<id>.use``:

- **In use**: a process that was handed the checkout's path (``mlgit.checkout``)
  holds a shared ``flock(2)`` on ``<id>.use`` until it exits or releases it
  (:func:`release`); children it forks inherit the hold. A checkout is removed
  (by eviction or gc) only under an exclusive lock on that file, taken without
  waiting, so a checkout someone holds is never removed. A remover renames the
  directory aside and unlinks ``<id>.use`` before it drops the lock; a process
  that was waiting for the file then finds it is no longer the one at that
  name, and starts again with a new one (and materializes the checkout anew).
- **Last use**: the file's modification time, set on every hold (one
  ``futimens``): the least recently used checkout is evicted first.
- **Cost**: its content, the decimal number of bytes the checkout's files take
  that were written rather than reflinked (see :mod:`mlgit.store.reflink`),
  written once when the checkout is made. A checkout without one (made by an
  older git-ml) costs what its files' sizes add up to.

The budget (``ml.checkouts.maxSize``) bounds the sum of the costs: :func:`evict`
removes the least recently used checkouts no process holds until the sum fits.
Holds are per process (a table of open file descriptors, keyed by the file's
path), so this module keeps state for the life of the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.format.ids import is_hex_prefix
from mlgit.store.fsutil import force_remove, rename_aside, unique_tmp_name
from mlgit.store.lock import lock_fd

__all__ = ["USE_SUFFIX", "CheckoutUse", "EvictReport", "abandon", "checkout_name", "evict", "hold",
           "holding", "listing", "record_cost", "release", "remove_dead"]

USE_SUFFIX = ".use"
_COST_MAX = 32  # bytes of a cost record: a decimal number and a newline

_lock = threading.Lock()
_holds: dict[str, int] = {}  # str(<checkouts>/<id>.use) -> the descriptor holding it shared


def _is_name(name: str) -> bool:
    return len(name) == 32 and is_hex_prefix(name)


def _use_path(checkouts: Path, name: str) -> Path:
    return checkouts / (name + USE_SUFFIX)


def _same_file(fd: int, path: Path) -> bool:
    """True if the open file ``fd`` is still the file at ``path`` (not unlinked or replaced)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


def hold(checkouts: Path, name: str, timeout: float = 60.0) -> None:
    """Hold ``checkouts/<name>`` for this process (idempotent) and mark it used now.

    Returns once the hold is taken; the checkout itself may not exist yet (the
    caller materializes it while holding). Waits up to ``timeout`` seconds while
    a remover holds the file (ConflictError after that).
    """
    use = _use_path(checkouts, name)
    key = str(use)
    with _lock:
        fd = _holds.get(key)
    if fd is not None and _same_file(fd, use):
        _touch(fd)
        return
    while True:
        fd = os.open(use, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            lock_fd(fd, use, timeout, shared=True)
            if _same_file(fd, use):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed while we waited: start again with the new file
    _touch(fd)
    with _lock:
        old = _holds.pop(key, None)
        _holds[key] = fd
    if old is not None:
        os.close(old)


def _touch(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.utime(fd)


def holding(checkouts: Path, name: str) -> bool:
    """True if this process holds ``checkouts/<name>``."""
    with _lock:
        return str(_use_path(checkouts, name)) in _holds


def checkout_name(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """(the ``checkouts`` directory, the id) of a path inside ``checkouts/<id>``, or None."""
    p = Path(os.path.abspath(path))
    for d in (p, *p.parents):
        if d.parent.name == "checkouts" and _is_name(d.name):
            return d.parent, d.name
    return None


def release(path: str | os.PathLike[str]) -> bool:
    """Drop this process's hold on the checkout holding ``path``; True if there was one.

    The path stays valid until something evicts the checkout (the next eviction
    or gc that wants the space may).
    """
    found = checkout_name(path)
    if found is None:
        return False
    key = str(_use_path(*found))
    with _lock:
        fd = _holds.pop(key, None)
    if fd is None:
        return False
    os.close(fd)
    return True


def abandon(checkouts: Path, name: str) -> None:
    """Release this process's hold on ``name`` after making it failed; remove its ``.use`` file.

    The file goes only when no checkout ``name`` exists and no other process
    holds it, so a failed attempt leaves nothing behind.
    """
    release(checkouts / name)
    _remove_orphan_use(checkouts, name)


def record_cost(checkouts: Path, name: str, cost: int) -> None:
    """Write checkout ``name``'s cost (bytes written, not reflinked) into its held ``.use`` file."""
    with _lock:
        fd = _holds.get(str(_use_path(checkouts, name)))
    if fd is None:
        return
    data = f"{cost}\n".encode()
    with contextlib.suppress(OSError):
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))


@dataclass
class CheckoutUse:
    """One checkout: its id, when it was last used (Unix time) and its cost in bytes."""

    name: str
    last_used: float
    cost: int


def _read_cost(use: Path) -> int | None:
    try:
        fd = os.open(use, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, _COST_MAX + 1)
    finally:
        os.close(fd)
    if len(text) > _COST_MAX or not text.endswith(b"\n") or not text[:-1].isdigit():
        return None
    return int(text[:-1])


def _tree_bytes(top: Path) -> int:
    """The sizes of the regular files below ``top`` added up (iterative, no link followed)."""
    total = 0
    stack = [os.fsencode(top)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def listing(checkouts: Path) -> list[CheckoutUse]:
    """Every complete checkout, least recently used first."""
    try:
        names = os.listdir(checkouts)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not _is_name(name):
            continue
        use = _use_path(checkouts, name)
        try:
            when = os.lstat(use).st_mtime
        except FileNotFoundError:
            try:
                when = os.lstat(checkouts / name).st_mtime
            except FileNotFoundError:
                continue
        cost = _read_cost(use)
        out.append(CheckoutUse(name, when, cost if cost is not None
                               else _tree_bytes(checkouts / name)))
    out.sort(key=lambda c: (c.last_used, c.name))
    return out


def _remove(checkouts: Path, name: str, dry_run: bool = False) -> bool:
    """Remove checkout ``name`` unless a process holds it; True if it was (would be) removed."""
    use = _use_path(checkouts, name)
    try:
        fd = os.open(use, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    aside = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # in use
            raise
        if not _same_file(fd, use):
            return False
        if dry_run:
            return (checkouts / name).exists()
        aside = checkouts / unique_tmp_name(f".{name}")
        if not rename_aside(checkouts / name, aside):  # the tree is there whole, or gone
            aside = None
        os.unlink(use)
    finally:
        os.close(fd)  # the lock goes; a waiter finds its file unlinked and starts again
    if aside is not None:
        force_remove(aside)
    return aside is not None


@dataclass
class EvictReport:
    """What :func:`evict` did (or would do): checkouts removed, bytes freed, what is left."""

    evicted: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    total_bytes: int = 0
    budget: int = 0
    held: int = 0  # checkouts over the budget that were not evicted because they are in use

    @property
    def over(self) -> bool:
        """True if the checkouts still cost more than the budget (those left are in use)."""
        return 0 < self.budget < self.total_bytes


def evict(checkouts: Path, budget: int, *, keep: Iterable[str] = (),
          dry_run: bool = False) -> EvictReport:
    """Remove the least recently used checkouts until their costs fit in ``budget`` bytes.

    ``budget`` 0 or less: no limit. Checkouts a process holds (this one
    included) and those in ``keep`` stay; if they alone cost more than the
    budget, :attr:`EvictReport.over` says so. ``dry_run`` removes nothing and
    reports what would go.
    """
    uses = listing(checkouts)
    report = EvictReport(total_bytes=sum(u.cost for u in uses), budget=budget)
    if budget <= 0 or report.total_bytes <= budget:
        return report
    kept = set(keep)
    for u in uses:
        if report.total_bytes <= budget:
            break
        if u.name in kept:
            continue
        if _remove(checkouts, u.name, dry_run):
            report.evicted.append(u.name)
            report.freed_bytes += u.cost
            report.total_bytes -= u.cost
        else:
            report.held += 1
    return report


def remove_dead(checkouts: Path, live: Callable[[str], bool], prune_before: float) -> int:
    """Remove checkouts of ids ``live`` says nothing reaches, and leftovers; return how many.

    Leftovers: a ``.<id>.*.tmp`` directory (a checkout being built, or one renamed
    aside by a removal that was cut short) and a ``<id>.use`` file with no
    checkout, older than ``prune_before``. A checkout a process holds stays,
    dead or not.
    """
    removed = 0
    try:
        names = os.listdir(checkouts)
    except FileNotFoundError:
        return 0
    present = set(names)
    for name in names:
        path = checkouts / name
        try:
            old = os.lstat(path).st_mtime < prune_before
        except FileNotFoundError:
            continue
        if name.startswith("."):
            if old:
                force_remove(path)
                removed += 1
        elif _is_name(name):
            if not live(name) and _remove(checkouts, name):
                removed += 1
        elif name.endswith(USE_SUFFIX) and _is_name(name[:-len(USE_SUFFIX)]) and old and (
                name[:-len(USE_SUFFIX)] not in present):
            removed += _remove_orphan_use(checkouts, name[:-len(USE_SUFFIX)])
    return removed


def _remove_orphan_use(checkouts: Path, name: str) -> int:
    """Unlink ``<name>.use`` when it has no checkout and no process holds it."""
    use = _use_path(checkouts, name)
    try:
        fd = os.open(use, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0
        if not _same_file(fd, use) or (checkouts / name).exists():
            return 0
        os.unlink(use)
        return 1
    finally:
        os.close(fd)

