"""Object lookup in a large store: peak RSS per object and time per lookup.

Builds a synthetic store of ``--objects`` objects (tiny blobs, ``--per-pack`` to a
pack, written by git-ml's own ``PackWriter``) once per size, then measures, each in
a fresh process so that peak RSS is the lookup's alone, one or more builds of
git-ml (source trees holding ``mlgit/``) on the same store::

    git archive main mlgit | tar -x -C /tmp/base          # the build to compare with
    .venv/bin/python benchmarks/bench_index.py --objects 1000000,3000000 \\
        before=/tmp/base after=.

For each build it opens the store and looks up ``--lookups`` ids that are there
(``entry``) and as many that are not (``has_committed``), with and without a
multi-pack index (a build that does not know the file simply ignores it).
Figures: ``open`` (the first lookup, which loads whatever the build loads),
``hit`` and ``miss`` (microseconds per lookup after that), and ``B/obj``: the
growth of the process's peak RSS from before the store is opened (the peak is
reset there, ``/proc/self/clear_refs``) to after the lookups, divided by the
objects in the store; ``anon`` the same for its private memory alone, and
``file-backed`` the pages of memory-mapped indexes the lookups touched (clean
page cache the kernel may drop; random lookups touch about one page each).
Stdlib only, plus git-ml's dependencies; the data lives under ``--workdir``
(default a temporary directory, deleted): 1M objects take about 80 MB of packs
and indexes (and 38 MB of multi-pack index), 3M three times that.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

_CHILD = r"""
import json, os, random, sys, time
build, root, sample, lookups = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, build)
from pathlib import Path
from mlgit.store.store import Store


def status():
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in f)
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


with open(sample, "rb") as f:
    present = [f.read(16) for _ in range(lookups)]
rng = random.Random(1)
absent = [rng.randbytes(16) for _ in range(lookups)]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak RSS starts again from here
s0 = status()
t0 = time.perf_counter()
s = Store.open(Path(root))
assert s.objects.entry(present[0]) is not None
t_open = time.perf_counter() - t0
t0 = time.perf_counter()
for oid in present:
    assert s.objects.entry(oid) is not None
t_hit = time.perf_counter() - t0
t0 = time.perf_counter()
for oid in absent:
    assert not s.objects.has_committed(oid)
t_miss = time.perf_counter() - t0
s1 = status()
print(json.dumps({"open_s": t_open, "hit_us": t_hit / lookups * 1e6,
                  "miss_us": t_miss / lookups * 1e6,
                  "rss_kib": s1["VmHWM"] - s0["VmRSS"],
                  "anon_kib": s1["RssAnon"] - s0["RssAnon"],
                  "file_kib": s1["RssFile"] - s0["RssFile"]}))
s.objects.close()
"""


def build_store(root: Path, objects: int, per_pack: int, sample: Path, lookups: int) -> None:
    """``objects`` distinct 16-byte blobs in packs of ``per_pack``; a sample of their ids."""
    from mlgit.format.config import StoreConfig
    from mlgit.format.ids import raw_object_id
    from mlgit.format.pack import OBJ_BLOB
    from mlgit.store.packs import PackWriter, commit_into
    from mlgit.store.store import Store

    pack_size = per_pack * (26 + 16) + 8
    store, _ = Store.init(root, StoreConfig(pack_size=pack_size))
    writer = PackWriter(store.pack_tmp_dir, pack_size,
                        commit_into(store.packs_dir, lambda _p, _i: None), dedup=False)
    rng = random.Random(objects)
    keep = set(rng.sample(range(objects), lookups))
    picked = []
    for i in range(objects):
        data = i.to_bytes(16, "little")
        oid = raw_object_id(data)
        writer.add(oid, OBJ_BLOB, 0, 16, data)
        if i in keep:
            picked.append(oid)
    writer.commit()
    rng.shuffle(picked)
    sample.write_bytes(b"".join(picked))
    store.close()


def write_midx(root: Path) -> None:
    """Write the store's multi-pack index with this checkout's git-ml."""
    from mlgit.store.store import Store

    store = Store.open(root)
    try:
        store.objects.write_midx()
    finally:
        store.objects.close()


def measure(build: Path, root: Path, sample: Path, lookups: int) -> dict[str, float]:
    """One fresh process: open the store with ``build``'s git-ml and look ids up."""
    p = subprocess.run([sys.executable, "-c", _CHILD, str(build.resolve()), str(root),
                        str(sample), str(lookups)], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{build}: {p.stderr.strip()}")
    out: dict[str, float] = json.loads(p.stdout)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("builds", nargs="+", help="NAME=PATH of a tree holding mlgit/")
    ap.add_argument("--objects", default="1000000", help="comma-separated store sizes")
    ap.add_argument("--per-pack", type=int, default=25_000, help="objects per pack")
    ap.add_argument("--lookups", type=int, default=20_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    builds = [(b.split("=", 1)[0], Path(b.split("=", 1)[1])) for b in args.builds]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-index-"))
    results = []
    try:
        for n in (int(x) for x in args.objects.split(",")):
            root = work / f"store-{n}-{args.per_pack}"
            sample = work / f"sample-{n}-{args.per_pack}.bin"
            if not sample.exists():
                t0 = time.perf_counter()
                shutil.rmtree(root, ignore_errors=True)
                build_store(root, n, args.per_pack, sample, args.lookups)
                print(f"built {n} objects in {time.perf_counter() - t0:.1f} s", flush=True)
            midx = root / "packs" / "multi-pack-index"
            for with_midx in (False, True):
                if with_midx and not midx.exists():
                    t0 = time.perf_counter()
                    write_midx(root)
                    print(f"wrote the multi-pack index in {time.perf_counter() - t0:.1f} s "
                          f"({midx.stat().st_size / 2**20:.0f} MiB)", flush=True)
                elif not with_midx and midx.exists():
                    midx.unlink()
                packs = sum(1 for x in os.listdir(root / "packs") if x.endswith(".idx"))
                for name, build in builds:
                    r = measure(build, root, sample, args.lookups)
                    r.update(build=name, objects=n, packs=packs, midx=with_midx,
                             rss_per_object=r["rss_kib"] * 1024 / n,
                             anon_per_object=r["anon_kib"] * 1024 / n)
                    results.append(r)
                    print(f"{n:>9} objects {packs:>4} packs midx={'yes' if with_midx else 'no ':3} "
                          f"{name:>8}: open {r['open_s']:6.2f} s  hit {r['hit_us']:5.1f} us  "
                          f"miss {r['miss_us']:5.1f} us  peak RSS +{r['rss_kib'] / 1024:6.1f} MiB"
                          f" = {r['rss_per_object']:5.1f} B/obj (anon {r['anon_per_object']:5.1f}"
                          f", file-backed +{r['file_kib'] / 1024:.1f} MiB)", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
