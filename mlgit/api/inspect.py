"""Read-only views of snapshots and names: ``git ml diff``, ``show``, ``ls``, ``history``.

Nothing here writes: each function resolves revisions, reads snapshots and walks
trees from the local store (every object verified against its id, every walk
bounded by what the snapshot claims). The result types and their ``to_json``
forms are the documented ``--json`` schemas (docs/cli.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.errors import FormatError
from mlgit.format.ids import ObjectID, hex_to_raw
from mlgit.format.snapshot import ROOT_FILE, Snapshot
from mlgit.format.tree import TYPE_FILE, TreeEntry
from mlgit.format.treeshape import file_root_entry
from mlgit.snapshot.treewalk import Change, diff_trees, flatten
from mlgit.store.refs import SNAPSHOT_KINDS, RefStore
from mlgit.store.revision import remote_names, tracking_refs

__all__ = ["FileInfo", "ListEntry", "SnapshotInfo", "diff", "file_root", "history", "ls",
           "show"]


@dataclass
class FileInfo:
    """A file or symlink in a snapshot."""

    path: str
    type: str
    size: int
    executable: bool = False
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size}
        if self.type == "file":
            d["executable"] = self.executable
        if self.target is not None:
            d["target"] = self.target
        return d


@dataclass
class SnapshotInfo:
    """A snapshot with its id (and, when asked for, its files)."""

    id: ObjectID
    snapshot: Snapshot
    files: list[FileInfo] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form: the documented schema of ``git ml show --json``."""
        d = {"id": self.id, **self.snapshot.to_json()}
        if self.files is not None:
            d["file_list"] = [f.to_json() for f in self.files]
        return d


@dataclass
class ListEntry:
    """A dataset or checkpoint run and its newest snapshot.

    ``remote`` is None for a local ref, else the remote whose remote-tracking ref
    this is (what ``git ml fetch`` last saw there).
    """

    kind: str
    name: str
    id: ObjectID
    snapshot: Snapshot
    remote: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml ls --json`` prints it."""
        s = self.snapshot
        return {"kind": self.kind, "name": self.name, "remote": self.remote, "id": self.id,
                "time": s.time, "files": s.files, "bytes": s.bytes, "message": s.message}


def file_root(core: Core, oid: ObjectID, snap: Snapshot) -> TreeEntry | None:
    """A file snapshot's one regular file (FormatError if it holds anything else); else None."""
    if snap.root != ROOT_FILE:
        return None
    return file_root_entry(core.store.objects.get_tree(hex_to_raw(snap.tree)),
                           f"snapshot {oid}")


def diff(core: Core, a: str, b: str) -> list[Change]:
    """Files added (A), removed (D), modified (M) or changed type (T) from ``a`` to ``b``.

    FormatError if a tree the comparison reads breaks the format's shape rules.
    """
    ia, ib = core.resolve(a), core.resolve(b)
    sa, sb = core.snapshot(ia), core.snapshot(ib)
    file_root(core, ia, sa)
    file_root(core, ib, sb)
    get = core.store.objects.get_tree
    return list(diff_trees(get, hex_to_raw(sa.tree), get, hex_to_raw(sb.tree),
                           claims=((sa.files, sa.bytes), (sb.files, sb.bytes)),
                           where=(f"snapshot {ia}", f"snapshot {ib}")))


def show(core: Core, rev: str, *, files: bool = True) -> SnapshotInfo:
    """A snapshot, with its file list unless ``files`` is False."""
    oid = core.resolve(rev)
    snap = core.snapshot(oid)
    info = SnapshotInfo(oid, snap)
    if files:
        file_root(core, oid, snap)
        info.files = []
        for path, e in flatten(core.store.objects.get_tree, hex_to_raw(snap.tree),
                               claim=(snap.files, snap.bytes), where=f"snapshot {oid}"):
            if e.type == TYPE_FILE:
                info.files.append(FileInfo(path, "file", e.size, e.executable))
            else:
                info.files.append(FileInfo(path, "symlink", e.size,
                                           target=os.fsdecode(e.target)))
    return info


def ls(core: Core, events: Events | None = None) -> list[ListEntry]:
    """Every dataset and checkpoint run with its newest snapshot.

    Local refs first, then each remote's remote-tracking refs (datasets before
    runs within each). A ref that cannot be read, or whose snapshot does not
    decode (or is missing), is a problem, reported to ``events`` and left out;
    the others are listed. With no ``events`` the first problem is raised at the end.
    """
    ev = events or Events()
    out: list[ListEntry] = []
    sources: list[tuple[str | None, RefStore]] = [(None, core.store.refs)]
    sources += [(r, tracking_refs(core.store, r)) for r in remote_names(core.store)]
    for remote, refs in sources:
        for kind in SNAPSHOT_KINDS:
            for name, oid in refs.list(kind, lambda _, e: ev.problem(e)).items():
                where = f"{remote}/{name}" if remote else name
                try:
                    snap = core.snapshot(oid)
                except FormatError as e:
                    ev.problem(type(e)(f"ref {kind}/{where}: {e}"))
                    continue
                out.append(ListEntry(kind[:-1], name, oid, snap, remote))
    if events is None:
        ev.raise_problems()
    return out


def history(core: Core, rev: str, limit: int | None = None) -> list[SnapshotInfo]:
    """A snapshot and its first-parent ancestors, newest first (``git ml history``)."""
    oid: ObjectID | None = core.resolve(rev)
    out: list[SnapshotInfo] = []
    while oid is not None and (limit is None or len(out) < limit):
        snap = core.snapshot(oid)
        out.append(SnapshotInfo(oid, snap))
        oid = snap.parents[0] if snap.parents else None
    return out
