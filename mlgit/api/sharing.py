"""Clones that share one object store on a machine (``git ml init --shared PATH``).

See :mod:`mlgit.store.shared` for the layout. What this module decides:

- **Where objects go**: into the shared store. A clone that joins moves its own
  packs there; afterwards every pack any of its commands writes (``add``,
  ``commit-ckpt``, ``fetch``...) is committed to the shared ``packs/``, after the
  same deduplication against everything already there. So two clones that add
  the same data store it once. (A clone keeping its objects locally and only
  reading the shared store, as git's alternates do, would store the second
  clone's copy again.)
- **gc never drops what another clone needs**: gc in any clone holds the
  shared store's ``gc.lock`` exclusively (every writer of every clone holds it
  shared) and marks from the roots of every registered clone, each read
  through that clone's own repository (its refs, commits, work tree pointers and
  notes). If one cannot be read (its directory is gone or unmounted, its entry
  is damaged, git refuses it), gc prunes nothing in the shared store and says
  why; ``git ml gc --forget-clone PATH`` drops the entry of a clone that was
  deleted. An entry whose clone exists but no longer uses this shared store is
  dropped by gc on its own.
- ``ml.sharedStore`` (git config, say in ``~/.gitconfig`` of a training box): the
  shared store that ``git ml init`` (and so ``git ml pull`` in a fresh clone)
  joins when it creates a store.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgit.api.core import Core, main_worktree
from mlgit.errors import GitCommandError, MlgitError, NotARepositoryError, UsageError
from mlgit.format.config import FORMAT_SHARED, encode_config
from mlgit.format.ids import RawObjectID
from mlgit.store import shared
from mlgit.store.fsutil import atomic_write
from mlgit.store.lock import lock_file

__all__ = ["SHARED_STORE_KEY", "JoinResult", "check_target", "configured", "forget_clones",
           "join", "others_live"]

SHARED_STORE_KEY = "ml.sharedStore"


@dataclass
class JoinResult:
    """What :func:`join` did: the shared store, whether it was made, packs moved into it."""

    shared: Path
    created: bool = False
    joined: bool = True  # False: this clone already used it
    packs_moved: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"shared": str(self.shared), "created": self.created, "joined": self.joined,
                "packs_moved": self.packs_moved}


def configured(repo: Core) -> str | None:
    """``ml.sharedStore`` from git's config (never from the committed settings file), or None."""
    try:
        value = repo.git.run_git("config", "--path", "--get", SHARED_STORE_KEY).decode().strip()
    except GitCommandError:
        return None
    return value or None


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def join(repo: Core, path: str | os.PathLike[str]) -> JoinResult:
    """Make this clone keep its objects in the shared store at ``path`` (made if absent).

    Moves the clone's packs there, records the clone in the store's registry and
    its config (format 2, ``shared``; the shared store's chunker settings, so the
    same data is cut the same way in every clone). Runs while this clone's
    writers are held off (its ``gc.lock``) and holds the shared store's lock as a
    writer. Harmless to repeat. A UsageError, changing nothing, for a clone that
    already shares another store, and for a ``path`` that is inside this
    repository's git directory, is another clone's own store, or is a non-empty
    directory that is not a shared store.
    """
    target = check_target(repo, path)
    store = repo.store
    if store.shared is not None:
        if not _same(store.shared, target):
            raise UsageError(f"this clone already keeps its objects in the shared store "
                             f"{store.shared}; it cannot move to {target}")
        repo.register_shared()
        return JoinResult(store.shared, joined=False)
    config, created = shared.create(target, store.config)
    with lock_file(store.root / "gc", timeout=600.0), \
            lock_file(target / "gc", timeout=600.0, shared=True):
        shared.register(target, repo.git.ml_dir, main_worktree(repo.git))
        joined = dataclasses.replace(store.config, format=FORMAT_SHARED, shared=str(target),
                                     chunk_min=config.chunk_min, chunk_avg=config.chunk_avg,
                                     chunk_max=config.chunk_max)
        atomic_write(store.root / "config", encode_config(joined))
        moved = shared.adopt_packs(store.root / "packs", target / "packs", target / "tmp")
    repo.close()  # the next use opens the store anew, sharing
    return JoinResult(target, created=created, packs_moved=len(moved))


def check_target(repo: Core, path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute; UsageError unless it may become (or is) a shared store here."""
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    git_dir = repo.git.git_dir.resolve()
    real = target.resolve()
    if real == git_dir or git_dir in real.parents:
        raise UsageError(f"{target} is inside this repository's git directory; a shared store "
                         "lives outside every clone")
    if (target / "refs").exists() or (target / "checkouts").exists():
        raise UsageError(f"{target} is a clone's own git-ml store, not a shared store")
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is not a directory")
    if target.is_dir() and not (target / "config").exists() and any(target.iterdir()):
        raise UsageError(f"{target} is neither a shared store nor empty; give a new or empty "
                         "directory")
    return target


def others_live(repo: Core, roots: Callable[[Core], list[tuple[str, str]]], *,
                dry_run: bool = False) -> set[RawObjectID] | str:
    """Every object the other clones of this clone's shared store need; or why it is unknown.

    Called by gc under the shared store's lock. Each registered clone is opened
    as a repository and marked from its own roots through its own store (which
    also reads its own ``packs/``). An entry whose clone exists but does not use
    this shared store is dropped (unless ``dry_run``). A clone that cannot be
    read makes the answer a reason (a string), and gc then prunes nothing shared.
    ``roots`` gives a clone's gc roots as (hex id, role) pairs.
    """
    from mlgit.store.gc import mark  # imported when used: start-up time

    store = repo.store
    root = store.shared
    assert root is not None
    me = repo.git.ml_dir
    live: set[RawObjectID] = set()
    for c in shared.clones(root):
        if c.ml is None:
            return (f"{c.problem}; remove it with `git ml gc --forget-clone {c.key}` if no "
                    "clone uses it")
        if _same(c.ml, me):
            continue
        shown = c.worktree or c.ml.parent
        if not c.ml.is_dir():
            return (f"the clone at {shown}, registered in the shared store {root}, is missing "
                    f"(deleted, or on a disk not mounted); if it was deleted: "
                    f"`git ml gc --forget-clone {shown}`")
        try:
            with _open_clone(c.ml, c.worktree) as other:
                if other.store.shared is None or not _same(other.store.shared, root):
                    if not dry_run:
                        shared.forget(root, c.key)  # it left this shared store
                    continue
                live |= mark(other.store, roots(other))
        except (MlgitError, OSError) as e:
            return f"the clone at {shown} cannot be read: {e}"
    return live


def _open_clone(ml: Path, worktree: Path | None) -> Core:
    """The repository whose store is ``ml``: from its work tree if it has one, else its git dir."""
    for start in (worktree, ml.parent):
        if start is not None and start.is_dir():
            other = Core(start)
            if _same(other.git.ml_dir, ml):
                return other
            other.close()
    raise NotARepositoryError(f"no repository keeps its git-ml store in {ml}")


def forget_clones(repo: Core, which: list[str], *, dry_run: bool = False) -> list[str]:
    """Drop registry entries of this clone's shared store: by clone path or entry key.

    A path names a clone's work tree, git directory or ``.git/ml`` as registered.
    Returns the keys dropped (with ``dry_run``, that would be; nothing changes); a
    UsageError, changing nothing, when this clone shares no store or a name
    matches no entry (or names this clone).
    """
    store = repo.store
    root = store.shared
    if root is None:
        raise UsageError("--forget-clone: this clone does not share a store")
    entries = shared.clones(root)
    keys = []
    for name in which:
        absolute = Path(os.path.abspath(os.path.expanduser(name)))
        match = [c.key for c in entries if c.key == name or (c.ml is not None and absolute in (
            c.ml, c.ml.parent, c.worktree))]
        if not match:
            raise UsageError(f"--forget-clone {name}: no clone of the shared store {root} is "
                             "registered under that path or key")
        mine = shared.entry_key(repo.git.ml_dir)
        if mine in match:
            raise UsageError(f"--forget-clone {name}: that is this clone")
        keys += match
    for k in [] if dry_run else keys:
        shared.forget(root, k)
    return keys
