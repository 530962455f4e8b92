"""Adequacy samples with NumPy: read inputs, run a model, write and read ``samples.npz``, compare.

The samples of a checkpoint are inputs and the outputs the model gave for them at
commit time. This module:

- reads the inputs a user gives (:func:`read_inputs`: CSV, ``.npy`` or ``.npz``),
  checks them against the model's inputs and casts them to its dtypes
  (:func:`fit_inputs`);
- runs a model on them the way a server would (:class:`Runner`: a Keras model is
  called, a SavedModel's ``serving_default`` signature is, as TensorFlow Serving
  does) and names the outputs (:func:`name_outputs`);
- writes them (:func:`write_samples`) and reads them back bounded
  (:func:`read_samples`: the file, every member and every array's header are
  checked before an array is loaded; nothing is unpickled);
- compares outputs as ``numpy.isclose`` does (:func:`compare`).

Names: a single input is ``input``; several are the ``.npz`` file's names, which
must be the model's input names. Outputs are ``output`` (one tensor),
``output_0``, ``output_1``... (a list, as a SavedModel's signature names them)
or a dict's keys. When both sides have one output it is compared whatever its
name. docs/tensorflow.md describes them for users.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlgit.api.samples import SAMPLES_FILE, SamplesPayload
from mlgit.errors import FormatError, MlgitError, UsageError
from mlgit.format.limits import MAX_SAMPLE_ARRAYS, MAX_SAMPLES, MAX_SAMPLES_LEN
from mlgit.format.records import VerifyMismatch
from mlgit.format.samples import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    DTYPES,
    MAX_RANK,
    ArraySpec,
    check_array_name,
    decode_specs,
)
from mlgit.store.fsutil import read_bounded
from mlgit.tf._compat import keras, tf
from mlgit.tf.models import first_line, open_path_model

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "Comparison", "InputSpec", "Runner", "Samples",
           "as_arrays", "compare", "fit_inputs", "name_outputs", "read_inputs", "read_samples",
           "record_samples", "samples_for_path", "write_samples"]

Arrays = dict[str, Any]  # name -> numpy.ndarray, in order


@dataclass(frozen=True)
class Samples:
    """Sample inputs and the outputs recorded for them, checked against each other."""

    inputs: Arrays
    outputs: Arrays

    @property
    def count(self) -> int:
        """How many samples."""
        return int(next(iter(self.inputs.values())).shape[0])


# -- reading what a user gives ----------------------------------------------------------------


def _parse_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(data: bytes, where: str) -> Arrays:
    """A CSV of numbers (one sample a row; a first row of names is skipped) as ``input``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and any(_parse_float(c) is None for c in rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise UsageError(f"{where}: no rows of numbers")
    if len(rows) > MAX_SAMPLES:
        raise UsageError(f"{where}: {len(rows)} rows, more than the {MAX_SAMPLES} samples "
                         "allowed")
    width = len(rows[0])
    values: list[list[float]] = []
    for n, row in enumerate(rows, 1):
        if len(row) != width:
            raise UsageError(f"{where}: row {n} has {len(row)} columns, the first has {width}")
        nums = [_parse_float(c) for c in row]
        if any(v is None for v in nums):
            raise UsageError(f"{where}: row {n} holds something that is not a number")
        values.append([v for v in nums if v is not None])
    return {"input": np.asarray(values, dtype=np.float64)}


def _check_array(a: Any, where: str) -> Any:
    """``a`` in native byte order if its dtype is one samples may have; FormatError otherwise."""
    if not isinstance(a, np.ndarray) or a.dtype.name not in DTYPES:
        kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise FormatError(f"{where}: dtype {kind} is not one of {', '.join(DTYPES)}")
    if not 1 <= a.ndim <= MAX_RANK:
        raise FormatError(f"{where}: an array of {a.ndim} dimensions (1 to {MAX_RANK}, the "
                          "first counting the samples)")
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def _npy(data: bytes, where: str) -> Any:
    """One ``.npy`` image as an array: no pickles, a dtype samples may have."""
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(f"{where}: not a NumPy array file ({e})") from None
    return _check_array(a, where)


def _npz(data: bytes, where: str) -> Arrays:
    """The arrays of an ``.npz`` image, in file order, bounded before any is read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if not infos or len(infos) > 2 * MAX_SAMPLE_ARRAYS:
                raise FormatError(f"{where}: {len(infos)} arrays (1 to "
                                  f"{2 * MAX_SAMPLE_ARRAYS} allowed)")
            if sum(i.file_size for i in infos) > MAX_SAMPLES_LEN:
                raise FormatError(f"{where}: its arrays hold more than "
                                  f"{MAX_SAMPLES_LEN >> 20} MiB")
            out: Arrays = {}
            for info in infos:
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise FormatError(f"{where}: member {info.filename[:60]!r} is not an array")
                with z.open(info) as f:
                    member = f.read(info.file_size + 1)
                if len(member) != info.file_size:
                    raise FormatError(f"{where}: member {info.filename[:60]!r} is not the size "
                                      "its header says")
                name = info.filename.removesuffix(".npy")
                out[name] = _npy(member, f"{where}: {name[:60]}")
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            RuntimeError) as e:  # RuntimeError: an encrypted member
        raise FormatError(f"{where}: not a valid .npz file ({e})") from None


def read_inputs(path: Path) -> Arrays:
    """Sample inputs from a user's file: CSV (rows of numbers), ``.npy`` or ``.npz``.

    A CSV or a ``.npy`` is the one input ``input``; a ``.npz`` of one array too,
    of several the model's named inputs (its names). At most
    :data:`MAX_SAMPLES_LEN` bytes and :data:`MAX_SAMPLES` samples; every array
    starts with the sample count. :class:`~mlgit.errors.UsageError` for
    anything else, naming the file.
    """
    where = f"samples {path.name}"
    try:
        data = read_bounded(path, MAX_SAMPLES_LEN, what=where)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except FormatError as e:
        raise UsageError(str(e)) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            arrays = _read_csv(data, where)
        elif suffix == ".npy":
            arrays = {"input": _npy(data, where)}
        elif suffix == ".npz":
            arrays = _npz(data, where)
            if len(arrays) == 1:
                arrays = {"input": next(iter(arrays.values()))}
            for name in arrays:
                check_array_name(name, f"{where}: input")
        else:
            raise UsageError(f"{where}: give a .csv, .npy or .npz file of sample inputs")
    except FormatError as e:
        raise UsageError(str(e)) from None
    counts = {a.shape[0] for a in arrays.values()}
    if len(counts) != 1:
        raise UsageError(f"{where}: the inputs hold different numbers of samples "
                         f"({sorted(counts)})")
    count = counts.pop()
    if not 1 <= count <= MAX_SAMPLES:
        raise UsageError(f"{where}: {count} samples (1 to {MAX_SAMPLES} allowed)")
    return arrays


def as_arrays(samples: Any, where: str = "samples") -> Arrays:
    """Sample inputs given in Python (an array, a tensor, or a dict of them) as named arrays.

    One array is the input ``input``; a dict names the model's inputs. Checked
    as :func:`read_inputs` checks a file (dtypes, one count, the bounds).
    """
    items = (list(samples.items()) if isinstance(samples, Mapping)
             else [("input", samples)])
    out: Arrays = {}
    try:
        for name, v in items:
            check_array_name(name, f"{where}: input")
            a = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
            out[str(name)] = _check_array(a, f"{where}: input {name}")
    except FormatError as e:
        raise UsageError(str(e)) from None
    if not 1 <= len(out) <= MAX_SAMPLE_ARRAYS:
        raise UsageError(f"{where}: 1 to {MAX_SAMPLE_ARRAYS} inputs, got {len(out)}")
    counts = {a.shape[0] for a in out.values()}
    if len(counts) != 1 or not 1 <= min(counts) <= MAX_SAMPLES:
        raise UsageError(f"{where}: every input must hold the same number of samples, 1 to "
                         f"{MAX_SAMPLES} (got {sorted(counts)})")
    if sum(a.nbytes for a in out.values()) > MAX_SAMPLES_LEN:
        raise UsageError(f"{where}: more than {MAX_SAMPLES_LEN >> 20} MiB of inputs")
    return out


# -- running a model ------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """What a model takes: an input's name, dtype (None: any) and shape (None: any size)."""

    name: str
    dtype: str | None
    shape: tuple[int | None, ...] | None


class Runner:
    """Runs a model on sample inputs as a server would, and says what it takes.

    ``model`` is a ``keras.Model`` (called with ``training=False``) or what
    ``tf.saved_model.load`` returned: its ``serving_default`` signature is called
    (as TensorFlow Serving calls it), else its ``serve`` endpoint, else the object.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.signature: Any = None
        self.keras = isinstance(model, keras.Model)
        if not self.keras:
            sigs = dict(getattr(model, "signatures", {}) or {})
            if "serving_default" in sigs:
                self.signature = sigs["serving_default"]
            elif not (hasattr(model, "serve") or callable(model)):
                raise UsageError("the SavedModel has no serving_default signature, no serve "
                                 "endpoint and is not callable: nothing to run the samples on")

    def inputs(self) -> list[InputSpec] | None:
        """The model's inputs in order, or None when it does not say."""
        if self.keras:
            try:
                tensors = list(self.model.inputs)
            except (AttributeError, ValueError):
                return None
            return [InputSpec(str(getattr(t, "name", f"input_{i}")), _dtype_name(t.dtype),
                              _shape(t.shape)) for i, t in enumerate(tensors)]
        if self.signature is not None:
            specs = self.signature.structured_input_signature[1]
            return [InputSpec(k, _dtype_name(v.dtype), _shape(v.shape))
                    for k, v in sorted(specs.items())]
        return None

    def outputs(self, inputs: Arrays, error: type[MlgitError], what: str) -> Arrays:
        """The model's named outputs (:func:`name_outputs`) for ``inputs``.

        A model that cannot run them (TensorFlow raises anything) raises ``error``,
        its message ``what`` and TensorFlow's first line.
        """
        try:
            raw = self(inputs)
        except Exception as e:  # noqa: BLE001 - TensorFlow raises anything for inputs it refuses
            raise error(f"{what}: {type(e).__name__}: {first_line(e)}") from None
        return name_outputs(raw)

    def __call__(self, inputs: Arrays) -> Any:
        """The model's raw outputs (tensors, a list or a dict of them) for ``inputs``."""
        if self.signature is not None:
            specs = self.inputs() or []
            if len(specs) == 1 and len(inputs) == 1:
                kwargs = {specs[0].name: next(iter(inputs.values()))}
            else:
                kwargs = dict(inputs)
            return self.signature(**{k: tf.convert_to_tensor(v) for k, v in kwargs.items()})
        arg: Any = (next(iter(inputs.values())) if list(inputs) == ["input"]
                    else dict(inputs))
        if self.keras:
            return self.model(arg, training=False)
        fn = self.model.serve if hasattr(self.model, "serve") else self.model
        if isinstance(arg, dict):
            return fn({k: tf.convert_to_tensor(v) for k, v in arg.items()})
        return fn(tf.convert_to_tensor(arg))


def _dtype_name(dtype: Any) -> str | None:
    name = getattr(dtype, "name", dtype)
    return name if isinstance(name, str) else None


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    try:
        dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    except (TypeError, ValueError):
        return None  # unknown rank
    return tuple(None if d is None else int(d) for d in dims)


def _shown_shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def fit_inputs(runner: Runner, arrays: Arrays, where: str) -> Arrays:
    """``arrays`` checked against the model's inputs (names, ranks, sizes), cast to its dtypes.

    A :class:`~mlgit.errors.UsageError` naming the input, its shape and the
    model's, for samples the model cannot take.
    """
    specs = runner.inputs()
    if specs is None:
        return arrays
    if len(specs) == 1 and len(arrays) == 1:
        pairs = [(specs[0], next(iter(arrays)))]
    else:
        names = {s.name for s in specs}
        if set(arrays) != names:
            raise UsageError(f"{where}: inputs {sorted(arrays)}, the model takes "
                             f"{sorted(names)}")
        pairs = [(s, s.name) for s in specs]
    out: Arrays = {}
    for spec, name in pairs:
        a = arrays[name]
        if spec.shape is not None and (a.ndim != len(spec.shape) or any(
                d is not None and d != n for d, n in zip(spec.shape[1:], a.shape[1:],
                                                         strict=True))):
            raise UsageError(f"{where}: input {name} has shape {_shown_shape(a.shape)}, the "
                             f"model takes {_shown_shape(spec.shape)}")
        if spec.dtype is not None and spec.dtype in DTYPES and a.dtype.name != spec.dtype:
            a = a.astype(spec.dtype)
        out[name] = a
    return out


def name_outputs(raw: Any) -> Arrays:
    """A model's outputs as named arrays: ``output``, ``output_<i>`` or a dict's keys.

    bfloat16 becomes float32; a dtype samples cannot hold (strings) is a UsageError.
    """
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in sorted(raw.items(), key=lambda kv: str(kv[0]))]
    elif isinstance(raw, (list, tuple)):
        items = [(f"output_{i}", v) for i, v in enumerate(raw)]
    else:
        items = [("output", raw)]
    if not 1 <= len(items) <= MAX_SAMPLE_ARRAYS:
        raise UsageError(f"the model gives {len(items)} outputs (1 to {MAX_SAMPLE_ARRAYS} can "
                         "be recorded)")
    out: Arrays = {}
    for name, v in items:
        check_array_name(name, "output")
        a = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
        if a.dtype.name == "bfloat16":
            a = a.astype(np.float32)
        try:
            out[name] = _check_array(np.asarray(a), f"output {name}")
        except FormatError as e:
            raise UsageError(f"cannot record the model's outputs: {e}") from None
    return out


def record_samples(model: Any, inputs: Arrays, directory: Path,
                   where: str = "samples") -> SamplesPayload:
    """Run ``model`` on ``inputs`` and write both to ``directory/samples.npz``.

    The inputs are checked against the model's and cast to its dtypes first; a
    model that cannot run them is a UsageError (nothing written).
    """
    runner = Runner(model)
    fitted = fit_inputs(runner, inputs, where)
    outputs = runner.outputs(fitted, UsageError, f"{where}: the model cannot run them")
    return write_samples(directory, fitted, outputs)


def samples_for_path(path: Path, config_files: list[Path], samples: Any, directory: Path
                     ) -> SamplesPayload:
    """The samples of a checkpoint about to be committed from ``path``, written in ``directory``.

    ``samples`` is a file of inputs (:func:`read_inputs`) or arrays
    (:func:`as_arrays`); the model is loaded from ``path`` (and, for a TensorFlow
    checkpoint, the model's JSON among ``config_files``) and run on them.
    """
    if isinstance(samples, (str, os.PathLike)):
        where = f"samples {Path(samples).name}"
        inputs = read_inputs(Path(samples))
    else:
        where, inputs = "samples", as_arrays(samples)
    model = open_path_model(path, config_files).model
    return record_samples(model, inputs, directory, where)


# -- samples.npz -------------------------------------------------------------------------------


def _specs(arrays: Arrays) -> tuple[ArraySpec, ...]:
    return tuple(ArraySpec(k, a.dtype.name, tuple(int(n) for n in a.shape))
                 for k, a in arrays.items())


def write_samples(directory: Path, inputs: Arrays, outputs: Arrays) -> SamplesPayload:
    """Write ``directory/samples.npz`` (inputs and outputs; uncompressed) and describe it.

    UsageError, nothing written, when the arrays break the samples' bounds.
    """
    ins, outs = _specs(inputs), _specs(outputs)
    count = ins[0].shape[0] if ins else 0
    try:
        decode_specs([s.to_json() for s in ins], [s.to_json() for s in outs], count, "samples")
    except FormatError as e:
        raise UsageError(f"cannot record these samples: {e}") from None
    path = directory / SAMPLES_FILE
    arrays = {f"inputs/{k}": v for k, v in inputs.items()}
    arrays.update({f"outputs/{k}": v for k, v in outputs.items()})
    with path.open("wb") as f:
        np.savez(f, **arrays)
    return SamplesPayload(path, count, ins, outs)


def read_samples(path: Path, expect: tuple[int, tuple[ArraySpec, ...],
                                           tuple[ArraySpec, ...]] | None = None) -> Samples:
    """A ``samples.npz`` read back, bounded and checked; FormatError naming what is wrong.

    Members must be ``inputs/<name>.npy`` and ``outputs/<name>.npy``; together they
    must describe valid samples (one count, the bounds of docs/notes.md) and, when
    ``expect`` (count, inputs, outputs, as a record or a manifest says) is given,
    exactly those.
    """
    where = f"samples {path.name}"
    arrays = _npz(read_bounded(path, MAX_SAMPLES_LEN, what=where), where)
    parts: dict[str, Arrays] = {"inputs": {}, "outputs": {}}
    for key, a in arrays.items():
        kind, _, name = key.partition("/")
        if kind not in parts or not name:
            raise FormatError(f"{where}: member {key[:60]!r} is not inputs/NAME or outputs/NAME")
        parts[kind][check_array_name(name, f"{where}: {kind}")] = a
    ins, outs = _specs(parts["inputs"]), _specs(parts["outputs"])
    count = ins[0].shape[0] if ins else 0
    got = decode_specs([s.to_json() for s in ins], [s.to_json() for s in outs], count, where)
    if expect is not None and got != expect:
        raise FormatError(f"{where}: its arrays are not the ones its record describes")
    return Samples(parts["inputs"], parts["outputs"])


# -- comparing ---------------------------------------------------------------------------------


@dataclass
class Comparison:
    """How the outputs a model gave compare with the recorded ones.

    ``mismatched`` samples differ in at least one element of one output (or an
    output is missing or has another shape: ``problems``); ``worst`` are the
    worst of them, one element each, worst first; ``max_error`` is the largest
    finite ``|got - expected|`` over every compared element (None if none).
    """

    count: int
    atol: float
    rtol: float
    mismatched: int = 0
    max_error: float | None = None
    worst: list[VerifyMismatch] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every sample matched."""
        return self.mismatched == 0 and not self.problems


def _finite(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def _pairs(expected: Arrays, got: Arrays, problems: list[str]) -> list[tuple[str, Any, Any]]:
    if len(expected) == 1 and len(got) == 1:
        name = next(iter(expected))
        return [(name, expected[name], next(iter(got.values())))]
    for name in expected:
        if name not in got:
            problems.append(f"the model gives no output {name} (it gives {sorted(got)})")
    return [(name, a, got[name]) for name, a in expected.items() if name in got]


def compare(expected: Arrays, got: Arrays, count: int, atol: float = DEFAULT_ATOL,
            rtol: float = DEFAULT_RTOL, show: int = 10) -> Comparison:
    """Compare each output element as ``numpy.isclose(got, expected, rtol, atol, equal_nan=True)``.

    A sample matches when every element of every output does. An output that is
    missing or has another shape fails every sample (a problem says which).
    ``show`` bounds :attr:`Comparison.worst`: the samples whose worst element is
    furthest past its tolerance (``|got - expected| / (atol + rtol * |expected|)``).
    """
    result = Comparison(count, atol, rtol)
    bad_samples = np.zeros(count, dtype=bool)
    score = np.zeros(count)  # per sample: how far past its tolerance its worst element is
    where: list[tuple[str, Any, Any, Any, int] | None] = [None] * count
    for name, exp, g in _pairs(expected, got, result.problems):
        if g.shape != exp.shape:
            result.problems.append(f"output {name} has shape {_shown_shape(g.shape)}, "
                                   f"expected {_shown_shape(exp.shape)}")
            continue
        e64, g64 = exp.astype(np.float64), g.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            err = np.abs(g64 - e64)
            ok = np.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
            finite = err[np.isfinite(err)]
            if finite.size:
                m = float(finite.max())
                result.max_error = m if result.max_error is None else max(result.max_error, m)
            excess = np.where(ok, 0.0, err / (atol + rtol * np.abs(e64)))
        flat = np.nan_to_num(excess, nan=np.inf, posinf=np.inf).reshape(count, -1)
        bad_samples |= ~ok.reshape(count, -1).all(axis=1)
        if flat.shape[1] == 0:
            continue
        cols = flat.argmax(axis=1)
        top = flat[np.arange(count), cols]
        for i in np.flatnonzero(top > score):
            score[i] = top[i]
            where[i] = (name, e64, g64, err, int(cols[i]))
    if result.problems:
        bad_samples[:] = True
    result.mismatched = int(bad_samples.sum())
    order = sorted(np.flatnonzero(bad_samples), key=lambda i: (-score[i], int(i)))
    for i in order:
        if len(result.worst) >= max(show, 0):
            break
        w = where[i]
        if w is None:
            continue  # failed only through a problem (a missing output)
        name, e64, g64, err, j = w
        pos = tuple(int(p) for p in np.unravel_index(j, e64.shape[1:])) if e64.ndim > 1 else ()
        at = (int(i), *pos)
        result.worst.append(VerifyMismatch(int(i), name, pos, _finite(e64[at]),
                                           _finite(g64[at]), _finite(err[at])))
    return result
