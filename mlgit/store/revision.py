"""Revisions: the ways a user names a snapshot.

Accepted forms (docs/revisions.md):

- a full id (32 hex) or a unique prefix of 4+ hex characters of a snapshot id;
- ``name``: the newest snapshot of a dataset or checkpoint run;
- ``name@<prefix>``: a snapshot of that name by id prefix;
- any of these followed by ``~N``: N first-parents back.

A name wins over an id prefix that happens to look the same, as in git.
"""

from __future__ import annotations

import re

from mlgit.errors import AmbiguousRevisionError, RevisionError
from mlgit.format.ids import ObjectID, is_hex_prefix, raw_to_hex
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.store.refs import REF_KINDS
from mlgit.store.store import Store

__all__ = ["resolve_revision", "snapshot_ids_with_prefix"]

_TILDE_RE = re.compile(r"^(.*?)((?:~\d*)*)\Z")


def snapshot_ids_with_prefix(store: Store, prefix: str) -> list[ObjectID]:
    """Every snapshot id starting with ``prefix`` (lowercase hex)."""
    raw_ids = store.objects.ids(OBJ_SNAPSHOT)
    return [h for h in (raw_to_hex(r) for r in raw_ids) if h.startswith(prefix)]


def _by_name(store: Store, name: str) -> ObjectID | None:
    found = [store.refs.get(kind, name) for kind in REF_KINDS]
    hits = [f for f in found if f is not None]
    if len(hits) > 1 and hits[0] != hits[1]:
        raise AmbiguousRevisionError(
            f"{name!r} is both a dataset and a checkpoint run; use its id"
        )
    return hits[0] if hits else None


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


def resolve_revision(store: Store, rev: str) -> ObjectID:
    """Resolve a revision string to a snapshot id; RevisionError if it names none."""
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
        oid = _by_name(store, base) if is_ref_name(base) else None
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
