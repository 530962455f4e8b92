"""Which ``mlgit.tf.dataset`` versions a training run read: an in-process record.

Every dataset :func:`mlgit.tf.dataset` makes reports each file it starts to read
(once per file per pass over the data: tf.data calls :func:`note_read` from its
own threads) with the :class:`~mlgit.format.meta.DatasetRef` of the version it
came from. A :class:`Reads` that is *listening* collects those refs, in the order
they were first read; :class:`mlgit.tf.CheckpointCallback` listens while its
``fit`` runs (from ``on_train_begin`` to ``on_train_end``), so what a run trained
and validated on is what it read while it ran (docs/tensorflow.md, "Datasets from
mlgit.tf.dataset"). Several listeners may run at once (fits in several threads):
each read goes to every one of them. Thread-safe; nothing here imports TensorFlow.
"""

from __future__ import annotations

import threading
import weakref

from mlgit.format.meta import DatasetRef

__all__ = ["Reads", "note_read"]

_lock = threading.Lock()
_listening: weakref.WeakSet[Reads] = weakref.WeakSet()  # a dropped listener stops


class Reads:
    """The dataset versions read while this object listened, first read first."""

    def __init__(self) -> None:
        self._seen: dict[str, DatasetRef] = {}

    def listen(self) -> None:
        """Start collecting reads (again: what was collected before is kept)."""
        with _lock:
            _listening.add(self)

    def stop(self) -> None:
        """Stop collecting; what was collected stays."""
        with _lock:
            _listening.discard(self)

    def clear(self) -> None:
        """Forget what was collected."""
        with _lock:
            self._seen.clear()

    def refs(self) -> list[DatasetRef]:
        """Each version read (by snapshot id), in the order first read."""
        with _lock:
            return list(self._seen.values())


def note_read(ref: DatasetRef) -> None:
    """Record that a file of dataset version ``ref`` is being read, for every listener."""
    with _lock:
        for r in _listening:
            r._seen.setdefault(str(ref.id), ref)
