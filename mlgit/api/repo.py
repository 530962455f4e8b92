"""The :class:`Repo`: every git-ml operation on one repository, as methods.

``Repo`` is a :class:`~mlgit.api.core.Core` (the repository, its store,
revisions, pointer files, author, closing) with one method per verb, each
delegating to the verb's module, which takes the core as its first argument:
:mod:`~mlgit.api.add`, :mod:`~mlgit.api.status`, :mod:`~mlgit.api.inspect`
(diff, show, ls, history), :mod:`~mlgit.api.checkout`, :mod:`~mlgit.api.reading`
(open, prefetch), :mod:`~mlgit.api.githooks`, :mod:`~mlgit.api.sync`,
:mod:`~mlgit.api.pull`, :mod:`~mlgit.api.checkpoints`, :mod:`~mlgit.api.notes`,
:mod:`~mlgit.api.history` (log), :mod:`~mlgit.api.maintenance`,
:mod:`~mlgit.api.remove`, :mod:`~mlgit.api.remote_delete`, :mod:`~mlgit.api.merge`,
:mod:`~mlgit.api.imports` (import, update).
This is the one api module that imports them all; none of them imports it.

The CLI and the module-level functions in :mod:`mlgit` are thin layers over this
class. Contracts common to all methods: bad input raises an
:class:`~mlgit.errors.MlgitError` subclass before anything is changed; objects
are durable before any ref, pointer file or stat cache names them.

The verbs that reach remotes (and a few rarely used ones) are imported when
first called, each with what that saves of every other command's start-up in a
comment (the CPU time of importing the module after what ``git ml status`` loads
anyway, the least of 15 runs; all of them together: 50 ms). A verb module that
costs under 5 ms is imported here at the top: no lazy import for less.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlgit.api import add, inspect, merge, remote_delete, remove, status
from mlgit.api.add import AddResult
from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.api.inspect import FileInfo, ListEntry, SnapshotInfo
from mlgit.api.status import StatusEntry
from mlgit.format.config import StoreConfig
from mlgit.format.ids import ObjectID
from mlgit.snapshot.treewalk import Change

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mlgit.api.checkpoints import CkptResult, LineageEntry, LineageWalk
    from mlgit.api.history import LogEntry
    from mlgit.api.imports import ImportResult
    from mlgit.api.merge import MergeOutcome
    from mlgit.api.notes import NoteView
    from mlgit.api.payloads import LogPaths
    from mlgit.api.registry import PromoteResult, StageRecord
    from mlgit.api.remote_delete import DeleteResult
    from mlgit.api.remove import RemoveResult
    from mlgit.api.sync import PushResult, RemoteRef
    from mlgit.format.resultrows import ResultRow
    from mlgit.hooks.install import HookResult
    from mlgit.store.fsck import FsckReport
    from mlgit.store.gc import GcReport

# AddResult, StatusEntry, FileInfo, ListEntry and SnapshotInfo live with their verbs
# (mlgit.api.add, .status, .inspect); they are exported here too, as they were
# before the verbs had modules of their own.
__all__ = ["AddResult", "FileInfo", "ListEntry", "Repo", "SnapshotInfo", "StatusEntry"]


class Repo(Core):
    """A git repository with (or about to have) a git-ml store; every verb as a method.

    ``path`` is any directory inside the repository (default: the current one);
    ``git_env`` as for :class:`~mlgit.api.core.Core`.
    """

    # -- setup and git's hooks (mlgit/api/githooks.py) ----------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str] | None = None,
             config: StoreConfig | None = None, *, hooks: bool = True,
             git_env: bool | None = None,
             shared: str | os.PathLike[str] | None = None) -> tuple[Repo, bool]:
        """Create the store if absent and (unless ``hooks`` is False) install the git hooks.

        Returns (repo, created). Harmless to repeat: an existing store keeps its config.
        ``git_env`` is as for :class:`Repo`. ``shared``: a shared store to keep the
        objects in (:func:`mlgit.api.sharing.join`); a store created here without
        one joins ``ml.sharedStore`` when git's config sets it.
        """
        from mlgit.api import sharing  # imported when used: start-up time
        repo = cls(path, git_env=git_env)
        new = not (repo.git.ml_dir / "config").exists()
        join = shared if shared is not None else sharing.configured(repo) if new else None
        if join is not None:
            sharing.check_target(repo, join)  # a bad path changes nothing
        created = repo.init_store(config)
        if join is not None:
            sharing.join(repo, join)
        if hooks and repo.git.workdir is not None:
            repo.install_hooks()
        return repo, created

    def install_hooks(self) -> list[HookResult]:
        """Install the hooks and the pointer merge driver; see :func:`githooks.install_hooks`."""
        from mlgit.api import githooks  # 28 ms of start-up (hooks, sync, checkout)
        return githooks.install_hooks(self)

    def run_hook(self, name: str, args: list[str], events: Events | None = None,
                 stdin: bytes | None = None, reflog_action: str | None = None) -> int:
        """Run git-ml's part of hook ``name``; see :func:`githooks.run_hook`."""
        from mlgit.api import githooks  # 28 ms of start-up (hooks, sync, checkout)
        return githooks.run_hook(self, name, args, events, stdin, reflog_action)

    # -- datasets in the work tree (add.py, status.py, remove.py) ---------------------
    def add(self, paths: list[str | os.PathLike[str]], *, name: str | None = None,
            message: str = "", events: Events | None = None) -> list[AddResult]:
        """Snapshot each path as a dataset; see :func:`mlgit.api.add.add`."""
        return add.add(self, paths, name=name, message=message, events=events)

    def status(self, events: Events | None = None) -> list[StatusEntry]:
        """Compare each tracked path with its snapshot; see :func:`mlgit.api.status.status`."""
        return status.status(self, events)

    def rm(self, paths: list[str | os.PathLike[str]], *, force: bool = False,
           cached: bool = False, events: Events | None = None) -> list[RemoveResult]:
        """Stop tracking datasets: pointer, data (unless ``cached``), .gitignore line, ref."""
        return remove.remove(self, paths, force=force, cached=cached, events=events)

    # -- reading snapshots (inspect.py) ----------------------------------------------
    def diff(self, a: str, b: str) -> list[Change]:
        """Files added, removed, modified or changed type; see :func:`mlgit.api.inspect.diff`."""
        return inspect.diff(self, a, b)

    def show(self, rev: str, *, files: bool = True) -> SnapshotInfo:
        """A snapshot, with its file list unless ``files`` is False."""
        return inspect.show(self, rev, files=files)

    def ls(self, events: Events | None = None) -> list[ListEntry]:
        """Every dataset and run with its newest snapshot; see :func:`mlgit.api.inspect.ls`."""
        return inspect.ls(self, events)

    def history(self, rev: str, limit: int | None = None) -> list[SnapshotInfo]:
        """A snapshot and its first-parent ancestors, newest first (``git ml history``)."""
        return inspect.history(self, rev, limit)

    # -- checking out and reading data (checkout.py, reading.py) -----------------------
    def checkout(self, rev: str, events: Events | None = None, *,
                 worktree: bool = True) -> Path:
        """A copy of snapshot ``rev`` to read; see :func:`mlgit.api.checkout.checkout`."""
        from mlgit.api import checkout  # 25 ms of start-up (materialize, sync)
        return checkout.checkout(self, rev, events, worktree=worktree)

    def checkout_worktree(self, paths: list[str] | None = None, *, force: bool = False,
                          events: Events | None = None) -> list[tuple[str, ObjectID]]:
        """Make tracked paths match their pointers; see :func:`checkout.checkout_worktree`."""
        from mlgit.api import checkout  # 25 ms of start-up (materialize, sync)
        return checkout.checkout_worktree(self, paths, force=force, events=events)

    def open(self, rev: str, path: str = "", *, close_repo: bool = False) -> BinaryIO:
        """A file object over one file of a snapshot; see :func:`reading.open_file`.

        With ``close_repo`` the file owns this Repo: closing the file closes it.
        """
        from mlgit.api import reading  # 19 ms of start-up (reader, sync)
        return reading.open_file(self, rev, path, close_core=close_repo)

    def prefetch(self, rev: str, paths: list[str] | None = None) -> int:
        """Fetch the data of files of ``rev`` in one transfer; see :func:`reading.prefetch`."""
        from mlgit.api import reading  # 19 ms of start-up (reader, sync)
        return reading.prefetch(self, rev, paths)

    def merge_pointer_files(self, base: str | os.PathLike[str], ours: str | os.PathLike[str],
                            theirs: str | os.PathLike[str], pointer_path: str,
                            events: Events | None = None) -> MergeOutcome:
        """git-ml's merge driver: merge two versions of a pointer file (see :mod:`mlgit.api.merge`).

        ``base``, ``ours`` and ``theirs`` are the files git passes (``%O %A %B``),
        ``pointer_path`` the pointer's path in the work tree (``%P``). The result
        is written to ``ours``. Snapshots that are not local are fetched (snapshots
        and trees) from the lazy-fetch remote first.
        """
        from mlgit.api import fetching  # 18 ms of start-up (sync)
        return merge.merge_pointer_files(self, Path(base), Path(ours), Path(theirs), pointer_path,
                                         fetch=fetching.snapshot_fetcher(self, pointer_path),
                                         events=events or Events())

    # -- checkpoints and notes (checkpoints.py, notes.py, history.py) -------------------
    def commit_ckpt(self, path: str | os.PathLike[str], *, run: str, step: int | None = None,
                    metrics: dict[str, Any] | None = None,
                    config_files: list[str | os.PathLike[str]] | None = None,
                    message: str = "", datasets: list[str] | None = None,
                    parent: str | None = None, log: LogPaths = None,
                    graph: str | os.PathLike[str] | None = None,
                    events: Events | None = None) -> CkptResult:
        """Store a checkpoint of ``run`` with its lineage; see :func:`checkpoints.commit_ckpt`."""
        from mlgit.api import checkpoints  # 30 ms of start-up (records, checkout, sync)
        return checkpoints.commit_ckpt(
            self, path, run=run, step=step, metrics=metrics, config_files=config_files,
            message=message, datasets=datasets, parent=parent, log=log, graph=graph,
            events=events)

    def latest_checkpoint(self, run: str) -> Path:
        """Path of ``run``'s newest checkpoint (read-only; the prefix for TF checkpoints)."""
        from mlgit.api import checkpoints  # 30 ms of start-up (records, checkout, sync)
        return checkpoints.latest_checkpoint(self, run)

    def lineage(self, rev: str, limit: int | None = None,
                events: Events | None = None) -> list[LineageEntry]:
        """A checkpoint and its ancestors across runs, newest first."""
        from mlgit.api import checkpoints  # 30 ms of start-up (records, checkout, sync)
        return checkpoints.lineage(self, rev, limit, events)

    def lineage_walk(self, rev: str, limit: int | None = None,
                     events: Events | None = None) -> LineageWalk:
        """The same, streamed: see :class:`~mlgit.api.checkpoints.LineageWalk`."""
        from mlgit.api import checkpoints  # 30 ms of start-up (records, checkout, sync)
        return checkpoints.LineageWalk(self, rev, limit, events)

    def add_note(self, commit: str = "HEAD", *, log: LogPaths = None,
                 graph: str | os.PathLike[str] | None = None,
                 results: str | os.PathLike[str] | None = None, dataset: str | None = None,
                 checkpoint: str | None = None,
                 events: Events | None = None) -> list[dict[str, Any]]:
        """Attach a training log, graph definition and/or test results to a commit."""
        from mlgit.api import notes  # 6 ms of start-up (records, notes)
        return notes.add_note(self, commit, log=log, graph=graph, results=results,
                              dataset=dataset, checkpoint=checkpoint, events=events)

    def show_note(self, commit: str = "HEAD", events: Events | None = None) -> NoteView:
        """A commit's ML records (malformed lines are problems; the rest is kept)."""
        from mlgit.api import notes  # 6 ms of start-up (records, notes)
        return notes.show_note(self, commit, events)

    def log(self, rev_range: str | None = None, *, run: str | None = None,
            limit: int | None = None, events: Events | None = None) -> list[LogEntry]:
        """Git history with each commit's datasets, checkpoints and results (``git ml log``)."""
        from mlgit.api import history  # 6 ms of start-up (commits, notes)
        return history.log(self, rev_range, run=run, limit=limit, events=events)

    def results(self, revs: str | Iterable[str] | None = None, *,
                dataset: str | Iterable[str] | None = None,
                metric: str | Iterable[str] | None = None, run: str | Iterable[str] | None = None,
                sort: str | None = None, limit: int | None = None,
                events: Events | None = None) -> list[ResultRow]:
        """The results table (``git ml results``): see :func:`mlgit.api.results_table.results`."""
        from mlgit.api import results_table  # 13 ms of start-up (its types, commits, notes)
        return results_table.results(self, revs, dataset=dataset, metric=metric, run=run,
                                     sort=sort, limit=limit, events=events)

    # -- maintenance (maintenance.py) -----------------------------------------------
    def fsck(self, events: Events | None = None) -> FsckReport:
        """Check every object and that everything the roots reach is complete."""
        from mlgit.api import maintenance  # 26 ms of start-up (fsck, gc, sync)
        return maintenance.fsck(self, events)

    def repair(self, remote: str | None, report: FsckReport,
               events: Events | None = None) -> int:
        """Fetch good copies of what ``report`` found damaged or missing; return the count."""
        from mlgit.api import maintenance  # 26 ms of start-up (fsck, gc, sync)
        return maintenance.repair(self, remote, report, events)

    def gc(self, *, prune: str = "2.weeks.ago", dry_run: bool = False,
           events: Events | None = None) -> GcReport:
        """Remove unreachable objects from packs older than ``prune``; repack the rest.

        In a clone that shares a store, what every registered clone needs is kept
        (:mod:`mlgit.api.sharing`). Read-only checkouts are evicted to fit
        ``ml.checkouts.maxSize``. Bad pointer files and note lines are reported to
        ``events`` and skipped.
        """
        from mlgit.api import maintenance  # 26 ms of start-up (fsck, gc, sync)
        return maintenance.collect_garbage(self, prune=prune, dry_run=dry_run, events=events)

    # -- remotes (sync.py, pull.py, remote_delete.py) -----------------------------------
    def push(self, remote: str | None = None, *, force: bool = False,
             commits: list[str] | None = None, notes: bool = True, imports: bool | None = None,
             events: Events | None = None) -> PushResult:
        """Send sidecar objects, refs, the objects notes name, and (``notes``) the notes.

        ``imports``: imported data too (default: ``ml.pushImports``; see :func:`sync.push`).
        """
        from mlgit.api import sync  # 17 ms of start-up (transfer, notes)
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
        from mlgit.api import sync  # 17 ms of start-up (transfer, notes)
        return sync.fetch(self, remote, revs, all_refs=True, local_refs="auto", events=events)

    def pull(self, remote: str | None = None, *, events: Events | None = None
             ) -> tuple[PushResult, list[tuple[str, ObjectID]]]:
        """Bring notes and names, fast-forward local refs, fetch and materialize HEAD's data."""
        from mlgit.api import pull  # 27 ms of start-up (sync, checkout)
        return pull.pull(self, remote, events=events)

    def ls_remote(self, remote: str | None = None, events: Events | None = None,
                  grep: Sequence[str] = ()) -> list[RemoteRef]:
        """The datasets and runs a remote holds (bad refs and snapshots are problems).

        ``grep``: only those whose name or newest message holds one of these words.
        """
        from mlgit.api import sync  # 17 ms of start-up (transfer, notes)
        return sync.ls_remote(self, remote, events, grep)

    def delete_remote_refs(self, remote: str | None, names: list[str], *,
                           events: Events | None = None) -> DeleteResult:
        """Delete datasets or runs from ``remote`` at the versions last fetched (push --delete)."""
        return remote_delete.delete_remote_refs(self, remote, names, events=events)

    # -- data from other repositories (imports.py) ---------------------------------------
    def import_(self, url: str, rev: str, path: str | os.PathLike[str] | None = None, *,
                base: Path | None = None, events: Events | None = None) -> ImportResult:
        """Pin version ``rev`` of repository ``url``'s data at ``path`` (``git ml import``)."""
        from mlgit.api import imports  # 17 ms of start-up (sync)
        return imports.import_(self, url, rev, path, base=base, events=events)

    def update(self, paths: list[str | os.PathLike[str]], *, rev: str | None = None,
               force: bool = False, events: Events | None = None) -> list[ImportResult]:
        """Move imported pointers to their source's newest version (or ``rev``)."""
        from mlgit.api import imports  # 17 ms of start-up (sync)
        return imports.update(self, paths, rev=rev, force=force, events=events)

    # -- the model registry (mlgit/api/registry.py) ------------------------------------
    def promote(self, rev: str, stage: str, *, model: str | None = None, message: str = "",
                events: Events | None = None) -> PromoteResult:
        """Record that checkpoint ``rev`` now holds ``stage``; see :func:`registry.promote`."""
        from mlgit.api import registry  # imported when used: start-up time
        return registry.promote(self, rev, stage, model=model, message=message, events=events)

    def demote(self, model: str, stage: str, *, message: str = "",
               events: Events | None = None) -> PromoteResult:
        """Record that ``model``'s ``stage`` holds nothing from now on."""
        from mlgit.api import registry  # imported when used: start-up time
        return registry.demote(self, model, stage, message=message, events=events)

    def stages(self, model: str | None = None, *, at: str | None = None,
               events: Events | None = None) -> list[StageRecord]:
        """Each stage (of ``model``) with the record that holds it (now, or ``at``)."""
        from mlgit.api import registry  # imported when used: start-up time
        return registry.stages(self, model, at=at, events=events)

    def stage_history(self, model: str, stage: str, *, at: str | None = None,
                      limit: int | None = None, events: Events | None = None
                      ) -> list[StageRecord]:
        """The records of ``model``'s ``stage``, newest first (its audit trail)."""
        from mlgit.api import registry  # imported when used: start-up time
        return registry.stage_history(self, model, stage, at=at, limit=limit, events=events)
