"""Revisions: the ways a user names a snapshot.

Accepted forms (docs/revisions.md):

- a full id (32 hex) or a unique prefix of 4+ hex characters of a snapshot id;
- ``name``: the newest snapshot of a dataset or checkpoint run: the local ref, else
  the version data imported under that name is pinned at (when the caller says,
  ``pinned``), else the remote-tracking ref of the one remote that has it (as git
  resolves a branch name to ``origin/NAME``);
- ``remote/name``: what ``git ml fetch REMOTE`` last saw of ``name`` there;
- ``name@<prefix>``: a snapshot of that name by id prefix;
- ``model@<stage>`` (and ``remote/model@<stage>``): the checkpoint that holds a
  model's stage, from the stage's ref (its newest promotion record). A stage name is
  never 4 to 32 hex digits (:func:`~mlgit.format.names.is_stage_name`), so the part
  after ``@`` alone says which of the two it is;
- any of these followed by ``~N``: N first-parents back (for a stage: the checkpoint's
  parents, not the stage's earlier records).

A name wins over an id prefix that happens to look the same, as in git.

The grammar is resolved once, by :func:`resolve_in`, over a
:class:`RevisionSource`: what a store (:func:`resolve_revision`) or a remote read
without a clone (:class:`mlgit.sync.remoteread.RemoteReader`) knows of names,
stages, snapshot ids and snapshots.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Protocol

from mlgit.errors import AmbiguousRevisionError, FormatError, RevisionError
from mlgit.format.ids import ObjectID, is_hex_prefix, raw_to_hex
from mlgit.format.names import is_ref_name, is_stage_name, split_stage_ref_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.format.promotion import Promotion
from mlgit.format.snapshot import Snapshot
from mlgit.store.refs import SNAPSHOT_KINDS, STAGES, RefStore, is_ref_name_of
from mlgit.store.store import Store

__all__ = ["Pinned", "RemoteName", "RevisionSource", "StoreRevisions", "read_stage_record",
           "remote_names", "resolve_in", "resolve_name", "resolve_revision", "resolve_stage",
           "snapshot_ids_with_prefix", "stage_checkpoint", "tracking_refs"]

_TILDE_RE = re.compile(r"^(.*?)((?:~\d*)*)\Z")


def snapshot_ids_with_prefix(store: Store, prefix: str) -> list[ObjectID]:
    """Every snapshot id starting with ``prefix`` (lowercase hex)."""
    raw_ids = store.objects.iter_ids(OBJ_SNAPSHOT)
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


def resolve_name(store: Store, name: str, kinds: tuple[str, ...] = SNAPSHOT_KINDS,
                 pinned: Pinned | None = None) -> ObjectID | None:
    """The id a name stands for among refs of ``kinds``; None if no ref has it.

    ``NAME``: the local ref; else ``pinned(NAME)`` (an import's version) when
    given; else the remote-tracking ref of the one remote that has ``NAME``
    (several remotes that agree on its id count as one; several that disagree
    are ambiguous). ``REMOTE/NAME``: that remote's tracking ref.
    AmbiguousRevisionError when a name is a dataset and a run at different ids.
    Only the kinds whose ref names ``NAME`` can be are looked at (a stage ref's name
    is ``MODEL@STAGE``, a dataset's or run's never has an ``@``).
    """
    remote, slash, rest = name.partition("/")
    if slash:
        kinds = tuple(k for k in kinds if is_ref_name_of(k, rest))
        if not (is_ref_name(remote) and kinds):
            return None
        return _tracked(store, remote, rest, kinds)
    kinds = tuple(k for k in kinds if is_ref_name_of(k, name))
    if not kinds:
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


def resolve_stage(store: Store, model: str, stage: str) -> ObjectID | None:
    """The id of the newest record (promotion) of ``model``'s ``stage``; None if none.

    ``model`` may be ``REMOTE/MODEL`` (that remote's tracking ref). Found as a name is
    (:func:`resolve_name`): the local ref ``stages/MODEL@STAGE``, else the
    remote-tracking ref of the one remote that has it.
    """
    if not is_stage_name(stage):
        return None
    return resolve_name(store, f"{model}@{stage}", (STAGES,))


def read_stage_record(store: Store, oid: ObjectID, model: str, stage: str) -> Promotion:
    """The promotion ``oid`` a ref of ``model``'s ``stage`` names, checked to be that stage's.

    A FormatError when it is of another model or stage (a ref of one stage that names
    another's record is damage, or a hostile remote's), or does not decode.
    """
    p = store.objects.get_promotion(oid)
    plain = model.rpartition("/")[2]
    if (p.model, p.stage) != (plain, stage):
        raise FormatError(f"ref stages/{plain}@{stage} names promotion {oid}, a record of "
                          f"{p.model}@{p.stage}")
    return p


def _stages_of(store: Store, model: str) -> list[str]:
    """The stages ``model`` has a local or remote-tracking ref for, sorted."""
    plain = model.rpartition("/")[2]
    found: set[str] = set()
    sources = [store.refs, *(tracking_refs(store, r) for r in remote_names(store))]
    for refs in sources:
        for name in refs.list(STAGES, lambda _ref, _err: None):
            split = split_stage_ref_name(name)
            if split is not None and split[0] == plain:
                found.add(split[1])
    return sorted(found)


class RevisionSource(Protocol):
    """What resolving a revision needs to know: names, stages, snapshot ids, snapshots."""

    def named(self, name: str) -> ObjectID | None:
        """The snapshot id ``name`` stands for (``NAME`` or ``REMOTE/NAME``), or None.

        AmbiguousRevisionError when it stands for several (see :func:`resolve_name`).
        """

    def stage_record(self, model: str, stage: str) -> Promotion | None:
        """The newest record of ``model``'s ``stage`` (checked to be that stage's), or None.

        ``model`` may be ``REMOTE/MODEL`` where the source has remote-tracking refs.
        """

    def stages_of(self, model: str) -> list[str]:
        """The stages ``model`` has a ref for, sorted (for an error message)."""

    def snapshot_ids_with_prefix(self, prefix: str) -> list[ObjectID]:
        """Every snapshot id that starts with ``prefix`` (lowercase hex)."""

    def get_snapshot(self, oid: ObjectID) -> Snapshot:
        """The snapshot ``oid``, verified; CorruptObjectError if it cannot be read."""


class StoreRevisions:
    """A store as a :class:`RevisionSource`: its refs, remote-tracking refs and snapshots.

    ``pinned``: what a name stands for beside refs (the versions imports pin).
    """

    def __init__(self, store: Store, pinned: Pinned | None = None) -> None:
        self.store = store
        self.pinned = pinned

    def named(self, name: str) -> ObjectID | None:
        """See :meth:`RevisionSource.named` (:func:`resolve_name`, with ``pinned``)."""
        return resolve_name(self.store, name, pinned=self.pinned)

    def stage_record(self, model: str, stage: str) -> Promotion | None:
        """See :meth:`RevisionSource.stage_record` (:func:`resolve_stage`)."""
        oid = resolve_stage(self.store, model, stage)
        return None if oid is None else read_stage_record(self.store, oid, model, stage)

    def stages_of(self, model: str) -> list[str]:
        """See :meth:`RevisionSource.stages_of`: local and remote-tracking stage refs."""
        return _stages_of(self.store, model)

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


def stage_checkpoint(source: RevisionSource, model: str, stage: str, rev: str) -> ObjectID:
    """The checkpoint ``model@stage`` holds; RevisionError if none (unknown or emptied)."""
    p = source.stage_record(model, stage)
    if p is None:
        known = source.stages_of(model)
        which = (f"its stages: {', '.join(known)}" if known else
                 f"no stage of {model!r} is recorded here; `git ml fetch` brings a remote's")
        raise RevisionError(f"unknown revision {rev!r}: {model!r} has no stage {stage!r} "
                            f"({which})")
    if p.checkpoint is None:
        day = time.strftime("%Y-%m-%d", time.gmtime(p.time))
        raise RevisionError(f"{rev!r}: stage {stage} of {p.model} is empty ({p.author} "
                            f"removed it on {day})")
    return p.checkpoint


def _name_at_prefix(source: RevisionSource, name: str, prefix: str, rev: str) -> ObjectID:
    """The one snapshot recorded as ``name`` whose id starts with ``prefix``."""
    if not is_ref_name(name):
        raise RevisionError(f"bad revision {rev!r}: expected NAME@ID-PREFIX")
    cands = [c for c in source.snapshot_ids_with_prefix(prefix.lower())
             if source.get_snapshot(c).name == name]
    if not cands:
        raise RevisionError(f"no snapshot of {name!r} has an id starting {prefix!r}")
    if len(cands) > 1:
        raise AmbiguousRevisionError(
            f"revision {rev!r} is ambiguous: {', '.join(c[:12] for c in cands[:10])}"
        )
    return cands[0]


def resolve_revision(store: Store, rev: str, pinned: Pinned | None = None) -> ObjectID:
    """Resolve a revision string to a snapshot id; RevisionError if it names none.

    ``pinned`` is consulted for a name after the local refs (see :func:`resolve_name`).
    """
    return resolve_in(StoreRevisions(store, pinned), rev)


def resolve_in(source: RevisionSource, rev: str) -> ObjectID:
    """Resolve a revision string among what ``source`` knows; RevisionError if it names none."""
    m = _TILDE_RE.match(rev.strip())
    assert m is not None
    base, tildes = m.group(1), m.group(2)
    if not base:
        raise RevisionError(f"empty revision {rev!r}")
    oid: ObjectID | None
    if "@" in base:
        name, _, right = base.partition("@")
        if is_hex_prefix(right.lower()):
            oid = _name_at_prefix(source, name, right, rev)
        elif is_stage_name(right) and all(is_ref_name(n) for n in name.split("/", 1)):
            oid = stage_checkpoint(source, name, right, rev)  # MODEL or REMOTE/MODEL
        else:
            raise RevisionError(f"bad revision {rev!r}: expected NAME@ID-PREFIX or "
                                "MODEL@STAGE")
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
