"""Export for serving and adequacy tests (issue 11, part 3), with TensorFlow on the CPU.

Tiny Keras models made here. The command line runs in this process (TensorFlow is
imported once) except where the point is a fresh process: the exported model
loaded by plain ``tf.saved_model.load`` in a new ``python``, and ``git ml verify
--export`` run by the installed ``git-ml`` outside any repository, as a
deployment step runs it. Skipped when TensorFlow is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import fsck_ok, git, make_tree, note_records, read_tree, run_gitml
from test_docs import DOCS, documented_fields, section

import mlgit
from mlgit import errors
from mlgit.cli import main as cli_main


@pytest.fixture
def tf(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


@pytest.fixture
def committed(repo_dir: Path) -> Path:
    make_tree(repo_dir, {"train.py": "# trains the model\n"})
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-qm", "training code")
    return repo_dir


def gitml(capsys: pytest.CaptureFixture[str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """``git ml ARGS`` in this process (TensorFlow already loaded): exit code, stdout, stderr."""
    capsys.readouterr()
    try:
        cli_main.main(["-C", str(cwd), *args])
        rc = 0
    except SystemExit as e:
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _model(tf: Any, path: Path) -> Any:
    keras = tf.keras
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                          keras.layers.Dense(3)])
    m.save(str(path))
    return m


def _inputs(n: int = 6, width: int = 4) -> Any:
    import numpy as np

    return np.random.default_rng(7).random((n, width)).astype("float32")


def _csv(path: Path, x: Any) -> Path:
    lines = [",".join(f"c{i}" for i in range(x.shape[1]))]
    lines += [",".join(repr(float(v)) for v in row) for row in x]
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(root: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in note_records(root) if r["type"] == kind]


def _tamper(tf: Any, version_dir: Path) -> None:
    """Change one weight of the last layer in ``variables/``, rewriting it as TensorFlow does."""
    prefix = str(version_dir / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    names = sorted(reader.get_variable_to_shape_map())
    values = [reader.get_tensor(n) for n in names]
    k = max(i for i, n in enumerate(names)
            if n.endswith("VARIABLE_VALUE") and getattr(values[i], "ndim", 0) == 2)
    changed = values[k].copy()
    changed.flat[0] += 0.5
    values[k] = changed
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(v, dtype=dtypes[n]) for n, v in zip(names, values,
                                                                                strict=True)])


# What a server does with the export: load it, take the REST request the export carries,
# run the signature it names, and compare with the response the export expects.
SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    version_dir = sys.argv[1]
    loaded = tf.saved_model.load(version_dir)
    extra = version_dir + "/assets.extra/"
    request = json.load(open(extra + "predict_request.json"))
    expected = np.array(json.load(open(extra + "predict_response.json"))["outputs"])
    serve = loaded.signatures[request["signature_name"]]
    specs = serve.structured_input_signature[1]
    inputs = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in request["inputs"].items()}
    (got,) = serve(**inputs).values()
    with np.load(extra + "samples.npz") as s:
        same = bool((s["outputs/output"] == expected.astype(np.float32)).all())
    print(json.dumps({"max_error": float(np.abs(got.numpy() - expected).max()),
                      "shape": list(got.shape), "json_is_npz": same}))
""")


def test_export_serves_the_samples_and_a_tampered_export_fails_verify(
        tf: Any, committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    work = tmp_path / "work"
    work.mkdir()
    _model(tf, work / "model.keras")
    x = _inputs()
    (work / "hp.json").write_text('{"lr": 0.01}\n')
    rc, out, err = gitml(capsys, committed, "commit-ckpt", str(work / "model.keras"), "--run",
                         "tiny", "--step", "3", "--config", str(work / "hp.json"),
                         "--samples", str(_csv(work / "x.csv", x)))
    assert rc == 0, err
    ckpt = mlgit.show("tiny", repo=committed).id
    (samples,) = _records(committed, "samples")
    assert samples["checkpoint"] == ckpt
    assert samples["count"] == 6
    assert samples["inputs"] == [{"name": "input", "dtype": "float32", "shape": [6, 4]}]
    assert samples["outputs"] == [{"name": "output", "dtype": "float32", "shape": [6, 3]}]
    assert samples["format"] == "npz"

    # verify REV passes and is noted on the checkpoint's commit.
    rc, out, err = gitml(capsys, committed, "verify", "tiny", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["passed"] is True
    assert report["count"] == 6
    assert report["mismatched"] == 0
    head = git(committed, "rev-parse", "HEAD").stdout.strip()
    assert report["noted_on"] == head
    (noted,) = _records(committed, "verify")
    assert noted["checkpoint"] == ckpt
    assert noted["samples"] == samples["object"]
    assert noted["passed"] is True
    assert noted["atol"] == 1e-08

    # Export: DIR/<model>/<version>/ with the SavedModel and the extras.
    out_dir = tmp_path / "serving"
    rc, out, err = gitml(capsys, committed, "export", "tiny", str(out_dir), "--json")
    assert rc == 0, err
    result = json.loads(out)
    json_doc = section((DOCS / "cli.md").read_text(), "## JSON output")
    assert set(result) == documented_fields(section(json_doc, "#### `export --json`"))
    assert set(report) == documented_fields(section(json_doc, "#### `verify --json`"))
    v1 = out_dir / "tiny" / "1"
    assert result["path"] == str(v1)
    assert result["version"] == 1
    assert result["verified"] is True
    assert result["source"] == "keras"
    assert (v1 / "saved_model.pb").is_file()
    assert (v1 / "variables" / "variables.index").is_file()
    assert sorted(p.name for p in (out_dir / "tiny").iterdir()) == ["1"]  # no temporary left
    manifest = json.loads((v1 / "assets.extra" / "mlgit-export.json").read_text())
    assert manifest["version_id"] == f"tiny:main:{head[:12]}:3:{ckpt[:12]}"
    assert manifest["checkpoint"]["id"] == ckpt
    assert manifest["code"]["commit"] == head
    assert manifest["code"]["branch"] == "main"
    assert manifest["version"] == 1
    assert manifest["signature"]["name"] == "serving_default"
    assert [(s["dtype"], s["shape"]) for s in manifest["signature"]["inputs"]] == [
        ("float32", [None, 4])]
    assert [s["shape"] for s in manifest["signature"]["outputs"]] == [[None, 3]]
    assert manifest["samples"]["count"] == 6
    assert manifest["samples"]["request"] == "predict_request.json"
    assert manifest["samples"]["response"] == "predict_response.json"
    assert manifest["config"] == [{"name": "hp.json", "id": manifest["config"][0]["id"],
                                   "size": 13, "file": "config/hp.json"}]
    assert (v1 / "assets.extra" / "config" / "hp.json").read_text() == '{"lr": 0.01}\n'

    # A fresh python loads it as TensorFlow Serving would and predicts the recorded outputs.
    p = subprocess.run([sys.executable, "-c", SERVE, str(v1)], capture_output=True, text=True,
                       check=False)
    assert p.returncode == 0, p.stderr
    served = json.loads(p.stdout.splitlines()[-1])
    assert served["shape"] == [6, 3]
    assert served["max_error"] <= 1e-6
    assert served["json_is_npz"] is True
    with np.load(v1 / "assets.extra" / "samples.npz") as s:
        np.testing.assert_array_equal(s["inputs/input"], x)

    # The next export is version 2; asking for version 1 again changes nothing.
    rc, out, err = gitml(capsys, committed, "export", "tiny", str(out_dir))
    assert rc == 0, err
    assert "to " + str(out_dir / "tiny" / "2") in out
    before = read_tree(out_dir)
    rc, out, err = gitml(capsys, committed, "export", "tiny", str(out_dir), "--version", "1")
    assert rc == errors.BadPathError.exit_code
    assert err.count("\n") == 1
    assert "already exists" in err
    assert read_tree(out_dir) == before

    # One weight changed in version 2's variables/: verify --export, run as a deployment
    # step runs it (the installed git-ml, no repository), fails with the worst mismatches.
    _tamper(tf, out_dir / "tiny" / "2")
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    p = subprocess.run(["git-ml", "verify", "--export", str(out_dir / "tiny")], cwd=deploy,
                       capture_output=True, text=True, check=False)
    assert p.returncode == errors.VerificationError.exit_code == 15, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("git-ml:")]
    assert len(lines) == 1
    assert lines[0].startswith(f"git-ml: error: verification of tiny:main:{head[:12]}:3:")
    assert "samples differ beyond atol=1e-08, rtol=1e-05" in lines[0]
    stdout = p.stdout.splitlines()
    assert stdout[0].startswith("FAILED: export tiny:main:")
    assert stdout[1].split() == ["index", "output", "expected", "got", "error"]
    worst = stdout[2].split()
    assert worst[1].startswith("output[")
    assert float(worst[4]) == pytest.approx(abs(float(worst[3]) - float(worst[2])), rel=1e-4)
    # The untouched version still passes, in JSON.
    rc, out, err = gitml(capsys, deploy, "verify", "--export", str(v1), "--json")
    assert rc == 0, err
    assert json.loads(out)["version_id"] == manifest["version_id"]
    fsck_ok(committed)


def test_samples_travel_with_the_notes_and_verify_in_a_clone(
        tf: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    alice = tmp_path / "alice"
    alice.mkdir()
    git(alice, "init", "-q", "-b", "main")
    run_gitml(alice, "init")
    make_tree(alice, {"train.py": "pass\n"})
    git(alice, "add", "train.py")
    git(alice, "commit", "-qm", "code")
    _model(tf, tmp_path / "model.keras")
    result = mlgit.commit_ckpt(tmp_path / "model.keras", run="tiny", step=1,
                               samples=_inputs(5), repo=alice)
    git(alice, "remote", "add", "origin", str(origin))
    git(alice, "push", "-q", "-u", "origin", "main")  # the pre-push hook sends the samples
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    run_gitml(bob, "fetch")
    rc, out, err = gitml(capsys, bob, "verify", "tiny")
    assert rc == 0, err
    assert out.startswith(f"ok: tiny {result.id[:12]}: all 5 samples match")
    fsck_ok(alice, bob, origin)


def test_samples_of_the_wrong_shape_are_refused_and_nothing_is_stored(
        tf: Any, committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _model(tf, tmp_path / "model.keras")
    notes_before = git(committed, "notes", "--ref", "ml", "list", check=False).stdout
    for name, content in [("narrow.csv", _csv(tmp_path / "n.csv", _inputs(4, 3)).read_text()),
                          ("ragged.csv", "1,2,3,4\n5,6,7\n"),
                          ("words.csv", "1,2,3,4\n5,6,seven,8\n"),
                          ("inputs.txt", "1 2 3 4\n")]:
        (tmp_path / name).write_text(content)
        rc, _, err = gitml(capsys, committed, "commit-ckpt", str(tmp_path / "model.keras"),
                           "--run", "tiny", "--samples", str(tmp_path / name))
        assert rc == errors.UsageError.exit_code, (name, err)
        assert err.count("\n") == 1, err
        assert err.startswith(f"git-ml: error: samples {name}: "), err
    assert "shape (4, 3), the model takes (None, 4)" in gitml(
        capsys, committed, "commit-ckpt", str(tmp_path / "model.keras"), "--run", "tiny",
        "--samples", str(tmp_path / "narrow.csv"))[2]
    assert mlgit.ls(repo=committed) == []
    assert git(committed, "notes", "--ref", "ml", "list", check=False).stdout == notes_before
    # In Python, the callback refuses them before training.
    from mlgit.tf import CheckpointCallback

    with pytest.raises(errors.UsageError, match="dtype"):
        CheckpointCallback("tiny", repo=committed, samples=[["a", "b"]])


def test_a_checkpoint_that_is_not_a_model_and_one_without_samples(
        tf: Any, committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path, {"ck/weights.txt": "not a model\n"})
    run_gitml(committed, "commit-ckpt", str(tmp_path / "ck"), "--run", "notmodel")
    out_dir = tmp_path / "serving"
    rc, _, err = gitml(capsys, committed, "export", "notmodel", str(out_dir))
    assert rc == errors.UsageError.exit_code
    assert err.count("\n") == 1
    assert "holds no model" in err
    assert not out_dir.exists()
    rc, _, err = gitml(capsys, committed, "verify", "notmodel")
    assert rc == errors.UsageError.exit_code
    assert "has no samples to verify" in err
    # A model without samples exports (unverified) and says so; verify --export refuses it.
    _model(tf, tmp_path / "m.keras")
    run_gitml(committed, "commit-ckpt", str(tmp_path / "m.keras"), "--run", "plain")
    rc, out, err = gitml(capsys, committed, "export", "plain", str(out_dir), "--model",
                         "served", "--version", "7")
    assert rc == 0, err
    assert "no samples to check" in out
    rc, _, err = gitml(capsys, committed, "verify", "--export", str(out_dir / "served"))
    assert rc == errors.UsageError.exit_code
    assert "exported without samples" in err
    rc, _, err = gitml(capsys, committed, "verify", "--export", str(tmp_path / "ck"))
    assert rc == errors.UsageError.exit_code
    assert "no SavedModel here" in err
    rc, _, err = gitml(capsys, committed, "verify")
    assert rc == errors.UsageError.exit_code

    # Samples whose outputs this model does not give (a caller that lied): the export's
    # own check refuses it, and nothing is left behind, not even the model's directory.
    import numpy as np

    from mlgit.api import checkpoints
    from mlgit.api.repo import Repo
    from mlgit.tf.samples import write_samples

    x = _inputs(3)
    lie = write_samples(tmp_path, {"input": x}, {"output": np.zeros((3, 3), np.float32)})
    with Repo(committed) as r:
        checkpoints.commit_ckpt(r, tmp_path / "m.keras", run="lied", samples=lie)
    rc, out, err = gitml(capsys, committed, "export", "lied", str(tmp_path / "new" / "dir"))
    assert rc == errors.VerificationError.exit_code
    assert "3 of 3 samples differ" in err
    assert not (tmp_path / "new").exists()
    rc, out, err = gitml(capsys, committed, "export", "lied", str(out_dir), "--no-verify")
    assert rc == 0, err
    assert "not verified" in out
    assert sorted(os.listdir(out_dir)) == ["lied", "served"]


def test_callback_samples_and_a_tf_checkpoint_with_its_model_json(
        tf: Any, committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from mlgit.tf import CheckpointCallback

    keras = tf.keras
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="mse")
    x = _inputs(32)
    cb = CheckpointCallback("cb", repo=committed, samples=x[:8])
    model.fit(x, np.zeros((32, 2)), epochs=2, verbose=0, callbacks=[cb])
    recs = _records(committed, "samples")
    assert [r["checkpoint"] for r in recs] == [i for _, i in cb.checkpoints]
    assert mlgit.verify("cb", repo=committed).passed
    assert mlgit.verify("cb~1", repo=committed, record=False).passed
    assert len(_records(committed, "verify")) == 1

    # A SavedModel checkpoint: its samples run through its serving signature; exported as
    # a copy, which must give them too.
    sm = CheckpointCallback("sm", repo=committed, save_format="savedmodel", samples=x[:5])
    model.fit(x, np.zeros((32, 2)), epochs=1, verbose=0, callbacks=[sm])
    r = mlgit.export("sm", tmp_path / "serving", repo=committed, model="copied")
    assert r.source == "savedmodel"
    assert r.verification is not None
    assert r.verification.passed
    assert r.signature is not None
    assert [s["shape"] for s in r.signature["inputs"]] == [[None, 4]]
    assert mlgit.verify("sm", repo=committed, record=False).passed

    # tf.train.Checkpoint files and the model's JSON as a config file: rebuilt and exported.
    ck = tmp_path / "tfck"
    ck.mkdir()
    prefix = tf.train.Checkpoint(model=model).write(str(ck / "ckpt-1"))
    (tmp_path / "model.json").write_text(model.to_json())
    np.save(tmp_path / "x.npy", x[:4])
    rc, _, err = gitml(capsys, committed, "commit-ckpt", prefix, "--run", "tfck", "--config",
                       str(tmp_path / "model.json"), "--samples", str(tmp_path / "x.npy"))
    assert rc == 0, err
    r = mlgit.export("tfck", tmp_path / "serving", repo=committed)
    assert r.source == "tf-checkpoint"
    assert r.verification is not None
    assert r.verification.passed
    v = mlgit.verify(export=tmp_path / "serving" / "tfck" / "1")
    assert v.passed
    assert v.comparison.max_error is not None
    assert v.comparison.max_error < 1e-6
    with pytest.raises(errors.UsageError, match="one of them"):
        mlgit.verify()
    # Without the model's JSON a TensorFlow checkpoint is not a model.
    run_gitml(committed, "commit-ckpt", prefix, "--run", "bare")
    with pytest.raises(errors.UsageError, match="without the model's description"):
        mlgit.export("bare", tmp_path / "serving", repo=committed)
    assert sorted(os.listdir(tmp_path / "serving")) == ["copied", "tfck"]
