"""``git ml config``: read and write git-ml's settings, this clone's or the shared ones.

A setting lives in this clone's git config (``.git/config``, written with ``git
config``) or in the committed ``.mlgitconfig`` that every clone reads below its own
config (:mod:`mlgit.gitlink.settings`, which says which keys may be shared and
why). Writing the shared file stages it; committing and pushing it is the user's
step, as for any file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgit.errors import GitCommandError, UsageError
from mlgit.gitlink.settings import normalize_key, shared_settings, write_shared

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["Setting", "get_setting", "list_settings", "set_setting"]


@dataclass
class Setting:
    """One setting in effect: its key, value and where it comes from (``git`` or ``shared``)."""

    key: str
    value: str
    origin: str


def _check_key(key: str) -> str:
    section, dot, rest = key.partition(".")
    if section.lower() != "ml" or not dot or not rest or rest.endswith(".") or not (
            key.isprintable()):
        raise UsageError(f"{key[:100]!r} is not a git-ml setting (they are ml.<name> and "
                         "ml.<remote>.<name>; for git's own settings use `git config`)")
    return key


def get_setting(repo: Core, key: str) -> Setting | None:
    """The value of ``key`` in effect (git's config first, then the shared file), or None."""
    _check_key(key)
    try:
        value = repo.git.run_git("config", "--get", key).decode("utf-8", "replace").strip()
        return Setting(key, value, "git")
    except GitCommandError:
        pass
    shared = shared_settings(repo.git).values.get(normalize_key(key))
    return None if shared is None else Setting(key, shared, "shared")


def set_setting(repo: Core, key: str, value: str | None, *, shared: bool = False) -> str:
    """Set (``value`` None: unset) ``key`` in this clone's git config, or in the shared file.

    Returns where it was written: ``.git/config`` or ``.mlgitconfig`` (then staged).
    The shared file takes only the keys and values it may hold (UsageError).
    """
    _check_key(key)
    if shared:
        return write_shared(repo.git, key, value)
    try:
        if value is None:
            repo.git.run_git("config", "--local", "--unset-all", key)
        else:
            repo.git.run_git("config", "--local", key, value)
    except GitCommandError as e:
        if value is None and not e.stderr.strip():
            raise UsageError(f"{key} is not set in this clone's git config") from None
        raise
    return ".git/config"


def list_settings(repo: Core) -> list[Setting]:
    """Every ``ml.*`` setting in effect, git's config over the shared file, sorted by key."""
    out: dict[str, Setting] = {}
    try:
        listed = repo.git.run_git("config", "-z", "--get-regexp", r"^ml\.")
    except GitCommandError:
        listed = b""
    for item in listed.split(b"\0"):
        if item:
            raw_key, _, value = item.decode("utf-8", "replace").partition("\n")
            key = normalize_key(raw_key)
            out[key] = Setting(key, value, "git")
    for key, value in shared_settings(repo.git).values.items():
        out.setdefault(key, Setting(key, value, "shared"))
    return [out[k] for k in sorted(out)]

