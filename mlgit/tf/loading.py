"""Get models and variables back from git-ml checkpoints, without the code that made them."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlgit.api.repo import Repo
from mlgit.errors import FormatError, UsageError
from mlgit.format.limits import MAX_TF_STATE_LEN
from mlgit.format.paths import check_component
from mlgit.store.fsutil import read_bounded
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


def _lmode(p: Path) -> int:
    """``p``'s mode without following a link (0 if it does not exist)."""
    try:
        return os.lstat(p).st_mode
    except OSError:
        return 0


def _is_regular(p: Path) -> bool:
    """True if ``p`` is a regular file itself (not a link to one)."""
    return stat.S_ISREG(_lmode(p))


def _entries(root: Path) -> Iterator[tuple[Path, int, bool]]:
    """Regular files and symlinks below directory ``root`` as (path, depth, is_link).

    Depth 1 is directly in ``root``. Directories are entered without following
    links, with an explicit stack (any depth); other kinds of files are ignored.
    """
    stack = [(root, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            with os.scandir(d) as it:
                found = list(it)
        except OSError:
            continue
        for e in sorted(found, key=lambda e: e.name):
            if e.is_symlink():
                yield Path(e.path), depth + 1, True
            elif e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), depth + 1))
            elif e.is_file(follow_symlinks=False):
                yield Path(e.path), depth + 1, False


def _no_links(d: Path) -> Path:
    """``d`` if nothing below it is a symlink; FormatError otherwise (a model never needs one)."""
    for p, _, link in _entries(d):
        if link:
            raise FormatError(f"{p.relative_to(d)} in the model at {d.name} is a symbolic link; "
                              "git-ml does not load through links out of a checkpoint")
    return d


def find_model(path: Path) -> tuple[str, Path]:
    """What model ``path`` holds: ``("keras", archive)`` or ``("savedmodel", directory)``.

    A file ending in ``.keras``/``.h5``/``.hdf5`` is a Keras archive. In a directory,
    a SavedModel at its root wins, then the shallowest Keras archive, then the
    shallowest SavedModel below it. Symlinks are never followed: a link where the
    model should be, or inside a SavedModel, is a FormatError; links elsewhere are
    not candidates. Anything else raises :class:`~mlgit.errors.UsageError`.
    """
    mode = _lmode(path)
    if stat.S_ISLNK(mode):
        raise FormatError(f"{path.name} is a symbolic link; git-ml does not load through "
                          "links out of a checkpoint")
    if stat.S_ISREG(mode):
        if path.suffix in KERAS_SUFFIXES:
            return "keras", path
        raise UsageError(f"{path.name}: not a Keras model archive (.keras, .h5) or a SavedModel")
    if _is_regular(path / "saved_model.pb"):
        return "savedmodel", _no_links(path)
    files = [(depth, str(p), p) for p, depth, link in _entries(path) if not link]
    archives = [f for f in files if f[2].suffix in KERAS_SUFFIXES]
    if archives:
        return "keras", min(archives)[2]
    saved = [(depth, str(p.parent), p.parent) for depth, _, p in files
             if p.name == "saved_model.pb"]
    if saved:
        return "savedmodel", _no_links(min(saved)[2])
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

    def predict(self, x: Any, **_kwargs: Any) -> Any:
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


def _is_prefix(candidate: Path) -> bool:
    """True if ``<candidate>.index`` is a regular file (not a link to one)."""
    return _is_regular(Path(f"{candidate}.index"))


def _state_file_prefix(d: Path) -> Path | None:
    """The prefix the ``checkpoint`` state file in ``d`` names, if its files are in ``d``.

    The state file is stored data: it is read only if it is a regular file of at
    most ``MAX_TF_STATE_LEN`` bytes, and the name it gives must be one valid path
    component (FormatError otherwise), so the result is always inside ``d``.
    """
    state = d / "checkpoint"
    mode = _lmode(state)
    if not mode or stat.S_ISDIR(mode):
        return None
    try:
        data = read_bounded(state, MAX_TF_STATE_LEN, what=f"checkpoint state file {state}")
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    if not m:
        return None
    # The state file may hold the absolute path the checkpoint was written at.
    name = m.group(1).replace("\\\\", "\\").replace('\\"', '"').rstrip("/").split("/")[-1]
    check_component(name, f"checkpoint state file {state}: model_checkpoint_path")
    candidate = d / name
    return candidate if _is_prefix(candidate) else None


def checkpoint_prefix(path: Path, meta: dict[str, Any] | None = None) -> Path:
    """The TensorFlow checkpoint prefix (``.../ckpt-3``) inside a checked-out checkpoint.

    ``path`` is what a checkout returned; ``meta`` the snapshot's metadata, whose
    ``source.prefix`` names the prefix of a checkpoint committed as a prefix (it
    must be one valid path component, else FormatError). For a directory: the
    prefix its ``checkpoint`` state file names (as ``tf.train.CheckpointManager``
    writes it), else the ``*.index`` file with the highest trailing number,
    searched at the top level first and then below. Symlinks are never followed:
    an ``.index`` that is a link does not count. The result is always ``path``
    or a path inside it. Raises :class:`~mlgit.errors.UsageError` when there is
    no checkpoint there.
    """
    source = (meta or {}).get("source")
    if isinstance(source, dict) and "prefix" in source:
        prefix = source["prefix"]
        if not isinstance(prefix, str):
            raise FormatError("checkpoint meta.source.prefix is not a string")
        check_component(prefix, "checkpoint meta.source.prefix")
        for candidate in (path / prefix, path):
            if _is_prefix(candidate):
                return candidate
    if _is_prefix(path):
        return path
    mode = _lmode(path)
    if stat.S_ISLNK(mode):
        raise FormatError(f"{path.name} is a symbolic link; git-ml does not follow links out "
                          "of a checkpoint")
    if stat.S_ISREG(mode):
        if path.name.endswith(".index"):
            return path.with_name(path.name.removesuffix(".index"))
        raise UsageError(f"{path.name}: not a TensorFlow checkpoint (no .index file)")
    if stat.S_ISDIR(mode):
        found = _state_file_prefix(path)
        if found is not None:
            return found
        every = [(p, depth) for p, depth, link in _entries(path)
                 if not link and p.name.endswith(".index")]
        top = [p for p, depth in every if depth == 1]
        if not top and every:
            depth = min(d for _, d in every)
            top = [p for p, d in every if d == depth]
        if top:
            best = max((p.with_name(p.name.removesuffix(".index")) for p in top),
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
