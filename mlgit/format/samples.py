"""Adequacy samples: the names, dtypes and shapes of a model's sample inputs and outputs.

A checkpoint's samples (``commit-ckpt --samples``, ``CheckpointCallback(samples=)``)
are sample inputs with the outputs the model gave at commit time, kept to check
later that a reloaded or exported model still gives them (``git ml verify``).
The arrays themselves are a ``samples.npz`` payload (read by ``mlgit.tf.samples``,
which needs NumPy); what is described here is their *spec*, carried by the
``samples`` note record and by an export's manifest, and checked against the
arrays when they are read (docs/notes.md, "samples").

Pure functions; they raise FormatError and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlgit.errors import FormatError
from mlgit.format.limits import MAX_SAMPLE_ARRAYS, MAX_SAMPLES, MAX_SAMPLES_LEN
from mlgit.format.meta import list_at, obj_at

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "DTYPES", "MAX_RANK", "ArraySpec", "check_array_name",
           "decode_specs", "spec_bytes"]

DTYPES = {"bool": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2,
          "uint32": 4, "uint64": 8, "float16": 2, "float32": 4, "float64": 8}
"""The dtypes samples may have (NumPy's names), with their item sizes in bytes."""

DEFAULT_RTOL = 1e-05
DEFAULT_ATOL = 1e-08
"""``numpy.allclose``'s defaults: an output element matches when
``|got - expected| <= atol + rtol * |expected|`` (or both are NaN)."""

MAX_RANK = 32
"""Dimensions of one sample array (the first is the number of samples)."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")


def check_array_name(name: Any, where: str) -> str:
    """``name`` if it may name an input or output (letters, digits, ``_.:-``, 1 to 128)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name[:40]) if isinstance(name, str) else type(name).__name__
        raise FormatError(f"{where}: {shown} is not an input or output name (letters, digits, "
                          "'_', '.', ':' and '-', at most 128)")
    return name


@dataclass(frozen=True)
class ArraySpec:
    """One sample array: the input's or output's name, its NumPy dtype and its shape.

    ``shape[0]`` is the number of samples.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{name, dtype, shape}``."""
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @property
    def nbytes(self) -> int:
        """The array's size in bytes."""
        n = DTYPES[self.dtype]
        for d in self.shape:
            n *= d
        return n


def _spec(v: Any, where: str) -> ArraySpec:
    d = obj_at(v, where)
    name = check_array_name(d.get("name"), f"{where}.name")
    dtype = d.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise FormatError(f"{where}.dtype must be one of {', '.join(DTYPES)}, "
                          f"got {str(dtype)[:40]!r}")
    shape = list_at(d.get("shape"), f"{where}.shape")
    if not 1 <= len(shape) <= MAX_RANK:
        raise FormatError(f"{where}.shape must have 1 to {MAX_RANK} dimensions, "
                          f"has {len(shape)}")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SAMPLES_LEN:
            raise FormatError(f"{where}.shape: {str(n)[:40]} is not a dimension "
                              f"(an integer from 0 to {MAX_SAMPLES_LEN})")
    return ArraySpec(name, dtype, tuple(shape))


def spec_bytes(specs: tuple[ArraySpec, ...] | list[ArraySpec]) -> int:
    """The bytes the arrays of ``specs`` hold together."""
    return sum(s.nbytes for s in specs)


def decode_specs(inputs: Any, outputs: Any, count: Any, where: str
                 ) -> tuple[int, tuple[ArraySpec, ...], tuple[ArraySpec, ...]]:
    """(count, inputs, outputs) of a samples description, checked; FormatError otherwise.

    ``count`` is 1 to :data:`MAX_SAMPLES`; every array's first dimension is
    ``count``; inputs and outputs are non-empty lists of distinct names, together
    at most :data:`MAX_SAMPLE_ARRAYS`, holding at most :data:`MAX_SAMPLES_LEN`
    bytes.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SAMPLES:
        raise FormatError(f"{where}.count must be an integer from 1 to {MAX_SAMPLES}, "
                          f"got {str(count)[:40]}")
    out: list[tuple[ArraySpec, ...]] = []
    for key, value in (("inputs", inputs), ("outputs", outputs)):
        items = list_at(value, f"{where}.{key}")
        if not 1 <= len(items) <= MAX_SAMPLE_ARRAYS:
            raise FormatError(f"{where}.{key} must list 1 to {MAX_SAMPLE_ARRAYS} arrays")
        specs = tuple(_spec(v, f"{where}.{key}[{i}]") for i, v in enumerate(items))
        if len({s.name for s in specs}) != len(specs):
            raise FormatError(f"{where}.{key}: names repeat")
        for s in specs:
            if s.shape[0] != count:
                raise FormatError(f"{where}.{key} {s.name}: shape {list(s.shape)} does not "
                                  f"start with the count {count}")
        out.append(specs)
    ins, outs = out
    if len(ins) + len(outs) > MAX_SAMPLE_ARRAYS:
        raise FormatError(f"{where}: more than {MAX_SAMPLE_ARRAYS} inputs and outputs")
    if spec_bytes(ins + outs) > MAX_SAMPLES_LEN:
        raise FormatError(f"{where}: the arrays would hold more than {MAX_SAMPLES_LEN >> 20} "
                          "MiB")
    return count, ins, outs
