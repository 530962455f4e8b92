"""The ``git-ml`` command (``git ml <verb>``): argument parsing, output, exit codes.

The only layer that prints or reads the environment. Each command is a thin
wrapper over :class:`mlgit.api.repo.Repo`. Errors print one line to stderr
and exit with the code of their class (docs/exit-codes.md); a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlgit import __version__
from mlgit.api.repo import Repo
from mlgit.cli.progress import TerminalEvents
from mlgit.errors import MlgitError
from mlgit.format.config import StoreConfig

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


def _when(t: int, tz: int) -> str:
    sign = "+" if tz >= 0 else "-"
    local = time.gmtime(t + tz * 60)
    offset = f"{sign}{abs(tz) // 60:02d}{abs(tz) % 60:02d}"
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + " " + offset


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


class Ctx:
    """Per-invocation state: where to run and how to report."""

    def __init__(self, cwd: Path, debug: bool) -> None:
        self.cwd = cwd
        self.debug = debug
        self.events = TerminalEvents(sys.stderr.isatty())

    def repo(self) -> Repo:
        """The repository around ``cwd``."""
        return Repo(self.cwd)


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


@cli.command()
@click.option("--pack-size", type=click.IntRange(1024), hidden=True)
@click.option("--chunk-size", type=click.IntRange(256, 4 << 20), hidden=True,
              help="Average chunk size (min is a quarter, max four times).")
@pass_ctx
def init(c: Ctx, pack_size: int | None, chunk_size: int | None) -> None:
    """Create the sidecar store in .git/ml (harmless if it exists)."""
    defaults = StoreConfig()
    config = StoreConfig(
        pack_size=pack_size or defaults.pack_size,
        chunk_avg=chunk_size or defaults.chunk_avg,
        chunk_min=(chunk_size // 4) if chunk_size else defaults.chunk_min,
        chunk_max=(chunk_size * 4) if chunk_size else defaults.chunk_max,
    )
    repo, created = Repo.init(c.cwd, config, hooks=False)
    with repo:
        verb = "Initialized empty" if created else "Reinitialized existing"
        click.echo(f"{verb} git-ml store in {repo.git.ml_dir}")
        if repo.git.workdir is not None:
            for h in repo.install_hooks():
                if h.action == "chained":
                    click.echo(f"hook {h.name}: installed; the existing hook runs first "
                               f"({h.path.name}.mlgit-chained)")
                elif h.action != "current":
                    click.echo(f"hook {h.name}: {h.action}")


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
        if e.state == "clean":
            click.echo(f"{e.path}: clean ({e.name} {e.id[:12]})")
        elif e.state == "missing":
            click.echo(f"{e.path}: missing (run `git ml checkout {e.path}`)")
        else:
            click.echo(f"{e.path}: modified ({len(e.changes)} changes from {e.name} {e.id[:12]})")
            for ch in e.changes:
                where = e.path if e.is_file else f"{e.path}/{ch.path}"
                click.echo(f"  {_STATUS_WORDS[ch.status]:<9} {where}")


_STATUS_WORDS = {"A": "added", "D": "removed", "M": "modified", "T": "typechange"}


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


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def ls_cmd(c: Ctx, as_json: bool) -> None:
    """List every dataset and checkpoint run with its newest version."""
    with c.repo() as repo:
        entries = repo.ls()
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    for e in entries:
        s = e.snapshot
        click.echo(f"{e.kind:<10} {e.name:<24} {e.id[:12]}  {s.files:>8} files "
                   f"{_human(s.bytes):>10}  {_when(s.time, s.tz)}")


@cli.command()
@click.argument("rev")
@click.option("-n", "--max-count", type=click.IntRange(1), help="Show at most N versions.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def history(c: Ctx, rev: str, max_count: int | None, as_json: bool) -> None:
    """List REV and its earlier versions (first parents), newest first."""
    with c.repo() as repo:
        infos = repo.log(rev, max_count)
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


@cli.command(hidden=True)
@click.argument("name", type=click.Choice(["post-checkout", "post-merge"]))
@click.argument("args", nargs=-1)
@pass_ctx
def hook(c: Ctx, name: str, args: tuple[str, ...]) -> None:
    """Run git-ml's part of a git hook (called by the installed hook scripts)."""
    with c.repo() as repo:
        rc = repo.run_hook(name, list(args), events=c.events)
    if rc:
        sys.exit(rc)


@cli.command(name="path")
@click.argument("rev")
@pass_ctx
def path_cmd(c: Ctx, rev: str) -> None:
    """Print the path of a read-only copy of REV (as mlgit.checkout does)."""
    with c.repo() as repo:
        click.echo(str(repo.checkout(rev, events=c.events)))


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
    except Exception as e:
        if debug:
            traceback.print_exc()
        click.echo(f"git-ml: internal error: {type(e).__name__}: {e} "
                   "(run with --debug for a traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
