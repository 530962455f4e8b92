"""``mlgit.tf.dataset``: a version's files as a ``tf.data.Dataset``, and the lineage it leaves.

Real TensorFlow on the CPU, the real ``git`` and ``git ml``, two teammates (alice
adds and pushes, bob clones) and a worker with no clone at all. The records are
compared with what TensorFlow's own readers give for the files alice wrote (with
``tf.io.TFRecordWriter``): from a clone's work tree, from a clone with no checkout
(streamed, fetched lazily from the local-path remote), and from the remote with no
clone. A tiny Keras model trained on ``mlgit.tf.dataset(...)`` with
``CheckpointCallback`` records the version in its lineage (``git ml lineage``).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_gitml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported
tf = pytest.importorskip("tensorflow")
pytest.importorskip("fsspec")

import fsspec  # noqa: E402

import mlgit  # noqa: E402
import mlgit.tf  # noqa: E402
from mlgit import errors  # noqa: E402
from mlgit.api.repo import Repo  # noqa: E402
from mlgit.format.pack import OBJ_CHUNK  # noqa: E402
from mlgit.records.tfevents import masked_crc  # noqa: E402
from mlgit.store.store import Store  # noqa: E402
from mlgit.tf.data import csv_records, lines, match, tfrecords  # noqa: E402


# -- the data ------------------------------------------------------------------------------
def _example(i: int) -> bytes:
    x = [float(i % 7) / 7, float(i % 3) / 3, float(i % 5) / 5, float(i % 2)]
    y = 1.0 if x[0] - x[1] + x[3] > 0.4 else 0.0
    ex = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=x)),
        "y": tf.train.Feature(float_list=tf.train.FloatList(value=[y]))}))
    return bytes(ex.SerializeToString())


def _write_tfrecords(path: Path, records: list[bytes], compression: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options=compression or None) as w:
        for r in records:
            w.write(r)


def _make_data(root: Path) -> None:
    """Dataset ``data``: TFRecords (one GZIP), CSVs, text with CR LF and without an end."""
    d = root / "data"
    for i, name in enumerate(["train/part-0.tfrecord", "train/part-1.tfrecord",
                              "train/deeper/part-2.tfrecord", "train/part-3.tfrecord"]):
        _write_tfrecords(d / name, [_example(10 * i + j) for j in range(8)])
    _write_tfrecords(d / "packed/part-0.tfrecord.gz", [b"gz-%d" % j for j in range(5)], "GZIP")
    make_tree(d, {
        "table/a.csv": 'id,x,name\n1,0.5,"a, quoted"\n2,1.5,"two\nlines"\n3,,c\n',
        "table/b.csv": "id,x,name\n4,2.5,d\n5,3.5,e\n",
        "notes/one.txt": "first\r\nsecond\n\nfourth",
        "notes/two.txt": "alpha\nbeta\n",
        "README": "not a record file\n",
        "tabs/x.tsv": "a\tb\n1\tq, r\n2\ts\n",
    })
    (d / "notes" / "three.txt.gz").write_bytes(gzip.compress(b"gz line 1\ngz line 2\n"))


def _tf_records(files: list[Path], kind: str, compression: str = "") -> list[Any]:
    """What TensorFlow's own readers give for ``files``, in order (the originals)."""
    names = [str(f) for f in files]
    if kind == "tfrecord":
        ds = tf.data.TFRecordDataset(names, compression_type=compression)
    else:
        ds = tf.data.TextLineDataset(names, compression_type=compression)
    return [bytes(x.numpy()) for x in ds]


def _py(t: Any) -> Any:
    v = t.numpy()
    return v if isinstance(v, bytes) else v.item()


def _values(ds: Any) -> list[Any]:
    out: list[Any] = []
    for x in ds:
        if isinstance(x, dict):
            out.append({k: _py(v) for k, v in x.items()})
        elif isinstance(x, tuple):
            out.append(({k: _py(v) for k, v in x[0].items()}, _py(x[1])))
        else:
            out.append(_py(x))
    return out


CSV_ROWS = [{"id": 1, "x": 0.5, "name": b"a, quoted"}, {"id": 2, "x": 1.5, "name": b"two\nlines"},
            {"id": 3, "x": 0.0, "name": b"c"}, {"id": 4, "x": 2.5, "name": b"d"},
            {"id": 5, "x": 3.5, "name": b"e"}]


@pytest.fixture
def team(tmp_path: Path) -> dict[str, Any]:
    """Alice adds ``data`` (and ``other``) and pushes to ``origin.git``; bob's clone has no data.

    Returns alice, origin, bob (a clone with ``git ml init`` done, nothing checked
    out or fetched), the id of ``data``, and the originals alice's files give.
    """
    alice = tmp_path / "alice"
    alice.mkdir()
    git(alice, "init", "-q")
    run_gitml(alice, "init")
    _make_data(alice)
    make_tree(alice, {"other/x.txt": "another dataset\n"})
    run_gitml(alice, "add", "data", "other")
    git(alice, "add", "-A")
    git(alice, "commit", "-qm", "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(alice, "remote", "add", "origin", str(origin))
    git(alice, "push", "-q", "-u", "origin", "main")
    oid = json.loads(run_gitml(alice, "show", "data", "--json").stdout)["id"]
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    d = alice / "data"
    train = sorted(["train/part-0.tfrecord", "train/part-1.tfrecord",
                    "train/deeper/part-2.tfrecord", "train/part-3.tfrecord"])
    return {
        "alice": alice, "origin": origin, "bob": bob, "id": oid, "train": train,
        "train_records": _tf_records([d / f for f in train], "tfrecord"),
        "gz_records": _tf_records([d / "packed/part-0.tfrecord.gz"], "tfrecord", "GZIP"),
        "text_lines": _tf_records([d / "notes/one.txt", d / "notes/two.txt"], "text"),
        "gz_lines": _tf_records([d / "notes/three.txt.gz"], "text", "GZIP"),
    }


def _store_files(root: Path) -> dict[str, int]:
    ml = root / ".git" / "ml"
    return {str(p.relative_to(ml)): p.stat().st_size for p in ml.rglob("*") if p.is_file()}


def _check_all(team: dict[str, Any], **where: Any) -> list[Any]:
    """Every kind of record, read ``where`` says, equals the originals; returns the infos."""
    infos = []
    ds = mlgit.tf.dataset("data", "train/**/*.tfrecord", **where)
    assert _values(ds) == team["train_records"]
    infos.append(ds.mlgit)
    ds = mlgit.tf.dataset("data", "packed/*.gz", **where)  # GZIP from the suffix
    assert _values(ds) == team["gz_records"] == [b"gz-%d" % j for j in range(5)]
    ds = mlgit.tf.dataset("data", "notes/*.txt", **where)
    assert _values(ds) == team["text_lines"] == [b"first", b"second", b"", b"fourth", b"alpha",
                                                 b"beta"]
    ds = mlgit.tf.dataset("data", "notes/*.txt.gz", **where)
    assert _values(ds) == team["gz_lines"]
    ds = mlgit.tf.dataset("data", "table/*.csv", **where)
    assert {k: v.dtype for k, v in ds.element_spec.items()} == {
        "id": tf.int32, "x": tf.float32, "name": tf.string}
    assert _values(ds) == CSV_ROWS
    ds = mlgit.tf.dataset("data", "table/*.csv", label_name="x", select_columns=["x", "id"],
                          **where)
    assert _values(ds) == [({"id": r["id"]}, r["x"]) for r in CSV_ROWS]
    ds = mlgit.tf.dataset("data", "tabs/*", **where)  # .tsv: tab-separated
    assert _values(ds) == [{"a": 1, "b": b"q, r"}, {"a": 2, "b": b"s"}]
    return infos


# -- where the bytes come from ---------------------------------------------------------------
def test_records_from_a_clones_work_tree(team: dict[str, Any]) -> None:
    bob = team["bob"]
    run_gitml(bob, "checkout")  # bob's work tree holds the data: TensorFlow reads it there
    (info,) = _check_all(team, repo=bob)
    assert info.local == bob / "data"
    assert (info.id, info.name, info.format) == (team["id"], "data", "tfrecord")
    assert info.files == tuple(team["train"])
    assert list(info.paths) == [str(bob / "data" / f) for f in team["train"]]
    assert not (bob / ".git" / "ml" / "checkouts" / team["id"]).exists()  # no second copy


def _chunks(root: Path) -> int:
    store = Store.open(root / ".git" / "ml")
    try:
        return len(store.objects.ids(OBJ_CHUNK))
    finally:
        store.close()


def test_records_from_a_clone_with_no_checkout_stream_lazily(team: dict[str, Any]) -> None:
    bob = team["bob"]
    assert _chunks(bob) == 0  # nothing fetched yet
    (info,) = _check_all(team, repo=bob)
    assert 0 < _chunks(bob) <= _chunks(team["alice"])  # fetched lazily, as read
    assert info.local is None  # streamed through mlgit://, fetched lazily from origin
    assert info.paths[0] == f"mlgit://{team['id']}/{team['train'][0]}"
    assert not (bob / "data").exists()
    assert not (bob / ".git" / "ml" / "checkouts" / team["id"]).exists()


def test_checkout_true_makes_a_read_only_checkout_and_reads_it(team: dict[str, Any]) -> None:
    bob = team["bob"]
    ds = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob, checkout=True)
    where = bob / ".git" / "ml" / "checkouts" / team["id"]
    assert ds.mlgit.local == where
    assert _values(ds) == team["train_records"]
    # and from then on, without asking, the checkout is used
    again = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob)
    assert again.mlgit.local == where
    streamed = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob, checkout=False)
    assert streamed.mlgit.local is None
    assert _values(streamed) == team["train_records"]


def test_records_from_a_remote_with_no_clone(team: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    worker = tmp_path / "worker"
    worker.mkdir()
    monkeypatch.chdir(worker)  # no repository anywhere up from here
    cache = tmp_path / "cache"
    opts = {"remote": str(team["origin"]), "cache_dir": str(cache)}
    (info,) = _check_all(team, storage_options=opts)
    assert (info.local, info.id) == (None, team["id"])
    by_id = mlgit.tf.dataset(team["id"], "train/**/*.tfrecord", remote=str(team["origin"]),
                             storage_options={"cache_dir": str(cache)})
    assert _values(by_id) == team["train_records"]
    # paths: mlgit:// URLs the caller's own reader opens with the same storage options
    urls = [bytes(p.numpy()).decode() for p in mlgit.tf.dataset(
        team["id"], "table/*.csv", output="paths", storage_options=opts)]
    assert urls == [f"mlgit://{team['id']}/table/a.csv", f"mlgit://{team['id']}/table/b.csv"]
    with fsspec.open(urls[1], "rb", **opts) as f:
        assert f.read() == (team["alice"] / "data/table/b.csv").read_bytes()
    assert not any(worker.iterdir())  # nothing written where the worker runs


def test_paths_mode_lists_the_snapshot_not_the_disk(team: dict[str, Any]) -> None:
    alice = team["alice"]
    (alice / "data" / "train" / "part-9.tfrecord").write_bytes(b"")  # not in the version
    ds = mlgit.tf.dataset("data", "train/**", output="paths", repo=alice, checkout=False)
    assert [bytes(p.numpy()).decode() for p in ds] == [
        f"mlgit://{team['id']}/{f}" for f in team["train"]]
    # the work tree differs from the version: it is not used; the listing is the snapshot's
    ds = mlgit.tf.dataset("data", "train/**", output="paths", repo=alice)
    assert ds.mlgit.local is None
    (alice / "data" / "train" / "part-9.tfrecord").unlink()
    ds = mlgit.tf.dataset("data", "**/*.tfrecord", output="paths", repo=alice)
    assert ds.mlgit.local == alice / "data"
    assert [bytes(p.numpy()).decode() for p in ds] == [
        str(alice / "data" / f) for f in team["train"]]  # not packed/*.tfrecord.gz


def test_shuffle_files_is_reproducible_with_a_seed(team: dict[str, Any]) -> None:
    bob = team["bob"]

    def order(seed: int | None, passes: int = 1, **kw: Any) -> list[list[str]]:
        ds = mlgit.tf.dataset("data", "train/**/*.tfrecord", output="paths", repo=bob,
                              shuffle_files=seed is not None, seed=seed, **kw)
        return [[bytes(p.numpy()).decode().rsplit("/", 1)[-1] for p in ds]
                for _ in range(passes)]

    unshuffled = [f.rsplit("/", 1)[-1] for f in team["train"]]  # sorted by path
    assert unshuffled[0] == "part-2.tfrecord"  # train/deeper/ sorts first
    assert order(None) == [unshuffled]
    runs = {seed: order(seed, passes=3) for seed in range(6)}
    for seed, passes in runs.items():
        assert order(seed, passes=3) == passes  # the same seed: the same orders, pass by pass
        assert all(sorted(p) == sorted(unshuffled) for p in passes)
    assert len({tuple(p[0]) for p in runs.values()}) > 1  # seeds differ
    assert any(p[0] != p[1] for p in runs.values())  # reshuffled each pass
    # records follow their files: shuffled files, each file's records in order
    ds = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob, shuffle_files=True, seed=3)
    got = _values(ds)
    assert len(got) == 32
    assert sorted(got) == sorted(team["train_records"])


def test_parallel_reads_give_every_record_deterministically(team: dict[str, Any]) -> None:
    bob = team["bob"]
    for checkout in (False, True):
        ds = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob, num_parallel_reads=3,
                              checkout=checkout)
        first = _values(ds)
        assert sorted(first) == sorted(team["train_records"])
        assert _values(ds) == first


def test_a_snapshot_of_one_file(repo_dir: Path) -> None:
    _write_tfrecords(repo_dir / "one.tfrecord", [b"a", b"b"])
    mlgit.add(repo_dir / "one.tfrecord", repo=repo_dir)
    ds = mlgit.tf.dataset("one.tfrecord", repo=repo_dir)
    assert ds.mlgit.local == repo_dir / "one.tfrecord"  # the work tree's copy, clean
    assert _values(ds) == [b"a", b"b"]
    _write_tfrecords(repo_dir / "one.tfrecord", [b"changed"])  # no longer that version
    where = []
    for checkout in (None, False, True, None):
        ds = mlgit.tf.dataset("one.tfrecord", repo=repo_dir, checkout=checkout)
        assert _values(ds) == [b"a", b"b"]
        assert ds.mlgit.files == ("",)
        where.append(ds.mlgit.local)
    made = repo_dir / ".git" / "ml" / "checkouts" / ds.mlgit.id / "one.tfrecord"
    assert where == [None, None, made, made]  # streamed, then the checkout once made
    assert made.is_file()
    assert mlgit.tf.dataset("one.tfrecord", repo=repo_dir, checkout=False).mlgit.paths == (
        f"mlgit://{ds.mlgit.id}",)


# -- lineage ----------------------------------------------------------------------------------
def _training(ds: Any) -> Any:
    spec = {"x": tf.io.FixedLenFeature([4], tf.float32),
            "y": tf.io.FixedLenFeature([1], tf.float32)}

    def parse(r: Any) -> Any:
        ex = tf.io.parse_single_example(r, spec)
        return ex["x"], ex["y"]

    return ds.map(parse).batch(8)


def _model() -> Any:
    keras = tf.keras
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy")
    return m


def test_a_run_records_the_dataset_it_trained_on(team: dict[str, Any]) -> None:
    bob = team["bob"]
    run_gitml(bob, "checkout")
    other = json.loads(run_gitml(bob, "show", "other", "--json").stdout)["id"]
    unused = mlgit.tf.dataset("other", "*.txt", repo=bob)  # made, never read during the fit
    assert _values(unused) == [b"another dataset"]  # (read before it: not counted)
    train = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob, shuffle_files=True,
                             seed=1)
    cb = mlgit.tf.CheckpointCallback("tiny", repo=bob, tensorboard=False)
    _model().fit(_training(train), epochs=2, callbacks=[cb], verbose=0)
    assert len(cb.checkpoints) == 2
    assert [(d.name, d.id) for d in cb.datasets_read()] == [("data", team["id"])]
    lin = json.loads(run_gitml(bob, "lineage", "--json", "tiny").stdout)
    for entry in lin:  # both checkpoints: the version read, not every pin of HEAD
        assert entry["datasets"] == [{"name": "data", "id": team["id"]}]
    assert all(d["id"] != other for e in lin for d in e["datasets"])
    # without mlgit.tf.dataset, the old default: every dataset HEAD pins
    x = tf.random.stateless_uniform((16, 4), seed=(1, 2))
    cb2 = mlgit.tf.CheckpointCallback("plain", repo=bob, tensorboard=False)
    _model().fit(x, tf.ones((16, 1)), epochs=1, callbacks=[cb2], verbose=0)
    plain = json.loads(run_gitml(bob, "lineage", "--json", "plain").stdout)
    assert sorted(d["name"] for d in plain[0]["datasets"]) == ["data", "other"]
    del unused


def test_explicit_datasets_win_and_lineage_false_is_not_recorded(team: dict[str, Any]) -> None:
    bob = team["bob"]
    run_gitml(bob, "checkout")
    other = json.loads(run_gitml(bob, "show", "other", "--json").stdout)["id"]
    train = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob)
    cb = mlgit.tf.CheckpointCallback("given", repo=bob, datasets=["other"], tensorboard=False)
    _model().fit(_training(train), epochs=1, callbacks=[cb], verbose=0)
    lin = json.loads(run_gitml(bob, "lineage", "--json", "given").stdout)
    assert lin[0]["datasets"] == [{"name": "other", "id": other}]
    quiet = mlgit.tf.dataset("data", "train/**/*.tfrecord", repo=bob, lineage=False)
    cb = mlgit.tf.CheckpointCallback("quiet", repo=bob, tensorboard=False)
    _model().fit(_training(quiet), epochs=1, callbacks=[cb], verbose=0)
    assert cb.datasets_read() == []


def test_a_run_records_a_version_streamed_from_a_remote_it_never_fetched(
        team: dict[str, Any], repo_dir: Path) -> None:
    make_tree(repo_dir, {"train.py": "# trains\n"})
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-qm", "code")
    train = mlgit.tf.dataset(team["id"], "train/**/*.tfrecord",
                             storage_options={"remote": str(team["origin"]),
                                              "cache_dir": str(repo_dir.parent / "cache")})
    cb = mlgit.tf.CheckpointCallback("remote-data", repo=repo_dir, tensorboard=False)
    _model().fit(_training(train), epochs=1, callbacks=[cb], verbose=0)
    lin = json.loads(run_gitml(repo_dir, "lineage", "--json", "remote-data").stdout)
    assert lin[0]["datasets"] == [{"name": "data", "id": team["id"]}]
    with Repo(repo_dir) as r, pytest.raises(errors.RevisionError):  # recorded, not fetched
        r.resolve(team["id"])


# -- bad input ------------------------------------------------------------------------------
def test_bad_input_is_a_clear_error_and_writes_nothing(team: dict[str, Any],
                                                       tmp_path: Path) -> None:
    alice = team["alice"]
    run_gitml(alice, "commit-ckpt", str(alice / "other"), "--run", "r1", "-q")
    before = _store_files(alice)
    cases: list[tuple[type[BaseException], str, dict[str, Any]]] = [
        (errors.RevisionError, "nope", {}),
        (errors.BadPathError, "data", {"pattern": "train/*.png"}),
        (errors.BadPathError, "data", {"pattern": "../other/*.txt"}),  # outside the snapshot
        (errors.UsageError, "r1", {}),  # a checkpoint
        (errors.UsageError, "data", {"pattern": "**"}),  # mixed kinds as records
        (errors.UsageError, "data", {"pattern": "README"}),  # no record reader
        (errors.UsageError, "data", {"output": "tensors"}),
        (errors.UsageError, "data", {"format": "parquet"}),
        (errors.UsageError, "data", {"compression_type": "BZIP2"}),
        (errors.UsageError, "data", {"num_parallel_reads": 0}),
        (errors.UsageError, "data", {"seed": "7"}),
        (errors.UsageError, "data", {"pattern": ""}),
        (errors.UsageError, "", {}),
        (errors.UsageError, "data", {"pattern": "table/*.csv", "select_columns": ["nope"]}),
        (errors.UsageError, "data", {"pattern": "table/*.csv", "label_name": "nope"}),
        (errors.UsageError, "data", {"pattern": "table/*.csv", "header": False}),
        (errors.UsageError, "data", {"storage_options": {"cache-dir": "/x"}}),
        (errors.UsageError, "data", {"storage_options": {"repo": str(alice)}}),
    ]
    for exc, rev, kw in cases:
        kw.setdefault("repo", alice)
        with pytest.raises(exc) as info:
            mlgit.tf.dataset(rev, **kw)
        assert str(info.value), (rev, kw)
        assert "\n" not in str(info.value), (rev, kw)
    assert _store_files(alice) == before
    with pytest.raises(errors.UsageError, match="checkout=True needs a repository"):
        mlgit.tf.dataset("data", remote=str(team["origin"]), checkout=True)
    cache = tmp_path / "no-cache"
    with pytest.raises(errors.RevisionError):
        mlgit.tf.dataset("nope", remote=str(team["origin"]),
                         storage_options={"cache_dir": str(cache)})
    with pytest.raises(errors.NotARepositoryError):
        mlgit.tf.dataset("data", remote=str(tmp_path / "nowhere"),
                         storage_options={"cache_dir": str(cache)})
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_a_csv_whose_header_differs_is_refused(repo_dir: Path) -> None:
    make_tree(repo_dir, {"t/a.csv": "id,x\n1,2\n", "t/b.csv": "id,y\n3,4\n"})
    mlgit.add(repo_dir / "t", repo=repo_dir)
    with pytest.raises(errors.FormatError, match="header row"):  # local: checked up front
        mlgit.tf.dataset("t", "*.csv", repo=repo_dir)
    ds = mlgit.tf.dataset("t", "*.csv", repo=repo_dir, checkout=False)  # streamed: as read
    with pytest.raises(tf.errors.OpError, match="header row"):
        _values(ds)


def test_a_damaged_tfrecord_stops_the_stream(repo_dir: Path) -> None:
    good = tf.io.serialize_tensor(tf.constant([1.0]))  # any bytes
    _write_tfrecords(repo_dir / "d" / "a.tfrecord", [good.numpy(), b"second"])
    raw = bytearray((repo_dir / "d" / "a.tfrecord").read_bytes())
    raw[-6] ^= 0xFF  # inside the second record's data
    (repo_dir / "d" / "a.tfrecord").write_bytes(bytes(raw))
    mlgit.add(repo_dir / "d", repo=repo_dir)
    ds = mlgit.tf.dataset("d", repo=repo_dir, checkout=False)
    with pytest.raises(tf.errors.OpError, match="fails its checksum"):
        _values(ds)
    with pytest.raises(tf.errors.DataLossError):  # TensorFlow's own reader agrees
        _values(mlgit.tf.dataset("d", repo=repo_dir))


# -- the pieces, without a repository ----------------------------------------------------------
def test_match_is_a_glob_over_snapshot_paths() -> None:
    paths = ["a.csv", "x/a.csv", "x/y/b.csv", "x/y/c.txt", "z.tfrecord"]
    assert match("**/*.csv", paths) == ["a.csv", "x/a.csv", "x/y/b.csv"]
    assert match("*.csv", paths) == ["a.csv"]
    assert match("x/**", paths) == ["x/a.csv", "x/y/b.csv", "x/y/c.txt"]
    assert match("x/*/?.csv", paths) == ["x/y/b.csv"]
    assert match("x/y/[!b].*", paths) == ["x/y/c.txt"]
    assert match("/z.tfrecord", paths) == ["z.tfrecord"]
    assert match("x", paths) == []


def _frame(data: bytes) -> bytes:
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked_crc(n)) + data + struct.pack("<I", masked_crc(data))


def test_tfrecord_framing_is_checked() -> None:
    recs = [b"", b"x" * 3000, b"end"]
    stream = b"".join(_frame(r) for r in recs)
    blocks = [stream[i:i + 7] for i in range(0, len(stream), 7)]  # records across blocks
    assert list(tfrecords(iter(blocks), "s")) == recs
    with pytest.raises(errors.FormatError, match="cut short"):
        list(tfrecords(iter([stream[:-1]]), "s"))
    bad = bytearray(stream)
    bad[8] ^= 1
    with pytest.raises(errors.FormatError, match="not a TFRecord at byte 0"):
        list(tfrecords(iter([bytes(bad)]), "s"))
    huge = struct.pack("<Q", 1 << 40)
    with pytest.raises(errors.FormatError, match="claims"):
        list(tfrecords(iter([huge + struct.pack("<I", masked_crc(huge))]), "s"))


def test_lines_and_csv_records_split_as_tensorflow_does() -> None:
    assert list(lines(iter([b"a\r", b"\nb\n", b"\nc"]))) == [b"a", b"b", b"", b"c"]
    assert list(csv_records(iter([b'1,"x\n', b'y",2\n\n3,4\n']))) == [b'1,"x\ny",2', b"3,4"]
