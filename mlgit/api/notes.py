"""Records on commits: ``git ml note add`` and ``git ml note show``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.api.payloads import LogPaths, payload_records
from mlgit.errors import FormatError, UsageError
from mlgit.format.records import Record, decode_note, encode_record
from mlgit.gitlink.commits import resolve_commit
from mlgit.gitlink.notes import append_note_lines, read_note

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["NoteView", "add_note", "show_note"]


@dataclass
class NoteView:
    """A commit's ML records, and the lines of its note that were skipped as malformed."""

    commit: str
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml note show --json`` prints it."""
        return {"commit": self.commit, "records": [r.to_json() for r in self.records],
                "problems": self.problems}


def add_note(repo: Core, commit: str = "HEAD", *, log: LogPaths = None,
             graph: str | os.PathLike[str] | None = None,
             results: str | os.PathLike[str] | None = None, dataset: str | None = None,
             checkpoint: str | None = None,
             events: Events | None = None  # noqa: ARG001 - public keyword, as every verb's
             ) -> list[dict[str, Any]]:
    """Store the given files and append one record each to ``commit``'s note; return them.

    ``log`` is one path or a list of them. ``checkpoint`` (a revision naming a
    checkpoint) is recorded in each record as the model it belongs to (``git ml
    results`` then shows the results on that checkpoint, whatever commit they are
    noted on).
    """
    if not log and graph is None and results is None:
        raise UsageError("nothing to note: give --log, --graph and/or --results")
    target = resolve_commit(repo.git, commit)
    with repo.store.writing():  # gc must not prune what the payloads reuse
        recs = payload_records(repo, log=log, graph=graph, results=results, dataset=dataset,
                               checkpoint=checkpoint)
        lines = [encode_record(r) for r in recs]
        repo.store.objects.flush()  # payload objects durable before the note names them
        append_note_lines(repo.git, target, lines)
    return recs


def show_note(repo: Core, commit: str = "HEAD", events: Events | None = None) -> NoteView:
    """Parse ``commit``'s note into typed records.

    A note that cannot be read (larger than ``MAX_NOTE_LEN``) and each malformed
    line are problems (``events.problem``, and listed in ``problems``); the good
    records are kept. With no ``events``, the first problem is raised.
    """
    ev = events or Events()
    target = resolve_commit(repo.git, commit)
    view = NoteView(target)
    try:
        text = read_note(repo.git, target) or ""
    except FormatError as e:
        text, view.problems = "", [str(e)]
    view.records, problems = decode_note(text, f"note on {target[:12]}")
    view.problems += problems
    for p in view.problems:
        ev.problem(FormatError(p))
    if events is None:
        ev.raise_problems()
    return view
