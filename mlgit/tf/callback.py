"""``CheckpointCallback``: commit a Keras model to git-ml as training goes.

Each commit is a checkpoint of the callback's run (see ``docs/notes.md``): the
saved model, the epoch's metrics, a ``config.json``, the datasets trained on, and
in HEAD's git note a ``checkpoint`` record plus two ``log`` records (the training
history so far, as Keras' ``CSVLogger`` writes it, and as TensorBoard event files)
and a ``graph`` record (the model's JSON), and with ``samples`` a ``samples``
record: those inputs with the outputs the model gave for them, for ``git ml
verify`` and ``git ml export`` (docs/tensorflow.md).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mlgit.api import checkpoints
from mlgit.api.repo import Repo
from mlgit.errors import UsageError
from mlgit.format.meta import DatasetRef
from mlgit.format.names import is_ref_name
from mlgit.format.snapshot import KIND_DATASET
from mlgit.records.tfevents import frame
from mlgit.tf._compat import keras, tf
from mlgit.tf.lineage import Reads
from mlgit.tf.samples import Runner, as_arrays, fit_inputs, record_samples

__all__ = ["SAVE_FORMATS", "CheckpointCallback", "numeric_logs"]

SAVE_FORMATS = ("keras", "savedmodel")
MODEL_FILE = "model.keras"
EVENTS_DIR = "tensorboard"
VALIDATION_PREFIX = "val_"


def numeric_logs(logs: dict[str, Any] | None) -> dict[str, float]:
    """The finite numeric values of a Keras ``logs`` dict, as floats (others dropped)."""
    out: dict[str, float] = {}
    for k, v in (logs or {}).items():
        if isinstance(v, bool | str | bytes):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out


def _model_json(model: Any) -> str | None:
    """``model.to_json()``, or None for a model that cannot describe itself (subclassed)."""
    try:
        text = model.to_json()
    except Exception:  # noqa: BLE001 - the user's model may raise anything (NotImplementedError...)
        return None
    return text if isinstance(text, str) else None


def _op_graph(model: Any) -> bytes | None:
    """The model's inference graph as a serialized ``GraphDef``, or None if it cannot be traced.

    Traced once with ``tf.function`` over the model's inputs (a subclassed model
    that was never called has none: no graph).
    """
    try:
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]

        def forward(*xs: Any) -> Any:
            return model(xs[0] if len(xs) == 1 else list(xs), training=False)

        graph = tf.function(forward).get_concrete_function(*specs).graph
        return bytes(graph.as_graph_def().SerializeToString())
    except Exception:  # noqa: BLE001 - any model may fail to trace; the graph is optional
        return None


def _event(**fields: Any) -> bytes:
    """One framed ``Event`` (TensorFlow's own protobuf class; the framing is git-ml's)."""
    return frame(tf.compat.v1.Event(**fields).SerializeToString())


def _scalars_event(wall_time: float, step: int, values: dict[str, float]) -> bytes:
    summary = tf.compat.v1.Summary(value=[
        tf.compat.v1.Summary.Value(tag=tag, simple_value=v) for tag, v in values.items()])
    return _event(wall_time=wall_time, step=step, summary=summary)


def _keras_graph_event(wall_time: float, model_json: str) -> bytes:
    """The model JSON as the conceptual graph TensorBoard draws (``graph_keras_model``)."""
    meta = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="graph_keras_model",
                                                            content=b"1"))
    value = tf.compat.v1.Summary.Value(tag="keras", metadata=meta,
                                       tensor=tf.make_tensor_proto(model_json))
    return _event(wall_time=wall_time, step=0, summary=tf.compat.v1.Summary(value=[value]))


class CheckpointCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """A Keras callback that commits the model as a git-ml checkpoint of run ``run``.

    At the end of every ``every_epochs``-th epoch (counting from 1), and at the end
    of training unless that epoch was just committed, the model is saved into a
    fresh temporary directory (``model.keras`` for ``save_format="keras"``; for
    ``"savedmodel"`` the directory is a SavedModel made by ``model.export``) and
    committed with ``Repo.commit_ckpt``: ``step`` is the number of epochs done
    (Keras' epoch index + 1), ``metrics`` the epoch's finite numeric logs,
    ``config_files`` a ``config.json`` holding ``{"config": config, "model": the
    model's JSON, "save_format", "keras_version", "tensorflow_version"}``,
    ``datasets`` as given (None: the versions ``mlgit.tf.dataset`` datasets read
    while this callback's fits ran, see :meth:`datasets_read`; if none, every
    dataset pinned in HEAD's tree), ``log`` the
    history so far as CSV (``history.csv``) and, unless ``tensorboard`` is False,
    as TensorBoard event files (a ``tensorboard`` directory, see
    :meth:`write_events`), and ``graph`` the model's JSON. The temporary directory
    is removed afterwards. The parent of each checkpoint is the run's previous one.

    ``samples`` (e.g. ``x_val[:32]``, or a dict of named inputs) are adequacy
    samples: at each commit the model is run on them and inputs and outputs are
    noted with the checkpoint (a ``samples`` record), for ``git ml verify`` and
    ``git ml export``. They are checked when the callback is made (numeric
    arrays, one count, at most ``MAX_SAMPLES``) and against the model's inputs
    when training begins.

    ``repo`` is a path inside the git repository (default: the current directory
    when the callback is made). The repository, run name, datasets and config are
    checked when the callback is made, so a mistake fails before training starts.
    ``checkpoints`` lists ``(epoch, id)`` for each commit, ``epoch`` being Keras'
    0-based epoch index. An error while committing stops training.
    """

    def __init__(self, run: str, every_epochs: int = 1, datasets: list[str] | None = None,
                 save_format: str = "keras", repo: str | os.PathLike[str] | None = None,
                 config: dict[str, Any] | None = None, samples: Any = None,
                 tensorboard: bool = True) -> None:
        super().__init__()
        if not is_ref_name(run):
            raise UsageError(f"invalid run name {run!r}: use letters, digits, '.', '_' and '-', "
                             "starting with a letter or digit")
        if isinstance(every_epochs, bool) or not isinstance(every_epochs, int) or (
                every_epochs < 1):
            raise UsageError(f"every_epochs must be a positive integer, got {every_epochs!r}")
        if save_format not in SAVE_FORMATS:
            raise UsageError(f"save_format must be one of {', '.join(SAVE_FORMATS)}, "
                             f"got {save_format!r}")
        try:
            json.dumps(config or {}, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise UsageError(f"config must be plain JSON: {e}") from None
        self.run = run
        self.every_epochs = every_epochs
        self.datasets = list(datasets) if datasets is not None else None
        self.save_format = save_format
        self.config: dict[str, Any] = dict(config or {})
        self.tensorboard = bool(tensorboard)
        self.repo_path = Path(repo).absolute() if repo is not None else Path.cwd()
        self.samples = as_arrays(samples) if samples is not None else None
        self.checkpoints: list[tuple[int, str]] = []
        self._history: dict[int, dict[str, float]] = {}
        self._times: dict[int, float] = {}
        self._events_start: int | None = None  # when the history began: names the files
        self._graphs: list[bytes] | None = None  # the graph events, made once per history
        self._last_epoch: int | None = None
        self._last_committed: int | None = None
        self._reads = Reads()  # what mlgit.tf.dataset datasets read during this callback's fits
        with Repo(self.repo_path) as r:
            _ = r.store  # NotInitializedError now rather than after the first epoch
            for rev in self.datasets or []:
                snap = r.snapshot(r.resolve(rev))
                if snap.kind != KIND_DATASET:
                    raise UsageError(f"{rev!r} is a {snap.kind}, not a dataset")

    # -- keras hooks -----------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:  # noqa: ARG002 - Keras passes logs=
        """Start a fit: nothing is pending until an epoch ends; samples must fit the model."""
        self._last_epoch = None
        self._last_committed = None
        if self.samples is not None:
            fit_inputs(Runner(self.model), self.samples, "samples")
        self._reads.listen()

    def datasets_read(self) -> list[DatasetRef]:
        """The dataset versions ``mlgit.tf.dataset`` datasets read during this callback's fits.

        Collected from ``on_train_begin`` to ``on_train_end`` of every fit this
        callback has been part of (training and validation data alike), in the
        order first read; what the checkpoints record when ``datasets`` is None.
        """
        return self._reads.refs()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the epoch's logs; commit when ``epoch + 1`` is a multiple of ``every_epochs``.

        The first epoch of a fit drops the history of that epoch and later ones
        left by an earlier fit, so a fit that starts over writes a fresh history
        while one resumed with ``initial_epoch`` continues the old one.
        """
        if self._last_epoch is None:
            self._history = {e: row for e, row in self._history.items() if e < epoch}
            self._times = {e: t for e, t in self._times.items() if e < epoch}
            if not self._history:
                self._events_start, self._graphs = None, None
        self._history[epoch] = numeric_logs(logs)
        self._times[epoch] = time.time()
        self._last_epoch = epoch
        if (epoch + 1) % self.every_epochs == 0:
            self._commit(epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:  # noqa: ARG002 - Keras passes logs=
        """Commit the last epoch if it was not committed already; stop collecting reads."""
        try:
            if self._last_epoch is not None and self._last_committed != self._last_epoch:
                self._commit(self._last_epoch)
        finally:
            self._reads.stop()

    # -- committing ------------------------------------------------------------
    def _save_model(self, dest: Path) -> None:
        if self.save_format == "keras":
            dest.mkdir()
            self.model.save(str(dest / MODEL_FILE))
        elif hasattr(self.model, "export"):
            self.model.export(str(dest))
        else:
            tf.saved_model.save(self.model, str(dest))

    def _write_history(self, dest: Path) -> None:
        """The history so far in ``CSVLogger``'s layout: ``epoch`` then sorted keys, NA for gaps."""
        keys = sorted({k for row in self._history.values() for k in row})
        with dest.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["epoch", *keys])
            for epoch in sorted(self._history):
                row = self._history[epoch]
                w.writerow([epoch, *(repr(row[k]) if k in row else "NA" for k in keys)])

    def write_events(self, dest: Path) -> list[Path]:
        """Write the history so far as TensorBoard event files under ``dest``; return them.

        The layout of Keras' ``TensorBoard`` callback: ``train/`` holds the model's
        conceptual graph (its JSON, tag ``keras``), its traced inference graph and
        one ``epoch_<name>`` scalar per numeric log, step = Keras' epoch index;
        ``validation/`` the ``val_*`` logs under the same names. The files are
        named after the time the history began and rewritten whole at each
        commit, so each commit's files extend the previous commit's: a board
        laying them out appends.
        """
        if self._events_start is None:
            first = min(self._times.values()) if self._times else time.time()
            self._events_start = int(first)
        if self._graphs is None:
            self._graphs = []
            model_json = _model_json(self.model)
            if model_json is not None:
                self._graphs.append(_keras_graph_event(self._events_start, model_json))
            graph_def = _op_graph(self.model)
            if graph_def is not None:
                self._graphs.append(_event(wall_time=self._events_start, step=0,
                                           graph_def=graph_def))
        name = f"events.out.tfevents.{self._events_start}.mlgit.v2"
        head = _event(wall_time=self._events_start, file_version="brain.Event:2")
        train, val = [head, *self._graphs], [head]
        for epoch in sorted(self._history):
            row, when = self._history[epoch], self._times.get(epoch, self._events_start)
            t = {f"epoch_{k}": v for k, v in row.items() if not k.startswith(VALIDATION_PREFIX)}
            v = {f"epoch_{k.removeprefix(VALIDATION_PREFIX)}": x for k, x in row.items()
                 if k.startswith(VALIDATION_PREFIX)}
            if t:
                train.append(_scalars_event(when, epoch, t))
            if v:
                val.append(_scalars_event(when, epoch, v))
        out = []
        for sub, events in (("train", train), ("validation", val)):
            if sub == "validation" and len(events) == 1:
                continue
            (dest / sub).mkdir(parents=True, exist_ok=True)
            path = dest / sub / name
            path.write_bytes(b"".join(events))
            out.append(path)
        return out

    def _datasets(self) -> list[str | DatasetRef] | None:
        """What a commit records: the datasets given, else those read, else None (HEAD's)."""
        if self.datasets is not None:
            return list(self.datasets)
        read = self.datasets_read()
        return list(read) if read else None

    def _commit(self, epoch: int) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f"mlgit-{self.run}-"))
        try:
            ckpt = tmp / "checkpoint"
            self._save_model(ckpt)
            model_json = _model_json(self.model)
            config = {"config": self.config,
                      "model": json.loads(model_json) if model_json else None,
                      "save_format": self.save_format,
                      "keras_version": getattr(keras, "__version__", None),
                      "tensorflow_version": tf.__version__}
            config_file = tmp / "config.json"
            config_file.write_text(json.dumps(config, indent=1, sort_keys=True, default=str) + "\n",
                                   encoding="utf-8")
            history = tmp / "history.csv"
            self._write_history(history)
            logs: list[Path] = [history]
            if self.tensorboard:
                self.write_events(tmp / EVENTS_DIR)
                logs.append(tmp / EVENTS_DIR)
            graph: Path | None = None
            if model_json is not None:
                graph = tmp / "model.json"
                graph.write_text(model_json, encoding="utf-8")
            samples = (record_samples(self.model, self.samples, tmp)
                       if self.samples is not None else None)
            with Repo(self.repo_path) as r:
                result = checkpoints.commit_ckpt(
                    r, ckpt, run=self.run, step=epoch + 1, metrics=self._history.get(epoch, {}),
                    config_files=[config_file], datasets=self._datasets(), log=logs,
                    graph=graph, samples=samples)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.checkpoints.append((epoch, str(result.id)))
        self._last_committed = epoch
