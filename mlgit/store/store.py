"""A sidecar store on disk: the ``.git/ml/`` directory tree and what lives in it.

Layout (docs/format.md, "Directory tree")::

    .git/ml/config                  format version, hash, chunker, pack size (JSON)
    .git/ml/packs/pack-<h>.pack     objects
    .git/ml/packs/pack-<h>.idx      sorted index of that pack
    .git/ml/refs/datasets/<name>    newest snapshot id of a dataset
    .git/ml/refs/checkpoints/<run>  newest snapshot id of a checkpoint run
    .git/ml/refs/stages/<model>@<stage>  newest promotion (record) of a model's stage
    .git/ml/tmp/                    packs and files being written
    .git/ml/cache/                  stat caches (safe to delete)
    .git/ml/checkouts/<id>/         read-only materialized snapshots
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlgit.errors import FormatError, NotInitializedError
from mlgit.format.config import StoreConfig, check_config, decode_config, encode_config
from mlgit.format.limits import MAX_CONFIG_LEN
from mlgit.store.fsutil import atomic_write, read_bounded
from mlgit.store.lock import lock_file
from mlgit.store.objects import ObjectStore
from mlgit.store.refs import REF_KINDS, RefStore

__all__ = ["Store"]

_DIRS = ("packs", *(f"refs/{kind}" for kind in REF_KINDS), "tmp", "cache", "checkouts")


class Store:
    """An opened sidecar store: its config, objects and refs."""

    def __init__(self, root: Path, config: StoreConfig) -> None:
        self.root = root
        self.config = config
        self.objects = ObjectStore(root / "packs", root / "tmp", config.pack_size)
        self.refs = RefStore(root / "refs")

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the store's filesystem (for atomic renames)."""
        return self.root / "tmp"

    @property
    def cache_dir(self) -> Path:
        """Derived data that may be deleted at any time."""
        return self.root / "cache"

    @property
    def checkouts_dir(self) -> Path:
        """Where :func:`mlgit.checkout` materializes read-only snapshots."""
        return self.root / "checkouts"

    @classmethod
    def init(cls, root: Path, config: StoreConfig | None = None) -> tuple[Store, bool]:
        """Create the store at ``root`` if absent; return it and whether it was created.

        Running it on an existing store changes nothing (its config is kept).
        """
        created = not (root / "config").exists()
        if created:
            check_config(config or StoreConfig())
        for d in _DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        if created:
            atomic_write(root / "config", encode_config(config or StoreConfig()))
        return cls.open(root), created

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing store; NotInitializedError if there is none.

        The config is read bounded (:data:`~mlgit.format.limits.MAX_CONFIG_LEN`,
        a regular file, no symlink followed); anything else is a FormatError.
        """
        try:
            data = read_bounded(root / "config", MAX_CONFIG_LEN, f"store config {root / 'config'}")
        except FileNotFoundError:
            raise NotInitializedError(
                "this repository has no git-ml store yet; run `git ml init`"
            ) from None
        try:
            config = decode_config(data)
        except FormatError as e:
            raise type(e)(f"{root / 'config'}: {e}") from None
        for d in _DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        return cls(root, config)

    def writing(self, timeout: float = 600.0) -> contextlib.AbstractContextManager[Path]:
        """Hold while writing objects that refs will name: gc waits for it to be released.

        Shared among writers; ``gc`` takes it exclusively while it deletes, so it
        never removes an object a concurrent writer has just found and reused.
        """
        return lock_file(self.root / "gc", timeout=timeout, shared=True)

    def ref_kinds(self) -> tuple[str, ...]:
        """The ref folders (``datasets``, ``checkpoints``, ``stages``)."""
        return REF_KINDS

    def close(self) -> None:
        """Release file descriptors and drop uncommitted writes."""
        self.objects.close()
