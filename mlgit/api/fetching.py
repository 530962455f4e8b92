"""Lazy fetching: what a reading verb does when the local store lacks what it reads.

The lazy-fetch remote (:func:`lazy_remote`: ``ml.remote``, else the default
remote; none when ``ml.lazyFetch`` is false) supplies, on demand, a revision
that does not resolve here (:func:`resolve_fetching`), snapshots with their
trees (:func:`fetch_snapshots`, :func:`snapshot_fetcher`, :func:`fetch_pinned`)
and the chunks of the files a checkout writes (:func:`chunk_fetcher`). Used by
checkout, open, the merge driver and git's hooks; everything fetched is verified
on arrival (:mod:`mlgit.api.sync`).
"""

from __future__ import annotations

from collections.abc import Callable

from mlgit.api import imports, sync
from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.errors import CorruptObjectError, MlgitError, RevisionError, UsageError
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw
from mlgit.format.tree import TYPE_DIR, TYPE_FILE
from mlgit.gitlink.settings import setting, setting_bool
from mlgit.sync.remote import RemoteSpec, resolve_remote

__all__ = ["chunk_fetcher", "complete", "fetch_pinned", "fetch_snapshots", "lazy_remote",
           "remote_for", "resolve_fetching", "snapshot_fetcher", "tree_complete"]


def lazy_remote(core: Core) -> str | None:
    """The remote to fetch missing data from, or None when lazy fetching is off.

    ``ml.lazyFetch`` and ``ml.remote`` are settings (git config, else the
    committed ``.mlgitconfig``: :mod:`mlgit.gitlink.settings`).
    """
    if setting_bool(core.git, "ml.lazyFetch") is False:
        return None
    named = setting(core.git, "ml.remote")
    if named:
        return named
    try:
        return resolve_remote(core.git, None).name
    except UsageError:
        return None  # no remote to fetch from


def resolve_fetching(core: Core, rev: str, whole: bool = True) -> ObjectID:
    """Resolve ``rev`` locally, else fetch it from the lazy-fetch remote (when allowed).

    With ``whole`` the snapshot's data comes too; otherwise only its snapshot
    and trees (the caller fetches the chunks it needs). A fetch that fails says
    why (the host key ssh does not know, a refused connection, a bucket that
    does not exist...) in an error of the cause's own class, naming ``rev`` and
    the remote; a remote that lacks ``rev`` is a RevisionError.
    """
    try:
        oid = core.resolve(rev)
    except RevisionError as missing:
        remote = lazy_remote(core)
        if remote is None:
            raise
        _fetch_for(core, rev, remote, [rev], whole, missing)
        oid = core.resolve(rev)
    if not core.store.objects.has_committed(hex_to_raw(oid)) or (
            whole and not complete(core, oid)):
        where = remote_for(core, oid)  # imported data: from its source
        if where is not None:
            _fetch_for(core, rev, where, [oid], whole, None)
    return oid


def remote_for(core: Core, oid: ObjectID) -> str | RemoteSpec | None:
    """Where snapshot ``oid``'s missing data comes from: its import's source, else lazily.

    The source of the work tree's imported pointer of ``oid``
    (:func:`mlgit.api.imports.source_spec`), else the lazy-fetch remote (or None).
    """
    source = imports.source_spec(core, oid)
    return source if source is not None else lazy_remote(core)


def _with_message(e: MlgitError, message: str) -> MlgitError:
    """An error of ``e``'s class (so its exit code) with ``message``."""
    try:
        return type(e)(message)
    except TypeError:  # a class whose constructor takes other arguments
        out = MlgitError(message)
        out.exit_code = e.exit_code
        return out


def _fetch_for(core: Core, rev: str, remote: str | RemoteSpec, revs: list[str], whole: bool,
               missing: RevisionError | None) -> None:
    """Lazily fetch ``revs`` for ``rev``; a failure names both and keeps its cause."""
    shown = remote if isinstance(remote, str) else remote.name
    try:
        sync.fetch(core, remote, revs, history=False, notes=False, chunks_too=whole)
    except RevisionError as e:
        raise type(e)(f"unknown revision {rev!r}: not in the local store, and {e}"
                      ) from None
    except MlgitError as e:
        where = ("is not in the local store" if missing is not None
                 else "is not complete in the local store")
        raise _with_message(e, f"{rev!r} {where}, and fetching it from {shown!r} "
                               f"failed: {e}") from None


def complete(core: Core, oid: ObjectID) -> bool:
    """True if the snapshot and everything below it is in the local store.

    Each distinct tree is read once, however often the snapshot's trees share it.
    """
    if not core.store.objects.has_committed(hex_to_raw(oid)):
        return False
    return tree_complete(core, hex_to_raw(core.snapshot(oid).tree))


def tree_complete(core: Core, tree: RawObjectID) -> bool:
    """True if tree ``tree`` and everything below it is in the local store."""
    objects = core.store.objects
    stack = [tree]
    seen = set(stack)
    while stack:
        t = stack.pop()
        if not objects.has_committed(t):
            return False
        for e in objects.get_tree(t):
            if e.type == TYPE_DIR:
                if e.subtree not in seen:
                    seen.add(e.subtree)
                    stack.append(e.subtree)
            elif e.type == TYPE_FILE and not all(objects.has_committed(c) for c, _ in e.chunks):
                return False
    return True


def fetch_snapshots(core: Core, oids: list[ObjectID], chunks_too: bool = False
                    ) -> dict[ObjectID, str]:
    """Fetch these snapshots (and their trees; chunks too if asked) from the lazy remote.

    Returns, for each one still not in the local store, why (one clause for a
    message); an empty dict when all came.
    """
    remote = lazy_remote(core)
    if remote is None:
        return dict.fromkeys(oids, "and there is no remote to fetch it from (add one, or "
                             "turn ml.lazyFetch on)")
    collect = Events()
    reason = f"and the remote {remote!r} could not supply it"
    try:
        sync.fetch(core, remote, [str(o) for o in oids], history=False, notes=False,
                   chunks_too=chunks_too, events=collect)
    except MlgitError as e:
        reason = f"and fetching it from the remote {remote!r} failed: {e}"
    found = getattr(collect, "problems", [])
    if found:
        reason = f"and the remote {remote!r} could not supply it: {found[0]}"
    return {o: reason for o in oids
            if not core.store.objects.has_committed(hex_to_raw(o))}


def snapshot_fetcher(core: Core, where: str) -> Callable[[list[ObjectID]], None]:
    """A function fetching snapshots (and trees) lazily that raises if one cannot be had.

    The CorruptObjectError it raises names ``where`` (the pointer file the
    snapshots are for) and says why the snapshot could not be fetched.
    """
    def fetch(oids: list[ObjectID]) -> None:
        why = fetch_snapshots(core, oids)
        if why:
            oid = min(why)
            raise CorruptObjectError(f"{where}: snapshot {oid} is not in the local "
                                     f"store, {why[oid]}")

    return fetch


def fetch_pinned(core: Core, ev: Events) -> None:
    """Fetch (lazily, when allowed) the snapshots the work tree's pointers pin but we lack.

    When it contacts the remote it also brings the remote's notes and every
    remote ref's snapshot and trees (so every name resolves), as pull does.
    """
    missing = sorted({p.id for _, p in core.tracked()  # checkout reports bad ones
                      if p.source is None  # imports: from their sources, by the checkout
                      and not core.store.objects.has_committed(hex_to_raw(p.id))})
    remote = lazy_remote(core) if missing else None
    if missing and remote is not None:
        sync.fetch(core, remote, [str(m) for m in missing], history=False, all_refs=True,
                   events=ev)


def chunk_fetcher(core: Core) -> Callable[[list[tuple[RawObjectID, int]]], None] | None:
    """What brings missing chunks for a checkout: the lazy remote's, or None."""
    remote = lazy_remote(core)
    if remote is None:
        return None

    def fetch(chunks: list[tuple[RawObjectID, int]]) -> None:
        sync.fetch_chunks(core, remote, chunks)

    return fetch
