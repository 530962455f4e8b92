"""git-ml: version datasets and ML checkpoints the way git versions code.

The Python surface (every function takes ``repo``: a path inside the git
repository, default the current directory)::

    import mlgit
    path = mlgit.checkout("data~1")          # a local copy of that version, to read
    with mlgit.open("data", "train/x.csv") as f: ...   # stream one file, no copy
    mlgit.prefetch("data", ["train/"])        # fetch many files lazily in one transfer
    mlgit.add("data/", message="v2")          # snapshot a directory (like `git ml add`)
    mlgit.promote("resnet-a", "production", message="passed A/B")  # the model registry
    mlgit.checkout("resnet-a@production")     # what holds a model's stage
    mlgit.show("data").snapshot.parents
    [e.name for e in mlgit.ls()]
    mlgit.import_("/srv/registry", "mnist", "data/mnist")   # like `git ml import`
    mlgit.update(["data/mnist"])              # to the registry's newest mnist

Errors are :class:`mlgit.errors.MlgitError` subclasses with one-line messages.
TensorFlow support is ``mlgit.tf``, imported only when used (``import mlgit.tf``).
"""

from __future__ import annotations

import os

from mlgit.errors import MlgitError, UsageError

TYPE_CHECKING = False  # not typing's: `import mlgit` is on the start-up path of every command
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import Any, BinaryIO

    from mlgit.api.add import AddResult
    from mlgit.api.board import BoardResult
    from mlgit.api.checkpoints import CkptResult
    from mlgit.api.events import Events
    from mlgit.api.imports import ImportResult
    from mlgit.api.inspect import ListEntry, SnapshotInfo
    from mlgit.api.registry import PromoteResult, StageRecord
    from mlgit.api.repo import Repo
    from mlgit.api.results_table import HistoryPoint, ResultRow
    from mlgit.tf.export import ExportResult
    from mlgit.tf.verify import Verification


def __getattr__(name: str) -> Any:
    """Load the API on first use: ``git ml status`` imports ``mlgit`` and needs none of it.

    (The whole API is about 100 ms of start-up; ``mlgit.api.checkpoints`` alone 30 ms.)
    """
    if name == "Repo":
        from mlgit.api.repo import Repo

        return Repo
    if name == "AddResult":
        from mlgit.api.add import AddResult

        return AddResult
    if name in ("ListEntry", "SnapshotInfo"):
        from mlgit.api import inspect

        return getattr(inspect, name)
    if name == "CkptResult":
        from mlgit.api.checkpoints import CkptResult

        return CkptResult
    if name in ("ResultRow", "HistoryPoint"):
        from mlgit.api import results_table

        return getattr(results_table, name)
    if name == "ImportResult":
        from mlgit.api.imports import ImportResult

        return ImportResult
    if name in ("PromoteResult", "StageRecord"):
        from mlgit.api import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'mlgit' has no attribute {name!r}")

__all__ = ["AddResult", "CkptResult", "HistoryPoint", "ImportResult", "ListEntry", "MlgitError",
           "PromoteResult", "Repo", "ResultRow", "SnapshotInfo", "StageRecord", "__version__",
           "add", "board", "board_logdir", "checkout", "commit_ckpt", "demote", "export",
           "import_", "latest_checkpoint", "ls", "open", "prefetch", "promote", "release",
           "results", "results_history", "show", "stages", "update", "verify"]
__version__ = "0.1.0"

RepoPath = str | os.PathLike[str] | None


def _repo(repo: RepoPath) -> Repo:
    from mlgit.api.repo import Repo

    return Repo(repo)


def checkout(rev: str, repo: RepoPath = None, *, worktree: bool = True) -> Path:
    """Path of a local copy of snapshot ``rev``, to read and never to write to.

    When a tracked path of the work tree pins exactly ``rev`` and is clean, that
    path (the work tree's own copy: it changes when the work tree does; pass
    ``worktree=False`` for a copy that never changes). Otherwise a read-only
    checkout under ``.git/ml/checkouts/``, materialized once and reused, which
    stays in place while this process runs (no eviction or ``git ml gc`` removes
    it) or until :func:`release`. Safe to call from several processes at once:
    each gets a complete tree. For a snapshot of a single file the path is that file.
    """
    with _repo(repo) as r:
        return r.checkout(rev, worktree=worktree)


def release(path: str | os.PathLike[str]) -> bool:
    """Let eviction and gc remove the read-only checkout holding ``path`` again.

    ``path`` is one :func:`checkout` returned (or a path inside it); True if this
    process held it. The path may vanish at the next eviction (making a new
    checkout past ``ml.checkouts.maxSize``, or ``git ml gc``).
    """
    from mlgit.api.copies import release as release_checkout

    return release_checkout(path)


def add(path: str | os.PathLike[str], *, name: str | None = None, message: str = "",
        repo: RepoPath = None) -> AddResult:
    """Snapshot ``path`` as a dataset, as ``git ml add`` does; return the result."""
    from pathlib import Path

    with _repo(repo if repo is not None else Path(path).absolute().parent) as r:
        return r.add([Path(path).absolute()], name=name, message=message)[0]


def open(rev: str, path: str = "", repo: RepoPath = None) -> BinaryIO:
    """A binary file object over ``path`` in snapshot ``rev`` that reads chunks on demand.

    The file owns the repository handle it opened: closing it (``close()``, the
    end of a ``with`` block, or garbage collection) releases every file
    descriptor, so a loop over many files holds a constant number. To read many
    files, :meth:`Repo.open` on one long-lived ``Repo`` shares its store.
    """
    r = _repo(repo)
    try:
        return r.open(rev, path, close_repo=True)
    except BaseException:
        r.close()
        raise


def prefetch(rev: str, paths: list[str] | None = None, repo: RepoPath = None) -> int:
    """Fetch in one go what :func:`open` would fetch file by file; return the chunks fetched.

    ``paths`` are files or directories of snapshot ``rev`` (None: all of it).
    Then ``mlgit.open`` over those files reads only the local store.
    """
    with _repo(repo) as r:
        return r.prefetch(rev, paths)


def commit_ckpt(path: str | os.PathLike[str], *, run: str, step: int | None = None,
                metrics: dict[str, float] | None = None,
                config_files: list[str | os.PathLike[str]] | None = None, message: str = "",
                datasets: list[str] | None = None, parent: str | None = None,
                samples: Any = None, repo: RepoPath = None) -> CkptResult:
    """Store a checkpoint with its lineage, as ``git ml commit-ckpt`` does.

    ``samples``: adequacy sample inputs (a ``.csv``, ``.npy`` or ``.npz`` file, an
    array, or a dict of named arrays), run through the model at ``path`` and
    noted with the outputs it gave (``git ml verify``); TensorFlow is imported
    only then.
    """
    with _repo(repo) as r:
        if samples is None:
            return r.commit_ckpt(path, run=run, step=step, metrics=metrics,
                                 config_files=config_files, message=message,
                                 datasets=datasets, parent=parent)
        import tempfile
        from pathlib import Path

        from mlgit.api import checkpoints
        from mlgit.tf.samples import samples_for_path

        _ = r.store  # an uninitialized repository fails before TensorFlow works
        with tempfile.TemporaryDirectory(prefix="mlgit-samples-") as tmp:
            payload = samples_for_path(Path(path), [Path(c) for c in config_files or []],
                                       samples, Path(tmp))
            return checkpoints.commit_ckpt(r, path, run=run, step=step, metrics=metrics,
                                           config_files=config_files, message=message,
                                           datasets=datasets, parent=parent, samples=payload)


def latest_checkpoint(run: str, repo: RepoPath = None) -> Path:
    """Path of ``run``'s newest checkpoint (read-only), e.g. to resume training."""
    with _repo(repo) as r:
        return r.latest_checkpoint(run)


def show(rev: str, repo: RepoPath = None, files: bool = True) -> SnapshotInfo:
    """Snapshot ``rev`` with its metadata (and file list unless ``files`` is False)."""
    with _repo(repo) as r:
        return r.show(rev, files=files)


def ls(repo: RepoPath = None) -> list[ListEntry]:
    """Every dataset and checkpoint run with its newest snapshot."""
    with _repo(repo) as r:
        return r.ls()


def import_(url: str, rev: str, path: str | os.PathLike[str] | None = None, *,
            repo: RepoPath = None) -> ImportResult:
    """Pin version ``rev`` (``NAME[@PREFIX][~N]``) of repository ``url``'s data at ``path``.

    As ``git ml import``: the data is fetched from the source's store and written
    at ``path`` (default: ``NAME``; relative paths, and a relative local ``url``,
    from the current directory), and an imported pointer recording the source is
    written and staged.
    """
    with _repo(repo) as r:
        return r.import_(url, rev, path)


def update(paths: list[str | os.PathLike[str]], *, rev: str | None = None,
           repo: RepoPath = None) -> list[ImportResult]:
    """Move imported data (paths or their pointer files) to the source's newest version.

    As ``git ml update``; ``rev`` pins another version of the same name.
    """
    from pathlib import Path

    with _repo(repo) as r:
        return r.update([Path(p).absolute() for p in paths], rev=rev)


def promote(rev: str, stage: str, *, model: str | None = None, message: str = "",
            repo: RepoPath = None) -> PromoteResult:
    """Record that checkpoint ``rev`` now holds ``stage``, as ``git ml promote`` does.

    The model is ``model``, else the model of a ``MODEL@STAGE`` revision, else the
    checkpoint's run. Then ``mlgit.checkout("MODEL@STAGE")`` (and every revision) names it.
    """
    with _repo(repo) as r:
        return r.promote(rev, stage, model=model, message=message)


def demote(model: str, stage: str, *, message: str = "", repo: RepoPath = None
           ) -> PromoteResult:
    """Record that ``model``'s ``stage`` holds nothing from now on, as ``git ml demote`` does."""
    with _repo(repo) as r:
        return r.demote(model, stage, message=message)


def stages(model: str | None = None, stage: str | None = None, *, history: bool = False,
           at: str | None = None, repo: RepoPath = None) -> list[StageRecord]:
    """The registry, as ``git ml stages`` shows it.

    Each stage (of ``model``) with the record that holds it now; with ``stage`` just
    that stage, and with ``history`` its whole trail, newest first. ``at`` (a day such
    as ``"2025-03-01"``, a moment, an age: docs/cli.md) gives the records that held the
    stages then instead.
    """
    with _repo(repo) as r:
        if stage is None:
            if history:
                raise UsageError("history=True needs a model and a stage")
            return r.stages(model, at=at)
        if model is None:
            raise UsageError("a stage needs its model: stages(model, stage)")
        if history or at is not None:
            return r.stage_history(model, stage, at=at)
        return r.stage_history(model, stage, limit=1)


def export(rev: str, directory: str | os.PathLike[str], *, model: str | None = None,
           version: int | None = None, check: bool = True, atol: float = 1e-08,
           rtol: float = 1e-05, repo: RepoPath = None) -> ExportResult:
    """Export checkpoint ``rev`` for TensorFlow Serving, as ``git ml export`` does.

    Writes ``directory/<model>/<version>/`` (see :func:`mlgit.tf.export.export`);
    imports TensorFlow.
    """
    from mlgit.tf.export import export as export_

    with _repo(repo) as r:
        return export_(r, rev, directory, model=model, version=version, check=check,
                       atol=atol, rtol=rtol)


def verify(rev: str | None = None, *, export: str | os.PathLike[str] | None = None,
           atol: float = 1e-08, rtol: float = 1e-05, record: bool = True,
           repo: RepoPath = None) -> Verification:
    """Run checkpoint ``rev``'s samples (or an export's) and compare, as ``git ml verify``.

    Returns the outcome, passed or not (``.check()`` raises
    :class:`~mlgit.errors.VerificationError` for a failure). For ``rev`` the
    outcome is noted unless ``record`` is False; an export needs no repository.
    Imports TensorFlow.
    """
    if (rev is None) == (export is None):
        from mlgit.errors import UsageError

        raise UsageError("give a checkpoint rev or export=DIR (one of them)")
    if export is not None:
        from mlgit.tf.verify import verify_export

        return verify_export(export, atol=atol, rtol=rtol)
    from mlgit.tf.verify import verify_checkpoint

    assert rev is not None
    with _repo(repo) as r:
        return verify_checkpoint(r, rev, atol=atol, rtol=rtol, record=record)


def board_logdir(logdir: str | os.PathLike[str] | None = None, revs: list[str] | None = None,
                 repo: RepoPath = None) -> BoardResult:
    """Lay out (or refresh) the team's runs as a TensorBoard logdir (``--logdir-only``).

    ``revs`` None: every branch. See :mod:`mlgit.api.board`.
    """
    from mlgit.api.board import board_logdir as lay_out  # imported when used: start-up time
    with _repo(repo) as r:
        return lay_out(r, logdir, revs)


def board(revs: list[str] | None = None, host: str = "127.0.0.1", port: int | None = None,
          repo: RepoPath = None) -> str:
    """Start TensorBoard over the team's runs in this process (a daemon thread); its URL.

    As ``git ml board``: the runs are laid out in the store's cache first.
    """
    from mlgit.api.board import board_logdir as lay_out  # imported when used: start-up time
    from mlgit.api.boardserver import serve_logdir  # imported when used: start-up time
    with _repo(repo) as r:
        result = lay_out(r, None, revs)
    return serve_logdir(result.logdir, host, port)
def results(revs: str | Iterable[str] | None = None, *, dataset: str | Iterable[str] | None = None,
            metric: str | Iterable[str] | None = None, run: str | Iterable[str] | None = None,
            sort: str | None = None, limit: int | None = None, repo: RepoPath = None,
            events: Events | None = None) -> list[ResultRow]:
    """The results table, as ``git ml results`` shows it, newest first or best first by ``sort``.

    One row per (model version, test dataset version); see
    :func:`mlgit.api.results_table.results` for the filters. Without
    ``events``, a bad note record raises once the table is read (pass an
    ``mlgit.api.events.Events()`` to keep the rows and collect the problems).
    """
    with _repo(repo) as r:
        return r.results(revs, dataset=dataset, metric=metric, run=run, sort=sort, limit=limit,
                         events=events)


def results_history(metric: str, *, run: str | None = None, dataset: str | None = None,
                    revs: str | Iterable[str] | None = None, repo: RepoPath = None,
                    events: Events | None = None) -> list[HistoryPoint]:
    """``metric`` over the commits for one run on one test dataset, newest first.

    As ``git ml results --history`` shows it; see :func:`mlgit.api.results_table.history`.
    """
    from mlgit.api import results_table

    with _repo(repo) as r:
        return results_table.history(r, metric, run=run, dataset=dataset, revs=revs,
                                     events=events)
