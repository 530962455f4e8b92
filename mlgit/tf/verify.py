"""Adequacy tests: a model must give the outputs recorded with its checkpoint's samples.

``git ml verify REV`` reloads checkpoint REV's model, runs the samples recorded
with it (``commit-ckpt --samples``, ``CheckpointCallback(samples=)``) and compares
the outputs with the recorded ones within ``atol``/``rtol`` (``numpy.isclose``'s
rule and defaults); the outcome is noted as a ``verify`` record on the note that
holds the samples. ``git ml verify --export DIR`` does the same for an export
(``git ml export``) from the files in it alone, with no repository: the model as
TensorFlow Serving would load it (the ``serving_default`` signature), the samples
and the manifest from its ``assets.extra/``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api.samples import SAMPLES_FILE, find_samples, note_verification
from mlgit.errors import FormatError, UsageError, VerificationError
from mlgit.format.export import MANIFEST_FILE, ExportManifest, decode_manifest
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_EXPORT_MANIFEST_LEN
from mlgit.store.fsutil import read_bounded
from mlgit.tf._compat import tf
from mlgit.tf.models import first_line, open_checkpoint_model
from mlgit.tf.samples import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    Comparison,
    Runner,
    Samples,
    compare,
    fit_inputs,
    read_samples,
)

if TYPE_CHECKING:
    from mlgit.api.repo import Repo

__all__ = ["EXTRA_DIR", "Verification", "find_version_dir", "read_manifest", "run_samples",
           "verify_checkpoint", "verify_export"]

EXTRA_DIR = "assets.extra"
"""The directory of a SavedModel that TensorFlow Serving ignores, where an export's extras go."""

_VERSION = re.compile(r"[0-9]{1,18}")


@dataclass
class Verification:
    """The outcome of one adequacy test (``git ml verify``).

    ``target`` is ``checkpoint`` or ``export``; ``name`` the run (checkpoint) or
    model (export); ``path`` the export's version directory; ``noted_on`` the
    commit whose note got the ``verify`` record (None: not recorded).
    """

    target: str
    name: str
    checkpoint: ObjectID
    version_id: str | None
    path: Path | None
    comparison: Comparison
    noted_on: str | None = None

    @property
    def passed(self) -> bool:
        """True when every sample gave its recorded outputs within the tolerance."""
        return self.comparison.passed

    def summary(self) -> str:
        """One line: how many samples differ, beyond which tolerance."""
        c = self.comparison
        tol = f"atol={c.atol:g}, rtol={c.rtol:g}"
        if c.passed:
            return f"all {c.count} samples match within {tol}"
        what = f"{c.mismatched} of {c.count} samples differ beyond {tol}"
        return what + (f" ({c.problems[0]})" if c.problems else "")

    def check(self) -> Verification:
        """``self`` if it passed; :class:`~mlgit.errors.VerificationError` otherwise."""
        if not self.passed:
            who = self.version_id or f"{self.name} {self.checkpoint[:12]}"
            raise VerificationError(f"verification of {who} failed: {self.summary()}")
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml verify --json`` prints it (docs/cli.md)."""
        c = self.comparison
        return {"target": self.target, "name": self.name, "checkpoint": self.checkpoint,
                "version_id": self.version_id,
                "path": None if self.path is None else str(self.path),
                "passed": self.passed, "count": c.count, "mismatched": c.mismatched,
                "atol": c.atol, "rtol": c.rtol, "max_error": c.max_error,
                "worst": [m.to_json() for m in c.worst], "problems": list(c.problems),
                "noted_on": self.noted_on}


def _check_tolerance(atol: float, rtol: float) -> None:
    for name, v in (("atol", atol), ("rtol", rtol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
            raise UsageError(f"{name} must be a finite number >= 0, got {v!r}")


def run_samples(model: Any, samples: Samples, *, atol: float = DEFAULT_ATOL,
                rtol: float = DEFAULT_RTOL, show: int = 10, what: str = "the model"
                ) -> Comparison:
    """Run ``samples``' inputs through ``model`` and compare with its recorded outputs.

    A model that cannot run them at all (another input shape, an op that fails)
    fails the test: :class:`~mlgit.errors.VerificationError`.
    """
    runner = Runner(model)
    try:
        inputs = fit_inputs(runner, samples.inputs, "samples")
    except UsageError as e:
        raise VerificationError(f"{what} does not take the recorded samples: {e}") from None
    got = runner.outputs(inputs, VerificationError, f"{what} cannot run the recorded samples")
    return compare(samples.outputs, got, samples.count, atol, rtol, show)


def verify_checkpoint(repo: Repo, rev: str, *, atol: float = DEFAULT_ATOL,
                      rtol: float = DEFAULT_RTOL, show: int = 10, record: bool = True
                      ) -> Verification:
    """Verify checkpoint ``rev`` against its samples; note the outcome unless ``record`` is False.

    The ``verify`` record goes on the note holding the samples record (the commit
    the checkpoint was made on). Returns the outcome whether it passed or not
    (:meth:`Verification.check` raises for a failure).
    """
    _check_tolerance(atol, rtol)
    oid = repo.resolve(rev)
    commit, rec = find_samples(repo, oid)
    samples = read_samples(repo.checkout(rec.object), (rec.count, rec.inputs, rec.outputs))
    cm = open_checkpoint_model(repo, oid)
    snap = repo.snapshot(oid)
    comparison = run_samples(cm.model, samples, atol=atol, rtol=rtol, show=show,
                             what=f"checkpoint {snap.name} {oid[:12]}")
    result = Verification("checkpoint", snap.name, oid, None, None, comparison)
    if record:
        note_verification(repo, commit, {
            "checkpoint": oid, "samples": rec.object, "run": snap.name,
            "passed": comparison.passed, "count": comparison.count,
            "mismatched": comparison.mismatched, "atol": float(atol), "rtol": float(rtol),
            "max_error": comparison.max_error,
            "worst": [m.to_json() for m in comparison.worst[:10]],
            "tensorflow": str(tf.__version__)})
        result.noted_on = commit
    return result


def find_version_dir(directory: Path) -> Path:
    """The SavedModel to verify: ``directory`` itself, or its highest numeric version.

    ``directory`` is a version directory (it holds ``saved_model.pb``) or a model's
    base directory (``DIR/<model>``, whose highest version TensorFlow Serving serves).
    """
    if (directory / "saved_model.pb").is_file():
        return directory
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise UsageError(f"{directory}: no such directory") from None
    except NotADirectoryError:
        raise UsageError(f"{directory}: not a directory") from None
    versions = sorted((int(n), n) for n in names
                      if _VERSION.fullmatch(n) and (directory / n / "saved_model.pb").is_file())
    if not versions:
        raise UsageError(f"{directory}: no SavedModel here (saved_model.pb) and no numeric "
                         "version directory holding one")
    return directory / versions[-1][1]


def read_manifest(version_dir: Path) -> ExportManifest:
    """The manifest of an export's version directory; UsageError if it has none."""
    path = version_dir / EXTRA_DIR / MANIFEST_FILE
    try:
        data = read_bounded(path, MAX_EXPORT_MANIFEST_LEN, what=f"{EXTRA_DIR}/{MANIFEST_FILE}")
    except FileNotFoundError:
        raise UsageError(f"{version_dir}: not made by `git ml export` (no {EXTRA_DIR}/"
                         f"{MANIFEST_FILE})") from None
    return decode_manifest(data, f"{EXTRA_DIR}/{MANIFEST_FILE}")


def verify_export(directory: str | os.PathLike[str], *, atol: float = DEFAULT_ATOL,
                  rtol: float = DEFAULT_RTOL, show: int = 10) -> Verification:
    """Verify an export (``git ml export``) with the samples it carries; no repository needed.

    ``directory`` is the version directory or the model's directory (its highest
    version). The SavedModel is loaded with ``tf.saved_model.load`` and called
    through its ``serving_default`` signature, as TensorFlow Serving calls it.
    """
    _check_tolerance(atol, rtol)
    vdir = find_version_dir(Path(os.path.abspath(directory)))
    manifest = read_manifest(vdir)
    if manifest.samples is None:
        raise UsageError(f"{vdir}: exported without samples (its checkpoint has none): "
                         "nothing to verify")
    samples = read_samples(vdir / EXTRA_DIR / SAMPLES_FILE, manifest.samples)
    try:
        loaded = tf.saved_model.load(str(vdir))
    except Exception as e:  # noqa: BLE001 - TensorFlow raises anything for a damaged model
        raise FormatError(f"{vdir}: the SavedModel does not load: {type(e).__name__}: "
                          f"{first_line(e)}") from None
    comparison = run_samples(loaded, samples, atol=atol, rtol=rtol, show=show,
                             what=f"export {manifest.version_id}")
    return Verification("export", manifest.model, manifest.checkpoint, manifest.version_id,
                        vdir, comparison)
