"""Revisions: the ways a user names a snapshot.

Accepted forms (docs/revisions.md):

- a full id (32 hex) or a unique prefix of 4+ hex characters of a snapshot id;
- ``name``: the newest snapshot of a dataset or checkpoint run: the local ref, else
  the remote-tracking ref of the one remote that has it (as git resolves a branch
  name to ``origin/NAME``);
- ``remote/name``: what ``git ml fetch REMOTE`` last saw of ``name`` there;
- ``name@<prefix>``: a snapshot of that name by id prefix;
- any of these followed by ``~N``: N first-parents back.

A name wins over an id prefix that happens to look the same, as in git.

The grammar is resolved once, by :func:`resolve_in`, over a
:class:`RevisionSource`: what a store (:func:`resolve_revision`) or a remote read
without a clone (:class:`mlgit.sync.remoteread.RemoteReader`) knows of names,
snapshot ids and snapshots.
"""

from __future__ import annotations

import os
import re
from typing import Protocol

from mlgit.errors import AmbiguousRevisionError, RevisionError
from mlgit.format.ids import ObjectID, is_hex_prefix, raw_to_hex
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.format.snapshot import Snapshot
from mlgit.store.refs import REF_KINDS, RefStore
from mlgit.store.store import Store

__all__ = ["RemoteName", "RevisionSource", "StoreRevisions", "remote_names", "resolve_in",
           "resolve_name", "resolve_revision", "snapshot_ids_with_prefix", "tracking_refs"]

_TILDE_RE = re.compile(r"^(.*?)((?:~\d*)*)\Z")


def snapshot_ids_with_prefix(store: Store, prefix: str) -> list[ObjectID]:
    """Every snapshot id starting with ``prefix`` (lowercase hex)."""
    raw_ids = store.objects.ids(OBJ_SNAPSHOT)
    return [h for h in (raw_to_hex(r) for r in raw_ids) if h.startswith(prefix)]


RemoteName = tuple[str, str, str, ObjectID]
"""A remote-tracking ref: (remote, kind, name, id)."""


def tracking_refs(store: Store, remote: str) -> RefStore:
    """The remote-tracking refs of ``remote``: ``refs/remotes/<remote>/<kind>/<name>``."""
    return RefStore(store.root / "refs" / "remotes" / remote)


def remote_names(store: Store) -> list[str]:
    """The remotes that have remote-tracking refs here, sorted."""
    try:
        found = os.listdir(store.root / "refs" / "remotes")
    except FileNotFoundError:
        return []
    return sorted(n for n in found if is_ref_name(n))


def _one(hits: list[ObjectID], name: str) -> ObjectID | None:
    if len(set(hits)) > 1:
        raise AmbiguousRevisionError(
            f"{name!r} is both a dataset and a checkpoint run; use its id"
        )
    return hits[0] if hits else None


def _local(store: Store, name: str, kinds: tuple[str, ...]) -> ObjectID | None:
    return _one([f for f in (store.refs.get(k, name) for k in kinds) if f is not None], name)


def _tracked(store: Store, remote: str, name: str, kinds: tuple[str, ...]) -> ObjectID | None:
    refs = tracking_refs(store, remote)
    return _one([f for f in (refs.get(k, name) for k in kinds) if f is not None],
                f"{remote}/{name}")


def resolve_name(store: Store, name: str, kinds: tuple[str, ...] = REF_KINDS
                 ) -> ObjectID | None:
    """The id a name stands for among refs of ``kinds``; None if no ref has it.

    ``NAME``: the local ref; else the remote-tracking ref of the one remote that
    has ``NAME`` (several remotes that agree on its id count as one; several that
    disagree are ambiguous). ``REMOTE/NAME``: that remote's tracking ref.
    AmbiguousRevisionError when a name is a dataset and a run at different ids.
    """
    remote, slash, rest = name.partition("/")
    if slash:
        if not (is_ref_name(remote) and is_ref_name(rest)):
            return None
        return _tracked(store, remote, rest, kinds)
    if not is_ref_name(name):
        return None
    local = _local(store, name, kinds)
    if local is not None:
        return local
    found = {r: oid for r in remote_names(store)
             if (oid := _tracked(store, r, name, kinds)) is not None}
    if len(set(found.values())) > 1:
        raise AmbiguousRevisionError(
            f"{name!r} is on several remotes at different versions: "
            f"{', '.join(f'{r}/{name}' for r in sorted(found))}; name one of them")
    return next(iter(found.values()), None)


class RevisionSource(Protocol):
    """What resolving a revision needs to know: names, snapshot ids, snapshots."""

    def named(self, name: str) -> ObjectID | None:
        """The id ``name`` stands for (``NAME`` or ``REMOTE/NAME``), or None.

        AmbiguousRevisionError when it stands for several (see :func:`resolve_name`).
        """

    def snapshot_ids_with_prefix(self, prefix: str) -> list[ObjectID]:
        """Every snapshot id that starts with ``prefix`` (lowercase hex)."""

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """The snapshot ``oid``, verified; CorruptObjectError if it cannot be read."""


class StoreRevisions:
    """A store as a :class:`RevisionSource`: its refs, remote-tracking refs and snapshots."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def named(self, name: str) -> ObjectID | None:
        """See :meth:`RevisionSource.named` (:func:`resolve_name` over every ref kind)."""
        return resolve_name(self.store, name)

    def snapshot_ids_with_prefix(self, prefix: str) -> list[ObjectID]:
        """See :meth:`RevisionSource.snapshot_ids_with_prefix`."""
        return snapshot_ids_with_prefix(self.store, prefix)

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """See :meth:`RevisionSource.get_snapshot`."""
        return self.store.objects.get_snapshot(oid)


def _by_prefix(source: RevisionSource, prefix: str, rev: str) -> ObjectID:
    cands = source.snapshot_ids_with_prefix(prefix)
    if not cands:
        raise RevisionError(f"unknown revision {rev!r}")
    if len(cands) > 1:
        listed = ", ".join(
            f"{c[:12]} ({source.get_snapshot(c).name})" for c in cands[:10]
        )
        raise AmbiguousRevisionError(f"revision {rev!r} is ambiguous: {listed}")
    return cands[0]


def resolve_revision(store: Store, rev: str) -> ObjectID:
    """Resolve a revision string to a snapshot id; RevisionError if it names none."""
    return resolve_in(StoreRevisions(store), rev)


def resolve_in(source: RevisionSource, rev: str) -> ObjectID:
    """Resolve a revision string among what ``source`` knows; RevisionError if it names none."""
    m = _TILDE_RE.match(rev.strip())
    assert m is not None
    base, tildes = m.group(1), m.group(2)
    if not base:
        raise RevisionError(f"empty revision {rev!r}")
    oid: ObjectID | None
    if "@" in base:
        name, _, prefix = base.partition("@")
        if not is_ref_name(name) or not is_hex_prefix(prefix.lower()):
            raise RevisionError(f"bad revision {rev!r}: expected NAME@ID-PREFIX")
        cands = [c for c in source.snapshot_ids_with_prefix(prefix.lower())
                 if source.get_snapshot(c).name == name]
        if not cands:
            raise RevisionError(f"no snapshot of {name!r} has an id starting {prefix!r}")
        if len(cands) > 1:
            raise AmbiguousRevisionError(
                f"revision {rev!r} is ambiguous: {', '.join(c[:12] for c in cands[:10])}"
            )
        oid = cands[0]
    else:
        oid = source.named(base)
        if oid is None:
            if not is_hex_prefix(base.lower()):
                raise RevisionError(f"unknown revision {rev!r}")
            oid = _by_prefix(source, base.lower(), rev)
    steps = 0
    for part in tildes.split("~")[1:]:
        steps += int(part) if part else 1
    for i in range(steps):
        parents = source.get_snapshot(oid).parents
        if not parents:
            raise RevisionError(f"{rev!r}: {base} has only {i} ancestors")
        oid = parents[0]
    return oid
