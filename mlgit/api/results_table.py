"""``git ml results``: every model version's results on every test set, from the notes, cached.

One row per (model version, test dataset version), over the history: the
commits reachable from HEAD, every local branch and every remote-tracking
branch (or from the revisions given, as ``git log REVS`` walks them), reading
the notes of ``refs/notes/ml`` and of every remote's notes as last fetched
(``refs/notes/remotes/<remote>/ml``), so results a teammate pushed appear once
they are fetched, merged or not.

**What a model version is.** A ``results`` record measures:

1. the checkpoint it names (its ``checkpoint`` field, which
   ``git ml note add --results FILE --checkpoint REV`` writes);
2. else, the checkpoint trained at the commit it is noted on: of the
   ``checkpoint`` records in that commit's note, those noted before the results
   (by time; within one second, by their order in the note; all of them if none
   was, or the results have no time); when
   these are of exactly one run, the newest of them (the one no other names as
   its parent, then the latest, the highest step, the smallest id). So results
   noted after training at a commit measure the checkpoint just trained, and
   stay with it when training goes on there;
3. else (no checkpoint record on the commit, or several runs', where picking
   one would be a guess) the commit itself: ``checkpoint``, ``run``, ``step`` and
   ``config`` are then None.

A checkpoint's run, step, commit and config digest come from its
``checkpoint`` record (in any note; one on a commit of the history read wins,
then the newest commit); where no note has one, or an older record has no
config digest, from its snapshot in the local store. Records of the same model
version and test dataset snapshot make one row (``ResultRow``): metrics
merged, the newest record winning a metric two records have.

**The cache** (``.git/ml/cache/results/``, derived data: deleting it costs one
rebuild). Reading and decoding every note is the slow part, so both its
products are kept, each written whole with fsutil's durable write:

- ``facts.json``: what each note blob tells the table (:class:`NoteFacts`), by
  ``<commit>:<blob id>``, and the checkpoint facts read from the store, by
  snapshot id. Content-addressed, so never stale: a rebuild after a new note
  decodes only the notes that changed.
- ``rows-<key>.json``: the finished table for one *key*, the digest of every
  input: the commits the walk starts from and stops at (so the commits
  walked), the notes refs and their commits, git's shallow file and this
  module's logic version; when a row needed a checkpoint that the local store
  did not have, also the list of the store's packs (a fetch may bring it). The
  newest :data:`KEEP_ROWS` keys are kept.

A cache file is read bounded (``MAX_RESULTS_CACHE_LEN``), checked against its
kind, key and checksum, and every field of its body is checked as a note's
would be; anything else is ignored and the table rebuilt from the notes. So a
stale, damaged or hostile file never yields rows the notes do not give.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.errors import FormatError, MlgitError, NotInitializedError, UsageError
from mlgit.format.cachefile import decode_cache, encode_cache
from mlgit.format.ids import ObjectID, hex_to_raw, is_hex_prefix, object_id
from mlgit.format.limits import MAX_RESULTS_CACHE_LEN, MAX_TIME
from mlgit.format.meta import DatasetRef, config_digest, list_at, obj_at
from mlgit.format.plainjson import check_shown
from mlgit.format.records import best_mode, decode_note
from mlgit.format.resultrows import (
    CheckpointFact,
    NoteFacts,
    ResultFact,
    ResultRow,
    ResultSource,
    check_commit_id,
    facts_from_json,
    is_commit_id,
    note_facts,
    rows_from_cache,
    rows_to_cache,
)
from mlgit.format.snapshot import KIND_CHECKPOINT
from mlgit.gitlink.commits import (
    branch_tips,
    commit_info,
    reachable_commits,
    resolve_range,
)
from mlgit.gitlink.notes import list_notes_at, notes_refs, read_note_blob
from mlgit.store.fsutil import atomic_write, read_bounded

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["KEEP_ROWS", "HistoryPoint", "ResultRow", "ResultSource", "history", "results",
           "table"]

KEEP_ROWS = 4
"""Finished tables kept in the cache (one per key: e.g. all branches, and ``main`` alone)."""
_LOGIC = 2  # bump when the join changes: every cached table is then rebuilt
_ROWS = "results-rows"
_FACTS = "results-facts"
_ANY_KEY = "content-addressed"


# -- the key -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """What the table is computed from, and its digest."""

    include: list[str]
    exclude: list[str]
    notes: list[tuple[str, str]]
    digest: str


def _key(repo: Core, revs: list[str]) -> _Key:
    if revs:
        include, exclude = resolve_range(repo.git, revs)
    else:
        include, exclude = branch_tips(repo.git), []
    notes = notes_refs(repo.git)
    try:
        st = os.stat(repo.git.git_dir / "shallow")
        shallow: list[int] | None = [st.st_size, st.st_mtime_ns, st.st_ino]
    except FileNotFoundError:
        shallow = None
    material = {"logic": _LOGIC, "include": include, "exclude": exclude,
                "notes": [list(n) for n in notes], "shallow": shallow}
    return _Key(include, exclude, notes,
                object_id(json.dumps(material, sort_keys=True).encode()))


# -- the cache files -------------------------------------------------------------------------


def _cache_dir(repo: Core) -> Path | None:
    """``.git/ml/cache/results``, or None without a store (no cache then)."""
    try:
        return repo.store.cache_dir / "results"
    except NotInitializedError:
        return None


def _packs_signature(repo: Core) -> str:
    """A digest of the names of the store's packs: it changes when objects arrive or go."""
    try:
        names = sorted(os.listdir(repo.store.objects.packs_dir))
    except (FileNotFoundError, NotInitializedError):
        names = []
    return object_id("\n".join(names).encode())


def _read(path: Path, kind: str, key: str | None, strict: bool = True) -> Any:
    """A cache file's body, or None when it is missing, too large, damaged or stale."""
    try:
        return decode_cache(read_bounded(path, MAX_RESULTS_CACHE_LEN, f"cache {path.name}"),
                            kind, key, strict=strict)
    except (OSError, FormatError):
        return None


def _write(path: Path, kind: str, key: str, body: Any, ev: Events) -> None:
    """Write a cache file durably; a failure is a warning (the table is right either way)."""
    data = encode_cache(kind, key, body)
    if len(data) > MAX_RESULTS_CACHE_LEN:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as e:
        ev.warn(f"results cache not written ({e.strerror or e}): {path}")


@dataclass
class _Facts:
    """The content-addressed cache: facts by ``commit:blob``, checkpoint snapshots by id."""

    notes: dict[str, NoteFacts] = dataclasses.field(default_factory=dict)
    snapshots: dict[str, tuple[CheckpointFact, str | None]] = dataclasses.field(
        default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"notes": {k: f.to_json() for k, f in self.notes.items()},
                "snapshots": {k: {"fact": f.to_json(), "commit": c}
                              for k, (f, c) in self.snapshots.items()}}


def _note_key_ok(k: str) -> bool:
    commit, sep, blob = k.partition(":")
    return bool(sep) and is_commit_id(commit) and is_commit_id(blob)


def _load_facts(path: Path) -> _Facts:
    body = _read(path, _FACTS, _ANY_KEY)
    if body is None:
        return _Facts()
    try:
        o = obj_at(body, "facts")
        notes = {}
        for k, v in obj_at(o.get("notes"), "facts.notes").items():
            if not _note_key_ok(k):
                raise FormatError(f"facts.notes: bad key {k[:90]!r}")
            notes[k] = facts_from_json(v, "facts.notes")
        snaps: dict[str, tuple[CheckpointFact, str | None]] = {}
        for k, v in obj_at(o.get("snapshots"), "facts.snapshots").items():
            s = obj_at(v, "facts.snapshots")
            fact = facts_from_json({"checkpoints": [s.get("fact")], "results": [],
                                    "problems": []}, "facts.snapshots").checkpoints[0]
            if fact.id != k:
                raise FormatError("facts.snapshots: an entry under another id")
            c = s.get("commit")
            snaps[k] = (fact, None if c is None else check_commit_id(c, "facts.snapshots"))
        return _Facts(notes, snaps)
    except FormatError:
        return _Facts()


def _load_rows(path: Path, key: str, repo: Core) -> tuple[list[ResultRow], list[str]] | None:
    body = _read(path, _ROWS, key, strict=False)  # every field is checked below
    if body is None:
        return None
    try:
        o = obj_at(body, "rows cache")
        store = o.get("store")
        if store is not None and store != _packs_signature(repo):
            return None  # a row wanted a checkpoint the store lacked: has it come since?
        rows = rows_from_cache(o.get("rows"))
        problems = list_at(o.get("problems"), "rows cache.problems")
        for p in problems:
            if not isinstance(p, str):
                raise FormatError("rows cache: a problem that is not a string")
            check_shown(p, "rows cache problem").encode()  # no lone surrogate either
        return rows, problems
    except (FormatError, UnicodeEncodeError):
        return None


def _store_rows(cdir: Path, key: str, rows: list[ResultRow], problems: list[str],
                store: str | None, ev: Events) -> None:
    path = cdir / f"rows-{key}.json"
    _write(path, _ROWS, key, {"rows": rows_to_cache(rows), "problems": problems,
                              "store": store}, ev)
    try:
        old = sorted((p for p in cdir.glob("rows-*.json") if p != path),
                     key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for p in old[KEEP_ROWS - 1:]:
            p.unlink(missing_ok=True)
    except OSError:
        pass  # a file another process removed, or an unreadable directory: keep going


# -- reading the notes -----------------------------------------------------------------------


def _read_facts(repo: Core, commit: str, blob: str) -> NoteFacts:
    where = f"note on {commit[:12]}"
    try:
        text = read_note_blob(repo.git, blob, commit)
    except FormatError as e:
        return NoteFacts(problems=(str(e),))
    records, problems = decode_note(text, where)
    return note_facts(records, problems)


def _gather(repo: Core, key: _Key, old: _Facts) -> tuple[dict[str, list[NoteFacts]], _Facts]:
    """Every note under every notes ref, as facts by commit (cached ones reused).

    The facts returned hold only these notes' (the cache keeps no note that is gone);
    their ``snapshots`` are filled by the join with the ones it uses.
    """
    by_commit: dict[str, list[NoteFacts]] = {}
    fresh = _Facts()
    for _, notes in key.notes:
        for commit, blob in list_notes_at(repo.git, notes):
            k = f"{commit}:{blob}"
            if k in fresh.notes or not _note_key_ok(k):
                continue
            facts = old.notes.get(k) or _read_facts(repo, commit, blob)
            fresh.notes[k] = facts
            by_commit.setdefault(commit, []).append(facts)
    return by_commit, fresh


# -- the join --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    checkpoint: ObjectID | None
    run: str | None
    step: int | None
    commit: str
    config: str | None

    @property
    def key(self) -> str:
        return f"c{self.checkpoint}" if self.checkpoint else f"g{self.commit}"


class _Join:
    """Rows from facts: model versions resolved, records grouped, merged and sorted."""

    def __init__(self, repo: Core, walked: set[str], by_commit: dict[str, list[NoteFacts]],
                 known: dict[str, tuple[CheckpointFact, str | None]]) -> None:
        self.repo = repo
        self.walked = walked
        self.by_commit = by_commit
        self.known = known  # checkpoint facts read from the store before (cached)
        self.used: dict[str, tuple[CheckpointFact, str | None]] = {}  # ... and this time
        self.problems: list[str] = []
        self.store_missed = False
        self._commits: dict[str, tuple[str, int | None] | None] = {}
        self._ckpts: dict[str, list[tuple[str, CheckpointFact]]] = {}
        for commit, notes in by_commit.items():
            for nf in notes:
                for c in nf.checkpoints:
                    self._ckpts.setdefault(c.id, []).append((commit, c))
        self._resolved: dict[str, tuple[CheckpointFact, str | None] | None] = {}

    # -- git and the store
    def commit(self, cid: str) -> tuple[str, int | None] | None:
        """(author, time) of a commit git has, else None."""
        if cid not in self._commits:
            try:
                info = commit_info(self.repo.git, cid)
                t = info.time if 0 <= info.time <= MAX_TIME else None
                self._commits[cid] = (info.author, t)
            except (KeyError, ValueError):
                self._commits[cid] = None
        return self._commits[cid]

    def _from_store(self, ckpt: ObjectID) -> tuple[CheckpointFact, str | None] | None:
        """A checkpoint's facts from its snapshot in the local store (cached), else None."""
        hit = self.known.get(ckpt)
        if hit is not None:
            self.used[ckpt] = hit
            return hit
        try:
            store = self.repo.store
            if not store.objects.has_committed(hex_to_raw(ckpt)):
                self.store_missed = True
                return None
            snap = self.repo.snapshot(ckpt)
            meta = snap.checkpoint
        except NotInitializedError:
            self.store_missed = True
            return None
        except MlgitError as e:
            self.problems.append(f"checkpoint {ckpt[:12]} named by results: {e}")
            return None
        if snap.kind != KIND_CHECKPOINT or meta is None:
            self.problems.append(f"results name {ckpt[:12]} as their checkpoint, but it is a "
                                 f"{snap.kind}")
            return None
        code = meta.code.commit if meta.code else None
        commit = code if is_commit_id(code) else None
        time = snap.time if 0 <= snap.time <= MAX_TIME else None
        out = (CheckpointFact(ckpt, snap.name, meta.step, snap.parents[0] if snap.parents
                              else None, config_digest(meta.config), time), commit)
        self.used[ckpt] = out
        return out

    def checkpoint(self, ckpt: ObjectID) -> tuple[CheckpointFact, str | None] | None:
        """A checkpoint's facts and the commit it was trained at, from the notes or the store."""
        if ckpt in self._resolved:
            return self._resolved[ckpt]
        found = self._ckpts.get(ckpt, [])
        out: tuple[CheckpointFact, str | None] | None = None
        if found:
            def rank(item: tuple[str, CheckpointFact]) -> tuple[bool, int, str]:
                info = self.commit(item[0])
                t = info[1] if info is not None and info[1] is not None else -1
                return (item[0] not in self.walked, -t, item[0])

            commit, fact = found[0] if len(found) == 1 else min(found, key=rank)
            if fact.config is None:
                snap = self._from_store(ckpt)
                if snap is not None and snap[0].config is not None:
                    fact = dataclasses.replace(fact, config=snap[0].config)
            out = (fact, commit)
        else:
            out = self._from_store(ckpt)
        self._resolved[ckpt] = out
        return out

    # -- model versions
    def model(self, commit: str, r: ResultFact, note: int,
              here: list[tuple[int, CheckpointFact]]) -> _Model:
        """The model version of results ``r`` (in the ``note``-th note of ``commit``)."""
        ckpt = r.checkpoint
        if ckpt is None:
            # What was there when the results were noted: results noted after step 1 stay
            # step 1's when step 2 (or another run) is committed later on the same commit.
            # Within one second, a note's own order tells (one written line by line).
            before = [c for n, c in here if r.time is not None and c.time is not None and (
                c.time < r.time or (c.time == r.time and (n != note or c.seq < r.seq)))]
            before = before or [c for _, c in here]
            if len({c.run for c in before}) != 1:
                return _Model(None, None, None, commit, None)
            parents = {c.parent for c in before}
            heads = [c for c in before if c.id not in parents] or before
            ckpt = min(heads, key=lambda c: (-(c.time or 0),
                                             -(c.step if c.step is not None else -1), c.id)).id
        info = self.checkpoint(ckpt)
        if info is None:
            return _Model(ckpt, None, None, commit, None)
        fact, trained_at = info
        return _Model(ckpt, fact.run, fact.step, trained_at or commit, fact.config)

    def rows(self) -> list[ResultRow]:
        groups: dict[tuple[str, str | None], list[tuple[str, ResultFact, _Model]]] = {}
        seen: dict[tuple[str, str | None], set[tuple[Any, ...]]] = {}
        for commit in sorted(self.by_commit):
            if commit not in self.walked:
                continue
            notes = self.by_commit[commit]
            for nf in notes:
                self.problems.extend(nf.problems)
            here: dict[str, tuple[int, CheckpointFact]] = {}
            for n, nf in enumerate(notes):
                for c in nf.checkpoints:
                    here.setdefault(c.id, (n, c))
            for n, r in ((n, r) for n, nf in enumerate(notes) for r in nf.results):
                m = self.model(commit, r, n, list(here.values()))
                g = (m.key, r.dataset.id if r.dataset else None)
                ident = r.identity()
                if ident in seen.setdefault(g, set()):
                    continue  # one record in two notes refs, or copied to another commit
                seen[g].add(ident)
                groups.setdefault(g, []).append((commit, r, m))
        rows = [self._row(items) for items in groups.values()]
        rows.sort(key=_newest_first)
        return rows

    def _row(self, items: list[tuple[str, ResultFact, _Model]]) -> ResultRow:
        sources = []
        for commit, r, m in items:
            info = self.commit(commit)
            author = r.author or (info[0] if info else "")
            when = r.time if r.time is not None else (info[1] if info and info[1] else 0)
            sources.append((ResultSource(commit, r.name, r.object, r.format, author, when), r, m))
        sources.sort(key=lambda s: (s[0].time, s[0].object, s[0].commit))
        metrics: dict[str, float] = {}
        for _, r, _ in sources:
            metrics.update(r.metrics)
        newest, newest_fact, m = sources[-1]  # one model version; its commit, if not known
        info = self.commit(m.commit)          # from a record, is the newest results' commit
        dataset = newest_fact.dataset
        return ResultRow(m.checkpoint, m.run, m.step, m.commit, info[1] if info else None,
                         m.config, DatasetRef(dataset.name, dataset.id) if dataset else None,
                         dict(sorted(metrics.items())), newest.author, newest.time,
                         tuple(s for s, _, _ in reversed(sources)))


def _newest_first(r: ResultRow) -> tuple[Any, ...]:
    return (-r.time, -(r.commit_time or 0), -(r.step if r.step is not None else -1),
            r.run or "", r.checkpoint or "", r.commit, r.dataset.id if r.dataset else "")


# -- the table ---------------------------------------------------------------------------------


def _report(problems: Iterable[str], ev: Events) -> None:
    for p in problems:
        ev.problem(FormatError(p))


def table(repo: Core, revs: str | Iterable[str] | None = None, events: Events | None = None
          ) -> list[ResultRow]:
    """Every row over the history of ``revs`` (default: HEAD and all branches), newest first.

    ``revs`` as ``git log`` takes them: ``REV``, ``^REV``, ``A..B`` (a string is one).

    Served from the cache when its key matches; otherwise built from the notes
    (reusing the facts of notes already read) and cached. Problems (a note
    that cannot be read, a malformed record, a checkpoint that is not one) go
    to ``events.problem`` on every call, cached or not; the rows they spare
    are all kept.
    """
    ev = events or Events()
    key = _key(repo, _as_list(revs))
    cdir = _cache_dir(repo)
    if cdir is not None:
        hit = _load_rows(cdir / f"rows-{key.digest}.json", key.digest, repo)
        if hit is not None:
            _report(hit[1], ev)
            return hit[0]
    old = _load_facts(cdir / "facts.json") if cdir is not None else _Facts()
    by_commit, fresh = _gather(repo, key, old)
    join = _Join(repo, reachable_commits(repo.git, key.include, key.exclude), by_commit,
                 old.snapshots)
    rows = join.rows()
    fresh.snapshots = join.used
    problems = list(dict.fromkeys(join.problems))
    _report(problems, ev)
    if cdir is not None:
        changed = (fresh.notes.keys() != old.notes.keys()
                   or fresh.snapshots.keys() != old.snapshots.keys())
        if changed:
            _write(cdir / "facts.json", _FACTS, _ANY_KEY, fresh.to_json(), ev)
        _store_rows(cdir, key.digest, rows, problems,
                    _packs_signature(repo) if join.store_missed else None, ev)
    return rows


# -- filters, sorting, history ---------------------------------------------------------------------


def _dataset_match(row: ResultRow, specs: list[str]) -> bool:
    if not specs:
        return True
    if row.dataset is None:
        return False
    for spec in specs:
        name, _, prefix = spec.partition("@")
        if row.dataset.name == name and row.dataset.id.startswith(prefix):
            return True
    return False


def _as_list(v: str | Iterable[str] | None) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def _check_specs(datasets: list[str]) -> None:
    for spec in datasets:
        name, at, prefix = spec.partition("@")
        if not name or (at and not (prefix and is_hex_prefix(prefix))):
            raise UsageError(f"--dataset {spec!r}: give NAME or NAME@ID (a hex id prefix)")


def _by_metric(metric: str) -> Any:
    """A sort key putting rows with ``metric`` first, best first (:func:`best_mode`)."""
    sign = 1.0 if best_mode(metric) == "min" else -1.0

    def key(r: ResultRow) -> tuple[bool, float]:
        v = r.metrics.get(metric)
        return (v is None, 0.0 if v is None else sign * v)
    return key


def results(repo: Core, revs: str | Iterable[str] | None = None, *,
            dataset: str | Iterable[str] | None = None,
            metric: str | Iterable[str] | None = None, run: str | Iterable[str] | None = None,
            sort: str | None = None, limit: int | None = None,
            events: Events | None = None) -> list[ResultRow]:
    """The results table (see the module docstring), filtered and sorted.

    ``dataset``: test dataset names (``NAME``, or ``NAME@ID`` for versions
    whose id starts with ID); ``run``: run names; ``metric``: rows that have
    every one of these metrics, with only those; a row matches when it
    matches one of each list given. ``sort``: best first by that metric
    (lower is better for a loss or error, :func:`~mlgit.format.records.best_mode`),
    rows without it last; default newest first. ``limit``: the first rows only.
    Problems are reported to ``events``; without ``events`` the first is
    raised once the table is read.
    """
    ev = events or Events()
    datasets, metrics, runs = _as_list(dataset), _as_list(metric), _as_list(run)
    _check_specs(datasets)
    rows = [r for r in table(repo, revs, ev)
            if (not runs or r.run in runs) and _dataset_match(r, datasets)
            and all(m in r.metrics for m in metrics)]
    if metrics:
        rows = [dataclasses.replace(r, metrics={m: r.metrics[m] for m in sorted(metrics)})
                for r in rows]
    if sort is not None:
        rows.sort(key=_by_metric(sort))
    if limit is not None:
        rows = rows[:limit]
    if events is None:
        ev.raise_problems()
    return rows


@dataclass(frozen=True)
class HistoryPoint:
    """One value of a metric in its history: the row, the value, the change since the last.

    ``change`` is the value minus the previous (older) point's, None for the
    first; ``best`` marks the best value of the history (:func:`best_mode`).
    """

    row: ResultRow
    metric: str
    value: float
    change: float | None
    best: bool

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml results --history --json`` prints it (docs/cli.md)."""
        r = self.row.to_json()
        del r["metrics"]
        return {**r, "metric": self.metric, "value": self.value, "change": self.change,
                "best": self.best}


def _name(r: ResultRow) -> str | None:
    return r.dataset.name if r.dataset else None


def _only(values: set[Any], what: str, flag: str) -> Any:
    if len(values) == 1:
        return next(iter(values))
    shown = ", ".join(sorted(str(v) if v is not None else "(none)" for v in values)[:10])
    if not values:
        raise UsageError(f"no results to give a history of for this {what}")
    raise UsageError(f"--history needs one {what}: give {flag} (found: {shown})")


def history(repo: Core, metric: str, *, run: str | None = None, dataset: str | None = None,
            revs: str | Iterable[str] | None = None, events: Events | None = None
            ) -> list[HistoryPoint]:
    """``metric`` over the commits for one run on one test dataset, newest first.

    The points are the rows of ``run`` on test dataset ``dataset`` (a name,
    any version; ``NAME@ID`` for one) that have the metric, ordered by their
    commit's time, then step, then time. ``run`` and ``dataset`` may be left
    out when the rows with the metric have only one. UsageError when no row
    has the metric or the choice is not one.
    """
    ev = events or Events()
    specs = _as_list(dataset)
    _check_specs(specs)
    rows = [r for r in table(repo, revs, ev) if metric in r.metrics]
    if not rows:
        raise UsageError(f"no results have the metric {metric!r}")
    if run is None:
        run = _only({r.run for r in rows}, "run", "--run")
    rows = [r for r in rows if r.run == run]
    if specs:
        rows = [r for r in rows if _dataset_match(r, specs)]
    else:
        name = _only({_name(r) for r in rows}, "test dataset", "--dataset")
        rows = [r for r in rows if _name(r) == name]
    if not rows:
        raise UsageError(f"no results of run {run!r} on test dataset {specs[0]!r} have the "
                         f"metric {metric!r}")
    rows.sort(key=lambda r: (r.commit_time if r.commit_time is not None else r.time,
                             r.step if r.step is not None else -1, r.time))
    values = [r.metrics[metric] for r in rows]
    best = min(values) if best_mode(metric) == "min" else max(values)
    points = [HistoryPoint(r, metric, v, None if i == 0 else v - values[i - 1], v == best)
              for i, (r, v) in enumerate(zip(rows, values, strict=True))]
    if events is None:
        ev.raise_problems()
    return points[::-1]

