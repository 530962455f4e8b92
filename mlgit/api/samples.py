"""A checkpoint's adequacy samples and the outcomes of verifying them, in the notes.

The samples (inputs, and the outputs the model gave at commit time) are a
``samples.npz`` file that :mod:`mlgit.tf.samples` writes and reads (NumPy lives
there); here it is a payload like a training log: stored whole as an object tree
and named by a ``samples`` record on the note of the commit the checkpoint was
made on, in the same append as its ``checkpoint`` record, so it travels with the
notes (push, fetch, fsck, gc: docs/notes.md, "samples"). ``verify`` records go on
the same note. Nothing here imports NumPy or TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api.payloads import store_payload
from mlgit.errors import FormatError, UsageError
from mlgit.format.ids import ObjectID
from mlgit.format.records import RECORD_VERSION, SamplesRecord, decode_note, encode_record
from mlgit.format.samples import ArraySpec
from mlgit.gitlink.notes import append_note_lines, note_records, read_note

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["SAMPLES_FILE", "SamplesPayload", "find_samples", "note_verification",
           "samples_record"]

SAMPLES_FILE = "samples.npz"
"""The payload's file name (and the file's name in an export's ``assets.extra/``)."""


@dataclass(frozen=True)
class SamplesPayload:
    """A written ``samples.npz`` (``path``) and the spec of the arrays it holds."""

    path: Path
    count: int
    inputs: tuple[ArraySpec, ...]
    outputs: tuple[ArraySpec, ...]

    def record_fields(self) -> dict[str, Any]:
        """The ``count``, ``inputs`` and ``outputs`` fields of its ``samples`` record."""
        return {"count": self.count, "inputs": [s.to_json() for s in self.inputs],
                "outputs": [s.to_json() for s in self.outputs]}


def samples_record(repo: Core, samples: SamplesPayload) -> dict[str, Any]:
    """Store the samples file as a payload; its ``samples`` record, without ``checkpoint``.

    Called by ``commit_ckpt`` under the store's writing lock, which adds the
    checkpoint's id and appends the record with the checkpoint's own.
    """
    fields = samples.record_fields()
    # What a reader would refuse is never stored: check the record before the payload.
    encode_record({"type": "samples", "v": RECORD_VERSION, "object": "0" * 32,
                   "name": SAMPLES_FILE, "format": "npz", "checkpoint": "0" * 32, **fields})
    obj, size = store_payload(repo, samples.path)
    return {"type": "samples", "v": RECORD_VERSION, "object": obj, "name": samples.path.name,
            "format": "npz", "size": size, "time": int(time.time()), "author": repo.author(),
            **fields}


def _samples_on(repo: Core, commit: str, oid: ObjectID) -> list[SamplesRecord]:
    """The ``samples`` records of checkpoint ``oid`` on ``commit``'s note (bad lines skipped)."""
    try:
        text = read_note(repo.git, commit) or ""
    except FormatError:
        return []
    records, _ = decode_note(text)
    return [r for r in records if isinstance(r, SamplesRecord) and r.checkpoint == oid]


def find_samples(repo: Core, oid: ObjectID) -> tuple[str, SamplesRecord]:
    """The newest ``samples`` record of checkpoint ``oid`` and the commit whose note holds it.

    Looked for first on the note of the commit the checkpoint was made on
    (``meta.code.commit``), then on every note (a rebase copies notes to new
    commits). Raises :class:`~mlgit.errors.UsageError` when the checkpoint has
    none (it was committed without samples).
    """
    snap = repo.snapshot(oid)
    ck = snap.checkpoint
    if ck is None:
        raise UsageError(f"{oid[:12]} is a {snap.kind}, not a checkpoint")
    found: list[tuple[str, SamplesRecord]] = []
    commit = ck.code.commit if ck.code is not None else None
    if commit is not None:
        found = [(commit, r) for r in _samples_on(repo, commit, oid)]
    if not found:
        found = [(c, r) for c, r in note_records(repo.git)
                 if isinstance(r, SamplesRecord) and r.checkpoint == oid]
    if not found:
        raise UsageError(f"checkpoint {snap.name} {oid[:12]} has no samples to verify; commit "
                         "it with `git ml commit-ckpt --samples FILE` (or "
                         "CheckpointCallback(samples=...))")
    # The newest; of equal times, the one appended last.
    return max(enumerate(found), key=lambda icr: (icr[1][1].time or 0, icr[0]))[1]


def note_verification(repo: Core, commit: str, record: dict[str, Any]) -> str:
    """Append a ``verify`` record (built by ``mlgit.tf.verify``) to ``commit``'s note.

    Returns the line written; FormatError (nothing written) if it is not a valid record.
    """
    line = encode_record({**record, "type": "verify", "v": RECORD_VERSION,
                          "time": int(time.time()), "author": repo.author()})
    append_note_lines(repo.git, commit, [line])
    return line
