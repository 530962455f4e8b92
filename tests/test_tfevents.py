"""TensorFlow event files read without TensorFlow: framing, checksums, bounds, scalars.

Event files are written by TensorBoard's own TF-free writer
(``tensorboard.summary.writer.event_file_writer``), hostile ones byte by byte here
with ``struct`` and google-crc32c, so git-ml's writer cannot hide a bug in its
reader. ``git ml note add --log`` of event files runs in a fresh process that must
not import TensorFlow.
"""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git, run_gitml
from hypothesis import given
from hypothesis import strategies as st

from mlgit.errors import FormatError, UsageError
from mlgit.records import summarize_log
from mlgit.records.hparams import MAX_HPARAMS, hparams_from_configs
from mlgit.records.tfevents import (
    crc32c,
    event_scalars,
    frame,
    is_record_header,
    read_records,
    tensor_scalar,
)

tb = pytest.importorskip("tensorboard")
google_crc32c = pytest.importorskip("google_crc32c")


def _masked(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes, length: int | None = None, head_ok: bool = True,
            data_ok: bool = True) -> bytes:
    """One TFRecord laid out by hand: a lying ``length`` and broken CRCs on request."""
    head = struct.pack("<Q", len(data) if length is None else length)
    return (head + struct.pack("<I", _masked(head) ^ (0 if head_ok else 1)) + data
            + struct.pack("<I", _masked(data) ^ (0 if data_ok else 1)))


def _event(**fields: Any) -> bytes:
    from tensorboard.compat.proto import event_pb2
    return bytes(event_pb2.Event(**fields).SerializeToString())


def _scalar_event(step: int, tag: str, value: float) -> bytes:
    from tensorboard.compat.proto import summary_pb2
    return _event(step=step, wall_time=1.0, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]))


def _tb_written(logdir: Path) -> Path:
    """Event files made by TensorBoard's own writer: TF2 tensor scalars, TF1 simple values,
    a histogram and text (not scalars), and a graph."""
    from tensorboard.compat.proto import graph_pb2, summary_pb2
    from tensorboard.plugins.histogram import summary_v2 as histogram
    from tensorboard.plugins.scalar import summary_v2 as scalar
    from tensorboard.plugins.text import summary_v2 as text
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    w = EventFileWriter(str(logdir))
    w.add_event(_event_pb(graph_def=graph_pb2.GraphDef().SerializeToString()))
    for step, v in enumerate([0.9, 0.4, float("nan"), 0.6]):
        for s in (scalar.scalar_pb("loss", v), scalar.scalar_pb("acc", 1.0 - v),
                  histogram.histogram_pb("weights", [0.1, 0.2]), text.text_pb("note", "hi"),
                  summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="v1/loss",
                                                                      simple_value=2.0 - step)])):
            w.add_event(_event_pb(step=step, wall_time=float(step), summary=s))
    w.close()
    (path,) = logdir.iterdir()
    return path


def _event_pb(**fields: Any) -> Any:
    from tensorboard.compat.proto import event_pb2
    return event_pb2.Event(**fields)


def test_crc32c_matches_google_and_the_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert frame(b"abc") == _record(b"abc")


@given(st.binary(max_size=300))
def test_the_table_crc_agrees_with_google_crc32c(data: bytes) -> None:
    from mlgit.records import tfevents
    assert tfevents._crc32c_table(data) == google_crc32c.value(data)
    assert crc32c(data) == google_crc32c.value(data)


def test_files_of_tensorboards_writer(tmp_path: Path) -> None:
    path = _tb_written(tmp_path / "logs")
    s = summarize_log(path)
    assert s.format == "tfevents"
    assert set(s.scalars) == {"loss", "acc", "v1/loss"}
    assert s.scalars["loss"].count == 3  # the NaN is skipped
    assert s.scalars["loss"].last == pytest.approx(0.6)
    assert s.scalars["loss"].best == pytest.approx(0.4)
    assert s.scalars["v1/loss"].last_step == 3
    # Read back by git-ml's own framing, every record checks out.
    with path.open("rb") as f:
        assert len([d for _, d in read_records(f, "x")]) == 1 + 1 + 4 * 5


def test_hostile_framing_is_bounded_and_reported(tmp_path: Path) -> None:
    good = [_record(_scalar_event(i, "loss", 1.0 / (i + 1))) for i in range(3)]

    def records(data: bytes, **kw: Any) -> list[bytes | None]:
        return [d for _, d in read_records(io.BytesIO(data), "f", **kw)]

    # A length of 2**62 whose header checksum is right: skipped unread (past the end: the
    # end of the file), or refused; never allocated.
    huge = _record(b"", length=1 << 62)
    assert records(good[0] + huge) == [_scalar_event(0, "loss", 1.0)]
    with pytest.raises(FormatError, match="claims 4611686018427387904 bytes"):
        records(good[0] + huge, skip_large=False)
    # A record over the limit inside the file is stepped over.
    big = _record(b"x" * 100)
    assert records(good[0] + big + good[1], max_len=50) == [
        _scalar_event(0, "loss", 1.0), None, _scalar_event(1, "loss", 0.5)]
    # Checksums: the header's, the data's.
    with pytest.raises(FormatError, match="at byte 0"):
        records(_record(b"abc", head_ok=False))
    with pytest.raises(FormatError, match=r"record at byte \d+ fails its checksum"):
        records(good[0] + _record(b"abc", data_ok=False))
    # The summary of a log, as TensorBoard does, ends a file at a bad record.
    p = tmp_path / "events.out.tfevents.bad"
    p.write_bytes(good[0] + good[1] + _record(_scalar_event(2, "loss", 9.0), data_ok=False)
                  + good[2])
    assert summarize_log(p).scalars["loss"].count == 2
    # Data that passes its checksum but is not an Event: refused, naming the offset.
    p.write_bytes(good[0] + _record(b"\xff\xff\xff"))
    with pytest.raises(UsageError, match="does not decode"):
        summarize_log(p)


def test_a_file_cut_anywhere_reads_up_to_the_cut() -> None:
    data = b"".join(_record(_scalar_event(i, "loss", float(i))) for i in range(4))
    whole = len(list(event_scalars(io.BytesIO(data), "f")))
    for cut in range(len(data)):
        got = list(event_scalars(io.BytesIO(data[:cut]), "f"))
        assert len(got) <= whole
        assert got == list(event_scalars(io.BytesIO(data), "f"))[:len(got)]


@given(st.binary(max_size=120))
def test_any_bytes_give_records_or_a_format_error(data: bytes) -> None:
    try:
        for _, d in read_records(io.BytesIO(data), "f"):
            assert d is None or len(d) <= len(data)
    except FormatError:
        pass
    assert is_record_header(data) in (True, False)


def test_tensor_scalars_of_every_numeric_dtype() -> None:
    import numpy as np
    from tensorboard.util import tensor_util

    for dtype, value in (("float32", 0.25), ("float64", 1e-300), ("int32", -7), ("int64", 1 << 40),
                         ("uint8", 200), ("int16", -300), ("int8", -5), ("uint16", 60000),
                         ("float16", 0.5), ("bool", True), ("uint32", 1 << 31),
                         ("uint64", 1 << 63)):
        proto = tensor_util.make_tensor_proto(np.array(value, dtype=dtype))
        assert tensor_scalar(proto) == float(value), dtype
        packed = tensor_util.make_tensor_proto(np.array(value, dtype=dtype))
        packed.tensor_content = np.array(value, dtype=dtype).tobytes()
        assert tensor_scalar(packed) == float(value), dtype
    assert tensor_scalar(tensor_util.make_tensor_proto(np.array([1.0, 2.0]))) is None
    assert tensor_scalar(tensor_util.make_tensor_proto(np.array("text"))) is None


def test_hyperparameters_from_config_files() -> None:
    callback = json.dumps({"config": {"lr": 0.01, "opt": {"name": "adam", "beta": [0.9, 0.99]},
                                      "big": list(range(40)), "long": "x" * 1000,
                                      "flag": True, "nan": None},
                           "model": {"class_name": "Sequential"}, "save_format": "keras"})
    assert hparams_from_configs([("config.json", callback.encode())]) == {
        "lr": 0.01, "opt.name": "adam", "opt.beta": "[0.9, 0.99]", "flag": True}
    two = hparams_from_configs([("a.json", b'{"x": 1}'), ("b.yaml", b"lr: 0.1\n"),
                                ("c.json", b'{"x": 2, "d": {"e": "f"}}')])
    assert two == {"a.x": 1, "c.x": 2, "c.d.e": "f"}  # YAML is not read: no hyperparameters
    assert hparams_from_configs([("x.json", b"[1, 2]"), ("y.json", b'{"v": NaN}')]) == {}
    many = json.dumps({f"k{i:03d}": i for i in range(500)}).encode()
    assert len(hparams_from_configs([("m.json", many)])) == MAX_HPARAMS
    deep = ('{"a":' * 40 + "1" + "}" * 40).encode()  # deeper than JSON may nest: skipped
    assert hparams_from_configs([("d.json", deep)]) == {}


def test_note_add_of_event_files_does_not_import_tensorflow(tmp_path: Path) -> None:
    """`git ml note add --log DIR` in a fresh process: TensorFlow stays out of sys.modules."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed: nothing could import it")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "commit", "-q", "--allow-empty", "-m", "c")
    run_gitml(root, "init")
    _tb_written(tmp_path / "tb" / "train")
    code = ("import sys, json\n"
            "from mlgit.cli.main import main\n"
            "main(['note', 'add', '--log', sys.argv[1]])\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras'))))\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tb")], cwd=root,
                       capture_output=True, text=True, check=True)
    out = p.stdout.splitlines()
    assert out[0].startswith("log tb (tfevents) -> ")
    assert json.loads(out[-1]) == []
    assert p.stderr == ""  # no TensorFlow noise
    (rec,) = [json.loads(line) for line in git(root, "notes", "--ref", "ml", "show").stdout
              .splitlines()]
    assert rec["scalars"]["train/loss"]["count"] == 3


def test_session_events_are_the_same_bytes_in_every_process() -> None:
    """The HParams session file does not depend on the process's string hash seed.

    TensorBoard serializes the hyperparameter map in its iteration order; a board
    refresh compares digests, so bytes that vary between processes made every
    refresh rewrite every run.
    """
    code = ("import sys; from mlgit.records.hparams import session_events; "
            "h = {'lr': 0.1, 'units': 4, 'act': 'relu', 'opt': 'adam', 'drop': 0.5, "
            "'layers': 3, 'wd': 1e-4, 'bs': 32}; "
            "sys.stdout.buffer.write(session_events('alice/run', h, 1700000000.0))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout
            for seed in range(6)}
    assert len(outs) == 1
