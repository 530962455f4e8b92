"""Dask reads a pinned dataset version from S3 with no clone, on a real two-worker cluster.

``dask.dataframe.read_csv("mlgit://ID/*.csv", storage_options=...)`` on a
``distributed.LocalCluster`` with two worker processes, the data in an S3 bucket on
moto's server (a separate process on 127.0.0.1): each worker unpickles the
filesystem from its storage options, resolves the id against the bucket's packs and
reads its partitions by ranged reads. The result equals pandas reading the files
that were added.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, run_gitml

pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


def _csv(seed: int, rows: int) -> bytes:
    r = random.Random(seed)
    lines = ["id,x,y,label"] + [f"{seed * 100_000 + i},{r.random():.6f},{r.randint(0, 999)},"
                                f"{r.choice(['cat', 'dog', 'fox'])}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_dask_reads_a_snapshot_by_id_from_s3_on_two_workers(tmp_path: Path, s3_env: Any,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    root = tmp_path / "alice"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init", "--chunk-size", "16384")
    files = {f"data/part-{i:04d}.csv": _csv(i, 4000 + 500 * i) for i in range(6)}
    make_tree(root, {**files, "data/notes.txt": b"not a csv\n"})
    run_gitml(root, "add", "data")
    oid = run_gitml(root, "show", "data", "--json").stdout.split('"id": "')[1][:32]
    url = f"s3://{s3_env.bucket}/team-{uuid.uuid4().hex[:8]}"
    git(root, "config", "ml.origin.url", url)
    git(root, "config", "ml.origin.endpoint", s3_env.endpoint)
    run_gitml(root, "push", "origin")

    worker_dir = tmp_path / "worker"  # no repository anywhere up from here
    worker_dir.mkdir()
    monkeypatch.chdir(worker_dir)
    options = {"remote": url, "endpoint": s3_env.endpoint,
               "cache_dir": str(tmp_path / "cache")}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1",
                                  local_directory=str(tmp_path / "dask")) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        frame = dd.read_csv(f"mlgit://{oid}/*.csv", storage_options=options,
                            blocksize=64 << 10)
        assert frame.npartitions > 6  # the files are split into byte ranges too
        with distributed.get_task_stream(client) as stream:
            got = frame.compute()
        assert len({task["worker"] for task in stream.data}) == 2  # both workers read
    want = pd.concat([pd.read_csv(root / name) for name in sorted(files)], ignore_index=True)
    # Dask reads strings as pyarrow strings; the values are what matter.
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)
    assert list(got["label"]) == list(want["label"])
