"""The ``mlgit://`` fsspec filesystem on a repository: fsspec, pandas and PyArrow read it.

Everything goes through the real libraries (``fsspec.open``, ``fsspec.filesystem``,
``pandas.read_csv``, ``pyarrow.dataset``) and the real ``git`` and ``git ml``; the
data is compared with the files that were added.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_gitml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")

from fsspec.utils import read_block  # noqa: E402

import mlgit  # noqa: E402
from mlgit.api.repo import Repo  # noqa: E402
from mlgit.format.pack import OBJ_CHUNK  # noqa: E402
from mlgit.fs import MlgitFileSystem, ReadOnlyError, url  # noqa: E402
from mlgit.store.store import Store  # noqa: E402


def _csv(seed: int, rows: int = 1500) -> bytes:
    import random
    r = random.Random(seed)
    lines = ["id,x,label"] + [f"{i},{r.random():.6f},{r.choice('abc')}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


FILES = {
    "train/part-0001.csv": _csv(1),
    "train/part-0002.csv": _csv(2),
    "train/part-0003.csv": _csv(3),
    "test/part-0001.csv": _csv(4, 300),
    "README": b"three parts of train, one of test\n",
}


@pytest.fixture
def data_repo(repo_dir: Path) -> tuple[Path, list[str]]:
    """``repo_dir`` with dataset ``data`` in two versions; returns (root, [v1 id, v2 id])."""
    make_tree(repo_dir / "data", {**FILES, "train/part-0002.csv": b"id,x,label\n0,0.5,a\n"})
    (repo_dir / "data" / "latest").symlink_to("train/part-0003.csv")
    v1 = mlgit.add(repo_dir / "data", repo=repo_dir).id
    make_tree(repo_dir / "data", FILES)
    v2 = mlgit.add(repo_dir / "data", message="v2", repo=repo_dir).id
    return repo_dir, [v1, v2]


def _fs(root: Path, **kw: Any) -> Any:
    return fsspec.filesystem("mlgit", repo=str(root), skip_instance_cache=True, **kw)


def _store_files(root: Path) -> dict[str, int]:
    """Every file under the store with its size (to see that nothing was written)."""
    ml = root / ".git" / "ml"
    return {str(p.relative_to(ml)): p.stat().st_size for p in ml.rglob("*") if p.is_file()}


# -- reading -------------------------------------------------------------------------------
def test_fsspec_open_reads_a_file_of_a_version(data_repo: tuple[Path, list[str]]) -> None:
    root, _ = data_repo
    with fsspec.open("mlgit://data/train/part-0001.csv", "rb", repo=str(root)) as f:
        assert f.read() == FILES["train/part-0001.csv"]
    with fsspec.open("mlgit://data/README", "rt", repo=str(root)) as f:
        assert f.read() == FILES["README"].decode()


def test_every_revision_form_names_its_version(data_repo: tuple[Path, list[str]]) -> None:
    root, (v1, v2) = data_repo
    fs = _fs(root)
    old = b"id,x,label\n0,0.5,a\n"
    for rev, want in [("data", FILES["train/part-0002.csv"]), ("data~1", old), ("data~", old),
                      (v1, old), (v2[:8], FILES["train/part-0002.csv"]),
                      (f"data@{v1[:6]}", old), (f"data@{v1[:6]}~0", old)]:
        assert fs.cat_file(f"{url(rev)}/train/part-0002.csv") == want, rev
        assert fs.cat_file(url(rev, "train/part-0002.csv")) == want, rev


def test_pandas_reads_csv_by_revision(data_repo: tuple[Path, list[str]]) -> None:
    root, (_, v2) = data_repo
    for rev in ("data", v2, f"data@{v2[:5]}"):
        df = pd.read_csv(f"mlgit://{rev}/train/part-0003.csv", storage_options={"repo": str(root)})
        pd.testing.assert_frame_equal(df, pd.read_csv(root / "data/train/part-0003.csv"))


def test_pyarrow_dataset_reads_a_directory(data_repo: tuple[Path, list[str]]) -> None:
    ds = pytest.importorskip("pyarrow.dataset")
    root, (_, v2) = data_repo
    fs = _fs(root)
    table = ds.dataset(f"{v2}/train", format="csv", filesystem=fs).to_table()
    want = pd.concat([pd.read_csv(root / f"data/train/part-000{i}.csv") for i in (1, 2, 3)],
                     ignore_index=True)
    got = table.to_pandas().sort_values(["id", "x"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want.sort_values(["id", "x"]).reset_index(drop=True))


def test_ls_info_find_glob_walk(data_repo: tuple[Path, list[str]]) -> None:
    root, (_, v2) = data_repo
    fs = _fs(root)
    assert fs.ls("mlgit://", detail=False) == ["data"]
    assert fs.ls("data", detail=False) == ["data/README", "data/latest", "data/test",
                                           "data/train"]
    top = fs.info("mlgit://data")
    assert top["type"] == "directory"
    assert top["snapshot"] == v2
    assert top["files"] == 6
    assert top["size"] == sum(map(len, FILES.values()))  # file bytes (links count none)
    info = fs.info("data/train/part-0001.csv")
    assert info["type"] == "file"
    assert info["size"] == len(FILES["train/part-0001.csv"])
    assert fs.size("data/test/part-0001.csv") == len(FILES["test/part-0001.csv"])
    assert fs.isdir("data/train")
    assert fs.isfile("data/README")
    assert not fs.exists("data/nope")
    assert fs.glob("mlgit://data/train/*.csv") == [f"data/train/part-000{i}.csv" for i in (1, 2, 3)]
    assert fs.glob("data/**/part-0001.csv") == ["data/test/part-0001.csv",
                                               "data/train/part-0001.csv"]
    assert fs.find("data") == sorted(f"data/{p}" for p in [*FILES, "latest"])
    assert fs.find("data", maxdepth=1) == ["data/README", "data/latest"]
    assert fs.find("data", withdirs=True, maxdepth=1) == [
        "data", "data/README", "data/latest", "data/test", "data/train"]
    assert fs.find("data/README") == ["data/README"]
    walked = {p: (sorted(d), sorted(f)) for p, d, f in fs.walk("data")}
    assert walked == {"data": (["test", "train"], ["README", "latest"]),
                      "data/test": ([], ["part-0001.csv"]),
                      "data/train": ([], [f"part-000{i}.csv" for i in (1, 2, 3)])}
    assert [p for p, _, _ in fs.walk("data", topdown=False)][-1] == "data"
    assert fs.du("data/train") == sum(len(FILES[f"train/part-000{i}.csv"]) for i in (1, 2, 3))
    assert fs.modified("data/README").timestamp() == top["time"]


def test_symlinks_are_followed_inside_the_snapshot(data_repo: tuple[Path, list[str]]) -> None:
    root, _ = data_repo
    fs = _fs(root)
    info = fs.info("data/latest")
    assert info["islink"]
    assert info["destination"] == "train/part-0003.csv"
    assert info["type"] == "file"
    assert info["size"] == len(FILES["train/part-0003.csv"])
    assert fs.cat_file("data/latest") == FILES["train/part-0003.csv"]
    listed = {i["name"]: i for i in fs.ls("data")}
    assert listed["data/latest"]["type"] == "other"  # ls does not follow


def test_byte_ranges_read_only_what_they_cover(data_repo: tuple[Path, list[str]]) -> None:
    root, _ = data_repo
    fs = _fs(root)
    data = FILES["train/part-0001.csv"]
    p = "data/train/part-0001.csv"
    assert fs.cat_file(p, 100, 200) == data[100:200]
    assert fs.cat_file(p, -50) == data[-50:]
    assert fs.cat_file(p, 10, -10) == data[10:-10]
    assert fs.cat_file(p, len(data) - 5, len(data) + 100) == data[-5:]
    assert fs.cat_file(p, 500, 400) == b""
    assert fs.cat_ranges([p, p], [0, 7000], [10, 7010]) == [data[:10], data[7000:7010]]
    with fs.open(p, block_size=4096) as f:
        f.seek(5000)
        assert f.read(3000) == data[5000:8000]
        assert f.tell() == 8000
        f.seek(-10, os.SEEK_END)
        assert f.read() == data[-10:]
    assert fs.read_block(p, 1000, 500, delimiter=b"\n") == read_block(
        io.BytesIO(data), 1000, 500, delimiter=b"\n")


@hsettings(max_examples=60, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(-40000, 40000), end=st.one_of(st.none(), st.integers(-40000, 40000)))
def test_any_range_equals_the_slice(data_repo: tuple[Path, list[str]], start: int,
                                    end: int | None) -> None:
    root, _ = data_repo
    fs = _fs(root)
    data = FILES["train/part-0002.csv"]
    assert fs.cat_file("data/train/part-0002.csv", start, end) == data[start:end]


def test_a_file_snapshot_is_a_file_at_its_revision(repo_dir: Path) -> None:
    (repo_dir / "model.bin").write_bytes(os.urandom(50_000))
    mlgit.add(repo_dir / "model.bin", repo=repo_dir)
    fs = _fs(repo_dir)
    assert fs.info("model.bin")["type"] == "file"
    assert fs.cat_file("model.bin") == (repo_dir / "model.bin").read_bytes()
    assert fs.find("model.bin") == ["model.bin"]
    with pytest.raises(NotADirectoryError):
        fs.info("model.bin/x")


def test_a_remote_tracking_name_is_written_with_percent_2f(tmp_path: Path,
                                                         data_repo: tuple[Path, list[str]]
                                                         ) -> None:
    root, (_, v2) = data_repo
    git(root, "commit", "-qm", "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "-u", "origin", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    run_gitml(clone, "init")
    run_gitml(clone, "fetch", "origin")
    assert url("origin/data", "README") == "mlgit://origin%2Fdata/README"
    fs = _fs(clone)
    assert fs.cat_file(url("origin/data", "README")) == FILES["README"]
    assert fs.info("origin%2Fdata")["snapshot"] == v2
    assert "origin%2Fdata" in fs.ls("", detail=False)


def test_a_lazy_clone_fetches_only_the_chunks_a_range_needs(tmp_path: Path) -> None:
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    big = os.urandom(400_000)
    make_tree(a, {"data/big.bin": big, "data/small.txt": b"small\n"})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(a, "remote", "add", "origin", str(origin))
    git(a, "push", "-q", "-u", "origin", "main")
    b = tmp_path / "bob"
    git(tmp_path, "clone", "-q", "--no-checkout", str(origin), str(b))
    run_gitml(b, "init")

    fs = _fs(b)
    assert fs.cat_file("data/big.bin", 200_000, 210_000) == big[200_000:210_000]
    store = Store.open(b / ".git" / "ml")
    try:
        chunks = len(store.objects.ids(OBJ_CHUNK))
        total = len(Store.open(a / ".git" / "ml").objects.ids(OBJ_CHUNK))
    finally:
        store.close()
    assert 0 < chunks < total / 4  # the range's few chunks, not the file's ~100
    assert fs.cat_file("data/big.bin") == big  # and the rest when asked for
    fs.close()


# -- what cannot be done -----------------------------------------------------------------------
WRITES = [
    ("open for writing", lambda fs: fs.open("data/new.csv", "wb")),
    ("open for appending", lambda fs: fs.open("data/README", "ab")),
    ("open text for writing", lambda fs: fs.open("data/new.txt", "w")),
    ("pipe_file", lambda fs: fs.pipe_file("data/new", b"x")),
    ("pipe", lambda fs: fs.pipe({"data/new": b"x"})),
    ("write_text", lambda fs: fs.write_text("data/new", "x")),
    ("write_bytes", lambda fs: fs.write_bytes("data/new", b"x")),
    ("touch", lambda fs: fs.touch("data/new")),
    ("mkdir", lambda fs: fs.mkdir("data/newdir")),
    ("makedirs", lambda fs: fs.makedirs("data/a/b", exist_ok=True)),
    ("rmdir", lambda fs: fs.rmdir("data/test")),
    ("rm", lambda fs: fs.rm("data/README")),
    ("rm recursive", lambda fs: fs.rm("data", recursive=True)),
    ("rm_file", lambda fs: fs.rm_file("data/README")),
    ("delete", lambda fs: fs.delete("data/README")),
    ("cp_file", lambda fs: fs.cp_file("data/README", "data/README2")),
    ("copy", lambda fs: fs.copy("data/train", "data/train2", recursive=True)),
    ("mv", lambda fs: fs.mv("data/README", "data/README2")),
    ("rename", lambda fs: fs.rename("data/README", "data/README2")),
    ("put_file", lambda fs: fs.put_file(__file__, "data/new.py")),
    ("put", lambda fs: fs.put(__file__, "data/new.py")),
    ("upload", lambda fs: fs.upload(__file__, "data/new.py")),
]


@pytest.mark.parametrize(("what", "write"), WRITES, ids=[w for w, _ in WRITES])
def test_every_write_is_refused_and_changes_nothing(data_repo: tuple[Path, list[str]],
                                                   what: str, write: Any) -> None:
    root, _ = data_repo
    fs = _fs(root)
    before = _store_files(root)
    with pytest.raises(ReadOnlyError) as err:
        write(fs)
    assert isinstance(err.value, PermissionError)
    assert isinstance(err.value, NotImplementedError)
    assert err.value.errno == errno.EROFS
    assert "read-only" in str(err.value), what
    assert _store_files(root) == before
    assert fs.cat_file("data/README") == FILES["README"]


def test_bad_input_raises_what_fsspec_callers_expect(data_repo: tuple[Path, list[str]]
                                                     ) -> None:
    root, _ = data_repo
    fs = _fs(root)
    before = _store_files(root)
    cases: list[tuple[type[BaseException], str, Any]] = [
        (FileNotFoundError, "unknown revision 'nope'", lambda: fs.cat_file("nope/README")),
        (FileNotFoundError, "unknown revision 'ffffffff'", lambda: fs.info("ffffffff")),
        (FileNotFoundError, "has only 1 ancestors", lambda: fs.ls("data~5")),
        (FileNotFoundError, "'train/nope.csv' is not in snapshot", lambda: fs.open(
            "data/train/nope.csv")),
        (FileNotFoundError, "not in snapshot", lambda: pd.read_csv(
            "mlgit://data/nope.csv", storage_options={"repo": str(root)})),
        (NotADirectoryError, "'README' is not a directory", lambda: fs.info("data/README/x")),
        (IsADirectoryError, "is a directory", lambda: fs.open("data/train")),
        (IsADirectoryError, "is a directory", lambda: fs.cat_file("data")),
    ]
    for kind, message, call in cases:
        with pytest.raises(kind, match=message):
            call()
    assert _store_files(root) == before


def test_links_that_leave_the_snapshot_or_loop_name_nothing(repo_dir: Path) -> None:
    d = repo_dir / "data"
    make_tree(d, {"sub/f.txt": b"f\n"})
    (d / "up").symlink_to("../outside.txt")
    (d / "abs").symlink_to("/etc/passwd")
    (d / "sub" / "deep").symlink_to("../../data/sub/f.txt")
    (d / "loop1").symlink_to("loop2")
    (d / "loop2").symlink_to("loop1")
    (d / "tosub").symlink_to("sub")
    mlgit.add(d, repo=repo_dir)
    fs = _fs(repo_dir)
    for name in ("up", "abs", "sub/deep"):
        with pytest.raises(FileNotFoundError, match=r"outside the snapshot|leaves the snapshot"):
            fs.cat_file(f"data/{name}")
        assert fs.info(f"data/{name}")["type"] == "other"  # the link itself, dangling
    with pytest.raises(OSError, match="symbolic links") as err:
        fs.cat_file("data/loop1")
    assert err.value.errno == errno.ELOOP
    assert fs.cat_file("data/tosub/f.txt") == b"f\n"  # a link to a directory, in a path
    assert fs.find("data") == ["data/abs", "data/loop1", "data/loop2", "data/sub/deep",
                               "data/sub/f.txt", "data/tosub", "data/up"]


def test_storage_options_are_checked(repo_dir: Path) -> None:
    options: dict[str, Any] = {"cache-dir": "/tmp/x"}
    with pytest.raises(TypeError, match="no storage option 'cache-dir'"):
        MlgitFileSystem(**options)
    with pytest.raises(ValueError, match="not both"):
        MlgitFileSystem(repo=str(repo_dir), remote=str(repo_dir))
    with pytest.raises(ValueError, match="is for reading a remote"):
        MlgitFileSystem(repo=str(repo_dir), endpoint="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="timeout"):
        MlgitFileSystem(remote=str(repo_dir), timeout=-1)
    with pytest.raises(ValueError, match="block_size"):
        MlgitFileSystem(repo=str(repo_dir), block_size=0)


def test_outside_a_repository_it_says_so(tmp_path: Path) -> None:
    fs = _fs(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"not a git repository|not inside"):
        fs.ls("data")


# -- what travels ----------------------------------------------------------------------------
def test_it_pickles_by_its_options_and_reads_in_another_process(
        data_repo: tuple[Path, list[str]]) -> None:
    root, (_, v2) = data_repo
    fs = fsspec.filesystem("mlgit", repo=str(root))
    fs.cat_file("data/README")  # opened: the source is not part of the pickle
    blob = pickle.dumps(fs)
    assert pickle.loads(blob).storage_options == {"repo": str(root)}
    code = ("import pickle, sys; fs = pickle.loads(sys.stdin.buffer.read()); "
            f"sys.stdout.buffer.write(fs.cat_file('{v2}/train/part-0001.csv'))")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                         check=True, cwd="/")
    assert out.stdout == FILES["train/part-0001.csv"]
    dask_base = pytest.importorskip("dask.base")
    assert dask_base.tokenize(fs) == dask_base.tokenize(
        fsspec.filesystem("mlgit", repo=str(root)))


def test_repo_defaults_to_the_current_directory(data_repo: tuple[Path, list[str]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = data_repo
    monkeypatch.chdir(root / "data")
    with fsspec.open("mlgit://data/README", skip_instance_cache=True) as f:
        assert f.read() == FILES["README"]
    with Repo(root) as r:  # and the repository's own API sees the same version
        assert r.resolve("data") == fsspec.filesystem(
            "mlgit", skip_instance_cache=True).info("data")["snapshot"]


def test_parquet_is_read_by_its_footer_and_columns(repo_dir: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": list(range(20_000)), "x": [i * 0.5 for i in range(20_000)],
                      "label": [["a", "b", "c"][i % 3] for i in range(20_000)]})
    (repo_dir / "tables").mkdir()
    pq.write_table(table, repo_dir / "tables" / "t.parquet", row_group_size=5000)
    mlgit.add(repo_dir / "tables", repo=repo_dir)
    got = pd.read_parquet("mlgit://tables/t.parquet", storage_options={"repo": str(repo_dir)},
                          columns=["id", "label"])
    pd.testing.assert_frame_equal(got, table.select(["id", "label"]).to_pandas())
    fs = _fs(repo_dir)
    assert pq.ParquetFile(fs.open("tables/t.parquet")).metadata.num_rows == 20_000
