"""Revisions: the ways a user names a snapshot.

Accepted forms (docs/revisions.md):

- a full id (32 hex) or a unique prefix of 4+ hex characters of a snapshot id;
- ``name``: the newest snapshot of a dataset or checkpoint run: the local ref, else
  the version data imported under that name is pinned at (when the caller says,
  ``pinned``), else the remote-tracking ref of the one remote that has it (as git
  resolves a branch name to ``origin/NAME``);
- ``remote/name``: what ``git ml fetch REMOTE`` last saw of ``name`` there;
- ``name@<prefix>``: a snapshot of that name by id prefix;
- any of these followed by ``~N``: N first-parents back.

A name wins over an id prefix that happens to look the same, as in git.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from mlgit.errors import AmbiguousRevisionError, RevisionError
from mlgit.format.ids import ObjectID, is_hex_prefix, raw_to_hex
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.store.refs import REF_KINDS, RefStore
from mlgit.store.store import Store

__all__ = ["Pinned", "RemoteName", "remote_names", "resolve_name", "resolve_revision",
           "snapshot_ids_with_prefix", "tracking_refs"]

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


Pinned = Callable[[str], "ObjectID | None"]
"""What a name stands for beside refs: the version imported data of that name is
pinned at in the work tree (None: no import of that name)."""


def resolve_name(store: Store, name: str, kinds: tuple[str, ...] = REF_KINDS,
                 pinned: Pinned | None = None) -> ObjectID | None:
    """The id a name stands for among refs of ``kinds``; None if no ref has it.

    ``NAME``: the local ref; else ``pinned(NAME)`` (an import's version) when
    given; else the remote-tracking ref of the one remote that has ``NAME``
    (several remotes that agree on its id count as one; several that disagree
    are ambiguous). ``REMOTE/NAME``: that remote's tracking ref.
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
    if pinned is not None:
        imported = pinned(name)
        if imported is not None:
            return imported
    found = {r: oid for r in remote_names(store)
             if (oid := _tracked(store, r, name, kinds)) is not None}
    if len(set(found.values())) > 1:
        raise AmbiguousRevisionError(
            f"{name!r} is on several remotes at different versions: "
            f"{', '.join(f'{r}/{name}' for r in sorted(found))}; name one of them")
    return next(iter(found.values()), None)


def _by_prefix(store: Store, prefix: str, rev: str) -> ObjectID:
    cands = snapshot_ids_with_prefix(store, prefix)
    if not cands:
        raise RevisionError(f"unknown revision {rev!r}")
    if len(cands) > 1:
        listed = ", ".join(
            f"{c[:12]} ({store.objects.get_snapshot(c).name})" for c in cands[:10]
        )
        raise AmbiguousRevisionError(f"revision {rev!r} is ambiguous: {listed}")
    return cands[0]


def resolve_revision(store: Store, rev: str, pinned: Pinned | None = None) -> ObjectID:
    """Resolve a revision string to a snapshot id; RevisionError if it names none.

    ``pinned`` is consulted for a name after the local refs (see :func:`resolve_name`).
    """
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
        cands = [c for c in snapshot_ids_with_prefix(store, prefix.lower())
                 if store.objects.get_snapshot(c).name == name]
        if not cands:
            raise RevisionError(f"no snapshot of {name!r} has an id starting {prefix!r}")
        if len(cands) > 1:
            raise AmbiguousRevisionError(
                f"revision {rev!r} is ambiguous: {', '.join(c[:12] for c in cands[:10])}"
            )
        oid = cands[0]
    else:
        oid = resolve_name(store, base, pinned=pinned)
        if oid is None:
            if not is_hex_prefix(base.lower()):
                raise RevisionError(f"unknown revision {rev!r}")
            oid = _by_prefix(store, base.lower(), rev)
    steps = 0
    for part in tildes.split("~")[1:]:
        steps += int(part) if part else 1
    for i in range(steps):
        parents = store.objects.get_snapshot(oid).parents
        if not parents:
            raise RevisionError(f"{rev!r}: {base} has only {i} ancestors")
        oid = parents[0]
    return oid
