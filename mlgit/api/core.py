"""The small core every git-ml verb works on: one repository, its store, its revisions.

:class:`Core` is what the verb modules of :mod:`mlgit.api` take as their first
argument (``add.add(core, ...)``, ``status.status(core)``...); :class:`mlgit.api.repo.Repo`
is a ``Core`` with one delegating method per verb. The core holds no verb of its
own: the git repository (:attr:`Core.git`), the store, opened on first use
(:attr:`Core.store`), revisions (:meth:`Core.resolve`, :meth:`Core.snapshot`),
the work tree's pointer files (:meth:`Core.tracked`), the author git would record
(:meth:`Core.author`), and closing with its housekeeping (:meth:`Core.close`:
small packs consolidated, as ``git gc --auto`` does). This module imports no other
verb module, so every verb module may import it. It imports the store only when
one is opened: ``git ml status`` on unchanged data never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Self

from mlgit.api.events import Events
from mlgit.errors import ConflictError, FormatError, GitCommandError, MlgitError
from mlgit.format.config import decode_config
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_CONFIG_LEN
from mlgit.format.pointer import Pointer
from mlgit.gitlink.env import GitEnv
from mlgit.gitlink.pointers import imported_version, load_pointers
from mlgit.gitlink.repo import GitRepo, discover
from mlgit.store.fsutil import read_bounded

if TYPE_CHECKING:
    from mlgit.format.config import StoreConfig
    from mlgit.format.snapshot import Snapshot
    from mlgit.snapshot.statcache import GitIndexTarget
    from mlgit.store.refs import RefStore
    from mlgit.store.store import Store

__all__ = ["Core", "about_pointer", "main_worktree"]


def main_worktree(git: GitRepo) -> Path | None:
    """The work tree of the repository that owns the store (not a linked worktree's)."""
    if git.own_git_dir == git.git_dir:
        return git.workdir
    return git.git_dir.parent if git.git_dir.name == ".git" else None


def about_pointer(pointer_rel: str, e: FormatError) -> FormatError:
    """``e`` with ``pointer_rel`` (the pointer file it concerns) in front of its message.

    Unchanged when the message already starts with it.
    """
    return e if str(e).startswith((pointer_rel, f"pointer file {pointer_rel!r}")) else type(e)(
        f"{pointer_rel}: {e}")


class Core:
    """A git repository with (or about to have) a git-ml store.

    ``path`` is any directory inside the repository (default: the current one).
    What git honours from the environment is honoured here too
    (:mod:`mlgit.gitlink.env`): the ssh client always; ``GIT_DIR`` and
    ``GIT_WORK_TREE`` when the repository is found from the current directory
    (``path`` None), as git finds it, or when ``git_env`` says so (the CLI, which
    is git's subcommand). An explicit ``path`` otherwise wins over them, as
    ``git --git-dir`` wins over ``GIT_DIR``.

    A context manager: leaving the block closes the core (:meth:`close`), with
    no housekeeping when the block raised.
    """

    #: Where housekeeping after a command (consolidating small packs, see
    #: :meth:`consolidate_packs`) reports warnings; the CLI sets its own. None: silent.
    events: Events | None = None
    _packs_checked = 0  # store.objects.packs_committed when consolidation was last considered
    _pack_limit: int | None = None  # ml.autoPackLimit, read once

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 git_env: bool | None = None) -> None:
        env = GitEnv.current()
        if not (path is None if git_env is None else git_env):
            env = dataclasses.replace(env, git_dir=None, work_tree=None)
        self.git: GitRepo = discover(Path(path) if path is not None else Path.cwd(), env)
        self._store: Store | None = None
        # An ssh command line that overrides the one git would use (see
        # mlgit.sync.remote.resolve_remote); None: git's choice.
        self.ssh_command: str | None = None

    def init_store(self, config: StoreConfig | None = None) -> bool:
        """Create the store if absent (an existing one keeps its config) and keep it open.

        Returns True if it was created.
        """
        from mlgit.store.store import Store  # start-up time: only when a store is opened

        store, created = Store.init(self.git.ml_dir, config)
        if self._store is not None:
            self._store.close()
        self._store = store
        return created

    @property
    def store(self) -> Store:
        """The opened store; NotInitializedError if ``git ml init`` was never run."""
        if self._store is None:
            from mlgit.store.store import Store  # start-up time: only when a store is opened

            self._store = Store.open(self.git.ml_dir)
            self.register_shared()
        return self._store

    @property
    def cache_dir(self) -> Path:
        """The store's derived data (:attr:`Store.cache_dir`), known without opening the store."""
        return self._store.cache_dir if self._store is not None else self.git.ml_dir / "cache"

    @property
    def refs(self) -> RefStore:
        """The store's refs (:attr:`Store.refs`), readable without opening the store."""
        if self._store is not None:
            return self._store.refs
        from mlgit.store.refs import RefStore

        return RefStore(self.git.ml_dir / "refs")

    def git_index_target(self, full: Path) -> GitIndexTarget | None:
        """Where the stat cache of the tracked path ``full`` writes its private git index.

        None when ``full`` is not inside the work tree (git could not check it),
        or the object format is not known. See :func:`mlgit.snapshot.statcache.save`.
        """
        from mlgit.snapshot.statcache import GitIndexTarget

        work = self.git.workdir
        if work is None:
            return None
        try:
            rel = full.relative_to(work)
        except ValueError:
            return None
        if not rel.parts:
            return None
        fmt = self.git.memo.get("object-format")
        if fmt is None:
            try:
                fmt = self.git.run_git("rev-parse", "--show-object-format").decode().strip()
            except (GitCommandError, UnicodeError):
                return None
            self.git.memo["object-format"] = fmt
        return GitIndexTarget(os.fsencode(full), os.fsencode(rel.as_posix()), fmt)

    def has_store(self) -> bool:
        """Whether the store exists with a config that decodes, checked without opening it.

        For answers that need nothing else from the store (``status`` on
        unchanged data); False sends the caller to :attr:`store`, which raises
        the right error. A clone that keeps its objects in a shared store is
        False too: opening its store checks the shared store and registers the
        clone there (:meth:`register_shared`), which such an answer must not skip.
        """
        if self._store is not None:
            return True
        try:
            config = decode_config(read_bounded(self.git.ml_dir / "config", MAX_CONFIG_LEN))
        except (OSError, FormatError):
            return False
        return not config.shared

    def register_shared(self) -> None:
        """Make sure this clone is in its shared store's registry (one small read when it is).

        Called each time a clone opens its store, so a clone copied with ``cp -r``
        registers itself on first use (docs/storage.md). A registry that cannot be
        written (a read-only mount) is left as it is. Nothing for an unshared store.
        """
        store = self._store
        if store is not None and store.shared is not None:
            from mlgit.store import shared

            with contextlib.suppress(OSError):
                shared.register(store.shared, self.git.ml_dir, main_worktree(self.git))

    def resolve(self, rev: str) -> ObjectID:
        """The snapshot id a revision names (see :mod:`mlgit.store.revision`).

        A name no local ref has may be imported data's
        (:func:`~mlgit.gitlink.pointers.imported_version`).
        """
        from mlgit.store.revision import resolve_revision

        return resolve_revision(self.store, rev,
                                pinned=lambda name: imported_version(self.git, name))

    def snapshot(self, oid: ObjectID) -> Snapshot:
        """Read a snapshot by id (verified against its id; FormatError if it does not decode)."""
        return self.store.objects.get_snapshot(oid)

    def tracked(self, events: Events | None = None) -> list[tuple[str, Pointer]]:
        """The usable pointer files of the work tree and index as (pointer path, pointer).

        Pointers git-ml must not use (see :mod:`mlgit.gitlink.pointers`: a data path
        into a git directory or onto a git-tracked file, overlapping pointers, a
        symlinked parent, a symlink or FIFO, a malformed file) are left out; each is
        reported to ``events`` (:meth:`Events.problem`) when it is given.
        """
        good, problems = load_pointers(self.git)
        if events is not None:
            for _, err in problems:
                events.problem(err)
        return good

    def author(self) -> str:
        """The author git would record for a commit made now (``Name <email>``).

        ``git var GIT_AUTHOR_IDENT``: the environment, then git's config; ``unknown
        <unknown>`` when git has none.
        """
        try:
            ident = self.git.run_git("var", "GIT_AUTHOR_IDENT").decode("utf-8", "replace").strip()
        except GitCommandError:
            return "unknown <unknown>"
        name, sep, _ = ident.rpartition(">")
        return name + sep if sep else ident

    def close(self) -> None:
        """Consolidate small packs if this core wrote enough of them; release every descriptor."""
        if self._store is not None:
            try:
                self.consolidate_packs()
            finally:
                self._store.close()
                self._store = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self._store is not None:
            self._packs_checked = self._store.objects.packs_committed  # no housekeeping
        self.close()

    def consolidate_packs(self, events: Events | None = None) -> None:
        """Merge small packs if there are too many, as ``git gc --auto`` does; never raises.

        Checked only when this core's store committed a pack since the last check
        (one listing of ``packs/``). More than ``ml.autoPackLimit`` (default 50;
        0 turns it off) packs smaller than half the pack size are merged
        (:func:`mlgit.store.gc.consolidate`: nothing is pruned, the store's gc
        lock is held). A held lock skips it quietly (the next command tries
        again); any other failure is a warning to ``events`` (else :attr:`events`).
        """
        store = self._store
        if store is None or store.objects.packs_committed == self._packs_checked:
            return
        self._packs_checked = store.objects.packs_committed
        from mlgit.store import gc

        ev = events or self.events or Events()
        try:
            if len(gc.small_packs(store)) <= 1:
                return  # no limit is exceeded; git config is not even read
            if self._pack_limit is None:
                self._pack_limit = self._auto_pack_limit(ev, gc.AUTO_PACK_LIMIT)
            gc.consolidate(store, self._pack_limit)
        except ConflictError:
            pass  # a writer or gc holds the store: the next command consolidates
        except (MlgitError, OSError) as e:
            ev.warn(f"small packs not consolidated: {e}; `git ml gc` repacks them")

    def _auto_pack_limit(self, ev: Events, default: int) -> int:
        """``ml.autoPackLimit`` (an integer; 0 or less: off), else ``default``."""
        try:
            raw = self.git.run_git("config", "--int", "--get", "ml.autoPackLimit")
        except GitCommandError as e:
            if e.stderr.strip():  # set, but not a number (a missing key says nothing)
                ev.warn(f"ml.autoPackLimit: {e}; using {default}")
            return default
        try:
            return int(raw.decode().strip())
        except ValueError:
            return default
