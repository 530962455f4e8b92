"""Hugging Face ``datasets`` and Ray Data read versioned data through ``mlgit://``.

Both libraries open fsspec URLs (``datasets``: ``data_files`` and ``storage_options``;
Ray Data: a PyArrow filesystem wrapping the fsspec one), so nothing of git-ml's own is
needed. Skipped where the library is not installed (both are in the ``test`` extra).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_gitml

pd = pytest.importorskip("pandas")
fsspec = pytest.importorskip("fsspec")


def _csv(seed: int, rows: int = 800) -> bytes:
    r = random.Random(seed)
    return ("id,x,label\n" + "".join(f"{seed * 10_000 + i},{r.random():.6f},{r.choice('ab')}\n"
                                    for i in range(rows))).encode()


FILES = {f"data/part-{i}.csv": _csv(i) for i in range(3)}


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, str]:
    """A repository with dataset ``data`` (three CSVs): (root, snapshot id)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(root, FILES)
    run_gitml(root, "add", "data")
    return root, run_gitml(root, "show", "data", "--json").stdout.split('"id": "')[1][:32]


def _want(root: Path) -> Any:
    return pd.concat([pd.read_csv(root / n) for n in sorted(FILES)], ignore_index=True)


def test_hugging_face_datasets_loads_and_streams_a_version(dataset: tuple[Path, str],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    root, oid = dataset
    files = f"mlgit://{oid}/*.csv"
    loaded = datasets.load_dataset("csv", data_files=files, split="train",
                                   storage_options={"repo": str(root)},
                                   cache_dir=str(tmp_path / "hf-cache"))
    got = loaded.to_pandas().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _want(root), check_dtype=False)
    streamed = datasets.load_dataset("csv", data_files=files, split="train", streaming=True,
                                     storage_options={"remote": str(root),
                                                      "cache_dir": str(tmp_path / "cache")})
    rows = sorted(streamed, key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(_want(root)["id"])


def test_ray_data_reads_a_version_through_pyarrow(dataset: tuple[Path, str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    ray_data = pytest.importorskip("ray.data")
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    root, oid = dataset
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    fs = fsspec.filesystem("mlgit", remote=str(root), cache_dir=str(tmp_path / "cache"))
    # Ray's sockets live under its temporary directory: a short path (AF_UNIX's limit).
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    try:
        ds = ray_data.read_csv(oid, filesystem=PyFileSystem(FSSpecHandler(fs)))
        got = ds.to_pandas().sort_values("id").reset_index(drop=True)
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    pd.testing.assert_frame_equal(got, _want(root), check_dtype=False)
