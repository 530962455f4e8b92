"""A shared object store: one set of packs for the clones of one machine (as git's alternates).

Several clones on a shared training box that each keep their own packs store a
dataset once per clone. A clone that joins a shared store (``git ml init --shared
PATH``) keeps its objects there instead: every new pack goes to the shared
store, every read looks there (and in the clone's own ``packs/``, which joining
empties), so a chunk is stored once per machine. Refs, stat caches, checkouts
and notes stay in each clone. Layout of the shared store's directory::

    config          chunker and pack settings (a store config, format 1)
    packs/          the packs of every clone (pack-<h>.pack, pack-<h>.idx)
    tmp/            packs being written
    gc.lock         writers of every clone hold it shared while they write;
                    gc exclusively while it prunes
    clones/<k>      one entry per clone that joined: {"ml": its .git/ml,
                    "worktree": its work tree or null}; <k> is the hex XXH3-128
                    of the "ml" path

Writers are as safe as in one store: packs are written lock-free under unique
names, refs stay per clone (compare-and-swap). gc in any clone marks from the
roots of **every** registered clone (see :mod:`mlgit.api.sharing`) and prunes
nothing shared when one cannot be read; so gc in one clone never drops what
another needs.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mlgit.errors import FormatError, NotInitializedError
from mlgit.format.config import StoreConfig, decode_config, encode_config, without_shared
from mlgit.format.ids import digest_hex, is_hex_prefix
from mlgit.format.limits import MAX_CLONE_ENTRY_LEN, MAX_CONFIG_LEN
from mlgit.format.plainjson import loads
from mlgit.store.fsutil import atomic_write, copy_into_place, read_bounded

__all__ = ["SHARED_DIRS", "Clone", "adopt_packs", "clones", "create", "entry_key", "forget",
           "open_config", "register"]

SHARED_DIRS = ("packs", "tmp", "clones")


def create(root: Path, config: StoreConfig) -> tuple[StoreConfig, bool]:
    """Make ``root`` a shared store unless it is one; return its config and whether it was made.

    A new one takes ``config``'s chunker and pack settings (never a ``shared`` of
    its own). An existing one keeps its config.
    """
    root.mkdir(parents=True, exist_ok=True)
    created = not (root / "config").exists()
    if created:
        for d in SHARED_DIRS:
            (root / d).mkdir(exist_ok=True)
        atomic_write(root / "config", encode_config(without_shared(config)))
    return open_config(root), created


def open_config(root: Path) -> StoreConfig:
    """The config of the shared store at ``root`` (its directories made if missing).

    NotInitializedError if there is no store there; FormatError if its config is
    malformed or names a shared store itself (shared stores do not chain).
    """
    where = f"shared store {root}"
    try:
        data = read_bounded(root / "config", MAX_CONFIG_LEN, f"{where}: config")
    except FileNotFoundError:
        raise NotInitializedError(f"the {where} is missing or is not a git-ml store (it has no "
                                  "config); mount or restore it") from None
    except NotADirectoryError:
        raise NotInitializedError(f"the {where} is not a directory") from None
    try:
        config = decode_config(data)
    except FormatError as e:
        raise type(e)(f"{where}: {e}") from None
    if config.shared:
        raise FormatError(f"{where} names another shared store; shared stores do not chain")
    for d in SHARED_DIRS:
        (root / d).mkdir(exist_ok=True)
    return config


def entry_key(ml_dir: Path) -> str:
    """The registry name of the clone whose store is ``ml_dir`` (an absolute path)."""
    return digest_hex(os.fsencode(str(ml_dir)))


@dataclass(frozen=True)
class Clone:
    """One registered clone: its entry's name, its ``.git/ml`` and work tree.

    ``problem`` is set (and the paths None) when the entry cannot be read.
    """

    key: str
    ml: Path | None
    worktree: Path | None
    problem: str = ""


def _entry(ml_dir: Path, worktree: Path | None) -> bytes:
    obj = {"ml": str(ml_dir), "worktree": str(worktree) if worktree is not None else None}
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


def register(root: Path, ml_dir: Path, worktree: Path | None) -> bool:
    """Record the clone whose store is ``ml_dir`` in ``root``'s registry; True if it was written.

    Cheap when already there (one bounded read): called each time a clone opens
    its store, so a clone copied with ``cp -r`` registers itself on first use.
    """
    path = root / "clones" / entry_key(ml_dir)
    want = _entry(ml_dir, worktree)
    try:
        if read_bounded(path, MAX_CLONE_ENTRY_LEN) == want:
            return False
    except (FileNotFoundError, FormatError):
        pass
    atomic_write(path, want)
    return True


def _path(value: object, what: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise FormatError(f"{what} is not an absolute path")
    return Path(value)


def clones(root: Path) -> list[Clone]:
    """Every registered clone, by entry name; a malformed entry is a Clone with a ``problem``."""
    d = root / "clones"
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.startswith("."):
            continue  # an entry being written
        try:
            if not (len(name) == 32 and is_hex_prefix(name)):
                raise FormatError("its name is not a registry key")
            text = read_bounded(d / name, MAX_CLONE_ENTRY_LEN).decode("utf-8", "surrogateescape")
            obj = loads(text, f"entry {name}")
            if not isinstance(obj, dict) or set(obj) != {"ml", "worktree"}:
                raise FormatError("it is not an object with ml and worktree")
            ml = _path(obj["ml"], "ml")
            if ml is None:
                raise FormatError("ml is missing")
            out.append(Clone(name, ml, _path(obj["worktree"], "worktree")))
        except (FormatError, OSError, UnicodeDecodeError) as e:
            out.append(Clone(name, None, None, f"{d / name}: {e}"))
    return out


def forget(root: Path, key: str) -> bool:
    """Remove registry entry ``key``; True if it was there."""
    if not (len(key) == 32 and is_hex_prefix(key)):
        return False
    try:
        os.unlink(root / "clones" / key)
    except FileNotFoundError:
        return False
    return True


def adopt_packs(local: Path, shared: Path, tmp: Path) -> list[str]:
    """Move every indexed pack of the directory ``local`` into the directory ``shared``.

    Each pack is durable in ``shared`` (pack, then index; a hard link where the
    filesystem allows, else a copy) before it is deleted from ``local`` (index
    first, then pack, as gc deletes), so readers always find every object in one
    place or the other. A pack ``shared`` already holds (same name, same bytes)
    is only deleted here. Returns the stems moved. The caller holds the locks
    that keep gc away from both.
    """
    try:
        names = set(os.listdir(local))
    except FileNotFoundError:
        return []
    moved = []
    for stem in sorted(n[:-4] for n in names if n.endswith(".idx")):
        if stem + ".pack" not in names:
            continue  # fsck reports an index without its pack; it stays for that
        for ext in (".pack", ".idx"):
            copy_into_place(local / (stem + ext), shared / (stem + ext), tmp_dir=tmp,
                            overwrite=False, link=True)
        for ext in (".idx", ".pack"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local / (stem + ext))
        moved.append(stem)
    return moved
