"""git-ml's settings: the clone's own git config, then the committed ``.mlgitconfig``.

As git-lfs does with ``.lfsconfig``, settings a whole team shares (where a remote's
store lives, the SSH server's git-ml, timeouts) can be committed in a file
``.mlgitconfig`` at the top of the work tree, in git-config syntax. Every lookup of
a git-ml setting goes through :func:`setting`: ``git config --get KEY`` (every
scope git reads: system, global, the repository's ``.git/config``, ``git -c``,
``GIT_CONFIG_*``), and only when git has no value, the file. So a clone's own
config always wins, and a clone needs no configuration by hand.

The file comes from a commit, that is from anyone who can push: it is hostile
input. It is read without following a symlink, only if it is a regular file of at
most ``MAX_SHARED_CONFIG_LEN`` bytes, and parsed by ``git config -f -`` (stdin:
``[include]`` is never followed). Only the keys of :data:`SHARED_KEYS` are taken
from it, and only with values of the expected shape (:func:`check_shared`); none
of them can make your machine run a command or hold a credential:

- ``ml.remote``, ``ml.lazyFetch``, ``ml.timeout``, ``ml.pushImports``;
- ``ml.<remote>.url`` (no password or key in it), ``ml.<remote>.endpoint`` (an
  ``http(s)://host[:port]`` S3 endpoint, without credentials),
  ``ml.<remote>.timeout``, where ``<remote>`` is a remote's name or the source
  URL of imported data (one :func:`~mlgit.format.source.check_source_url`
  accepts: where that repository's store is, for every clone);
- ``ml.<remote>.gitml``: the git-ml to run *on the SSH server*, only as a plain
  path to a program named ``git-ml`` (no spaces, arguments or shell characters), so
  a commit cannot make the server run anything but git-ml under your login.

Anything else (``core.sshCommand``, ``ml.hooks``, unknown keys, a value of the
wrong shape), a file that is too large or not a regular file, and a file git
cannot parse are reported once per opened repository (to
:attr:`GitRepo.warn <mlgit.gitlink.repo.GitRepo.warn>`, else as a Python
:class:`SettingsWarning`) and ignored; nothing fails because of the file.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

from mlgit.errors import BadPathError, FormatError, GitCommandError, UsageError
from mlgit.format.limits import MAX_SETTING_LEN, MAX_SHARED_CONFIG_LEN
from mlgit.format.source import check_source_url
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import open_regular, read_bounded

__all__ = ["SHARED_FILE", "SHARED_KEYS", "SettingsWarning", "SharedSettings", "check_shared",
           "check_shared_key", "normalize_key", "setting", "setting_bool", "shared_settings",
           "write_shared"]

SHARED_FILE = ".mlgitconfig"
"""The committed settings file, at the top of the work tree."""

SHARED_KEYS = ("ml.remote", "ml.lazyFetch", "ml.timeout", "ml.pushImports", "ml.<remote>.url",
               "ml.<remote>.endpoint", "ml.<remote>.gitml", "ml.<remote>.timeout")
"""The keys git-ml takes from the committed file (``<remote>``: a remote's name, or an
imported pointer's source URL)."""

_GLOBAL = {"remote", "lazyfetch", "timeout", "pushimports"}
_PER_REMOTE = {"url", "endpoint", "gitml", "timeout"}
_NEVER = {"core.sshcommand": "it would run a command on your machine",
          "ml.hooks": "whether git-ml's hooks run is your choice, not a commit's"}
_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_GITML = re.compile(r"(?:[A-Za-z0-9._+~/][A-Za-z0-9._+~/-]*/)?git-ml\Z")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/-]*)?\Z")
_CREDENTIALS = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@")
_SCP_CREDENTIALS = re.compile(r"\A[^/@]*:[^/@]*@")
_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "": True,
          "false": False, "no": False, "off": False, "0": False}


class SettingsWarning(UserWarning):
    """A problem with ``.mlgitconfig`` (the setting or file was ignored)."""


@dataclass
class SharedSettings:
    """What the committed file holds that git-ml may use, and what was wrong with it."""

    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    present: bool = False


def normalize_key(key: str) -> str:
    """``section.subsection.name`` with the section and name in lower case, as git compares."""
    section, _, rest = key.partition(".")
    sub, dot, name = rest.rpartition(".")
    return f"{section.lower()}.{sub}{dot}{name.lower()}" if rest else section.lower()


def _split(key: str) -> tuple[str, str | None, str]:
    """(section, subsection or None, name) of a normalized key."""
    section, _, rest = key.partition(".")
    sub, dot, name = rest.rpartition(".")
    return section, (sub if dot else None), name


def check_shared_key(key: str) -> str | None:
    """Why ``key`` may not come from the committed file; None if it may."""
    shown = key[:100] if key.isprintable() else repr(key[:100])
    section, sub, name = _split(normalize_key(key))
    if key.lower() in _NEVER:
        return f"git-ml never takes {shown} from {SHARED_FILE}: {_NEVER[key.lower()]}"
    if section != "ml" or not ((sub is None and name in _GLOBAL) or (
            sub is not None and name in _PER_REMOTE)):
        return (f"{shown} is not a setting git-ml takes from {SHARED_FILE} (those are "
                f"{', '.join(SHARED_KEYS)})")
    if sub is not None and not (_REMOTE_NAME.match(sub) or _is_source_url(sub)):
        return f"{shown}: {sub[:80]!r} is not a remote name or an import's source URL"
    return None


def _is_source_url(sub: str) -> bool:
    """True when ``sub`` is a URL an imported pointer may record (``ml.<URL>.url``...)."""
    try:
        check_source_url(sub)
    except FormatError:
        return False
    return True


def check_shared(key: str, value: str) -> str | None:
    """Why ``key = value`` may not come from the committed file; None if it may."""
    why = check_shared_key(key)
    if why is not None:
        return why
    name = _split(normalize_key(key))[2]
    if len(value) > MAX_SETTING_LEN or not value.isprintable() or any(c.isspace() for c in value):
        return f"{key}: the value must be one word of printable characters"
    if name in ("lazyfetch", "pushimports"):
        return None if value.lower() in _BOOLS else f"{key}: {value[:40]!r} is not a boolean"
    if name == "timeout":
        try:
            ok = 0 < float(value) <= 1e6
        except ValueError:
            ok = False
        return None if ok else f"{key}: {value[:40]!r} is not a number of seconds"
    if name == "gitml":
        return None if _GITML.match(value) else (
            f"{key}: from {SHARED_FILE} only a plain path to a program named git-ml "
            "(e.g. /opt/venv/bin/git-ml) is taken, nothing a shell would interpret")
    if name == "endpoint":  # (the value is never shown: it may hold a key)
        return None if _ENDPOINT.match(value) else (
            f"{key}: the value is not an http(s)://host[:port] URL without credentials")
    # url, or ml.remote (a remote's name or a URL)
    if name == "remote" and _REMOTE_NAME.match(value):
        return None
    if value.startswith("-") or _CREDENTIALS.match(value) or _SCP_CREDENTIALS.match(value) or (
            value.startswith("s3://") and "@" in value):
        return f"{key}: a URL there must not carry credentials (and must not start with '-')"
    if value.lower().startswith(("http://", "https://", "git://", "ext::")):
        return f"{key}: git-ml cannot reach {value.split(':', 1)[0]} URLs"
    return None


def _report(git: GitRepo, problems: list[str]) -> None:
    for p in problems:
        message = f"{p if p.startswith(SHARED_FILE) else f'{SHARED_FILE}: {p}'} (ignored)"
        if git.warn is not None:
            git.warn(message)
        else:
            warnings.warn(message, SettingsWarning, stacklevel=4)


def shared_settings(git: GitRepo) -> SharedSettings:
    """The usable settings of the work tree's ``.mlgitconfig`` (read once per GitRepo).

    Problems are reported (see the module docstring) the first time it is read.
    A bare repository has none.
    """
    cached = git.memo.get("shared-settings")
    if isinstance(cached, SharedSettings):
        return cached
    out = SharedSettings()
    git.memo["shared-settings"] = out
    if git.workdir is None:
        return out
    try:
        data = read_bounded(git.workdir / SHARED_FILE, MAX_SHARED_CONFIG_LEN, SHARED_FILE)
    except FileNotFoundError:
        return out
    except FormatError as e:
        out.present = True
        out.problems.append(str(e))
        _report(git, out.problems)
        return out
    except OSError as e:
        out.present = True
        out.problems.append(f"{SHARED_FILE} cannot be read: {e.strerror or e}")
        _report(git, out.problems)
        return out
    out.present = True
    try:
        listed = git.run_git("config", "--file", "-", "--no-includes", "--list", "-z",
                             input=data)
    except GitCommandError as e:
        why = str(e).split("failed: ", 1)[-1].removeprefix("fatal: ")
        out.problems.append(f"{SHARED_FILE} does not parse "
                            f"({why.replace('in standard input', 'there').strip()})")
        _report(git, out.problems)
        return out
    for item in listed.split(b"\0"):
        if not item:
            continue
        raw_key, newline, raw_value = item.decode("utf-8", "replace").partition("\n")
        key, value = normalize_key(raw_key), raw_value if newline else ""
        refused = check_shared(key, value)
        if refused is not None:
            out.problems.append(refused)
            continue
        out.values[key] = value  # the last one wins, as in git
    _report(git, out.problems)
    return out


def _git_config(git: GitRepo, key: str, *flags: str) -> str | None:
    try:
        out = git.run_git("config", *flags, "--get", key).decode("utf-8", "replace").strip()
    except GitCommandError:
        return None
    return out or None


def setting(git: GitRepo, key: str) -> str | None:
    """A git-ml setting: git's config, else the committed file (if it may hold ``key``)."""
    value = _git_config(git, key)
    if value is not None:
        return value
    return shared_settings(git).values.get(normalize_key(key))


def setting_bool(git: GitRepo, key: str) -> bool | None:
    """A boolean setting (git's spelling: true/false, yes/no, on/off, 1/0); None if unset.

    A value git cannot read as a boolean in git's config is a UsageError naming the key.
    """
    try:
        text = git.run_git("config", "--bool", "--get", key).decode().strip()
    except GitCommandError as e:
        if "bad boolean" in e.stderr or "bad numeric" in e.stderr:
            raise UsageError(f"git config {key} must be true or false") from None
        shared = shared_settings(git).values.get(normalize_key(key))
        return None if shared is None else _BOOLS[shared.lower()]
    return text == "true"


def write_shared(git: GitRepo, key: str, value: str | None) -> str:
    """Set (or with ``value`` None, unset) ``key`` in ``.mlgitconfig`` and stage the file.

    The key and value must pass :func:`check_shared` (UsageError otherwise); the file
    must be absent or a regular file (never written through a symlink). Returns the
    file's path relative to the work tree.
    """
    work = git.require_workdir()
    why = check_shared_key(key) if value is None else check_shared(key, value)
    if why is not None:
        raise UsageError(why)
    path = work / SHARED_FILE
    try:
        fd = open_regular(path, SHARED_FILE)
    except FormatError as e:
        raise BadPathError(f"{e}; git-ml will not write through it") from None
    except FileNotFoundError:
        if value is None:
            raise UsageError(f"{key} is not set in {SHARED_FILE}") from None
    else:
        os.close(fd)
    args = ["config", "--file", str(path)]
    try:
        git.run_git(*args, *(["--unset", key] if value is None else [key, value]))
    except GitCommandError as e:
        if value is None and not e.stderr.strip():
            raise UsageError(f"{key} is not set in {SHARED_FILE}") from None
        raise
    git.run_git("add", "--", SHARED_FILE)
    git.memo.pop("shared-settings", None)
    return SHARED_FILE
