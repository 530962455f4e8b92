"""An export's manifest: ``assets.extra/mlgit-export.json`` beside a served SavedModel.

``git ml export`` writes the TensorFlow Serving layout ``DIR/<model>/<version>/``
and, in the ``assets.extra/`` directory TensorFlow Serving ignores, this manifest:
which checkpoint it is (model, run, branch, commit, step: the *version id*), the
code and datasets it came from, the serving signature, the config files and the
samples copied beside it (docs/tensorflow.md, "The manifest"). A deployment
reads it back with ``git ml verify --export``, without a repository, so the
decoder trusts nothing: it checks what verify uses and leaves the rest to be shown.

Pure functions; they raise FormatError (UnsupportedFormatError for a newer
version) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlgit.errors import FormatError, UnsupportedFormatError
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_EXPORT_MANIFEST_LEN
from mlgit.format.meta import obj_at, opt_int, req_id, req_str
from mlgit.format.names import is_ref_name
from mlgit.format.plainjson import loads
from mlgit.format.samples import ArraySpec, decode_specs

__all__ = ["MANIFEST_FILE", "MANIFEST_FORMAT", "MANIFEST_VERSION", "ExportManifest",
           "decode_manifest", "version_id"]

MANIFEST_FILE = "mlgit-export.json"
MANIFEST_FORMAT = "mlgit-export"
MANIFEST_VERSION = 1


def version_id(model: str, branch: str | None, commit: str | None, dirty: bool,
               step: int | None, checkpoint: str) -> str:
    """``MODEL:BRANCH:COMMIT:STEP:CHECKPOINT``, e.g. ``resnet:main:1a2b3c4d5e6f:20:9f8e7d6c5b4a``.

    Commit and checkpoint abbreviated to 12 hex digits; ``+dirty`` after the commit
    when the work tree differed from it; ``-`` for what is unknown (no branch: a
    detached HEAD; no commit yet; no step). git refuses ``:`` in branch names and
    git-ml in model names, so the fields split on ``:`` (the branch may hold ``/``).
    """
    c = "-" if commit is None else commit[:12] + ("+dirty" if dirty else "")
    return ":".join([model, branch or "-", c, "-" if step is None else str(step),
                     checkpoint[:12]])


@dataclass(frozen=True)
class ExportManifest:
    """What ``verify --export`` reads from a manifest (the rest is shown as it is)."""

    version_id: str
    model: str
    version: int
    checkpoint: ObjectID
    samples: tuple[int, tuple[ArraySpec, ...], tuple[ArraySpec, ...]] | None
    raw: dict[str, Any]


def decode_manifest(data: bytes, where: str = MANIFEST_FILE) -> ExportManifest:
    """A manifest's bytes, checked and typed; FormatError naming the field otherwise."""
    if len(data) > MAX_EXPORT_MANIFEST_LEN:
        raise FormatError(f"{where} is {len(data)} bytes, more than {MAX_EXPORT_MANIFEST_LEN}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where} is not UTF-8") from None
    m = obj_at(loads(text, where), where)
    if m.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{where} is not a git-ml export manifest (format is not "
                          f"{MANIFEST_FORMAT!r})")
    v = m.get("v")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise FormatError(f"{where}.v must be a version number")
    if v > MANIFEST_VERSION:
        raise UnsupportedFormatError(f"{where} has version {v}, newer than this git-ml "
                                     f"understands ({MANIFEST_VERSION}); upgrade git-ml")
    model = req_str(m, "model", where)
    if not is_ref_name(model):
        raise FormatError(f"{where}.model is not a model name: {model[:40]!r}")
    version = opt_int(m, "version", where)
    if version is None:
        raise FormatError(f"{where}.version is missing")
    ck = obj_at(m.get("checkpoint"), f"{where}.checkpoint")
    samples = None
    if m.get("samples") is not None:
        s = obj_at(m["samples"], f"{where}.samples")
        samples = decode_specs(s.get("inputs"), s.get("outputs"), s.get("count"),
                               f"{where}.samples")
    return ExportManifest(req_str(m, "version_id", where), model, version,
                          req_id(ck, "id", f"{where}.checkpoint"), samples, m)
