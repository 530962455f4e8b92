"""Get models and variables back from git-ml checkpoints, without the code that made them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mlgit.api.repo import Repo
from mlgit.errors import UsageError
from mlgit.tf._compat import keras, tf

__all__ = ["SavedModelPredictor", "checkpoint_prefix", "find_model", "load", "restore"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_CKPT_NUMBER = re.compile(r"(\d+)$")

RepoPath = str | os.PathLike[str] | None


def _checkout(rev: str, repo: RepoPath) -> tuple[Path, dict[str, Any]]:
    """The read-only checkout of checkpoint ``rev`` and its snapshot metadata."""
    with Repo(repo) as r:
        oid = r.resolve(rev)
        meta = dict(r.snapshot(oid).meta)
        return r.checkout(oid), meta


def _shallowest(paths: list[Path], root: Path) -> list[Path]:
    return sorted(paths, key=lambda p: (len(p.relative_to(root).parts), str(p)))


def find_model(path: Path) -> tuple[str, Path]:
    """What model ``path`` holds: ``("keras", archive)`` or ``("savedmodel", directory)``.

    A file ending in ``.keras``/``.h5``/``.hdf5`` is a Keras archive. In a directory,
    a SavedModel at its root wins, then the shallowest Keras archive, then the
    shallowest SavedModel below it. Anything else raises
    :class:`~mlgit.errors.UsageError`.
    """
    if path.is_file():
        if path.suffix in KERAS_SUFFIXES:
            return "keras", path
        raise UsageError(f"{path.name}: not a Keras model archive (.keras, .h5) or a SavedModel")
    if (path / "saved_model.pb").is_file():
        return "savedmodel", path
    archives = [p for p in path.rglob("*") if p.suffix in KERAS_SUFFIXES and p.is_file()]
    if archives:
        return "keras", _shallowest(archives, path)[0]
    saved = [p.parent for p in path.rglob("saved_model.pb") if p.is_file()]
    if saved:
        return "savedmodel", _shallowest(saved, path)[0]
    raise UsageError(f"{path}: the checkpoint holds no Keras model (.keras, .h5) and no "
                     "SavedModel (saved_model.pb); for tf.train.Checkpoint files use "
                     "mlgit.tf.restore")


class SavedModelPredictor:
    """A SavedModel loaded with ``tf.saved_model.load``, callable like a Keras model.

    ``self(x)`` runs the model's serving function on ``x`` and returns a tensor
    (or a dict of tensors when the function has several outputs); ``predict(x)``
    does the same and returns NumPy arrays. The function used is, in order: the
    ``serve`` endpoint that ``keras.Model.export`` writes, the object's own
    ``__call__``, or the ``serving_default`` signature (or the only signature),
    whose single input takes ``x`` positionally (several inputs: pass keywords).
    ``loaded`` is the object ``tf.saved_model.load`` returned, ``path`` the
    directory it was loaded from, ``endpoint`` the name of the function used.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded: Any = tf.saved_model.load(str(path))
        self._signature: Any = None
        self._signature_inputs: list[str] = []
        if hasattr(self.loaded, "serve"):
            self.endpoint = "serve"
            self._fn: Any = self.loaded.serve
        elif callable(self.loaded):
            self.endpoint = "__call__"
            self._fn = self.loaded
        else:
            sigs = dict(self.loaded.signatures)
            name = "serving_default" if "serving_default" in sigs else (
                next(iter(sigs)) if len(sigs) == 1 else None)
            if name is None:
                raise UsageError(f"{path}: SavedModel has no serve endpoint, is not callable, "
                                 f"and has no single signature to call (has: {sorted(sigs)})")
            self.endpoint = name
            self._fn = sigs[name]
            self._signature_inputs = sorted(self._fn.structured_input_signature[1])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the serving function; a single output is returned bare, several as a dict."""
        if self._signature_inputs and args:
            if len(args) != 1 or len(self._signature_inputs) != 1:
                raise UsageError(f"signature {self.endpoint} takes keyword inputs "
                                 f"{self._signature_inputs}")
            kwargs = {self._signature_inputs[0]: args[0], **kwargs}
            args = ()
        if self._signature_inputs:
            kwargs = {k: tf.convert_to_tensor(v) for k, v in kwargs.items()}
        else:
            args = tuple(tf.convert_to_tensor(a) if not isinstance(a, dict) else a
                         for a in args)
        out = self._fn(*args, **kwargs)
        if isinstance(out, dict) and len(out) == 1:
            return next(iter(out.values()))
        return out

    def predict(self, x: Any, **kwargs: Any) -> Any:
        """``self(x)`` as NumPy (a dict of arrays for several outputs); Keras options ignored."""
        out = self(x)
        if isinstance(out, dict):
            return {k: v.numpy() for k, v in out.items()}
        return out.numpy()


def load(rev: str, repo: RepoPath = None, *, compile: bool = True) -> Any:
    """Load the model in checkpoint ``rev`` (an id, a run name for its newest, ``run~N``...).

    Returns a ``keras.Model`` (from ``keras.models.load_model``, ``compile`` passed
    on) when the checkpoint holds a Keras archive (``.keras``, ``.h5``), or a
    :class:`SavedModelPredictor` when it holds a SavedModel (see :func:`find_model`
    for which wins). Raises :class:`~mlgit.errors.UsageError` when it holds
    neither. The model is read from git-ml's read-only checkout of ``rev``.
    """
    path, _ = _checkout(rev, repo)
    kind, where = find_model(path)
    if kind == "keras":
        return keras.models.load_model(str(where), compile=compile)
    return SavedModelPredictor(where)


def _checkpoint_number(p: Path) -> tuple[int, str]:
    m = _CKPT_NUMBER.search(p.name)
    return (int(m.group(1)) if m else -1, p.name)


def _state_file_prefix(d: Path) -> Path | None:
    """The prefix the ``checkpoint`` state file in ``d`` names, if its files are in ``d``."""
    state = d / "checkpoint"
    if not state.is_file():
        return None
    try:
        text = state.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    if not m:
        return None
    # The state file may hold the absolute path the checkpoint was written at.
    name = m.group(1).replace("\\\\", "\\").replace('\\"', '"').rstrip("/").split("/")[-1]
    candidate = d / name
    return candidate if Path(f"{candidate}.index").is_file() else None


def checkpoint_prefix(path: Path, meta: dict[str, Any] | None = None) -> Path:
    """The TensorFlow checkpoint prefix (``.../ckpt-3``) inside a checked-out checkpoint.

    ``path`` is what a checkout returned; ``meta`` the snapshot's metadata, whose
    ``source.prefix`` names the prefix of a checkpoint committed as a prefix. For a
    directory: the prefix its ``checkpoint`` state file names (as
    ``tf.train.CheckpointManager`` writes it), else the ``*.index`` file with the
    highest trailing number, searched at the top level first and then below.
    Raises :class:`~mlgit.errors.UsageError` when there is no checkpoint there.
    """
    source = (meta or {}).get("source")
    if isinstance(source, dict) and isinstance(source.get("prefix"), str):
        for candidate in (path / source["prefix"], path):
            if Path(f"{candidate}.index").is_file():
                return candidate
    if Path(f"{path}.index").is_file():
        return path
    if path.is_file():
        if path.name.endswith(".index"):
            return path.with_name(path.name.removesuffix(".index"))
        raise UsageError(f"{path.name}: not a TensorFlow checkpoint (no .index file)")
    if path.is_dir():
        found = _state_file_prefix(path)
        if found is not None:
            return found
        top = [p for p in path.glob("*.index") if p.is_file()]
        indexes = top or [p for p in path.rglob("*.index") if p.is_file()]
        if indexes:
            if not top:
                indexes = _shallowest(indexes, path)
                depth = len(indexes[0].relative_to(path).parts)
                indexes = [p for p in indexes if len(p.relative_to(path).parts) == depth]
            best = max((p.with_name(p.name.removesuffix(".index")) for p in indexes),
                       key=_checkpoint_number)
            sub = _state_file_prefix(best.parent)
            return sub if sub is not None else best
    raise UsageError(f"{path}: no TensorFlow checkpoint (*.index) in this checkpoint")


def restore(rev: str, checkpoint: Any, repo: RepoPath = None) -> Any:
    """Restore ``checkpoint`` (a ``tf.train.Checkpoint``) from git-ml checkpoint ``rev``.

    Checks ``rev`` out (read-only), finds the prefix with :func:`checkpoint_prefix`
    and returns what ``checkpoint.restore(prefix)`` returns: a load status, on which
    ``assert_consumed()``/``expect_partial()`` work as usual. Restoring only reads,
    so the read-only checkout is fine.
    """
    path, meta = _checkout(rev, repo)
    return checkpoint.restore(str(checkpoint_prefix(path, meta)))
