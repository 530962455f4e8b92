"""The ``git-ml`` command (``git ml <verb>``): argument parsing, output, exit codes.

The only layer that prints or reads the environment. Each command is a thin
wrapper over :class:`mlgit.api.repo.Repo`. Errors print one line to stderr
and exit with the code of their class (docs/exit-codes.md); a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlgit import __version__
from mlgit.api import settings
from mlgit.api.repo import Repo
from mlgit.api.status import StatusEntry
from mlgit.cli.progress import TerminalEvents
from mlgit.errors import MlgitError, UsageError
from mlgit.format.config import StoreConfig
from mlgit.format.ids import digest_to_hex
from mlgit.format.records import (
    CheckpointRecord,
    GraphRecord,
    LogRecord,
    Record,
    ResultsRecord,
    SamplesRecord,
    VerifyRecord,
    best_value,
)
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry

if TYPE_CHECKING:
    from mlgit.api.checkpoints import LineageEntry
    from mlgit.api.registry import PromoteResult, StageRecord
    from mlgit.format.meta import CheckpointMeta
    from mlgit.tf.verify import Verification

__all__ = ["cli", "main"]

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
F = TypeVar("F", bound=Callable[..., Any])


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _when(t: int, tz: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A Unix time in the author's zone; the bare number if the platform cannot show it."""
    sign = "+" if tz >= 0 else "-"
    try:
        local = time.gmtime(t + tz * 60)
    except (OverflowError, ValueError, OSError):
        return f"@{t}"
    offset = f"{sign}{abs(tz) // 60:02d}{abs(tz) % 60:02d}"
    return time.strftime(fmt, local) + ("" if fmt == "%Y-%m-%d" else " " + offset)


def _dumps(obj: Any) -> str:
    """Strict JSON (no NaN or Infinity: decoders refuse them before they get here)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)


def _echo_json(obj: Any) -> None:
    click.echo(_dumps(obj))


def _echo_json_list(items: Iterator[Any]) -> None:
    """Print a JSON array item by item, exactly as :func:`_echo_json` would print the list."""
    first = True
    for item in items:
        body = _dumps(item).replace("\n", "\n  ")
        click.echo(("[\n  " if first else ",\n  ") + body, nl=False)
        first = False
    click.echo("[]" if first else "\n]")


class Ctx:
    """Per-invocation state: where to run and how to report."""

    def __init__(self, cwd: Path, debug: bool) -> None:
        self.cwd = cwd
        self.debug = debug
        self.events = TerminalEvents(sys.stderr.isatty())

    def repo(self) -> Repo:
        """The repository around ``cwd`` as git finds it (GIT_DIR, GIT_WORK_TREE...).

        Warnings about the committed settings file go to the terminal.
        """
        repo = Repo(self.cwd, git_env=True)
        repo.git.warn = self.events.warn
        repo.events = self.events  # housekeeping warnings (pack consolidation)
        return repo


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Run as if started in DIRECTORY.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(__version__, prog_name="git-ml")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None, debug: bool) -> None:
    """git-ml: version datasets and checkpoints beside your code, in git."""
    cwd = Path(os.getcwd()) if directory is None else directory.absolute()
    ctx.obj = Ctx(cwd, debug)


@cli.result_callback()
@click.pass_context
def _exit_on_problems(ctx: click.Context, /, _result: Any, **_params: Any) -> None:
    """A command that skipped bad input (already printed) exits with the first one's code.

    Hooks are the exception: they only warn, so that git's own command is not failed.
    """
    problems = getattr(ctx.obj.events, "problems", [])
    if problems and ctx.invoked_subcommand != "hook":
        sys.exit(problems[0].exit_code)


@cli.command()
@click.option("--shared", "shared", metavar="PATH", type=click.Path(path_type=Path),
              help="Keep objects in the shared store at PATH (made if absent), with every "
              "other clone of this machine that does.")
@click.option("--pack-size", type=click.IntRange(1024), hidden=True)
@click.option("--chunk-size", type=click.IntRange(256, 4 << 20), hidden=True,
              help="Average chunk size (min is a quarter, max four times).")
@pass_ctx
def init(c: Ctx, shared: Path | None, pack_size: int | None, chunk_size: int | None) -> None:
    """Create the sidecar store in .git/ml (harmless if it exists)."""
    defaults = StoreConfig()
    config = StoreConfig(
        pack_size=pack_size or defaults.pack_size,
        chunk_avg=chunk_size or defaults.chunk_avg,
        chunk_min=(chunk_size // 4) if chunk_size else defaults.chunk_min,
        chunk_max=(chunk_size * 4) if chunk_size else defaults.chunk_max,
    )
    where = shared if shared is None or shared.is_absolute() else c.cwd / shared
    repo, created = Repo.init(c.cwd, config, hooks=False, git_env=True, shared=where)
    with repo:
        verb = "Initialized empty" if created else "Reinitialized existing"
        click.echo(f"{verb} git-ml store in {repo.git.ml_dir}")
        if repo.store.shared is not None:
            click.echo(f"objects are kept in the shared store {repo.store.shared}")
        if repo.git.workdir is not None:
            for h in repo.install_hooks():
                if h.action == "chained":
                    click.echo(f"hook {h.name}: installed; the existing hook runs first "
                               f"({h.path.name}.mlgit-chained)")
                elif h.action == "kept":
                    click.echo(f"{h.name}: left alone: {h.detail}")
                elif h.action != "current":
                    label = h.name if h.name.startswith("merge") else f"hook {h.name}"
                    click.echo(f"{label}: {h.action}{f' ({h.detail})' if h.detail else ''}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--message", default="", help="Describe this version.")
@click.option("--name", help="Dataset name (default: the path's last component).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids.")
@pass_ctx
def add(c: Ctx, paths: tuple[Path, ...], message: str, name: str | None, quiet: bool) -> None:
    """Snapshot PATHS (directories or files) as datasets and stage their pointer files."""
    cwd_paths: list[str | os.PathLike[str]] = [p if p.is_absolute() else c.cwd / p for p in paths]
    with c.repo() as repo:
        results = repo.add(cwd_paths, name=name, message=message, events=c.events)
    for r in results:
        if quiet:
            click.echo(r.id)
        elif r.created:
            click.echo(f"{r.name} {r.id} ({r.files} files, {_human(r.bytes)}; "
                       f"hashed {r.hashed_files}, stored {_human(r.stored_bytes)}) -> {r.pointer}")
        else:
            click.echo(f"{r.name} {r.id} (unchanged) -> {r.pointer}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """Show tracked datasets whose data differs from their pointer files."""
    with c.repo() as repo:
        entries = repo.status(events=c.events)
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    if not entries:
        click.echo("no datasets tracked here; `git ml add PATH` starts one")
        return
    for e in entries:
        if e.state == "conflicted":
            _print_conflicted(e)
        elif e.state == "clean":
            click.echo(f"{e.path}: clean ({e.name} {e.id[:12]}{_imported(e)})")
        elif e.state == "missing":
            click.echo(f"{e.path}: missing (run `git ml checkout {e.path}`{_imported(e)})")
        else:
            click.echo(f"{e.path}: modified ({len(e.changes)} changes from {e.name} "
                       f"{e.id[:12]}{_imported(e)})")
            for ch in e.changes:
                where = e.path if e.is_file else f"{e.path}/{ch.path}"
                click.echo(f"  {_STATUS_WORDS[ch.status]:<9} {where}")


def _imported(e: StatusEntry) -> str:
    """``, imported from URL`` for an imported path's status line, else nothing."""
    return f", imported from {e.source.url}" if e.source is not None else ""


_STATUS_WORDS = {"A": "added", "D": "removed", "M": "modified", "T": "typechange"}
_CONFLICT_WORDS = {"both-modified": "both modified", "both-added": "both added",
                   "deleted-by-us": "deleted by us", "deleted-by-them": "deleted by them",
                   "type-changed": "type changed"}


def _side(e: TreeEntry | None) -> str:
    """One side of a conflicting path, short: its id, or what it is."""
    if e is None:
        return "deleted"
    if e.type == TYPE_FILE:
        return digest_to_hex(e.digest)[:12]
    return "a directory" if e.type == TYPE_DIR else "a symlink"


def _print_conflicted(e: StatusEntry) -> None:
    """A conflicted pointer: its merge, each conflicting path with both versions, how to resolve."""
    c = e.conflict
    assert c is not None
    count = len(e.conflicts) if e.conflicts is not None else c.count
    noun = "conflict" if count == 1 else "conflicts"
    click.echo(f"{e.path}: conflicted (merging {e.name} {c.ours[:12]} (ours) and "
               f"{c.theirs[:12]} (theirs): {count} {noun})")
    if e.conflicts is not None:
        for x in e.conflicts:
            where = e.path if e.is_file else f"{e.path}/{x.path}"
            click.echo(f"  {_CONFLICT_WORDS.get(x.kind, x.kind):<16} {where}  (ours "
                       f"{_side(x.ours)}, theirs {_side(x.theirs)})")
    else:
        for p in c.paths:
            click.echo(f"  {'conflict':<16} {e.path}/{p}")
        if len(c.paths) < c.count:
            click.echo(f"  ... and {c.count - len(c.paths)} more")
    for ch in e.changes:
        where = e.path if e.is_file else f"{e.path}/{ch.path}"
        click.echo(f"  {_STATUS_WORDS[ch.status]:<16} {where}  (not yet recorded)")
    click.echo(f"  to resolve: `git ml checkout {e.path}` (ours plus what merged cleanly), "
               f"fix the paths above (theirs: `git ml path {c.theirs[:12]}`), then "
               f"`git ml add {e.path}` and `git commit`")


@cli.command()
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def diff(c: Ctx, old: str, new: str, as_json: bool) -> None:
    """Files added, removed and modified between two versions OLD and NEW."""
    with c.repo() as repo:
        changes = repo.diff(old, new)
    if as_json:
        _echo_json([ch.to_json() for ch in changes])
        return
    for ch in changes:
        if ch.status == "A":
            click.echo(f"A  {ch.path}  ({_human(ch.new_size or 0)})")
        elif ch.status == "D":
            click.echo(f"D  {ch.path}  ({_human(ch.old_size or 0)})")
        else:
            click.echo(f"{ch.status}  {ch.path}  ({_human(ch.old_size or 0)} -> "
                       f"{_human(ch.new_size or 0)})")


@cli.command()
@click.argument("rev")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-files", is_flag=True, help="Leave out the file list.")
@pass_ctx
def show(c: Ctx, rev: str, as_json: bool, no_files: bool) -> None:
    """Show a dataset or checkpoint version: id, parents, time, message, files."""
    with c.repo() as repo:
        info = repo.show(rev, files=not no_files)
    if as_json:
        _echo_json(info.to_json())
        return
    s = info.snapshot
    click.echo(f"{s.kind} {s.name} {info.id}")
    for p in s.parents:
        click.echo(f"parent  {p}")
    click.echo(f"author  {s.author}")
    click.echo(f"date    {_when(s.time, s.tz)}")
    click.echo(f"files   {s.files} ({_human(s.bytes)})")
    if s.checkpoint is not None:
        _show_checkpoint_meta(s.checkpoint)
    if s.message:
        click.echo("")
        for line in s.message.splitlines():
            click.echo(f"    {line}")
    if info.files is not None:
        click.echo("")
        for f in info.files:
            extra = f" -> {f.target}" if f.target is not None else ""
            mode = "x" if f.executable else " "
            click.echo(f"{mode} {f.size:>12}  {f.path}{extra}")


def _show_checkpoint_meta(meta: CheckpointMeta) -> None:
    step = meta.step if meta.step is not None else "-"
    click.echo(f"run     step {step}  {_fmt_metrics(meta.metrics)}")
    code = meta.code
    if code is not None and code.commit:
        dirty = f" (dirty, diff {(code.diff or '-')[:12]})" if code.dirty else ""
        click.echo(f"code    {code.commit}{dirty}")
    for d in meta.datasets:
        click.echo(f"data    {d.name} {d.id}")
    for cf in meta.config:
        click.echo(f"config  {cf.name} {cf.id} ({cf.size} B)")
    if meta.source is not None:
        click.echo(f"source  {meta.source.type} {meta.source.path}")


@cli.command(name="ls")
@click.argument("remote", required=False)
@click.option("--grep", "words", multiple=True, metavar="WORD",
              help="Only those whose name or newest message holds WORD (any case; "
              "repeatable: any of them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def ls_cmd(c: Ctx, remote: str | None, words: tuple[str, ...], as_json: bool) -> None:
    """List every dataset and checkpoint run with its newest version (here, or on REMOTE).

    REMOTE is a remote's name or any URL git-ml can reach (a registry to import from).
    """
    from mlgit.api.search import grep_matches  # imported when used: start-up time
    if remote is not None:
        with c.repo() as repo:
            remote_entries = repo.ls_remote(remote, events=c.events, grep=words)
        if as_json:
            _echo_json([e.to_json() for e in remote_entries])
            return
        for r in remote_entries:
            s = r.snapshot
            detail = (f"{s.files:>8} files {_human(s.bytes):>10}  {_when(s.time, s.tz)}"
                      if s else "")
            click.echo(f"{r.kind:<10} {r.name:<24} {r.id[:12]}  {detail}")
        return
    with c.repo() as repo:
        entries = [e for e in repo.ls(events=c.events)
                   if grep_matches(words, e.name, e.snapshot.message)]
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    for e in entries:
        s = e.snapshot
        name = f"{e.remote}/{e.name}" if e.remote else e.name
        click.echo(f"{e.kind:<10} {name:<24} {e.id[:12]}  {s.files:>8} files "
                   f"{_human(s.bytes):>10}  {_when(s.time, s.tz)}")


@cli.command(name="import")
@click.argument("url")
@click.argument("rev", metavar="NAME[@REV]")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def import_cmd(c: Ctx, url: str, rev: str, path: Path | None, as_json: bool) -> None:
    """Pin a version of another repository's dataset or run at PATH (default: NAME).

    URL is the source repository (a path, ssh:// or host:path, s3://, or a remote
    of this clone); NAME its dataset or run, newest unless @ID-PREFIX or ~N says
    otherwise. The data comes from the source's store; the pointer records where.
    """
    with c.repo() as repo:
        r = repo.import_(url, rev, path, base=c.cwd, events=c.events)
    if as_json:
        _echo_json(r.to_json())
        return
    click.echo(f"imported {r.kind} {r.rev} {r.id} from {r.url} ({r.files} files, "
               f"{_human(r.bytes)}; fetched {_human(r.fetched_bytes)}) -> {r.pointer}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--rev", help="Move to this version instead of the newest: ID-PREFIX, "
              "NAME@ID-PREFIX or ~N.")
@click.option("-f", "--force", is_flag=True, help="Discard local changes that are not saved.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def update(c: Ctx, paths: tuple[Path, ...], rev: str | None, force: bool,
           as_json: bool) -> None:
    """Move imported data at PATHS to its source's newest version (and stage the pointer)."""
    cwd_paths: list[str | os.PathLike[str]] = [p if p.is_absolute() else c.cwd / p for p in paths]
    with c.repo() as repo:
        results = repo.update(cwd_paths, rev=rev, force=force, events=c.events)
    if as_json:
        _echo_json([r.to_json() for r in results])
        return
    for r in results:
        if r.old == r.id:
            what = "the newest" if rev is None else "that version"
            click.echo(f"{r.path}: already at {what} of {r.name} on {r.url} ({r.id[:12]})"
                       + ("; pointer rewritten (staged)" if r.changed else ""))
        else:
            click.echo(f"{r.path}: {r.name} {(r.old or '')[:12]} -> {r.id[:12]} from {r.url} "
                       f"({r.files} files, {_human(r.bytes)}) -> {r.pointer} (staged)")


@cli.command()
@click.argument("rev")
@click.option("-n", "--max-count", type=click.IntRange(1), help="Show at most N versions.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def history(c: Ctx, rev: str, max_count: int | None, as_json: bool) -> None:
    """List REV and its earlier versions (first parents), newest first."""
    with c.repo() as repo:
        infos = repo.history(rev, max_count)
    if as_json:
        _echo_json([i.to_json() for i in infos])
        return
    for i in infos:
        s = i.snapshot
        click.echo(f"{i.id[:12]}  {_when(s.time, s.tz)}  {s.files:>8} files "
                   f"{_human(s.bytes):>10}  {s.message.splitlines()[0] if s.message else ''}")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-f", "--force", is_flag=True, help="Discard local changes that are not saved.")
@pass_ctx
def checkout(c: Ctx, paths: tuple[Path, ...], force: bool) -> None:
    """Make tracked data (all, or PATHS) match the versions their pointer files pin."""
    abs_paths = [str(p if p.is_absolute() else c.cwd / p) for p in paths]
    with c.repo() as repo:
        done = repo.checkout_worktree(abs_paths or None, force=force, events=c.events)
    for rel, oid in done:
        click.echo(f"{rel}: {oid[:12]}")


def _parse_metric(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--metric needs NAME=NUMBER, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--metric {name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise UsageError(f"--metric {name}: {value!r} is not a finite number")
    return name.strip(), number


def _abs(c: Ctx, p: Path | None) -> Path | None:
    return None if p is None else (p if p.is_absolute() else c.cwd / p)


def _abs_all(c: Ctx, paths: tuple[Path, ...]) -> list[str | os.PathLike[str]] | None:
    return [c.cwd / p for p in paths] if paths else None


@cli.command(name="commit-ckpt")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--run", required=True, help="The training run this checkpoint belongs to.")
@click.option("--step", type=click.IntRange(0), help="Training step (or epoch).")
@click.option("--metric", "metrics", multiple=True, metavar="NAME=VALUE",
              help="A metric of this checkpoint (repeatable).")
@click.option("--config", "configs", multiple=True, type=click.Path(path_type=Path),
              help="A config file to keep with it, e.g. hyperparameters (repeatable).")
@click.option("-m", "--message", default="", help="Describe this checkpoint.")
@click.option("--dataset", "datasets", multiple=True, metavar="REV",
              help="Dataset trained on (repeatable; default: those HEAD's pointer files pin).")
@click.option("--parent", metavar="REV",
              help="Checkpoint this one was trained from (default: the run's previous one).")
@click.option("--log", "log_files", multiple=True, type=click.Path(path_type=Path),
              help="Training log to note with it (repeatable).")
@click.option("--graph", "graph_file", type=click.Path(path_type=Path),
              help="Graph definition to note with it.")
@click.option("--samples", "samples_file", type=click.Path(path_type=Path),
              help="Sample inputs (.csv, .npy, .npz) to record with the model's outputs.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the id.")
@pass_ctx
def commit_ckpt(c: Ctx, path: Path, run: str, step: int | None, metrics: tuple[str, ...],
                configs: tuple[Path, ...], message: str, datasets: tuple[str, ...],
                parent: str | None, log_files: tuple[Path, ...], graph_file: Path | None,
                samples_file: Path | None, quiet: bool) -> None:
    """Store a checkpoint (file, directory or TF prefix) with its lineage; print its id."""
    import tempfile  # imported when used: start-up time

    from mlgit.api import checkpoints  # imported when used: start-up time
    parsed = dict(_parse_metric(m) for m in metrics)
    config_files = [c.cwd / p for p in configs]
    with c.repo() as repo, tempfile.TemporaryDirectory(prefix="mlgit-samples-") as tmp:
        _ = repo.store  # an uninitialized repository fails before TensorFlow loads
        samples = None
        if samples_file is not None:
            from mlgit.tf.samples import samples_for_path  # TensorFlow: only with --samples

            samples = samples_for_path(c.cwd / path, config_files, c.cwd / samples_file,
                                       Path(tmp))
        r = checkpoints.commit_ckpt(
            repo, c.cwd / path, run=run, step=step, metrics=parsed,
            config_files=list[str | os.PathLike[str]](config_files), message=message,
            datasets=list(datasets) if datasets else None, parent=parent,
            log=_abs_all(c, log_files), graph=_abs(c, graph_file), events=c.events,
            samples=samples)
    if quiet:
        click.echo(r.id)
        return
    where = f"; noted on {r.note_commit[:12]}" if r.note_commit else ""
    parent_txt = f"parent {r.parent[:12]}" if r.parent else "no parent"
    click.echo(f"{r.run} {r.id} (step {r.step if r.step is not None else '-'}, {parent_txt}, "
               f"{r.files} files, {_human(r.bytes)}, stored {_human(r.stored_bytes)}{where})")


@cli.group()
def note() -> None:
    """Attach training logs, graph definitions and test results to commits."""


@note.command(name="add")
@click.argument("commit", default="HEAD")
@click.option("--log", "log_files", multiple=True, type=click.Path(path_type=Path),
              help="Training log: TF event file or dir, Keras CSVLogger CSV, JSON Lines, text "
              "(repeatable).")
@click.option("--graph", "graph_file", type=click.Path(path_type=Path),
              help="Graph: Keras model JSON, GraphDef (.pb/.pbtxt), SavedModel.")
@click.option("--results", "results_file", type=click.Path(path_type=Path),
              help="Test results: a JSON object of metrics or JUnit XML.")
@click.option("--dataset", metavar="REV", help="The test dataset the results were measured on.")
@click.option("--checkpoint", metavar="REV",
              help="The checkpoint these files are of (the model the results measure).")
@pass_ctx
def note_add(c: Ctx, commit: str, log_files: tuple[Path, ...], graph_file: Path | None,
             results_file: Path | None, dataset: str | None, checkpoint: str | None) -> None:
    """Store files and attach one record each to COMMIT's note (default HEAD)."""
    with c.repo() as repo:
        recs = repo.add_note(commit, log=_abs_all(c, log_files), graph=_abs(c, graph_file),
                             results=_abs(c, results_file), dataset=dataset,
                             checkpoint=checkpoint, events=c.events)
    for r in recs:
        click.echo(f"{r['type']} {r['name']} ({r['format']}) -> {r['object'][:12]}")


@note.command(name="show")
@click.argument("commit", default="HEAD")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def note_show(c: Ctx, commit: str, as_json: bool) -> None:
    """Show COMMIT's ML records (default HEAD)."""
    with c.repo() as repo:
        view = repo.show_note(commit, events=c.events)
    if as_json:
        _echo_json(view.to_json())
        return
    for r in view.records:
        click.echo(_record_line(r))


def _fmt_metrics(m: dict[str, float], only: str | None = None) -> str:
    return " ".join(f"{k}={v:g}" for k, v in m.items() if only is None or k == only)


def _by(author: str) -> str:
    """``"  by NAME"`` for a record's ``Name <email>`` (the email if no name); "" if unknown."""
    name, _, email = author.partition("<")
    who = name.strip() or email.rstrip(">").strip()
    return f"  by {who}" if who else ""


def _record_line(r: Record) -> str:
    """One line describing a note record: its typed fields and who noted it."""
    if isinstance(r, CheckpointRecord):
        return (f"checkpoint {r.run}@{r.id[:12]}"
                f"{f'  step {r.step}' if r.step is not None else ''}  "
                f"{_fmt_metrics(r.metrics)}{'  (dirty tree)' if r.dirty else ''}{_by(r.author)}")
    if isinstance(r, ResultsRecord):
        on = f" on {r.dataset.name}@{r.dataset.id[:12]}" if r.dataset else ""
        return f"results    {r.name}{on}: {_fmt_metrics(r.metrics)}{_by(r.author)}"
    if isinstance(r, LogRecord):
        parts = [f"{k} last {v.last:g} best {v.best:g}" for k, v in list(r.scalars.items())[:4]]
        return f"log        {r.name} ({r.format}): {'; '.join(parts)}{_by(r.author)}"
    if isinstance(r, GraphRecord):
        return f"graph      {r.name} ({r.format}) {r.size_label}{_by(r.author)}"
    if isinstance(r, SamplesRecord):
        shapes = ", ".join(f"{s.name} {list(s.shape[1:])}" for s in (*r.inputs, *r.outputs))
        return f"samples    {r.count} for {(r.checkpoint or '')[:12]}: {shapes}{_by(r.author)}"
    if isinstance(r, VerifyRecord):
        outcome = "passed" if r.passed else f"FAILED ({r.mismatched} of {r.count} differ)"
        return (f"verify     {r.run or ''}@{r.checkpoint[:12]} {outcome}, atol {r.atol:g} "
                f"rtol {r.rtol:g}{_by(r.author)}")
    return f"{r.type}: {json.dumps(r.to_json(), sort_keys=True, allow_nan=False)[:100]}"


@cli.command(name="log")
@click.argument("rev_range", required=False)
@click.option("--run", help="Show only this run's checkpoints.")
@click.option("--metric", help="Add a column with this metric; the best value is starred.")
@click.option("-n", "--max-count", type=click.IntRange(1), help="Show at most N commits.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def log_cmd(c: Ctx, rev_range: str | None, run: str | None, metric: str | None,
            max_count: int | None, as_json: bool) -> None:
    """Git history with each commit's datasets, checkpoints, test results and logs."""
    with c.repo() as repo:
        entries = repo.log(rev_range, run=run, limit=max_count, events=c.events)
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    best: float | None = None
    if metric:
        best = best_value([v for v in (e.metric(metric) for e in entries)
                           if v is not None], metric)
        click.echo(f"{'commit':<10} {'date':<10} {metric:>10}  {'data':<28} {'checkpoint':<24} "
                   "summary")
    for e in entries:
        cm = e.commit
        date = _when(cm.time, cm.tz, "%Y-%m-%d")
        if metric:
            v = e.metric(metric)
            cell = "" if v is None else f"{v:g}{'*' if v == best else ''}"
            data = ",".join(f"{d.name}@{d.id[:8]}{'+' if d.changed else ''}"
                            for d in e.datasets if d.kind == "dataset")
            ck = ",".join(f"{r.run}:{r.step}" for r in e.checkpoints)
            click.echo(f"{cm.id[:10]} {date:<10} {cell:>10}  {data:<28} {ck:<24} {cm.summary}")
            continue
        click.echo(f"{cm.id[:10]}  {date}  {cm.author.split(' <')[0]}  {cm.summary}")
        if not e.has_records:
            continue
        for d in e.datasets:
            mark = "  (changed)" if d.changed else ""
            click.echo(f"    {d.kind:<10} {d.name:<20} {d.id[:12]}{mark}")
        shown: list[Record] = [*e.checkpoints, *e.results]
        for r in shown:
            click.echo(f"    {_record_line(r)}")
        # Logs and graphs a checkpoint brought along are summarized in one line;
        # `git ml note show` and --json list them all.
        payloads: list[LogRecord | GraphRecord] = [*e.logs, *e.graphs]
        for other in [*(p for p in payloads if p.checkpoint is None), *e.other]:
            click.echo(f"    {_record_line(other)}")
        attached = [p for p in payloads if p.checkpoint is not None]
        if attached:
            nlogs = sum(1 for p in attached if isinstance(p, LogRecord))
            click.echo(f"    + {nlogs} logs and {len(attached) - nlogs} graphs attached to "
                       "checkpoints (git ml note show)")


LINEAGE_HEAD = 3
"""Checkpoints of one run shown before a long run of them is collapsed into one line."""
LINEAGE_TAIL = 2
"""Checkpoints of one run shown after the collapsed line (the run's oldest)."""
LINEAGE_MAX_INDENT = 8
"""Indentation levels of ``git ml lineage``: deeper ancestors stay at this one."""


class _LineagePrinter:
    """Prints a lineage as it is walked, in bounded memory and bounded width.

    Each checkpoint is two lines, indented one level deeper than the one before
    (at most :data:`LINEAGE_MAX_INDENT` levels). Within a stretch of consecutive
    checkpoints of one run, the first :data:`LINEAGE_HEAD` and the last
    :data:`LINEAGE_TAIL` are shown and those between become one line
    ``... N more checkpoints of RUN (steps A-B) ...`` (with an ellipsis and an en dash).
    """

    def __init__(self) -> None:
        self.shown = 0
        self.run: str | None = None
        self.in_run = 0
        self.tail: collections.deque[LineageEntry] = collections.deque()
        self.hidden = 0
        self.steps: list[int] = []

    def add(self, e: LineageEntry) -> None:
        """Take the next (older) checkpoint."""
        if e.run != self.run:
            self.flush()
            self.run, self.in_run = e.run, 0
        self.in_run += 1
        if self.in_run <= LINEAGE_HEAD:
            self._entry(e)
            return
        self.tail.append(e)
        if len(self.tail) > LINEAGE_TAIL:
            gone = self.tail.popleft()
            self.hidden += 1
            if gone.step is not None:
                self.steps = [min([gone.step, *self.steps]), max([gone.step, *self.steps])]

    def flush(self) -> None:
        """End the current run's stretch: the collapsed line, then the run's last ones."""
        if self.hidden:
            steps = ""
            if self.steps:
                lo, hi = self.steps
                steps = f" (steps {lo}\u2013{hi})" if lo != hi else f" (step {lo})"
            noun = "checkpoint" if self.hidden == 1 else "checkpoints"
            click.echo(f"{self._indent()}\u2026 {self.hidden} more {noun} of {self.run}"
                       f"{steps} \u2026")
            self.shown += 1
        while self.tail:
            self._entry(self.tail.popleft())
        self.hidden, self.steps = 0, []

    def note(self, text: str) -> None:
        """A line about where the walk ended."""
        self.flush()
        click.echo(f"{self._indent()}({text})")

    def _indent(self) -> str:
        depth = min(self.shown, LINEAGE_MAX_INDENT)
        return "  " * depth + ("<- " if self.shown else "")

    def _entry(self, e: LineageEntry) -> None:
        code = e.code
        commit = (code.commit if code and code.commit else "-")[:10]
        dirty = " (dirty)" if code and code.dirty else ""
        data = ", ".join(f"{d.name}@{d.id[:12]}" for d in e.datasets) or "-"
        step = e.step if e.step is not None else "-"
        arrow = self._indent()
        click.echo(f"{arrow}{e.run}@{e.id[:12]}  step {step}  {_fmt_metrics(e.metrics)}")
        click.echo(f"{' ' * len(arrow)}   code {commit}{dirty}  data {data}")
        self.shown += 1


@cli.command()
@click.argument("rev")
@click.option("-n", "--max-count", type=click.IntRange(1), help="Show at most N checkpoints.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def lineage(c: Ctx, rev: str, max_count: int | None, as_json: bool) -> None:
    """The ancestry of checkpoint REV: parents across runs, with their code and data."""
    with c.repo() as repo:
        walk = repo.lineage_walk(rev, max_count, events=c.events)
        if as_json:
            _echo_json_list(e.to_json() for e in walk)
            if walk.stop is not None and walk.stop.reason != "bad":
                c.events.warn(f"lineage ends: {walk.stop.message}")
            return
        printer = _LineagePrinter()
        for e in walk:
            printer.add(e)
        if walk.stop is not None:
            printer.note(f"lineage ends: {walk.stop.message}")
        else:
            printer.flush()


def _report_transfer(verb: str, r: Any) -> None:
    refs = f"; refs: {', '.join(r.refs)}" if r.refs else ""
    notes = "; notes synced" if r.notes else ""
    local = f"; local refs updated: {', '.join(r.local)}" if r.local else ""
    click.echo(f"{verb} {r.remote} ({r.url}): {r.objects} objects, {_human(r.bytes)} in "
               f"{r.packs} packs{refs}{notes}" if verb == "pushed to" else
               f"{verb} {r.remote} ({r.url}): {r.objects} objects, {_human(r.bytes)}"
               f"{refs}{notes}{local}")


@cli.command()
@click.argument("remote", required=False)
@click.option("-f", "--force", is_flag=True, help="Replace remote versions that are not ancestors.")
@click.option("-d", "--delete", "delete", multiple=True, metavar="NAME",
              help="Delete dataset or run NAME (datasets/NAME, checkpoints/NAME) from REMOTE, "
              "at the version last fetched; pushes nothing else (repeatable).")
@click.option("--imports/--no-imports", default=None,
              help="Also send data imported from other repositories (default: the "
              "ml.pushImports setting, else no: clones fetch it from its source).")
@pass_ctx
def push(c: Ctx, remote: str | None, force: bool, delete: tuple[str, ...],
         imports: bool | None) -> None:
    """Send datasets, checkpoints and notes to REMOTE (default: the branch's, else origin)."""
    if delete:
        if force:
            raise UsageError("--delete removes a ref only at the version you fetched; it "
                             "cannot be combined with --force")
        with c.repo() as repo:
            d = repo.delete_remote_refs(remote, list(delete), events=c.events)
        for ref, oid in d.deleted:
            click.echo(f"deleted {ref} ({oid[:12]}) from {d.remote} ({d.url})")
        return
    with c.repo() as repo:
        r = repo.push(remote, force=force, imports=imports, events=c.events)
    _report_transfer("pushed to", r)


@cli.command()
@click.argument("remote", required=False)
@click.argument("revs", nargs=-1)
@pass_ctx
def fetch(c: Ctx, remote: str | None, revs: tuple[str, ...]) -> None:
    """Bring notes, objects and remote-tracking refs from REMOTE (everything, or just REVS)."""
    repo, created = Repo.init(c.cwd, git_env=True)  # a fresh clone has no store yet
    repo.git.warn = c.events.warn
    repo.events = c.events
    with repo:
        if created:
            click.echo(f"Initialized git-ml store in {repo.git.ml_dir}")
        r = repo.fetch(remote, list(revs) or None, events=c.events)
    _report_transfer("fetched from", r)


@cli.command()
@click.argument("remote", required=False)
@pass_ctx
def pull(c: Ctx, remote: str | None) -> None:
    """Fetch the data HEAD's pointer files pin (and the notes), then check it out."""
    repo, created = Repo.init(c.cwd, git_env=True)  # a fresh clone has no store yet
    repo.git.warn = c.events.warn
    repo.events = c.events
    with repo:
        if created:
            click.echo(f"Initialized git-ml store in {repo.git.ml_dir}")
        r, done = repo.pull(remote, events=c.events)
    _report_transfer("fetched from", r)
    for rel, oid in done:
        click.echo(f"{rel}: {oid[:12]}")


@cli.command()
@click.option("--repair", "repair_from", is_flag=False, flag_value="", default=None,
              metavar="[REMOTE]", help="Fetch good copies of damaged or missing objects "
              "from REMOTE (default: the default remote).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def fsck(c: Ctx, repair_from: str | None, as_json: bool) -> None:
    """Check every object against its id and that all refs, pointers and notes are complete."""
    with c.repo() as repo:
        report = repo.fsck(events=c.events)
        repaired = None
        if repair_from is not None and not report.ok:
            repaired = repo.repair(repair_from or None, report, events=c.events)
            report = repo.fsck(events=c.events)
    if as_json:
        out = report.to_json()
        if repaired is not None:
            out["repaired"] = repaired
        _echo_json(out)
    else:
        if repaired is not None:
            click.echo(f"repaired {repaired} objects from the remote")
        for p in report.problems:
            where = f" (referenced by {p.referenced_by})" if p.referenced_by else ""
            click.echo(f"{p.kind}: {p.message}{where}")
        state = "ok" if report.ok else f"{len(report.problems)} problems"
        later = (f" ({report.not_fetched} objects not fetched yet, held by a remote)"
                 if report.not_fetched else "")
        click.echo(f"checked {report.packs} packs, {report.objects} objects, "
                   f"{report.snapshots} snapshots: {state}{later}")
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--prune", default="2.weeks.ago", metavar="AGE",
              help="Only touch packs older than AGE (2.weeks.ago, 3d, 1h, now; default "
              "2.weeks.ago).")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--forget-clone", "forget", multiple=True, metavar="PATH",
              help="Drop a deleted clone (its path or registry key) from the shared store's "
              "registry first.")
@pass_ctx
def gc(c: Ctx, prune: str, dry_run: bool, forget: tuple[str, ...]) -> None:
    """Remove objects nothing reaches and repack the rest into fewer packs."""
    with c.repo() as repo:
        if forget:
            from mlgit.api import sharing  # imported when used: start-up time
            for key in sharing.forget_clones(repo, list(forget), dry_run=dry_run):
                click.echo(f"{'would forget' if dry_run else 'forgot'} clone {key} of the "
                           f"shared store {repo.store.shared}")
        r = repo.gc(prune=prune, dry_run=dry_run, events=c.events)
    verb = "would remove" if r.dry_run else "removed"
    click.echo(f"{verb} {r.removed_objects} objects ({_human(r.freed_bytes)}); "
               f"{r.live_objects} live objects; packs {r.packs_before} -> {r.packs_after}")
    if r.evicted_checkouts:
        click.echo(f"{'would evict' if r.dry_run else 'evicted'} {r.evicted_checkouts} "
                   f"read-only checkouts (least recently used; {_human(r.checkout_bytes)} left)")


@cli.command(hidden=True)
@click.argument("name", type=click.Choice(["post-checkout", "post-merge", "post-rewrite",
                                          "pre-push"]))
@click.argument("args", nargs=-1)
@pass_ctx
def hook(c: Ctx, name: str, args: tuple[str, ...]) -> None:
    """Run git-ml's part of a git hook (called by the installed hook scripts)."""
    # pre-push gets the pushed refs, post-rewrite the rewritten commits, on stdin.
    stdin = sys.stdin.buffer.read() if name in ("pre-push", "post-rewrite") else None
    with c.repo() as repo:
        rc = repo.run_hook(name, list(args), events=c.events, stdin=stdin,
                           reflog_action=os.environ.get("GIT_REFLOG_ACTION"))
    if rc:
        sys.exit(rc)


@cli.command(name="merge-driver", hidden=True)
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("ours", type=click.Path(path_type=Path))
@click.argument("theirs", type=click.Path(path_type=Path))
@click.argument("path")
@pass_ctx
def merge_driver(c: Ctx, base: Path, ours: Path, theirs: Path, path: str) -> None:
    """Merge two versions of a pointer file for git (set up by ``git ml init``)."""
    with c.repo() as repo:
        r = repo.merge_pointer_files(c.cwd / base, c.cwd / ours, c.cwd / theirs, path,
                                     events=c.events)
    shown = path if path.isprintable() and len(path) <= 300 else repr(path[:300])
    if r.refused is not None:
        click.echo(f"git-ml: CONFLICT ({shown}): {r.refused}", err=True)
        sys.exit(1)
    if r.conflicts:
        names = ", ".join(x.path for x in r.conflicts[:3])
        more = f" and {len(r.conflicts) - 3} more" if len(r.conflicts) > 3 else ""
        click.echo(f"git-ml: CONFLICT ({shown}): changed differently on both sides: "
                   f"{names}{more}; see `git ml status`", err=True)
        sys.exit(1)


@cli.command(name="rm")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-f", "--force", is_flag=True,
              help="Remove even if the data or the pointer holds changes not saved or committed.")
@click.option("--cached", is_flag=True,
              help="Keep the data in the work tree (as untracked files); remove the rest.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def rm(c: Ctx, paths: tuple[Path, ...], force: bool, cached: bool, as_json: bool) -> None:
    """Stop tracking datasets: pointer file (git rm), data, .gitignore line and ref.

    PATHS are data paths or their pointer files. The versions stay in the store
    until `git ml gc` finds nothing reaching them.
    """
    cwd_paths: list[str | os.PathLike[str]] = [p if p.is_absolute() else c.cwd / p for p in paths]
    with c.repo() as repo:
        results = repo.rm(cwd_paths, force=force, cached=cached, events=c.events)
    if as_json:
        _echo_json([r.to_json() for r in results])
        return
    for r in results:
        kept = "data removed" if r.data_removed else (
            "data kept" if cached else "no data in the work tree")
        ref = f"; ref datasets/{r.name} removed" if r.ref_removed else ""
        click.echo(f"rm {r.pointer} ({r.name} {r.id[:12]}; {kept}{ref})")


@cli.command(name="config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--shared", is_flag=True,
              help="Write .mlgitconfig, the committed file every clone reads (and stage it).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
@click.option("-l", "--list", "list_all", is_flag=True,
              help="List every ml.* setting in effect and where it comes from.")
@pass_ctx
def config_cmd(c: Ctx, key: str | None, value: str | None, shared: bool, unset: bool,
               list_all: bool) -> None:
    """Read or write a git-ml setting (KEY alone prints its value; KEY VALUE sets it).

    Without --shared, settings go to this clone's .git/config; with it, to
    .mlgitconfig, which every clone reads below its own config.
    """
    with c.repo() as repo:
        if list_all:
            if key is not None or unset:
                raise UsageError("--list takes no KEY and no --unset")
            for st in settings.list_settings(repo):
                click.echo(f"{st.key}={st.value}" + (
                    "  (.mlgitconfig)" if st.origin == "shared" else ""))
            return
        if key is None:
            raise UsageError("name a KEY (or use --list)")
        if unset or value is not None:
            if unset and value is not None:
                raise UsageError("--unset takes a KEY only")
            where = settings.set_setting(repo, key, None if unset else value, shared=shared)
            if shared:
                click.echo(f"{'unset' if unset else 'set'} {key} in {where} (staged; commit "
                           "it to share it)")
            return
        if shared:
            raise UsageError("--shared writes a setting: give KEY VALUE, or --unset KEY")
        found_one = settings.get_setting(repo, key)
    if found_one is None:
        sys.exit(1)
    click.echo(found_one.value)


@cli.command(name="path")
@click.argument("rev")
@click.option("--copy", is_flag=True,
              help="Always a read-only checkout, never the work tree's own copy.")
@pass_ctx
def path_cmd(c: Ctx, rev: str, copy: bool) -> None:
    """Print the path of a copy of REV to read, or of a note's payload ID (as mlgit.checkout)."""
    with c.repo() as repo:
        click.echo(str(repo.checkout(rev, events=c.events, worktree=not copy)))


# -- the model registry (mlgit/api/registry.py) -------------------------------------------
def _holder(r: StageRecord) -> str:
    """What holds a stage per a record: ``run@id12 (step N, metrics)``, or ``nothing``."""
    if r.checkpoint is None:
        return "nothing (removed)"
    step = f"step {r.step}" if r.step is not None else ""
    facts = ", ".join(x for x in (step, _fmt_metrics(r.metrics)) if x)
    return f"{r.run or '?'}@{r.checkpoint[:12]}" + (f" ({facts})" if facts else "")


def _print_record(r: StageRecord, lead: str) -> None:
    """A stage's record: when, what holds it, who; its message indented below."""
    click.echo(f"{lead}{_holder(r)}  {_when(r.time, r.tz)}{_by(r.author)}  "
               f"(record {r.id[:12]})")
    for line in r.message.splitlines():
        click.echo(f"    {line}")


def _print_promoted(r: PromoteResult) -> None:
    rec = r.record
    if not r.created:
        state = "is already empty" if rec.removed else f"already holds {_holder(rec)}"
        click.echo(f"{rec.model}@{rec.stage} {state} (since {_when(rec.time, rec.tz)}); "
                   "nothing recorded")
        return
    was = f"; was {rec.previous[:12]}" if rec.previous else ""
    click.echo(f"{rec.model}@{rec.stage}: {_holder(rec)}{was} (record {rec.id[:12]})")


@cli.command()
@click.argument("rev")
@click.argument("stage")
@click.option("-m", "--message", default="", help="Why (kept in the stage's history).")
@click.option("--model", help="The model whose stage this is (default: MODEL of a MODEL@STAGE "
              "revision, else the checkpoint's run).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def promote(c: Ctx, rev: str, stage: str, message: str, model: str | None,
            as_json: bool) -> None:
    """Record that checkpoint REV now holds STAGE (production, staging...) for its model.

    Each promotion is a record in the stage's history; `git ml push` shares it.
    """
    with c.repo() as repo:
        r = repo.promote(rev, stage, model=model, message=message, events=c.events)
    if as_json:
        _echo_json(r.to_json())
    else:
        _print_promoted(r)


@cli.command()
@click.argument("model")
@click.argument("stage")
@click.option("-m", "--message", default="", help="Why (kept in the stage's history).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def demote(c: Ctx, model: str, stage: str, message: str, as_json: bool) -> None:
    """Record that MODEL's STAGE holds nothing from now on (its history stays)."""
    with c.repo() as repo:
        r = repo.demote(model, stage, message=message, events=c.events)
    if as_json:
        _echo_json(r.to_json())
    else:
        _print_promoted(r)


@cli.command()
@click.argument("model", required=False)
@click.argument("stage", required=False)
@click.option("--history", is_flag=True, help="Every record of STAGE, newest first: who "
              "moved it, when, from which version, why.")
@click.option("--at", "at", metavar="WHEN", help="What held the stages then: a day "
              "(2025-03-01, yesterday), a moment (2025-03-01T14:30, @UNIXTIME) or an age "
              "(3.days.ago).")
@click.option("-n", "--max-count", type=click.IntRange(1), help="With --history: at most N.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def stages(c: Ctx, model: str | None, stage: str | None, history: bool, at: str | None,
           max_count: int | None, as_json: bool) -> None:
    """Show which checkpoint holds each stage of MODEL (or of every model), with its metrics."""
    if (history or max_count) and stage is None:
        raise UsageError("--history and --max-count need a MODEL and a STAGE")
    with c.repo() as repo:
        if stage is None:
            records = repo.stages(model, at=at, events=c.events)
        else:
            assert model is not None
            limit = max_count if history else None if at is not None else 1
            records = repo.stage_history(model, stage, at=at, limit=limit, events=c.events)
    if as_json:
        _echo_json([r.to_json() for r in records])
    elif stage is not None and (history or at is not None):
        for r in records:
            _print_record(r, "")
    else:
        for r in records:
            name = f"{r.remote}/{r.model}" if r.remote else r.model
            _print_record(r, f"{name:<16} {r.stage:<12} ")
def _tolerance_options(f: F) -> F:
    f = click.option("--rtol", type=click.FloatRange(0), default=1e-05, show_default=True,
                     help="Relative tolerance, as numpy.allclose.")(f)
    return click.option("--atol", type=click.FloatRange(0), default=1e-08, show_default=True,
                        help="Absolute tolerance, as numpy.allclose.")(f)


@cli.command(name="export")
@click.argument("rev")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--model", "model_name", metavar="NAME",
              help="The model's directory under DIRECTORY (default: the checkpoint's run).")
@click.option("--version", "version", type=click.IntRange(0, (1 << 63) - 1),
              help="Version number (default: one above the highest already there).")
@click.option("--no-verify", is_flag=True,
              help="Place the export without running its samples through it first.")
@_tolerance_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def export_cmd(c: Ctx, rev: str, directory: Path, model_name: str | None, version: int | None,
               no_verify: bool, atol: float, rtol: float, as_json: bool) -> None:
    """Export checkpoint REV for TensorFlow Serving: DIRECTORY/MODEL/VERSION/."""
    with c.repo() as repo:
        _ = repo.store  # an uninitialized repository fails before TensorFlow loads
        from mlgit.tf.export import export  # TensorFlow: imported only here

        r = export(repo, rev, c.cwd / directory, model=model_name, version=version,
                   check=not no_verify, atol=atol, rtol=rtol)
    if as_json:
        _echo_json(r.to_json())
        return
    v = r.verification
    checked = ("no samples to check" if r.samples == 0 else "not verified" if v is None
               else f"{r.samples} samples verified")
    click.echo(f"exported {r.version_id} ({r.source}) to {r.path} ({checked})")


def _print_verification(v: Verification) -> None:
    c = v.comparison
    what = (f"export {v.version_id}" if v.target == "export"
            else f"{v.name} {v.checkpoint[:12]}")
    err = "" if c.max_error is None else f"; max error {c.max_error:.3g}"
    noted = f"; noted on {v.noted_on[:12]}" if v.noted_on else ""
    click.echo(f"{'ok' if v.passed else 'FAILED'}: {what}: {v.summary()}{err}{noted}")
    for p in c.problems:
        click.echo(f"  {p}")
    if c.worst:
        click.echo(f"  {'index':>6}  {'output':<24} {'expected':>14} {'got':>14} {'error':>11}")

    def num(x: float | None) -> str:
        return "nan/inf" if x is None else f"{x:.7g}"

    for m in c.worst:
        at = m.output + ("[" + ",".join(map(str, m.position)) + "]" if m.position else "")
        click.echo(f"  {m.index:>6}  {at:<24} {num(m.expected):>14} {num(m.got):>14} "
                   f"{num(m.error):>11}")


@cli.command(name="verify")
@click.argument("rev", required=False)
@click.option("--export", "export_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Verify an export (a version directory or its model's) instead of REV.")
@_tolerance_options
@click.option("--show", type=click.IntRange(0), default=10, show_default=True,
              help="Print at most N of the worst mismatches.")
@click.option("--no-record", is_flag=True, help="Do not note the outcome on the commit.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def verify_cmd(c: Ctx, rev: str | None, export_dir: Path | None, atol: float, rtol: float,
               show: int, no_record: bool, as_json: bool) -> None:
    """Check that a model still gives the outputs recorded with its samples."""
    if (rev is None) == (export_dir is None):
        raise UsageError("give a checkpoint REV or --export DIR (one of them)")
    if export_dir is not None:
        if no_record:
            raise UsageError("--no-record is for REV: an export's outcome is never noted")
        from mlgit.tf.verify import verify_export  # TensorFlow: imported only here

        v = verify_export(c.cwd / export_dir, atol=atol, rtol=rtol, show=show)
    else:
        assert rev is not None
        with c.repo() as repo:
            _ = repo.store  # an uninitialized repository fails before TensorFlow loads
            from mlgit.tf.verify import verify_checkpoint  # TensorFlow: imported only here

            v = verify_checkpoint(repo, rev, atol=atol, rtol=rtol, show=show,
                                  record=not no_record)
    if as_json:
        _echo_json(v.to_json())
    else:
        _print_verification(v)
    v.check()


class _ProblemsAsWarnings(TerminalEvents):
    """Bad input printed as warnings: what is skipped must not stop a board from serving."""

    def problem(self, error: MlgitError) -> None:
        """Print the error as a warning line; it does not set the exit code."""
        self.warn(str(error))


def _serve_until_interrupted() -> None:
    """Sleep until Ctrl-C (SIGINT) or SIGTERM; then return, for a clean exit 0."""
    import signal  # imported when used: start-up time

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("git-ml: board stopped", err=True)
    finally:
        signal.signal(signal.SIGTERM, old)


@cli.command()
@click.argument("revs", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port (default: 6006 or the next free one; 0: any free port).")
@click.option("--logdir-only", "logdir_only", metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Lay the runs out in DIR (or refresh it) for a TensorBoard of your own; "
                   "do not serve.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def board(c: Ctx, revs: tuple[str, ...], host: str, port: int | None, logdir_only: Path | None,
          as_json: bool) -> None:
    """Show every teammate's runs in TensorBoard, each named author/run.

    The runs are the event files and checkpoints that the notes of REVS (commits;
    default: HEAD and every local and remote-tracking branch) name, fetched lazily.
    """
    from mlgit.api import board as boards  # imported when used: start-up time
    events = c.events if logdir_only is not None else _ProblemsAsWarnings(c.events.tty)
    with c.repo() as repo:
        result = boards.board_logdir(repo, _abs(c, logdir_only), list(revs) or None,
                                     events=events)
    if logdir_only is not None:
        if as_json:
            _echo_json(result.to_json())
            return
        for r in result.runs:
            if r.status != "unchanged":
                step = f"step {r.step}" if r.step is not None else "no checkpoint"
                click.echo(f"{r.status:9} {r.path}  ({step})")
        click.echo(f"{len(result.runs)} runs in {result.logdir}: {result.files_written} files "
                   f"written ({_human(result.bytes_written)})")
        return
    from mlgit.api.boardserver import serve_logdir  # imported when used: start-up time
    url = serve_logdir(result.logdir, host, port)
    if as_json:
        _echo_json({**result.to_json(), "url": url})
    else:
        people = len({r.path.split("/", 1)[0] for r in result.runs})
        runs = f"{len(result.runs)} run" + ("" if len(result.runs) == 1 else "s")
        who = f"{people} " + ("person" if people == 1 else "people")
        click.echo(f"{runs} of {who} from {result.logdir}")
        click.echo(f"TensorBoard at {url} (Ctrl-C to stop)")
    _serve_until_interrupted()


from mlgit.cli.results import results_cmd  # noqa: E402
from mlgit.cli.serve import serve_store  # noqa: E402

cli.add_command(serve_store)
cli.add_command(results_cmd)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="git ml", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except MlgitError as e:
        if debug or e.traceback:
            traceback.print_exc()
        click.echo(f"git-ml: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("git-ml: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("git-ml: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"git-ml: error: {e.strerror or e}"
                   f"{': ' + str(e.filename) if e.filename else ''}", err=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - last resort: any bug is reported as internal, exit 70
        if debug:
            traceback.print_exc()
        click.echo(f"git-ml: internal error: {type(e).__name__}: {e} "
                   "(run with --debug for a traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
