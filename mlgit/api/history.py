"""``git ml log``: git history with each commit's datasets, checkpoints and test results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.errors import FormatError, PointerError
from mlgit.format.records import (
    CheckpointRecord,
    GraphRecord,
    LogRecord,
    Record,
    ResultsRecord,
    best_value,
    decode_note,
    metric_values,
)
from mlgit.gitlink.commits import (
    CommitInfo,
    head_commit,
    pointers_in_tree,
    resolve_commit,
    walk_commits,
)
from mlgit.gitlink.notes import read_note

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["DatasetPin", "LogEntry", "log"]


@dataclass
class DatasetPin:
    """A pointer file in a commit: the version it pins, and if that changed from the parent."""

    path: str
    name: str
    kind: str
    id: str
    changed: bool

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "name": self.name, "kind": self.kind, "id": self.id,
                "changed": self.changed}


@dataclass
class LogEntry:
    """One commit and its ML record."""

    commit: CommitInfo
    datasets: list[DatasetPin] = field(default_factory=list)
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    results: list[ResultsRecord] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    graphs: list[GraphRecord] = field(default_factory=list)
    other: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def metric(self, name: str) -> float | None:
        """The best value of metric ``name`` among this commit's checkpoints and results.

        "Best" is :func:`~mlgit.format.records.best_mode`'s direction for the name;
        None when no record has the metric.
        """
        return best_value(metric_values([*self.checkpoints, *self.results], name), name)

    @property
    def has_records(self) -> bool:
        """True when the commit changes data or carries any note record."""
        return bool(any(d.changed for d in self.datasets) or self.checkpoints or self.results
                    or self.logs or self.graphs or self.other)

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml log --json`` prints it."""
        c = self.commit
        return {"commit": c.id, "parents": list(c.parents), "author": c.author, "time": c.time,
                "tz": c.tz, "summary": c.summary,
                "datasets": [d.to_json() for d in self.datasets],
                "checkpoints": [r.to_json() for r in self.checkpoints],
                "results": [r.to_json() for r in self.results],
                "logs": [r.to_json() for r in self.logs],
                "graphs": [r.to_json() for r in self.graphs],
                "other": [r.to_json() for r in self.other], "problems": self.problems}


def _range(repo: Core, rev_range: str | None) -> tuple[list[str], list[str]]:
    if rev_range is None:
        head = head_commit(repo.git)
        return ([head] if head else []), []
    if ".." in rev_range:
        a, _, b = rev_range.partition("..")
        include = [resolve_commit(repo.git, b or "HEAD")]
        exclude = [resolve_commit(repo.git, a or "HEAD")]
        return include, exclude
    return [resolve_commit(repo.git, rev_range)], []


def log(repo: Core, rev_range: str | None = None, *, run: str | None = None,
        limit: int | None = None, events: Events | None = None) -> list[LogEntry]:
    """Commits of ``rev_range`` (default: HEAD's history), newest first, with their records.

    ``run`` keeps only that run's checkpoint records. A pointer file git-ml must
    not use (reported once, at the newest commit that has it), a note that cannot
    be read and each malformed note line are problems (``events.problem``, and listed in
    the entry's ``problems``): skipped, while every other record is kept. With no
    ``events``, the first problem is raised once all commits are read.
    """
    ev = events or Events()
    include, exclude = _range(repo, rev_range)
    if not include:
        return []
    cache: dict[str, Any] = {}
    reported: set[str] = set()
    out = []
    for c in walk_commits(repo.git, include, exclude, limit):
        bad: list[PointerError] = []
        pins = pointers_in_tree(repo.git, c.tree, cache, bad)
        before: dict[str, str] = {}
        if c.parents:
            ptree = str(repo.git.git[c.parents[0]].tree_id)
            before = {path: p.id for path, p in pointers_in_tree(repo.git, ptree, cache)}
        entry = LogEntry(c, [DatasetPin(path.removesuffix(".mlgit"), p.name, p.kind, p.id,
                                        before.get(path) != p.id) for path, p in pins])
        # A bad pointer file is reported once, at the newest commit that has it.
        for err in bad:
            if str(err) not in reported:
                reported.add(str(err))
                entry.problems.append(f"commit {c.id[:12]}: {err}")
        try:
            text = read_note(repo.git, c.id) or ""
        except FormatError as e:
            text = ""
            entry.problems.append(str(e))
        records, problems = decode_note(text, f"note on {c.id[:12]}")
        entry.problems += problems
        for p in entry.problems:
            ev.problem(FormatError(p))
        for r in records:
            if isinstance(r, CheckpointRecord):
                if run is None or r.run == run:
                    entry.checkpoints.append(r)
            elif isinstance(r, ResultsRecord):
                entry.results.append(r)
            elif isinstance(r, LogRecord):
                entry.logs.append(r)
            elif isinstance(r, GraphRecord):
                entry.graphs.append(r)
            else:
                entry.other.append(r)
        out.append(entry)
    if events is None:
        ev.raise_problems()
    return out
