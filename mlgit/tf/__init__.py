"""TensorFlow and Keras integration: commit models as checkpoints, load and restore them.

Importing this package imports TensorFlow (and raises an ``ImportError`` that says
``pip install 'mlgit[tensorflow]'`` when it is missing); nothing else in git-ml
imports it. ::

    from mlgit.tf import CheckpointCallback, load, restore
    model.fit(x, y, epochs=10, callbacks=[CheckpointCallback("resnet-a", every_epochs=2)])
    model = load("resnet-a")               # newest checkpoint of the run, as a keras.Model
    status = restore("tf-run", tf.train.Checkpoint(model=m, optimizer=opt))

- :class:`CheckpointCallback`: a Keras callback committing the model every N epochs.
- :func:`load`: a checkpoint's model, from a ``.keras`` archive or a SavedModel.
- :func:`restore`: ``tf.train.Checkpoint.restore`` from a committed checkpoint.
- :func:`dataset`: a dataset version's files (or their records) as a ``tf.data.Dataset``,
  read from a local copy or streamed through ``mlgit://``; a ``CheckpointCallback``
  records the versions its fit read.
"""

from __future__ import annotations

from mlgit.tf.callback import SAVE_FORMATS, CheckpointCallback, numeric_logs
from mlgit.tf.data import DatasetInfo, dataset
from mlgit.tf.loading import SavedModelPredictor, checkpoint_prefix, find_model, load, restore

__all__ = ["SAVE_FORMATS", "CheckpointCallback", "DatasetInfo", "SavedModelPredictor",
           "checkpoint_prefix", "dataset", "find_model", "load", "numeric_logs", "restore"]
