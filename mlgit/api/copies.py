"""Read-only copies without a copy too many: the work tree's own copy, reflinks, the budget.

``mlgit.checkout(rev)`` needs a directory holding version ``rev``. In order:

1. **The work tree's own copy**, when a tracked path's pointer pins exactly that
   version and the path is clean (it hashes to the snapshot's tree, as
   ``git ml status`` decides, trusting the stat cache as status does). It is the
   user's data: the caller must treat it as read-only, and it changes when the
   work tree does (``git ml checkout`` of another version, an edit). Not for
   checkpoints, which no pointer tracks, nor with ``worktree=False``.
2. **A read-only checkout** ``checkouts/<id>/``: held for this process
   (:func:`mlgit.store.checkouts.hold`) so no eviction or gc removes it while
   the process runs; made once, with every file whose content a tracked work
   tree path holds (vouched by its stat cache) reflinked where the filesystem
   can, so a checkout of the version in the work tree costs no data blocks.
3. Making a new checkout may pass the **budget** ``ml.checkouts.maxSize`` (git
   config; a size as git reads one: ``10g``, ``512m``; ``0``: no limit; default
   10 GiB): the least recently used checkouts no process holds are evicted until
   the costs (bytes written, not reflinked) fit. ``git ml gc`` evicts the same way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from mlgit.api.events import Events
from mlgit.errors import GitCommandError, MlgitError, UsageError
from mlgit.format.ids import ObjectID, hex_to_raw, raw_to_hex
from mlgit.format.pointer import Pointer
from mlgit.format.snapshot import KIND_DATASET, ROOT_FILE, Snapshot
from mlgit.gitlink.pointers import tracked_path_for
from mlgit.snapshot import statcache
from mlgit.snapshot.build import build_tree
from mlgit.snapshot.reuse import Reuse
from mlgit.store import checkouts
from mlgit.store.checkouts import EvictReport
from mlgit.store.reflink import probe

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["DEFAULT_MAX_SIZE", "MAX_SIZE_KEY", "enforce_budget", "materialize", "max_size",
           "release", "update_reuse", "worktree_copy", "worktree_reuse"]

MAX_SIZE_KEY = "ml.checkouts.maxSize"
DEFAULT_MAX_SIZE = 10 << 30


def max_size(repo: Core) -> int:
    """The budget of read-only checkouts in bytes (``ml.checkouts.maxSize``); 0: no limit.

    Read as git reads an integer (``k``, ``m``, ``g`` suffixes, powers of 1024).
    A value git cannot read, or a negative one, is a UsageError naming the key.
    """
    try:
        text = repo.git.run_git("config", "--int", "--get", MAX_SIZE_KEY).decode().strip()
    except GitCommandError as e:
        if "bad numeric" in e.stderr or "invalid unit" in e.stderr:
            raise UsageError(f"git config {MAX_SIZE_KEY} must be a size like 10g, 512m, or 0 "
                             "for no limit") from None
        return DEFAULT_MAX_SIZE
    value = int(text)
    if value < 0:
        raise UsageError(f"git config {MAX_SIZE_KEY} must be a size like 10g, 512m, or 0 for "
                         f"no limit, not {value}")
    return value


def worktree_copy(repo: Core, rev: str) -> Path | None:
    """The work tree path holding version ``rev`` of a dataset, clean, or None.

    Only what is here is looked at (nothing is fetched): a revision that does not
    resolve locally, a checkpoint, or no tracked path that pins exactly that
    version and is clean gives None, and the caller makes a read-only checkout.
    """
    work = repo.git.workdir
    if work is None:
        return None
    try:
        oid = repo.resolve(rev)
        if not repo.store.objects.has_committed(hex_to_raw(oid)):
            return None
        snap = repo.snapshot(oid)
    except MlgitError:
        return None
    if snap.kind != KIND_DATASET:
        return None
    for pointer_rel, p in repo.tracked(Events()):
        if p.id == oid:
            full = work / tracked_path_for(pointer_rel)
            if _clean(repo, full, snap):
                return full
    return None


def _clean(repo: Core, full: Path, snap: Snapshot) -> bool:
    """True if ``full`` holds exactly ``snap``'s tree (a dry build, trusting the stat cache)."""
    is_file = snap.root == ROOT_FILE
    try:
        mode = os.lstat(full).st_mode
    except OSError:
        return False
    if not (stat.S_ISREG(mode) if is_file else stat.S_ISDIR(mode)):
        return False
    store = repo.store
    old = statcache.load(statcache.cache_path(store.cache_dir, full))
    try:
        built = build_tree(store, os.fsencode(full), is_file=is_file, old=old, dry=True)
    except (MlgitError, OSError):
        return False
    return raw_to_hex(built.root) == snap.tree


def worktree_reuse(repo: Core, *, skip: Path | None = None,
                   tracked: list[tuple[str, Pointer]] | None = None) -> Reuse | None:
    """A :class:`Reuse` over the tracked work tree paths with a stat cache (but ``skip``).

    None when the store's filesystem cannot reflink (probed once per process).
    Stat caches are read only when a write needs them. ``tracked``: the pointers,
    if the caller has them.
    """
    store = repo.store
    work = repo.git.workdir
    if work is None or not probe(store.tmp_dir):
        return None
    reuse = Reuse(store.objects.get_tree, store.tmp_dir)
    for pointer_rel, _ in tracked if tracked is not None else repo.tracked(Events()):
        full = work / tracked_path_for(pointer_rel)
        if full == skip:
            continue
        reuse.worktree(full, statcache.cache_path(store.cache_dir, full),
                       is_file=os.path.isfile(full))
    return reuse


def update_reuse(repo: Core, target: Path, oid: ObjectID, snap: Snapshot,
                 tracked: list[tuple[str, Pointer]]) -> Reuse | None:
    """What updating the work tree path ``target`` to ``oid`` can reflink.

    The read-only checkout of ``oid`` if there is one, and the other tracked
    paths (``tracked``) of the work tree; None when the filesystem cannot reflink.
    """
    reuse = worktree_reuse(repo, skip=target, tracked=tracked)
    if reuse is None:
        return None
    made = repo.store.checkouts_dir / oid
    if made.is_dir():
        reuse.checkout(made, hex_to_raw(snap.tree))
    return reuse


def materialize(repo: Core, oid: ObjectID, snap: Snapshot, ev: Events,
                label: str | None = None) -> Path:
    """``checkouts/<oid>``, held for this process; made (reflinking what it can) if absent.

    A checkout made here is recorded with its cost, and the budget enforced
    (:func:`enforce_budget`) with it kept.
    """
    from mlgit.snapshot.materialize import (
        materialize_readonly,  # imported when used: start-up time
    )
    store = repo.store
    where = store.checkouts_dir
    checkouts.hold(where, oid)
    try:
        fresh = not (where / oid).exists()
        budget = max_size(repo) if fresh else 0  # a bad setting: refused before anything is made
        reuse = worktree_reuse(repo) if fresh else None
        ev.start(f"materializing {label or snap.name}", snap.files, snap.bytes)
        try:
            path = materialize_readonly(store, oid, snap, progress=ev.advance, reuse=reuse)
        finally:
            ev.finish()
    except BaseException:
        checkouts.abandon(where, oid)  # nothing left behind
        raise
    if fresh:
        checkouts.record_cost(where, oid, snap.bytes - (reuse.cloned_bytes if reuse else 0))
        enforce_budget(repo, ev, keep=(oid,), budget=budget)
    return path


def enforce_budget(repo: Core, ev: Events, *, keep: tuple[str, ...] = (),
                   dry_run: bool = False, budget: int | None = None) -> EvictReport:
    """Evict least recently used checkouts until they fit ``ml.checkouts.maxSize``.

    ``budget`` (bytes) overrides the setting. Warns (``ev.warn``) when those left
    still cost more: they are in use by running processes, or in ``keep``.
    """
    budget = max_size(repo) if budget is None else budget
    report = checkouts.evict(repo.store.checkouts_dir, budget, keep=keep, dry_run=dry_run)
    if report.over and not dry_run:
        ev.warn(f"read-only checkouts take {_size(report.total_bytes)}, more than "
                f"{MAX_SIZE_KEY} ({_size(budget)}): those left are in use "
                f"(`git config {MAX_SIZE_KEY}` sets the budget)")
    return report


def release(path: str | os.PathLike[str]) -> bool:
    """Drop this process's hold on the read-only checkout holding ``path``; True if held."""
    return checkouts.release(path)


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"
