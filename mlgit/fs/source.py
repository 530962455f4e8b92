"""Where the ``mlgit://`` filesystem reads from: a repository, or a remote with no clone.

:class:`Source` is what :mod:`mlgit.fs.spec` needs; two implementations keep it:

- a repository (:class:`mlgit.api.ranges.RepoReader`): the local store, with
  lazy fetching from the repository's remote, revisions as ``Core.resolve``
  resolves them (local names, remote-tracking names, ids...);
- a remote store read directly (:class:`mlgit.sync.remoteread.RemoteReader`):
  a local path, ``ssh://`` or ``s3://`` URL, objects read by ranged reads and
  cached under a cache directory; names come from the remote's own refs.

:func:`open_source` picks one from the filesystem's storage options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlgit.api.core import Core
from mlgit.api.ranges import RepoReader
from mlgit.errors import NotARepositoryError, UsageError
from mlgit.format.ids import ObjectID, RawObjectID
from mlgit.format.snapshot import Snapshot
from mlgit.format.tree import ChunkRef, TreeEntry
from mlgit.gitlink.env import GitEnv, shell_command
from mlgit.sync.remote import open_backend, parse_url
from mlgit.sync.remoteread import RemoteReader

__all__ = ["Options", "Source", "default_cache_dir", "open_source"]


class Source(Protocol):
    """Revisions, snapshots, trees and chunks, verified; one operation at a time kept."""

    def resolve(self, rev: str) -> ObjectID:
        """The snapshot id ``rev`` names; RevisionError if none."""

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """The snapshot ``oid``."""

    def get_tree(self, oid: RawObjectID) -> list[TreeEntry]:
        """The entries of tree ``oid``."""

    def read_chunks(self, chunks: Sequence[ChunkRef]) -> Iterator[bytes]:
        """Each chunk's bytes, in order, verified and length-checked."""

    def names(self) -> list[str]:
        """The names a revision can use (``NAME``, ``REMOTE/NAME``), sorted."""

    def commit(self) -> None:
        """The operation succeeded: keep (cache) what it read."""

    def discard(self) -> None:
        """The operation failed: keep nothing of what it read."""

    def forget(self) -> None:
        """Read names afresh next time."""

    def close(self) -> None:
        """Release connections and files."""


def default_cache_dir() -> Path:
    """``~/.cache/mlgit``: the cache directory when neither the caller nor fsspec's config sets one.

    (git-ml's library never reads the environment; set ``cache_dir``, or
    ``FSSPEC_MLGIT_CACHE_DIR``, which fsspec itself reads, to put it elsewhere.)
    """
    return Path.home() / ".cache" / "mlgit"


@dataclass(frozen=True)
class Options:
    """The storage options of an ``mlgit://`` filesystem, checked (docs/reading-data.md)."""

    repo: str | None = None
    remote: str | None = None
    endpoint: str | None = None
    ssh_command: str | None = None
    remote_command: str | None = None
    timeout: float | None = None
    cache_dir: str | None = None
    cache_data: bool = True

    def __post_init__(self) -> None:
        for name in ("repo", "remote", "endpoint", "ssh_command", "remote_command", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"mlgit:// storage option {name!r} must be a string or path, "
                                f"not {type(value).__name__}")
        if self.repo is not None and self.remote is not None:
            raise ValueError("mlgit:// takes a repository (repo=) or a remote (remote=), "
                             "not both")
        if self.remote is None:
            for name in ("endpoint", "ssh_command", "remote_command", "timeout", "cache_dir"):
                if getattr(self, name) is not None:
                    raise ValueError(f"mlgit:// storage option {name!r} is for reading a remote "
                                     "(remote=URL); a repository uses its own remote settings")
        if self.timeout is not None and (
                isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                or not 0 < self.timeout <= 1e6):
            raise ValueError(f"mlgit:// storage option 'timeout' must be a number of seconds, "
                             f"not {self.timeout!r}")
        if not isinstance(self.cache_data, bool):
            raise TypeError("mlgit:// storage option 'cache_data' must be True or False")


def open_source(options: Options) -> Source:
    """The source ``options`` name: the remote's store, else the repository (default: cwd's).

    Nothing is read yet but what finding the repository reads; errors are
    :class:`~mlgit.errors.MlgitError` subclasses.
    """
    if options.remote is None:
        return RepoReader(Core(options.repo))
    spec = parse_url(options.remote, options.remote, Path.cwd(), options.endpoint)
    if options.timeout is not None:
        spec = dataclasses.replace(spec, timeout=float(options.timeout))
    if spec.kind == "ssh":
        client = (shell_command(options.ssh_command) if options.ssh_command
                  else GitEnv.current().ssh_client(None))
        spec = dataclasses.replace(spec, ssh_command=tuple(client) if client else None,
                                   remote_command=options.remote_command)
    cache = Path(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
    try:
        backend = open_backend(spec)
    except UsageError as e:
        if spec.kind != "local":
            raise
        raise NotARepositoryError(str(e)) from None  # a path that holds no repository
    return RemoteReader(backend, cache, cache_data=options.cache_data)
