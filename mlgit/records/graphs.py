"""Summarize a model graph file: its structure in a few JSON fields.

:func:`summarize_graph` detects the format from the content and returns a
:class:`GraphSummary`:

``keras-json``
    A Keras model's ``to_json()``. Summary: ``class_name``, ``name``, ``layers``
    (count), ``layer_types`` (class name → count), ``input_shapes`` (from input
    layers and ``build_input_shape``/``build_config``), ``inputs``/``outputs``
    (layer names, where the JSON names them) and ``output_shapes`` where present.
``graphdef-pb`` / ``graphdef-pbtxt``
    A TensorFlow ``GraphDef``, binary or text. Summary: ``ops`` (node count),
    ``op_types`` (the 20 most frequent op types → count), ``inputs`` (the
    Placeholder node names) and ``functions`` (library function count).
``savedmodel``
    A ``saved_model.pb``/``saved_model.pbtxt`` file or a SavedModel directory.
    Summary: ``meta_graphs`` (count), ``tags`` and ``signatures``: for each
    signature (internal ones, named ``__...``, left out) its ``method`` and its
    ``inputs``/``outputs``, each key mapping to the tensor ``name``, ``dtype``
    and ``shape`` (a list with -1 for unknown dimensions, or None for unknown rank).

A summary is kept under 8 KiB of JSON so that it fits a git note line: past that,
long lists are cut to their first 16 items, names to 100 characters (SavedModel
signatures keep only their input and output keys, or only their names), and
``truncated`` is set to true.

The protobuf formats are read with TensorFlow's own protos, imported only when
needed; without TensorFlow they raise :class:`~mlgit.errors.UsageError` telling
to ``pip install 'mlgit[tensorflow]'``. This module only reads files.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgit.errors import UsageError

__all__ = ["GRAPH_FORMATS", "GraphSummary", "summarize_graph"]

GRAPH_FORMATS = ("keras-json", "graphdef-pb", "graphdef-pbtxt", "savedmodel")
_INSTALL_HINT = "pip install 'mlgit[tensorflow]'"
_TOP_OPS = 20
_DTYPE_NAMES = {"FLOAT": "float32", "DOUBLE": "float64", "HALF": "float16"}
# A summary goes into one git note line (at most 16 KiB with the rest of the record):
# past this many bytes of JSON the long lists are cut and ``truncated`` is set.
_MAX_SUMMARY = 8 << 10
_MAX_ITEMS = 16
_MAX_NAME = 100


def _fits(summary: dict[str, Any]) -> bool:
    return len(json.dumps(summary, ensure_ascii=True)) <= _MAX_SUMMARY


@dataclass(frozen=True)
class GraphSummary:
    """A graph file's format (one of :data:`GRAPH_FORMATS`) and its JSON summary."""

    format: str
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{"format": ..., "summary": {...}}``."""
        return {"format": self.format, "summary": self.summary}


def _unknown(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}; known graph formats: Keras model JSON (keras-json), "
                      "GraphDef (graphdef-pb, graphdef-pbtxt), SavedModel (savedmodel)")


def _tf_module(name: str, path: Path) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise UsageError(f"{path}: reading GraphDef and SavedModel files needs TensorFlow: "
                         f"{_INSTALL_HINT}") from e


# -- keras json ------------------------------------------------------------------

def _shape(v: object) -> list[int | None] | None:
    if isinstance(v, list | tuple) and all(d is None or isinstance(d, int) for d in v):
        return list(v)
    return None


def _names(v: object) -> list[str]:
    """Layer names from Keras' ``input_layers``/``output_layers`` (one triple or a list)."""
    if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str):
        return [v[0]]
    if isinstance(v, list):
        return [n for item in v for n in _names(item)]
    if isinstance(v, dict):  # a dict of named inputs/outputs
        return [n for item in v.values() for n in _names(item)]
    return []


def _input_shapes(obj: dict[str, Any], config: dict[str, Any], layers: list[dict[str, Any]]
                  ) -> list[list[int | None]]:
    """A Keras model's input shapes: its InputLayers', else the first one its config records."""
    input_shapes: list[list[int | None]] = []
    for la in layers:
        lc = la.get("config") if isinstance(la.get("config"), dict) else {}
        assert isinstance(lc, dict)
        if la.get("class_name") == "InputLayer":
            s = _shape(lc.get("batch_shape", lc.get("batch_input_shape")))
            if s is not None:
                input_shapes.append(s)
    if not input_shapes:
        s = _shape(config.get("build_input_shape"))
        if s is None and isinstance(obj.get("build_config"), dict):
            s = _shape(obj["build_config"].get("input_shape"))
        if s is None and layers:
            first = layers[0].get("config") if isinstance(layers[0].get("config"), dict) else {}
            assert isinstance(first, dict)
            s = _shape(first.get("batch_input_shape", first.get("batch_shape")))
        if s is None and layers and isinstance(layers[0].get("build_config"), dict):
            s = _shape(layers[0]["build_config"].get("input_shape"))
        if s is not None:
            input_shapes.append(s)
    return input_shapes


def _keras_summary(obj: dict[str, Any]) -> dict[str, Any]:
    config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    assert isinstance(config, dict)
    raw_layers = config.get("layers")
    layers = [la for la in raw_layers if isinstance(la, dict)] if isinstance(
        raw_layers, list) else []
    hist = Counter(str(la.get("class_name", "?")) for la in layers)
    input_shapes = _input_shapes(obj, config, layers)
    summary: dict[str, Any] = {
        "class_name": obj.get("class_name"),
        "name": config.get("name"),
        "layers": len(layers),
        "layer_types": dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))),
        "input_shapes": input_shapes,
    }
    inputs, outputs = _names(config.get("input_layers")), _names(config.get("output_layers"))
    if inputs:
        summary["inputs"] = inputs
    if outputs:
        summary["outputs"] = outputs
    output_shapes = [s for s in (_shape(la.get("output_shape")) for la in layers[-1:])
                     if s is not None]
    if isinstance(obj.get("output_shape"), list):
        s = _shape(obj["output_shape"])
        output_shapes = [s] if s is not None else output_shapes
    if output_shapes:
        summary["output_shapes"] = output_shapes
    if not _fits(summary):
        for key in ("layer_types", "input_shapes", "inputs", "outputs", "output_shapes"):
            v = summary.get(key)
            if isinstance(v, dict):
                summary[key] = {str(k)[:_MAX_NAME]: n for k, n in list(v.items())[:_MAX_ITEMS]}
            elif isinstance(v, list):
                summary[key] = [x[:_MAX_NAME] if isinstance(x, str) else x
                                for x in v[:_MAX_ITEMS]]
        if isinstance(summary.get("name"), str):
            summary["name"] = summary["name"][:_MAX_NAME]
        summary["truncated"] = True
    return summary


def _is_keras_json(obj: object) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("class_name"), str) and (
        isinstance(obj.get("config"), dict))


# -- protobufs -------------------------------------------------------------------

def _dtype_name(types_pb2: Any, value: int) -> str:
    try:
        name = str(types_pb2.DataType.Name(value)).removeprefix("DT_")
    except ValueError:
        return str(value)
    return _DTYPE_NAMES.get(name, name.lower())


def _tensor_info(types_pb2: Any, info: Any) -> dict[str, Any]:
    dims = info.tensor_shape.dim
    shape = None if info.tensor_shape.unknown_rank else [int(d.size) for d in dims]
    out: dict[str, Any] = {"name": info.name, "dtype": _dtype_name(types_pb2, info.dtype),
                           "shape": shape}
    if not info.name and info.WhichOneof("encoding") is not None:
        out["encoding"] = info.WhichOneof("encoding")
    return out


def _savedmodel_summary(sm: Any, path: Path) -> dict[str, Any]:
    types_pb2 = _tf_module("tensorflow.core.framework.types_pb2", path)
    tags: set[str] = set()
    signatures: dict[str, Any] = {}
    for mg in sm.meta_graphs:
        tags.update(mg.meta_info_def.tags)
        for name in sorted(mg.signature_def):
            if name.startswith("__"):
                continue
            sig = mg.signature_def[name]
            signatures[name] = {
                "method": sig.method_name,
                "inputs": {k: _tensor_info(types_pb2, sig.inputs[k]) for k in sorted(sig.inputs)},
                "outputs": {k: _tensor_info(types_pb2, sig.outputs[k])
                            for k in sorted(sig.outputs)},
            }
    out = {"meta_graphs": len(sm.meta_graphs), "tags": sorted(tags)[:_MAX_ITEMS],
           "signatures": signatures}
    if _fits(out):
        return out
    # Too big for a note line: keep the signatures' input and output keys only.
    out["signatures"] = {
        name[:_MAX_NAME]: {"inputs": [k[:_MAX_NAME] for k in list(sig["inputs"])[:_MAX_ITEMS]],
                           "outputs": [k[:_MAX_NAME] for k in list(sig["outputs"])[:_MAX_ITEMS]]}
        for name, sig in list(signatures.items())[:_MAX_ITEMS]}
    out["truncated"] = True
    if not _fits(out):
        out["signatures"] = [name[:_MAX_NAME] for name in list(signatures)[:_MAX_ITEMS]]
    return out


def _graphdef_summary(g: Any) -> dict[str, Any]:
    ops = Counter(n.op for n in g.node)
    top = sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_OPS]
    inputs = [n.name for n in g.node if n.op in ("Placeholder", "PlaceholderV2")]
    out = {"ops": len(g.node), "op_types": {k[:_MAX_NAME]: v for k, v in top},
           "inputs": inputs, "functions": len(g.library.function)}
    if not _fits(out):
        out["inputs"] = [n[:_MAX_NAME] for n in inputs[:_MAX_ITEMS]]
        out["input_count"] = len(inputs)
        out["truncated"] = True
    return out


def _parse_exact(cls: Any, data: bytes) -> Any | None:
    """``data`` parsed as message ``cls`` if it holds no unknown fields, else None.

    Protobuf parsing is lenient (a field of the wrong wire type becomes an unknown
    field), so bytes of another message often "parse"; dropping the unknown fields
    and comparing the size tells a message of this type apart.
    """
    msg = cls()
    try:
        msg.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf may raise anything on hostile bytes: not this type
        return None
    msg.DiscardUnknownFields()
    return msg if msg.ByteSize() == len(data) else None


def _try_binary(path: Path, data: bytes) -> GraphSummary | None:
    saved_model_pb2 = _tf_module("tensorflow.core.protobuf.saved_model_pb2", path)
    graph_pb2 = _tf_module("tensorflow.core.framework.graph_pb2", path)
    sm = _parse_exact(saved_model_pb2.SavedModel, data)
    if sm is not None and len(sm.meta_graphs) > 0:
        return GraphSummary("savedmodel", _savedmodel_summary(sm, path))
    g = _parse_exact(graph_pb2.GraphDef, data)
    if g is not None and len(g.node) > 0 and all(n.op and n.name for n in g.node):
        return GraphSummary("graphdef-pb", _graphdef_summary(g))
    return None


def _try_pbtxt(path: Path, text: str) -> GraphSummary | None:
    text_format = _tf_module("google.protobuf.text_format", path)
    saved_model_pb2 = _tf_module("tensorflow.core.protobuf.saved_model_pb2", path)
    graph_pb2 = _tf_module("tensorflow.core.framework.graph_pb2", path)
    g = graph_pb2.GraphDef()
    try:
        text_format.Parse(text, g)
    except Exception:  # noqa: BLE001 - ParseError and kin on hostile text: not a GraphDef
        g = None
    if g is not None and len(g.node) > 0:
        return GraphSummary("graphdef-pbtxt", _graphdef_summary(g))
    sm = saved_model_pb2.SavedModel()
    try:
        text_format.Parse(text, sm)
    except Exception:  # noqa: BLE001 - ParseError and kin on hostile text: not a SavedModel
        sm = None
    if sm is not None and len(sm.meta_graphs) > 0:
        return GraphSummary("savedmodel", _savedmodel_summary(sm, path))
    return None


def summarize_graph(path: Path) -> GraphSummary:
    """Summarize the model graph at ``path`` (a file, or a SavedModel directory).

    Raises :class:`~mlgit.errors.UsageError` for content in none of the known
    formats (the message lists them) and, for the protobuf formats, when
    TensorFlow is not installed. An unreadable path raises the ``OSError``.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("saved_model.pb", "saved_model.pbtxt"):
            if (path / name).is_file():
                return summarize_graph(path / name)
        raise _unknown(path, "a directory without saved_model.pb")
    data = path.read_bytes()
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        try:
            obj = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            obj = None
        if _is_keras_json(obj):
            assert isinstance(obj, dict)
            return GraphSummary("keras-json", _keras_summary(obj))
        if obj is not None:
            raise _unknown(path, "JSON that is not a Keras model (no class_name and config)")
    if not data.strip():
        raise _unknown(path, "an empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    found = _try_pbtxt(path, text) if text is not None and "\x00" not in text else None
    if found is None:
        found = _try_binary(path, data)
    if found is None:
        raise _unknown(path, "content that is neither a Keras model JSON, a GraphDef nor "
                       "a SavedModel")
    return found
