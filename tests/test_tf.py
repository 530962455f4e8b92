"""mlgit.tf: CheckpointCallback, load and restore with real TensorFlow on the CPU.

Tiny models and data made here; skipped when TensorFlow is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree

from mlgit import errors
from mlgit.api.repo import Repo
from mlgit.format.ids import hex_to_raw


@pytest.fixture
def tf(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


@pytest.fixture
def mltf(tf: Any) -> Any:  # noqa: ARG001 - TensorFlow imported (or the test skipped) first
    import mlgit.tf

    return mlgit.tf


@pytest.fixture
def committed(repo_dir: Path) -> Path:
    """``repo_dir`` with a first commit, so that HEAD exists for the notes."""
    make_tree(repo_dir, {"train.py": "# trains the model\n"})
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-qm", "training code")
    return repo_dir


def _data(n: int = 256) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(42)
    x = rng.random((n, 4), dtype=np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5], dtype=np.float32) > 0.5).astype("float32")
    return x, y


def _model(tf: Any) -> Any:
    keras = tf.keras
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return m


def _note(root: Path) -> list[dict[str, Any]]:
    text = git(root, "notes", "--ref", "ml", "show", "HEAD").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_callback_commits_every_epoch_and_load_restores_the_model(
        tf: Any, mltf: Any, committed: Path) -> None:
    import numpy as np

    x, y = _data()
    model = _model(tf)
    cb = mltf.CheckpointCallback("tiny", repo=committed, config={"lr": 0.001, "seed": 0})
    hist = model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[cb])

    assert [e for e, _ in cb.checkpoints] == [0, 1, 2]
    ids = [i for _, i in cb.checkpoints]
    with Repo(committed) as r:
        infos = [r.show(i) for i in ids]
        assert r.resolve("tiny") == ids[-1]
    for n, info in enumerate(infos):
        snap = info.snapshot
        assert snap.kind == "checkpoint"
        assert snap.name == "tiny"
        assert snap.parents == ((ids[n - 1],) if n else ())
        meta = snap.meta
        assert meta["step"] == n + 1
        assert meta["metrics"] == {k: pytest.approx(v[n]) for k, v in hist.history.items()}
        assert [c["name"] for c in meta["config"]] == ["config.json"]
        assert [f.path for f in info.files or []] == ["model.keras"]

    recs = _note(committed)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for rec in recs:
        by_type.setdefault(rec["type"], []).append(rec)
    assert [r["id"] for r in by_type["checkpoint"]] == ids
    assert [r["checkpoint"] for r in by_type["log"]] == ids
    assert [r["checkpoint"] for r in by_type["graph"]] == ids
    who = "Test Author <author@example.com>"  # conftest's identity, as git would record it
    assert {r["author"] for t in ("checkpoint", "log", "graph") for r in by_type[t]} == {who}
    last_log = by_type["log"][-1]
    assert last_log["format"] == "csv"
    assert last_log["scalars"]["loss"]["count"] == 3
    assert last_log["scalars"]["loss"]["last"] == pytest.approx(hist.history["loss"][-1])
    graph = by_type["graph"][-1]
    assert graph["format"] == "keras-json"
    assert graph["summary"]["layers"] == 3

    # The config file holds the given config and the model's description.
    with Repo(committed) as r:
        blob = r.store.objects.get(hex_to_raw(infos[0].snapshot.meta["config"][0]["id"]))
    config = json.loads(blob)
    assert config["config"] == {"lr": 0.001, "seed": 0}
    assert config["model"]["class_name"] == "Sequential"

    loaded = mltf.load("tiny", repo=committed)
    assert isinstance(loaded, tf.keras.Model)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    first = mltf.load(ids[0], repo=committed, compile=False)
    assert len(first.weights) == len(model.weights)


def test_callback_every_n_epochs_commits_the_last_epoch_too(
        tf: Any, mltf: Any, committed: Path) -> None:
    x, y = _data(128)
    cb = mltf.CheckpointCallback("every2", every_epochs=2, repo=committed, datasets=[])
    _model(tf).fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[cb])
    assert [e for e, _ in cb.checkpoints] == [1, 2]
    with Repo(committed) as r:
        steps = [r.show(i, files=False).snapshot.meta["step"] for _, i in cb.checkpoints]
    assert steps == [2, 3]
    # Resumed with initial_epoch: epoch 3 is committed (4 % 2 == 0), epoch 4 at the end
    # of training; the history goes on from the first fit.
    _model(tf).fit(x, y, epochs=5, initial_epoch=3, batch_size=64, verbose=0, callbacks=[cb])
    assert [e for e, _ in cb.checkpoints] == [1, 2, 3, 4]
    log = [rec for rec in _note(committed) if rec["type"] == "log"][-1]
    assert log["scalars"]["loss"]["count"] == 5
    assert log["scalars"]["loss"]["last_step"] == 4


def test_callback_savedmodel_format(tf: Any, mltf: Any, committed: Path) -> None:
    import numpy as np

    x, y = _data(128)
    model = _model(tf)
    cb = mltf.CheckpointCallback("exported", save_format="savedmodel", repo=committed)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[cb])
    assert len(cb.checkpoints) == 1
    loaded = mltf.load("exported", repo=committed)
    assert isinstance(loaded, mltf.SavedModelPredictor)
    assert loaded.endpoint == "serve"
    np.testing.assert_allclose(loaded.predict(x), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded(x).numpy(), loaded.predict(x))


@pytest.mark.usefixtures("tf")
def test_callback_checks_its_arguments_before_training(
        mltf: Any, committed: Path, tmp_path: Path) -> None:
    with pytest.raises(errors.UsageError):
        mltf.CheckpointCallback("bad name", repo=committed)
    with pytest.raises(errors.UsageError):
        mltf.CheckpointCallback("run", every_epochs=0, repo=committed)
    with pytest.raises(errors.UsageError):
        mltf.CheckpointCallback("run", save_format="h5", repo=committed)
    with pytest.raises(errors.UsageError):
        mltf.CheckpointCallback("run", config={"f": object()}, repo=committed)
    with pytest.raises(errors.RevisionError):
        mltf.CheckpointCallback("run", datasets=["no-such-data"], repo=committed)
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "-q")
    with pytest.raises(errors.NotInitializedError):
        mltf.CheckpointCallback("run", repo=plain)


def test_tf_train_checkpoint_round_trip(tf: Any, mltf: Any, committed: Path,
                                        tmp_path: Path) -> None:
    import numpy as np

    v = tf.Variable([1.0, 2.0, 3.0])
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(v=v, step=step)
    ckpt_dir = tmp_path / "tfckpt"
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=3)
    manager.save()  # ckpt-1
    v.assign([4.0, 5.0, 6.0])
    step.assign(7)
    manager.save()  # ckpt-2
    saved = v.numpy().copy()

    with Repo(committed) as r:
        whole = r.commit_ckpt(ckpt_dir, run="manager", step=7)
        prefix = r.commit_ckpt(ckpt_dir / "ckpt-1", run="prefix", step=0)

    v.assign([0.0, 0.0, 0.0])
    step.assign(0)
    status = mltf.restore("manager", ckpt, repo=committed)
    status.assert_consumed()
    np.testing.assert_array_equal(v.numpy(), saved)
    assert int(step.numpy()) == 7

    # A checkpoint committed as a prefix (ckpt-1.index + ckpt-1.data-*) restores that one.
    mltf.restore(prefix.id, ckpt, repo=committed).assert_consumed()
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0, 3.0])

    # Into a fresh object graph of the same shape, as a new process would.
    fresh = tf.Variable(tf.zeros([3]))
    mltf.restore(whole.id, tf.train.Checkpoint(v=fresh), repo=committed).expect_partial()
    np.testing.assert_array_equal(fresh.numpy(), saved)

    types = [rec["type"] for rec in _note(committed)]
    assert types == ["checkpoint", "checkpoint"]

    with pytest.raises(errors.UsageError):
        mltf.load("manager", repo=committed)  # variables only: not a model


def test_restore_and_load_refuse_what_they_cannot_use(
        tf: Any, mltf: Any, committed: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    make_tree(junk, {"weights.bin": b"\x00" * 100})
    with Repo(committed) as r:
        r.commit_ckpt(junk, run="junk")
    with pytest.raises(errors.UsageError, match="no TensorFlow checkpoint"):
        mltf.restore("junk", tf.train.Checkpoint(v=tf.Variable(1.0)), repo=committed)
    with pytest.raises(errors.UsageError, match="no Keras model"):
        mltf.load("junk", repo=committed)
    with pytest.raises(errors.RevisionError):
        mltf.load("no-such-run", repo=committed)


def test_import_without_tensorflow_says_how_to_install() -> None:
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "try:\n    import mlgit.tf\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "pip install 'mlgit[tensorflow]'" in out.stdout
