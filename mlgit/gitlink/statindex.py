"""Ask git itself whether a tracked path changed since its stat cache was written.

:func:`mlgit.snapshot.statcache.save` writes, beside each stat cache, a private
git index of the tracked path's files and their stat data
(:mod:`mlgit.format.gitindex`). :func:`unchanged` runs two real git commands on
it, at once: ``git diff-files --quiet`` (every listed file still has the
recorded stat: git's own ``lstat`` loop, in C, on several threads) and ``git
ls-files --others --directory`` (no file or directory under the path that the
index does not list; a caller that watches the directories' stat instead can
leave this one out). The stat comparison is git's strictest: the options this
module passes switch off anything that would trust less (``core.checkStat``,
``core.trustctime``, ``core.fileMode``, ``core.fsmonitor``, ``core.ignoreCase``).

What git cannot see makes the answer "changed", never "unchanged": a symlink,
an empty directory or a racy entry (smudged by the writer) in the path shows up
in one of the two answers, and so does any failure. Two things git skips and a
scan would only warn about are not seen: a new entry named exactly ``.git`` and
a file that is neither a file, a directory nor a symlink.

Imports nothing but :mod:`os`: this is on the start-up path of ``git ml status``.
"""

from __future__ import annotations

import os

__all__ = ["GIT_OPTIONS", "git_output", "unchanged"]

GIT_OPTIONS = (
    "-c", "core.fsmonitor=false", "-c", "core.checkStat=default", "-c", "core.trustctime=true",
    "-c", "core.fileMode=true", "-c", "core.ignoreCase=false", "-c", "core.preloadIndex=true",
    "-c", "core.quotePath=false", "-c", "core.splitIndex=false",
)
_READ = 65536


def unchanged(checks: list[tuple[str, str]], git_dir: str, work_tree: str,
              env: dict[str, str], *, others: bool = True) -> bool:
    """True if, for each ``(index_file, rel)``, git finds the files as listed and nothing else.

    With ``others`` False, "nothing else" is not asked (no ``ls-files``): for a
    caller that knows no entry was added, from the directories' own stat.

    ``rel`` is a tracked path relative to ``work_tree`` (``/``-separated) and
    ``index_file`` the git index :func:`mlgit.snapshot.statcache.save` wrote for
    it; ``env`` the environment git runs in (the caller's: ``GIT_INDEX_FILE``,
    ``GIT_DIR`` and ``GIT_WORK_TREE`` are set here). Every command starts at
    once. False when any of them reports anything, fails, or cannot be started.
    """
    commands = []
    for index_file, rel in checks:
        run_env = dict(env)
        run_env.update(GIT_INDEX_FILE=index_file, GIT_DIR=git_dir, GIT_WORK_TREE=work_tree,
                       GIT_LITERAL_PATHSPECS="1", GIT_OPTIONAL_LOCKS="0")
        commands.append(
            (["git", *GIT_OPTIONS, "diff-files", "--quiet", "--ignore-submodules", "--", rel],
             run_env))
        if others:
            commands.append(
                (["git", *GIT_OPTIONS, "ls-files", "-z", "--others", "--directory", "--", rel],
                 run_env))
    started: list[tuple[int, int]] = []
    ok = bool(commands)
    try:
        for argv, run_env in commands:
            started.append(_spawn(argv, run_env, work_tree))
        for _, out in started:
            ok = _drained_empty(out) and ok
    except OSError:
        ok = False
    finally:
        for pid, out in started:
            try:  # noqa: SIM105 - contextlib costs start-up time
                os.close(out)
            except OSError:
                pass
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                ok = False
                continue
            ok = ok and os.waitstatus_to_exitcode(status) == 0
    return ok and len(started) == len(commands)


def git_output(args: list[str], env: dict[str, str], cwd: str) -> bytes | None:
    """The standard output of ``git -C cwd ARGS...``, or None if it fails or cannot start."""
    try:
        pid, out = _spawn(["git", *args], env, cwd)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(out, _READ):
            chunks.append(chunk)
    except OSError:
        chunks = []
    finally:
        os.close(out)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not chunks:
        return None
    return b"".join(chunks)


def _spawn(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, int]:
    """Start git ``argv`` in ``cwd`` (``git -C``), stdout on a (returned) pipe, the rest on null."""
    read_end, write_end = os.pipe()
    try:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = os.posix_spawnp(argv[0], [argv[0], "-C", cwd, *argv[1:]], env, file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
                (os.POSIX_SPAWN_CLOSE, read_end),
            ])
        finally:
            os.close(devnull)
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    os.close(write_end)
    return pid, read_end


def _drained_empty(fd: int) -> bool:
    """Read ``fd`` to its end; True if it held nothing."""
    empty = True
    while True:
        chunk = os.read(fd, _READ)
        if not chunk:
            return empty
        empty = False
