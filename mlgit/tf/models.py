"""The model in a git-ml checkpoint, whatever form it was committed in, for export and verify.

Three forms are models (docs/tensorflow.md, "Export for serving"):

- ``keras``: a Keras archive (``.keras``, ``.h5``), as ``CheckpointCallback`` saves
  it by default;
- ``savedmodel``: a SavedModel directory (``save_format="savedmodel"``, or any
  ``tf.saved_model.save``);
- ``tf-checkpoint``: ``tf.train.Checkpoint`` files (a prefix or a
  ``CheckpointManager`` directory) together with the model's Keras JSON in one of
  the checkpoint's config files: the file itself (``model.to_json()``), or the
  ``model`` key of a ``config.json`` as ``CheckpointCallback`` writes it. The
  weights are restored with ``tf.train.Checkpoint(model=model)`` (the usual
  spelling), else with the model as the checkpoint's root.

Anything else is not a model: :class:`~mlgit.errors.UsageError`, one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.errors import FormatError, UsageError
from mlgit.format.ids import ObjectID, hex_to_raw
from mlgit.format.plainjson import loads
from mlgit.tf._compat import keras, tf
from mlgit.tf.loading import checkpoint_prefix, find_model

if TYPE_CHECKING:
    from mlgit.api.repo import Repo
    from mlgit.format.snapshot import Snapshot

__all__ = ["CheckpointModel", "first_line", "load_path", "open_checkpoint_model",
           "open_path_model"]

_MAX_MODEL_JSON = 16 << 20  # as a config file may be (api.checkpoints.MAX_CONFIG_FILE)
_MAX_MODEL_DEPTH = 128  # a functional model's JSON nests deeper than a record may


@dataclass
class CheckpointModel:
    """A checkpoint's model: its form, the loaded model, and the file or directory it came from.

    ``model`` is a ``keras.Model`` (forms ``keras`` and ``tf-checkpoint``) or what
    ``tf.saved_model.load`` returned (``savedmodel``).
    """

    kind: str
    model: Any
    path: Path


def load_path(path: Path) -> CheckpointModel:
    """The Keras archive or SavedModel in a file or directory (see ``mlgit.tf.find_model``)."""
    kind, where = find_model(path)
    return _load_found(kind, where)


def _found(path: Path) -> tuple[str, Path] | None:
    """What :func:`find_model` finds at ``path``, or None when it finds no model."""
    try:
        return find_model(path)
    except UsageError:
        return None


def _load_found(kind: str, where: Path) -> CheckpointModel:
    try:
        if kind == "keras":
            return CheckpointModel(kind, keras.models.load_model(str(where), compile=False),
                                   where)
        return CheckpointModel(kind, tf.saved_model.load(str(where)), where)
    except Exception as e:  # noqa: BLE001 - Keras and TensorFlow raise anything for a bad file
        raise UsageError(f"{where.name}: cannot load this {kind} model: {type(e).__name__}: "
                         f"{first_line(e)}") from None


def first_line(e: BaseException) -> str:
    """The first line of an error's message, at most 200 characters (TF's run on)."""
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else ""


def _keras_json(obj: Any) -> dict[str, Any] | None:
    """A Keras model description (``{"class_name", "config"}``) in ``obj``, or None.

    ``obj`` itself, or its ``model`` key (``CheckpointCallback``'s ``config.json``).
    """
    for candidate in (obj, obj.get("model") if isinstance(obj, dict) else None):
        if isinstance(candidate, dict) and isinstance(candidate.get("class_name"), str) and (
                isinstance(candidate.get("config"), dict)):
            return candidate
    return None


def _model_json(repo: Repo, snap: Snapshot) -> dict[str, Any] | None:
    """The first config file of the checkpoint that holds a Keras model's JSON."""
    ck = snap.checkpoint
    for ref in ck.config if ck is not None else ():
        if ref.size > _MAX_MODEL_JSON:
            continue
        data = repo.store.objects.get(hex_to_raw(ref.id))
        try:
            found = _keras_json(loads(data.decode("utf-8"), f"config file {ref.name}",
                                      max_depth=_MAX_MODEL_DEPTH))
        except (UnicodeDecodeError, FormatError):
            continue
        if found is not None:
            return found
    return None


def _restore(model: Any, prefix: Path) -> bool:
    """Restore ``model``'s weights from ``prefix``; False when the checkpoint does not hold them.

    ``read`` (not ``restore``): a checkpoint made with ``write`` has no save counter.
    """
    for ckpt in (tf.train.Checkpoint(model=model), tf.train.Checkpoint(root=model)):
        try:
            status = ckpt.read(str(prefix))
        except (ValueError, tf.errors.OpError):
            continue
        status.expect_partial()  # the optimizer's slots and the like are not needed here
        try:
            status.assert_existing_objects_matched()
        except AssertionError:
            continue
        return True
    return False


def _rebuild(description: dict[str, Any] | None, prefix: Path, what: str) -> CheckpointModel:
    """A Keras model built from ``description`` with its weights restored from ``prefix``."""
    if description is None:
        raise UsageError(f"{what} is a TensorFlow checkpoint without the model's description: "
                         "commit it with --config model.json (the model's to_json())")
    try:
        model = keras.models.model_from_json(json.dumps(description))
    except Exception as e:  # noqa: BLE001 - Keras raises anything for a description it cannot build
        raise UsageError(f"{what}: cannot build the model its config describes: "
                         f"{type(e).__name__}: {first_line(e)}") from None
    if not _restore(model, prefix):
        raise UsageError(f"{what}: its TensorFlow checkpoint does not hold this model's weights "
                         "(save it as tf.train.Checkpoint(model=model))")
    return CheckpointModel("tf-checkpoint", model, prefix)


def _prefix_or_not_a_model(path: Path, source_prefix: str | None, what: str) -> Path:
    try:
        return checkpoint_prefix(path, {"source": {"prefix": source_prefix}}
                                 if source_prefix else None)
    except UsageError:
        raise UsageError(f"{what} holds no model: no Keras archive (.keras, .h5), no "
                         "SavedModel (saved_model.pb) and no TensorFlow checkpoint") from None


def _from_tf_checkpoint(repo: Repo, oid: ObjectID, snap: Snapshot, path: Path) -> CheckpointModel:
    what = f"checkpoint {snap.name} {oid[:12]}"
    ck = snap.checkpoint
    prefix = _prefix_or_not_a_model(path, ck.tf_prefix if ck is not None else None, what)
    return _rebuild(_model_json(repo, snap), prefix, what)


def open_path_model(path: Path, config_files: list[Path]) -> CheckpointModel:
    """The model at ``path`` before it is committed (``commit-ckpt --samples``).

    As :func:`open_checkpoint_model`, with the model's JSON for a TensorFlow
    checkpoint taken from the config files about to be committed with it.
    """
    found = _found(path)
    if found is not None:
        return _load_found(*found)
    prefix = _prefix_or_not_a_model(path, None, str(path))
    description = None
    for cf in config_files:
        try:
            if cf.stat().st_size > _MAX_MODEL_JSON:
                continue
            description = _keras_json(loads(cf.read_text(encoding="utf-8"), f"config file "
                                            f"{cf.name}", max_depth=_MAX_MODEL_DEPTH))
        except (OSError, UnicodeDecodeError, FormatError):
            continue
        if description is not None:
            break
    return _rebuild(description, prefix, str(path))


def open_checkpoint_model(repo: Repo, oid: ObjectID) -> CheckpointModel:
    """Load the model of checkpoint ``oid`` from its read-only checkout (see module doc)."""
    snap = repo.snapshot(oid)
    if snap.checkpoint is None:
        raise UsageError(f"{oid[:12]} is a {snap.kind}, not a checkpoint")
    path = repo.checkout(oid)
    found = _found(path) if snap.checkpoint.tf_prefix is None else None
    if found is not None:
        return _load_found(*found)
    return _from_tf_checkpoint(repo, oid, snap, path)
