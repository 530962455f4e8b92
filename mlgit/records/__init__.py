"""Summaries of ML files for git notes: training logs, model graphs, evaluation results.

Pure reading: these functions open the file they are given and return a small,
JSON-ready summary (``to_json()``); they never write, print or touch the store.
The formats are detected from the content; anything else raises
:class:`~mlgit.errors.UsageError` naming the formats known.

- :func:`summarize_log` → :class:`LogSummary` (tfevents, csv, jsonl, text)
- :func:`summarize_graph` → :class:`GraphSummary` (keras-json, graphdef-pb,
  graphdef-pbtxt, savedmodel)
- :func:`summarize_results` → :class:`ResultsSummary` (json, junit)

TensorFlow (and TensorBoard for event files) is imported only for the formats
that need it.
"""

from __future__ import annotations

from mlgit.records.graphs import GRAPH_FORMATS, GraphSummary, summarize_graph
from mlgit.records.logs import LOG_FORMATS, LogSummary, ScalarSummary, best_mode, summarize_log
from mlgit.records.results import RESULTS_FORMATS, ResultsSummary, summarize_results

__all__ = ["GRAPH_FORMATS", "LOG_FORMATS", "RESULTS_FORMATS", "GraphSummary", "LogSummary",
           "ResultsSummary", "ScalarSummary", "best_mode", "summarize_graph", "summarize_log",
           "summarize_results"]
