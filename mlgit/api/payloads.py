"""Payload files for notes (training logs, graph definitions, test results).

Each file (or directory, for TensorBoard logs and SavedModels) is stored whole
as a sidecar object tree; the record that names it carries a short summary
made by :mod:`mlgit.records`. Summaries are computed for every file before any
is stored, so an unknown format changes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.errors import BadPathError, UsageError
from mlgit.format.ids import raw_to_hex
from mlgit.format.records import RECORD_VERSION
from mlgit.format.snapshot import KIND_CHECKPOINT, KIND_DATASET
from mlgit.snapshot.build import build_tree
from mlgit.snapshot.statcache import StatCache

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["LogPaths", "payload_records", "store_payload"]

_MAX_SCALARS = 64

LogPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
"""One training log, or several (a CSV history and a directory of event files)."""


def store_payload(repo: Core, path: Path) -> tuple[str, int]:
    """Store a file or directory as an object tree; return (root tree id, bytes)."""
    built = build_tree(repo.store, os.fsencode(path.absolute()), is_file=path.is_file(),
                       old=StatCache())
    return raw_to_hex(built.root), built.total_bytes


def _existing(p: str | os.PathLike[str], what: str) -> Path:
    path = Path(p)
    if not (path.is_file() or path.is_dir()):
        raise BadPathError(f"{what} {p}: no such file or directory")
    return path


def payload_records(repo: Core, *, log: LogPaths,
                    graph: str | os.PathLike[str] | None,
                    results: str | os.PathLike[str] | None,
                    dataset: str | None, checkpoint: str | None = None) -> list[dict[str, Any]]:
    """Summarize, then store, the given payload files; return their note records.

    ``log`` is one path or a list of them (one ``log`` record each, in order).
    Each record carries ``author``, who git says is the author now
    (``git var GIT_AUTHOR_IDENT``), as the checkpoint record does, and, with
    ``checkpoint`` (a revision naming a checkpoint), that checkpoint's id: the
    model the log, graph or results belong to.
    """
    logs = [] if log is None else [log] if isinstance(log, str | os.PathLike) else list(log)
    if not logs and graph is None and results is None:
        if dataset is not None:
            raise UsageError("--dataset names the test dataset of --results; give --results too")
        if checkpoint is not None:
            raise UsageError("--checkpoint names the model of --results, --log or --graph; "
                             "give one of them too")
        return []
    ckpt: dict[str, str] = {}
    if checkpoint is not None:
        oid = repo.resolve(checkpoint)
        snap = repo.snapshot(oid)
        if snap.kind != KIND_CHECKPOINT:
            raise UsageError(f"--checkpoint {checkpoint!r} is a {snap.kind}, not a checkpoint")
        ckpt = {"checkpoint": oid}
    import mlgit.records as records  # parsers; TensorFlow itself only when a format needs it

    planned: list[tuple[Path, dict[str, Any]]] = []
    now = int(time.time())
    for one in logs:
        p = _existing(one, "log")
        s = records.summarize_log(p)
        scalars = dict(list(s.scalars.items())[:_MAX_SCALARS])
        planned.append((p, {"type": "log", "format": s.format,
                            "scalars": {k: v.to_json() for k, v in scalars.items()}}))
    if graph is not None:
        p = _existing(graph, "graph")
        g = records.summarize_graph(p)
        planned.append((p, {"type": "graph", "format": g.format, "summary": g.summary}))
    if results is not None:
        p = _existing(results, "results")
        r = records.summarize_results(p)
        ds: dict[str, str] | None = None
        if dataset is not None:
            oid = repo.resolve(dataset)
            snap = repo.snapshot(oid)
            if snap.kind != KIND_DATASET:
                raise UsageError(f"--dataset {dataset!r} is a {snap.kind}, not a dataset")
            ds = {"name": snap.name, "id": oid}
        metrics = dict(list(r.metrics.items())[:_MAX_SCALARS])
        planned.append((p, {"type": "results", "format": r.format, "metrics": metrics,
                            "dataset": ds}))
    elif dataset is not None:
        raise UsageError("--dataset names the test dataset of --results; give --results too")
    out = []
    author = repo.author()  # who noted them: two people's identical results stay two lines
    for path, rec in planned:
        obj, size = store_payload(repo, path)
        out.append({**rec, "v": RECORD_VERSION, "object": obj, "name": path.name,
                    "size": size, "time": now, "author": author, **ckpt})
    return out
