"""The results table: its rows, the facts they are joined from, and their checked JSON forms.

``git ml results`` (``mlgit/api/results_table.py``) reads each note once and
keeps what the table needs of it as :class:`NoteFacts`: its ``results`` records
(:class:`ResultFact`), its ``checkpoint`` records (:class:`CheckpointFact`) and
the problems found in it. Joined over the history, the facts become
:class:`ResultRow` s, one per (model version, test dataset version). Both are
cached in ``.git/ml/cache/results/`` as the JSON of this module.

A cache file is derived data that anyone with write access to ``.git`` can
change, so the decoders here (:func:`rows_from_cache`, :func:`facts_from_json`)
check every field as a note record's is checked (ids, run names, strings
shown as they are, finite numbers, times in range): nothing read from a cache
can be anything a note could not have said, and anything else is a
FormatError (the cache is then rebuilt from the notes).

Pure functions; they raise FormatError and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlgit.errors import FormatError
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_TIME
from mlgit.format.meta import (
    DatasetRef,
    dataset_ref,
    list_at,
    metrics_at,
    obj_at,
    opt_id,
    opt_int,
    opt_str,
    req_id,
    req_str,
)
from mlgit.format.names import is_ref_name
from mlgit.format.plainjson import check_shown, is_number
from mlgit.format.records import CheckpointRecord, Record, ResultsRecord

__all__ = [
    "CheckpointFact",
    "NoteFacts",
    "ResultFact",
    "ResultRow",
    "ResultSource",
    "check_commit_id",
    "facts_from_json",
    "is_commit_id",
    "note_facts",
    "rows_from_cache",
    "rows_to_cache",
]

_COMMIT_HEX = frozenset("0123456789abcdef")


def is_commit_id(v: Any) -> bool:
    """True for a full git object id: 40 (SHA-1) or 64 (SHA-256) lowercase hex."""
    return isinstance(v, str) and len(v) in (40, 64) and _COMMIT_HEX.issuperset(v)


def check_commit_id(v: Any, where: str) -> str:
    """``v`` if it is a full git commit id (40 or 64 lowercase hex); FormatError otherwise."""
    if not is_commit_id(v):
        raise FormatError(f"{where} must be a commit id (40 or 64 lowercase hex), got "
                          f"{str(v)[:70]!r}")
    return str(v)


def _time(obj: dict[str, Any], key: str, where: str) -> int | None:
    return opt_int(obj, key, where, 0, MAX_TIME)


def _run(obj: dict[str, Any], where: str) -> str | None:
    run = opt_str(obj, "run", where)
    if run is not None and not is_ref_name(run):
        raise FormatError(f"{where}.run is not a run name: {run[:40]!r}")
    return run


def _dataset(v: Any, where: str) -> DatasetRef | None:
    return None if v is None else dataset_ref(v, where, False)


# -- facts: what one note tells the table ----------------------------------------------------


@dataclass(frozen=True)
class ResultFact:
    """One ``results`` record: the payload, its metrics, test dataset, checkpoint, who, when."""

    name: str
    object: ObjectID
    format: str
    metrics: dict[str, float]
    dataset: DatasetRef | None
    checkpoint: ObjectID | None
    author: str
    time: int | None
    seq: int = 0
    """Its place among the records of its note (0 first): which records came before it."""

    def identity(self) -> tuple[Any, ...]:
        """Equal for the same record read from two notes refs (a merged and a fetched note)."""
        return (self.object, self.name, self.format, self.author, self.time,
                self.dataset.id if self.dataset else None,
                self.dataset.name if self.dataset else None, self.checkpoint,
                tuple(sorted(self.metrics.items())))

    def to_json(self) -> dict[str, Any]:
        """JSON form (the cache's)."""
        return {"name": self.name, "object": self.object, "format": self.format,
                "metrics": self.metrics,
                "dataset": self.dataset.to_json() if self.dataset else None,
                "checkpoint": self.checkpoint, "author": self.author, "time": self.time,
                "seq": self.seq}


@dataclass(frozen=True)
class CheckpointFact:
    """One ``checkpoint`` record: the snapshot, its run, step, parent, config digest, time."""

    id: ObjectID
    run: str
    step: int | None
    parent: ObjectID | None
    config: str | None
    time: int | None
    seq: int = 0
    """Its place among the records of its note, as :attr:`ResultFact.seq`."""

    def to_json(self) -> dict[str, Any]:
        """JSON form (the cache's)."""
        return {"id": self.id, "run": self.run, "step": self.step, "parent": self.parent,
                "config": self.config, "time": self.time, "seq": self.seq}


@dataclass(frozen=True)
class NoteFacts:
    """What one note blob tells the results table, and the problems found reading it."""

    results: tuple[ResultFact, ...] = ()
    checkpoints: tuple[CheckpointFact, ...] = ()
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form (the cache's)."""
        return {"results": [r.to_json() for r in self.results],
                "checkpoints": [c.to_json() for c in self.checkpoints],
                "problems": list(self.problems)}


def note_facts(records: Iterable[Record], problems: Iterable[str]) -> NoteFacts:
    """The facts of a decoded note (:func:`~mlgit.format.records.decode_note`'s output)."""
    results, ckpts = [], []
    for seq, r in enumerate(records):
        if isinstance(r, ResultsRecord):
            results.append(ResultFact(r.name, r.object, r.format, dict(r.metrics), r.dataset,
                                      r.checkpoint, r.author, r.time, seq))
        elif isinstance(r, CheckpointRecord):
            ckpts.append(CheckpointFact(r.id, r.run, r.step, r.parent, r.config, r.time, seq))
    return NoteFacts(tuple(results), tuple(ckpts), tuple(problems))


def _result_fact(v: Any, where: str) -> ResultFact:
    o = obj_at(v, where)
    name = req_str(o, "name", where)
    if not name:
        raise FormatError(f"{where}.name is empty")
    return ResultFact(name, req_id(o, "object", where), req_str(o, "format", where),
                      metrics_at(o.get("metrics"), f"{where}.metrics"),
                      _dataset(o.get("dataset"), f"{where}.dataset"),
                      opt_id(o, "checkpoint", where), req_str(o, "author", where),
                      _time(o, "time", where), opt_int(o, "seq", where) or 0)


def _checkpoint_fact(v: Any, where: str) -> CheckpointFact:
    o = obj_at(v, where)
    run = _run(o, where)
    if run is None:
        raise FormatError(f"{where}.run is missing")
    return CheckpointFact(req_id(o, "id", where), run, opt_int(o, "step", where),
                          opt_id(o, "parent", where), opt_id(o, "config", where),
                          _time(o, "time", where), opt_int(o, "seq", where) or 0)


def facts_from_json(v: Any, where: str = "note facts") -> NoteFacts:
    """:meth:`NoteFacts.to_json`'s output back, every field checked; FormatError otherwise."""
    o = obj_at(v, where)
    problems = []
    for i, p in enumerate(list_at(o.get("problems"), f"{where}.problems")):
        if not isinstance(p, str):
            raise FormatError(f"{where}.problems[{i}] must be a string")
        problems.append(check_shown(p, f"{where}.problems[{i}]"))
    return NoteFacts(
        tuple(_result_fact(r, f"{where}.results[{i}]")
              for i, r in enumerate(list_at(o.get("results"), f"{where}.results"))),
        tuple(_checkpoint_fact(c, f"{where}.checkpoints[{i}]")
              for i, c in enumerate(list_at(o.get("checkpoints"), f"{where}.checkpoints"))),
        tuple(problems))


# -- rows ---------------------------------------------------------------------------------


# Rows and sources are built by the ten thousand from the cache on every `git ml results`:
# plain slotted dataclasses are built several times faster than frozen ones. Treat them as
# values all the same (``dataclasses.replace`` to change one).
@dataclass(slots=True)
class ResultSource:
    """A ``results`` record behind a row: the commit whose note holds it, its payload, who, when.

    ``author`` and ``time`` are the record's; for a record written before
    git-ml recorded them, the author and committer time of ``commit``.
    """

    commit: str
    name: str
    object: ObjectID
    format: str
    author: str
    time: int

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{commit, name, object, format, author, time}``."""
        return {"commit": self.commit, "name": self.name, "object": self.object,
                "format": self.format, "author": self.author, "time": self.time}


@dataclass(slots=True)
class ResultRow:
    """One model version measured on one test dataset version (docs/cli.md, ``git ml results``).

    The model version is the checkpoint ``checkpoint`` when the results name
    one or can be traced to one, else the commit ``commit`` (``checkpoint``,
    ``run``, ``step`` and ``config`` are then None). ``commit`` is the commit
    the checkpoint was trained at (whose note holds its ``checkpoint``
    record), ``commit_time`` its committer time (None when git does not have
    it). ``dataset`` is the test dataset's name and snapshot id (None when the
    results named none). ``metrics`` merges the rows' records, the newest
    winning a metric both have; ``author`` and ``time`` are the newest
    record's; ``sources`` lists every record, newest first.
    """

    checkpoint: ObjectID | None
    run: str | None
    step: int | None
    commit: str
    commit_time: int | None
    config: str | None
    dataset: DatasetRef | None
    metrics: dict[str, float]
    author: str
    time: int
    sources: tuple[ResultSource, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml results --json`` prints it (docs/cli.md)."""
        return {"checkpoint": self.checkpoint, "run": self.run, "step": self.step,
                "commit": self.commit, "commit_time": self.commit_time, "config": self.config,
                "dataset": self.dataset.to_json() if self.dataset else None,
                "metrics": self.metrics, "author": self.author, "time": self.time,
                "sources": [s.to_json() for s in self.sources]}


# -- the rows cache: compact, checked in bulk -------------------------------------------------

_IDS = re.compile(r"(?:[0-9a-f]{32}\n)*\Z")
_COMMITS = re.compile(r"(?:(?:[0-9a-f]{40}|[0-9a-f]{64})\n)*\Z")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # what check_shown refuses


def rows_to_cache(rows: Iterable[ResultRow]) -> list[list[Any]]:
    """The rows as the cache keeps them: one list of fields each (see :func:`rows_from_cache`)."""
    return [[r.checkpoint, r.run, r.step, r.commit, r.commit_time, r.config,
             r.dataset.name if r.dataset else None, r.dataset.id if r.dataset else None,
             r.metrics, r.author, r.time,
             [[x.commit, x.name, x.object, x.format, x.author, x.time] for x in r.sources]]
            for r in rows]


class _Bulk:
    """Values of one kind collected from every row, checked at once at the end."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.commits: list[str] = []
        self.shown: list[str] = []
        self.runs: set[str] = set()
        self.numbers: list[Any] = []
        self.datasets: dict[tuple[str, str], DatasetRef] = {}  # few: one object each

    def dataset(self, name: str, oid: Any) -> DatasetRef:
        ref = self.datasets.get((name, oid))
        if ref is None:
            ref = self.datasets[name, oid] = DatasetRef(name, oid)
        return ref

    def opt_id(self, v: Any) -> Any:
        if v is not None:
            self.ids.append(v)
        return v

    def time(self, v: Any, optional: bool = False) -> Any:
        if v is None and optional:
            return v
        if type(v) is not int or not 0 <= v <= MAX_TIME:
            raise FormatError(f"a time that is not an integer from 0 to {MAX_TIME}")
        return v

    def check(self) -> None:
        # Each value ends in one newline: as many newlines as values means none held one.
        ids = "\n".join(self.ids) + "\n" if self.ids else ""
        if ids.count("\n") != len(self.ids) or not _IDS.match(ids):
            raise FormatError("an object id that is not 32 lowercase hex")
        commits = "\n".join(self.commits) + "\n" if self.commits else ""
        if commits.count("\n") != len(self.commits) or not _COMMITS.match(commits):
            raise FormatError("a commit id that is not 40 or 64 lowercase hex")
        text = "\t".join(self.shown)  # a tab is the one control character allowed
        if _CONTROL.search(text):
            raise FormatError("a string that holds control characters")
        text.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
        for run in self.runs:
            if not is_ref_name(run):
                raise FormatError(f"{run[:40]!r} is not a run name")
        if not all(map(is_number, self.numbers)):
            raise FormatError("a metric that is not a finite number")


def _cached_row(item: Any, b: _Bulk) -> ResultRow:
    ck, run, step, commit, ctime, config, dsn, dsi, metrics, author, t, srcs = item
    if run is not None:
        b.runs.add(run)
    if step is not None and (type(step) is not int or not 0 <= step < 1 << 63):
        raise FormatError("a step that is not an integer >= 0")
    b.commits.append(commit)
    if (dsn is None) != (dsi is None):
        raise FormatError("a test dataset with a name and no id, or an id and no name")
    if dsn is not None:
        b.shown.append(dsn)
        b.ids.append(dsi)
    if type(metrics) is not dict:
        raise FormatError("metrics that are not an object")
    b.shown.extend(metrics)
    b.numbers.extend(metrics.values())
    b.shown.append(author)
    if type(srcs) is not list or not srcs:
        raise FormatError("a row with no sources")
    sources = []
    for sc, name, obj, fmt, who, st in srcs:
        b.commits.append(sc)
        b.ids.append(obj)
        if not name:
            raise FormatError("a source with an empty name")
        b.shown += (name, fmt, who)
        sources.append(ResultSource(sc, name, obj, fmt, who, b.time(st)))
    return ResultRow(b.opt_id(ck), run, step, commit, b.time(ctime, True), b.opt_id(config),
                     b.dataset(dsn, dsi) if dsn is not None else None, metrics, author,
                     b.time(t), tuple(sources))


def rows_from_cache(body: Any) -> list[ResultRow]:
    """:func:`rows_to_cache`'s output back; FormatError unless every field is as a note's.

    Ids are 32 lowercase hex, commits 40 or 64, runs run names, strings free of
    control characters and lone surrogates, metrics finite numbers, steps and
    times integers in range, every row has a source. The checks run in bulk
    (one regular expression over all ids, one over all strings...), so tens of
    thousands of rows are checked in a fraction of the time field-by-field
    checks take.
    """
    if type(body) is not list:
        raise FormatError("rows cache: the rows are not a list")
    b = _Bulk()
    try:
        rows = [_cached_row(item, b) for item in body]
        b.check()
    except (TypeError, ValueError, AttributeError) as e:  # a wrong shape or type anywhere
        raise FormatError(f"rows cache: a malformed row ({str(e)[:80]})") from None
    except FormatError as e:
        raise FormatError(f"rows cache: {e}") from None
    return rows
