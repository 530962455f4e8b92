"""``git ml checkout``: snapshots into read-only copies and into the work tree.

:func:`checkout` materializes a snapshot (or a note's payload) once, read-only,
at ``.git/ml/checkouts/<id>``; :func:`checkout_worktree` makes tracked paths
match their pointer files, refusing to discard content the store lacks. What
the store lacks comes from the lazy-fetch remote (:mod:`mlgit.api.fetching`).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlgit.api import copies, fetching, imports, sync
from mlgit.api.core import Core, about_pointer
from mlgit.api.events import Events
from mlgit.errors import (
    AmbiguousRevisionError,
    BadPathError,
    CorruptObjectError,
    FormatError,
    RevisionError,
)
from mlgit.format.ids import ObjectID, hex_to_raw, is_hex_prefix
from mlgit.format.paths import check_component
from mlgit.format.pointer import POINTER_SUFFIX, Pointer
from mlgit.format.records import PayloadRecord
from mlgit.format.snapshot import KIND_DATASET, ROOT_DIR, Snapshot
from mlgit.format.tree import TYPE_FILE
from mlgit.format.treeshape import totals
from mlgit.gitlink.notes import note_records
from mlgit.gitlink.pointers import PointerProblem, load_pointers, tracked_path_for
from mlgit.snapshot import statcache
from mlgit.snapshot.materialize import update_worktree

__all__ = ["checkout", "checkout_worktree", "tracked_for"]


def checkout(core: Core, rev: str, events: Events | None = None, *,
             worktree: bool = True) -> Path:
    """A directory (or file) holding snapshot ``rev``, to read and never write to.

    The work tree's own copy when a tracked path pins exactly ``rev`` and is
    clean (unless ``worktree`` is False); else a read-only checkout under
    ``checkouts/``, materialized once (reflinking what the work tree holds
    where the filesystem can) and held for this process until it exits or
    calls :func:`mlgit.release` (see :mod:`mlgit.api.copies`).
    For a checkpoint stored from a TensorFlow prefix, the path is that prefix
    inside the directory (what ``tf.train.Checkpoint.restore`` expects).
    ``rev`` may also be the ``object`` id (or a unique prefix of it) that a
    note record names: the payload (a log, graph or results file or
    directory) is fetched lazily when not here and materialized the same
    way; for a payload of one file the path is that file.
    """
    ev = events or Events()
    payload = _payload_record(core, rev)
    if payload is not None:
        return _checkout_payload(core, payload, ev)
    own = copies.worktree_copy(core, rev) if worktree else None
    if own is not None:
        return own
    oid = fetching.resolve_fetching(core, rev)
    snap = core.snapshot(oid)
    prefix = _tf_prefix(core, oid, snap)  # checked before anything is written
    path = copies.materialize(core, oid, snap, ev)
    return path / prefix if prefix is not None else path


def _payload_record(core: Core, rev: str) -> PayloadRecord | None:
    """The note record whose payload ``rev`` names, or None if ``rev`` is a revision.

    Looked for only when ``rev`` is 4 to 32 hex digits that resolve to no
    local snapshot: then the notes are read, and ``rev`` must be the ``object``
    of a log, graph or results record, or a prefix of exactly one.
    """
    want = rev.strip().lower()
    if not (4 <= len(want) <= 32 and is_hex_prefix(want)):
        return None
    try:
        core.resolve(rev)
        return None
    except AmbiguousRevisionError:
        raise
    except RevisionError:
        pass
    found: dict[str, PayloadRecord] = {}
    for _, rec in note_records(core.git):
        if isinstance(rec, PayloadRecord) and rec.object.startswith(want):
            found.setdefault(rec.object, rec)
    if len(found) > 1:
        raise AmbiguousRevisionError(
            f"{rev!r} is a prefix of several payloads: {', '.join(sorted(found)[:10])}")
    return next(iter(found.values()), None)


def _checkout_payload(core: Core, rec: PayloadRecord, ev: Events) -> Path:
    """Materialize a note's payload read-only at ``checkouts/<object>``; see :func:`checkout`.

    Fetched lazily (whole) when not complete here. A payload tree holding one
    regular file named as the record's ``name`` was stored from that file: its
    path is returned.
    """
    oid = rec.object
    raw = hex_to_raw(oid)
    if not fetching.tree_complete(core, raw):
        remote = fetching.lazy_remote(core)
        if remote is None:
            raise RevisionError(f"payload {oid} ({rec.type} {rec.name[:80]!r}) is not in "
                                "the local store and lazy fetching is off; run "
                                "`git ml fetch`")
        sync.fetch_payload(core, remote, oid)
    entries = core.store.objects.get_tree(raw)
    files, nbytes = totals(entries)
    snap = Snapshot(KIND_DATASET, rec.name, oid, ROOT_DIR, (), 0, 0, "", "", files, nbytes)
    path = copies.materialize(core, oid, snap, ev, label=rec.name[:80])
    name = os.fsencode(rec.name)
    if len(entries) == 1 and entries[0].type == TYPE_FILE and entries[0].name == name:
        return path / rec.name  # a tree entry's name: one checked path component
    return path


def _tf_prefix(core: Core, oid: ObjectID, snap: Snapshot) -> str | None:
    """The TensorFlow prefix a checkpoint was stored from (``meta.source.prefix``), or None.

    The prefix is stored data, so it is checked as a path: one valid path
    component whose ``<prefix>.index`` file is in the snapshot's root tree.
    Anything else is a FormatError (never a path outside the checkout).
    """
    ck = snap.checkpoint
    if ck is None or ck.source is None or ck.source.type != "tf-prefix":
        return None
    prefix = ck.source.prefix
    where = f"checkpoint {snap.name} {oid[:12]}: meta.source.prefix"
    if prefix is None:
        raise FormatError(f"{where} is missing")
    check_component(prefix, where)
    if snap.root != ROOT_DIR:
        raise FormatError(f"{where}: a TensorFlow prefix needs a directory snapshot")
    index = os.fsencode(prefix + ".index")
    if not any(e.name == index and e.type == TYPE_FILE
               for e in core.store.objects.get_tree(hex_to_raw(snap.tree))):
        raise FormatError(f"{where} {prefix[:80]!r} has no {prefix[:80]!r}.index file in "
                          "the snapshot")
    return prefix


def tracked_for(core: Core, paths: list[str] | None, ev: Events) -> list[tuple[str, Pointer]]:
    """:meth:`Core.tracked`, narrowed to ``paths`` (work-tree paths; data or pointer files).

    Problems are reported for the pointers asked for only; a path that names
    no pointer at all is a BadPathError.
    """
    good, problems = load_pointers(core.git)
    if not paths:
        for _, err in problems:
            ev.problem(err)
        return good
    wanted = {core.git.relpath(Path(p)).removesuffix(POINTER_SUFFIX) for p in paths}
    bad: list[PointerProblem] = [pe for pe in problems
                                 if pe[0].removesuffix(POINTER_SUFFIX) in wanted]
    known = {tracked_path_for(pr) for pr, _ in good} | {
        pr.removesuffix(POINTER_SUFFIX) for pr, _ in bad}
    unknown = sorted(wanted - known)
    if unknown:
        raise BadPathError(f"not tracked by git-ml: {', '.join(unknown)}")
    for _, err in bad:
        ev.problem(err)
    return [(pr, p) for pr, p in good if tracked_path_for(pr) in wanted]


def checkout_worktree(core: Core, paths: list[str] | None = None, *, force: bool = False,
                      events: Events | None = None) -> list[tuple[str, ObjectID]]:
    """Make tracked paths (all, or those named) match their pointer files.

    Returns (path, id) for each path updated. Refuses, changing nothing for
    that path, to discard local changes not saved in the store unless ``force``.
    What the store lacks comes from the lazy-fetch remote (when there is one and
    ``ml.lazyFetch`` is not false): a missing snapshot with its trees, then the
    chunks of just the files to write. A bad pointer file (see
    :meth:`Core.tracked`), or one whose snapshot is malformed or cannot be had,
    is reported to ``events`` and skipped, and the other paths are checked out;
    without ``events`` the first problem is raised once the rest is done. A
    conflicted pointer's data becomes ours plus what merged cleanly (the
    snapshot it pins).
    """
    ev = events or Events()
    store = core.store
    work = core.git.require_workdir()
    pointers = tracked_for(core, paths, ev)
    every = pointers if not paths else core.tracked()
    lacking = sorted({p.id for _, p in pointers
                      if not store.objects.has_committed(hex_to_raw(p.id))})
    why = imports.fetch_lacking(core, pointers, lacking,
                                lambda oids: fetching.fetch_snapshots(core, oids)) if (
        lacking) else {}
    done = []
    for pointer_rel, p in pointers:
        rel = tracked_path_for(pointer_rel)
        full = work / rel
        if p.id in why:
            ev.problem(CorruptObjectError(f"{pointer_rel}: snapshot {p.id} is not in the "
                                          f"local store, {why[p.id]}"))
            continue
        try:
            snap = core.snapshot(p.id)
        except FormatError as e:
            ev.problem(about_pointer(pointer_rel, e))
            continue
        cpath = statcache.cache_path(store.cache_dir, full)
        old = statcache.load(cpath)
        label = f"checking out {rel}"

        def on_total(files: int, nbytes: int, label: str = label) -> None:
            ev.start(label, files, nbytes)

        try:
            cache, stat_time = update_worktree(
                store, snap, full, old, force=force, warn=ev.warn, progress=ev.advance,
                on_total=on_total,
                fetch=imports.chunk_fetcher_for(core, p, fetching.chunk_fetcher(core)),
                reuse=copies.update_reuse(core, full, p.id, snap, every))
        except FormatError as e:  # a bad snapshot: nothing of it was written
            ev.problem(about_pointer(pointer_rel, e))
            continue
        finally:
            ev.finish()
        cache.snapshot = p.id
        statcache.save(cpath, cache, stat_time, core.git_index_target(full))
        done.append((rel, p.id))
    if events is None:
        ev.raise_problems()
    return done
