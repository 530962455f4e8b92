"""The event files git-ml writes for a board: a run's hyperparameters and its checkpoints' metrics.

TensorBoard's HParams dashboard compares *sessions*: a session is a run
directory holding a ``session_start_info`` summary (the hyperparameters' values);
its metrics are the scalars of that directory and the ones below it. For each
run, ``git ml board`` writes two files with TensorBoard's own protobuf classes and
summary helpers (``tensorboard.plugins.hparams.summary_v2.hparams_pb``) in git-ml's
TFRecord framing (:func:`mlgit.records.tfevents.frame`):

- :func:`session_events`: the run's hyperparameters, taken from its newest
  checkpoint's config files (:func:`hparams_from_configs`);
- :func:`metrics_events`: one scalar per metric per checkpoint, at the
  checkpoint's step (its time as the wall time), so runs committed without event
  files still draw curves, and every run's metrics are the dashboard's columns.

Both are deterministic for their input, and appending checkpoints to a run only
appends events, so a logdir refreshed later can grow files in place.
Importing TensorBoard happens on the first call (MissingDependencyError if absent).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable
from typing import Any

from mlgit.errors import FormatError, MissingDependencyError
from mlgit.format import plainjson
from mlgit.records.tfevents import BOARD_INSTALL_HINT, frame

__all__ = ["MAX_CONFIG_JSON", "HParams", "MAX_HPARAMS", "hparams_from_configs", "metrics_events",
           "require_tensorboard", "session_events"]

MAX_HPARAMS = 100
"""Hyperparameters kept per run (the first in key order)."""
MAX_CONFIG_JSON = 1 << 20
"""A config file larger than this is not read for hyperparameters."""
_MAX_KEY = 200
_MAX_TEXT = 256
_MAX_LIST = 16
_CALLBACK_KEYS = frozenset({"config", "model", "save_format"})


def _tb(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"the board needs TensorBoard: {BOARD_INSTALL_HINT}"
                                     ) from None


def require_tensorboard() -> None:
    """MissingDependencyError (naming the install) unless TensorBoard can be imported."""
    _tb("tensorboard.plugins.hparams.summary_v2")


def _scalar(v: Any) -> bool | int | float | str | None:
    """A hyperparameter value TensorBoard takes (bool, number, short text), or None."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if abs(v) < 1 << 53 else None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        return v if len(v) <= _MAX_TEXT else None
    if isinstance(v, list) and len(v) <= _MAX_LIST and all(
            _scalar(x) is not None and not isinstance(x, list | dict) for x in v):
        return json.dumps(v, sort_keys=True)
    return None


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    """Scalar leaves of nested objects as ``a.b.c`` keys (iteratively: no recursion on depth)."""
    stack: list[tuple[str, dict[str, Any]]] = [(prefix, obj)]
    while stack:
        at, d = stack.pop()
        for k, v in d.items():
            key = f"{at}.{k}" if at else str(k)
            if isinstance(v, dict):
                stack.append((key, v))
                continue
            value = _scalar(v)
            if value is not None and len(key) <= _MAX_KEY:
                out[key] = value


HParams = dict[str, bool | int | float | str]
"""Hyperparameters by name, as TensorBoard takes them."""


def hparams_from_configs(configs: Iterable[tuple[str, bytes]]) -> HParams:
    """Hyperparameters from a checkpoint's config files, given as (file name, bytes).

    Each file that is a JSON object is flattened (``optimizer.lr``); lists of up
    to 16 scalars become their JSON text; other values, non-JSON files and files
    over :data:`MAX_CONFIG_JSON` are left out. A ``CheckpointCallback`` config
    (``{"config", "model", "save_format", ...}``) contributes its ``config``
    only. With several files, keys are prefixed by the file's name without
    extension. At most :data:`MAX_HPARAMS` are kept.
    """
    files = [(n, d) for n, d in configs if len(d) <= MAX_CONFIG_JSON]
    out: dict[str, Any] = {}
    for name, data in files:
        try:
            obj = plainjson.loads(data.decode("utf-8"), f"config file {name[:80]}")
        except (FormatError, UnicodeDecodeError):
            continue
        if not isinstance(obj, dict):
            continue
        if set(obj) >= _CALLBACK_KEYS and isinstance(obj["config"], dict):
            obj = obj["config"]
        prefix = name.rsplit(".", 1)[0] if len(files) > 1 else ""
        _flatten(obj, prefix, out)
    return {k: out[k] for k in sorted(out)[:MAX_HPARAMS]}


def _event(**fields: Any) -> bytes:
    event_pb2 = _tb("tensorboard.compat.proto.event_pb2")
    return frame(event_pb2.Event(**fields).SerializeToString(deterministic=True))


def session_events(session: str, hparams: HParams,
                   start_time: float) -> bytes:
    """An event file naming run directory ``session`` a session with these hyperparameters."""
    summary_v2 = _tb("tensorboard.plugins.hparams.summary_v2")
    summary = summary_v2.hparams_pb(hparams, trial_id=session, start_time_secs=start_time)
    # TensorBoard serializes the plugin data (a map of hyperparameters) in whatever order
    # the map iterates, which varies between processes: re-serialized deterministically,
    # so that the same run gives the same bytes and a refresh rewrites nothing.
    plugin_data_pb2 = _tb("tensorboard.plugins.hparams.plugin_data_pb2")
    for value in summary.value:
        data = value.metadata.plugin_data
        if data.content:
            parsed = plugin_data_pb2.HParamsPluginData.FromString(data.content)
            data.content = parsed.SerializeToString(deterministic=True)
    return (_event(wall_time=start_time, file_version="brain.Event:2")
            + _event(wall_time=start_time, step=0, summary=summary))


def metrics_events(points: Iterable[tuple[int, float, dict[str, float]]],
                   start_time: float) -> bytes:
    """An event file of checkpoint metrics: (step, wall time, {metric: value}) in order."""
    summary_pb2 = _tb("tensorboard.compat.proto.summary_pb2")
    out = [_event(wall_time=start_time, file_version="brain.Event:2")]
    for step, when, metrics in points:
        values = [summary_pb2.Summary.Value(tag=k, simple_value=v)
                  for k, v in sorted(metrics.items()) if math.isfinite(v)]
        if values:
            out.append(_event(wall_time=when, step=step,
                              summary=summary_pb2.Summary(value=values)))
    return b"".join(out)
