"""Resolve a remote (a git remote's name, or a URL) to a :class:`Backend`.

``ml.<remote>.url`` wins (for S3: ``s3://bucket/prefix``, with
``ml.<remote>.endpoint`` for S3-compatible services); otherwise the git
remote's own URL is used: a local path or ``file://`` (the other repository's
``.git/ml``, or ``ml/`` in a bare one), ``ssh://[user@]host[:port]/path`` or
``[user@]host:path`` (the same path on that host, reached by running git-ml
there over ssh).

``ml.<remote>.timeout SECONDS`` (else ``ml.timeout``) bounds how long a remote
may stay silent: the SSH transport gives up after that long without a byte from
the server (default 300 s), S3 uses it as boto3's read timeout (default 120 s).

Every ``ml.*`` setting is read through :func:`mlgit.gitlink.settings.setting`:
the clone's git config, else the committed ``.mlgitconfig``. git's own settings
(``remote.<name>.url``, ``branch.<name>.remote``, ``core.sshCommand``) come from
git's config only, and the ssh client from git's environment as git chooses it
(:meth:`mlgit.gitlink.env.GitEnv.ssh_client`).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mlgit.errors import FormatError, GitCommandError, UsageError
from mlgit.format.source import check_source_url
from mlgit.gitlink.env import shell_command
from mlgit.gitlink.repo import GitRepo
from mlgit.gitlink.settings import SHARED_FILE, setting
from mlgit.sync.backend import Backend, LocalBackend

__all__ = ["RemoteSpec", "config_hint", "default_remote", "local_store", "no_store_error",
           "open_backend", "parse_url", "resolve_remote", "resolve_source"]

_SCP_RE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>.*)$")
_SSH_RE = re.compile(r"^ssh://(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+)(?::(?P<port>\d+))?(?P<path>/.*)$")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


@dataclass(frozen=True)
class RemoteSpec:
    """A parsed remote location. ``kind`` is ``local``, ``ssh`` or ``s3``."""

    name: str
    url: str
    kind: str
    path: str
    host: str = ""
    user: str = ""
    port: int | None = None
    endpoint: str | None = None
    ssh_command: tuple[str, ...] | None = None
    remote_command: str | None = None
    timeout: float | None = None


def _config(git: GitRepo, key: str) -> str | None:
    """One of git's own settings (never from the committed file)."""
    try:
        out = git.run_git("config", "--get", key).decode().strip()
    except GitCommandError:
        return None
    return out or None


def config_hint(remote: str, var: str, value: str) -> str:
    """How to set ``ml.<remote>.<var>``, as a command that works when pasted into a shell.

    A remote given as a URL or path (not a name) gets a name first: its settings
    then live under that name (and ``git ml config --shared`` can share them).
    """
    if _NAME_RE.match(remote):
        return f"`git config ml.{remote}.{var} {value}`"
    return (f"a named remote: `git config ml.NAME.url {shlex.quote(remote)}` and "
            f"`git config ml.NAME.{var} {value}`, then use NAME")


def no_store_error(spec: RemoteSpec) -> UsageError:
    """The error for a remote that holds no git-ml store, with where else it could be."""
    if spec.kind == "s3":
        hint = (f"push to it first; or, if the data lives elsewhere, set "
                f"{config_hint(spec.name, 'url', 'URL')}")
    else:
        hint = (f"if the data lives elsewhere (an S3 bucket, another server), set "
                f"{config_hint(spec.name, 'url', 's3://bucket/prefix')}, or ask who set it "
                f"up to share it with `git ml config --shared ml.{spec.name}.url URL` "
                f"(committed in {SHARED_FILE})" if _NAME_RE.match(spec.name) else
                f"if the data lives elsewhere, set {config_hint(spec.name, 'url', 'URL')}")
    return UsageError(f"remote {spec.name} ({spec.url}) has no git-ml data yet; {hint}")


def default_remote(git: GitRepo) -> str:
    """The current branch's remote, else ``origin``."""
    try:
        branch = git.run_git("symbolic-ref", "-q", "--short", "HEAD").decode().strip()
    except GitCommandError:
        branch = ""
    if branch:
        name = _config(git, f"branch.{branch}.remote")
        if name and name != ".":
            return name
    return "origin"


def parse_url(name: str, url: str, base: Path, endpoint: str | None = None) -> RemoteSpec:
    """Classify ``url``; relative local paths are taken relative to ``base``."""
    if url.startswith("s3://"):
        return RemoteSpec(name, url, "s3", url[len("s3://"):], endpoint=endpoint)
    m = _SSH_RE.match(url)
    if m:
        return RemoteSpec(name, url, "ssh", m["path"], m["host"], m["user"] or "",
                          int(m["port"]) if m["port"] else None)
    if url.startswith("file://"):
        return RemoteSpec(name, url, "local", url[len("file://"):])
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise UsageError(f"remote {name!r}: git-ml cannot reach {scheme}:// URLs; set "
                         f"`git config ml.{name}.url` to a path, an ssh:// or an s3:// URL")
    m = _SCP_RE.match(url)
    if m and not url.startswith(("/", ".")) and "/" not in m["host"]:
        return RemoteSpec(name, url, "ssh", m["path"], m["host"], m["user"] or "")
    path = Path(url)
    return RemoteSpec(name, url, "local", str(path if path.is_absolute() else base / path))


def _timeout(git: GitRepo, remote: str) -> float | None:
    """``ml.<remote>.timeout``, else ``ml.timeout``: seconds (a positive number), or None."""
    for key in (f"ml.{remote}.timeout", "ml.timeout"):
        text = setting(git, key)
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value <= 1e6:
            raise UsageError(f"git config {key} must be a number of seconds, not "
                             f"{text[:40]!r}")
        return value
    return None


def resolve_remote(git: GitRepo, name: str | None, ssh_command: str | None = None
                   ) -> RemoteSpec:
    """The remote called ``name`` (default: see :func:`default_remote`); a URL works too.

    For SSH remotes the ssh client is ``ssh_command`` if given (a command line),
    else what git would run (``GIT_SSH_COMMAND``, ``core.sshCommand``, ``GIT_SSH``,
    ``ssh``: :meth:`~mlgit.gitlink.env.GitEnv.ssh_client`); the command run on the
    remote is ``ml.<remote>.gitml``, else ``git-ml``.
    """
    remote = name or default_remote(git)
    base = git.workdir or git.git_dir
    url = setting(git, f"ml.{remote}.url")
    endpoint = setting(git, f"ml.{remote}.endpoint")
    if url is None:
        url = _config(git, f"remote.{remote}.url")
    if url is None:
        if name is not None and ("/" in name or ":" in name):
            spec = parse_url(name, name, base, endpoint)
        else:
            raise UsageError(f"unknown remote {remote!r}: add it with `git remote add {remote} "
                             f"URL` or set `git config ml.{remote}.url URL`")
    else:
        spec = parse_url(remote, url, base, endpoint)
    timeout = _timeout(git, spec.name)
    if timeout is not None:
        spec = dataclasses.replace(spec, timeout=timeout)
    if spec.kind == "ssh":
        client = (shell_command(ssh_command) if ssh_command and ssh_command.strip() else
                  git.env.ssh_client(_config(git, "core.sshCommand")))
        spec = dataclasses.replace(
            spec, ssh_command=tuple(client) if client else None,
            remote_command=setting(git, f"ml.{remote}.gitml"))
    return spec


def _remote_named_by_url(git: GitRepo, url: str) -> str | None:
    """The git remote of this clone whose URL is exactly ``url`` (the first by name), or None."""
    try:
        out = git.run_git("config", "--get-regexp", r"^remote\..*\.url$").decode(
            "utf-8", "replace")
    except GitCommandError:
        return None
    for line in sorted(out.splitlines()):
        key, _, value = line.partition(" ")
        name = key[len("remote."):-len(".url")]
        if value == url and _NAME_RE.match(name):
            return name
    return None


def resolve_source(git: GitRepo, url: str, ssh_command: str | None = None) -> RemoteSpec:
    """Where the git-ml store of an imported pointer's source repository is.

    ``url`` (from a pointer: hostile) must pass
    :func:`~mlgit.format.source.check_source_url`, else UsageError. Then, as for a
    remote: ``ml.<url>.url`` (git config, else the committed ``.mlgitconfig``) names
    the store, with ``ml.<url>.endpoint``, ``.timeout`` and ``.gitml``; else a git
    remote of this clone whose URL is ``url`` lends its ``ml.<remote>.*`` settings;
    else the URL itself is the store's place (a local path, ssh, s3). The spec is
    named ``url`` whichever way it was found (no remote-tracking refs are made
    for it).
    """
    try:
        check_source_url(url)
    except FormatError as e:
        raise UsageError(str(e)) from None
    if setting(git, f"ml.{url}.url") is None:
        named = _remote_named_by_url(git, url)
        if named is not None:
            spec = resolve_remote(git, named, ssh_command)
            return dataclasses.replace(spec, name=url)
    return resolve_remote(git, url, ssh_command)


def local_store(spec: RemoteSpec) -> Path:
    """The store directory of a local remote (UsageError if it names no repository)."""
    root = Path(spec.path)
    if (root / ".git").is_dir():
        return root / ".git" / "ml"
    if (root / "HEAD").is_file() and (root / "objects").is_dir():
        return root / "ml"
    if root.name == "ml" and (root / "config").is_file():
        return root
    raise UsageError(f"remote {spec.name!r}: {spec.path} is not a git repository")


def open_backend(spec: RemoteSpec) -> Backend:
    """Connect to the remote's store (it may not exist yet: see ``read_config``)."""
    if spec.kind == "local":
        return LocalBackend(local_store(spec), spec.url)
    # The transports are imported only when used (S3 needs boto3, an optional extra).
    module, cls = ("mlgit.sync.ssh", "SSHBackend") if spec.kind == "ssh" else (
        "mlgit.sync.s3", "S3Backend")
    factory = getattr(importlib.import_module(module), cls)
    if spec.kind == "ssh":
        backend: Backend = factory(spec, ssh_command=list(spec.ssh_command or ()) or None,
                                   remote_command=spec.remote_command, timeout=spec.timeout)
    else:
        backend = factory(spec)
    return backend
