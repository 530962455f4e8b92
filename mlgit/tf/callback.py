"""``CheckpointCallback``: commit a Keras model to git-ml as training goes.

Each commit is a checkpoint of the callback's run (see ``docs/notes.md``): the
saved model, the epoch's metrics, a ``config.json``, the datasets trained on, and
in HEAD's git note a ``checkpoint`` record plus ``log`` (the training history so
far, as Keras' ``CSVLogger`` writes it) and ``graph`` (the model's JSON) records,
and with ``samples`` a ``samples`` record: those inputs with the outputs the model
gave for them, for ``git ml verify`` and ``git ml export`` (docs/tensorflow.md).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlgit.api import checkpoints
from mlgit.api.repo import Repo
from mlgit.errors import UsageError
from mlgit.format.names import is_ref_name
from mlgit.format.snapshot import KIND_DATASET
from mlgit.tf._compat import keras, tf
from mlgit.tf.samples import Runner, as_arrays, fit_inputs, record_samples

__all__ = ["SAVE_FORMATS", "CheckpointCallback", "numeric_logs"]

SAVE_FORMATS = ("keras", "savedmodel")
MODEL_FILE = "model.keras"


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
    ``datasets`` as given (None: every dataset pinned in HEAD's tree), ``log`` the
    history so far as CSV and ``graph`` the model's JSON. The temporary directory
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
                 config: dict[str, Any] | None = None, samples: Any = None) -> None:
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
        self.repo_path = Path(repo).absolute() if repo is not None else Path.cwd()
        self.samples = as_arrays(samples) if samples is not None else None
        self.checkpoints: list[tuple[int, str]] = []
        self._history: dict[int, dict[str, float]] = {}
        self._last_epoch: int | None = None
        self._last_committed: int | None = None
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

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the epoch's logs; commit when ``epoch + 1`` is a multiple of ``every_epochs``.

        The first epoch of a fit drops the history of that epoch and later ones
        left by an earlier fit, so a fit that starts over writes a fresh history
        while one resumed with ``initial_epoch`` continues the old one.
        """
        if self._last_epoch is None:
            self._history = {e: row for e, row in self._history.items() if e < epoch}
        self._history[epoch] = numeric_logs(logs)
        self._last_epoch = epoch
        if (epoch + 1) % self.every_epochs == 0:
            self._commit(epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:  # noqa: ARG002 - Keras passes logs=
        """Commit the last epoch if it was not committed already."""
        if self._last_epoch is not None and self._last_committed != self._last_epoch:
            self._commit(self._last_epoch)

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
            graph: Path | None = None
            if model_json is not None:
                graph = tmp / "model.json"
                graph.write_text(model_json, encoding="utf-8")
            samples = (record_samples(self.model, self.samples, tmp)
                       if self.samples is not None else None)
            with Repo(self.repo_path) as r:
                result = checkpoints.commit_ckpt(
                    r, ckpt, run=self.run, step=epoch + 1, metrics=self._history.get(epoch, {}),
                    config_files=[config_file], datasets=self.datasets, log=history,
                    graph=graph, samples=samples)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.checkpoints.append((epoch, str(result.id)))
        self._last_committed = epoch
