"""The environment variables git itself honours, read in one place.

git-ml's own settings come from git config (:mod:`mlgit.gitlink.settings`), never
from the environment. But what *git* takes from the environment must work the same
whether git-ml is run as ``git ml`` or called from Python (``mlgit.checkout``), so
this module, and no other below the CLI, reads ``os.environ``
(``tests/test_layers.py`` allows exactly this one):

- ``GIT_DIR``, ``GIT_WORK_TREE``: the repository and work tree, as git finds them
  (:func:`mlgit.gitlink.repo.discover`); ``GIT_CEILING_DIRECTORIES`` bounds the walk
  up from the current directory;
- ``GIT_SSH_COMMAND``, ``GIT_SSH``: the ssh client, with git's precedence
  (:meth:`GitEnv.ssh_client`);
- ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>``,
  ``GIT_CONFIG_PARAMETERS`` (``git -c``), ``GIT_CONFIG_GLOBAL``, ``GIT_CONFIG_NOSYSTEM``
  and the author/committer variables are honoured by the ``git`` executable git-ml
  runs for every config lookup and for the author (it inherits the environment), so
  they need no code here.

A :class:`GitEnv` is a snapshot taken when a repository is opened: later changes to
the environment do not reach an opened :class:`~mlgit.gitlink.repo.GitRepo`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["GitEnv", "shell_command"]


@dataclass(frozen=True)
class GitEnv:
    """What git reads from the environment, as git-ml needs it (empty strings are unset)."""

    git_dir: str | None = None
    work_tree: str | None = None
    ceiling_dirs: tuple[str, ...] = ()
    ssh_command: str | None = None
    ssh: str | None = None

    @classmethod
    def current(cls) -> GitEnv:
        """The variables of this process's environment."""
        return cls.from_mapping(os.environ)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> GitEnv:
        """The variables of ``env`` (a mapping like ``os.environ``)."""
        def get(key: str) -> str | None:
            value = env.get(key)
            return value if value else None

        ceilings = tuple(p for p in (env.get("GIT_CEILING_DIRECTORIES") or "").split(os.pathsep)
                         if p and os.path.isabs(p))
        return cls(git_dir=get("GIT_DIR"), work_tree=get("GIT_WORK_TREE"),
                   ceiling_dirs=ceilings, ssh_command=get("GIT_SSH_COMMAND"),
                   ssh=get("GIT_SSH"))

    def ssh_client(self, core_ssh_command: str | None) -> list[str] | None:
        """The ssh client's argv, as git chooses it; None for plain ``ssh``.

        git's order (``connect.c``): ``GIT_SSH_COMMAND``, then ``core.sshCommand``
        (both shell command lines: :func:`shell_command`), then ``GIT_SSH`` (a
        program, run without a shell: one argv element), then ``ssh``.
        """
        for command in (self.ssh_command, core_ssh_command):
            if command and command.strip():
                return shell_command(command)
        return [self.ssh] if self.ssh else None


_SHELL_META = set("|&;<>()$`\\\"' \t\n*?[#~=%")
"""The characters for which git runs a command line through the shell (run-command.c)."""
_COMPOUND = set("|&;<>()`\n")
"""Characters that make a command line more than one simple command."""
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^\"'\\$`]*\Z")
"""A leading ``NAME=VALUE`` word of a simple command (unquoted, no expansion)."""


def shell_command(command: str) -> list[str]:
    """The argv prefix that runs ``command`` with more arguments appended, as git does.

    git (``prepare_shell_cmd``) runs a command line with any shell metacharacter
    (a space included) as ``sh -c 'COMMAND "$@"' COMMAND ARGS...``, so quoting,
    ``&&``, variables and ``~`` work as in a shell; a bare program name is run
    directly. A simple command (no ``;``, ``&``, ``|``, parentheses, redirections,
    backquotes or newlines) is ``exec``'d by the
    shell, so killing the process kills the command; a compound one runs in the
    shell, as git runs it.
    """
    if not any(c in _SHELL_META for c in command):
        return [command]
    if not any(c in _COMPOUND for c in command):
        # One simple command: the shell execs it (after any leading NAME=VALUE
        # words, which exec's command still gets), so the process git-ml waits for
        # (and kills when a remote stops answering) is the command itself, not a
        # shell whose child would live on.
        words = command.split()
        n = 0
        while n < len(words) and _ASSIGNMENT.match(words[n]):
            n += 1
        if n < len(words) and "=" not in words[n].split("'")[0].split('"')[0]:
            simple = " ".join([*words[:n], "exec"]) + " " + command.split(None, n)[n] if n \
                else f"exec {command}"
            return ["sh", "-c", f'{simple} "$@"', command]
    return ["sh", "-c", f'{command} "$@"', command]
