"""Sidecar refs: ``refs/<kind>/<name>`` files holding the newest object id of a name.

``kind`` is ``datasets`` or ``checkpoints`` (the ref names a snapshot: the newest
version of a dataset or run; ``<name>`` follows
:func:`~mlgit.format.names.is_ref_name`), or ``stages`` (the ref names a promotion:
the newest record of a model's stage; ``<name>`` is ``<model>@<stage>``,
:func:`~mlgit.format.names.is_stage_ref_name`). An update is a compare-and-swap
under the ref's lock file: the caller says what it expects the ref to hold now,
and the update fails with ConflictError if someone else moved it.

A ref file may be hostile (a store on a shared disk, a remote's): it is read
with :func:`~mlgit.store.fsutil.read_bounded`, so one that is a symlink, a
FIFO, a device or larger than :data:`~mlgit.format.limits.MAX_REF_LEN` is
refused as a FormatError without being followed or read whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mlgit.errors import ConflictError, FormatError
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_REF_LEN
from mlgit.format.names import check_ref_name, is_ref_name, is_stage_ref_name
from mlgit.store.fsutil import atomic_write, fsync_dir, read_bounded
from mlgit.store.lock import lock_file

__all__ = ["REF_KINDS", "SNAPSHOT_KINDS", "STAGES", "OnBadRef", "RefStore", "is_ref_name_of",
           "ref_kind_for", "ref_role"]

SNAPSHOT_KINDS = ("datasets", "checkpoints")
"""The kinds of refs that name a snapshot (a dataset's or a run's newest version)."""
STAGES = "stages"
"""The kind of refs that name a promotion: ``stages/<model>@<stage>``."""
REF_KINDS = (*SNAPSHOT_KINDS, STAGES)
"""Every kind of ref a store holds (and syncs), in the order listings give them."""

OnBadRef = Callable[[str, FormatError], None]
"""Told of a ref that cannot be read, by its path (``datasets/<name>``) and the error."""


def ref_kind_for(snapshot_kind: str) -> str:
    """Map a snapshot kind (``dataset``/``checkpoint``) to its ref folder name."""
    return snapshot_kind + "s"


def is_ref_name_of(kind: str, name: str) -> bool:
    """True if ``name`` is a valid name for a ref of ``kind`` (False for an unknown kind)."""
    if kind == STAGES:
        return is_stage_ref_name(name)
    return kind in SNAPSHOT_KINDS and is_ref_name(name)


def ref_role(kind: str) -> str:
    """The role (:mod:`mlgit.store.walk`) of what a ref of ``kind`` names."""
    from mlgit.store import walk  # start-up time: reading a ref needs no object format

    return walk.PROMOTION if kind == STAGES else walk.SNAPSHOT


class RefStore:
    """Reads and updates the refs under one ``refs/`` directory."""

    def __init__(self, root: Path, label: str = "") -> None:
        self.root = root
        self.label = label  # prefixed to errors: names a remote's store

    def path(self, kind: str, name: str) -> Path:
        """The file that holds ref ``kind/name`` (it may not exist); FormatError for a bad name."""
        if kind not in REF_KINDS:
            raise FormatError(f"unknown ref kind {kind!r}")
        if kind == STAGES:
            if not is_stage_ref_name(name):
                raise FormatError(f"invalid stage ref name {name[:200]!r} (expected "
                                  "MODEL@STAGE)")
            return self.root / kind / name
        return self.root / kind / check_ref_name(name)

    def get(self, kind: str, name: str) -> ObjectID | None:
        """The id a ref holds, or None if it does not exist; FormatError if it is garbage."""
        path = self.path(kind, name)
        what = f"{self.label}ref {kind}/{name} ({path})"
        try:
            data = read_bounded(path, MAX_REF_LEN, what)
        except FileNotFoundError:
            return None
        try:
            return parse_object_id(data.decode("ascii").strip())
        except (UnicodeDecodeError, FormatError):
            raise FormatError(f"{self.label}ref {kind}/{name} is corrupt ({path})") from None

    def list(self, kind: str, on_bad: OnBadRef | None = None) -> dict[str, ObjectID]:
        """Every ref of a kind, name to id, sorted by name (lock and temp files skipped).

        A ref that cannot be read (garbage, too large, not a regular file) is
        left out and passed to ``on_bad`` with its path (``<kind>/<name>``), so
        one bad ref does not hide the others; without ``on_bad`` it is raised.
        """
        folder = self.root / kind
        out: dict[str, ObjectID] = {}
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return out
        for name in names:
            if is_ref_name_of(kind, name):
                try:
                    oid = self.get(kind, name)
                except FormatError as e:
                    if on_bad is None:
                        raise
                    on_bad(f"{kind}/{name}", e)
                    continue
                if oid is not None:
                    out[name] = oid
        return out

    def update(self, kind: str, name: str, new: ObjectID, expect: ObjectID | None) -> None:
        """Set a ref to ``new`` if it still holds ``expect`` (None: must not exist).

        The caller must have made ``new`` and everything it reaches durable first.
        """
        path = self.path(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with lock_file(path):
            current = self.get(kind, name)
            if current != expect:
                raise ConflictError(
                    f"{kind}/{name} moved to {current} while this command ran "
                    f"(expected {expect}); run it again"
                )
            atomic_write(path, (new + "\n").encode())

    def delete(self, kind: str, name: str, expect: ObjectID) -> None:
        """Remove a ref if it still holds ``expect``; ConflictError (changing nothing) if not.

        A ref that is already gone is a ConflictError too: someone else removed it.
        """
        path = self.path(kind, name)
        with lock_file(path):
            current = self.get(kind, name)
            if current != expect:
                moved = "is gone" if current is None else f"moved to {current}"
                raise ConflictError(f"{kind}/{name} {moved} while this command ran "
                                    f"(expected {expect})")
            os.unlink(path)
            fsync_dir(path.parent)
