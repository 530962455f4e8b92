"""The model registry: ``git ml promote``, ``demote`` and ``stages``.

A *stage* (``production``, ``staging``, any name a team uses) of a *model* is held by
one checkpoint at a time. Each change is a promotion record (docs/format.md,
"Promotion"): an immutable object naming the model, the stage, the checkpoint (none
for a demotion), the stage's previous record, the author, the time and why. The
stage's ref ``refs/stages/<model>@<stage>`` names its newest record, so the chain of
parents is the stage's audit trail: who moved it, when, from which version, why.

Records are written locally and travel with ``git ml push``/``fetch``/``pull`` like a
run's checkpoints (compare-and-swap, fast-forward only). Which record a new one
follows: the newest the clone knows of the stage, its local ref or a remote's
tracking ref, whichever has the other in its history. After a push was refused
because someone else moved the stage (and a fetch), that is the remote's record:
promoting again records the new decision after theirs, and the local record that lost
is left behind (a warning says so) rather than pushed over theirs.

Contracts: bad input (an invalid stage or model name, a revision that is not a
checkpoint, an unknown stage, a message that cannot be stored) raises before anything
is written; the record is durable before the ref names it; a ref that moved while
the command ran is a ConflictError and nothing is lost (the record stays, unnamed,
until gc).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.errors import ConflictError, FormatError, RevisionError, UsageError
from mlgit.format.ids import ObjectID, hex_to_raw
from mlgit.format.limits import MAX_TIME
from mlgit.format.names import (
    check_ref_name,
    check_stage_name,
    is_ref_name,
    is_stage_name,
    split_stage_ref_name,
    stage_ref_name,
)
from mlgit.format.promotion import Promotion, encode_promotion
from mlgit.format.snapshot import KIND_CHECKPOINT
from mlgit.store.gc import parse_prune
from mlgit.store.refs import STAGES, RefStore
from mlgit.store.revision import read_stage_record, remote_names, resolve_stage, tracking_refs

if TYPE_CHECKING:
    from mlgit.api.core import Core
    from mlgit.store.store import Store

__all__ = ["PromoteResult", "StageRecord", "demote", "parse_when", "promote", "stage_history",
           "stages"]


@dataclass
class StageRecord:
    """One record of a model's stage, with what the checkpoint it names says of itself.

    ``id`` is the record's id; ``checkpoint`` the checkpoint that holds the stage from
    ``time`` on (None: the record empties the stage); ``parent`` the stage's previous
    record and ``previous`` the checkpoint that held the stage before (None for the
    first record, or when the previous record is not in this store). ``run``, ``step``
    and ``metrics`` come from the checkpoint's metadata (None and ``{}`` when its
    snapshot is not in this store). ``remote`` is None for a local ref, else the remote
    whose tracking ref this is.
    """

    model: str
    stage: str
    id: ObjectID
    checkpoint: ObjectID | None
    parent: ObjectID | None
    time: int
    tz: int
    author: str
    message: str
    run: str | None = None
    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    previous: ObjectID | None = None
    remote: str | None = None

    @property
    def removed(self) -> bool:
        """True when this record empties the stage (``git ml demote``)."""
        return self.checkpoint is None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml stages --json`` prints each record (docs/cli.md)."""
        return {"model": self.model, "stage": self.stage, "remote": self.remote,
                "id": self.id, "checkpoint": self.checkpoint, "removed": self.removed,
                "run": self.run, "step": self.step, "metrics": self.metrics,
                "previous": self.previous, "parent": self.parent, "time": self.time,
                "tz": self.tz, "author": self.author, "message": self.message}


@dataclass
class PromoteResult:
    """What ``promote`` or ``demote`` did: the stage's record now, and whether it is new.

    ``created`` False: the stage already held that checkpoint (or was already empty),
    so nothing was written. ``replaced`` is the local record that was left behind
    because it diverged from a remote's (see the module docstring), else None.
    """

    record: StageRecord
    created: bool
    replaced: ObjectID | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml promote --json`` prints it: the record and two fields."""
        return {**self.record.to_json(), "created": self.created, "replaced": self.replaced}


# -- reading records -------------------------------------------------------------------
def _describe(repo: Core, records: list[tuple[ObjectID, Promotion]], remote: str | None,
              ev: Events) -> list[StageRecord]:
    """Records with their checkpoint's run, step and metrics (when that snapshot is here).

    Each checkpoint's snapshot is read once however many records name it, and a record's
    ``previous`` comes from its parent among ``records`` when it is there (a trail).
    """
    store = repo.store
    holds = {oid: p.checkpoint for oid, p in records}
    facts: dict[ObjectID, tuple[str, int | None, dict[str, float]] | None] = {}
    out = []
    for oid, p in records:
        rec = StageRecord(p.model, p.stage, oid, p.checkpoint, p.parent, p.time, p.tz,
                          p.author, p.message, remote=remote)
        if p.checkpoint is not None:
            if p.checkpoint not in facts:
                facts[p.checkpoint] = _facts(repo, p, ev)
            known = facts[p.checkpoint]
            if known is not None:
                rec.run, rec.step, rec.metrics = known[0], known[1], dict(known[2])
        if p.parent in holds:
            rec.previous = holds[p.parent]
        elif p.parent is not None and store.objects.has_committed(hex_to_raw(p.parent)):
            # A bad parent is reported where the trail is walked (``stage_history``, fsck).
            with contextlib.suppress(FormatError):
                rec.previous = store.objects.get_promotion(p.parent).checkpoint
        out.append(rec)
    return out


def _facts(repo: Core, p: Promotion, ev: Events) -> tuple[str, int | None,
                                                           dict[str, float]] | None:
    """(run, step, metrics) of the checkpoint ``p`` names; None when it is not here."""
    assert p.checkpoint is not None
    if not repo.store.objects.has_committed(hex_to_raw(p.checkpoint)):
        return None
    try:
        snap = repo.snapshot(p.checkpoint)
    except FormatError as e:
        ev.problem(type(e)(f"{p.model}@{p.stage}: checkpoint {p.checkpoint}: {e}"))
        return None
    meta = snap.checkpoint
    return snap.name, meta.step if meta else None, dict(meta.metrics) if meta else {}


def _ref_sources(store: Store) -> list[tuple[str | None, RefStore]]:
    """The local refs (None), then each remote's tracking refs, in ``git ml ls`` order."""
    return [(None, store.refs), *((r, tracking_refs(store, r)) for r in remote_names(store))]


def _trail(store: Store, oid: ObjectID, model: str, stage: str, ev: Events
           ) -> Iterator[tuple[ObjectID, Promotion]]:
    """The records from ``oid`` back, newest first, as far as they are here (read lazily).

    Iterative; a record of another stage, one that does not decode and a cycle end the
    walk with a problem (the first record's own error is raised); a record not in this
    store (not fetched) ends it quietly.
    """
    seen: set[str] = set()
    cur: ObjectID | None = oid
    while cur is not None:
        if cur in seen:
            ev.problem(FormatError(f"{model}@{stage}: record {cur} is its own ancestor"))
            return
        seen.add(cur)
        first = cur == oid
        if not first and not store.objects.has_committed(hex_to_raw(cur)):
            return  # not fetched: the trail goes on on a remote
        try:
            p = read_stage_record(store, cur, model, stage)
        except FormatError as e:
            if first:
                raise
            ev.problem(type(e)(f"{model}@{stage}: the trail stops at record {cur}: {e}"))
            return
        yield cur, p
        cur = p.parent


def _in_force(trail: Iterable[tuple[ObjectID, Promotion]], start: int, end: int
              ) -> list[tuple[ObjectID, Promotion]]:
    """The records of a trail (newest first) that held the stage at some time in [start, end].

    A record holds the stage from its time until the next record's; records are taken
    in the trail's order, whatever their clocks said.
    """
    out = []
    newer_time: int | None = None
    for oid, p in trail:
        if p.time <= end and (newer_time is None or newer_time > start):
            out.append((oid, p))
        if p.time <= start:
            break
        newer_time = p.time
    return out


def stages(repo: Core, model: str | None = None, *, at: str | None = None,
           events: Events | None = None) -> list[StageRecord]:
    """Every stage (of ``model``, or of every model) with the record that holds it now.

    Local stage refs first, then each remote's tracking refs, each sorted by model and
    stage. ``at`` (see :func:`parse_when`): instead, the records that held each stage
    then (a day: every record that held it at some time that day); a stage that held
    nothing then is left out. A ref or record that cannot be read is a problem
    (reported to ``events``, else raised at the end) and left out.
    """
    ev = events or Events()
    if model is not None and not is_ref_name(model):
        raise UsageError(f"invalid model name {model!r}")
    window = parse_when(at) if at is not None else None
    store = repo.store
    out: list[StageRecord] = []
    for remote, refs in _ref_sources(store):
        found = []
        for name, oid in refs.list(STAGES, lambda _ref, e: ev.problem(e)).items():
            split = split_stage_ref_name(name)
            if split is not None and (model is None or split[0] == model):
                found.append((split, oid))
        for (m, stage), oid in sorted(found):
            try:
                if window is None:
                    records = [(oid, read_stage_record(store, oid, m, stage))]
                else:
                    records = _in_force(_trail(store, oid, m, stage, ev), *window)
            except FormatError as e:
                where = f"{remote}/" if remote else ""
                ev.problem(type(e)(f"stage ref {where}{m}@{stage}: {e}"))
                continue
            out += _describe(repo, records, remote, ev)
    if events is None:
        ev.raise_problems()
    return out


def stage_history(repo: Core, model: str, stage: str, *, at: str | None = None,
                  limit: int | None = None, events: Events | None = None) -> list[StageRecord]:
    """The trail of ``model``'s ``stage``: its records, newest first (``stages --history``).

    ``model`` may be ``REMOTE/MODEL`` (that remote's tracking ref); else the local ref,
    else the tracking ref of the one remote that has it, as a revision is resolved.
    ``at``: only the records that held the stage then (see :func:`stages`). The trail
    ends at the first record not in this store (``git ml fetch`` brings the rest).
    RevisionError for a stage with no ref.
    """
    ev = events or Events()
    plain = _check_model_spec(model)
    _usage(check_stage_name)(stage)
    window = parse_when(at) if at is not None else None
    oid = resolve_stage(repo.store, model, stage)
    if oid is None:
        raise RevisionError(f"{plain!r} has no stage {stage!r} here (`git ml stages {plain}` "
                            "lists its stages; `git ml fetch` brings a remote's)")
    remote = model.partition("/")[0] if "/" in model else _tracked_by(repo.store, plain,
                                                                         stage, oid)
    walk = _trail(repo.store, oid, plain, stage, ev)
    trail = (_in_force(walk, *window) if window is not None else walk)
    out = _describe(repo, list(islice(trail, limit)), remote, ev)
    if events is None:
        ev.raise_problems()
    return out


def _tracked_by(store: Store, model: str, stage: str, oid: ObjectID) -> str | None:
    """None if the local ref names ``oid``, else the first remote whose tracking ref does."""
    name = stage_ref_name(model, stage)
    if store.refs.get(STAGES, name) == oid:
        return None
    return next((r for r in remote_names(store) if tracking_refs(store, r).get(STAGES, name)
                 == oid), None)


# -- writing records -------------------------------------------------------------------
def _usage(check: Callable[[str], str]) -> Callable[[str], str]:
    """``check`` with its FormatError turned into a UsageError (an argument, not stored bytes)."""
    def wrapped(value: str) -> str:
        try:
            return check(value)
        except FormatError as e:
            raise UsageError(str(e)) from None
    return wrapped


def _check_model_spec(model: str) -> str:
    """The model of ``MODEL`` or ``REMOTE/MODEL``; UsageError if it is neither."""
    remote, slash, plain = model.rpartition("/")
    if not is_ref_name(plain) or (slash and not is_ref_name(remote)):
        raise UsageError(f"invalid model name {model!r}: use letters, digits, '.', '_' and "
                         "'-', starting with a letter or digit (or REMOTE/MODEL)")
    return plain


_STAGE_REV = re.compile(r"^\s*(?:[^/@~]+/)?([^/@~]+)@([^@~]+)(?:~\d*)*\s*$")


def _model_of_rev(rev: str) -> str | None:
    """The model a ``MODEL@STAGE`` revision names, else None.

    So ``promote resnet@staging production`` moves resnet's version to production.
    """
    m = _STAGE_REV.match(rev)
    if m is None or not is_stage_name(m.group(2)) or not is_ref_name(m.group(1)):
        return None
    return m.group(1)


def _is_ancestor(store: Store, old: ObjectID, new: ObjectID) -> bool:
    """True if record ``old`` is ``new`` or one of its earlier records (as far as they are here)."""
    seen: set[str] = set()
    cur: ObjectID | None = new
    while cur is not None and cur not in seen:
        if cur == old:
            return True
        seen.add(cur)
        if not store.objects.has_committed(hex_to_raw(cur)):
            return False
        cur = store.objects.get_promotion(cur).parent
    return False


def _newest(store: Store, oids: list[ObjectID]) -> ObjectID | None:
    """The one of ``oids`` that has every other in its history, or None if there is none."""
    for cand in oids:
        if all(_is_ancestor(store, o, cand) for o in oids):
            return cand
    return None


def _base(repo: Core, model: str, stage: str) -> tuple[ObjectID | None, ObjectID | None,
                                                          ObjectID | None]:
    """(the local ref, the record a new one follows, the local record left behind or None).

    The newest record this clone knows of the stage (its local ref, or a remote's
    tracking ref that has the local one in its history). When the local ref diverged
    from the remotes' (a push refused, then a fetch), the remotes' newest, and the local
    record is left behind. ConflictError when the remotes disagree among themselves.
    """
    store = repo.store
    name = stage_ref_name(model, stage)
    local = store.refs.get(STAGES, name)
    remote_ids = list(dict.fromkeys(
        oid for r in remote_names(store)
        if (oid := tracking_refs(store, r).get(STAGES, name)) is not None))
    known = list(dict.fromkeys([*([local] if local else []), *remote_ids]))
    if not known:
        return local, None, None
    newest = _newest(store, known)
    if newest is not None:
        return local, newest, None
    theirs = _newest(store, remote_ids)
    if theirs is None:
        raise ConflictError(
            f"the remotes disagree about stage {stage} of {model} "
            f"({', '.join(r[:12] for r in remote_ids)}); `git ml fetch` each, then push to "
            "bring them into line before promoting")
    return local, theirs, local


def _write(repo: Core, model: str, stage: str, checkpoint: ObjectID | None, message: str,
           ev: Events) -> PromoteResult:
    """Record ``checkpoint`` (None: empty) as ``model``'s ``stage`` unless it holds it already."""
    store = repo.store
    author = repo.author()
    try:  # every check before anything is written (the longest record these fields make)
        zero = ObjectID("0" * 32)
        encode_promotion(Promotion(model, stage, zero, zero, MAX_TIME, -1440, author, message))
    except FormatError as e:
        raise UsageError(f"cannot record this promotion: {e}") from None
    local, parent, left = _base(repo, model, stage)
    if parent is not None:
        current = read_stage_record(store, parent, model, stage)
        if current.checkpoint == checkpoint:  # nothing to record
            if parent != local:  # the local ref catches up (a fast-forward, as pull's)
                _move(repo, model, stage, parent, local)
                _warn_left(ev, model, stage, left, parent)
            return PromoteResult(_describe(repo, [(parent, current)], None, ev)[0], False, left)
    elif checkpoint is None:
        raise RevisionError(f"{model!r} has no stage {stage!r} to remove (`git ml stages "
                            f"{model}` lists its stages)")
    now = int(time.time())
    record = Promotion(model, stage, checkpoint, parent, now,
                       time.localtime(now).tm_gmtoff // 60, author, message)
    with store.writing():  # gc waits until the ref names the record
        try:
            oid = store.objects.put_promotion(record)
            store.objects.flush()  # durable before the ref names it
        except BaseException:
            store.objects.abort()
            raise
        _move(repo, model, stage, oid, local)
    _warn_left(ev, model, stage, left, parent)
    return PromoteResult(_describe(repo, [(oid, record)], None, ev)[0], True, left)


def _move(repo: Core, model: str, stage: str, new: ObjectID, expect: ObjectID | None) -> None:
    """Compare-and-swap the stage's local ref from ``expect`` to ``new``."""
    try:
        repo.store.refs.update(STAGES, stage_ref_name(model, stage), new, expect)
    except ConflictError:
        raise ConflictError(
            f"stage {stage} of {model} moved while this command ran (someone promoted at the "
            f"same time); see `git ml stages {model} {stage} --history` and run the command "
            "again") from None


def _warn_left(ev: Events, model: str, stage: str, left: ObjectID | None,
               parent: ObjectID | None) -> None:
    """Say that the local record ``left`` is left behind for the remote's ``parent``."""
    if left is not None and parent is not None:
        ev.warn(f"your record {left[:12]} of {model}@{stage}, which the remote does not have, "
                f"is left behind: the stage follows the remote's {parent[:12]}")


def promote(repo: Core, rev: str, stage: str, *, model: str | None = None, message: str = "",
            events: Events | None = None) -> PromoteResult:
    """Record that checkpoint ``rev`` now holds ``stage`` for ``model``.

    ``model`` defaults to the model of a ``MODEL@STAGE`` revision, else the
    checkpoint's run. Promoting the checkpoint that holds the stage already writes
    nothing (``created`` False). UsageError for an invalid stage or model name, a
    revision that is not a checkpoint or a message that cannot be stored;
    RevisionError for one that names nothing; ConflictError when the stage moved
    while the command ran. Nothing is written before every check passed.
    """
    ev = events or Events()
    _usage(check_stage_name)(stage)
    if model is not None:
        _usage(check_ref_name)(model)
    oid = repo.resolve(rev)
    snap = repo.snapshot(oid)
    if snap.kind != KIND_CHECKPOINT:
        raise UsageError(f"{rev!r} is a {snap.kind}, not a checkpoint; only checkpoints "
                         "(`git ml commit-ckpt`) can hold a stage")
    return _write(repo, model or _model_of_rev(rev) or snap.name, stage, oid, message, ev)


def demote(repo: Core, model: str, stage: str, *, message: str = "",
           events: Events | None = None) -> PromoteResult:
    """Record that ``model``'s ``stage`` holds nothing from now on (its trail stays).

    RevisionError when the model has no such stage; an emptied stage stays empty
    (``created`` False). Checks and errors as :func:`promote`.
    """
    ev = events or Events()
    _usage(check_ref_name)(model)
    _usage(check_stage_name)(stage)
    return _write(repo, model, stage, None, message, ev)


# -- times ------------------------------------------------------------------------------
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def parse_when(text: str, now: float | None = None) -> tuple[int, int]:
    """A time a user gives, as the Unix seconds [start, end] it stands for.

    A day (``2025-03-01``, ``today``, ``yesterday``: local time) is the whole day,
    from 00:00:00 to 23:59:59. A moment: an ISO 8601 date and time
    (``2025-03-01T14:30``, ``2025-03-01 14:30:00``, with ``Z`` or ``+01:00``, else
    local time), ``@`` and Unix seconds (``@1740787200``), ``now``, or an age as ``git ml
    gc --prune`` takes one (``3.days.ago``, ``2.weeks.ago``, ``12h``). UsageError for
    anything else.
    """
    now = time.time() if now is None else now
    v = text.strip()
    low = v.lower()
    today = dt.datetime.fromtimestamp(now).date()
    if low in ("today", "yesterday") or _DAY.match(v):
        try:
            day = (today if low == "today" else today - dt.timedelta(days=1)
                   if low == "yesterday" else dt.date.fromisoformat(v))
        except ValueError:
            raise UsageError(f"{text!r} is not a date") from None
        start = int(dt.datetime.combine(day, dt.time()).timestamp())
        nxt = int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp())
        return start, nxt - 1
    if low == "now":
        return int(now), int(now)
    if v.startswith("@") and v[1:].isdigit() and len(v) < 16:
        return int(v[1:]), int(v[1:])
    try:
        t = int(dt.datetime.fromisoformat(v).timestamp())
    except (ValueError, OverflowError, OSError):
        pass
    else:
        return t, t
    if low != "never":
        try:
            t = int(parse_prune(v, now))
            return t, t
        except ValueError:
            pass
    raise UsageError(f"cannot read {text!r} as a time: use a day (2025-03-01, yesterday), a "
                     "moment (2025-03-01T14:30, @1740787200, now) or an age (3.days.ago)")
