"""A sidecar store on disk: the ``.git/ml/`` directory tree and what lives in it.

Layout (docs/format.md, "Directory tree")::

    .git/ml/config                  format version, hash, chunker, pack size (JSON)
    .git/ml/packs/pack-<h>.pack     objects
    .git/ml/packs/pack-<h>.idx      sorted index of that pack
    .git/ml/packs/multi-pack-index  one sorted index of many packs (derived; may be absent)
    .git/ml/refs/datasets/<name>    newest snapshot id of a dataset
    .git/ml/refs/checkpoints/<run>  newest snapshot id of a checkpoint run
    .git/ml/refs/stages/<model>@<stage>  newest promotion (record) of a model's stage
    .git/ml/tmp/                    packs and files being written
    .git/ml/cache/                  stat caches (safe to delete)
    .git/ml/checkouts/<id>/         read-only materialized snapshots
    .git/ml/checkouts/<id>.use      who holds it, when it was last used, its cost

A clone that shares a store (``config`` format 2, ``shared``: see
:mod:`mlgit.store.shared`) writes its packs into the shared store's ``packs/``
(through its ``tmp/``, under its ``gc.lock``) and reads both that and its own
``packs/``; everything else stays here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlgit.errors import FormatError, MlgitError, NotInitializedError
from mlgit.format.config import StoreConfig, check_config, decode_config, encode_config
from mlgit.format.limits import MAX_CONFIG_LEN
from mlgit.store.fsutil import atomic_write, read_bounded
from mlgit.store.lock import lock_file
from mlgit.store.objects import ObjectStore
from mlgit.store.refs import REF_KINDS, RefStore
from mlgit.store.shared import open_config

__all__ = ["Store"]

_DIRS = ("packs", *(f"refs/{kind}" for kind in REF_KINDS), "tmp", "cache", "checkouts")


class Store:
    """An opened sidecar store: its config, objects and refs."""

    def __init__(self, root: Path, config: StoreConfig) -> None:
        self.root = root
        self.config = config
        self.shared = Path(config.shared) if config.shared else None
        """The shared store this clone keeps its objects in, or None."""
        objects = self.objects_root
        self.objects = ObjectStore(objects / "packs", objects / "tmp", config.pack_size,
                                   also=(root / "packs",) if self.shared else (),
                                   gc_lock=objects / "gc")
        self.refs = RefStore(root / "refs")

    @property
    def objects_root(self) -> Path:
        """Where new packs go, with their ``tmp/`` and the ``gc.lock`` writers hold.

        The shared store's directory for a clone that shares one, else ``root``.
        """
        return self.shared if self.shared is not None else self.root

    @property
    def packs_dir(self) -> Path:
        """The ``packs/`` new packs are committed to."""
        return self.objects_root / "packs"

    @property
    def pack_tmp_dir(self) -> Path:
        """Where packs are written before they are committed (``packs_dir``'s filesystem)."""
        return self.objects_root / "tmp"

    @property
    def pack_dirs(self) -> tuple[Path, ...]:
        """Every ``packs/`` objects are read from: ``packs_dir``, then this clone's own."""
        return (self.packs_dir, self.root / "packs") if self.shared else (self.packs_dir,)

    @property
    def gc_locks(self) -> tuple[Path, ...]:
        """The ``gc`` lock paths gc takes exclusively, in this order (this clone's, the shared).

        This clone's own is kept for a process that opened the store before it
        joined a shared store, and still writes to its own ``packs/``.
        """
        return (self.root / "gc", self.objects_root / "gc") if self.shared else (self.root / "gc",)

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
        if config.shared:
            open_config(Path(config.shared))  # there, and a store: else the clone cannot work
        return cls(root, config)

    def writing(self, timeout: float = 600.0) -> contextlib.AbstractContextManager[Path]:
        """Hold while writing objects that refs will name: gc waits for it to be released.

        Shared among writers; ``gc`` takes it exclusively while it deletes, so it
        never removes an object a concurrent writer has just found and reused. For
        a clone that shares a store, the shared store's lock: gc in any clone waits.
        """
        return lock_file(self.objects_root / "gc", timeout=timeout, shared=True)

    def ref_kinds(self) -> tuple[str, ...]:
        """The ref folders (``datasets``, ``checkpoints``, ``stages``)."""
        return REF_KINDS

    def close(self) -> None:
        """Write the multi-pack index if due; release file descriptors; drop uncommitted writes.

        A store whose writer committed packs, or whose lookups found many packs
        outside ``packs/multi-pack-index``, rewrites it when more than
        :data:`~mlgit.store.midx.MIDX_PACK_THRESHOLD` packs lie outside it (under
        the ``gc`` lock, shared; skipped if gc holds it). The
        index only speeds lookups up, so a failure to write it is not an error:
        readers use the packs' own indexes, and the next writer or gc writes it.
        """
        try:
            if self.objects.packs_committed or self.objects.midx_due():
                with contextlib.suppress(MlgitError, OSError), \
                        lock_file(self.objects_root / "gc", timeout=0, shared=True):
                    self.objects.write_midx(force=False)
        finally:
            self.objects.close()
