#!/usr/bin/env python3
"""Comparative storage benchmark: git-ml against dvc, git-lfs and git-annex.

Stdlib only. Generates its own deterministic data, runs the same steps through
one adapter per tool in fresh temporary git repositories, prints a table of
figures with git-ml/other ratios, and checks git-ml's targets.

    python benchmarks/bench_storage.py                       # full size
    python benchmarks/bench_storage.py --files 2000 --weights-mib 64   # dev run

See benchmarks/README.md for what each step measures.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KIB = 1024
MIB = 1024 * 1024
FILE_SIZE = 64 * KIB
SUBDIRS = 64
TENSOR_BYTES = 4 * MIB
WEIGHT_VERSIONS = 5
CHANGED_TENSOR_FRACTION = 0.10
CHANGED_FILE_FRACTION = 0.01
RSS_LIMIT_BYTES = 300 * 1000 * 1000  # "300 MB"
EMPTY_PUSH_LIMIT_S = 0.3
PUSH_DELTA_LIMIT = 0.02  # a push after the 1% change sends at most 2% of the dataset's bytes
DATA_GENERATOR_VERSION = 1  # bump when the generated content changes (invalidates caches)
# Issue 13's ratio targets for the files scenario (git-ml's figure / the other's).
ADD_DVC_LIMIT = 0.2
ADD_FLOOR_LIMIT = 1.5
UNCHANGED_LFS_LIMIT = 2.0  # status and re-add unchanged vs git-lfs's `git add` unchanged
READD_LFS_LIMIT = 1.0
PUSH_LFS_LIMIT = 1.0
PUSH_DVC_LIMIT = 0.5
CLONE_LFS_LIMIT = 0.6
CLONE_DVC_LIMIT = 0.3
CHECKOUT_DVC_LIMIT = 0.5
# The million-files scenario.
MILLION_DIRS = 1000
MILLION_MIN_SIZE = 1 * KIB
MILLION_MAX_SIZE = 8 * KIB
MILLION_GENERATOR_VERSION = 1
MILLION_RSS_LIMIT = 1000**3  # "1 GB"
MILLION_STATUS_LIMIT_S = 2.0
MILLION_STATUS_ONE_LIMIT_S = 3.0
STORE_FILES_BASE = 100  # "few files": at most 100 + one per 1,000 objects
STORE_OBJECTS_PER_FILE = 1000
LOOKUP_LIMIT_B = 16  # object lookup: peak RSS growth per object in the store
LOOKUP_MIN_OBJECTS = 100_000  # below this, RSS noise is too large for a per-object figure
# The large-file scenario.
BIGFILE_CHANGE = 1 * MIB
BIGFILE_READ_LIMIT = 1.25  # "reads the file once": at most 1.25x its size read in all
BIGFILE_META_SLACK = 1 * MIB  # trees, snapshot and index a push of a changed file may add

ALL_TOOLS = ("git-ml", "dvc", "git-lfs", "git-annex")
ALL_SCENARIOS = ("files", "remote", "weights", "csv", "large", "million", "bigfile")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------

CSV_HEADER = (
    "timestamp,sensor_id,temperature_c,humidity_pct,pressure_hpa,voltage_v,flow_lpm,label\n"
)


def csv_bytes(seed: int, size: int = FILE_SIZE) -> bytes:
    """Sensor-log CSV of at most `size` bytes (whole rows), random-walk numeric columns."""
    rng = random.Random(seed)
    out = [CSV_HEADER]
    n = len(CSV_HEADER)
    ts = 1_700_000_000 + rng.randrange(10_000_000)
    sensor = rng.randrange(1000)
    t = rng.uniform(-5, 35)
    h = rng.uniform(20, 90)
    p = rng.uniform(980, 1040)
    g = rng.gauss
    rr = rng.random
    while True:
        ts += 60
        t += g(0, 0.3)
        h += g(0, 0.5)
        p += g(0, 0.2)
        row = (
            f"{ts},{sensor},{t:.3f},{h:.2f},{p:.2f},{3.3 + g(0, 0.05):.4f},"
            f"{rr() * 120:.5f},{int(rr() < 0.1)}\n"
        )
        if n + len(row) > size:
            break
        out.append(row)
        n += len(row)
    return "".join(out).encode()


def random_bytes(seed: int, size: int = FILE_SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


# float32 little-endian: byte 3 = sign + top 7 exponent bits. Forcing them to
# 0b0111100x gives exponents 120..123, i.e. |w| in [2^-7, 2^-3): weight-like
# values with realistic (poor) compressibility.
_F32_TOP = bytes(((b & 0x80) | 0x3C | (b & 0x01)) for b in range(256))


def tensor_bytes(seed: int, size: int = TENSOR_BYTES) -> bytes:
    buf = bytearray(random.Random(seed).randbytes(size))
    buf[3::4] = buf[3::4].translate(_F32_TOP)
    return bytes(buf)


def file_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Dataset:
    """The N small files (half CSV, half random) plus the 1% rewrite of them."""

    def __init__(self, root: Path, n_files: int, seed: int) -> None:
        self.root = root
        self.n_files = n_files
        self.seed = seed
        self.data = root / "data"
        self.changed = root / "changed"  # same relpaths, new content
        self.rel: list[str] = []
        for i in range(n_files):
            kind = "csv" if i % 2 == 0 else "bin"
            self.rel.append(f"d{i % SUBDIRS:02d}/f{i:05d}.{kind}")
        n_changed = max(1, round(n_files * CHANGED_FILE_FRACTION))
        step = n_files // n_changed
        # alternate offsets so the changed set is half CSV, half binary
        self.changed_idx = [k * step + 36 % step + (k % 2) for k in range(n_changed)]
        self.changed_idx = [i for i in self.changed_idx if i < n_files]
        self.hash_before: dict[str, str] = {}
        self.hash_after: dict[str, str] = {}
        self.csv_bytes_on_disk = 0
        self.total_bytes = 0

    def _content(self, i: int, generation: int) -> bytes:
        s = self.seed * 1_000_003 + i * 7 + generation
        return csv_bytes(s) if i % 2 == 0 else random_bytes(s)

    def ensure(self) -> None:
        marker = self.root / "manifest.json"
        if marker.exists():
            m = json.loads(marker.read_text())
            if (m.get("n_files"), m.get("seed"), m.get("generator")) == (
                    self.n_files, self.seed, DATA_GENERATOR_VERSION):
                self.hash_before = m["hash_before"]
                self.hash_after = m["hash_after"]
                self.csv_bytes_on_disk = m["csv_bytes"]
                self.total_bytes = m["total_bytes"]
                log(f"[data] reusing {self.root}")
                return
        log(f"[data] generating {self.n_files} files in {self.root} ...")
        t0 = time.perf_counter()
        shutil.rmtree(self.root, ignore_errors=True)
        for d in range(min(SUBDIRS, self.n_files)):
            (self.data / f"d{d:02d}").mkdir(parents=True, exist_ok=True)
        csv_total = total = 0
        for i, rel in enumerate(self.rel):
            b = self._content(i, 0)
            (self.data / rel).write_bytes(b)
            self.hash_before[rel] = file_hash(b)
            total += len(b)
            if i % 2 == 0:
                csv_total += len(b)
        self.hash_after = dict(self.hash_before)
        for i in self.changed_idx:
            rel = self.rel[i]
            b = self._content(i, 1)
            dst = self.changed / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(b)
            self.hash_after[rel] = file_hash(b)
        self.csv_bytes_on_disk = csv_total
        self.total_bytes = total
        marker.write_text(json.dumps({
            "n_files": self.n_files, "seed": self.seed, "generator": DATA_GENERATOR_VERSION,
            "hash_before": self.hash_before,
            "hash_after": self.hash_after, "csv_bytes": csv_total, "total_bytes": total,
        }))
        log(f"[data] generated {total / MIB:.1f} MiB in {time.perf_counter() - t0:.1f} s")

    def copy_to(self, dst: Path, csv_only: bool = False) -> None:
        """Copy the dataset (mtimes preserved) into dst."""
        if not csv_only:
            shutil.copytree(self.data, dst)
            return
        for i, rel in enumerate(self.rel):
            if i % 2 == 0:
                target = dst / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.data / rel, target)

    def apply_change(self, data_dir: Path) -> list[str]:
        """Rewrite 1% of the files: unlink then write new content (never in place)."""
        out = []
        for i in self.changed_idx:
            rel = self.rel[i]
            p = data_dir / rel
            if p.exists() or p.is_symlink():
                p.unlink()
            shutil.copyfile(self.changed / rel, p)
            out.append(rel)
        return out

    def verify(self, data_dir: Path, expected: dict[str, str]) -> tuple[int, int, int]:
        """Return (ok, missing, wrong) after reading every file (following symlinks)."""
        ok = missing = wrong = 0
        for rel, h in expected.items():
            p = data_dir / rel
            try:
                b = p.read_bytes()
            except OSError:
                missing += 1
                continue
            if file_hash(b) == h:
                ok += 1
            else:
                wrong += 1
        return ok, missing, wrong


class Weights:
    """A float32 weights file of `mib` MiB made of 4 MiB tensors; 10% change per version."""

    def __init__(self, mib: int, seed: int) -> None:
        self.n_tensors = max(1, (mib * MIB) // TENSOR_BYTES)
        self.seed = seed
        rng = random.Random(seed * 31 + 5)
        n_change = max(1, round(self.n_tensors * CHANGED_TENSOR_FRACTION))
        # generation[v][t] = which content generation tensor t has in version v
        self.generation: list[list[int]] = [[0] * self.n_tensors]
        for v in range(1, WEIGHT_VERSIONS):
            gen = list(self.generation[-1])
            for t in rng.sample(range(self.n_tensors), n_change):
                gen[t] = v
            self.generation.append(gen)
        self.n_change = n_change

    @property
    def size(self) -> int:
        return self.n_tensors * TENSOR_BYTES

    def write(self, version: int, path: Path) -> None:
        if path.exists() or path.is_symlink():
            path.unlink()
        with open(path, "wb") as f:
            for t, g in enumerate(self.generation[version]):
                f.write(tensor_bytes(self.seed * 1_000_003 + t * 101 + g))


def write_big_file(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed * 17 + 3)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 8 * MIB)
            f.write(rng.randbytes(n))
            left -= n


def write_stamped_file(path: Path, size: int, seed: int) -> None:
    """A large incompressible file, written fast: a 16 MiB random pool, copied block by
    block from a moving offset, with the block's number stamped every 4 KiB so that no
    two 4 KiB pieces (and so no two chunks of at least 4 KiB) are equal."""
    rng = random.Random(seed * 19 + 7)
    pool = rng.randbytes(16 * MIB)
    pool += pool[:MIB]
    stamp = struct.Struct("<QQ")
    with open(path, "wb") as f:
        for n, at in enumerate(range(0, size, MIB)):
            start = (n * 7919 * 4 * KIB) % (16 * MIB)
            block = bytearray(pool[start:start + MIB])
            for k, off in enumerate(range(0, MIB, 4 * KIB)):
                stamp.pack_into(block, off, n, k)
            f.write(block[:min(MIB, size - at)])


def rmtree_fast(path: Path) -> None:
    """Remove a tree (a million files: `rm -rf` is several times faster than shutil)."""
    if not path.exists() and not path.is_symlink():
        return
    if subprocess.run(["rm", "-rf", "--", str(path)], capture_output=True).returncode:
        shutil.rmtree(path, ignore_errors=True)


def count_files(path: Path) -> tuple[int, int]:
    """(regular files, of which ``*.pack``) under path."""
    files = packs = 0
    for _dirpath, _dirs, names in os.walk(path):
        files += len(names)
        packs += sum(1 for n in names if n.endswith(".pack"))
    return files, packs


def dir_digest(path: Path) -> tuple[str, int]:
    """(digest of the sorted names, sizes and contents of the files in path, file count)."""
    h = hashlib.blake2b(digest_size=16)
    names = sorted(os.listdir(path))
    for name in names:
        with open(path / name, "rb") as f:
            b = f.read()
        h.update(b"%s\0%d\0" % (name.encode(), len(b)))
        h.update(b)
    return h.hexdigest(), len(names)


class MillionData:
    """N files of 1-8 KiB in 1,000 directories: half CSV text, half random bytes.

    Each file starts with its own number, so no two are equal; the rest is a slice
    of an 8 MiB CSV pool (even numbers) or random pool (odd) at an offset and of a
    size derived from (seed, number, generation), so any file can be made again
    alone. Generated once into ``root/data`` (``root`` is git-ml's repository in the
    million scenario: the tree is used in place, not copied) with a manifest beside
    ``root`` that holds one digest per directory, for verifying clones.
    """

    POOL = 8 * MIB

    def __init__(self, workdir: Path, n_files: int, seed: int) -> None:
        self.n_files = n_files
        self.seed = seed
        self.root = workdir / f"million-n{n_files}-s{seed}"
        self.data = self.root / "data"
        self.manifest = workdir / f"million-n{n_files}-s{seed}.json"
        self.n_dirs = max(1, min(MILLION_DIRS, n_files))
        self.changed = n_files // 2  # the file the "one file changed" steps rewrite
        self.total_bytes = 0
        self.dir_digests: dict[str, str] = {}
        self.changed_mtime_ns = 0
        self._pools: tuple[bytes, bytes] | None = None

    def dirname(self, i: int) -> str:
        return f"d{i % self.n_dirs:03d}"

    def rel(self, i: int) -> str:
        width = max(7, len(str(self.n_files - 1)))  # fixed width: name order = number order
        return f"{self.dirname(i)}/f{i:0{width}d}.{'csv' if i % 2 == 0 else 'bin'}"

    def content(self, i: int, generation: int = 0) -> bytes:
        if self._pools is None:
            self._pools = (csv_bytes(self.seed * 13 + 1, self.POOL),
                           random.Random(self.seed * 13 + 2).randbytes(self.POOL))
        h = hashlib.blake2b(f"{self.seed}:{i}:{generation}".encode(), digest_size=16).digest()
        span = MILLION_MAX_SIZE - MILLION_MIN_SIZE + 1
        size = MILLION_MIN_SIZE + int.from_bytes(h[:4], "little") % span
        head = f"{i},{generation}\n".encode()
        pool = self._pools[i % 2]
        off = int.from_bytes(h[4:8], "little") % (len(pool) - MILLION_MAX_SIZE)
        return head + pool[off:off + size - len(head)]

    def ensure(self) -> None:
        if self.manifest.exists() and self.data.is_dir():
            m = json.loads(self.manifest.read_text())
            if (m.get("n_files"), m.get("seed"), m.get("generator")) == (
                    self.n_files, self.seed, MILLION_GENERATOR_VERSION):
                self.total_bytes = m["total_bytes"]
                self.dir_digests = m["dir_digests"]
                self.changed_mtime_ns = m["changed_mtime_ns"]
                self.restore_changed()  # in case a run was stopped before it undid its change
                log(f"[million] reusing {self.data}")
                return
        log(f"[million] generating {self.n_files} files in {self.n_dirs} directories "
            f"in {self.data} ...")
        t0 = time.perf_counter()
        self.manifest.unlink(missing_ok=True)
        rmtree_fast(self.root)
        for d in range(self.n_dirs):
            (self.data / self.dirname(d)).mkdir(parents=True)
        hashers = [hashlib.blake2b(digest_size=16) for _ in range(self.n_dirs)]
        total = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        data = str(self.data)
        for i in range(self.n_files):  # each directory's files in name order
            b = self.content(i)
            rel = self.rel(i)
            fd = os.open(os.path.join(data, rel), flags, 0o644)
            try:
                os.write(fd, b)
            finally:
                os.close(fd)
            h = hashers[i % self.n_dirs]
            h.update(b"%s\0%d\0" % (rel.rsplit("/", 1)[1].encode(), len(b)))
            h.update(b)
            total += len(b)
            if i and i % 100_000 == 0:
                log(f"[million] {i} files, {time.perf_counter() - t0:.0f} s")
        self.total_bytes = total
        self.dir_digests = {self.dirname(d): hashers[d].hexdigest() for d in range(self.n_dirs)}
        self.changed_mtime_ns = (self.data / self.rel(self.changed)).stat().st_mtime_ns
        self.manifest.write_text(json.dumps({
            "n_files": self.n_files, "seed": self.seed, "generator": MILLION_GENERATOR_VERSION,
            "total_bytes": total, "dir_digests": self.dir_digests,
            "changed_mtime_ns": self.changed_mtime_ns}))
        log(f"[million] generated {total / MIB:.1f} MiB in {time.perf_counter() - t0:.0f} s")

    def _write(self, data_dir: Path, generation: int) -> str:
        rel = self.rel(self.changed)
        p = data_dir / rel
        p.unlink(missing_ok=True)  # never in place (git-annex's files are read-only links)
        p.write_bytes(self.content(self.changed, generation))
        return rel

    def change(self, data_dir: Path) -> str:
        """Rewrite the one changed file with new content; return its relative path."""
        return self._write(data_dir, 1)

    def restore_changed(self) -> None:
        """Undo change() in the cached tree: original content and mtime."""
        p = self.data / self.rel(self.changed)
        if p.exists() and p.read_bytes() == self.content(self.changed):
            return
        self._write(self.data, 0)
        os.utime(p, ns=(self.changed_mtime_ns, self.changed_mtime_ns))

    def verify(self, data_dir: Path, expected: dict[str, str]) -> dict[str, int]:
        """Compare every directory's digest with expected; count good and bad ones."""
        ok = bad = files = 0
        for d, digest in expected.items():
            try:
                got, n = dir_digest(data_dir / d)
            except OSError:
                bad += 1
                continue
            files += n
            if got == digest:
                ok += 1
            else:
                bad += 1
        return {"dirs_ok": ok, "dirs_bad": bad, "files": files}


_UNITS = {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": 1024 * MIB, "KB": 1000, "MB": 10**6,
          "GB": 10**9}


def gitml_push_report(out: str) -> dict[str, Any] | None:
    """Parse `git ml push` output: "pushed to R (URL): N objects, X MiB in P packs"."""
    m = re.search(r"(\d+) objects?, ([\d.]+) ?([KMG]?i?B)(?: in (\d+) packs?)?", out)
    if not m:
        return None
    return {"objects": int(m.group(1)),
            "bytes": round(float(m.group(2)) * _UNITS.get(m.group(3), 1)),
            "packs": int(m.group(4)) if m.group(4) else None,
            "line": m.group(0)}


def dir_bytes(path: Path) -> int:
    """Apparent size of regular files under path, each inode once (like `du -sb`, minus dirs)."""
    if not path.exists():
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            key = (st.st_dev, st.st_ino)
            if key in seen or not os.path.isfile(os.path.join(dirpath, name)):
                continue
            seen.add(key)
            total += st.st_size
    return total


# --------------------------------------------------------------------------
# Running commands
# --------------------------------------------------------------------------

class CmdError(Exception):
    def __init__(self, argv: Sequence[str], cwd: Path, rc: int | str, out: str, err: str,
                 seconds: float) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.rc = rc
        self.out = out
        self.err = err
        self.seconds = seconds
        super().__init__(self.describe())

    def describe(self) -> str:
        tail = (self.err.strip() or self.out.strip())[-800:]
        return (f"`{' '.join(self.argv)}` (in {self.cwd}) exited {self.rc} after "
                f"{self.seconds:.2f} s: {tail}")


Cmd = list[str] | tuple[list[str], Path]  # argv, or argv and the directory to run it in


class Runner:
    def __init__(self, env: dict[str, str], timeout: float) -> None:
        self.env = env
        self.timeout = timeout
        self.last_cpu = 0.0
        self.last_parts: list[tuple[str, float]] = []
        self.last_output = ""
        self.time_bin = shutil.which("time", path="/usr/bin") if os.path.exists(
            "/usr/bin/time") else None

    def run(self, argv: Sequence[str], cwd: Path, check: bool = True
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
        t0 = time.perf_counter()
        try:
            p = subprocess.run(list(argv), cwd=cwd, env=self.env, capture_output=True,
                               text=True, errors="replace",
                               timeout=self.timeout)
        except subprocess.TimeoutExpired as e:
            dt = time.perf_counter() - t0
            raise CmdError(argv, cwd, f"timeout>{self.timeout}s", str(e.stdout or ""),
                           str(e.stderr or ""), dt) from None
        dt = time.perf_counter() - t0
        if check and p.returncode != 0:
            raise CmdError(argv, cwd, p.returncode, p.stdout, p.stderr, dt)
        return dt, p

    def timed(self, cmds: Sequence[Cmd], cwd: Path) -> tuple[float, str]:
        """Run commands in order; return total wall time and combined stdout.

        A command is an argv list (run in cwd) or an (argv, directory) pair.
        The CPU time (user + sys) of the commands and their waited-for children
        is left in self.last_cpu: less sensitive than wall time to other load
        on a shared machine. Each command's wall time is left in self.last_parts
        and stdout+stderr of all of them in self.last_output.
        """
        total = 0.0
        out = []
        self.last_parts = []
        self.last_output = ""
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for c in cmds:
            argv, where = (c[0], c[1]) if isinstance(c, tuple) else (c, cwd)
            dt, p = self.run(argv, where)
            total += dt
            out.append(p.stdout)
            self.last_parts.append((" ".join(argv), dt))
            self.last_output += p.stdout + p.stderr
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return total, "".join(out)

    def timed_rss(self, cmds: list[list[str]], cwd: Path) -> tuple[float, int | None, str]:
        """Like timed(), also returning the peak RSS in bytes (max over the commands)."""
        total = 0.0
        peak: int | None = None
        how = ""
        for c in cmds:
            if self.time_bin:
                dt, p = self.run([self.time_bin, "-v", *c], cwd)
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
                rss = int(m.group(1)) * 1024 if m else None
                how = "/usr/bin/time -v"
            else:
                probe = ("import resource,subprocess,sys;"
                         "r=subprocess.run(sys.argv[1:]).returncode;"
                         "print('MAXRSS',resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
                         "file=sys.stderr);sys.exit(r)")
                dt, p = self.run([sys.executable, "-c", probe, *c], cwd)
                m = re.search(r"MAXRSS (\d+)", p.stderr)
                rss = int(m.group(1)) * 1024 if m else None
                how = "getrusage(RUSAGE_CHILDREN)"
            total += dt
            if rss is not None:
                peak = rss if peak is None else max(peak, rss)
        return total, peak, how


    def measured(self, cmds: Sequence[Cmd], cwd: Path) -> dict[str, Any]:
        """Run commands in order under TREE_PROBE; return what the process trees used.

        ``wall_s`` and ``cpu_s`` are summed, ``rss_bytes`` is the largest peak RSS of
        any process of any command's tree, ``rchar``/``read_bytes``/``wchar``/
        ``write_bytes`` are summed over every process of the trees (see TREE_PROBE),
        ``output`` is stdout + stderr of all of them.
        """
        out: dict[str, Any] = {"wall_s": 0.0, "cpu_s": 0.0, "rss_bytes": 0, "rchar": 0,
                               "read_bytes": 0, "wchar": 0, "write_bytes": 0, "output": "",
                               "stdout": ""}
        for c in cmds:
            argv, where = (c[0], c[1]) if isinstance(c, tuple) else (c, cwd)
            dt, p = self.run([sys.executable, "-c", TREE_PROBE, *argv], where, check=False)
            lines = p.stderr.splitlines()
            probe = [ln for ln in lines if ln.startswith("BENCH-PROBE ")]
            rest = "\n".join(ln for ln in lines if not ln.startswith("BENCH-PROBE "))
            if p.returncode != 0 or not probe:
                raise CmdError(argv, where, p.returncode if probe else "no probe report",
                               p.stdout, rest, dt)
            r = json.loads(probe[-1].removeprefix("BENCH-PROBE "))
            out["wall_s"] += r["wall"]
            out["cpu_s"] += r["cpu"]
            out["rss_bytes"] = max(out["rss_bytes"], r["maxrss"])
            for k in ("rchar", "read_bytes", "wchar", "write_bytes"):
                out[k] += r["io"].get(k, 0)
            out["output"] += p.stdout + rest
            out["stdout"] += p.stdout
        return out


# Runs argv as a child, waits, and reports on stderr the child's wall time and what
# its whole process tree used: getrusage(RUSAGE_CHILDREN) (peak RSS of the largest
# process, CPU) and the growth of this process's /proc/self/io, to which Linux adds
# the I/O counters of every child and grandchild it reaps (waited-for descendants).
# `rchar` counts bytes returned by read()/pread() and the like (page cache hits
# included, mmap page faults not); `read_bytes` counts bytes fetched from storage.
TREE_PROBE = r"""
import json, os, resource, subprocess, sys, time
def io():
    try:
        with open('/proc/self/io') as f:
            return {k: int(v) for k, v in (ln.split(':') for ln in f)}
    except OSError:
        return {}
a = io()
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
dt = time.perf_counter() - t
b = io()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print('BENCH-PROBE ' + json.dumps({'wall': dt, 'maxrss': ru.ru_maxrss * 1024,
      'cpu': ru.ru_utime + ru.ru_stime, 'io': {k: b[k] - a.get(k, 0) for k in b}}),
      file=sys.stderr)
sys.exit(rc)
"""


# --------------------------------------------------------------------------
# Tool adapters: every method returns the commands to run (the harness times
# them), except store_bytes which measures the tool's object store.
# --------------------------------------------------------------------------

GIT_INIT = ["git", "init", "-q", "-b", "main"]


class Tool:
    name = "?"
    store_dir = ""
    store_root = ""  # the whole store, whose files the million scenario counts ("": store_dir)
    status_desc = ""
    checkout_desc = ""
    add_desc = ""

    def version(self, runner: Runner, cwd: Path) -> str | None:
        raise NotImplementedError

    def init(self) -> list[list[str]]:
        raise NotImplementedError

    def add(self, path: str) -> list[list[str]]:
        raise NotImplementedError

    def readd(self, path: str) -> list[list[str]]:
        return self.add(path)

    def status(self) -> list[list[str]]:
        raise NotImplementedError

    def checkout(self, path: str) -> list[list[str]]:
        raise NotImplementedError

    def store_bytes(self, repo: Path) -> int:
        return dir_bytes(repo / self.store_dir)

    # Remotes. `bare` is a fresh bare git repository, added as `origin`; `store` is a
    # directory for a tool whose data remote is not a git repository (dvc). The
    # commands of remote_setup run in the working repository (untimed, then committed).
    push_desc = ""
    clone_desc = ""
    remote_store_desc = ""

    def remote_setup(self, bare: Path, store: Path) -> list[Cmd]:  # noqa: ARG002 - overrides Tool.remote_setup
        return [["git", "init", "-q", "--bare", str(bare)],
                ["git", "remote", "add", "origin", str(bare)]]

    def push(self) -> list[Cmd]:
        raise NotImplementedError

    def remote_bytes(self, bare: Path, store: Path) -> int:
        """Bytes of data in the remote's store (git's object database not counted)."""
        raise NotImplementedError

    def remote_root(self, bare: Path, store: Path) -> Path:
        """The remote's whole store, whose files the million scenario counts."""
        raise NotImplementedError

    def clone_pull(self, bare: Path, dst: Path) -> list[Cmd]:
        raise NotImplementedError

    def status_shows_change(self, out: str, path: str) -> bool:
        return path in out


def _first_line(runner: Runner, argv: list[str], cwd: Path) -> str | None:
    if not shutil.which(argv[0], path=runner.env["PATH"]):
        return None
    try:
        _, p = runner.run(argv, cwd)
    except (CmdError, OSError):
        return None
    return (p.stdout.strip() or p.stderr.strip()).splitlines()[0] if (p.stdout + p.stderr).strip() \
        else "unknown version"


class GitMl(Tool):
    name = "git-ml"
    store_dir = ".git/ml/packs"
    store_root = ".git/ml"
    add_desc = "git ml add data/"
    status_desc = "git ml status"
    checkout_desc = "git ml checkout"

    def version(self, runner: Runner, cwd: Path) -> str | None:
        # `git ml --help` would be turned into `git help ml` (a man page) by git, so
        # the usability check calls the git-ml executable directly.
        if not shutil.which("git-ml", path=runner.env["PATH"]):
            return None
        try:
            runner.run(["git-ml", "--help"], cwd)
        except (CmdError, OSError) as e:
            log(f"[git-ml] installed but `git-ml --help` fails: {e}")
            return None
        try:
            _, p = runner.run(["git-ml", "--version"], cwd)
            return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
        except (CmdError, OSError, IndexError):
            return str(shutil.which("git-ml", path=runner.env["PATH"]))

    def status_shows_change(self, out: str, path: str) -> bool:
        # `git ml status` prints "data: clean (...)" or "data: modified (...)" /
        # "data: missing (...)"; a line naming the dataset without "clean" is a change.
        lines = [ln for ln in out.splitlines() if re.match(rf"\s*{re.escape(path)}\b", ln)]
        return any("clean" not in ln for ln in lines)

    def init(self) -> list[list[str]]:
        return [GIT_INIT, ["git", "ml", "init"]]

    def add(self, path: str) -> list[list[str]]:
        return [["git", "ml", "add", path]]

    def status(self) -> list[list[str]]:
        return [["git", "ml", "status"]]

    def checkout(self, path: str) -> list[list[str]]:  # noqa: ARG002 - overrides Tool.checkout
        return [["git", "ml", "checkout"]]

    push_desc = "git push origin main (the pre-push hook runs git-ml's push)"
    clone_desc = "git clone; git ml pull"
    remote_store_desc = "<bare>/ml/packs"

    def push(self) -> list[Cmd]:
        return [["git", "push", "-q", "origin", "main"]]

    def remote_bytes(self, bare: Path, store: Path) -> int:  # noqa: ARG002 - overrides Tool.remote_bytes
        return dir_bytes(bare / "ml" / "packs")

    def remote_root(self, bare: Path, store: Path) -> Path:  # noqa: ARG002 - overrides Tool.remote_root
        return bare / "ml"

    def clone_pull(self, bare: Path, dst: Path) -> list[Cmd]:
        return [(["git", "clone", "-q", str(bare), str(dst)], dst.parent),
                (["git", "ml", "pull"], dst)]


class Dvc(Tool):
    name = "dvc"
    store_dir = ".dvc/cache"
    add_desc = "dvc add data (core.autostage=true, so it also stages data.dvc/.gitignore)"
    status_desc = "dvc status"
    checkout_desc = "dvc checkout (default cache.type reflink,copy -> copy on ext4)"

    def version(self, runner: Runner, cwd: Path) -> str | None:
        v = _first_line(runner, ["dvc", "--version"], cwd)
        return f"dvc {v}" if v else None

    def init(self) -> list[list[str]]:
        return [GIT_INIT, ["dvc", "init", "-q"], ["dvc", "config", "core.autostage", "true"]]

    def add(self, path: str) -> list[list[str]]:
        return [["dvc", "add", "-q", path]]

    def status(self) -> list[list[str]]:
        return [["dvc", "status"]]

    def checkout(self, path: str) -> list[list[str]]:  # noqa: ARG002 - overrides Tool.checkout
        return [["dvc", "checkout", "-q"]]

    push_desc = "git push origin main; dvc push (local directory remote)"
    clone_desc = "git clone; dvc pull"
    remote_store_desc = "the dvc remote directory"

    def remote_setup(self, bare: Path, store: Path) -> list[Cmd]:
        return [*super().remote_setup(bare, store),
                ["dvc", "remote", "add", "-d", "store", str(store)]]

    def push(self) -> list[Cmd]:
        return [["git", "push", "-q", "origin", "main"], ["dvc", "push", "-q"]]

    def remote_bytes(self, bare: Path, store: Path) -> int:  # noqa: ARG002 - overrides Tool.remote_bytes
        return dir_bytes(store)

    def remote_root(self, bare: Path, store: Path) -> Path:  # noqa: ARG002 - overrides Tool.remote_root
        return store

    def clone_pull(self, bare: Path, dst: Path) -> list[Cmd]:
        return [(["git", "clone", "-q", str(bare), str(dst)], dst.parent),
                (["dvc", "pull", "-q"], dst)]

    def status_shows_change(self, out: str, path: str) -> bool:  # noqa: ARG002 - overrides Tool.status_shows_change
        return "modified" in out or "changed" in out


class GitLfs(Tool):
    name = "git-lfs"
    store_dir = ".git/lfs/objects"
    add_desc = "git add data (with `git lfs track 'data/**' '*.bin'` set up at init)"
    status_desc = "git status"
    checkout_desc = "git checkout -- data (smudge via git-lfs filter-process)"

    def version(self, runner: Runner, cwd: Path) -> str | None:
        return _first_line(runner, ["git-lfs", "version"], cwd)

    def init(self) -> list[list[str]]:
        return [GIT_INIT, ["git", "lfs", "install", "--local"],
                ["git", "lfs", "track", "data/**", "*.bin"],
                ["git", "add", ".gitattributes"]]

    def add(self, path: str) -> list[list[str]]:
        return [["git", "add", path]]

    def status(self) -> list[list[str]]:
        return [["git", "status"]]

    def checkout(self, path: str) -> list[list[str]]:
        return [["git", "checkout", "--", path]]

    push_desc = ("git push origin main (git-lfs pre-push sends the objects to the bare "
                 "repo's lfs/objects with its standalone file transfer)")
    clone_desc = "GIT_LFS_SKIP_SMUDGE=1 git clone; git lfs pull"
    remote_store_desc = "<bare>/lfs/objects"

    def push(self) -> list[Cmd]:
        return [["git", "push", "-q", "origin", "main"]]

    def remote_bytes(self, bare: Path, store: Path) -> int:  # noqa: ARG002 - overrides Tool.remote_bytes
        return dir_bytes(bare / "lfs" / "objects")

    def remote_root(self, bare: Path, store: Path) -> Path:  # noqa: ARG002 - overrides Tool.remote_root
        return bare / "lfs" / "objects"

    def clone_pull(self, bare: Path, dst: Path) -> list[Cmd]:
        return [(["env", "GIT_LFS_SKIP_SMUDGE=1", "git", "clone", "-q", str(bare), str(dst)],
                 dst.parent),
                (["git", "lfs", "pull"], dst)]


class GitAnnex(Tool):
    name = "git-annex"
    store_dir = ".git/annex/objects"
    add_desc = "git annex add data (default locked mode: content moved into the annex, symlinks)"
    status_desc = "git status"
    checkout_desc = ("git checkout -- data (restores the symlinks; the content is already in "
                     "the local annex so `git annex get` has nothing to do)")

    def version(self, runner: Runner, cwd: Path) -> str | None:
        return _first_line(runner, ["git-annex", "version", "--raw"], cwd)

    def init(self) -> list[list[str]]:
        return [GIT_INIT, ["git", "annex", "init", "-q", "bench"]]

    def add(self, path: str) -> list[list[str]]:
        return [["git", "annex", "add", "-q", path]]

    def status(self) -> list[list[str]]:
        return [["git", "status"]]

    def checkout(self, path: str) -> list[list[str]]:
        return [["git", "checkout", "--", path], ["git", "annex", "get", "-q", path]]

    push_desc = ("git annex copy --to origin data; git push origin main (the bare remote "
                 "records what it holds in its own git-annex branch)")
    clone_desc = "git clone; git annex init; git annex get data"
    remote_store_desc = "<bare>/annex/objects"

    def remote_setup(self, bare: Path, store: Path) -> list[Cmd]:  # noqa: ARG002 - overrides Tool.remote_setup
        return [["git", "init", "-q", "--bare", str(bare)],
                (["git", "annex", "init", "-q", "origin"], bare),
                ["git", "remote", "add", "origin", str(bare)]]

    def push(self) -> list[Cmd]:
        return [["git", "annex", "copy", "-q", "--to", "origin", "data"],
                ["git", "push", "-q", "origin", "main"]]

    def remote_bytes(self, bare: Path, store: Path) -> int:  # noqa: ARG002 - overrides Tool.remote_bytes
        return dir_bytes(bare / "annex" / "objects")

    def remote_root(self, bare: Path, store: Path) -> Path:  # noqa: ARG002 - overrides Tool.remote_root
        return bare / "annex" / "objects"

    def clone_pull(self, bare: Path, dst: Path) -> list[Cmd]:
        return [(["git", "clone", "-q", str(bare), str(dst)], dst.parent),
                (["git", "annex", "init", "-q", "clone"], dst),
                (["git", "annex", "get", "-q", "data"], dst)]


ADAPTERS: dict[str, type[Tool]] = {
    "git-ml": GitMl, "dvc": Dvc, "git-lfs": GitLfs, "git-annex": GitAnnex,
}


# --------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------

def hermetic_env(home: Path, tmp: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    path_parts = []
    for extra in (HERE / ".venv" / "bin", Path(sys.executable).parent):
        if extra.is_dir() and str(extra) not in path_parts:
            path_parts.append(str(extra))
    path_parts += [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                   if p and p not in path_parts]
    env = {
        "PATH": os.pathsep.join(path_parts),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Bench Mark",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "Bench Mark",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "GIT_TERMINAL_PROMPT": "0",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
    }
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n"
        "[gc]\n\tauto = 0\n"
        "[advice]\n\tdetachedHead = false\n"
        "[commit]\n\tgpgsign = false\n"
    )
    return env


class Floor:
    """The machine's floor: benchmarks/bench_floor.py, run with git-ml's own interpreter.

    That interpreter has the libraries git-ml uses (xxhash, zstandard); the interpreter
    is read from the ``#!`` line of the ``git-ml`` executable found on PATH.
    """

    def __init__(self, runner: Runner, threads: int) -> None:
        self.runner = runner
        self.threads = threads
        self.python: list[str] = []
        self.why_not = ""
        exe = shutil.which("git-ml", path=runner.env["PATH"])
        if not exe:
            self.why_not = "git-ml is not on PATH"
            return
        try:
            first = Path(exe).read_bytes()[:512].split(b"\n", 1)[0].decode()
        except (OSError, UnicodeDecodeError) as e:
            self.why_not = f"cannot read {exe}: {e}"
            return
        if not first.startswith("#!"):
            self.why_not = f"{exe} is not a script with a #! line"
            return
        python = first[2:].split()
        try:
            runner.run([*python, "-c", "import xxhash, zstandard"], HERE)
        except (CmdError, OSError) as e:
            self.why_not = f"git-ml's interpreter {' '.join(python)} cannot import xxhash and " \
                           f"zstandard: {e}"
            return
        self.python = python

    def run(self, args: list[str]) -> dict[str, Any]:
        os.sync()  # start with no dirty pages of the previous pass (or data generation) to flush
        _, p = self.runner.run([*self.python, str(HERE / "bench_floor.py"), *args,
                                "--threads", str(self.threads)], HERE)
        out: dict[str, Any] = json.loads(p.stdout)
        return out

    def passes(self, src: Path, scratch: Path, restore: bool = True,
               verify: Callable[[Path], str] | None = None) -> dict[str, Any]:
        """The add floor over src; unless not restore, also the pack-writing add and the
        restore floors, from a fresh scratch directory (removed at the end)."""
        rmtree_fast(scratch)
        scratch.mkdir(parents=True)
        packs, out, store = scratch / "packs", scratch / "out", scratch / "store"
        try:
            r: dict[str, Any] = {}
            add = self.run(["add", str(src)])
            r.update(add_s=add["seconds"], files=add["files"], bytes=add["bytes"],
                     stored_bytes=add["stored_bytes"], libs=add["libs"],
                     threads=add["threads"])
            if not restore:
                return r
            r["add_pack_s"] = self.run(["add", str(src), "--pack", str(packs)])["seconds"]
            r["restore_s"] = self.run(["restore", str(packs), str(out)])["seconds"]
            if verify is not None:
                r["restore_verify"] = verify(out)
            rmtree_fast(out)
            rc = self.run(["restore", str(packs), str(out), "--copy-to", str(store)])
            r["restore_copy_s"] = rc["seconds"]
            r["copy_s"] = rc["copy_seconds"]
            return r
        finally:
            rmtree_fast(scratch)


def merge_rounds(res: dict[str, Any], rounds: list[dict[str, Any]]) -> None:
    """Fold the files-scenario rounds into res: median of each timing, worst of each check."""
    if not rounds:
        return
    keys = {k for r in rounds for k in r}
    for k in sorted(keys):
        vals = [r[k] for r in rounds if k in r]
        if k == "loadavg":
            continue
        if k == "errors":
            for i, r in enumerate(rounds):
                for ek, ev in r.get("errors", {}).items():
                    tag = f"{ek} (round {i + 1})" if len(rounds) > 1 else ek
                    res.setdefault("errors", {})[tag] = ev
        elif k.endswith("_all_s"):
            res[k] = [x for v in vals for x in v]
        elif k.endswith("_s") and all(isinstance(v, (int, float)) for v in vals):
            res[k] = statistics.median(vals)
            if len(rounds) > 1:
                res[k.removesuffix("_s") + "_rounds_s"] = vals
        elif k in ("checkout_verify", "clone_verify"):
            res[k] = max(vals, key=lambda v: v["missing"] + v["wrong"])
        elif isinstance(vals[0], bool):
            # "detects the change" / "clean when unchanged": must hold in every round
            res[k] = all(vals)
        else:
            res[k] = vals[-1]


Active = tuple[Tool, Runner, Path, dict[str, Any]]  # a tool, its runner, run dir and results


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, str | None] = {}
        self.dataset = Dataset(workdir / f"source-n{args.files}-s{args.seed}", args.files,
                               args.seed)
        self.weights = Weights(args.weights_mib, args.seed)
        self.million = MillionData(workdir, args.million_files, args.seed)
        self.round = 0
        # the machine's floor, per scenario ("files", "million", "bigfile"), and why not
        self.floor: dict[str, Any] = {}
        self.floor_helper: Floor | None = None

    # helpers --------------------------------------------------------------
    def _commit(self, runner: Runner, repo: Path, msg: str) -> None:
        runner.run(["git", "commit", "-q", "--no-verify", "-m", msg], repo)

    def _commit_all(self, runner: Runner, repo: Path, msg: str) -> None:
        """Commit whatever tracked file changed (a remote's config), if anything."""
        runner.run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-a", "-m", msg],
                   repo)

    def _step(self, res: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except CmdError as e:
            res.setdefault("errors", {})[key] = e.describe()
            log(f"  !! {key}: {e.describe()}")
            return None
        except OSError as e:
            res.setdefault("errors", {})[key] = f"{type(e).__name__}: {e}"
            log(f"  !! {key}: {e}")
            return None

    def _new_repo(self, tool: Tool, runner: Runner, base: Path, name: str,
                  res: dict[str, Any] | None = None) -> Path:
        repo = base / name
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        dt, _ = runner.timed(tool.init(), repo)
        if res is not None:
            res["init_s"] = dt
        # commit whatever the tool's init created (untimed) so later steps start clean
        runner.run(["git", "add", "-A"], repo)
        runner.run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-m", "init"], repo)
        return repo

    # the measured scenarios ---------------------------------------------
    def run_all(self) -> None:
        """Set every tool up, run the files scenario in interleaved rounds, then the rest."""
        active: list[Active] = []
        for name in self.args.tools:
            tool = ADAPTERS[name]()
            base = self.workdir / "runs" / name
            shutil.rmtree(base, ignore_errors=True)
            runner = Runner(hermetic_env(base / "home", base / "tmp"), self.args.timeout)
            ver = tool.version(runner, base)
            self.versions[name] = ver
            res: dict[str, Any] = {"installed": ver is not None, "version": ver, "loadavg": []}
            self.results[name] = res
            if ver is None:
                log(f"[{name}] not installed")
                continue
            log(f"[{name}] {ver}")
            if name == "git-lfs":
                runner.run(["git", "lfs", "install", "--skip-repo"], base)
            active.append((tool, runner, base, res))
        self.setup_floor(active)
        if "files" in self.args.scenarios:
            self.run_files_rounds(active)
        helper = self.floor_helper
        if "million" in self.args.scenarios and helper is not None:
            log(f"[floor] million: {self.million.n_files} files")
            f = self._step(self.floor, "floor_million", lambda: helper.passes(
                self.million.data, self.workdir / "runs" / "floor" / "million"))
            if f is not None:
                self.floor["million"] = f
                log_floor(f)
        for tool, runner, base, res in active:
            for scenario in (self.scenario_weights, self.scenario_csv, self.scenario_large,
                             self.scenario_million, self.scenario_bigfile):
                name = scenario.__name__.split("_", 1)[1]
                if name in self.args.scenarios and (
                        name != "million" or tool.name in self.args.million_tools) and (
                        name != "bigfile" or tool.name == "git-ml"):
                    self.guarded(scenario, tool, runner, base, res)
            if not self.args.keep:
                rmtree_fast(base)
        if not self.args.keep:
            rmtree_fast(self.workdir / "runs" / "floor")

    def guarded(self, scenario: Callable[[Tool, Runner, Path, dict[str, Any]], None],
                tool: Tool, runner: Runner, base: Path, res: dict[str, Any]) -> None:
        """Run one scenario; a failed command or an OSError is recorded, not raised."""
        res["loadavg"].append(round(os.getloadavg()[0], 2))
        try:
            scenario(tool, runner, base, res)
        except CmdError as e:
            res.setdefault("errors", {})[scenario.__name__] = e.describe()
            log(f"  !! {scenario.__name__}: {e.describe()}")
        except OSError as e:
            res.setdefault("errors", {})[scenario.__name__] = f"{type(e).__name__}: {e}"
            log(f"  !! {scenario.__name__}: {e}")

    def run_files_rounds(self, active: list[Active]) -> None:
        """The files scenario in rounds, each round the floor first, then every tool."""
        rounds = max(1, self.args.rounds)
        per_round: dict[str, list[dict[str, Any]]] = {t.name: [] for t, *_ in active}
        floor_rounds: list[dict[str, Any]] = []
        for r in range(rounds):
            if self.floor_helper is not None:
                f = self._step(self.floor, "floor_files",
                               functools.partial(self.floor_files, r == 0))
                if f is not None:
                    floor_rounds.append(f)
            for tool, runner, base, res in active:
                if rounds > 1:
                    log(f"[{tool.name}] round {r + 1}/{rounds}")
                one: dict[str, Any] = {"loadavg": res["loadavg"]}
                self.round = r
                self.guarded(self.scenario_files, tool, runner, base, one)
                per_round[tool.name].append(one)
        for tool, _runner, _base, res in active:
            merge_rounds(res, per_round[tool.name])
        if floor_rounds:
            self.floor["files"] = {"loadavg": [f["loadavg"][0] for f in floor_rounds]}
            merge_rounds(self.floor["files"], floor_rounds)

    def setup_floor(self, active: list[Active]) -> None:
        """Find git-ml's interpreter for the floor passes (only when git-ml runs)."""
        if self.args.no_floor:
            self.floor["skipped"] = "--no-floor"
            return
        if not any(t.name == "git-ml" for t, *_ in active):
            self.floor["skipped"] = "git-ml is not benchmarked"
            return
        base = self.workdir / "runs" / "floor"
        runner = Runner(hermetic_env(base / "home", base / "tmp"), self.args.timeout)
        helper = Floor(runner, self.args.floor_threads)
        if not helper.python:
            self.floor["skipped"] = helper.why_not
            log(f"[floor] skipped: {helper.why_not}")
            return
        self.floor_helper = helper
        log(f"[floor] {' '.join(helper.python)}, {helper.threads} threads")

    def floor_files(self, first: bool) -> dict[str, Any]:
        """The four floor passes over the files scenario's data (verified in the first round)."""
        assert self.floor_helper is not None
        ds = self.dataset

        def verify(out: Path) -> str:
            ok, missing, wrong = ds.verify(out, ds.hash_before)
            return f"ok={ok} missing={missing} wrong={wrong}"

        log(f"[floor] files: {ds.n_files} x 64 KiB")
        f = self.floor_helper.passes(ds.data, self.workdir / "runs" / "floor" / "files",
                                     verify=verify if first else None)
        f["loadavg"] = [round(os.getloadavg()[0], 2)]
        log_floor(f)
        return f

    def scenario_files(self, tool: Tool, runner: Runner, base: Path, res: dict[str, Any]) -> None:  # noqa: C901 - a benchmark scenario: one linear script
        ds = self.dataset
        log(f"[{tool.name}] files: {ds.n_files} x 64 KiB")
        repo = self._new_repo(tool, runner, base, "files", res)
        ds.copy_to(repo / "data")
        rep = self.args.repeat

        def measure(key: str, cmds: Sequence[Cmd], repeat: int = 1) -> str | None:
            """Time cmds (median of `repeat` runs) into res[key_s] and res[key_cpu_s]."""

            def go() -> str:
                walls, cpus, out = [], [], ""
                for _ in range(repeat):
                    t, out = runner.timed(cmds, repo)
                    walls.append(t)
                    cpus.append(runner.last_cpu)
                res[f"{key}_s"] = statistics.median(walls)
                res[f"{key}_cpu_s"] = statistics.median(cpus)
                if len(runner.last_parts) > 1:
                    res[f"{key}_parts"] = [[c, round(t, 3)] for c, t in runner.last_parts]
                if repeat > 1:
                    res[f"{key}_all_s"] = walls
                return out

            out: str | None = self._step(res, key, go)
            if out is not None:
                runs = ""
                if repeat > 1:
                    runs = f"  (runs {', '.join(f'{x:.3f}' for x in res[key + '_all_s'])})"
                log(f"  {key:18s}{res[key + '_s']:8.3f} s  cpu {res[key + '_cpu_s']:7.3f} s{runs}")
            return out

        if measure("add", tool.add("data")) is None:
            return
        self._commit(runner, repo, "add data")
        res["store_after_add_bytes"] = tool.store_bytes(repo)

        if measure("readd_unchanged", tool.readd("data"), rep) is not None:
            porcelain = runner.run(["git", "status", "--porcelain"], repo)[1].stdout
            if porcelain.strip():
                res["readd_unchanged_dirty"] = porcelain.strip()[:400]
        out = measure("status_unchanged", tool.status(), rep)
        if out is not None:
            res["status_unchanged_output"] = out.strip()[:400]
            if tool.name == "git-ml":
                res["status_unchanged_clean"] = not tool.status_shows_change(out, "data")

        # remote: initial push of the committed dataset
        remote = "remote" in self.args.scenarios and self.round < self.args.remote_rounds
        rdir = base / "remote"
        bare, store, plain = rdir / "origin.git", rdir / "store", rdir / "plain.git"
        if remote:
            shutil.rmtree(rdir, ignore_errors=True)
            rdir.mkdir(parents=True)

            def setup() -> bool:
                runner.timed(tool.remote_setup(bare, store), repo)
                runner.run(["git", "add", "-A"], repo)
                runner.run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-m",
                            "remote"], repo)
                if tool.name == "git-ml":
                    runner.run(["git", "init", "-q", "--bare", str(plain)], repo)
                    runner.run(["git", "remote", "add", "plain", str(plain)], repo)
                return True

            if self._step(res, "remote_setup", setup) is None:
                remote = False
        if remote:
            if measure("push_initial", tool.push()) is None:
                remote = False
            else:
                res["push_initial_bytes"] = tool.remote_bytes(bare, store)
                log(f"  push_initial sent {res['push_initial_bytes'] / MIB:.1f} MiB")
            # the same data push without git: `git ml push` to a second empty bare repo
            if tool.name == "git-ml" and measure(
                    "push_plain", [["git", "ml", "push", "plain"]]) is not None:
                res["push_plain_report"] = gitml_push_report(runner.last_output)

        changed = ds.apply_change(repo / "data")
        out = measure("status_changed", tool.status())
        if out is not None:
            res["status_changed_detects"] = tool.status_shows_change(out, "data")
            log(f"  status sees the change: {res['status_changed_detects']}")
        if measure("readd_changed", tool.readd("data")) is not None:
            res["changed_files"] = len(changed)
            self._commit(runner, repo, "change 1%")
        else:
            remote = False
        res["store_files_bytes"] = tool.store_bytes(repo)

        if remote:
            self.remote_after_change(tool, runner, res, measure, bare, store, plain, rdir)
        if "remote" in self.args.scenarios and not self.args.keep:
            shutil.rmtree(rdir, ignore_errors=True)

        shutil.rmtree(repo / "data")
        if measure("checkout", tool.checkout("data")) is not None:
            expected = ds.hash_after if "readd_changed_s" in res else ds.hash_before
            ok, missing, wrong = ds.verify(repo / "data", expected)
            res["checkout_verify"] = {"ok": ok, "missing": missing, "wrong": wrong}
            links = sum(1 for rel in ds.rel[:200] if (repo / "data" / rel).is_symlink())
            res["checkout_symlinks"] = links > 0
            log(f"  checkout verify ok={ok} missing={missing} "
                f"wrong={wrong}{' (symlinks)' if links else ''}")
        if not self.args.keep:
            shutil.rmtree(repo, ignore_errors=True)

    def remote_after_change(self, tool: Tool, runner: Runner, res: dict[str, Any],
                            measure: Callable[..., str | None], bare: Path, store: Path,
                            plain: Path, rdir: Path) -> None:
        """Push the 1% change, push with nothing to send, clone + pull and verify."""
        ds = self.dataset
        rep = self.args.repeat
        before = tool.remote_bytes(bare, store)
        if measure("push_changed", tool.push()) is not None:
            res["push_changed_bytes"] = tool.remote_bytes(bare, store) - before
            res["push_changed_dataset_bytes"] = ds.total_bytes
            log(f"  push_changed sent {res['push_changed_bytes'] / MIB:.2f} MiB "
                f"({100 * res['push_changed_bytes'] / ds.total_bytes:.2f}% of the dataset)")
        if tool.name == "git-ml" and "push_plain_s" in res:
            before_plain = dir_bytes(plain / "ml" / "packs")
            if measure("push_plain_changed", [["git", "ml", "push", "plain"]]) is not None:
                res["push_plain_changed_report"] = gitml_push_report(runner.last_output)
                res["push_plain_changed_bytes"] = dir_bytes(plain / "ml" / "packs") - before_plain
        before = tool.remote_bytes(bare, store)
        measure("push_empty", tool.push(), rep)
        if "push_empty_s" in res:
            res["push_empty_bytes"] = tool.remote_bytes(bare, store) - before
        if tool.name == "git-ml" and measure(
                "push_empty_ml", [["git", "ml", "push", "origin"]], rep) is not None:
            res["push_empty_ml_report"] = gitml_push_report(runner.last_output)
        clone = rdir / "clone"
        shutil.rmtree(clone, ignore_errors=True)
        if measure("clone_pull", tool.clone_pull(bare, clone)) is not None:
            ok, missing, wrong = ds.verify(clone / "data", ds.hash_after)
            res["clone_verify"] = {"ok": ok, "missing": missing, "wrong": wrong}
            links = sum(1 for rel in ds.rel[:200] if (clone / "data" / rel).is_symlink())
            res["clone_symlinks"] = links > 0
            log(f"  clone verify ok={ok} missing={missing} "
                f"wrong={wrong}{' (symlinks)' if links else ''}")
        shutil.rmtree(clone, ignore_errors=True)

    def scenario_weights(self, tool: Tool, runner: Runner, base: Path,
                         res: dict[str, Any]) -> None:
        w = self.weights
        log(f"[{tool.name}] weights: {WEIGHT_VERSIONS} versions of {w.size / MIB:.0f} MiB, "
            f"{w.n_change}/{w.n_tensors} tensors change per version")
        repo = self._new_repo(tool, runner, base, "weights")
        times = []
        for v in range(WEIGHT_VERSIONS):
            w.write(v, repo / "weights.bin")
            dt = self._step(res, f"weights_v{v}",
                            lambda: runner.timed(tool.add("weights.bin"), repo)[0])
            if dt is None:
                return
            times.append(dt)
            self._commit(runner, repo, f"weights v{v}")
        res["weights_add_s"] = times
        res["weights_store_bytes"] = tool.store_bytes(repo)
        res["weights_logical_bytes"] = w.size * WEIGHT_VERSIONS
        log(f"  adds {', '.join(f'{t:.2f}' for t in times)} s; store "
            f"{res['weights_store_bytes'] / MIB:.1f} MiB")
        if not self.args.keep:
            shutil.rmtree(repo, ignore_errors=True)

    def scenario_csv(self, tool: Tool, runner: Runner, base: Path, res: dict[str, Any]) -> None:
        ds = self.dataset
        repo = self._new_repo(tool, runner, base, "csv")
        ds.copy_to(repo / "data", csv_only=True)
        on_disk = dir_bytes(repo / "data")
        dt = self._step(res, "csv_add", lambda: runner.timed(tool.add("data"), repo)[0])
        if dt is None:
            return
        res["csv_add_s"] = dt
        res["csv_disk_bytes"] = on_disk
        res["csv_store_bytes"] = tool.store_bytes(repo)
        log(f"[{tool.name}] csv half: {on_disk / MIB:.1f} MiB on disk -> "
            f"{res['csv_store_bytes'] / MIB:.1f} MiB in store")
        if not self.args.keep:
            shutil.rmtree(repo, ignore_errors=True)

    def scenario_large(self, tool: Tool, runner: Runner, base: Path,
                       res: dict[str, Any]) -> None:
        size = self.args.large_mib * MIB
        repo = self._new_repo(tool, runner, base, "large")
        write_big_file(repo / "big.bin", size, self.args.seed)
        r = self._step(res, "large_add", lambda: runner.timed_rss(tool.add("big.bin"), repo))
        if r:
            res["large_add_s"], res["large_rss_bytes"], res["rss_method"] = r
            res["large_bytes"] = size
            rss = r[1] / MIB if r[1] else float("nan")
            log(f"[{tool.name}] large add {size / MIB:.0f} MiB: {r[0]:.2f} s, "
                f"peak RSS {rss:.1f} MiB")
        if not self.args.keep:
            shutil.rmtree(repo, ignore_errors=True)

    # tree-measured steps (peak RSS and bytes read of the whole process tree) -----
    def _measure(self, res: dict[str, Any], key: str, runner: Runner, cmds: Sequence[Cmd],
                 cwd: Path, repeat: int = 1) -> dict[str, Any] | None:
        """Run cmds under TREE_PROBE (median wall of `repeat` runs) into res[key_*]."""

        def go() -> dict[str, Any]:
            runs = []
            for _ in range(repeat):
                os.sync()  # untimed: no dirty pages of the previous step to flush during this one
                runs.append(runner.measured(cmds, cwd))
            walls = [r["wall_s"] for r in runs]
            res[f"{key}_s"] = statistics.median(walls)
            res[f"{key}_cpu_s"] = statistics.median(r["cpu_s"] for r in runs)
            res[f"{key}_rss_bytes"] = max(r["rss_bytes"] for r in runs)
            res[f"{key}_rchar"] = runs[-1]["rchar"]
            res[f"{key}_read_bytes"] = runs[-1]["read_bytes"]
            if repeat > 1:
                res[f"{key}_all_s"] = walls
            return runs[-1]

        m: dict[str, Any] | None = self._step(res, key, go)
        if m is not None:
            runs = ""
            if repeat > 1:
                runs = f"  (runs {', '.join(f'{x:.3f}' for x in res[key + '_all_s'])})"
            log(f"  {key:30s}{res[key + '_s']:9.3f} s  peak RSS "
                f"{res[key + '_rss_bytes'] / MIB:7.1f} MiB  read {m['rchar'] / MIB:9.1f} MiB{runs}")
        return m

    def _init_in_place(self, tool: Tool, runner: Runner, repo: Path) -> None:
        """The tool's init in a directory that already holds data/ (not committed to git)."""
        runner.timed(tool.init(), repo)
        runner.run(["git", "add", "-A", "--", ".", ":(exclude)data"], repo)
        runner.run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-m", "init"], repo)

    def scenario_million(self, tool: Tool, runner: Runner, base: Path,
                         res: dict[str, Any]) -> None:
        """Add, status, push, clone + pull of N small files; git-ml uses the cached tree
        in place (it never writes into data/), other tools get a copy (git-annex replaces
        the files with symlinks)."""
        md = self.million
        log(f"[{tool.name}] million: {md.n_files} files of 1-8 KiB in {md.n_dirs} directories")
        res["million_files"] = md.n_files
        res["million_data_bytes"] = md.total_bytes
        if tool.name == "git-ml":
            repo = md.root
            clean_except_data(repo)
        else:
            repo = base / "million"
            rmtree_fast(repo)
            repo.mkdir(parents=True)
            t0 = time.perf_counter()
            runner.run(["cp", "-a", str(md.data), str(repo / "data")], base)
            log(f"  copied the data in {time.perf_counter() - t0:.0f} s (untimed)")
        try:
            self._init_in_place(tool, runner, repo)
            self.million_steps(tool, runner, base, res, repo)
        finally:
            if tool.name == "git-ml":
                md.restore_changed()
                if not self.args.keep:
                    clean_except_data(repo)
            elif not self.args.keep:
                rmtree_fast(repo)

    def million_steps(self, tool: Tool, runner: Runner, base: Path, res: dict[str, Any],
                      repo: Path) -> None:
        md = self.million

        def measure(key: str, cmds: Sequence[Cmd], repeat: int = 1) -> dict[str, Any] | None:
            return self._measure(res, f"million_{key}", runner, cmds, repo, repeat)

        if measure("add", tool.add("data")) is None:
            return
        self._commit(runner, repo, "add data")
        store = repo / (tool.store_root or tool.store_dir)
        res["million_store_files"], res["million_store_packs"] = count_files(store)
        res["million_store_bytes"] = dir_bytes(store)
        log(f"  store: {res['million_store_files']} files ({res['million_store_packs']} packs), "
            f"{res['million_store_bytes'] / MIB:.1f} MiB")
        measure("readd_unchanged", tool.readd("data"))
        m = measure("status_unchanged", tool.status(), max(1, min(3, self.args.repeat)))
        if m is not None and tool.name == "git-ml":
            res["million_status_unchanged_clean"] = not tool.status_shows_change(m["output"],
                                                                                 "data")
        rel = md.change(repo / "data")
        expected = dict(md.dir_digests)
        changed_dir = rel.split("/", 1)[0]
        expected[changed_dir] = dir_digest(repo / "data" / changed_dir)[0]
        m = measure("status_changed", tool.status())
        if m is not None:
            res["million_status_changed_detects"] = tool.status_shows_change(m["output"], "data")
            log(f"  status sees the change: {res['million_status_changed_detects']}")
        if measure("readd_changed", tool.readd("data")) is None:
            return
        self._commit(runner, repo, "change one file")

        rdir = base / "million-remote"
        rmtree_fast(rdir)
        rdir.mkdir(parents=True)
        bare, rstore = rdir / "origin.git", rdir / "store"
        try:
            runner.timed(tool.remote_setup(bare, rstore), repo)
            self._commit_all(runner, repo, "remote")
            m = measure("push", tool.push())
            if m is None:
                return
            res["million_push_report"] = gitml_push_report(m["output"])
            res["million_remote_files"], res["million_remote_packs"] = count_files(
                tool.remote_root(bare, rstore))
            res["million_remote_bytes"] = tool.remote_bytes(bare, rstore)
            log(f"  remote store: {res['million_remote_files']} files "
                f"({res['million_remote_packs']} packs), "
                f"{res['million_remote_bytes'] / MIB:.1f} MiB")
            clone = rdir / "clone"
            if self._measure(res, "million_clone_pull", runner, tool.clone_pull(bare, clone),
                             repo) is not None:
                t0 = time.perf_counter()
                v = res["million_clone_verify"] = md.verify(clone / "data", expected)
                log(f"  clone verify: {v['dirs_ok']} directories ok, {v['dirs_bad']} wrong, "
                    f"{v['files']} files ({time.perf_counter() - t0:.0f} s)")
            rmtree_fast(clone)
        finally:
            if not self.args.keep:
                rmtree_fast(rdir)
        if tool.name == "git-ml":
            self.million_fsck_lookup(runner, base, res, repo)

    def million_fsck_lookup(self, runner: Runner, base: Path, res: dict[str, Any],
                            repo: Path) -> None:
        """git ml fsck (objects, packs, peak RSS), and the RSS an object lookup costs:
        `git ml add` of one new 4 KiB file in this store vs. in an empty one."""
        m = self._measure(res, "million_fsck", runner, [["git", "ml", "fsck", "--json"]], repo)
        if m is not None:
            try:
                j = json.loads(m["stdout"])
                res["million_objects"] = j["objects"]
                res["million_fsck_packs"] = j["packs"]
                res["million_fsck_ok"] = j["ok"]
                log(f"  fsck: ok={j['ok']}, {j['objects']} objects in {j['packs']} packs")
            except (ValueError, KeyError, TypeError) as e:
                res.setdefault("errors", {})["million_fsck"] = f"unreadable fsck --json: {e}"
        if "million_objects" not in res and res.get("million_push_report"):
            res["million_objects"] = res["million_push_report"]["objects"]
        empty = base / "lookup-empty"
        rmtree_fast(empty)
        empty.mkdir(parents=True)
        rng = random.Random(self.args.seed * 23 + 1)
        try:
            runner.timed(GitMl().init(), empty)
            (empty / "one.bin").write_bytes(rng.randbytes(4 * KIB))
            m0 = self._measure(res, "million_lookup_empty", runner,
                               [["git", "ml", "add", "one.bin"]], empty)
        finally:
            rmtree_fast(empty)
        (repo / "lookup.bin").write_bytes(rng.randbytes(4 * KIB))
        m1 = self._measure(res, "million_lookup", runner, [["git", "ml", "add", "lookup.bin"]],
                           repo)
        objects = res.get("million_objects")
        if m0 is not None and m1 is not None and objects:
            per = (m1["rss_bytes"] - m0["rss_bytes"]) / objects
            res["million_lookup_bytes_per_object"] = per
            log(f"  object lookup: {per:.1f} B of peak RSS per object ({objects} objects)")

    def scenario_bigfile(self, tool: Tool, runner: Runner, base: Path,
                         res: dict[str, Any]) -> None:
        """Add a large file, change 1 MiB in its middle, re-add, push (git-ml only)."""
        size = self.args.bigfile_mib * MIB
        repo = self._new_repo(tool, runner, base, "bigfile")
        big = repo / "big.bin"
        log(f"[{tool.name}] bigfile: {size / MIB:.0f} MiB")
        t0 = time.perf_counter()
        write_stamped_file(big, size, self.args.seed)
        res["bigfile_bytes"] = size
        res["bigfile_generate_s"] = time.perf_counter() - t0
        log(f"  generated in {res['bigfile_generate_s']:.1f} s")
        helper = self.floor_helper
        if helper is not None:
            f = self._step(self.floor, "floor_bigfile", lambda: helper.passes(
                big, self.workdir / "runs" / "floor" / "bigfile", restore=False))
            if f is not None:
                self.floor["bigfile"] = f
                log_floor(f)
        rdir = base / "bigfile-remote"
        bare, rstore = rdir / "origin.git", rdir / "store"
        try:
            if self._measure(res, "bigfile_add", runner, tool.add("big.bin"), repo) is None:
                return
            self._commit(runner, repo, "big file")
            rmtree_fast(rdir)
            rdir.mkdir(parents=True)
            runner.timed(tool.remote_setup(bare, rstore), repo)
            self._commit_all(runner, repo, "remote")
            # `git ml push` (what the pre-push hook runs) reports the objects it sends
            push = [["git", "ml", "push", "origin"]]
            if self._measure(res, "bigfile_push_initial", runner, push, repo) is not None:
                res["bigfile_push_initial_bytes"] = tool.remote_bytes(bare, rstore)
            # 1 MiB of new bytes in the middle, in place; then drop the file's pages from
            # the page cache, so that read_bytes also sees reads through mmap
            at = (size // 2) // (4 * KIB) * (4 * KIB)
            n = min(BIGFILE_CHANGE, size - at)
            with open(big, "r+b") as f:
                f.seek(at)
                f.write(random.Random(self.args.seed * 29 + 3).randbytes(n))
                f.flush()
                os.fsync(f.fileno())
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            res["bigfile_changed_bytes"] = n
            if self._measure(res, "bigfile_readd", runner, tool.readd("big.bin"), repo) is None:
                return
            self._commit(runner, repo, "change 1 MiB")
            if "bigfile_push_initial_bytes" in res:
                before = tool.remote_bytes(bare, rstore)
                m = self._measure(res, "bigfile_push_changed", runner, push, repo)
                if m is not None:
                    res["bigfile_push_changed_bytes"] = tool.remote_bytes(bare, rstore) - before
                    res["bigfile_push_changed_report"] = gitml_push_report(m["output"])
                    log(f"  push after the change sent "
                        f"{res['bigfile_push_changed_bytes'] / MIB:.2f} MiB")
            try:
                cfg = json.loads((repo / ".git" / "ml" / "config").read_text())
                res["bigfile_chunk_max"] = int(cfg["chunk_max"])
            except (OSError, ValueError, KeyError, TypeError):
                res["bigfile_chunk_max"] = 256 * KIB  # git-ml's default
        finally:
            if not self.args.keep:
                rmtree_fast(rdir)
                rmtree_fast(repo)


def clean_except_data(repo: Path) -> None:
    """Remove everything in repo but its data/ directory (a run's .git, pointers, ...)."""
    if not repo.is_dir():
        return
    for p in repo.iterdir():
        if p.name == "data":
            continue
        if p.is_dir() and not p.is_symlink():
            rmtree_fast(p)
        else:
            p.unlink()


def log_floor(f: dict[str, Any]) -> None:
    parts = [f"{k.removesuffix('_s').replace('_', '+')} {f[k]:.3f} s"
             for k in ("add_s", "add_pack_s", "restore_s", "restore_copy_s") if k in f]
    verify = f"; restore verify {f['restore_verify']}" if "restore_verify" in f else ""
    log(f"  floor: {', '.join(parts)}{verify}")


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

ROWS: list[tuple[str, str, str]] = [
    # key, label, unit ("s" seconds, "b" bytes)
    ("init_s", "init (git init + tool init)", "s"),
    ("add_s", "add {n} files", "s"),
    ("readd_unchanged_s", "re-add unchanged (median)", "s"),
    ("status_unchanged_s", "status unchanged (median)", "s"),
    ("status_changed_s", "status after 1% change", "s"),
    ("readd_changed_s", "re-add after 1% change", "s"),
    ("checkout_s", "checkout {n} files after rm -rf", "s"),
    ("store_files_bytes", "store: {n} files + 1% change", "b"),
    ("weights_store_bytes", "store: 5 weights versions", "b"),
    ("csv_disk_bytes", "CSV half on disk", "b"),
    ("csv_store_bytes", "CSV half in store", "b"),
    ("large_add_s", "add {large} MiB file", "s"),
    ("large_rss_bytes", "add {large} MiB file: peak RSS", "b"),
    ("push_initial_s", "push {n} files (initial)", "s"),
    ("push_initial_bytes", "  data in remote after it", "b"),
    ("push_plain_s", "  git ml push alone, initial", "s"),
    ("push_changed_s", "push after 1% change", "s"),
    ("push_changed_bytes", "  data bytes sent", "b"),
    ("push_plain_changed_s", "  git ml push alone, 1% change", "s"),
    ("push_empty_s", "push, nothing to send (median)", "s"),
    ("push_empty_ml_s", "  git ml push, nothing (median)", "s"),
    ("clone_pull_s", "clone + pull {n} files", "s"),
]
GITML_ONLY = {"push_plain_s", "push_plain_changed_s", "push_empty_ml_s",
              "push_plain_cpu_s", "push_plain_changed_cpu_s", "push_empty_ml_cpu_s"}

CPU_ROWS: list[tuple[str, str, str]] = [
    ("add_cpu_s", "add {n} files", "s"),
    ("readd_unchanged_cpu_s", "re-add unchanged (median)", "s"),
    ("status_unchanged_cpu_s", "status unchanged (median)", "s"),
    ("status_changed_cpu_s", "status after 1% change", "s"),
    ("readd_changed_cpu_s", "re-add after 1% change", "s"),
    ("checkout_cpu_s", "checkout {n} files after rm -rf", "s"),
    ("push_initial_cpu_s", "push {n} files (initial)", "s"),
    ("push_plain_cpu_s", "  git ml push alone, initial", "s"),
    ("push_changed_cpu_s", "push after 1% change", "s"),
    ("push_empty_cpu_s", "push, nothing to send (median)", "s"),
    ("push_empty_ml_cpu_s", "  git ml push, nothing (median)", "s"),
    ("clone_pull_cpu_s", "clone + pull {n} files", "s"),
]


MILLION_ROWS: list[tuple[str, str, str]] = [
    ("million_add_s", "add {m} files", "s"),
    ("million_add_rss_bytes", "  peak RSS", "b"),
    ("million_readd_unchanged_s", "re-add unchanged", "s"),
    ("million_status_unchanged_s", "status unchanged (median)", "s"),
    ("million_status_unchanged_rss_bytes", "  peak RSS", "b"),
    ("million_status_changed_s", "status after changing 1 file", "s"),
    ("million_readd_changed_s", "re-add after changing 1 file", "s"),
    ("million_push_s", "push (initial)", "s"),
    ("million_push_rss_bytes", "  peak RSS", "b"),
    ("million_clone_pull_s", "clone + pull", "s"),
    ("million_clone_pull_rss_bytes", "  peak RSS", "b"),
    ("million_fsck_s", "git ml fsck", "s"),
    ("million_fsck_rss_bytes", "  peak RSS", "b"),
    ("million_store_bytes", "store bytes", "b"),
    ("million_store_files", "files in the store", "n"),
    ("million_remote_files", "files in the remote's store", "n"),
]


def scenario_of(key: str) -> str:
    """The scenario a result or error key belongs to."""
    key = key.removeprefix("scenario_").removeprefix("floor_")
    for prefix in ("weights", "csv", "large", "million", "bigfile"):
        if key.startswith(prefix):
            return prefix
    if key.startswith(("push", "clone", "remote")):
        return "remote"
    return "files"


def fmt(v: Any, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "n":
        return str(v)
    return f"{v / MIB:.1f} MiB"


def render_table(lines: list[str], title: str, rows: list[tuple[str, str, str]],
                 tools: list[str], res: dict[str, dict[str, Any]], labels: dict[str, Any],
                 ratio_cols: list[str]) -> None:
    """A table of figures, one column per tool, then git-ml/other ratio columns."""
    gm = res.get("git-ml", {})
    w_label = 34
    col = 14
    lines.append("")
    lines.append(title)
    header = f"{'step':{w_label}s}" + "".join(f"{t:>{col}s}" for t in tools)
    header += "".join(f"{'git-ml/' + t:>{col + 4}s}" for t in ratio_cols)
    lines.append(header)
    lines.append("-" * len(header))
    for key, label, unit in rows:
        row = f"{label.format(**labels):{w_label}s}"
        for t in tools:
            if not res[t].get("installed"):
                cell = "not inst."
            elif key in GITML_ONLY and t != "git-ml":
                cell = "n/a"
            elif key in res[t]:
                cell = fmt(res[t][key], unit)
            else:
                scen = scenario_of(key)
                errs = [k for k in res[t].get("errors", {})
                        if scenario_of(k) == scen
                        or (scen == "remote" and k.startswith("scenario_files"))]
                cell = "ERROR" if errs else "-"
            row += f"{cell:>{col}s}"
        for t in ratio_cols:
            a, b = gm.get(key), res[t].get(key)
            cell = f"{a / b:.2f}x" if a is not None and b else "-"
            row += f"{cell:>{col + 4}s}"
        lines.append(row)


def floor_lines(title: str, f: dict[str, Any], gm: dict[str, Any], add_key: str,
                clone_key: str | None) -> list[str]:
    """The floor passes beside git-ml's add and clone + pull, with the ratios."""
    libs = f.get("libs", {})
    out = ["", f"{title} (bench_floor.py in one process, {f.get('threads')} threads, python "
           f"{libs.get('python')}, xxhash {libs.get('xxhash')}, zstandard "
           f"{libs.get('zstandard')}; time inside the process):"]
    rows = [("add_s", "add: list, read, xxh3-128, zstd-1 w/ probe", add_key),
            ("add_pack_s", "  the same + write packs (fsync)", add_key),
            ("restore_s", "clone: read packs, unzstd, write files", clone_key),
            ("restore_copy_s", "  copy packs (fsync) + the same", clone_key)]
    out.append(f"{'floor pass':44s}{'floor':>11s}{'git-ml':>11s}{'git-ml/floor':>14s}")
    for key, label, gkey in rows:
        if key not in f:
            continue
        g = gm.get(gkey) if gkey else None
        ratio = f"{g / f[key]:.2f}x" if g is not None and f[key] else "-"
        out.append(f"{label:44s}{fmt(f[key], 's'):>11s}{fmt(g, 's'):>11s}{ratio:>14s}")
    if "copy_s" in f:
        out.append(f"  (of which the pack copy {f['copy_s']:.3f} s)")
    extra = [f"{f['files']} files, {f['bytes'] / MIB:.1f} MiB read, "
             f"{f['stored_bytes'] / MIB:.1f} MiB would be stored"]
    if "restore_verify" in f:
        extra.append(f"restore verified: {f['restore_verify']}")
    if len(f.get("add_rounds_s", [])) > 1:
        extra.append("add per round " + ", ".join(f"{x:.3f}" for x in f["add_rounds_s"]))
    if f.get("loadavg"):
        extra.append(f"load average {', '.join(str(x) for x in f['loadavg'])}")
    out.append("  " + "; ".join(extra))
    return out


def notes_lines(bench: Bench, tools: list[str]) -> list[str]:  # noqa: C901 - one note per figure
    res = bench.results
    lines: list[str] = []
    for t in tools:
        r = res[t]
        if not r.get("installed"):
            continue
        notes = []
        v = r.get("checkout_verify")
        if v:
            notes.append(f"checkout verify ok={v['ok']} missing={v['missing']} wrong={v['wrong']}"
                         + (" (symlinks into the annex)" if r.get("checkout_symlinks") else ""))
        v = r.get("clone_verify")
        if v:
            notes.append(f"clone + pull verify ok={v['ok']} missing={v['missing']} "
                         f"wrong={v['wrong']}"
                         + (" (symlinks into the annex)" if r.get("clone_symlinks") else ""))
        for k in ("push_initial", "push_changed", "push_empty", "clone_pull"):
            if f"{k}_parts" in r:
                notes.append(f"{k} (last run) per command: " + "; ".join(
                    f"`{c}` {t:.3f} s" for c, t in r[f"{k}_parts"]))
        for k in ("push_plain_report", "push_plain_changed_report", "push_empty_ml_report"):
            if r.get(k):
                notes.append(f"{k.removesuffix('_report')} output: {r[k]['line']}")
        if "push_changed_bytes" in r:
            notes.append(f"data sent after the 1% change: {r['push_changed_bytes']} bytes "
                         f"({100 * r['push_changed_bytes'] / r['push_changed_dataset_bytes']:.2f}%"
                         f" of {r['push_changed_dataset_bytes']} dataset bytes)"
                         + (f"; a second push with nothing new added {r['push_empty_bytes']} bytes"
                            if r.get("push_empty_bytes") else ""))
        if "status_changed_detects" in r:
            notes.append(f"status sees the 1% change: {r['status_changed_detects']}")
        if "status_unchanged_clean" in r:
            notes.append(f"status clean when unchanged: {r['status_unchanged_clean']}")
        if r.get("readd_unchanged_dirty"):
            notes.append("git status not clean after re-add of unchanged data: "
                         + r["readd_unchanged_dirty"].replace("\n", " | ")[:200])
        rounds = [(k, v) for k, v in r.items() if k.endswith("_rounds_s")]
        if rounds:
            notes.append("per round: " + "; ".join(
                f"{k.removesuffix('_rounds_s')} " + ", ".join(f"{x:.3f}" for x in v)
                for k, v in rounds if not k.endswith("_cpu_rounds_s")))
        if "weights_add_s" in r:
            notes.append("weights add per version: "
                         + ", ".join(f"{x:.2f}" for x in r["weights_add_s"]) + " s")
        for k in ("readd_unchanged", "status_unchanged", "million_status_unchanged"):
            if f"{k}_all_s" in r:
                notes.append(f"{k.replace('_', ' ')} runs: "
                             + ", ".join(f"{x:.3f}" for x in r[f"{k}_all_s"]) + " s")
        notes += million_notes(r)
        for k, e in r.get("errors", {}).items():
            notes.append(f"ERROR in {k}: {e}")
        if notes:
            lines.append(f"{t}:")
            lines.extend(f"  - {n}" for n in notes)
    for k, e in bench.floor.get("errors", {}).items():
        lines.append(f"floor: ERROR in {k}: {e}")
    if bench.floor.get("skipped"):
        lines.append(f"floor: not measured ({bench.floor['skipped']})")
    return lines


def million_notes(r: dict[str, Any]) -> list[str]:
    notes = []
    if "million_status_unchanged_clean" in r:
        notes.append(f"million: status clean when unchanged: {r['million_status_unchanged_clean']}")
    if "million_status_changed_detects" in r:
        notes.append(f"million: status sees the changed file: "
                     f"{r['million_status_changed_detects']}")
    v = r.get("million_clone_verify")
    if v:
        notes.append(f"million: clone + pull verify: {v['dirs_ok']} directories ok, "
                     f"{v['dirs_bad']} wrong, {v['files']} files")
    if "million_store_files" in r:
        notes.append(f"million: store {r['million_store_files']} files "
                     f"({r['million_store_packs']} packs); remote "
                     f"{r.get('million_remote_files', '-')} files "
                     f"({r.get('million_remote_packs', '-')} packs)")
    if "million_objects" in r:
        notes.append(f"million: {r['million_objects']} objects; fsck ok={r.get('million_fsck_ok')}"
                     f" in {r.get('million_fsck_packs')} packs")
    if "million_lookup_rss_bytes" in r and "million_lookup_empty_rss_bytes" in r:
        per = r.get("million_lookup_bytes_per_object")
        notes.append(
            f"million: object lookup (`git ml add` of one new 4 KiB file): peak RSS "
            f"{r['million_lookup_rss_bytes'] / MIB:.1f} MiB in this store vs "
            f"{r['million_lookup_empty_rss_bytes'] / MIB:.1f} MiB in an empty one"
            + (f" = {per:.1f} B per object" if per is not None else ""))
        objects = r.get("million_objects")
        base = r["million_lookup_empty_rss_bytes"]
        if objects:
            for k, label in (("million_status_unchanged", "status unchanged"),
                             ("million_status_changed", "status after the change"),
                             ("million_fsck", "fsck")):
                if f"{k}_rss_bytes" in r:
                    notes.append(f"million: {label}: peak RSS {r[f'{k}_rss_bytes'] / MIB:.1f} MiB"
                                 f" = {(r[f'{k}_rss_bytes'] - base) / objects:.0f} B per object "
                                 "above that empty-store add")
    return notes


def bigfile_lines(bench: Bench) -> list[str]:
    r = bench.results.get("git-ml", {})
    if "bigfile_bytes" not in r:
        return []
    size = r["bigfile_bytes"]
    out = ["", f"Large file (git-ml): {size / MIB:.0f} MiB of incompressible stamped blocks, "
           f"generated in {r['bigfile_generate_s']:.1f} s:"]

    def step(key: str, label: str) -> None:
        if f"{key}_s" not in r:
            return
        out.append(f"  {label:44s}{r[f'{key}_s']:9.3f} s  peak RSS "
                   f"{r[f'{key}_rss_bytes'] / MIB:7.1f} MiB  read (rchar) "
                   f"{r[f'{key}_rchar'] / size:5.2f}x the file, from storage "
                   f"{r[f'{key}_read_bytes'] / size:5.2f}x")

    step("bigfile_add", "add")
    step("bigfile_push_initial", "push (initial)")
    step("bigfile_readd", f"re-add after {r.get('bigfile_changed_bytes', 0) / MIB:.0f} MiB "
         "changed mid-file")
    step("bigfile_push_changed", "push after the change")
    if "bigfile_push_initial_bytes" in r:
        out.append(f"  data in the remote after the initial push: "
                   f"{r['bigfile_push_initial_bytes'] / MIB:.1f} MiB")
    if "bigfile_push_changed_bytes" in r:
        rep = r.get("bigfile_push_changed_report")
        out.append(f"  sent by the push after the change: "
                   f"{r['bigfile_push_changed_bytes'] / MIB:.2f} MiB"
                   + (f" (git-ml: \"{rep['line']}\")" if rep else "")
                   + f"; chunk_max {r.get('bigfile_chunk_max', 0) // KIB} KiB")
    f = bench.floor.get("bigfile")
    if f and "bigfile_add_s" in r:
        ratio = r["bigfile_add_s"] / f["add_s"]
        out.append(f"  floor: read + xxh3-128 + zstd-1 w/ probe on {f['threads']} threads "
                   f"{f['add_s']:.3f} s; git-ml add / floor = {ratio:.2f}x")
    return out


def build_report(bench: Bench) -> tuple[str, list[dict[str, Any]]]:
    args = bench.args
    tools = [t for t in args.tools if t in bench.results]
    res = bench.results
    lines = []
    others = [t for t in tools if t != "git-ml"]
    gm = res.get("git-ml", {})
    gm_ok = gm.get("installed", False)
    lines.append("")
    lines.append("Tools:")
    for t in tools:
        lines.append(f"  {t:10s} {res[t]['version'] or 'not installed'}")
        if res[t].get("installed"):
            loads = res[t].get("loadavg") or []
            lines.append(f"  {'':10s} 1-min load average as its scenarios started: "
                         f"{', '.join(str(x) for x in loads)} ({os.cpu_count()} cpus)")
    ratio_cols = [t for t in others if gm_ok and res[t].get("installed")]
    labels = {"n": args.files, "large": args.large_mib, "m": args.million_files}
    if args.scenarios & {"files", "weights", "csv", "large"}:
        render_table(lines, "Wall time (perf_counter around subprocess.run) and store sizes:",
                     ROWS, tools, res, labels, ratio_cols)
        render_table(lines, "CPU time (user+sys of the commands and their children; less "
                     "load-sensitive):", CPU_ROWS, tools, res, labels, ratio_cols)
    if "files" in bench.floor:
        lines += floor_lines("Machine floor, files scenario (median of the rounds)",
                             bench.floor["files"], gm, "add_s", "clone_pull_s")
    if "million" in args.scenarios:
        mtools = [t for t in tools if t in args.million_tools]
        md = bench.million
        render_table(lines, f"Million files: {md.n_files} files of 1-8 KiB in {md.n_dirs} "
                     f"directories, {md.total_bytes / MIB:.1f} MiB (wall time of the command, "
                     "peak RSS of its process tree):", MILLION_ROWS, mtools, res, labels,
                     [t for t in ratio_cols if t in mtools])
        if "million" in bench.floor:
            lines += floor_lines("Machine floor, million scenario", bench.floor["million"], gm,
                                 "million_add_s", "million_clone_pull_s")
    lines += bigfile_lines(bench)
    lines.append("")
    lines += notes_lines(bench, tools)
    lines.append("")
    targets = check_targets(bench)
    lines.append("Targets (git-ml):")
    for tg in targets:
        lines.append(f"  [{tg['result']:4s}] {tg['target']}: {tg['detail']}")
    return "\n".join(lines), targets


class Targets:
    """Collects target results: PASS, FAIL (with the figures) or SKIP (with why)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.res = bench.results
        self.gm = self.res.get("git-ml", {})
        self.out: list[dict[str, Any]] = []

    def add(self, target: str, result: str, detail: str) -> None:
        self.out.append({"target": target, "result": result, "detail": detail})

    def installed(self, t: str) -> bool:
        return bool(self.res.get(t, {}).get("installed"))

    def no_figure(self, target: str, key: str, who: list[str]) -> None:
        scen = scenario_of(key)
        if scen not in self.bench.args.scenarios:
            return self.add(target, "SKIP", f"scenario '{scen}' not run")
        # the error of this step, else the one that stopped its scenario, else any
        step = key.removesuffix("_s").removesuffix("_bytes")
        errs: list[tuple[int, str]] = []
        for t in who:
            for k, e in self.res.get(t, {}).get("errors", {}).items():
                rank = 0 if k == step else 1 if scenario_of(k) == scen else 2
                errs.append((rank, f"{t}: {e}"))
        msg = min(errs)[1].replace("\n", " | ")[:300] if errs else "see errors"
        self.add(target, "FAIL", "no figure; " + msg)

    def figure(self, target: str, key: str) -> Any:
        """git-ml's figure for key, or None after adding a SKIP/FAIL for the target."""
        if not self.installed("git-ml"):
            self.add(target, "SKIP", "git-ml not installed")
            return None
        if self.gm.get(key) is None:
            self.no_figure(target, key, ["git-ml"])
            return None
        return self.gm[key]

    def ratio(self, target: str, key: str, other: str, limit: float,
              extra_fail: str | None = None, other_key: str | None = None) -> None:
        if not self.installed("git-ml"):
            return self.add(target, "SKIP", "git-ml not installed")
        if other not in self.res:
            return self.add(target, "SKIP", f"{other} not benchmarked")
        if not self.installed(other):
            return self.add(target, "SKIP", f"{other} not installed")
        okey = other_key or key
        a, b = self.gm.get(key), self.res[other].get(okey)
        if a is None or not b:
            return self.no_figure(target, key if a is None else okey, ["git-ml", other])
        unit = "s" if key.endswith("_s") else "b"
        ok = a <= limit * b and extra_fail is None
        detail = f"git-ml {fmt(a, unit)} vs {other} {fmt(b, unit)} = {a / b:.2f}x (limit {limit}x)"
        if extra_fail:
            detail += f"; {extra_fail}"
        self.add(target, "PASS" if ok else "FAIL", detail)

    def limit(self, target: str, key: str, limit: float, unit: str, detail: str = "",
              extra_fail: str | None = None) -> None:
        """git-ml's figure for key below limit (unit "s" seconds, "b" bytes as MB)."""
        v = self.figure(target, key)
        if v is None:
            return
        ok = v < limit and extra_fail is None
        shown = f"{v:.3f} s" if unit == "s" else f"{v / 1e6:.0f} MB"
        cap = f"{limit:g} s" if unit == "s" else f"{limit / 1e6:.0f} MB"
        self.add(target, "PASS" if ok else "FAIL",
                 f"{shown} (limit {cap}){detail}" + (f"; {extra_fail}" if extra_fail else ""))


def check_targets(bench: Bench) -> list[dict[str, Any]]:
    tg = Targets(bench)
    files_targets(tg)
    million_targets(tg)
    bigfile_targets(tg)
    return tg.out


def _verify_fail(v: dict[str, int] | None, what: str) -> str | None:
    if v and (v["missing"] or v["wrong"]):
        return f"{what} content wrong: {v['missing']} missing, {v['wrong']} wrong"
    return None


def files_targets(tg: Targets) -> None:
    gm = tg.gm
    bench = tg.bench
    tg.ratio(f"add <= {ADD_DVC_LIMIT}x dvc add", "add_s", "dvc", ADD_DVC_LIMIT)
    t = f"add <= {ADD_FLOOR_LIMIT}x the machine's floor (read + xxh3 + zstd-1, same run)"
    floor = bench.floor.get("files", {}).get("add_s")
    a = tg.figure(t, "add_s")
    if a is not None:
        if floor:
            tg.add(t, "PASS" if a <= ADD_FLOOR_LIMIT * floor else "FAIL",
                   f"git-ml {a:.3f} s vs floor {floor:.3f} s = {a / floor:.2f}x "
                   f"(limit {ADD_FLOOR_LIMIT}x)")
        else:
            tg.add(t, "SKIP", "floor not measured: " + str(
                bench.floor.get("skipped") or bench.floor.get("errors") or "see errors"))
    unclean = None
    if gm.get("status_unchanged_clean") is False:
        unclean = "it reports the unchanged dataset as changed"
    tg.ratio(f"re-add unchanged <= {UNCHANGED_LFS_LIMIT}x git-lfs's `git add` unchanged",
             "readd_unchanged_s", "git-lfs", UNCHANGED_LFS_LIMIT)
    tg.ratio(f"status unchanged <= {UNCHANGED_LFS_LIMIT}x git-lfs's `git add` unchanged",
             "status_unchanged_s", "git-lfs", UNCHANGED_LFS_LIMIT, unclean,
             other_key="readd_unchanged_s")
    tg.ratio(f"re-add after 1% change <= {READD_LFS_LIMIT}x git-lfs's", "readd_changed_s",
             "git-lfs", READD_LFS_LIMIT)
    for other in ("dvc", "git-lfs"):
        tg.ratio(f"5 weights versions store <= 0.3x {other}", "weights_store_bytes", other, 0.3)
    t = "CSV half smaller in store than on disk"
    a = tg.figure(t, "csv_store_bytes")
    if a is not None:
        b = gm["csv_disk_bytes"]
        tg.add(t, "PASS" if a < b else "FAIL",
               f"{fmt(a, 'b')} in store vs {fmt(b, 'b')} on disk = {a / b:.2f}x")
    tg.ratio(f"checkout <= {CHECKOUT_DVC_LIMIT}x dvc checkout", "checkout_s", "dvc",
             CHECKOUT_DVC_LIMIT, _verify_fail(gm.get("checkout_verify"), "checkout"))
    # remotes
    tg.ratio(f"push <= {PUSH_LFS_LIMIT}x git-lfs push", "push_initial_s", "git-lfs",
             PUSH_LFS_LIMIT)
    tg.ratio(f"push <= {PUSH_DVC_LIMIT}x dvc push (git push + dvc push)", "push_initial_s",
             "dvc", PUSH_DVC_LIMIT)
    bad = _verify_fail(gm.get("clone_verify"), "cloned")
    tg.ratio(f"clone + pull <= {CLONE_LFS_LIMIT}x git-lfs clone + pull", "clone_pull_s",
             "git-lfs", CLONE_LFS_LIMIT, bad)
    tg.ratio(f"clone + pull <= {CLONE_DVC_LIMIT}x dvc clone + pull", "clone_pull_s", "dvc",
             CLONE_DVC_LIMIT, bad)
    t = "push after 1% change sends <= 2% of the dataset's bytes"
    a = tg.figure(t, "push_changed_bytes")
    if a is not None:
        b = gm["push_changed_dataset_bytes"]
        rep_ = gm.get("push_plain_changed_report")
        extra = (f"; `git ml push` to a second remote reported \"{rep_['line']}\"" if rep_
                 else "")
        tg.add(t, "PASS" if a <= PUSH_DELTA_LIMIT * b else "FAIL",
               f"{a / MIB:.2f} MiB new in the remote's packs vs {b / MIB:.1f} MiB dataset = "
               f"{100 * a / b:.2f}% (limit {100 * PUSH_DELTA_LIMIT:.0f}%){extra}")
    rep_ = gm.get("push_empty_ml_report")
    tg.limit(f"git ml push with nothing to send < {EMPTY_PUSH_LIMIT_S} s", "push_empty_ml_s",
             EMPTY_PUSH_LIMIT_S, "s", " (median)",
             f"it sent data: {rep_['line']}" if rep_ and rep_["objects"] else None)
    tg.limit(f"git push origin main with nothing to send < {EMPTY_PUSH_LIMIT_S} s",
             "push_empty_s", EMPTY_PUSH_LIMIT_S, "s", " (median)",
             f"{gm['push_empty_bytes']} bytes were added to the remote"
             if gm.get("push_empty_bytes") else None)
    tg.limit(f"add of a {bench.args.large_mib} MiB file (large): peak RSS < 300 MB",
             "large_rss_bytes", RSS_LIMIT_BYTES, "b",
             f" ({gm.get('rss_method')}), add took {gm.get('large_add_s', 0):.2f} s")


def million_targets(tg: Targets) -> None:
    gm = tg.gm
    n = tg.bench.args.million_files
    full = "" if n >= 1_000_000 else f"; the target is for 1,000,000 files (this run: {n})"
    tg.limit(f"million: add completes with peak RSS < {MILLION_RSS_LIMIT / 1e9:.0f} GB",
             "million_add_rss_bytes", MILLION_RSS_LIMIT, "b",
             f", add took {gm.get('million_add_s', 0):.1f} s{full}")
    tg.limit(f"million: status unchanged < {MILLION_STATUS_LIMIT_S:g} s",
             "million_status_unchanged_s", MILLION_STATUS_LIMIT_S, "s", f" (median){full}",
             "it reports the unchanged dataset as changed"
             if gm.get("million_status_unchanged_clean") is False else None)
    tg.limit(f"million: status after changing one file < {MILLION_STATUS_ONE_LIMIT_S:g} s",
             "million_status_changed_s", MILLION_STATUS_ONE_LIMIT_S, "s", full,
             "it does not report the change"
             if gm.get("million_status_changed_detects") is False else None)
    t = "million: push to a local-path remote completes"
    if tg.figure(t, "million_push_s") is not None:
        tg.add(t, "PASS", f"{gm['million_push_s']:.1f} s, peak RSS "
               f"{gm['million_push_rss_bytes'] / 1e6:.0f} MB")
    t = "million: clone + pull completes with every file right"
    if tg.figure(t, "million_clone_pull_s") is not None:
        v = gm.get("million_clone_verify") or {}
        ok = bool(v) and not v.get("dirs_bad")
        tg.add(t, "PASS" if ok else "FAIL",
               f"{gm['million_clone_pull_s']:.1f} s, peak RSS "
               f"{gm['million_clone_pull_rss_bytes'] / 1e6:.0f} MB; verify {v or 'not done'}")
    objects = gm.get("million_objects")
    for key, where in (("million_store_files", "store"), ("million_remote_files",
                                                         "remote's store")):
        t = (f"million: files in the {where} <= {STORE_FILES_BASE} + 1 per "
             f"{STORE_OBJECTS_PER_FILE} objects")
        files = tg.figure(t, key)
        if files is None:
            continue
        if not objects:
            tg.add(t, "SKIP", f"{files} files; object count unknown (fsck failed)")
            continue
        cap = STORE_FILES_BASE + objects // STORE_OBJECTS_PER_FILE
        tg.add(t, "PASS" if files <= cap else "FAIL",
               f"{files} files for {objects} objects (limit {cap})")
    t = "million: git ml fsck passes"
    if tg.figure(t, "million_fsck_s") is not None:
        ok = gm.get("million_fsck_ok") is True
        rss = gm["million_fsck_rss_bytes"] / 1e6
        tg.add(t, "PASS" if ok else "FAIL", f"ok={gm.get('million_fsck_ok')}, "
               f"{gm['million_fsck_s']:.1f} s, peak RSS {rss:.0f} MB")
    t = f"million: object lookup costs < {LOOKUP_LIMIT_B} B of RSS per object in the store"
    per = tg.figure(t, "million_lookup_bytes_per_object")
    if per is not None:
        detail = (f"{per:.1f} B/object: peak RSS of adding one new file "
                  f"{gm['million_lookup_rss_bytes'] / MIB:.1f} MiB vs "
                  f"{gm['million_lookup_empty_rss_bytes'] / MIB:.1f} MiB in an empty store, "
                  f"{objects} objects")
        if not objects or objects < LOOKUP_MIN_OBJECTS:
            tg.add(t, "SKIP", f"{detail}; fewer than {LOOKUP_MIN_OBJECTS} objects, too few "
                   "to tell the index from RSS noise")
        else:
            tg.add(t, "PASS" if per < LOOKUP_LIMIT_B else "FAIL", detail)


def bigfile_targets(tg: Targets) -> None:
    gm = tg.gm
    mib = tg.bench.args.bigfile_mib
    full = "" if mib >= 16 * 1024 else "; the target is for 16 GiB (--bigfile-mib 16384)"
    t = f"bigfile: add and re-add of a {mib} MiB file: peak RSS < 300 MB"
    a = tg.figure(t, "bigfile_add_rss_bytes")
    if a is not None:
        b = gm.get("bigfile_readd_rss_bytes")
        worst = max(a, b or 0)
        shown = f"{b / 1e6:.0f} MB" if b is not None else "not measured"
        tg.add(t, "PASS" if worst < RSS_LIMIT_BYTES and b is not None else "FAIL",
               f"add {a / 1e6:.0f} MB, re-add {shown}{full}")
    t = f"bigfile: re-add after 1 MiB changed reads the file once (<= {BIGFILE_READ_LIMIT}x)"
    rchar = tg.figure(t, "bigfile_readd_rchar")
    if rchar is not None:
        size = gm["bigfile_bytes"]
        disk = gm.get("bigfile_readd_read_bytes", 0)
        worst = max(rchar, disk)
        tg.add(t, "PASS" if worst <= BIGFILE_READ_LIMIT * size else "FAIL",
               f"read() returned {rchar / size:.2f}x the file's size, storage reads "
               f"{disk / size:.2f}x (after dropping the file from the page cache), "
               f"re-add took {gm['bigfile_readd_s']:.2f} s")
    t = "bigfile: push after the change sends about one chunk"
    sent = tg.figure(t, "bigfile_push_changed_bytes")
    if sent is not None:
        cmax = gm.get("bigfile_chunk_max", 256 * KIB)
        cap = gm.get("bigfile_changed_bytes", BIGFILE_CHANGE) + 2 * cmax + BIGFILE_META_SLACK
        rep = gm.get("bigfile_push_changed_report")
        tg.add(t, "PASS" if sent <= cap else "FAIL",
               f"{sent / MIB:.2f} MiB added to the remote's packs (limit {cap / MIB:.2f} MiB: "
               f"the changed 1 MiB + 2 chunks of at most {cmax // KIB} KiB + 1 MiB for trees "
               f"and index)" + (f"; git-ml: \"{rep['line']}\"" if rep else ""))


def gitml_code_state() -> str:
    """HEAD and uncommitted changes of the git-ml checkout the editable install runs."""
    root = HERE.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %cd",
                               "--date=format:%H:%M:%S"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "mlgit"], capture_output=True, text=True,
                               timeout=30).stdout.split("\n")
        dirty = [ln for ln in dirty if ln.strip()]
        newest = max((f.stat().st_mtime for f in (root / "mlgit").rglob("*.py")), default=0)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (f"HEAD {head}, {len(dirty)} uncommitted change(s) under mlgit/, newest mlgit/*.py "
            f"modified {time.strftime('%H:%M:%S', time.gmtime(newest))} UTC")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help="comma-separated subset of " + ",".join(ALL_TOOLS))
    ap.add_argument("--files", type=int, default=10_000, help="number of 64 KiB files")
    ap.add_argument("--weights-mib", type=int, default=256, help="weights file size (MiB)")
    ap.add_argument("--large-mib", type=int, default=1024,
                    help="single large file for the peak-RSS add of every tool (MiB); the "
                         "16 GiB target of git-ml is the bigfile scenario's")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where repos and generated data go (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, default=None, help="write all figures as JSON here")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the idempotent steps (re-add/status unchanged); median kept")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of the files scenario, interleaved across tools; the median "
                         "of each timing is reported (the other scenarios run once)")
    ap.add_argument("--remote-rounds", type=int, default=None,
                    help="run the remote steps in only the first N rounds of the files "
                         "scenario (default: every round)")
    ap.add_argument("--timeout", type=float, default=3600, help="per-command timeout (s)")
    ap.add_argument("--scenarios", default="files,remote,weights,csv,large",
                    help="comma-separated subset of " + ",".join(ALL_SCENARIOS) + " (remote "
                         "runs inside the files scenario, so it implies files; million and "
                         "bigfile are not in the default set)")
    ap.add_argument("--million-files", type=int, default=1_000_000,
                    help="files of the million scenario (1-8 KiB each, in 1,000 directories)")
    ap.add_argument("--million-tools", default="git-ml",
                    help="tools that run the million scenario (the others take hours)")
    ap.add_argument("--bigfile-mib", type=int, default=1024,
                    help="size of the bigfile scenario's file (MiB); the target is 16384")
    ap.add_argument("--floor-threads", type=int, default=2,
                    help="threads of the machine-floor passes")
    ap.add_argument("--no-floor", action="store_true", help="do not measure the floor")
    ap.add_argument("--keep", action="store_true", help="keep the repos in the workdir")
    args = ap.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in args.tools:
        if t not in ADAPTERS:
            ap.error(f"unknown tool {t!r}; choose from {', '.join(ALL_TOOLS)}")
    args.scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = args.scenarios - set(ALL_SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    args.million_tools = [t.strip() for t in args.million_tools.split(",") if t.strip()]
    for t in args.million_tools:
        if t not in ADAPTERS:
            ap.error(f"unknown tool {t!r} in --million-tools")
    if args.million_files < 2 or args.bigfile_mib < 2:
        ap.error("--million-files and --bigfile-mib must be at least 2")
    if "remote" in args.scenarios:
        args.scenarios.add("files")
    if args.remote_rounds is None:
        args.remote_rounds = max(1, args.rounds)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    own_tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mlgit-bench-")) if own_tmp else args.workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(workdir)], capture_output=True,
                        text=True).stdout.strip()
    t_start = time.perf_counter()
    bench = Bench(args, workdir)
    print(f"git-ml storage benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"host: {platform.node()} {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} cpu, python {platform.python_version()}, workdir {workdir} ({fs})")
    print(f"files: {args.files} x 64 KiB (half CSV, half random) in {SUBDIRS} dirs; "
          f"1% change = {len(bench.dataset.changed_idx)} files rewritten")
    print(f"weights: {WEIGHT_VERSIONS} versions x {bench.weights.size // MIB} MiB float32, "
          f"{bench.weights.n_tensors} tensors of 4 MiB, {bench.weights.n_change} change/version; "
          f"large file: {args.large_mib} MiB; repeat={args.repeat}; rounds={args.rounds}"
          + (f" (remote steps in the first {min(args.remote_rounds, args.rounds)})"
             if "remote" in args.scenarios else ""))
    if "million" in args.scenarios:
        print(f"million: {args.million_files} files of 1-8 KiB in "
              f"{bench.million.n_dirs} directories (tools: {', '.join(args.million_tools)})")
    if "bigfile" in args.scenarios:
        print(f"bigfile: {args.bigfile_mib} MiB, 1 MiB changed in the middle (git-ml only)")
    if not args.no_floor:
        print(f"floor: bench_floor.py on {args.floor_threads} threads with git-ml's interpreter")
    code_start = gitml_code_state()
    print(f"git-ml code at start: {code_start}")
    sys.stdout.flush()
    try:
        if args.scenarios & {"files", "csv"}:
            bench.dataset.ensure()
        if "million" in args.scenarios:
            bench.million.ensure()
        bench.run_all()
        report, targets = build_report(bench)
        if args.scenarios & {"files", "csv"}:
            print(f"data: {bench.dataset.total_bytes / MIB:.1f} MiB in {args.files} files, "
                  f"CSV half {bench.dataset.csv_bytes_on_disk / MIB:.1f} MiB")
        print(report)
        code_end = gitml_code_state()
        print(f"\ngit-ml code at end:   {code_end}")
        if code_end != code_start:
            print("WARNING: the git-ml code changed during the run (editable install), so "
                  "different rounds/scenarios may have measured different code")
        print(f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s")
        if args.json:
            args.json.write_text(json.dumps({
                "args": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path)
                             else v) for k, v in vars(args).items()},
                "filesystem": fs, "results": bench.results, "targets": targets,
                "floor": bench.floor,
                "million": {"files": bench.million.n_files, "dirs": bench.million.n_dirs,
                            "bytes": bench.million.total_bytes}
                if "million" in args.scenarios else None,
            }, indent=2))
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
