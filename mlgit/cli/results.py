"""``git ml results``: the results table as text, JSON or CSV, and a metric's history.

The command is registered on the main group by :mod:`mlgit.cli.main`; it gets
the invocation's context object (the repository and the terminal's events)
from click, so this module imports nothing of ``main``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

import click

from mlgit.errors import UsageError
from mlgit.format.records import best_mode

if TYPE_CHECKING:  # 5 ms of every command's start-up (the results types) otherwise
    from mlgit.api.events import Events
    from mlgit.api.repo import Repo
    from mlgit.format.resultrows import ResultRow

__all__ = ["results_cmd"]

MAX_TEXT_METRICS = 6
"""Metric columns of the text table when ``--metric`` does not choose them (the most common)."""

_ROW_FIELDS = ["checkpoint", "run", "step", "commit", "config", "dataset", "dataset_id", "author",
               "time"]
_HISTORY_FIELDS = ["commit", "step", "checkpoint", "run", "dataset", "dataset_id", "metric",
                   "value", "change", "best", "author", "time"]


class _Ctx(Protocol):
    events: Events

    def repo(self) -> Repo: ...


def _date(t: int | None) -> str:
    if t is None:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
    except (OverflowError, ValueError, OSError):
        return f"@{t}"


def _iso(t: int | None) -> str:
    if t is None:
        return ""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (OverflowError, ValueError, OSError):
        return str(t)


def _who(author: str) -> str:
    name, _, email = author.partition("<")
    return name.strip() or email.rstrip(">").strip() or "-"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def _dataset(r: ResultRow) -> str:
    return f"{r.dataset.name}@{r.dataset.id[:8]}" if r.dataset else "-"


def _table(cells: list[list[str]], right: set[int]) -> str:
    """Columns padded to their widest cell (numbers right-aligned), two spaces apart."""
    widths = [max(map(len, col)) for col in zip(*cells, strict=True)]
    fmt = "  ".join(f"{{:{'>' if i in right else '<'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*row).rstrip() for row in cells)


def _best(values: list[float], metric: str) -> float | None:
    if not values:
        return None
    return min(values) if best_mode(metric) == "min" else max(values)


def _print_rows(rows: list[ResultRow], chosen: list[str], filtered: bool) -> None:
    if not rows:
        click.echo("git-ml: no results match" if filtered else "git-ml: no results yet "
                   "(record some with `git ml note add --results FILE --dataset TESTSET`)",
                   err=True)
        return
    counts = Counter(m for r in rows for m in r.metrics)
    names = chosen or sorted(counts, key=lambda m: (-counts[m], m))[:MAX_TEXT_METRICS]
    best = {m: _best([r.metrics[m] for r in rows if m in r.metrics], m) for m in names}
    cells = [["date", "run", "step", "checkpoint", "commit", "config", "dataset", *names,
              "author"]]
    for r in rows:
        metric_cells = []
        for m in names:
            v = r.metrics.get(m)
            metric_cells.append(_num(v) + ("*" if v is not None and v == best[m] else " "))
        cells.append([_date(r.time), r.run or "-", "-" if r.step is None else str(r.step),
                      (r.checkpoint or "-")[:10], r.commit[:10], (r.config or "-")[:8],
                      _dataset(r), *metric_cells, _who(r.author)])
    first = 7
    click.echo(_table(cells, {2, *range(first, first + len(names))}))
    hidden = len(counts) - len(names) if not chosen else 0
    if hidden > 0:
        click.echo(f"({hidden} more metric{'s' if hidden > 1 else ''}: choose with --metric, "
                   "or see all with --json or --csv)")


def _csv(header: list[str], rows: list[list[Any]]) -> None:
    import csv  # 2 ms of every command's start-up otherwise
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    click.echo(buf.getvalue(), nl=False)


def _csv_rows(rows: list[ResultRow], chosen: list[str]) -> None:
    names = chosen or sorted({m for r in rows for m in r.metrics})
    _csv([*_ROW_FIELDS, *names], [
        [r.checkpoint or "", r.run or "", "" if r.step is None else r.step, r.commit,
         r.config or "", r.dataset.name if r.dataset else "",
         r.dataset.id if r.dataset else "", r.author, _iso(r.time),
         *("" if r.metrics.get(m) is None else r.metrics[m] for m in names)] for r in rows])


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)


def _json(items: list[Any]) -> None:
    if not items:
        click.echo("[]")
        return
    click.echo("[\n  " + ",\n  ".join(_dumps(i.to_json()).replace("\n", "\n  ")
                                      for i in items) + "\n]")


def _history(c: _Ctx, revs: list[str] | None, metrics: tuple[str, ...], runs: tuple[str, ...],
             datasets: tuple[str, ...], fmt: str | None) -> None:
    from mlgit.api import results_table  # imported when used: start-up time

    if len(metrics) != 1 or len(runs) > 1 or len(datasets) > 1:
        raise UsageError("--history shows one metric (--metric M) of one run (--run) on one "
                         "test dataset (--dataset)")
    with c.repo() as repo:
        points = results_table.history(repo, metrics[0], run=runs[0] if runs else None,
                                       dataset=datasets[0] if datasets else None, revs=revs,
                                       events=c.events)
    if fmt == "json":
        _json(points)
        return
    if fmt == "csv":
        _csv(_HISTORY_FIELDS, [
            [p.row.commit, "" if p.row.step is None else p.row.step, p.row.checkpoint or "",
             p.row.run or "", p.row.dataset.name if p.row.dataset else "",
             p.row.dataset.id if p.row.dataset else "", p.metric, p.value,
             "" if p.change is None else p.change, "true" if p.best else "false", p.row.author,
             _iso(p.row.time)] for p in points])
        return
    cells = [["date", "commit", "step", "checkpoint", "dataset", metrics[0], "change", "author"]]
    for p in points:
        r = p.row
        cells.append([_date(r.commit_time if r.commit_time is not None else r.time),
                      r.commit[:10], "-" if r.step is None else str(r.step),
                      (r.checkpoint or "-")[:10], _dataset(r),
                      _num(p.value) + ("*" if p.best else " "),
                      "" if p.change is None else f"{p.change:+g}", _who(r.author)])
    click.echo(_table(cells, {2, 5, 6}))


@click.command(name="results")
@click.argument("revs", nargs=-1)
@click.option("--dataset", "datasets", multiple=True, metavar="NAME[@ID]",
              help="Only results on this test dataset (any version, or versions whose id "
                   "starts with ID). Repeatable.")
@click.option("--metric", "metrics", multiple=True, metavar="M",
              help="Only rows that have metric M, showing only the metrics chosen. Repeatable.")
@click.option("--run", "runs", multiple=True, help="Only this run's checkpoints. Repeatable.")
@click.option("--sort", metavar="M",
              help="Best first by metric M (lowest first for a loss or error); default: "
                   "newest first.")
@click.option("--history", is_flag=True,
              help="Metric M's history over the commits, for one --run and one --dataset.")
@click.option("-n", "--max-count", type=click.IntRange(1), help="Show at most N rows.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
@click.option("--csv", "as_csv", is_flag=True, help="Comma-separated values, with a header.")
@click.pass_obj
def results_cmd(c: _Ctx, revs: tuple[str, ...], datasets: tuple[str, ...],
                metrics: tuple[str, ...], runs: tuple[str, ...], sort: str | None,
                history: bool, max_count: int | None, as_json: bool, as_csv: bool) -> None:
    """Every model version's test results, one row per model and test dataset version.

    Reads the notes of every commit reachable from HEAD and the local and
    remote-tracking branches (or from REVS: REV, ^REV, A..B), including
    teammates' fetched notes. A model version is the checkpoint the results
    name, else the one checkpoint run noted on their commit, else the commit.
    """
    if as_json and as_csv:
        raise UsageError("--json and --csv are exclusive: choose one output format")
    fmt = "json" if as_json else "csv" if as_csv else None
    if history:
        if sort is not None or max_count is not None:
            raise UsageError("--history lists every point: --sort and -n do not apply")
        _history(c, list(revs) or None, metrics, runs, datasets, fmt)
        return
    with c.repo() as repo:
        rows = repo.results(list(revs) or None, dataset=datasets, metric=metrics, run=runs,
                            sort=sort, limit=max_count, events=c.events)
    chosen = list(dict.fromkeys(metrics))
    if fmt == "json":
        _json(rows)
    elif fmt == "csv":
        _csv_rows(rows, chosen)
    else:
        _print_rows(rows, chosen, bool(datasets or metrics or runs))
