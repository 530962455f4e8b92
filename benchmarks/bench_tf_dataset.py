#!/usr/bin/env python3
"""``mlgit.tf.dataset`` read paths against TensorFlow reading the files themselves.

Writes ``--files`` TFRecord files of ``--size-mib`` MiB in all (records of
``--record-kib`` KiB of random hex-like text), adds them as dataset ``data`` to a
fresh repository, and times one full pass over the records of each:

- ``tf files``: ``tf.data.TFRecordDataset`` over the files themselves (the floor);
- ``local copy``: ``mlgit.tf.dataset`` reading the clean work tree's copy (the same
  reader, plus the listing and the lineage hook);
- ``streamed``: ``checkout=False``: through ``mlgit://`` from the repository's store,
  TFRecord framing and CRC32C in Python;
- ``streamed x4``: the same with ``num_parallel_reads=4``;
- ``no clone``: ``remote=`` the repository, a fresh cache directory (cold), then again
  (the cache warm).

Each line: seconds, MiB/s and records/s. Run::

    .venv/bin/python benchmarks/bench_tf_dataset.py              # 256 MiB, about a minute
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 1 << 20
_HEX = bytes(b"0123456789abcdef"[i % 16] for i in range(256))


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--record-kib", type=int, default=16)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import mlgit.tf

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-tfdata-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        run(["git", "init", "-q"], root)
        run(["git", "ml", "init"], root)
        rng = random.Random(1)
        per_file = args.size_mib * MIB // args.files
        rec = args.record_kib * 1024
        (root / "data").mkdir()
        count = 0
        for i in range(args.files):
            with tf.io.TFRecordWriter(str(root / "data" / f"part-{i:03d}.tfrecord")) as w:
                for _ in range(max(1, per_file // rec)):
                    w.write(rng.randbytes(rec).translate(_HEX))
                    count += 1
        total = sum(p.stat().st_size for p in (root / "data").iterdir())
        run(["git", "ml", "add", "data"], root)
        files = sorted(str(p) for p in (root / "data").iterdir())
        print(f"{args.files} files, {total / MIB:.0f} MiB, {count} records of "
              f"{args.record_kib} KiB")

        def timed(label: str, make: Callable[[], Any]) -> None:
            ds = make()
            t = time.perf_counter()
            for _ in ds.batch(64):
                pass
            s = time.perf_counter() - t
            print(f"{label:<18} {s:7.2f} s {total / MIB / s:8.1f} MiB/s "
                  f"{count / s:9.0f} records/s")

        for _ in tf.data.TFRecordDataset(files).batch(64):  # warm: page cache, TF's start
            pass
        timed("tf files", lambda: tf.data.TFRecordDataset(files))
        timed("local copy", lambda: mlgit.tf.dataset("data", repo=root))
        timed("streamed", lambda: mlgit.tf.dataset("data", repo=root, checkout=False))
        timed("streamed x4", lambda: mlgit.tf.dataset("data", repo=root, checkout=False,
                                                      num_parallel_reads=4))
        opts = {"remote": str(root), "cache_dir": str(Path(tmp) / "cache")}
        timed("no clone, cold", lambda: mlgit.tf.dataset("data", storage_options=opts))
        timed("no clone, warm", lambda: mlgit.tf.dataset("data", storage_options=opts))


if __name__ == "__main__":
    main()
