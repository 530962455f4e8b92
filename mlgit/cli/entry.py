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
work and reports as always; the quick answer changes nothing that shows, so
nothing is done twice that shows.

Quicker still, the answer is remembered (:mod:`mlgit.gitlink.answers`) with the
files it was read from, and given back while they are unchanged and git itself
finds every tracked path's files as their stat index lists them
(:mod:`mlgit.gitlink.statindex`): one ``git rev-parse``, a few ``lstat`` calls
and two git commands per tracked path, with no import beyond :mod:`os`.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not typing's: this module is the start-up path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from mlgit.api.core import Core

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run ``git-ml``: the quick answer for an unchanged ``status`` or ``add``, else the CLI."""
    args = sys.argv[1:] if argv is None else argv
    if _is_hot(args):
        started = time.time_ns()
        place = _place(args)
        from mlgit.gitlink.answers import FilesChanged

        try:
            text = _recalled(place) if place is not None else None
            if text is not None:
                _print([text])
                return
            lines = _quick(args, place, started)
        except FilesChanged:  # the stat caches cannot vouch either: the whole work
            lines = None
        if lines is not None:
            _print(lines)
            return
    from mlgit.cli.main import main as cli_main

    cli_main(argv)


def _is_hot(args: list[str]) -> bool:
    """Whether ``args`` is ``status`` or ``add PATH...`` with no option: a quick answer may do."""
    return bool(args) and args[0] in ("status", "add") and (len(args) == 1) == (
        args[0] == "status") and not any(not a or a.startswith("-") for a in args)


class _Place:
    """Where a hot command runs: git's own view of the repository, and the answer's key."""

    __slots__ = ("cache_dir", "common_dir", "git_dir", "index", "key", "top")

    def __init__(self, top: str, git_dir: str, common_dir: str, args: list[str]) -> None:
        self.top = top
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.cache_dir = os.path.join(common_dir, "ml", "cache")
        self.key = b"\0".join(os.fsencode(x) for x in (
            "v1", top, git_dir, common_dir, os.getcwd(), *args))
        # git's index, before anything reads it: git replaces it (a new inode) and
        # never writes it in place, so a later change shows whenever it happens
        self.index = _lstat_all([os.path.join(git_dir, "index")])


def _place(args: list[str]) -> _Place | None:
    """One ``git rev-parse``: the work tree, git dir and common dir, as git finds them."""
    from mlgit.gitlink.statindex import git_output

    try:
        out = git_output(["rev-parse", "--path-format=absolute", "--show-toplevel",
                          "--git-dir", "--git-common-dir"], dict(os.environ), os.getcwd())
        if out is None:
            return None
        parts = os.fsdecode(out).split("\n")
    except OSError:
        return None
    if len(parts) != 4 or parts[3] or not all(parts[:3]):
        return None
    return _Place(parts[0], parts[1], parts[2], args)


def _recalled(place: _Place) -> str | None:
    """The remembered answer, if it still holds and can be printed; None otherwise."""
    from mlgit.gitlink.answers import recall

    try:
        data = recall(place.cache_dir, place.key, place.git_dir, place.top, dict(os.environ))
        if data is None:
            return None
        text = data.decode("utf-8")
        text.encode(sys.stdout.encoding or "utf-8")
    except (OSError, UnicodeError, LookupError):
        return None
    return text


def _quick(args: list[str], place: _Place | None, started: int) -> list[str] | None:
    """The output of ``args`` when it is a hot verb with nothing changed; None otherwise.

    When ``place`` agrees with the repository the API finds, the answer is
    remembered for the next run.
    """
    warned: list[str] = []
    try:
        from pathlib import Path

        from mlgit.api.core import Core

        core = Core(Path(os.getcwd()), git_env=True)
        core.git.warn = warned.append  # any warning: the CLI shows it
        found = _status(core) if args[0] == "status" else _add(core, args[1:])
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - any doubt: the CLI does the whole work and reports
        return None
    if warned or found is None:
        return None
    lines, witnesses = found
    encoding = sys.stdout.encoding or "utf-8"
    try:  # what click.echo could not print either: let the CLI report it
        "".join(lines).encode(encoding)
    except (UnicodeError, LookupError):
        return None
    if place is not None:
        _remember(core, place, lines, witnesses, started)
    return lines


_Witnesses = tuple[list[tuple[bytes, str]], list[tuple[str, str]]]
_Found = tuple[list[str], "Callable[[], _Witnesses]"]
"""A quick answer's lines, and how to find its witnesses and stat-index checks (see
:mod:`mlgit.gitlink.answers`)."""


def _remember(core: Core, place: _Place, lines: list[str],
              witnesses: Callable[[], _Witnesses], started: int) -> None:
    """Keep the answer for the next run: git and the API agree on the place, nothing changed."""
    from mlgit.gitlink.answers import CONTENT, remember
    from mlgit.gitlink.statindex import unchanged

    git = core.git
    try:
        if (str(git.workdir) != place.top or str(git.own_git_dir) != place.git_dir
                or str(git.git_dir) != place.common_dir
                or str(core.cache_dir) != place.cache_dir):
            return
        found, checks = witnesses()
        base = [(CONTENT, os.path.join(place.common_dir, "ml", "config"))]
        if not checks or place.index is None:
            return
        checked = _lstat_all([index for index, _ in checks])
        if checked is None or not unchanged(checks, place.git_dir, place.top,
                                            dict(os.environ)):
            # Entries too new to trust when the cache was written (or a cache written
            # before stat indexes were) are fine now: write the stat indexes again from
            # the caches just vouched for.
            _rewrite_stat_indexes(core, [rel for _, rel in checks], started)
            checked = _lstat_all([index for index, _ in checks])
            if checked is None or not unchanged(checks, place.git_dir, place.top,
                                                dict(os.environ)):
                return
        remember(place.cache_dir, place.key, base + found, checks,
                 "".join(lines).encode("utf-8"), started, checked | place.index)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - remembering is only a shortcut for the next run
        return


def _lstat_all(paths: list[str]) -> dict[str, os.stat_result] | None:
    """Each path's ``lstat``; None if one is missing."""
    try:
        return {p: os.lstat(p) for p in paths}
    except OSError:
        return None


def _rewrite_stat_indexes(core: Core, rels: list[str], started: int) -> None:
    """Write each tracked path's stat index again from its stat cache (see ``write_git_index``)."""
    from mlgit.snapshot import statcache

    work = core.git.require_workdir()
    for rel in rels:
        full = work / rel
        target = core.git_index_target(full)
        if target is None:
            continue
        cpath = statcache.cache_path(core.cache_dir, full)
        statcache.write_git_index(cpath, statcache.load(cpath), started, target)


def _status(core: Core) -> _Found | None:
    from mlgit.api.status import status_if_unchanged

    entries = status_if_unchanged(core)
    if not entries:  # no datasets: the CLI says how to start one
        return None
    lines = [f"{e.path}: clean ({e.name} {e.id[:12]}"
             f"{f', imported from {e.source.url}' if e.source is not None else ''})\n"
             for e in entries]
    pairs = [(e.path, e.pointer) for e in entries]
    return lines, lambda: _tracked_witnesses(core, pairs)


def _add(core: Core, paths: list[str]) -> _Found | None:
    from pathlib import Path

    from mlgit.api.add import add_if_unchanged
    from mlgit.gitlink.answers import CONTENT
    from mlgit.gitlink.index import ignored_by, indexed_pointers

    cwd = Path(os.getcwd())
    results = add_if_unchanged(core, [cwd / p for p in paths])
    if results is None:
        return None
    lines = [f"{r.name} {r.id} (unchanged) -> {r.pointer}\n" for r in results]

    def witnesses() -> tuple[list[tuple[bytes, str]], list[tuple[str, str]]]:
        # add reads every pointer file (no other may name these datasets), the
        # .gitignore line of each path, and each dataset's ref
        ours = {r.pointer for r in results}
        pairs = [(r.path, r.pointer) for r in results]
        pairs += [("", p) for p in indexed_pointers(core.git) if p not in ours]
        found, checks = _tracked_witnesses(core, pairs)
        work = core.git.require_workdir()
        for r in results:
            ignore = ignored_by(core.git, r.path)
            if ignore is None:
                raise OSError(f"{r.path} is not ignored")
            found += [(CONTENT, str(work / ignore)),
                      (CONTENT, str(core.refs.path("datasets", r.name)))]
        return found, checks

    return lines, witnesses


def _tracked_witnesses(core: Core, pairs: list[tuple[str, str]]
                       ) -> tuple[list[tuple[bytes, str]], list[tuple[str, str]]]:
    """Witnesses and checks of tracked paths and pointer files (``(path or "", pointer)``).

    Each pointer file's content and the directories on the way to it and to its
    tracked path; each tracked path's stat cache, its stat index's git check,
    and every directory of it (whose mtime shows an entry added or removed).
    """
    from mlgit.gitlink.answers import CONTENT, PLACE
    from mlgit.snapshot import statcache

    work = core.git.require_workdir()
    witnesses: list[tuple[bytes, str]] = []
    checks: list[tuple[str, str]] = []
    places: set[str] = set()
    for rel, pointer in pairs:
        witnesses.append((CONTENT, str(work / pointer)))
        for path in (rel, pointer):
            parts = path.split("/")[:-1] if path else []
            places.update("/".join(parts[:i]) for i in range(len(parts) + 1))
        if rel:
            places.add(rel)
            full = work / rel
            cpath = statcache.cache_path(core.cache_dir, full)
            index = statcache.git_index_path(cpath)
            witnesses.append((CONTENT, str(cpath)))
            checks.append((str(index), rel))  # (a witness too: see answers.remember)
            if full.is_dir():
                dirs = statcache.load(cpath).dirs
                if "" not in dirs:
                    raise OSError(f"{rel}: no stat cache")
                witnesses += [(CONTENT, os.path.join(full, d) if d else str(full))
                              for d in sorted(dirs)]
    witnesses += [(PLACE, str(work / p) if p else str(work)) for p in sorted(places)]
    return witnesses, checks


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
