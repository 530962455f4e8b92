"""Merging two versions of a dataset: git-ml's merge driver for pointer files.

``git merge`` (and ``git pull``) call ``git-ml merge-driver %O %A %B %P`` when
both sides changed a pointer file (the driver ``git ml init`` installs). The
three files are hostile input (a teammate's commits): each is read bounded and
decoded as a pointer (an empty base file means the two versions were added
independently). The snapshots they pin must be local; those that are not are
fetched first, snapshots and trees only, from the lazy-fetch remote.

Then :func:`~mlgit.snapshot.merge.merge_trees` merges the trees (no data read):

- clean: a new snapshot whose ``parents`` are ours then theirs, holding the merged
  tree; the dataset's ref moves to it, and the pointer written to ``%A`` names it;
- conflicts: a snapshot holding ours plus what merged cleanly (parents: ours,
  theirs; no ref names it), and a version 2 pointer in ``%A`` naming it with the
  two versions, their base and the conflicting paths (docs/format.md).

Bad input raises before anything is written, and ``%A`` is left as git wrote it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlgit.api.events import Events
from mlgit.errors import MlgitError, PointerError, RevisionError
from mlgit.format.ids import ObjectID, hex_to_raw, raw_to_hex
from mlgit.format.limits import MAX_POINTER_LEN
from mlgit.format.pointer import (
    POINTER_SUFFIX,
    Pointer,
    PointerConflict,
    decode_pointer,
    encode_pointer,
)
from mlgit.format.snapshot import KIND_DATASET, ROOT_FILE, Snapshot
from mlgit.snapshot.merge import Conflict, MergeInput, MergeResult, merge_trees, verify_tree
from mlgit.store.fsutil import atomic_write, read_bounded

if TYPE_CHECKING:
    from mlgit.api.core import Core
    from mlgit.store.store import Store

__all__ = ["MergeOutcome", "conflicts_of", "merge_pointer_files"]

Fetch = Callable[[list[ObjectID]], None]
"""Brings snapshots (and their trees) into the local store, or raises saying why not."""


@dataclass
class MergeOutcome:
    """What the merge driver did with one pointer file.

    ``id`` is the snapshot written to ``%A`` (the merge, or with ``conflicts``
    ours plus what merged cleanly); ``refused`` says why the two versions could
    not be merged at all (different datasets, kinds or roots): ``%A`` is then
    left as it was, and git reports a conflict.
    """

    path: str
    name: str
    ours: ObjectID
    theirs: ObjectID
    base: ObjectID | None
    id: ObjectID | None = None
    conflicts: list[Conflict] = field(default_factory=list)
    refused: str | None = None

    @property
    def clean(self) -> bool:
        """True when ``%A`` now pins a merge without conflicts."""
        return self.refused is None and not self.conflicts


def _read(path: Path, label: str, allow_empty: bool) -> Pointer | None:
    """The pointer in one of git's temporary files (bounded, regular file, no link)."""
    data = read_bounded(path, MAX_POINTER_LEN, what=f"{label} ({path.name})", error=PointerError)
    if not data:
        if allow_empty:
            return None
        raise PointerError(f"{label} is empty, not a pointer file")
    return decode_pointer(data, label, hint="git-ml merges only pointer files it can read")


def _inputs(repo: Core, ids: tuple[ObjectID | None, ObjectID, ObjectID]
            ) -> tuple[list[Snapshot | None], list[MergeInput]]:
    snaps: list[Snapshot | None] = []
    inputs: list[MergeInput] = []
    for label, oid in zip(("base", "ours", "theirs"), ids, strict=True):
        if oid is None:
            snaps.append(None)
            inputs.append(MergeInput(None))
            continue
        s = repo.snapshot(oid)
        snaps.append(s)
        inputs.append(MergeInput(hex_to_raw(s.tree), (s.files, s.bytes),
                                 f"snapshot {oid} ({label})"))
    return snaps, inputs


def conflicts_of(repo: Core, c: PointerConflict) -> list[Conflict]:
    """The conflicts of a conflicted pointer, worked out again from its three versions.

    FormatError if a version is not in the local store or does not read.
    """
    snaps, (b, o, t) = _inputs(repo, (c.base, c.ours, c.theirs))
    ours = snaps[1]
    assert ours is not None
    return merge_trees(repo.store.objects.get_tree, b, o, t,
                       file_root=ours.root == ROOT_FILE).conflicts


def _ensure_local(store: Store, wanted: list[ObjectID], fetch: Fetch, shown: str) -> None:
    """Fetch the snapshots of ``wanted`` the store lacks; RevisionError if some still are not."""
    missing = [oid for oid in wanted if not store.objects.has_committed(hex_to_raw(oid))]
    if missing:
        fetch(missing)
        still = [oid for oid in missing if not store.objects.has_committed(hex_to_raw(oid))]
        if still:
            raise RevisionError(f"{shown}: snapshot {still[0]} is not in the local store and "
                                "could not be fetched")


def merge_pointer_files(repo: Core, base_file: Path, ours_file: Path, theirs_file: Path,
                        pointer_rel: str, *, fetch: Fetch, events: Events | None = None
                        ) -> MergeOutcome:
    """Merge the pointer files git passes a merge driver; write the result to ``ours_file``.

    See the module docstring. ``fetch`` brings the snapshots that are not local.
    Raises (changing nothing) for malformed pointers and versions that cannot be
    had; returns an outcome for a clean merge, a conflict or a refusal.
    """
    ev = events or Events()
    shown = pointer_rel if pointer_rel.isprintable() and len(pointer_rel) <= 300 else repr(
        pointer_rel[:300])
    base = _read(base_file, f"{shown} (base)", allow_empty=True)
    ours = _read(ours_file, f"{shown} (ours)", allow_empty=False)
    theirs = _read(theirs_file, f"{shown} (theirs)", allow_empty=False)
    assert ours is not None
    assert theirs is not None
    for label, p in (("ours", ours), ("theirs", theirs)):
        if p.conflict is not None:
            raise PointerError(f"{shown} ({label}) records an unresolved merge; resolve it "
                               "first (`git ml status`)")
    base_id = base.id if base is not None else None
    outcome = MergeOutcome(pointer_rel.removesuffix(POINTER_SUFFIX), ours.name, ours.id,
                           theirs.id, base_id)
    pick = "; pick one with `git checkout --ours` or `--theirs`"
    if ours.source is not None or theirs.source is not None:
        return _merge_imports(repo, ours, theirs, base, ours_file, outcome, pick)
    if ours.kind != KIND_DATASET or theirs.kind != KIND_DATASET:
        outcome.refused = f"only datasets are merged, not checkpoints{pick}"
        return outcome
    if ours.name != theirs.name:
        outcome.refused = f"ours pins dataset {ours.name!r} and theirs {theirs.name!r}{pick}"
        return outcome
    # Trivial cases need no store: one side did not change the version.
    if ours.id == theirs.id or base_id == theirs.id:
        _write(ours_file, Pointer(KIND_DATASET, ours.name, ours.id))
        outcome.id = ours.id
        return outcome
    if base_id == ours.id:
        _write(ours_file, Pointer(KIND_DATASET, ours.name, theirs.id))
        outcome.id = theirs.id
        return outcome
    store = repo.store
    _ensure_local(store, [ours.id, theirs.id] + ([base_id] if base_id is not None else []),
                  fetch, shown)
    snaps, (ib, io, it) = _inputs(repo, (base_id, ours.id, theirs.id))
    so, st = snaps[1], snaps[2]
    assert so is not None
    assert st is not None
    if so.root != st.root:
        outcome.refused = (f"ours is a {'file' if so.root == ROOT_FILE else 'directory'} and "
                           f"theirs is not{pick}")
        return outcome
    sb = snaps[0]
    if sb is not None and sb.root != so.root:
        ib = MergeInput(None)  # a base of the other shape shares nothing path by path
        ev.warn(f"{shown}: the base version is a {'file' if sb.root == ROOT_FILE else 'directory'}"
                "; merging as if the two versions were added separately")
    file_root = so.root == ROOT_FILE
    objects = store.objects
    with store.writing():
        try:
            result: MergeResult = merge_trees(objects.get_tree, ib, io, it, file_root=file_root,
                                              put=objects.put_tree)
            assert result.tree is not None
            verify_tree(objects.get_tree, result.tree, (result.files, result.bytes),
                        f"the merge of {ours.id} and {theirs.id}", file_root=file_root)
            conflicts = result.conflicts
            meta = dict(so.meta) if isinstance(so.meta, dict) else {}
            rel = outcome.path
            if rel:
                meta["path"] = rel
            message = (f"merge of {ours.id[:12]} and {theirs.id[:12]}" if not conflicts else
                       f"merge of {ours.id[:12]} and {theirs.id[:12]} with {len(conflicts)} "
                       "conflicts (unresolved)")
            snap = Snapshot(KIND_DATASET, ours.name, raw_to_hex(result.tree), so.root,
                            (ours.id, theirs.id), int(time.time()),
                            time.localtime().tm_gmtoff // 60, repo.author(), message,
                            result.files, result.bytes, meta)
            oid = objects.put_snapshot(snap)
            objects.flush()  # durable before the ref and the pointer name it
        except BaseException:
            objects.abort()
            raise
        outcome.id = oid
        outcome.conflicts = conflicts
        if not conflicts:
            head = store.refs.get("datasets", ours.name)
            if head != oid:
                try:
                    store.refs.update("datasets", ours.name, oid, head)
                except MlgitError as e:
                    ev.warn(f"{shown}: the ref of {ours.name} was not moved: {e}")
            _write(ours_file, Pointer(KIND_DATASET, ours.name, oid))
        else:
            _write(ours_file, Pointer(KIND_DATASET, ours.name, oid, PointerConflict(
                ours.id, theirs.id, base_id, len(conflicts),
                tuple(c.path for c in conflicts[:256]))))
    return outcome


def _merge_imports(repo: Core, ours: Pointer, theirs: Pointer, base: Pointer | None,
                   ours_file: Path, outcome: MergeOutcome, pick: str) -> MergeOutcome:
    """Merge pointers of which one or both are imports: never a merge of trees.

    Two imports of the same source and name: one side unchanged wins the other;
    two versions of which one descends from the other (the source's history)
    give the newer (a fast-forward); anything else is refused (git reports the
    conflict; ``git ml update --rev`` settles it). An import against a pointer
    of this repository's own data is refused.
    """
    from mlgit.api.imports import newer_import  # imported when used: start-up time
    os_, ts = ours.source, theirs.source
    if os_ is None or ts is None or os_.url != ts.url or ours.name != theirs.name or (
            ours.kind != theirs.kind):
        what = [f"{p.kind} {p.name!r}" + (f" imported from {p.source.url}" if p.source else
                                          " of this repository")
                for p in (ours, theirs)]
        outcome.refused = f"ours is {what[0]} and theirs {what[1]}{pick}"
        return outcome
    base_id = base.id if base is not None and base.source is not None else None
    if base == theirs or ours.id == theirs.id or base_id == theirs.id:
        chosen = ours
    elif base == ours or base_id == ours.id:
        chosen = theirs
    else:
        newer = newer_import(repo, os_.url, ours.id, theirs.id)
        if newer is None:
            outcome.refused = (f"both sides moved {ours.name} (imported from {os_.url}) to "
                               f"versions that do not descend one from the other; keep one with "
                               f"`git checkout --ours` or `--theirs`, or pin another with "
                               f"`git ml update {outcome.path} --rev ID`")
            return outcome
        chosen = ours if newer == ours.id else theirs
    _write(ours_file, chosen)
    outcome.id = chosen.id
    return outcome


def _write(path: Path, p: Pointer) -> None:
    """Replace git's temporary ``%A`` file with the merged pointer."""
    atomic_write(path, encode_pointer(p))
    os.chmod(path, 0o644)
