"""``git ml export``: a checkpoint as TensorFlow Serving loads it, traceable to its commit.

The layout is TensorFlow Serving's: ``DIR/<model>/<version>/`` holding
``saved_model.pb`` and ``variables/``. A Keras model (an archive, or a
TensorFlow checkpoint with its model's JSON) is converted to a SavedModel
(``model.export``); a SavedModel is copied as it is. Beside it, in
``assets.extra/`` (which TensorFlow Serving ignores): the manifest
``mlgit-export.json`` (version id, checkpoint, code, datasets, signature, config,
samples: docs/tensorflow.md), the checkpoint's config files under ``config/``,
and its samples as ``samples.npz`` and as TensorFlow Serving's REST request and
expected response (``predict_request.json``, ``predict_response.json``).

The version is ``--version N``, or else the next integer above the highest
numeric version already in ``DIR/<model>`` (1 for the first): TensorFlow Serving
serves the highest, so a new export becomes the served one. An existing version
is never replaced. Everything is written in a hidden temporary directory beside
the versions, made durable, verified (the exported model must give the recorded
outputs for the samples) and only then renamed into place: a server watching
``DIR/<model>`` never sees half a version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlgit import __version__
from mlgit.api.samples import SAMPLES_FILE, find_samples
from mlgit.errors import BadPathError, UsageError
from mlgit.format.export import MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, version_id
from mlgit.format.ids import ObjectID, hex_to_raw
from mlgit.format.names import is_ref_name
from mlgit.format.paths import check_component
from mlgit.format.snapshot import Snapshot
from mlgit.store.fsutil import force_remove, fsync_tree, move_dir_into_place, unique_tmp_name
from mlgit.tf._compat import keras, tf
from mlgit.tf.models import CheckpointModel, first_line, open_checkpoint_model
from mlgit.tf.samples import DEFAULT_ATOL, DEFAULT_RTOL, Samples, read_samples
from mlgit.tf.verify import EXTRA_DIR, Verification, run_samples

if TYPE_CHECKING:
    from mlgit.api.repo import Repo
    from mlgit.format.records import SamplesRecord

__all__ = ["REQUEST_FILE", "RESPONSE_FILE", "ExportResult", "export", "next_version"]

_VERSION = re.compile(r"[0-9]{1,18}")
_MAX_VERSION = (1 << 63) - 1  # TensorFlow Serving's versions are int64
_RACE_TRIES = 20


@dataclass
class ExportResult:
    """An export: where it went, which version, what it was made from, how it checked out."""

    path: Path
    model: str
    version: int
    version_id: str
    checkpoint: ObjectID
    source: str
    signature: dict[str, Any] | None
    samples: int
    verification: Verification | None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml export --json`` prints it (docs/cli.md)."""
        v = self.verification
        return {"path": str(self.path), "model": self.model, "version": self.version,
                "version_id": self.version_id, "checkpoint": self.checkpoint,
                "source": self.source, "signature": self.signature, "samples": self.samples,
                "verified": None if v is None else v.passed,
                "max_error": None if v is None else v.comparison.max_error}


def next_version(base: Path) -> int:
    """One more than the highest numeric directory name in ``base`` (1 when there is none)."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return 1
    return max((int(n) for n in names if _VERSION.fullmatch(n)), default=0) + 1


def _spec_json(spec: Any) -> dict[str, Any]:
    dims = None if spec.shape.rank is None else list(spec.shape.as_list())
    return {"dtype": spec.dtype.name, "shape": dims}


def _signature(path: Path) -> tuple[Any, dict[str, Any] | None]:
    """The SavedModel at ``path`` loaded, and its ``serving_default`` signature described."""
    loaded = tf.saved_model.load(str(path))
    sig = dict(loaded.signatures).get("serving_default")
    if sig is None:
        return loaded, None
    inputs = sig.structured_input_signature[1]
    outputs = sig.structured_outputs
    return loaded, {
        "name": "serving_default",
        "inputs": [{"name": k, **_spec_json(v)} for k, v in sorted(inputs.items())],
        "outputs": [{"name": k, **_spec_json(v)} for k, v in sorted(outputs.items())]
        if isinstance(outputs, dict) else [],
    }


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy directory ``src`` to new ``dest``: files' content only, writable, no symlinks."""
    stack = [(src, dest)]
    while stack:
        s, d = stack.pop()
        d.mkdir()
        with os.scandir(s) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.is_dir(follow_symlinks=False):
                    stack.append((Path(e.path), d / e.name))
                elif e.is_file(follow_symlinks=False):
                    shutil.copyfile(e.path, d / e.name, follow_symlinks=False)


def _save_model(cm: CheckpointModel, dest: Path) -> None:
    """Write ``cm`` as a SavedModel at the new directory ``dest``."""
    if cm.kind == "savedmodel":
        _copy_tree(cm.path, dest)
        return
    try:
        if hasattr(cm.model, "export"):
            cm.model.export(str(dest), format="tf_saved_model", verbose=False)
        else:  # tf_keras (TF_USE_LEGACY_KERAS)
            tf.saved_model.save(cm.model, str(dest))
    except Exception as e:  # noqa: BLE001 - Keras raises anything for a model it cannot trace
        raise UsageError(f"cannot convert the model to a SavedModel: {type(e).__name__}: "
                         f"{first_line(e)}") from None


def _extras(repo: Repo, snap: Snapshot, extra: Path, samples: Path | None
            ) -> list[dict[str, Any]]:
    """Fill ``assets.extra/``: config files and samples; the manifest's ``config`` list."""
    extra.mkdir(exist_ok=True)
    config = []
    ck = snap.checkpoint
    refs = ck.config if ck is not None else ()
    if refs:
        (extra / "config").mkdir()
    for ref in refs:
        check_component(ref.name, f"checkpoint {snap.name}: config file name")
        data = repo.store.objects.get(hex_to_raw(ref.id))
        (extra / "config" / ref.name).write_bytes(data)
        config.append({"name": ref.name, "id": ref.id, "size": ref.size,
                       "file": f"config/{ref.name}"})
    if samples is not None:
        shutil.copyfile(samples, extra / SAMPLES_FILE)
    return config


REQUEST_FILE = "predict_request.json"
RESPONSE_FILE = "predict_response.json"
_MAX_REST_JSON = 16 << 20


def _rest_names(arrays: dict[str, Any], names: list[str]) -> dict[str, Any] | None:
    """``arrays`` keyed by the signature's ``names`` (one and one match whatever the name)."""
    if len(arrays) == 1 and len(names) == 1:
        return {names[0]: next(iter(arrays.values()))}
    return dict(arrays) if set(arrays) == set(names) else None


def _rest_files(samples: Samples, signature: dict[str, Any] | None, extra: Path
                ) -> dict[str, str] | None:
    """Write the samples as TensorFlow Serving's REST predict request and expected response.

    The request is the body of ``POST /v1/models/<model>:predict`` in the columnar
    format (``{"signature_name", "inputs": {name: values}}``); the response what
    the server answers (``{"outputs": values}`` for one output, else by name). Not
    written (None) when the names do not map onto the signature, a value is not a
    finite number, or the JSON would pass 16 MiB.
    """
    if signature is None:
        return None
    ins = _rest_names(samples.inputs, [s["name"] for s in signature["inputs"]])
    outs = _rest_names(samples.outputs, [s["name"] for s in signature["outputs"]])
    if ins is None or outs is None:
        return None
    if any(a.dtype.kind == "f" and not np.isfinite(a).all()
           for a in (*ins.values(), *outs.values())):
        return None
    request = {"signature_name": signature["name"],
               "inputs": {k: a.tolist() for k, a in ins.items()}}
    response = {"outputs": next(iter(outs.values())).tolist() if len(outs) == 1
                else {k: a.tolist() for k, a in outs.items()}}
    texts = [json.dumps(request, allow_nan=False), json.dumps(response, allow_nan=False)]
    if sum(len(t) for t in texts) > _MAX_REST_JSON:
        return None
    for name, text in zip((REQUEST_FILE, RESPONSE_FILE), texts, strict=True):
        (extra / name).write_text(text + "\n", encoding="utf-8")
    return {"request": REQUEST_FILE, "response": RESPONSE_FILE}


def _manifest(repo: Repo, oid: ObjectID, snap: Snapshot, model: str, vid: str, source: str,
              signature: dict[str, Any] | None, config: list[dict[str, Any]],
              rec: SamplesRecord | None, rest: dict[str, str] | None) -> dict[str, Any]:
    ck = snap.checkpoint
    assert ck is not None  # checked by the caller
    code = ck.code.to_json() if ck.code is not None else None
    return {
        "format": MANIFEST_FORMAT, "v": MANIFEST_VERSION, "version_id": vid, "model": model,
        "version": 0,  # filled in when the version is known
        "checkpoint": {"id": oid, "run": snap.name, "step": ck.step, "metrics": ck.metrics,
                       "time": snap.time, "author": snap.author,
                       "message": snap.message.splitlines()[0] if snap.message else "",
                       "parents": list(snap.parents)},
        "code": code, "datasets": [d.to_json() for d in ck.datasets],
        "source": source, "signature": signature, "config": config,
        "samples": None if rec is None else {
            "file": SAMPLES_FILE, "object": rec.object, "count": rec.count,
            "inputs": [s.to_json() for s in rec.inputs],
            "outputs": [s.to_json() for s in rec.outputs],
            "request": None if rest is None else rest["request"],
            "response": None if rest is None else rest["response"]},
        "exported": {"time": int(time.time()), "by": repo.author(), "git_ml": __version__,
                     "tensorflow": str(tf.__version__),
                     "keras": str(getattr(keras, "__version__", ""))},
    }


def _place(tmp: Path, base: Path, version: int | None, manifest: dict[str, Any]) -> int:
    """Write the manifest, make ``tmp`` durable and rename it to its version; the version."""
    for _ in range(_RACE_TRIES):
        v = version if version is not None else next_version(base)
        if v > _MAX_VERSION:
            raise UsageError(f"{base}: no version number left above {v - 1}")
        manifest["version"] = v
        (tmp / EXTRA_DIR / MANIFEST_FILE).write_text(
            json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n",
            encoding="utf-8")
        fsync_tree(tmp)
        target = base / str(v)
        if not target.exists() and move_dir_into_place(tmp, target):
            return v
        if version is not None:
            raise BadPathError(f"{target} already exists; a served version is never replaced: "
                               "choose another --version")
    raise BadPathError(f"{base}: other exports kept taking the next version; run it again")


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    out = []
    while not os.path.lexists(path) and path.parent != path:
        out.append(path)
        path = path.parent
    return out


def _samples_of(repo: Repo, oid: ObjectID) -> tuple[SamplesRecord | None, Path | None,
                                                      Samples | None]:
    try:
        _, rec = find_samples(repo, oid)
    except UsageError:
        return None, None, None
    path = repo.checkout(rec.object)
    return rec, path, read_samples(path, (rec.count, rec.inputs, rec.outputs))


def export(repo: Repo, rev: str, directory: str | os.PathLike[str], *,
           model: str | None = None, version: int | None = None, check: bool = True,
           atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> ExportResult:
    """Export checkpoint ``rev`` to ``directory/<model>/<version>/`` for TensorFlow Serving.

    ``model`` defaults to the checkpoint's run; ``version`` to the next free
    number (see the module's doc). With ``check`` (the default) and samples, the
    exported SavedModel must give the recorded outputs within ``atol``/``rtol``,
    else :class:`~mlgit.errors.VerificationError` and nothing is placed. Bad
    input (not a checkpoint, not a model, an existing version) raises before
    anything is written.
    """
    oid = repo.resolve(rev)
    snap = repo.snapshot(oid)
    ck = snap.checkpoint
    if ck is None:
        raise UsageError(f"{rev!r} is a {snap.kind}, not a checkpoint")
    name = model if model is not None else snap.name
    if not is_ref_name(name):
        raise UsageError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or not 0 <= version <= _MAX_VERSION):
        raise UsageError(f"version must be an integer from 0 to {_MAX_VERSION}, got {version!r}")
    base = Path(os.path.abspath(directory)) / name
    if version is not None and os.path.lexists(base / str(version)):
        raise BadPathError(f"{base / str(version)} already exists; a served version is never "
                           "replaced: choose another --version")
    if base.exists() and not base.is_dir():
        raise BadPathError(f"{base} exists and is not a directory")
    rec, samples_path, samples = _samples_of(repo, oid)
    cm = open_checkpoint_model(repo, oid)
    code = ck.code
    vid = version_id(name, code.branch if code else None, code.commit if code else None,
                     code.dirty if code else False, ck.step, oid)
    made = _missing_dirs(base)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / unique_tmp_name(".mlgit-export")
    try:
        _save_model(cm, tmp)
        loaded, signature = _signature(tmp)
        verification = None
        if check and samples is not None:
            comparison = run_samples(loaded, samples, atol=atol, rtol=rtol,
                                     what=f"the exported model {vid}")
            verification = Verification("export", name, oid, vid, None, comparison).check()
        config = _extras(repo, snap, tmp / EXTRA_DIR, samples_path)
        rest = None if samples is None else _rest_files(samples, signature, tmp / EXTRA_DIR)
        manifest = _manifest(repo, oid, snap, name, vid, cm.kind, signature, config, rec, rest)
        v = _place(tmp, base, version, manifest)
    except BaseException:
        force_remove(tmp)
        for d in made:  # directories this export made, deepest first, if still empty
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
    path = base / str(v)
    if verification is not None:
        verification.path = path
    return ExportResult(path, name, v, vid, oid, cm.kind, signature,
                        0 if samples is None else samples.count, verification)
