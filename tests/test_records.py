"""mlgit.records: summaries of training logs, model graphs and result files.

The TensorFlow-made files (event files, CSVLogger output, model JSON, GraphDefs,
SavedModels) are written once per module by real TensorFlow on the CPU; tests of
those formats are skipped when TensorFlow is not installed.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlgit.errors import MissingDependencyError, UsageError
from mlgit.records import (
    GraphSummary,
    LogSummary,
    ResultsSummary,
    ScalarSummary,
    best_mode,
    summarize_graph,
    summarize_log,
    summarize_results,
)

RECORDS = Path(__file__).resolve().parent.parent / "mlgit" / "records"


# -- TensorFlow artifacts, made once -------------------------------------------------

@pytest.fixture(scope="module")
def tf() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        yield pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def artifacts(tf: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny Keras model trained 3 epochs with the TensorBoard and CSVLogger callbacks."""
    import numpy as np

    keras = tf.keras
    out = tmp_path_factory.mktemp("tfart")
    rng = np.random.default_rng(0)
    x = rng.random((256, 4), dtype=np.float32)
    y = (x.sum(axis=1) > 2).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=64, validation_split=0.25, verbose=0,
                     callbacks=[keras.callbacks.TensorBoard(str(out / "tb")),
                                keras.callbacks.CSVLogger(str(out / "training.log"))])
    (out / "sequential.json").write_text(model.to_json())
    inp = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(3, name="hidden")(inp)
    func = keras.Model(inp, keras.layers.Dense(2, name="logits")(hidden))
    (out / "functional.json").write_text(func.to_json())

    @tf.function  # type: ignore[untyped-decorator]
    def fn(a: Any, b: Any) -> Any:
        return tf.nn.relu(tf.matmul(a, b) + 1.0)

    g = fn.get_concrete_function(tf.TensorSpec([None, 3], tf.float32, name="a"),
                                 tf.TensorSpec([3, 2], tf.float32, name="b")).graph
    gdef = g.as_graph_def()
    (out / "graph.pb").write_bytes(gdef.SerializeToString())
    tf.io.write_graph(gdef, str(out), "graph.pbtxt", as_text=True)
    tf.saved_model.save(model, str(out / "savedmodel"))
    return {"dir": out, "history": hist.history, "tf": tf}


# -- logs ------------------------------------------------------------------------------

def test_best_mode() -> None:
    for name in ("loss", "val_loss", "epoch_loss", "Error_rate", "val_mae", "mse", "RMSE",
                 "perplexity"):
        assert best_mode(name) == "min", name
    for name in ("accuracy", "val_auc", "f1", "epoch_learning_rate"):
        assert best_mode(name) == "max", name


def test_csvlogger_output(artifacts: dict[str, Any]) -> None:
    s = summarize_log(artifacts["dir"] / "training.log")  # CSVLogger's name: no .csv
    h = artifacts["history"]
    assert s.format == "csv"
    assert set(s.scalars) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    loss = s.scalars["loss"]
    assert loss.mode == "min"
    assert loss.count == 3
    assert loss.last_step == 2
    assert loss.last == pytest.approx(h["loss"][-1])
    assert loss.best == pytest.approx(min(h["loss"]))
    acc = s.scalars["val_accuracy"]
    assert acc.mode == "max"
    assert acc.best == pytest.approx(max(h["val_accuracy"]))


def test_tensorboard_callback_directory(artifacts: dict[str, Any]) -> None:
    s = summarize_log(artifacts["dir"] / "tb")
    h = artifacts["history"]
    assert s.format == "tfevents"
    assert {"train/epoch_loss", "train/epoch_accuracy", "validation/epoch_loss",
            "validation/epoch_accuracy"} <= set(s.scalars)
    assert "train/keras" not in s.scalars  # the model graph summary is not a scalar
    tl = s.scalars["train/epoch_loss"]
    assert tl.count == 3
    assert tl.last_step == 2
    assert tl.mode == "min"
    assert tl.last == pytest.approx(h["loss"][-1], rel=1e-6)
    assert tl.best == pytest.approx(min(h["loss"]), rel=1e-6)
    vl = s.scalars["validation/epoch_loss"]
    assert vl.last == pytest.approx(h["val_loss"][-1], rel=1e-6)
    # One subdirectory alone: names without a prefix.
    train = summarize_log(artifacts["dir"] / "tb" / "train")
    assert train.scalars["epoch_loss"] == tl


def test_tf_summary_file_with_simple_values(artifacts: dict[str, Any], tmp_path: Path) -> None:
    tf = artifacts["tf"]
    logdir = tmp_path / "logs"
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step, value in enumerate([0.9, 0.4, float("nan"), 0.6]):
            tf.summary.scalar("loss", value, step=step)
            tf.summary.scalar("acc", 1.0 - value, step=step)
            tf.summary.histogram("weights", tf.range(10.0) * value, step=step)
            tf.summary.text("note", f"step {step}", step=step)
            old = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                tag="v1/loss", simple_value=2.0 - step)])
            tf.summary.experimental.write_raw_pb(old.SerializeToString(), step=step)
    writer.close()
    (event_file,) = logdir.iterdir()
    s = summarize_log(event_file)
    assert s.format == "tfevents"
    assert set(s.scalars) == {"loss", "acc", "v1/loss"}
    loss = s.scalars["loss"]
    assert loss.count == 3  # the NaN is skipped
    assert loss.last == pytest.approx(0.6)
    assert loss.last_step == 3
    assert loss.best == pytest.approx(0.4)
    assert s.scalars["acc"].best == pytest.approx(0.6)
    assert s.scalars["acc"].mode == "max"
    v1 = s.scalars["v1/loss"]
    assert (v1.count, v1.last, v1.best, v1.last_step) == (4, -1.0, -1.0, 3)
    # Detected by content: the same bytes under a name without "tfevents".
    renamed = tmp_path / "run.bin"
    renamed.write_bytes(event_file.read_bytes())
    assert summarize_log(renamed) == s
    # A file cut mid-record (training still writing) reads up to the cut.
    cut = tmp_path / "events.out.tfevents.cut"
    cut.write_bytes(event_file.read_bytes()[:-7])
    assert summarize_log(cut).scalars["loss"].count >= 2


def test_keras_csv_by_hand(tmp_path: Path) -> None:
    p = tmp_path / "log.csv"
    p.write_text("epoch,loss,val_accuracy,lr,note\n0,0.9,0.5,0.01,a\n1,nan,0.7,0.01,b\n"
                 "2,0.5,0.6,0.001,c\n\n")
    s = summarize_log(p)
    assert s.format == "csv"
    assert set(s.scalars) == {"loss", "val_accuracy", "lr"}
    assert s.scalars["loss"] == ScalarSummary(0.5, 0.5, "min", 2, 2)
    assert s.scalars["val_accuracy"] == ScalarSummary(0.6, 0.7, "max", 3, 2)
    tab = tmp_path / "log.tsv"
    tab.write_text("epoch\tloss\n0\t3\n1\t2\n")
    assert summarize_log(tab).scalars["loss"] == ScalarSummary(2.0, 2.0, "min", 2, 1)


def test_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "metrics.txt"  # detected by content, not by name
    rows = [{"step": 10, "loss": 1.5, "acc": 0.2, "tag": "x", "ok": True, "eval": {"f1": 0.3}},
            {"step": 20, "loss": 0.5, "acc": 0.4, "eval": {"f1": 0.5}},
            {"step": 30, "loss": float("nan"), "acc": 0.3}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    s = summarize_log(p)
    assert s.format == "jsonl"
    assert set(s.scalars) == {"loss", "acc", "eval/f1"}
    assert s.scalars["loss"] == ScalarSummary(0.5, 0.5, "min", 2, 20)
    assert s.scalars["acc"] == ScalarSummary(0.3, 0.4, "max", 3, 30)
    assert s.scalars["eval/f1"].last_step == 20
    q = tmp_path / "nostep.jsonl"
    q.write_text('{"epoch": 0, "loss": 2}\n{"loss": 1}\n')
    assert summarize_log(q).scalars["loss"] == ScalarSummary(1.0, 1.0, "min", 2, None)
    assert json.loads(json.dumps(s.to_json())) == s.to_json()
    assert s.to_json()["scalars"]["loss"] == {"last": 0.5, "best": 0.5, "mode": "min",
                                              "count": 2, "last_step": 20}


def test_plain_text(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_text("Epoch 1/3, loss 0.5\nEpoch 2/3, loss 0.4 — done ✓\n{not json\n")
    assert summarize_log(p) == LogSummary("text", {})
    half = tmp_path / "half.jsonl"  # a JSON first line and then text: not JSON lines
    half.write_text('{"loss": 1}\nthen text\n')
    assert summarize_log(half).format == "text"
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert summarize_log(empty).format == "text"


def test_unknown_log_formats(tmp_path: Path) -> None:
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(UsageError) as e:
        summarize_log(binary)
    for fmt in ("tfevents", "csv", "jsonl", "text"):
        assert fmt in str(e.value)
    latin1 = tmp_path / "latin1.log"
    latin1.write_bytes("caf\xe9 loss\n".encode("latin-1") * 3)
    with pytest.raises(UsageError):
        summarize_log(latin1)
    empty_dir = tmp_path / "nologs"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("hi\n")
    with pytest.raises(UsageError, match="without TensorFlow event files"):
        summarize_log(empty_dir)


def _hide_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard.compat.proto.event_pb2", None)


def test_event_files_read_with_tensorflow_alone(artifacts: dict[str, Any], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow 2.16+ does not install TensorBoard: its protobuf classes give the same summary."""
    pytest.importorskip("tensorboard")
    tb = artifacts["dir"] / "tb"
    (event_file,) = (tb / "train").iterdir()
    cut = tmp_path / "events.out.tfevents.cut"
    cut.write_bytes(event_file.read_bytes()[:-5])
    with_tb = summarize_log(tb), summarize_log(cut)
    full = summarize_log(event_file)
    _hide_tensorboard(monkeypatch)
    assert (summarize_log(tb), summarize_log(cut)) == with_tb
    assert sum(v.count for v in with_tb[1].scalars.values()) == (
        sum(v.count for v in full.scalars.values()) - 1)  # the last record is cut


def test_event_file_without_tensorflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_tensorboard(monkeypatch)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "tensorflow.core.util.event_pb2", None)
    p = tmp_path / "events.out.tfevents.1.host"
    p.write_bytes(b"")
    with pytest.raises(MissingDependencyError, match=r"pip install 'mlgit\[board\]'"):
        summarize_log(p)


# -- graphs ------------------------------------------------------------------------

def test_keras_json(artifacts: dict[str, Any]) -> None:
    s = summarize_graph(artifacts["dir"] / "sequential.json")
    assert s.format == "keras-json"
    assert s.summary["class_name"] == "Sequential"
    assert s.summary["layers"] == 3
    assert s.summary["layer_types"] == {"Dense": 2, "InputLayer": 1}
    assert s.summary["input_shapes"] == [[None, 4]]
    f = summarize_graph(artifacts["dir"] / "functional.json").summary
    assert f["class_name"] == "Functional"
    assert f["layer_types"]["Dense"] == 2
    assert (f["inputs"], f["outputs"], f["input_shapes"]) == (["features"], ["logits"],
                                                              [[None, 4]])


def test_keras_json_by_hand(tmp_path: Path) -> None:
    p = tmp_path / "model.json"
    p.write_text(json.dumps({"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "Dense", "config": {"units": 3, "batch_input_shape": [None, 7]}},
        {"class_name": "Dropout", "config": {}}, {"class_name": "Dense", "config": {}}]}}))
    s = summarize_graph(p)
    assert s == GraphSummary("keras-json", {
        "class_name": "Sequential", "name": "m", "layers": 3,
        "layer_types": {"Dense": 2, "Dropout": 1}, "input_shapes": [[None, 7]]})
    assert s.to_json() == {"format": "keras-json", "summary": s.summary}


def test_graphdef(artifacts: dict[str, Any]) -> None:
    pb = summarize_graph(artifacts["dir"] / "graph.pb")
    txt = summarize_graph(artifacts["dir"] / "graph.pbtxt")
    assert pb.format == "graphdef-pb"
    assert txt.format == "graphdef-pbtxt"
    assert pb.summary == txt.summary
    s = pb.summary
    assert s["inputs"] == ["a", "b"]
    assert s["op_types"]["Placeholder"] == 2
    assert s["op_types"]["MatMul"] == 1
    assert s["op_types"]["Relu"] == 1
    assert s["ops"] == sum(s["op_types"].values())


def test_savedmodel(artifacts: dict[str, Any]) -> None:
    d = artifacts["dir"] / "savedmodel"
    s = summarize_graph(d)
    assert s.format == "savedmodel"
    assert summarize_graph(d / "saved_model.pb") == s
    assert s.summary["tags"] == ["serve"]
    sig = s.summary["signatures"]["serving_default"]
    (inp,) = sig["inputs"].values()
    (outp,) = sig["outputs"].values()
    assert inp["dtype"] == "float32"
    assert inp["shape"] == [-1, 4]
    assert inp["name"]
    assert outp["shape"] == [-1, 1]
    assert not any(name.startswith("__") for name in s.summary["signatures"])


@pytest.mark.usefixtures("tf")
def test_big_graphs_are_truncated(tmp_path: Path) -> None:
    from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    g = graph_pb2.GraphDef(node=[node_def_pb2.NodeDef(name=f"input_{i:04d}_" + "x" * 50,
                                                      op="Placeholder") for i in range(2000)])
    (tmp_path / "big.pb").write_bytes(g.SerializeToString())
    s = summarize_graph(tmp_path / "big.pb").summary
    assert s["ops"] == 2000
    assert s["truncated"]
    assert s["input_count"] == 2000
    assert len(json.dumps(s)) <= 8192
    mg = meta_graph_pb2.MetaGraphDef()
    mg.meta_info_def.tags.append("serve")
    for i in range(100):
        sig = mg.signature_def[f"sig_{i:03d}"]
        for j in range(20):
            info = sig.inputs[f"feature_{j}"]
            info.name, info.dtype = f"sig_{i}_feature_{j}:0", types_pb2.DT_FLOAT
    (tmp_path / "saved_model.pb").write_bytes(
        saved_model_pb2.SavedModel(meta_graphs=[mg]).SerializeToString())
    s = summarize_graph(tmp_path).summary
    assert s["truncated"]
    assert len(json.dumps(s)) <= 8192


def test_unknown_graph_formats(tmp_path: Path) -> None:
    bad = {"random.bin": os.urandom(4096) + b"\x00", "notes.txt": b"just some text\n",
           "other.json": b'{"name": "not a model"}', "empty.pb": b""}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError) as e:
            summarize_graph(tmp_path / name)
        msg = str(e.value)
        assert "keras-json" in msg or "pip install 'mlgit[tensorflow]'" in msg, name
    (tmp_path / "dir").mkdir()
    with pytest.raises(UsageError, match="savedmodel"):
        summarize_graph(tmp_path / "dir")


def test_graph_without_tensorflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ("tensorflow.core.protobuf.saved_model_pb2", "tensorflow.core.framework.graph_pb2",
                "google.protobuf.text_format"):
        monkeypatch.setitem(sys.modules, mod, None)
    (tmp_path / "graph.pb").write_bytes(b"\n\x0b\n\x01a\x12\x0bPlaceholder\x00\xff")
    with pytest.raises(UsageError, match=r"pip install 'mlgit\[tensorflow\]'"):
        summarize_graph(tmp_path / "graph.pb")
    # Keras JSON needs no TensorFlow.
    (tmp_path / "m.json").write_text('{"class_name": "Sequential", "config": {"layers": []}}')
    assert summarize_graph(tmp_path / "m.json").format == "keras-json"


# -- results -----------------------------------------------------------------------

def test_json_results(tmp_path: Path) -> None:
    p = tmp_path / "eval.json"
    p.write_text(json.dumps({"accuracy": 0.91, "n": 1000, "name": "test", "ok": True,
                             "per_class": {"cat": {"f1": 0.8}, "dog": {"f1": 0.9}},
                             "hist": [1, 2], "bad": float("nan")}))
    s = summarize_results(p)
    assert s == ResultsSummary("json", {"accuracy": 0.91, "n": 1000.0,
                                        "per_class/cat/f1": 0.8, "per_class/dog/f1": 0.9})
    assert s.to_json() == {"format": "json", "metrics": s.metrics}
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="not an object"):
        summarize_results(tmp_path / "list.json")
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(UsageError):
        summarize_results(tmp_path / "broken.json")


JUNIT_SUITES = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="unit" tests="5" failures="1" errors="0" skipped="1" time="1.5">
    <testcase classname="a" name="t1" time="0.5"/>
  </testsuite>
  <testsuite name="integration" tests="3" failures="0" errors="1" skipped="0" time="2.25"/>
</testsuites>
"""

JUNIT_SUITE = """<testsuite name="pytest">
  <testcase classname="m" name="ok" time="0.1"/>
  <testcase classname="m" name="fails" time="0.2"><failure message="boom">tb</failure></testcase>
  <testcase classname="m" name="breaks" time="0.3"><error message="oops"/></testcase>
  <testcase classname="m" name="skips" time="0.0"><skipped message="later"/></testcase>
  <testcase classname="m" name="ok2" time="0.4"/>
</testsuite>
"""


def test_junit(tmp_path: Path) -> None:
    p = tmp_path / "junit.xml"
    p.write_text(JUNIT_SUITES)
    assert summarize_results(p) == ResultsSummary("junit", {
        "tests": 8.0, "failures": 1.0, "errors": 1.0, "skipped": 1.0, "passed": 5.0,
        "time": 3.75})
    q = tmp_path / "report"  # no extension: detected by content
    q.write_text(JUNIT_SUITE)
    s = summarize_results(q)
    assert s.format == "junit"
    assert {k: v for k, v in s.metrics.items() if k != "time"} == {
        "tests": 5.0, "failures": 1.0, "errors": 1.0, "skipped": 1.0, "passed": 2.0}
    assert math.isclose(s.metrics["time"], 1.0)


def test_junit_with_doctype_or_entities_is_refused(tmp_path: Path) -> None:
    laughs = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
              ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
              '<testsuite name="&lol2;" tests="1"/>\n')
    cases = {"laughs.xml": laughs.encode(),
             "doctype.xml": b'<!doctype testsuite SYSTEM "file:///etc/passwd"><testsuite/>',
             "utf16.xml": laughs.encode("utf-16")}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError):
            summarize_results(tmp_path / name)
    with pytest.raises(UsageError, match="DOCTYPE"):
        summarize_results(tmp_path / "laughs.xml")


def test_unknown_results_formats(tmp_path: Path) -> None:
    for name, data in {"a.csv": b"a,b\n1,2\n", "b.xml": b"<html><body/></html>",
                       "c.bin": b"\x00\x01\x02", "d.xml": b"<testsuite"}.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError) as e:
            summarize_results(tmp_path / name)
        assert "json" in str(e.value), name
        assert "junit" in str(e.value), name


# -- layering ----------------------------------------------------------------------

def test_records_layer_rules() -> None:
    """records imports only mlgit.errors and mlgit.format.*; never prints or reads os.environ."""
    bad = []
    for path in RECORDS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            for m in mods:
                if m.startswith("mlgit") and not (
                        m in ("mlgit.errors", "mlgit.format") or m.startswith("mlgit.format.")
                        or m.startswith("mlgit.records")):
                    bad.append(f"{path.name} imports {m}")
                if m.split(".")[0] in ("tensorflow", "tensorboard", "keras"):
                    bad.append(f"{path.name} imports {m} at module level")
            if isinstance(node, ast.Name) and node.id == "print":
                bad.append(f"{path.name} prints")
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                bad.append(f"{path.name} reads the environment")
    assert bad == []
    code = "import sys, mlgit.records; print(sorted(m for m in ('tensorflow', 'tensorboard', " \
           "'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
