"""``git ml status``: each tracked path compared with the snapshot its pointer pins.

A path whose stat cache shows nothing changed since the pinned snapshot was
added or checked out (:func:`mlgit.snapshot.statcache.matches`: ``lstat`` calls
only) is clean without opening the store. Any other path is compared by
building its tree without storing anything (``build_tree`` with ``dry=True``),
hashing only what the stat cache does not vouch for, and diffing it with the
pinned snapshot's tree. :func:`status_if_unchanged` is the first half alone,
for a caller that answers the common case before loading the rest of git-ml.
A conflicted pointer (a merge that left conflicts) is listed with its
conflicts, worked out again from the merge's versions
(:func:`mlgit.api.merge.conflicts_of`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlgit.api.core import Core, about_pointer
from mlgit.api.events import Events
from mlgit.errors import FormatError
from mlgit.format.ids import ObjectID
from mlgit.format.pointer import Pointer, PointerConflict, PointerSource
from mlgit.gitlink.pointers import load_pointers, tracked_path_for
from mlgit.snapshot import statcache

if TYPE_CHECKING:
    from mlgit.format.ids import RawObjectID
    from mlgit.format.tree import TreeEntry
    from mlgit.snapshot.merge import Conflict
    from mlgit.snapshot.treewalk import Change

__all__ = ["StatusEntry", "status", "status_if_unchanged"]


@dataclass
class StatusEntry:
    """One tracked path compared with the snapshot its pointer pins.

    ``state`` is ``clean``, ``modified``, ``missing`` (the data path does not exist)
    or ``conflicted`` (the pointer records a merge that left conflicts: ``conflict``
    is set, ``changes`` compare the data with ours plus what merged cleanly).
    ``conflicts`` lists the conflicting paths, worked out again from the merge's
    versions; None when those are not in the local store (``conflict.paths`` then
    lists what the pointer file holds). ``source`` is set for imported data.
    """

    path: str
    pointer: str
    name: str
    id: ObjectID
    state: str
    changes: list[Change] = field(default_factory=list)
    is_file: bool = False
    conflict: PointerConflict | None = None
    conflicts: list[Conflict] | None = None
    source: PointerSource | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml status --json`` prints it."""
        src = self.source
        return {"path": self.path, "pointer": self.pointer, "name": self.name, "id": self.id,
                "state": self.state, "changes": [c.to_json() for c in self.changes],
                "conflict": self._conflict_json(),
                "source": {"url": src.url, "rev": src.rev} if src is not None else None}

    def _conflict_json(self) -> dict[str, Any] | None:
        c = self.conflict
        if c is None:
            return None
        paths = ([x.to_json() for x in self.conflicts] if self.conflicts is not None else
                 [{"path": p, "kind": None, "base": None, "ours": None, "theirs": None}
                  for p in c.paths])
        count = len(self.conflicts) if self.conflicts is not None else c.count
        return {"ours": c.ours, "theirs": c.theirs, "base": c.base, "count": count,
                "paths": paths}


def status(core: Core, events: Events | None = None) -> list[StatusEntry]:
    """Compare each tracked path with the snapshot its pointer pins.

    A bad pointer file, or one whose snapshot cannot be read, is reported to
    ``events`` and left out; the others are compared. Without ``events`` the
    first problem is raised once the rest is done.
    """
    ev = events or Events()
    core.store  # noqa: B018 - NotInitializedError before anything else
    out = []
    for pointer_rel, p in core.tracked(ev):
        try:
            entry = _status_one(core, pointer_rel, p, ev)
        except FormatError as e:
            if p.conflict is None:
                ev.problem(about_pointer(pointer_rel, e))
                continue
            # A conflict is listed whatever else is wrong: it is what to resolve.
            ev.warn(f"{pointer_rel}: the data cannot be compared: "
                    f"{about_pointer(pointer_rel, e)}")
            entry = StatusEntry(tracked_path_for(pointer_rel), pointer_rel, p.name, p.id,
                                "conflicted")
        if p.conflict is not None:
            _add_conflicts(core, entry, p.conflict, ev)
        entry.source = p.source
        out.append(entry)
    if events is None:
        ev.raise_problems()
    return out


def status_if_unchanged(core: Core) -> list[StatusEntry] | None:
    """The status of every tracked path when their stat caches show that none changed.

    Every entry is then clean. None when anything needs a closer look (no
    usable store, a pointer file git-ml refuses, a conflicted pointer, a
    missing path, any difference): :func:`status` then answers. Opens no store
    and hashes nothing: ``lstat`` calls, the pointer files and the stat caches.
    """
    if not core.has_store():
        return None
    good, problems = load_pointers(core.git)
    if problems:
        return None
    out = []
    for pointer_rel, p in good:
        if p.conflict is not None:
            return None
        entry = _clean_entry(core, pointer_rel, p)
        if entry is None:
            return None
        out.append(entry)
    return out


def _clean_entry(core: Core, pointer_rel: str, p: Pointer,
                 loaded: list[statcache.StatCache] | None = None) -> StatusEntry | None:
    """The clean entry of a tracked path its stat cache vouches for; else None (look closer).

    The stat cache read is appended to ``loaded`` (for the closer look).
    """
    rel = tracked_path_for(pointer_rel)
    full = core.git.require_workdir() / rel
    old = statcache.load(statcache.cache_path(core.cache_dir, full))
    if loaded is not None:
        loaded.append(old)
    if old.snapshot != p.id:
        return None
    is_file = full.is_file()
    if not statcache.matches(os.fsencode(full), old, is_file=is_file):
        return None
    return StatusEntry(rel, pointer_rel, p.name, p.id, "clean", is_file=is_file,
                       source=p.source)


def _add_conflicts(core: Core, entry: StatusEntry, c: PointerConflict, ev: Events) -> None:
    """Mark ``entry`` conflicted and work out its conflicts from the merge's versions."""
    from mlgit.api.merge import conflicts_of  # start-up time: only for a conflict

    entry.state = "conflicted"
    entry.conflict = c
    try:
        entry.conflicts = conflicts_of(core, c)
    except FormatError as e:
        ev.warn(f"{entry.pointer}: the conflicts cannot be worked out again ({e}); "
                "showing those the pointer file lists")


def _status_one(core: Core, pointer_rel: str, p: Pointer, ev: Events) -> StatusEntry:
    """One tracked path compared with its pinned snapshot."""
    loaded: list[statcache.StatCache] = []
    if p.conflict is None:
        clean = _clean_entry(core, pointer_rel, p, loaded)
        if clean is not None:
            return clean
    from mlgit.format.ids import hex_to_raw, raw_to_hex
    from mlgit.snapshot.build import build_tree
    from mlgit.snapshot.treewalk import diff_trees

    store = core.store
    rel = tracked_path_for(pointer_rel)
    full = core.git.require_workdir() / rel
    entry = StatusEntry(rel, pointer_rel, p.name, p.id, "clean")
    if not os.path.lexists(full):
        entry.state = "missing"
        return entry
    cpath = statcache.cache_path(store.cache_dir, full)
    old = loaded[0] if loaded else statcache.load(cpath)
    if old.snapshot != p.id:
        old = statcache.StatCache()
    snap_tree = old.tree if old.tree else core.snapshot(p.id).tree
    entry.is_file = full.is_file()
    built = build_tree(store, os.fsencode(full), is_file=entry.is_file, old=old,
                       dry=True, warn=ev.warn)
    if raw_to_hex(built.root) == snap_tree:
        if built.hashed_files:  # refresh the cache so the next status is instant
            built.cache.snapshot = p.id
            statcache.save(cpath, built.cache, built.stat_time_ns,
                           core.git_index_target(full))
        return entry
    entry.state = "modified"

    def get_cur(t: RawObjectID, trees: dict[RawObjectID, list[TreeEntry]] = built.trees
                ) -> list[TreeEntry]:
        got = trees.get(t)
        return got if got is not None else store.objects.get_tree(t)

    pinned = core.snapshot(p.id)  # its claims bound the walk
    entry.changes = list(diff_trees(store.objects.get_tree, hex_to_raw(snap_tree),
                                    get_cur, built.root,
                                    claims=((pinned.files, pinned.bytes), None),
                                    where=(f"snapshot {p.id}", rel)))
    return entry
