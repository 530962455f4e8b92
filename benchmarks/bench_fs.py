#!/usr/bin/env python3
"""Reading through the ``mlgit://`` fsspec filesystem against reading the files themselves.

Generates one file of ``--size-mib`` MiB (hex-like text: random, about 2:1
compressible), adds it with ``git ml add`` to a fresh repository, then measures,
each in a fresh process (so that its peak RSS is its own):

- ``file``: the materialized file (the work tree's copy), read sequentially in 1 MiB
  pieces, and ``--ranges`` random ``--range-kib`` KiB ranges (``os.pread``);
- ``repo``: the same through ``mlgit://data/...`` on the repository (its store);
- ``remote cold``: the same with no clone (``remote=PATH``, a fresh cache directory):
  every object read from the remote's packs by ranged reads, then cached (the
  ranges are read first, so they find the cache cold; the sequential pass then
  finds only what they left there);
- ``remote warm``: again, the cache now holding what the cold pass read;
- ``remote nocache``: ``cache_data=False`` (only snapshots and trees cached).

For each: throughput (MiB/s), the process's peak RSS, and for the remote passes the
number of ranged pack reads per random range. The figures go to stdout, and with
``--json`` to a file. The 200 MB RSS target of issue 12 is checked (``--size-mib
10240`` for the 10 GiB run).

    .venv/bin/python benchmarks/bench_fs.py                        # 512 MiB, ~1 min
    .venv/bin/python benchmarks/bench_fs.py --size-mib 10240 --workdir /big/tmp   # 10 GiB
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1 << 20
RSS_LIMIT = 200 * 1000 * 1000  # "200 MB"
PIECE = MIB
_HEX = bytes(b"0123456789abcdef"[i % 16] for i in range(256))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_file(path: Path, size: int, seed: int) -> None:
    """``size`` bytes of random hex-like text (every 64 KiB different: no dedup)."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(rng.randbytes(n).translate(_HEX))
            left -= n


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- the measuring child ------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """Measure one pass in this process; print a JSON line."""
    spec = json.loads(args.child)
    out: dict[str, Any] = {"rss_start": peak_rss()}
    size = spec["size"]
    rng = random.Random(spec["seed"])
    length = spec["range_kib"] << 10
    offsets = [rng.randrange(0, size - length) for _ in range(spec["ranges"])]
    if spec["kind"] == "file":
        path = spec["path"]
        t = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while f.read(PIECE):
                pass
        out["seq_s"] = time.perf_counter() - t
        fd = os.open(path, os.O_RDONLY)
        t = time.perf_counter()
        for off in offsets:
            assert len(os.pread(fd, length, off)) == length
        out["rand_s"] = time.perf_counter() - t
        os.close(fd)
    else:
        import fsspec

        import mlgit.fs.source
        from mlgit.sync.backend import Backend, LocalBackend
        from mlgit.sync.remote import RemoteSpec, local_store

        reads: list[int] = []

        class Counting(LocalBackend):
            def read_pack(self, stem: str, offset: int, n: int) -> bytes:
                reads.append(n)
                return super().read_pack(stem, offset, n)

        def counting(spec: RemoteSpec) -> Backend:
            return Counting(local_store(spec), spec.url)

        mlgit.fs.source.open_backend = counting  # type: ignore[attr-defined]  # observes
        fs = fsspec.filesystem("mlgit", **spec["options"])
        url = spec["url"]
        fs.info(url)  # the snapshot and its trees (cached by a remote pass)
        out["rss_start"] = peak_rss()
        reads.clear()
        t = time.perf_counter()  # ranges first: a cold cache is cold for them
        for off in offsets:
            assert len(fs.cat_file(url, off, off + length)) == length
        out["rand_s"] = time.perf_counter() - t
        out["rand_pack_reads"] = len(reads)
        out["rand_pack_bytes"] = sum(reads)
        reads.clear()
        t = time.perf_counter()
        got = 0
        with fs.open(url, "rb") as f:
            while piece := f.read(PIECE):
                got += len(piece)
        out["seq_s"] = time.perf_counter() - t
        assert got == size, (got, size)
        out["seq_pack_bytes"] = sum(reads)
        fs.close()
    out["rss_peak"] = peak_rss()
    print(json.dumps(out))


def measure(name: str, spec: dict[str, Any], cwd: Path) -> dict[str, Any]:
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], cwd=cwd,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{name} failed:\n{p.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    out["name"] = name
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--ranges", type=int, default=300)
    ap.add_argument("--range-kib", type=int, default=64)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    bindir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    work = Path(tempfile.mkdtemp(prefix="bench-fs-", dir=args.workdir))
    try:
        report(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, work: Path) -> None:
    size = args.size_mib * MIB
    repo = work / "repo"
    (repo / "data").mkdir(parents=True)
    run(["git", "init", "-q"], repo)
    run(["git", "ml", "init"], repo)
    log(f"generating {args.size_mib} MiB ...")
    make_file(repo / "data" / "big.bin", size, args.seed)
    log("git ml add ...")
    t = time.perf_counter()
    run(["git", "ml", "add", "data"], repo)
    add_s = time.perf_counter() - t
    elsewhere = work / "worker"
    elsewhere.mkdir()
    base = {"size": size, "seed": args.seed, "ranges": args.ranges,
            "range_kib": args.range_kib}
    remote = {"remote": str(repo), "cache_dir": str(work / "cache")}
    passes = [
        ("file", {**base, "kind": "file", "path": str(repo / "data" / "big.bin")}, repo),
        ("repo", {**base, "kind": "fs", "url": "mlgit://data/big.bin",
                  "options": {"repo": str(repo)}}, repo),
        ("remote cold", {**base, "kind": "fs", "url": "mlgit://data/big.bin",
                         "options": remote}, elsewhere),
        ("remote warm", {**base, "kind": "fs", "url": "mlgit://data/big.bin",
                         "options": remote}, elsewhere),
        ("remote nocache", {**base, "kind": "fs", "url": "mlgit://data/big.bin",
                            "options": {**remote, "cache_dir": str(work / "cache2"),
                                        "cache_data": False}}, elsewhere),
    ]
    rows = []
    for name, spec, cwd in passes:
        log(f"{name} ...")
        rows.append(measure(name, spec, cwd))
    load = os.getloadavg()[0]
    print(f"mlgit:// read benchmark: {args.size_mib} MiB file, {args.ranges} random "
          f"{args.range_kib} KiB ranges; git ml add {add_s:.1f} s; load {load:.2f}")
    print(f"{'pass':<16}{'seq MiB/s':>11}{'ranges/s':>10}{'range MiB/s':>12}"
          f"{'RSS start MB':>14}{'RSS peak MB':>13}{'reads/range':>13}{'seq read x':>12}")
    ok = True
    for r in rows:
        seq = size / MIB / r["seq_s"]
        rps = args.ranges / r["rand_s"]
        per = (f"{r['rand_pack_reads'] / args.ranges:.2f}" if "rand_pack_reads" in r
               and r["name"].startswith("remote") else "-")
        amp = (f"{r['seq_pack_bytes'] / size:.2f}" if r["name"].startswith("remote")
               else "-")
        print(f"{r['name']:<16}{seq:>11.0f}{rps:>10.0f}{rps * args.range_kib / 1024:>12.1f}"
              f"{r['rss_start'] / 1e6:>14.0f}{r['rss_peak'] / 1e6:>13.0f}{per:>13}{amp:>12}")
        if r["name"] != "file" and r["rss_peak"] > RSS_LIMIT:
            ok = False
    print(f"target: peak RSS under {RSS_LIMIT / 1e6:.0f} MB while reading: "
          f"{'PASS' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps({"size_mib": args.size_mib, "add_s": add_s,
                                         "load": load, "passes": rows}, indent=2))


if __name__ == "__main__":
    main()
