"""``git ml add``: snapshot paths as datasets, write and stage their pointer files.

Every path is checked before anything is written (inside the work tree, a
trackable path, a regular file or directory, not tracked by git, a free
dataset name). Then, per path: the tree is built (only what the stat cache
does not vouch for is hashed), the snapshot stored, the objects made durable,
and only then the dataset's ref moved (compare-and-swap), the pointer file
written, the ``.gitignore`` line added, both staged, and the stat cache saved.

Re-adding a path whose stat cache shows nothing changed since its pointer's
snapshot (:func:`mlgit.snapshot.statcache.matches`) makes no snapshot and
writes nothing; :func:`add_if_unchanged` answers that case alone, with the same
checks and no store opened, for a caller that answers it before loading the
rest of git-ml.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.errors import BadPathError, FormatError, PointerError, UsageError
from mlgit.format.ids import ObjectID, hex_to_raw, raw_to_hex
from mlgit.format.kinds import KIND_DATASET, ROOT_DIR, ROOT_FILE
from mlgit.format.names import is_ref_name
from mlgit.format.paths import check_tracked_path
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, PointerConflict, encode_pointer
from mlgit.gitlink import index as gitindex
from mlgit.gitlink.pointers import (
    list_pointers,
    pointer_path_for,
    read_pointer,
    tracked_path_for,
    write_pointer,
)
from mlgit.snapshot import statcache

if TYPE_CHECKING:
    from mlgit.store.store import Store

__all__ = ["AddResult", "add", "add_if_unchanged"]


@dataclass
class AddResult:
    """The outcome of adding one path: the snapshot id and whether it is new."""

    path: str
    pointer: str
    name: str
    id: ObjectID
    created: bool
    files: int
    bytes: int
    hashed_files: int
    hashed_bytes: int
    stored_bytes: int


def add(core: Core, paths: list[str | os.PathLike[str]], *, name: str | None = None,
        message: str = "", events: Events | None = None) -> list[AddResult]:
    """Snapshot each path as a dataset; write and stage its pointer and .gitignore.

    Every path is checked before anything is written. A path whose content
    equals its current snapshot makes no new snapshot (``created`` False).
    """
    ev = events or Events()
    if not paths:
        raise BadPathError("nothing to add: name a directory or file")
    if name is not None and len(paths) > 1:
        raise UsageError("--name works with one path at a time")
    if name is not None and not is_ref_name(name):
        raise UsageError(f"invalid name {name!r}: use letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    store = core.store
    plans = []
    names_seen: dict[str, str] = {}
    for p in paths:
        rel, is_file = _check_add_path(core, p)
        pointer_rel = pointer_path_for(rel)
        existing = read_pointer(core.git, pointer_rel)
        if existing is not None and existing.source is not None:
            raise BadPathError(
                f"{rel} is imported from {existing.source.url}; `git ml update {rel}` "
                f"moves it to another version of the source (to make it this "
                f"repository's own dataset: `git ml rm --cached {rel}`, then add it)")
        ds = name or (existing.name if existing else rel.rsplit("/", 1)[-1])
        if not is_ref_name(ds):
            raise UsageError(f"{rel}: {ds!r} is not a valid dataset name; pass --name NAME")
        if names_seen.get(ds, rel) != rel:
            raise BadPathError(f"{names_seen[ds]} and {rel} would both be dataset {ds!r}")
        names_seen[ds] = rel
        _check_name_free(core, ds, pointer_rel)
        plans.append((rel, is_file, pointer_rel, existing, ds))
    with store.writing():  # gc must not prune what this add reuses
        return [_add_one(core, store, *plan, message, ev) for plan in plans]


def add_if_unchanged(core: Core, paths: list[str | os.PathLike[str]]) -> list[AddResult] | None:
    """What :func:`add` (without a name) returns when no path changed since its snapshot.

    Each path must pass :func:`add`'s checks, have a pointer file (no conflict)
    whose dataset's ref exists, and a stat cache of that snapshot that
    :func:`~mlgit.snapshot.statcache.matches` it; its pointer file and
    ``.gitignore`` line must be in place and staged. :func:`add` would then
    write nothing, and neither does this. None when anything else holds:
    :func:`add` then does the work. A path :func:`add` refuses raises what it
    would raise. Opens no store and hashes nothing.
    """
    if not paths or not core.has_store():
        return None
    # One `git ls-files` for what add asks the index: paths tracked under each data
    # path, the pointer files, and whether pointers and .gitignore files are staged.
    work = core.git.require_workdir()
    rels = [core.git.relpath(Path(p)) for p in paths]
    if any(not rel or rel == "." for rel in rels):
        return None  # add's error
    ignores = [rel.rsplit("/", 1)[0] + "/.gitignore" if "/" in rel else ".gitignore"
               for rel in rels]
    entries = gitindex.index_entries(core.git, [
        f":(glob)**/*{POINTER_SUFFIX}",
        *(f":(literal){r}" for r in [*rels, *(pointer_path_for(r) for r in rels), *ignores])])

    def tracked_under(rel: str) -> list[str]:
        return [e for e in entries if e == rel or e.startswith(rel + "/")]

    plans = []
    names: dict[str, str] = {}
    for p in paths:
        rel, is_file = _check_add_path(core, p, tracked_under)
        pointer_rel = pointer_path_for(rel)
        existing = read_pointer(core.git, pointer_rel)
        if existing is None or existing.conflict is not None or not is_ref_name(existing.name):
            return None
        if names.setdefault(existing.name, rel) != rel:
            return None
        plans.append((rel, is_file, pointer_rel, existing))
    indexed = [e for e in entries if e.endswith(POINTER_SUFFIX)]
    ours = {pointer_path_for(rel) for rel in names.values()}
    for other in list_pointers(core.git, indexed):  # no other pointer names these datasets
        if other in ours:
            continue
        try:
            op = read_pointer(core.git, other)
        except PointerError:
            continue
        if op is not None and op.name in names:
            return None
    out = []
    staged: list[str] = []
    for rel, is_file, pointer_rel, existing in plans:
        full = work / rel
        old = statcache.load(statcache.cache_path(core.cache_dir, full))
        ignore_rel = gitindex.ignored_by(core.git, rel)
        if (ignore_rel is None or old.snapshot != existing.id
                or core.refs.get("datasets", existing.name) is None
                or (work / pointer_rel).read_bytes() != encode_pointer(
                    Pointer(KIND_DATASET, existing.name, existing.id))
                or not statcache.matches(os.fsencode(full), old, is_file=is_file)):
            return None
        staged += [pointer_rel, ignore_rel]
        out.append(AddResult(rel, pointer_rel, existing.name, existing.id, False, old.files,
                             old.nbytes, 0, 0, 0))
    if not gitindex.staged(core.git, sorted(set(staged)), entries):
        return None
    return out


def _check_add_path(core: Core, path: str | os.PathLike[str],
                    tracked_under: Callable[[str], list[str]] | None = None) -> tuple[str, bool]:
    """``path`` as a work-tree path git-ml may track, and whether it is a file.

    ``tracked_under`` answers for the index when the caller read it already.
    """
    rel = core.git.relpath(Path(path))
    if not rel or rel == ".":
        raise BadPathError("cannot add the whole work tree; name a directory or file in it")
    try:
        check_tracked_path(rel)
    except FormatError as e:
        raise BadPathError(f"{path}: {e}; git-ml cannot track data there") from None
    full = core.git.require_workdir() / rel
    if not os.path.lexists(full):
        raise BadPathError(f"{path}: no such file or directory")
    if full.is_symlink():
        raise BadPathError(f"{path} is a symlink; add the directory or file it points to")
    if not (full.is_dir() or full.is_file()):
        raise BadPathError(f"{path} is not a regular file or directory")
    if rel.endswith(POINTER_SUFFIX):
        raise BadPathError(f"{path} is a git-ml pointer file")
    gitindex.check_ignorable(core.git, rel)  # refused now, not after the snapshot
    tracked = (tracked_under or (lambda r: gitindex.tracked_under(core.git, r)))(rel)
    if tracked:
        flag = " -r" if full.is_dir() else ""
        raise BadPathError(
            f"{rel} is tracked by git; untrack it with `git rm{flag} --cached {rel}` "
            "(the files stay) and add it again")
    return rel, full.is_file()


def _check_name_free(core: Core, ds: str, pointer_rel: str) -> None:
    """BadPathError if another pointer file already names dataset ``ds``."""
    for other in list_pointers(core.git):
        if other == pointer_rel:
            continue
        try:
            op = read_pointer(core.git, other)
        except PointerError:
            continue
        if op is not None and op.name == ds:
            raise BadPathError(
                f"dataset name {ds!r} is already used by {tracked_path_for(other)}; "
                "choose another with --name")


def _add_one(core: Core, store: Store, rel: str, is_file: bool, pointer_rel: str,
             existing: Pointer | None, ds: str, message: str, ev: Events) -> AddResult:
    """Snapshot one checked path; objects durable before the ref, pointer and stat cache."""
    from mlgit.format.snapshot import Snapshot
    from mlgit.snapshot.build import build_tree  # start-up time: not for add_if_unchanged

    work = core.git.require_workdir()
    full = work / rel
    cpath = statcache.cache_path(store.cache_dir, full)
    old = statcache.load(cpath)
    written_before = store.objects.bytes_written
    ev.start(f"adding {rel}", 0, 0)
    try:
        built = build_tree(store, os.fsencode(full), is_file=is_file, old=old,
                           warn=ev.warn, progress=ev.advance,
                           on_total=lambda f, b: ev.start(f"adding {rel}", f, b))
    except BaseException:
        store.objects.abort()
        raise
    finally:
        ev.finish()
    head = store.refs.get("datasets", ds)
    same = existing is not None and existing.name == ds
    # A conflicted merge being resolved: the new version has both sides as parents.
    merging = existing.conflict if existing is not None and same else None
    parent = (merging.ours if merging is not None else existing.id) if (
        existing is not None and same) else head
    root_kind = ROOT_FILE if is_file else ROOT_DIR
    tree_hex = raw_to_hex(built.root)
    created = True
    oid: ObjectID
    unchanged_cache = old.snapshot == parent and old.tree == tree_hex and not built.hashed_files
    if merging is not None:
        assert existing is not None
        _warn_unmerged(core, rel, existing, merging, tree_hex, ev)
    elif parent is not None:
        # The stat cache remembers the parent's tree, saving a read of the store.
        if unchanged_cache and existing is not None and existing.name == ds:
            created = False
            oid = parent
        elif not store.objects.has_committed(hex_to_raw(parent)):
            ev.warn(f"{ds}: parent version {parent[:12]} is not in the local store; "
                    "recording it as the parent anyway")
        else:
            psnap = store.objects.get_snapshot(parent)
            if psnap.tree == tree_hex and psnap.root == root_kind and psnap.name == ds:
                created = False
                oid = parent
    if created:
        tz = time.localtime().tm_gmtoff // 60
        parents: tuple[ObjectID, ...] = (parent,) if parent else ()
        if merging is not None:
            parents = (merging.ours, merging.theirs)
            message = message or (f"merge of {merging.ours[:12]} and "
                                  f"{merging.theirs[:12]}, conflicts resolved")
        snap = Snapshot(KIND_DATASET, ds, ObjectID(tree_hex), root_kind, parents,
                        int(time.time()), tz, core.author(), message, built.files,
                        built.total_bytes, {"path": rel})
        oid = store.objects.put_snapshot(snap)
    store.objects.flush()  # objects durable before anything names them
    if created or head is None:
        store.refs.update("datasets", ds, oid, head)
    write_pointer(core.git, pointer_rel, Pointer(KIND_DATASET, ds, oid))
    ignore_rel = gitindex.ensure_ignored(core.git, rel)
    gitindex.stage(core.git, [pointer_rel, ignore_rel])
    built.cache.snapshot = oid
    if not (unchanged_cache and oid == parent):
        statcache.save(cpath, built.cache, built.stat_time_ns, core.git_index_target(full))
    return AddResult(rel, pointer_rel, ds, oid, created, built.files, built.total_bytes,
                     built.hashed_files, built.hashed_bytes,
                     store.objects.bytes_written - written_before)


def _warn_unmerged(core: Core, rel: str, existing: Pointer, c: PointerConflict, tree_hex: str,
                   ev: Events) -> None:
    """Warn when a conflict is resolved with data that is still just ours.

    The changes that merged cleanly are in the snapshot the conflicted pointer
    pins (``git ml checkout`` puts them in the work tree); data equal to ours
    leaves them out, which is a valid resolution but rarely the one meant.
    """
    objects = core.store.objects
    try:
        if not (objects.has_committed(hex_to_raw(c.ours))
                and objects.has_committed(hex_to_raw(existing.id))):
            return
        ours_tree, partial_tree = core.snapshot(c.ours).tree, core.snapshot(existing.id).tree
    except FormatError:
        return
    if tree_hex == ours_tree != partial_tree:
        ev.warn(f"{rel}: recorded as the merge, but the data is your version only: the "
                f"changes that merged cleanly ({existing.id[:12]}, `git ml checkout "
                f"{rel}`) are not in it")
