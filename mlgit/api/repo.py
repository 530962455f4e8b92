"""The :class:`Repo`: every git-ml operation on one repository.

The CLI and the module-level functions in :mod:`mlgit` are thin layers over
this class. Contracts common to all methods: bad input raises an
:class:`~mlgit.errors.MlgitError` subclass before anything is changed; objects
are durable before any ref, pointer file or stat cache names them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlgit.api.events import Events
from mlgit.errors import (
    AmbiguousRevisionError,
    BadPathError,
    ConflictError,
    CorruptObjectError,
    FormatError,
    GitCommandError,
    MlgitError,
    PointerError,
    RevisionError,
    UsageError,
)
from mlgit.format.config import StoreConfig
from mlgit.format.ids import ObjectID, is_hex_prefix
from mlgit.format.names import is_ref_name
from mlgit.format.paths import check_component, check_tracked_path
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, PointerConflict, PointerSource
from mlgit.format.snapshot import KIND_DATASET, ROOT_DIR, ROOT_FILE, Snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry
from mlgit.format.treeshape import file_root_entry, totals
from mlgit.gitlink import index as gitindex
from mlgit.gitlink.env import GitEnv
from mlgit.gitlink.pointers import (
    PointerProblem,
    list_pointers,
    load_pointers,
    pointer_path_for,
    read_pointer,
    tracked_path_for,
    write_pointer,
)
from mlgit.gitlink.repo import GitRepo, discover
from mlgit.snapshot import statcache
from mlgit.snapshot.build import build_tree
from mlgit.snapshot.merge import Conflict
from mlgit.snapshot.treewalk import Change, diff_trees, flatten, lookup
from mlgit.store.refs import REF_KINDS, RefStore
from mlgit.store.revision import remote_names, resolve_revision, tracking_refs
from mlgit.store.store import Store

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mlgit.api.checkpoints import CkptResult, LineageEntry, LineageWalk
    from mlgit.api.history import LogEntry
    from mlgit.api.imports import ImportResult
    from mlgit.api.merge import MergeOutcome
    from mlgit.api.notes import NoteView
    from mlgit.api.remote_delete import DeleteResult
    from mlgit.api.remove import RemoveResult
    from mlgit.api.sync import PushResult, RemoteRef
    from mlgit.format.records import PayloadRecord
    from mlgit.hooks.install import HookResult
    from mlgit.store.fsck import FsckReport
    from mlgit.store.gc import GcReport
    from mlgit.sync.remote import RemoteSpec

__all__ = ["AddResult", "FileInfo", "ListEntry", "Repo", "SnapshotInfo", "StatusEntry"]


@dataclass
class AddResult:
    """The outcome of adding one path: the snapshot id and whether it is new."""

    path: str
    pointer: str
    name: str
    id: ObjectID
    created: bool
    files: int
    bytes: int
    hashed_files: int
    hashed_bytes: int
    stored_bytes: int


@dataclass
class StatusEntry:
    """One tracked path compared with the snapshot its pointer pins.

    ``state`` is ``clean``, ``modified``, ``missing`` (the data path does not exist)
    or ``conflicted`` (the pointer records a merge that left conflicts: ``conflict``
    is set, ``changes`` compare the data with ours plus what merged cleanly).
    ``conflicts`` lists the conflicting paths, worked out again from the merge's
    versions; None when those are not in the local store (``conflict.paths`` then
    lists what the pointer file holds). ``source`` is set for imported data.
    """

    path: str
    pointer: str
    name: str
    id: ObjectID
    state: str
    changes: list[Change] = field(default_factory=list)
    is_file: bool = False
    conflict: PointerConflict | None = None
    conflicts: list[Conflict] | None = None
    source: PointerSource | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml status --json`` prints it."""
        src = self.source
        return {"path": self.path, "pointer": self.pointer, "name": self.name, "id": self.id,
                "state": self.state, "changes": [c.to_json() for c in self.changes],
                "conflict": self._conflict_json(),
                "source": {"url": src.url, "rev": src.rev} if src is not None else None}

    def _conflict_json(self) -> dict[str, Any] | None:
        c = self.conflict
        if c is None:
            return None
        paths = ([x.to_json() for x in self.conflicts] if self.conflicts is not None else
                 [{"path": p, "kind": None, "base": None, "ours": None, "theirs": None}
                  for p in c.paths])
        count = len(self.conflicts) if self.conflicts is not None else c.count
        return {"ours": c.ours, "theirs": c.theirs, "base": c.base, "count": count,
                "paths": paths}


@dataclass
class FileInfo:
    """A file or symlink in a snapshot."""

    path: str
    type: str
    size: int
    executable: bool = False
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size}
        if self.type == "file":
            d["executable"] = self.executable
        if self.target is not None:
            d["target"] = self.target
        return d


@dataclass
class SnapshotInfo:
    """A snapshot with its id (and, when asked for, its files)."""

    id: ObjectID
    snapshot: Snapshot
    files: list[FileInfo] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form: the documented schema of ``git ml show --json``."""
        d = {"id": self.id, **self.snapshot.to_json()}
        if self.files is not None:
            d["file_list"] = [f.to_json() for f in self.files]
        return d


@dataclass
class ListEntry:
    """A dataset or checkpoint run and its newest snapshot.

    ``remote`` is None for a local ref, else the remote whose remote-tracking ref
    this is (what ``git ml fetch`` last saw there).
    """

    kind: str
    name: str
    id: ObjectID
    snapshot: Snapshot
    remote: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml ls --json`` prints it."""
        s = self.snapshot
        return {"kind": self.kind, "name": self.name, "remote": self.remote, "id": self.id,
                "time": s.time, "files": s.files, "bytes": s.bytes, "message": s.message}


def _author(repo: GitRepo) -> str:
    """The author git would record (``git var GIT_AUTHOR_IDENT``: environment, then config)."""
    try:
        ident = repo.run_git("var", "GIT_AUTHOR_IDENT").decode("utf-8", "replace").strip()
    except GitCommandError:
        return "unknown <unknown>"
    name, sep, _ = ident.rpartition(">")
    return name + sep if sep else ident


def _with_message(e: MlgitError, message: str) -> MlgitError:
    """An error of ``e``'s class (so its exit code) with ``message``."""
    try:
        return type(e)(message)
    except TypeError:  # a class whose constructor takes other arguments
        out = MlgitError(message)
        out.exit_code = e.exit_code
        return out


def _about(where: str, e: FormatError) -> FormatError:
    """``e`` with ``where`` (the pointer file it concerns) in front of its message."""
    return e if str(e).startswith((where, f"pointer file {where!r}")) else type(e)(
        f"{where}: {e}")


class _HookEvents(Events):
    """Events for git's hooks: bad input becomes a warning, so git's own command succeeds."""

    def __init__(self, inner: Events, hook: str) -> None:
        self.inner, self.hook = inner, hook

    def warn(self, message: str) -> None:
        """Pass the warning on."""
        self.inner.warn(message)

    def problem(self, error: MlgitError) -> None:
        """Record it, and pass it on as a warning naming the hook."""
        super().problem(error)
        self.inner.warn(f"{self.hook}: skipped: {error}")

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Pass progress on."""
        self.inner.start(label, files, nbytes)

    def advance(self, files: int, nbytes: int) -> None:
        """Pass progress on."""
        self.inner.advance(files, nbytes)

    def finish(self) -> None:
        """Pass progress on."""
        self.inner.finish()


class Repo:
    """A git repository with (or about to have) a git-ml store.

    ``path`` is any directory inside the repository (default: the current one).
    """

    #: Where housekeeping after a command (consolidating small packs, see
    #: :meth:`consolidate_packs`) reports warnings; the CLI sets its own. None: silent.
    events: Events | None = None
    _packs_checked = 0  # store.objects.packs_committed when consolidation was last considered
    _pack_limit: int | None = None  # ml.autoPackLimit, read once

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 git_env: bool | None = None) -> None:
        # What git honours from the environment is honoured here too (gitlink/env.py):
        # the ssh client always; GIT_DIR and GIT_WORK_TREE when the repository is
        # found from the current directory (``path`` None), as git finds it, or when
        # ``git_env`` says so (the CLI, which is git's subcommand). An explicit
        # ``path`` otherwise wins over them, as ``git --git-dir`` wins over GIT_DIR.
        env = GitEnv.current()
        if not (path is None if git_env is None else git_env):
            env = dataclasses.replace(env, git_dir=None, work_tree=None)
        self.git = discover(Path(path) if path is not None else Path.cwd(), env)
        self._store: Store | None = None
        # An ssh command line that overrides the one git would use (see
        # mlgit.sync.remote.resolve_remote); None: git's choice.
        self.ssh_command: str | None = None

    # -- setup ---------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str] | None = None,
             config: StoreConfig | None = None, *, hooks: bool = True,
             git_env: bool | None = None) -> tuple[Repo, bool]:
        """Create the store if absent and (unless ``hooks`` is False) install the git hooks.

        Returns (repo, created). Harmless to repeat: an existing store keeps its config.
        ``git_env`` is as for :class:`Repo`.
        """
        repo = cls(path, git_env=git_env)
        store, created = Store.init(repo.git.ml_dir, config)
        repo._store = store
        if hooks and repo.git.workdir is not None:
            repo.install_hooks()
        return repo, created

    def install_hooks(self) -> list[HookResult]:
        """Install the hooks (chaining any hook already there) and the pointer merge driver.

        The merge driver and its ``*.mlgit`` attribute are left alone, and reported
        as ``kept``, where someone else's are set (:mod:`mlgit.hooks.mergedriver`).
        """
        from mlgit.hooks.install import install_hooks  # imported when used: start-up time
        from mlgit.hooks.mergedriver import (  # imported when used: start-up time
            install_merge_driver,
        )
        return install_hooks(self.git) + install_merge_driver(self.git)

    def run_hook(self, name: str, args: list[str], events: Events | None = None,
                 stdin: bytes | None = None, reflog_action: str | None = None) -> int:
        """Run git-ml's part of hook ``name`` after the hook it chained; return the exit code.

        pre-push (``git push``): ``git ml push`` to the same remote with the
        pushed commits (objects, refs, notes and the objects they name); if that
        fails the push is stopped (exit 1), so a remote never gets commits whose
        data it cannot have. post-merge (``git pull``, ``git merge``): ``git ml
        pull`` from the lazy-fetch remote (notes, every remote name, local refs
        fast-forwarded, HEAD's data checked out). post-rewrite after a rebase:
        the same when ``reflog_action`` (git's ``GIT_REFLOG_ACTION``) says it is
        ``git pull --rebase``, else HEAD's data is fetched and checked out.
        post-checkout: HEAD's data, fetched lazily. git-ml's own failures there
        become warnings (a hook must not fail git's command because data could
        not be updated); a chained hook's failure is passed on.
        """
        from mlgit.api import sync  # imported when used: start-up time
        from mlgit.hooks.install import (  # imported when used: start-up time
            hooks_enabled,
            run_chained,
        )
        ev = events or Events()
        rc = run_chained(self.git, name, args, stdin)
        if not hooks_enabled(self.git) or not (self.git.ml_dir / "config").exists():
            return rc
        if name == "pre-push":
            if rc:
                return rc
            lines = [line.split() for line in (stdin or b"").decode().splitlines()]
            lines = [w for w in lines if len(w) == 4]
            # A push of the notes themselves (`git push origin refs/notes/ml`) carries
            # them: git-ml sends what they name and leaves the notes ref to git.
            notes = [w for w in lines if w[2].startswith("refs/notes/")]
            commits = [w[1] for w in lines if w not in notes and set(w[1]) != {"0"}]
            try:
                self.push(args[0] if args else None, commits=commits, notes=not notes,
                          events=ev)
            except MlgitError as e:
                ev.warn(f"pre-push: git-ml data not pushed: {e}")
                return 1
            return 0
        if name == "post-checkout" and (len(args) < 3 or args[2] != "1"):
            return rc  # a file checkout, not a branch or commit switch
        if name == "post-rewrite" and (not args or args[0] != "rebase"):
            return rc  # `git commit --amend`: git copies the notes, the data did not change
        # A bad pointer (a teammate's commit) is reported and skipped; the rest
        # is fetched and checked out, and git's own command still succeeds.
        hook_ev = _HookEvents(ev, name)
        pulling = name == "post-merge" or (
            name == "post-rewrite" and (reflog_action or "").startswith("pull"))
        try:
            remote = self._lazy_remote() if pulling else None
            if remote is not None:
                sync.pull(self, remote, events=hook_ev)
            else:
                self._fetch_pinned(hook_ev)
                self.checkout_worktree(events=hook_ev)
        except MlgitError as e:
            ev.warn(f"{name}: data not updated: {e}; run `git ml pull` when ready")
        return rc

    def _fetch_pinned(self, ev: Events) -> None:
        """Fetch (lazily, when allowed) the snapshots the work tree's pointers pin but we lack.

        When it contacts the remote it also brings the remote's notes and every
        remote ref's snapshot and trees (so every name resolves), as pull does.
        """
        from mlgit.api import sync  # imported when used: start-up time
        missing = sorted({p.id for _, p in self.tracked()  # checkout reports bad ones
                          if p.source is None  # imports: from their sources, by checkout
                          and not self.store.objects.has_committed(bytes.fromhex(p.id))})
        remote = self._lazy_remote() if missing else None
        if missing and remote is not None:
            sync.fetch(self, remote, [str(m) for m in missing], history=False, all_refs=True,
                       events=ev)

    @property
    def store(self) -> Store:
        """The opened store; NotInitializedError if ``git ml init`` was never run."""
        if self._store is None:
            self._store = Store.open(self.git.ml_dir)
        return self._store

    def close(self) -> None:
        """Consolidate small packs if this Repo wrote enough of them; release every descriptor."""
        if self._store is not None:
            try:
                self.consolidate_packs()
            finally:
                self._store.close()
                self._store = None

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self._store is not None:
            self._packs_checked = self._store.objects.packs_committed  # no housekeeping
        self.close()

    def consolidate_packs(self, events: Events | None = None) -> None:
        """Merge small packs if there are too many, as ``git gc --auto`` does; never raises.

        Checked only when this Repo's store committed a pack since the last check
        (one listing of ``packs/``). More than ``ml.autoPackLimit`` (default 50;
        0 turns it off) packs smaller than half the pack size are merged
        (:func:`mlgit.store.gc.consolidate`: nothing is pruned, the store's gc
        lock is held). A held lock skips it quietly (the next command tries
        again); any other failure is a warning to ``events`` (else :attr:`events`).
        """
        from mlgit.store import gc  # imported when used: start-up time
        store = self._store
        if store is None or store.objects.packs_committed == self._packs_checked:
            return
        self._packs_checked = store.objects.packs_committed
        ev = events or self.events or Events()
        try:
            if len(gc.small_packs(store)) <= 1:
                return  # no limit is exceeded; git config is not even read
            if self._pack_limit is None:
                self._pack_limit = self._auto_pack_limit(ev)
            gc.consolidate(store, self._pack_limit)
        except ConflictError:
            pass  # a writer or gc holds the store: the next command consolidates
        except (MlgitError, OSError) as e:
            ev.warn(f"small packs not consolidated: {e}; `git ml gc` repacks them")

    def _auto_pack_limit(self, ev: Events) -> int:
        """``ml.autoPackLimit`` (an integer; 0 or less: off), default 50."""
        from mlgit.store.gc import AUTO_PACK_LIMIT  # imported when used: start-up time
        try:
            raw = self.git.run_git("config", "--int", "--get", "ml.autoPackLimit")
        except GitCommandError as e:
            if e.stderr.strip():  # set, but not a number (a missing key says nothing)
                ev.warn(f"ml.autoPackLimit: {e}; using {AUTO_PACK_LIMIT}")
            return AUTO_PACK_LIMIT
        try:
            return int(raw.decode().strip())
        except ValueError:
            return AUTO_PACK_LIMIT

    def author(self) -> str:
        """The author git would record for a commit made now (``Name <email>``)."""
        return _author(self.git)

    # -- checkpoints and notes (mlgit/api/checkpoints.py, notes.py, history.py) --
    def commit_ckpt(self, path: str | os.PathLike[str], *, run: str, step: int | None = None,
                    metrics: dict[str, Any] | None = None,
                    config_files: list[str | os.PathLike[str]] | None = None,
                    message: str = "", datasets: list[str] | None = None,
                    parent: str | None = None, log: str | os.PathLike[str] | None = None,
                    graph: str | os.PathLike[str] | None = None,
                    events: Events | None = None) -> CkptResult:
        """Store a checkpoint of ``run`` with its lineage; see :func:`checkpoints.commit_ckpt`."""
        from mlgit.api import checkpoints  # imported when used: start-up time
        return checkpoints.commit_ckpt(
            self, path, run=run, step=step, metrics=metrics, config_files=config_files,
            message=message, datasets=datasets, parent=parent, log=log, graph=graph,
            events=events)

    def latest_checkpoint(self, run: str) -> Path:
        """Path of ``run``'s newest checkpoint (read-only; the prefix for TF checkpoints)."""
        from mlgit.api import checkpoints  # imported when used: start-up time
        return checkpoints.latest_checkpoint(self, run)

    def lineage(self, rev: str, limit: int | None = None,
                events: Events | None = None) -> list[LineageEntry]:
        """A checkpoint and its ancestors across runs, newest first."""
        from mlgit.api import checkpoints  # imported when used: start-up time
        return checkpoints.lineage(self, rev, limit, events)

    def lineage_walk(self, rev: str, limit: int | None = None,
                     events: Events | None = None) -> LineageWalk:
        """The same, streamed: see :class:`~mlgit.api.checkpoints.LineageWalk`."""
        from mlgit.api import checkpoints  # imported when used: start-up time
        return checkpoints.LineageWalk(self, rev, limit, events)

    def add_note(self, commit: str = "HEAD", *, log: str | os.PathLike[str] | None = None,
                 graph: str | os.PathLike[str] | None = None,
                 results: str | os.PathLike[str] | None = None, dataset: str | None = None,
                 events: Events | None = None) -> list[dict[str, Any]]:
        """Attach a training log, graph definition and/or test results to a commit."""
        from mlgit.api import notes  # imported when used: start-up time
        return notes.add_note(self, commit, log=log, graph=graph, results=results,
                              dataset=dataset, events=events)

    def show_note(self, commit: str = "HEAD", events: Events | None = None) -> NoteView:
        """A commit's ML records (malformed lines are problems; the rest is kept)."""
        from mlgit.api import notes  # imported when used: start-up time
        return notes.show_note(self, commit, events)

    def log(self, rev_range: str | None = None, *, run: str | None = None,
            limit: int | None = None, events: Events | None = None) -> list[LogEntry]:
        """Git history with each commit's datasets, checkpoints and results (``git ml log``)."""
        from mlgit.api import (
            history,  # imported when used: start-up time
            )
        return history.log(self, rev_range, run=run, limit=limit, events=events)

    # -- maintenance (mlgit/api/maintenance.py) ---------------------------------------
    def fsck(self, events: Events | None = None) -> FsckReport:
        """Check every object and that everything the roots reach is complete."""
        from mlgit.api import maintenance

        return maintenance.fsck(self, events)

    def repair(self, remote: str | None, report: FsckReport,
               events: Events | None = None) -> int:
        """Fetch good copies of what ``report`` found damaged or missing; return the count."""
        from mlgit.api import maintenance

        return maintenance.repair(self, remote, report, events)

    def gc(self, *, prune: str = "2.weeks.ago", dry_run: bool = False,
           events: Events | None = None) -> GcReport:
        """Remove unreachable objects from packs older than ``prune``; repack the rest.

        Bad pointer files and note lines are reported to ``events`` and skipped.
        """
        from mlgit.api import maintenance

        return maintenance.collect_garbage(self, prune=prune, dry_run=dry_run, events=events)

    # -- remotes (mlgit/api/sync.py) -------------------------------------------------
    def push(self, remote: str | None = None, *, force: bool = False,
             commits: list[str] | None = None, notes: bool = True, imports: bool | None = None,
             events: Events | None = None) -> PushResult:
        """Send sidecar objects, refs, the objects notes name, and (``notes``) the notes.

        ``imports``: imported data too (default: ``ml.pushImports``; see :func:`sync.push`).
        """
        from mlgit.api import sync  # imported when used: start-up time
        return sync.push(self, remote, force=force, commits=commits, notes=notes,
                         imports=imports, events=events)

    def fetch(self, remote: str | None = None, revs: list[str] | None = None, *,
              events: Events | None = None) -> PushResult:
        """Bring notes, objects and remote-tracking refs from ``remote``.

        Without ``revs``: everything (every ref's history, every object the notes
        name). With ``revs``: those, and every other remote ref's snapshot and
        trees. In a bare repository the local refs follow the remote's as
        :meth:`pull` moves them (a ``--mirror`` clone's are set to the remote's).
        """
        from mlgit.api import sync  # imported when used: start-up time
        return sync.fetch(self, remote, revs, all_refs=True, local_refs="auto", events=events)

    def pull(self, remote: str | None = None, *, events: Events | None = None
             ) -> tuple[PushResult, list[tuple[str, ObjectID]]]:
        """Bring notes and names, fast-forward local refs, fetch and materialize HEAD's data."""
        from mlgit.api import sync  # imported when used: start-up time
        return sync.pull(self, remote, events=events)

    def ls_remote(self, remote: str | None = None, events: Events | None = None,
                  grep: Sequence[str] = ()) -> list[RemoteRef]:
        """The datasets and runs a remote holds (bad refs and snapshots are problems).

        ``grep``: only those whose name or newest message holds one of these words.
        """
        from mlgit.api import sync  # imported when used: start-up time
        return sync.ls_remote(self, remote, events, grep)

    def delete_remote_refs(self, remote: str | None, names: list[str], *,
                           events: Events | None = None) -> DeleteResult:
        """Delete datasets or runs from ``remote`` at the versions last fetched (push --delete)."""
        from mlgit.api import remote_delete  # imported when used: start-up time
        return remote_delete.delete_remote_refs(self, remote, names, events=events)

    # -- imports (mlgit/api/imports.py) ------------------------------------------------
    def import_(self, url: str, rev: str, path: str | os.PathLike[str] | None = None, *,
                base: Path | None = None, events: Events | None = None) -> ImportResult:
        """Pin version ``rev`` of repository ``url``'s data at ``path`` (``git ml import``)."""
        from mlgit.api import imports  # imported when used: start-up time
        return imports.import_(self, url, rev, path, base=base, events=events)

    def update(self, paths: list[str | os.PathLike[str]], *, rev: str | None = None,
               force: bool = False, events: Events | None = None) -> list[ImportResult]:
        """Move imported pointers to their source's newest version (or ``rev``)."""
        from mlgit.api import imports  # imported when used: start-up time
        return imports.update(self, paths, rev=rev, force=force, events=events)

    # -- removing datasets (mlgit/api/remove.py) ---------------------------------------
    def rm(self, paths: list[str | os.PathLike[str]], *, force: bool = False,
           cached: bool = False, events: Events | None = None) -> list[RemoveResult]:
        """Stop tracking datasets: pointer, data (unless ``cached``), .gitignore line, ref."""
        from mlgit.api import remove  # imported when used: start-up time
        return remove.remove(self, paths, force=force, cached=cached, events=events)

    def _lazy_remote(self) -> str | None:
        """The remote to fetch missing data from, or None when lazy fetching is off.

        ``ml.lazyFetch`` and ``ml.remote`` are settings (git config, else the
        committed ``.mlgitconfig``: :mod:`mlgit.gitlink.settings`).
        """
        from mlgit.gitlink.settings import (  # imported when used: start-up time
            setting,
            setting_bool,
        )
        from mlgit.sync.remote import resolve_remote  # imported when used: start-up time
        if setting_bool(self.git, "ml.lazyFetch") is False:
            return None
        named = setting(self.git, "ml.remote")
        if named:
            return named
        try:
            return resolve_remote(self.git, None).name
        except UsageError:
            return None  # no remote to fetch from

    def _remote_for(self, oid: ObjectID) -> str | RemoteSpec | None:
        """Where snapshot ``oid``'s missing data comes from: its source if imported, else lazily."""
        from mlgit.api import imports  # imported when used: start-up time
        source = imports.source_spec(self, oid)
        return source if source is not None else self._lazy_remote()

    def _resolve_fetching(self, rev: str, whole: bool = True) -> ObjectID:
        """Resolve ``rev`` locally, else fetch it from the lazy-fetch remote (when allowed).

        With ``whole`` the snapshot's data comes too; otherwise only its snapshot
        and trees (the caller fetches the chunks it needs). A fetch that fails says
        why (the host key ssh does not know, a refused connection, a bucket that
        does not exist...) in an error of the cause's own class, naming ``rev`` and
        the remote; a remote that lacks ``rev`` is a RevisionError.
        """
        try:
            oid = self.resolve(rev)
        except RevisionError as missing:
            remote = self._lazy_remote()
            if remote is None:
                raise
            self._fetch_for(rev, remote, [rev], whole, missing)
            oid = self.resolve(rev)
        if not self.store.objects.has_committed(bytes.fromhex(oid)) or (
                whole and not self._complete(oid)):
            where = self._remote_for(oid)  # imported data: from its source
            if where is not None:
                self._fetch_for(rev, where, [oid], whole, None)
        return oid

    def _fetch_for(self, rev: str, remote: str | RemoteSpec, revs: list[str], whole: bool,
                   missing: RevisionError | None) -> None:
        """Lazily fetch ``revs`` for ``rev``; a failure names both and keeps its cause."""
        from mlgit.api import sync  # imported when used: start-up time
        shown = remote if isinstance(remote, str) else remote.name
        try:
            sync.fetch(self, remote, revs, history=False, notes=False, chunks_too=whole)
        except RevisionError as e:
            raise type(e)(f"unknown revision {rev!r}: not in the local store, and {e}"
                          ) from None
        except MlgitError as e:
            where = ("is not in the local store" if missing is not None
                     else "is not complete in the local store")
            raise _with_message(e, f"{rev!r} {where}, and fetching it from {shown!r} "
                                   f"failed: {e}") from None

    def _complete(self, oid: ObjectID) -> bool:
        """True if the snapshot and everything below it is in the local store.

        Each distinct tree is read once, however often the snapshot's trees share it.
        """
        if not self.store.objects.has_committed(bytes.fromhex(oid)):
            return False
        return self._tree_complete(bytes.fromhex(self.snapshot(oid).tree))

    def _tree_complete(self, tree: bytes) -> bool:
        """True if tree ``tree`` and everything below it is in the local store."""
        objects = self.store.objects
        stack = [tree]
        seen = set(stack)
        while stack:
            t = stack.pop()
            if not objects.has_committed(t):
                return False
            for e in objects.get_tree(t):
                if e.type == TYPE_DIR:
                    if e.subtree not in seen:
                        seen.add(e.subtree)
                        stack.append(e.subtree)
                elif e.type == TYPE_FILE and not all(objects.has_committed(c) for c, _ in e.chunks):
                    return False
        return True

    # -- revisions -----------------------------------------------------------
    def resolve(self, rev: str) -> ObjectID:
        """The snapshot id a revision names (see :mod:`mlgit.store.revision`).

        A name no local ref has may be imported data's (:func:`imports.pinned_name`).
        """
        def pinned(name: str) -> ObjectID | None:
            from mlgit.api import imports  # imported when used: start-up time
            return imports.pinned_name(self, name)

        return resolve_revision(self.store, rev, pinned=pinned)

    def snapshot(self, oid: ObjectID) -> Snapshot:
        """Read a snapshot by id."""
        return self.store.objects.get_snapshot(oid)

    # -- add -----------------------------------------------------------------
    def _check_add_path(self, path: str | os.PathLike[str]) -> tuple[str, bool]:
        rel = self.git.relpath(Path(path))
        if not rel or rel == ".":
            raise BadPathError("cannot add the whole work tree; name a directory or file in it")
        try:
            check_tracked_path(rel)
        except FormatError as e:
            raise BadPathError(f"{path}: {e}; git-ml cannot track data there") from None
        full = self.git.require_workdir() / rel
        if not os.path.lexists(full):
            raise BadPathError(f"{path}: no such file or directory")
        if full.is_symlink():
            raise BadPathError(f"{path} is a symlink; add the directory or file it points to")
        if not (full.is_dir() or full.is_file()):
            raise BadPathError(f"{path} is not a regular file or directory")
        if rel.endswith(POINTER_SUFFIX):
            raise BadPathError(f"{path} is a git-ml pointer file")
        gitindex.check_ignorable(self.git, rel)  # refused now, not after the snapshot
        tracked = gitindex.tracked_under(self.git, rel)
        if tracked:
            flag = " -r" if full.is_dir() else ""
            raise BadPathError(
                f"{rel} is tracked by git; untrack it with `git rm{flag} --cached {rel}` "
                "(the files stay) and add it again")
        return rel, full.is_file()

    def add(self, paths: list[str | os.PathLike[str]], *, name: str | None = None,
            message: str = "", events: Events | None = None) -> list[AddResult]:
        """Snapshot each path as a dataset; write and stage its pointer and .gitignore.

        Every path is checked before anything is written. A path whose content
        equals its current snapshot makes no new snapshot (``created`` False).
        """
        ev = events or Events()
        if not paths:
            raise BadPathError("nothing to add: name a directory or file")
        if name is not None and len(paths) > 1:
            raise UsageError("--name works with one path at a time")
        if name is not None and not is_ref_name(name):
            raise UsageError(f"invalid name {name!r}: use letters, digits, '.', '_' and '-', "
                             "starting with a letter or digit")
        store = self.store
        plans = []
        names_seen: dict[str, str] = {}
        for p in paths:
            rel, is_file = self._check_add_path(p)
            pointer_rel = pointer_path_for(rel)
            existing = read_pointer(self.git, pointer_rel)
            if existing is not None and existing.source is not None:
                raise BadPathError(
                    f"{rel} is imported from {existing.source.url}; `git ml update {rel}` "
                    f"moves it to another version of the source (to make it this "
                    f"repository's own dataset: `git ml rm --cached {rel}`, then add it)")
            ds = name or (existing.name if existing else rel.rsplit("/", 1)[-1])
            if not is_ref_name(ds):
                raise UsageError(f"{rel}: {ds!r} is not a valid dataset name; pass --name NAME")
            if names_seen.get(ds, rel) != rel:
                raise BadPathError(f"{names_seen[ds]} and {rel} would both be dataset {ds!r}")
            names_seen[ds] = rel
            self._check_name_free(ds, pointer_rel)
            plans.append((rel, is_file, pointer_rel, existing, ds))
        with store.writing():  # gc must not prune what this add reuses
            return [self._add_one(store, *plan, message, ev) for plan in plans]

    def _check_name_free(self, ds: str, pointer_rel: str) -> None:
        for other in list_pointers(self.git):
            if other == pointer_rel:
                continue
            try:
                op = read_pointer(self.git, other)
            except PointerError:
                continue
            if op is not None and op.name == ds:
                raise BadPathError(
                    f"dataset name {ds!r} is already used by {tracked_path_for(other)}; "
                    "choose another with --name")

    def _add_one(self, store: Store, rel: str, is_file: bool, pointer_rel: str,
                 existing: Pointer | None, ds: str, message: str, ev: Events) -> AddResult:
        work = self.git.require_workdir()
        full = work / rel
        cpath = statcache.cache_path(store.cache_dir, full)
        old = statcache.load(cpath)
        written_before = store.objects.bytes_written
        ev.start(f"adding {rel}", 0, 0)
        try:
            built = build_tree(store, os.fsencode(full), is_file=is_file, old=old,
                               warn=ev.warn, progress=ev.advance,
                               on_total=lambda f, b: ev.start(f"adding {rel}", f, b))
        except BaseException:
            store.objects.abort()
            raise
        finally:
            ev.finish()
        head = store.refs.get("datasets", ds)
        same = existing is not None and existing.name == ds
        # A conflicted merge being resolved: the new version has both sides as parents.
        merging = existing.conflict if existing is not None and same else None
        parent = (merging.ours if merging is not None else existing.id) if (
            existing is not None and same) else head
        root_kind = ROOT_FILE if is_file else ROOT_DIR
        tree_hex = built.root.hex()
        created = True
        oid: ObjectID
        unchanged_cache = old.snapshot == parent and old.tree == tree_hex and not built.hashed_files
        if merging is not None:
            assert existing is not None
            self._warn_unmerged(rel, existing, merging, tree_hex, ev)
        elif parent is not None:
            # The stat cache remembers the parent's tree, saving a read of the store.
            if unchanged_cache and existing is not None and existing.name == ds:
                created = False
                oid = parent
            elif not store.objects.has_committed(bytes.fromhex(parent)):
                ev.warn(f"{ds}: parent version {parent[:12]} is not in the local store; "
                        "recording it as the parent anyway")
            else:
                psnap = store.objects.get_snapshot(parent)
                if psnap.tree == tree_hex and psnap.root == root_kind and psnap.name == ds:
                    created = False
                    oid = parent
        if created:
            tz = time.localtime().tm_gmtoff // 60
            parents: tuple[ObjectID, ...] = (parent,) if parent else ()
            if merging is not None:
                parents = (merging.ours, merging.theirs)
                message = message or (f"merge of {merging.ours[:12]} and "
                                      f"{merging.theirs[:12]}, conflicts resolved")
            snap = Snapshot(KIND_DATASET, ds, ObjectID(tree_hex), root_kind, parents,
                            int(time.time()), tz, _author(self.git), message, built.files,
                            built.total_bytes, {"path": rel})
            oid = store.objects.put_snapshot(snap)
        store.objects.flush()  # objects durable before anything names them
        if created or head is None:
            store.refs.update("datasets", ds, oid, head)
        write_pointer(self.git, pointer_rel, Pointer(KIND_DATASET, ds, oid))
        ignore_rel = gitindex.ensure_ignored(self.git, rel)
        gitindex.stage(self.git, [pointer_rel, ignore_rel])
        built.cache.snapshot = oid
        if not (unchanged_cache and oid == parent):
            statcache.save(cpath, built.cache, built.stat_time_ns)
        return AddResult(rel, pointer_rel, ds, oid, created, built.files, built.total_bytes,
                         built.hashed_files, built.hashed_bytes,
                         store.objects.bytes_written - written_before)

    def _warn_unmerged(self, rel: str, existing: Pointer, c: PointerConflict, tree_hex: str,
                       ev: Events) -> None:
        """Warn when a conflict is resolved with data that is still just ours.

        The changes that merged cleanly are in the snapshot the conflicted pointer
        pins (``git ml checkout`` puts them in the work tree); data equal to ours
        leaves them out, which is a valid resolution but rarely the one meant.
        """
        objects = self.store.objects
        try:
            if not (objects.has_committed(bytes.fromhex(c.ours))
                    and objects.has_committed(bytes.fromhex(existing.id))):
                return
            ours_tree, partial_tree = self.snapshot(c.ours).tree, self.snapshot(existing.id).tree
        except FormatError:
            return
        if tree_hex == ours_tree != partial_tree:
            ev.warn(f"{rel}: recorded as the merge, but the data is your version only: the "
                    f"changes that merged cleanly ({existing.id[:12]}, `git ml checkout "
                    f"{rel}`) are not in it")

    # -- status / diff ---------------------------------------------------------
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

    def _tracked_for(self, paths: list[str] | None, ev: Events) -> list[tuple[str, Pointer]]:
        """:meth:`tracked`, narrowed to ``paths`` (work-tree paths; data or pointer files).

        Problems are reported for the pointers asked for only; a path that names
        no pointer at all is a BadPathError.
        """
        good, problems = load_pointers(self.git)
        if not paths:
            for _, err in problems:
                ev.problem(err)
            return good
        wanted = {self.git.relpath(Path(p)).removesuffix(POINTER_SUFFIX) for p in paths}
        bad: list[PointerProblem] = [pe for pe in problems
                                     if pe[0].removesuffix(POINTER_SUFFIX) in wanted]
        known = {tracked_path_for(pr) for pr, _ in good} | {
            pr.removesuffix(POINTER_SUFFIX) for pr, _ in bad}
        unknown = sorted(wanted - known)
        if unknown:
            raise BadPathError(f"not tracked by git-ml: {', '.join(unknown)}")
        for _, err in bad:
            ev.problem(err)
        return [(pr, p) for pr, p in good if tracked_path_for(pr) in wanted]

    def status(self, events: Events | None = None) -> list[StatusEntry]:
        """Compare each tracked path with the snapshot its pointer pins.

        A bad pointer file, or one whose snapshot cannot be read, is reported to
        ``events`` and left out; the others are compared. Without ``events`` the
        first problem is raised once the rest is done.
        """
        ev = events or Events()
        self.store  # noqa: B018 - NotInitializedError before anything else
        out = []
        for pointer_rel, p in self.tracked(ev):
            try:
                entry = self._status_one(pointer_rel, p, ev)
            except FormatError as e:
                if p.conflict is None:
                    ev.problem(_about(pointer_rel, e))
                    continue
                # A conflict is listed whatever else is wrong: it is what to resolve.
                ev.warn(f"{pointer_rel}: the data cannot be compared: {_about(pointer_rel, e)}")
                entry = StatusEntry(tracked_path_for(pointer_rel), pointer_rel, p.name, p.id,
                                    "conflicted")
            if p.conflict is not None:
                self._add_conflicts(entry, p.conflict, ev)
            entry.source = p.source
            out.append(entry)
        if events is None:
            ev.raise_problems()
        return out

    def _add_conflicts(self, entry: StatusEntry, c: PointerConflict, ev: Events) -> None:
        """Mark ``entry`` conflicted and work out its conflicts from the merge's versions."""
        from mlgit.api.merge import conflicts_of  # imported when used: start-up time
        entry.state = "conflicted"
        entry.conflict = c
        try:
            entry.conflicts = conflicts_of(self, c)
        except FormatError as e:
            ev.warn(f"{entry.pointer}: the conflicts cannot be worked out again ({e}); "
                    "showing those the pointer file lists")

    def _status_one(self, pointer_rel: str, p: Pointer, ev: Events) -> StatusEntry:
        """One tracked path compared with its pinned snapshot."""
        store = self.store
        rel = tracked_path_for(pointer_rel)
        full = self.git.require_workdir() / rel
        entry = StatusEntry(rel, pointer_rel, p.name, p.id, "clean")
        if not os.path.lexists(full):
            entry.state = "missing"
            return entry
        cpath = statcache.cache_path(store.cache_dir, full)
        old = statcache.load(cpath)
        if old.snapshot != p.id:
            old = statcache.StatCache()
        snap_tree = old.tree if old.tree else self.snapshot(p.id).tree
        entry.is_file = full.is_file()
        built = build_tree(store, os.fsencode(full), is_file=entry.is_file, old=old,
                           dry=True, warn=ev.warn)
        if built.root.hex() == snap_tree:
            if built.hashed_files:  # refresh the cache so the next status is instant
                built.cache.snapshot = p.id
                statcache.save(cpath, built.cache, built.stat_time_ns)
            return entry
        entry.state = "modified"

        def get_cur(t: bytes, trees: dict[bytes, list[TreeEntry]] = built.trees
                    ) -> list[TreeEntry]:
            got = trees.get(t)
            return got if got is not None else store.objects.get_tree(t)

        pinned = self.snapshot(p.id)  # its claims bound the walk
        entry.changes = list(diff_trees(store.objects.get_tree, bytes.fromhex(snap_tree),
                                        get_cur, built.root,
                                        claims=((pinned.files, pinned.bytes), None),
                                        where=(f"snapshot {p.id}", rel)))
        return entry

    def diff(self, a: str, b: str) -> list[Change]:
        """Files added (A), removed (D), modified (M) or changed type (T) from ``a`` to ``b``.

        FormatError if a tree the comparison reads breaks the format's shape rules.
        """
        ia, ib = self.resolve(a), self.resolve(b)
        sa, sb = self.snapshot(ia), self.snapshot(ib)
        self._check_file_root(ia, sa)
        self._check_file_root(ib, sb)
        get = self.store.objects.get_tree
        return list(diff_trees(get, bytes.fromhex(sa.tree), get, bytes.fromhex(sb.tree),
                               claims=((sa.files, sa.bytes), (sb.files, sb.bytes)),
                               where=(f"snapshot {ia}", f"snapshot {ib}")))

    def _check_file_root(self, oid: ObjectID, snap: Snapshot) -> TreeEntry | None:
        """A file snapshot's one regular file (FormatError if it holds anything else); else None."""
        if snap.root != ROOT_FILE:
            return None
        return file_root_entry(self.store.objects.get_tree(bytes.fromhex(snap.tree)),
                               f"snapshot {oid}")

    # -- show / ls -------------------------------------------------------------
    def show(self, rev: str, *, files: bool = True) -> SnapshotInfo:
        """A snapshot, with its file list unless ``files`` is False."""
        oid = self.resolve(rev)
        snap = self.snapshot(oid)
        info = SnapshotInfo(oid, snap)
        if files:
            self._check_file_root(oid, snap)
            info.files = []
            for path, e in flatten(self.store.objects.get_tree, bytes.fromhex(snap.tree),
                                   claim=(snap.files, snap.bytes), where=f"snapshot {oid}"):
                if e.type == TYPE_FILE:
                    info.files.append(FileInfo(path, "file", e.size, e.executable))
                else:
                    info.files.append(FileInfo(path, "symlink", e.size,
                                               target=os.fsdecode(e.target)))
        return info

    def ls(self, events: Events | None = None) -> list[ListEntry]:
        """Every dataset and checkpoint run with its newest snapshot.

        Local refs first, then each remote's remote-tracking refs (datasets before
        runs within each). A ref that cannot be read, or whose snapshot does not
        decode (or is missing), is a problem, reported to ``events`` and left out;
        the others are listed. With no ``events`` the first problem is raised at the end.
        """
        ev = events or Events()
        out: list[ListEntry] = []
        sources: list[tuple[str | None, RefStore]] = [(None, self.store.refs)]
        sources += [(r, tracking_refs(self.store, r)) for r in remote_names(self.store)]
        for remote, refs in sources:
            for kind in REF_KINDS:
                for name, oid in refs.list(kind, lambda _, e: ev.problem(e)).items():
                    where = f"{remote}/{name}" if remote else name
                    try:
                        snap = self.snapshot(oid)
                    except FormatError as e:
                        ev.problem(type(e)(f"ref {kind}/{where}: {e}"))
                        continue
                    out.append(ListEntry(kind[:-1], name, oid, snap, remote))
        if events is None:
            ev.raise_problems()
        return out

    def history(self, rev: str, limit: int | None = None) -> list[SnapshotInfo]:
        """A snapshot and its first-parent ancestors, newest first (``git ml history``)."""
        oid: ObjectID | None = self.resolve(rev)
        out: list[SnapshotInfo] = []
        while oid is not None and (limit is None or len(out) < limit):
            snap = self.snapshot(oid)
            out.append(SnapshotInfo(oid, snap))
            oid = snap.parents[0] if snap.parents else None
        return out

    # -- checkout --------------------------------------------------------------
    def checkout(self, rev: str, events: Events | None = None) -> Path:
        """A read-only directory (or file) holding snapshot ``rev``, materialized once.

        For a checkpoint stored from a TensorFlow prefix, the path is that prefix
        inside the directory (what ``tf.train.Checkpoint.restore`` expects).
        ``rev`` may also be the ``object`` id (or a unique prefix of it) that a
        note record names: the payload (a log, graph or results file or
        directory) is fetched lazily when not here and materialized the same
        way; for a payload of one file the path is that file.
        """
        from mlgit.snapshot.materialize import (
            materialize_readonly,  # imported when used: start-up time
        )
        ev = events or Events()
        payload = self._payload_record(rev)
        if payload is not None:
            return self._checkout_payload(payload, ev)
        oid = self._resolve_fetching(rev)
        snap = self.snapshot(oid)
        prefix = self._tf_prefix(oid, snap)  # checked before anything is written
        ev.start(f"materializing {snap.name}", snap.files, snap.bytes)
        try:
            path = materialize_readonly(self.store, oid, snap, progress=ev.advance)
        finally:
            ev.finish()
        return path / prefix if prefix is not None else path

    def _payload_record(self, rev: str) -> PayloadRecord | None:
        """The note record whose payload ``rev`` names, or None if ``rev`` is a revision.

        Looked for only when ``rev`` is 4 to 32 hex digits that resolve to no
        local snapshot: then the notes are read, and ``rev`` must be the ``object``
        of a log, graph or results record, or a prefix of exactly one.
        """
        from mlgit.format.records import PayloadRecord  # imported when used: start-up time
        from mlgit.gitlink.notes import note_records  # imported when used: start-up time
        want = rev.strip().lower()
        if not (4 <= len(want) <= 32 and is_hex_prefix(want)):
            return None
        try:
            self.resolve(rev)
            return None
        except AmbiguousRevisionError:
            raise
        except RevisionError:
            pass
        found: dict[str, PayloadRecord] = {}
        for _, rec in note_records(self.git):
            if isinstance(rec, PayloadRecord) and rec.object.startswith(want):
                found.setdefault(rec.object, rec)
        if len(found) > 1:
            raise AmbiguousRevisionError(
                f"{rev!r} is a prefix of several payloads: {', '.join(sorted(found)[:10])}")
        return next(iter(found.values()), None)

    def _checkout_payload(self, rec: PayloadRecord, ev: Events) -> Path:
        """Materialize a note's payload read-only at ``checkouts/<object>``; see :meth:`checkout`.

        Fetched lazily (whole) when not complete here. A payload tree holding one
        regular file named as the record's ``name`` was stored from that file: its
        path is returned.
        """
        from mlgit.api import sync  # imported when used: start-up time
        from mlgit.snapshot.materialize import (
            materialize_readonly,  # imported when used: start-up time
        )
        oid = rec.object
        raw = bytes.fromhex(oid)
        if not self._tree_complete(raw):
            remote = self._lazy_remote()
            if remote is None:
                raise RevisionError(f"payload {oid} ({rec.type} {rec.name[:80]!r}) is not in "
                                    "the local store and lazy fetching is off; run "
                                    "`git ml fetch`")
            sync.fetch_payload(self, remote, oid)
        entries = self.store.objects.get_tree(raw)
        files, nbytes = totals(entries)
        snap = Snapshot(KIND_DATASET, rec.name, oid, ROOT_DIR, (), 0, 0, "", "", files, nbytes)
        ev.start(f"materializing {rec.name[:80]}", files, nbytes)
        try:
            path = materialize_readonly(self.store, oid, snap, progress=ev.advance)
        finally:
            ev.finish()
        name = os.fsencode(rec.name)
        if len(entries) == 1 and entries[0].type == TYPE_FILE and entries[0].name == name:
            return path / rec.name  # a tree entry's name: one checked path component
        return path

    def _tf_prefix(self, oid: ObjectID, snap: Snapshot) -> str | None:
        """The TensorFlow prefix a checkpoint was stored from (``meta.source.prefix``), or None.

        The prefix is stored data, so it is checked as a path: one valid path
        component whose ``<prefix>.index`` file is in the snapshot's root tree.
        Anything else is a FormatError (never a path outside the checkout).
        """
        ck = snap.checkpoint
        if ck is None or ck.source is None or ck.source.type != "tf-prefix":
            return None
        prefix = ck.source.prefix
        where = f"checkpoint {snap.name} {oid[:12]}: meta.source.prefix"
        if prefix is None:
            raise FormatError(f"{where} is missing")
        check_component(prefix, where)
        if snap.root != ROOT_DIR:
            raise FormatError(f"{where}: a TensorFlow prefix needs a directory snapshot")
        index = os.fsencode(prefix + ".index")
        if not any(e.name == index and e.type == TYPE_FILE
                   for e in self.store.objects.get_tree(bytes.fromhex(snap.tree))):
            raise FormatError(f"{where} {prefix[:80]!r} has no {prefix[:80]!r}.index file in "
                              "the snapshot")
        return prefix

    def checkout_worktree(self, paths: list[str] | None = None, *, force: bool = False,
                          events: Events | None = None) -> list[tuple[str, ObjectID]]:
        """Make tracked paths (all, or those named) match their pointer files.

        Returns (path, id) for each path updated. Refuses, changing nothing for
        that path, to discard local changes not saved in the store unless ``force``.
        What the store lacks comes from the lazy-fetch remote (when there is one and
        ``ml.lazyFetch`` is not false): a missing snapshot with its trees, then the
        chunks of just the files to write. A bad pointer file (see :meth:`tracked`),
        or one whose snapshot is malformed or cannot be had, is reported to
        ``events`` and skipped, and the other paths are checked out; without
        ``events`` the first problem is raised once the rest is done. A conflicted
        pointer's data becomes ours plus what merged cleanly (the snapshot it pins).
        """
        from mlgit.snapshot.materialize import update_worktree  # imported when used: start-up time
        ev = events or Events()
        store = self.store
        work = self.git.require_workdir()
        pointers = self._tracked_for(paths, ev)
        lacking = sorted({p.id for _, p in pointers
                          if not store.objects.has_committed(bytes.fromhex(p.id))})
        from mlgit.api import imports  # imported when used: start-up time
        why = imports.fetch_lacking(self, pointers, lacking, self._fetch_snapshots) if (
            lacking) else {}
        done = []
        for pointer_rel, p in pointers:
            rel = tracked_path_for(pointer_rel)
            full = work / rel
            if p.id in why:
                ev.problem(CorruptObjectError(f"{pointer_rel}: snapshot {p.id} is not in the "
                                              f"local store, {why[p.id]}"))
                continue
            try:
                snap = self.snapshot(p.id)
            except FormatError as e:
                ev.problem(_about(pointer_rel, e))
                continue
            cpath = statcache.cache_path(store.cache_dir, full)
            old = statcache.load(cpath)
            label = f"checking out {rel}"

            def on_total(files: int, nbytes: int, label: str = label) -> None:
                ev.start(label, files, nbytes)

            try:
                cache, stat_time = update_worktree(
                    store, snap, full, old, force=force, warn=ev.warn, progress=ev.advance,
                    on_total=on_total,
                    fetch=imports.chunk_fetcher_for(self, p, self._chunk_fetcher()))
            except FormatError as e:  # a bad snapshot: nothing of it was written
                ev.problem(_about(pointer_rel, e))
                continue
            finally:
                ev.finish()
            cache.snapshot = p.id
            statcache.save(cpath, cache, stat_time)
            done.append((rel, p.id))
        if events is None:
            ev.raise_problems()
        return done

    def _fetch_snapshots(self, oids: list[ObjectID], chunks_too: bool = False
                         ) -> dict[ObjectID, str]:
        """Fetch these snapshots (and their trees; chunks too if asked) from the lazy remote.

        Returns, for each one still not in the local store, why (one clause for a
        message); an empty dict when all came.
        """
        from mlgit.api import sync  # imported when used: start-up time
        remote = self._lazy_remote()
        if remote is None:
            return dict.fromkeys(oids, "and there is no remote to fetch it from (add one, or "
                                 "turn ml.lazyFetch on)")
        collect = Events()
        reason = f"and the remote {remote!r} could not supply it"
        try:
            sync.fetch(self, remote, [str(o) for o in oids], history=False, notes=False,
                       chunks_too=chunks_too, events=collect)
        except MlgitError as e:
            reason = f"and fetching it from the remote {remote!r} failed: {e}"
        found = getattr(collect, "problems", [])
        if found:
            reason = f"and the remote {remote!r} could not supply it: {found[0]}"
        return {o: reason for o in oids
                if not self.store.objects.has_committed(bytes.fromhex(o))}

    def _chunk_fetcher(self) -> Callable[[list[tuple[bytes, int]]], None] | None:
        """What brings missing chunks for a checkout: the lazy remote's, or None."""
        from mlgit.api import sync  # imported when used: start-up time
        remote = self._lazy_remote()
        if remote is None:
            return None

        def fetch(chunks: list[tuple[bytes, int]]) -> None:
            sync.fetch_chunks(self, remote, chunks)

        return fetch

    def merge_pointer_files(self, base: str | os.PathLike[str], ours: str | os.PathLike[str],
                            theirs: str | os.PathLike[str], pointer_path: str,
                            events: Events | None = None) -> MergeOutcome:
        """git-ml's merge driver: merge two versions of a pointer file (see :mod:`mlgit.api.merge`).

        ``base``, ``ours`` and ``theirs`` are the files git passes (``%O %A %B``),
        ``pointer_path`` the pointer's path in the work tree (``%P``). The result
        is written to ``ours``. Snapshots that are not local are fetched (snapshots
        and trees) from the lazy-fetch remote first.
        """
        from mlgit.api import merge  # imported when used: start-up time
        ev = events or Events()

        def fetch(oids: list[ObjectID]) -> None:
            why = self._fetch_snapshots(oids)
            if why:
                oid = min(why)
                raise CorruptObjectError(f"{pointer_path}: snapshot {oid} is not in the local "
                                         f"store, {why[oid]}")

        return merge.merge_pointer_files(self, Path(base), Path(ours), Path(theirs),
                                         pointer_path, fetch=fetch, events=ev)

    def open(self, rev: str, path: str = "", *, close_repo: bool = False) -> BinaryIO:
        """A binary, seekable file object over one file of a snapshot; reads chunks on demand.

        For a file snapshot ``path`` may be empty. The file reads through this
        repository's store (no other is opened), so it is valid until the file
        or the repository is closed. With ``close_repo`` the file owns the
        repository: closing the file (or its garbage collection) closes it.
        """
        from mlgit.api import sync  # imported when used: start-up time
        from mlgit.snapshot.reader import SnapshotFile  # imported when used: start-up time
        oid = self._resolve_fetching(rev, whole=False)
        if not self.store.objects.has_committed(bytes.fromhex(oid)):
            raise RevisionError(f"snapshot {oid} is not in the local store")
        snap = self.snapshot(oid)
        get = self.store.objects.get_tree
        root = bytes.fromhex(snap.tree)
        only = self._check_file_root(oid, snap)
        entry = only if only is not None and not path.strip("/") else lookup(get, root, path)
        if entry.type == TYPE_DIR:
            raise BadPathError(f"{path!r} is a directory")
        if entry.type != TYPE_FILE:
            raise BadPathError(f"{path!r} is a symlink to {os.fsdecode(entry.target)!r}")
        missing = [(c, n) for c, n in entry.chunks if not self.store.objects.has_committed(c)]
        remote = self._remote_for(oid) if missing else None
        if missing and remote is not None:
            sync.fetch_chunks(self, remote, missing)
            self.consolidate_packs()  # one pack per lazy open: keep their number bounded
        raw = SnapshotFile(self.store.objects, entry, path or os.fsdecode(entry.name),
                           on_close=self.close if close_repo else None)
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def prefetch(self, rev: str, paths: list[str] | None = None) -> int:
        """Fetch, in one transfer, the data of these files of snapshot ``rev`` the store lacks.

        ``paths`` are files or directories of the snapshot (empty or None: all of
        it; symlinks have no data). Use it before a loop of :meth:`open` over many files of a lazily
        fetched snapshot: one pack and one round of requests instead of one per
        file. Returns the number of chunks fetched (0 when everything is here or
        lazy fetching is off). BadPathError for a path the snapshot lacks.
        """
        from mlgit.api import sync  # imported when used: start-up time
        oid = self._resolve_fetching(rev, whole=False)
        if not self.store.objects.has_committed(bytes.fromhex(oid)):
            raise RevisionError(f"snapshot {oid} is not in the local store")
        snap = self.snapshot(oid)
        get = self.store.objects.get_tree
        root = bytes.fromhex(snap.tree)
        only = self._check_file_root(oid, snap)
        has = self.store.objects.has_committed
        missing: dict[bytes, int] = {}
        for path in paths or [""]:
            if only is not None and not path.strip("/"):
                files: Iterable[tuple[str, TreeEntry]] = [("", only)]
            elif not path.strip("/"):
                files = flatten(get, root, claim=(snap.files, snap.bytes), where=f"snapshot {oid}")
            else:
                entry = lookup(get, root, path)
                files = ([("", entry)] if entry.type != TYPE_DIR else
                         flatten(get, entry.subtree, claim=(entry.files, entry.size),
                                 where=f"snapshot {oid}: {path}"))
            for _, e in files:
                missing.update((c, n) for c, n in e.chunks if c not in missing and not has(c))
        remote = self._remote_for(oid) if missing else None
        if remote is None:
            return 0
        sync.fetch_chunks(self, remote, list(missing.items()))
        self.consolidate_packs()
        return len(missing)
