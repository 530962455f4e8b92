"""Reading files of a snapshot in place, with no copy: ``mlgit.open`` and ``mlgit.prefetch``.

:func:`open_file` gives a seekable file object that reads chunks on demand from
the store; :func:`prefetch` brings, in one transfer, the chunks a loop of opens
over a lazily fetched snapshot will need. What the store lacks comes from the
lazy-fetch remote, or for imported data from its source (:mod:`mlgit.api.fetching`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import BinaryIO

from mlgit.api import fetching, sync
from mlgit.api.core import Core
from mlgit.api.inspect import file_root
from mlgit.errors import BadPathError, RevisionError
from mlgit.format.ids import RawObjectID, hex_to_raw
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry
from mlgit.snapshot.reader import SnapshotFile
from mlgit.snapshot.treewalk import flatten, lookup

__all__ = ["open_file", "prefetch"]


def open_file(core: Core, rev: str, path: str = "", *, close_core: bool = False) -> BinaryIO:
    """A binary, seekable file object over one file of a snapshot; reads chunks on demand.

    For a file snapshot ``path`` may be empty. The file reads through this
    core's store (no other is opened), so it is valid until the file or the core
    is closed. With ``close_core`` the file owns the core: closing the file (or
    its garbage collection) closes it.
    """
    oid = fetching.resolve_fetching(core, rev, whole=False)
    if not core.store.objects.has_committed(hex_to_raw(oid)):
        raise RevisionError(f"snapshot {oid} is not in the local store")
    snap = core.snapshot(oid)
    get = core.store.objects.get_tree
    root = hex_to_raw(snap.tree)
    only = file_root(core, oid, snap)
    entry = only if only is not None and not path.strip("/") else lookup(get, root, path)
    if entry.type == TYPE_DIR:
        raise BadPathError(f"{path!r} is a directory")
    if entry.type != TYPE_FILE:
        raise BadPathError(f"{path!r} is a symlink to {os.fsdecode(entry.target)!r}")
    missing = [(c, n) for c, n in entry.chunks if not core.store.objects.has_committed(c)]
    remote = fetching.remote_for(core, oid) if missing else None
    if missing and remote is not None:
        sync.fetch_chunks(core, remote, missing)
        core.consolidate_packs()  # one pack per lazy open: keep their number bounded
    raw = SnapshotFile(core.store.objects, entry, path or os.fsdecode(entry.name),
                       on_close=core.close if close_core else None)
    return io.BufferedReader(raw, buffer_size=1 << 20)


def prefetch(core: Core, rev: str, paths: list[str] | None = None) -> int:
    """Fetch, in one transfer, the data of these files of snapshot ``rev`` the store lacks.

    ``paths`` are files or directories of the snapshot (empty or None: all of
    it; symlinks have no data). Use it before a loop of :func:`open_file` over
    many files of a lazily fetched snapshot: one pack and one round of requests
    instead of one per file. Returns the number of chunks fetched (0 when
    everything is here or lazy fetching is off). BadPathError for a path the
    snapshot lacks.
    """
    oid = fetching.resolve_fetching(core, rev, whole=False)
    if not core.store.objects.has_committed(hex_to_raw(oid)):
        raise RevisionError(f"snapshot {oid} is not in the local store")
    snap = core.snapshot(oid)
    get = core.store.objects.get_tree
    root = hex_to_raw(snap.tree)
    only = file_root(core, oid, snap)
    has = core.store.objects.has_committed
    missing: dict[RawObjectID, int] = {}
    for path in paths or [""]:
        if only is not None and not path.strip("/"):
            files: Iterable[tuple[str, TreeEntry]] = [("", only)]
        elif not path.strip("/"):
            files = flatten(get, root, claim=(snap.files, snap.bytes), where=f"snapshot {oid}")
        else:
            entry = lookup(get, root, path)
            files = ([("", entry)] if entry.type != TYPE_DIR else
                     flatten(get, entry.subtree, claim=(entry.files, entry.size),
                             where=f"snapshot {oid}: {path}"))
        for _, e in files:
            missing.update((c, n) for c, n in e.chunks if c not in missing and not has(c))
    remote = fetching.remote_for(core, oid) if missing else None
    if remote is None:
        return 0
    sync.fetch_chunks(core, remote, list(missing.items()))
    core.consolidate_packs()
    return len(missing)
