"""Adequacy samples without a model: records, the export manifest, the bounded samples reader
and the comparison (``numpy.isclose``'s rule), on hand-made and hostile input.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mlgit.errors import FormatError, UnsupportedFormatError, UsageError
from mlgit.format.export import decode_manifest, version_id
from mlgit.format.records import SamplesRecord, VerifyRecord, decode_note, encode_record
from mlgit.format.samples import ArraySpec

HEX = "0123456789abcdef" * 2
SPEC_IN = {"name": "input", "dtype": "float32", "shape": [2, 4]}
SPEC_OUT = {"name": "output", "dtype": "float32", "shape": [2, 3]}
SAMPLES = {"type": "samples", "v": 1, "object": HEX, "name": "samples.npz", "format": "npz",
           "size": 10, "checkpoint": HEX, "time": 1, "author": "A <a@x>", "count": 2,
           "inputs": [SPEC_IN], "outputs": [SPEC_OUT]}
VERIFY = {"type": "verify", "v": 1, "checkpoint": HEX, "samples": HEX, "run": "r",
          "passed": False, "count": 2, "mismatched": 1, "atol": 1e-8, "rtol": 1e-5,
          "max_error": 0.5, "worst": [{"index": 1, "output": "output", "position": [2],
                                       "expected": 1.0, "got": 1.5, "error": 0.5}],
          "time": 1, "author": "A <a@x>"}


def test_samples_and_verify_records_round_trip() -> None:
    (s, v), problems = decode_note(encode_record(SAMPLES) + "\n" + encode_record(VERIFY))
    assert problems == []
    assert isinstance(s, SamplesRecord)
    assert s.inputs == (ArraySpec("input", "float32", (2, 4)),)
    assert s.roots() == [(HEX, "tree")]  # the payload travels and is kept
    assert isinstance(v, VerifyRecord)
    assert v.worst[0].position == (2,)
    assert v.roots() == []  # an audit line: keeps nothing alive


@pytest.mark.parametrize(("change", "message"), [
    ({"checkpoint": None}, "checkpoint is missing"),
    ({"count": 3}, "does not start with the count 3"),
    ({"count": 0}, "count must be an integer"),
    ({"inputs": []}, "must list 1 to"),
    ({"inputs": [{**SPEC_IN, "dtype": "object"}]}, "dtype must be one of"),
    ({"inputs": [{**SPEC_IN, "name": "a/b"}]}, "not an input or output name"),
    ({"inputs": [{**SPEC_IN, "shape": [2, -1]}]}, "is not a dimension"),
    ({"inputs": [SPEC_IN, SPEC_IN]}, "names repeat"),
    ({"outputs": [{**SPEC_OUT, "shape": [2, 1 << 26, 1 << 26]}]}, "more than 64 MiB"),
])
def test_bad_samples_records_are_problems(change: dict[str, Any], message: str) -> None:
    records, problems = decode_note(json.dumps({**SAMPLES, **change}))
    assert records == []
    assert len(problems) == 1
    assert message in problems[0]


@pytest.mark.parametrize(("change", "message"), [
    ({"passed": "yes"}, "passed must be true or false"),
    ({"mismatched": 3}, "mismatched <= count"),
    ({"atol": -1}, "atol must be a finite number >= 0"),
    ({"samples": "zz"}, "samples: must be an object id"),
    ({"worst": [{"index": 0, "output": "o", "error": -1}]}, "error must be a finite number"),
    ({"run": "a run"}, "not a run name"),
])
def test_bad_verify_records_are_problems(change: dict[str, Any], message: str) -> None:
    records, problems = decode_note(json.dumps({**VERIFY, **change}))
    assert records == []
    assert message in problems[0]


def test_version_id_names_model_branch_commit_step_and_checkpoint() -> None:
    assert version_id("m", "feature/x", "a" * 40, False, 20, HEX) == \
        f"m:feature/x:{'a' * 12}:20:{HEX[:12]}"
    assert version_id("m", None, None, False, None, HEX) == f"m:-:-:-:{HEX[:12]}"
    assert version_id("m", "main", "b" * 40, True, 0, HEX).split(":")[2] == "b" * 12 + "+dirty"


def _manifest(**change: Any) -> bytes:
    m = {"format": "mlgit-export", "v": 1, "version_id": "m:main:abc:1:def", "model": "m",
         "version": 3, "checkpoint": {"id": HEX},
         "samples": {"count": 2, "inputs": [SPEC_IN], "outputs": [SPEC_OUT]}, **change}
    return json.dumps(m).encode()


def test_manifest_decoder() -> None:
    m = decode_manifest(_manifest())
    assert (m.model, m.version, m.checkpoint) == ("m", 3, HEX)
    assert m.samples is not None
    assert m.samples[0] == 2
    assert decode_manifest(_manifest(samples=None)).samples is None
    with pytest.raises(UnsupportedFormatError, match="upgrade git-ml"):
        decode_manifest(_manifest(v=2))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"format": "x"}, "not a git-ml export manifest"),
        ({"model": "a/b"}, "not a model name"),
        ({"version": -1}, "must be an integer"),
        ({"checkpoint": {"id": 1}}, "object id"),
        ({"samples": {"count": 2, "inputs": [SPEC_IN], "outputs": []}}, "must list 1 to")]
    for change, message in cases:
        with pytest.raises(FormatError, match=message):
            decode_manifest(_manifest(**change))
    with pytest.raises(FormatError, match="NaN"):
        decode_manifest(_manifest().replace(b'"version": 3', b'"version": NaN'))


# -- with NumPy (mlgit.tf imports TensorFlow) ----------------------------------------------


@pytest.fixture
def samples(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("tensorflow")
    import mlgit.tf.samples

    return mlgit.tf.samples


def _npz(path: Path, **arrays: Any) -> Path:
    import numpy as np

    with path.open("wb") as f:
        np.savez(f, **arrays)
    return path


def test_compare_is_isclose_per_sample_and_names_the_worst(samples: Any) -> None:
    import numpy as np

    exp = np.array([[0.0, 1.0], [2.0, np.nan], [4.0, 5.0]], dtype=np.float32)
    same = samples.compare({"output": exp}, {"whatever": exp.copy()}, 3)
    assert same.passed  # one output each: compared whatever their names; NaN equals NaN
    assert same.max_error == 0.0
    got = exp.copy()
    got[0, 1] += 1e-6  # within rtol 1e-5 of 1.0
    got[2, 0] += 0.5
    got[1, 0] = np.inf
    c = samples.compare({"output": exp}, {"output": got}, 3)
    assert (c.passed, c.mismatched, c.count) == (False, 2, 3)
    assert [(m.index, m.output, m.position) for m in c.worst] == [(1, "output", (0,)),
                                                                   (2, "output", (0,))]
    assert c.worst[0].got is None  # not finite
    assert c.worst[1].expected == 4.0
    assert c.worst[1].error == pytest.approx(0.5)
    assert c.max_error == pytest.approx(0.5)
    assert samples.compare({"output": exp}, {"output": got}, 3, show=1).worst[0].index == 1
    assert samples.compare({"output": exp}, {"output": got}, 3, atol=1.0).mismatched == 1
    # A missing output or another shape fails every sample, and says why.
    two = {"a": exp, "b": exp}
    c = samples.compare(two, {"a": exp, "c": exp}, 3)
    assert (c.mismatched, c.problems) == (3, ["the model gives no output b (it gives ['a', 'c'])"])
    c = samples.compare({"output": exp}, {"output": exp[:, :1]}, 3)
    assert c.mismatched == 3
    assert "shape (3, 1), expected (3, 2)" in c.problems[0]


def test_read_samples_is_bounded_and_checked(samples: Any, tmp_path: Path) -> None:
    import numpy as np

    x = np.zeros((2, 4), np.float32)
    y = np.ones((2, 3), np.float32)
    good = _npz(tmp_path / "good.npz", **{"inputs/input": x, "outputs/output": y})
    s = samples.read_samples(good, (2, (ArraySpec("input", "float32", (2, 4)),),
                                    (ArraySpec("output", "float32", (2, 3)),)))
    assert s.count == 2
    with pytest.raises(FormatError, match="not the ones its record describes"):
        samples.read_samples(good, (2, (ArraySpec("input", "float64", (2, 4)),),
                                    (ArraySpec("output", "float32", (2, 3)),)))
    bad_member = _npz(tmp_path / "m.npz", **{"inputs/input": x, "extra": y})
    with pytest.raises(FormatError, match="not inputs/NAME or outputs/NAME"):
        samples.read_samples(bad_member)
    pickled = _npz(tmp_path / "p.npz", **{"inputs/input": np.array([{"a": 1}, None]),
                                          "outputs/output": y})
    with pytest.raises(FormatError, match=r"samples p\.npz"):
        samples.read_samples(pickled)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match=r"not a valid \.npz"):
        samples.read_samples(tmp_path / "junk.npz")
    # A member that claims more than the bound is refused from the zip's directory.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inputs/input.npy", b"\0" * ((64 << 20) + 1))
    (tmp_path / "bomb.npz").write_bytes(buf.getvalue())
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    with pytest.raises(FormatError, match="more than 64 MiB"):
        samples.read_samples(tmp_path / "bomb.npz")
    (tmp_path / "link.npz").symlink_to(good)
    with pytest.raises(FormatError, match="symbolic link"):
        samples.read_samples(tmp_path / "link.npz")


def test_read_inputs(samples: Any, tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "h.csv").write_text("a,b\n1,2\n3,4.5\n\n")
    got = samples.read_inputs(tmp_path / "h.csv")
    assert list(got) == ["input"]
    np.testing.assert_array_equal(got["input"], [[1, 2], [3, 4.5]])
    named = samples.read_inputs(_npz(tmp_path / "n.npz", a=np.zeros((3, 1)), b=np.ones((3, 2))))
    assert list(named) == ["a", "b"]
    one = samples.read_inputs(_npz(tmp_path / "o.npz", x=np.zeros((3, 1))))
    assert list(one) == ["input"]
    for name, content, message in [
            ("e.csv", "a,b\n", "no rows of numbers"),
            ("r.csv", "1,2\n3\n", "row 2 has 1 columns"),
            ("w.npz", None, "different numbers of samples"),
            ("x.json", "[]", "give a .csv, .npy or .npz")]:
        if content is None:
            _npz(tmp_path / name, a=np.zeros((3, 1)), b=np.ones((2, 2)))
        else:
            (tmp_path / name).write_text(content)
        with pytest.raises(UsageError, match=message):
            samples.read_inputs(tmp_path / name)
    with pytest.raises(UsageError, match="no such file"):
        samples.read_inputs(tmp_path / "missing.csv")
