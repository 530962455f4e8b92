"""The ``git-ml`` console entry point: the hot verbs' common answer first, then the CLI.

``git ml status`` and ``git ml add PATH...`` are what people run most, and most
often nothing changed: the answer is then a few ``lstat`` calls away
(:func:`mlgit.api.status.status_if_unchanged`,
:func:`mlgit.api.add.add_if_unchanged`), while loading click and every
command of :mod:`mlgit.cli.main` costs several times that. This module imports
neither: for exactly those command lines (no option at all) it asks the API for
the no-change answer and prints it as :mod:`mlgit.cli.main` would. Anything
else (another verb or option, a change, a pointer file to refuse, a warning,
an error of any kind) goes to :func:`mlgit.cli.main.main`, which does the whole
work and reports as always; the quick answer writes nothing, so nothing is done
twice that shows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run ``git-ml``: the quick answer for an unchanged ``status`` or ``add``, else the CLI."""
    args = sys.argv[1:] if argv is None else argv
    lines = _quick(args)
    if lines is not None:
        _print(lines)
        return
    from mlgit.cli.main import main as cli_main

    cli_main(argv)


def _quick(args: list[str]) -> list[str] | None:
    """The output of ``args`` when it is a hot verb with nothing changed; None otherwise."""
    if not args or args[0] not in ("status", "add") or any(
            not a or a.startswith("-") for a in args):
        return None
    warned: list[str] = []
    try:
        from mlgit.api.core import Core

        core = Core(Path(os.getcwd()), git_env=True)
        core.git.warn = warned.append  # any warning: the CLI shows it
        if args[0] == "status":
            lines = _status(core) if len(args) == 1 else None
        else:
            lines = _add(core, args[1:])
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - any doubt: the CLI does the whole work and reports
        return None
    if warned or lines is None:
        return None
    encoding = sys.stdout.encoding or "utf-8"
    try:  # what click.echo could not print either: let the CLI report it
        "".join(lines).encode(encoding)
    except (UnicodeError, LookupError):
        return None
    return lines


def _status(core: Core) -> list[str] | None:
    from mlgit.api.status import status_if_unchanged

    entries = status_if_unchanged(core)
    if not entries:  # no datasets: the CLI says how to start one
        return None
    return [f"{e.path}: clean ({e.name} {e.id[:12]}"
            f"{f', imported from {e.source.url}' if e.source is not None else ''})\n"
            for e in entries]


def _add(core: Core, paths: list[str]) -> list[str] | None:
    from mlgit.api.add import add_if_unchanged

    cwd = Path(os.getcwd())
    results = add_if_unchanged(core, [cwd / p for p in paths])
    if results is None:
        return None
    return [f"{r.name} {r.id} (unchanged) -> {r.pointer}\n" for r in results]


def _print(lines: list[str]) -> None:
    try:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_exit()


def _quiet_exit() -> NoReturn:
    """Leave after a closed pipe without Python's complaint at shutdown (as the CLI does)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    sys.exit(0)
