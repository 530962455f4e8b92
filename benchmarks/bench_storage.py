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
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
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
FAST_LIMIT_S = 0.25
EMPTY_PUSH_LIMIT_S = 0.3
PUSH_DELTA_LIMIT = 0.02  # a push after the 1% change sends at most 2% of the dataset's bytes
DATA_GENERATOR_VERSION = 1  # bump when the generated content changes (invalidates caches)

ALL_TOOLS = ("git-ml", "dvc", "git-lfs", "git-annex")


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


# --------------------------------------------------------------------------
# Tool adapters: every method returns the commands to run (the harness times
# them), except store_bytes which measures the tool's object store.
# --------------------------------------------------------------------------

GIT_INIT = ["git", "init", "-q", "-b", "main"]


class Tool:
    name = "?"
    store_dir = ""
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


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, str | None] = {}
        self.dataset = Dataset(workdir / f"source-n{args.files}-s{args.seed}", args.files,
                               args.seed)
        self.weights = Weights(args.weights_mib, args.seed)
        self.round = 0

    # helpers --------------------------------------------------------------
    def _commit(self, runner: Runner, repo: Path, msg: str) -> None:
        runner.run(["git", "commit", "-q", "--no-verify", "-m", msg], repo)

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
        active: list[tuple[Tool, Runner, Path, dict[str, Any]]] = []
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

        def guarded(scenario: Callable[[Tool, Runner, Path, dict[str, Any]], None],
                    tool: Tool, runner: Runner, base: Path, res: dict[str, Any]) -> None:
            res["loadavg"].append(round(os.getloadavg()[0], 2))
            try:
                scenario(tool, runner, base, res)
            except CmdError as e:
                res.setdefault("errors", {})[scenario.__name__] = e.describe()
                log(f"  !! {scenario.__name__}: {e.describe()}")

        if "files" in self.args.scenarios:
            rounds = max(1, self.args.rounds)
            per_round: dict[str, list[dict[str, Any]]] = {t.name: [] for t, *_ in active}
            for r in range(rounds):
                for tool, runner, base, res in active:
                    if rounds > 1:
                        log(f"[{tool.name}] round {r + 1}/{rounds}")
                    one: dict[str, Any] = {"loadavg": res["loadavg"]}
                    self.round = r
                    guarded(self.scenario_files, tool, runner, base, one)
                    per_round[tool.name].append(one)
            for tool, _runner, _base, res in active:
                merge_rounds(res, per_round[tool.name])
        for tool, runner, base, res in active:
            for scenario in (self.scenario_weights, self.scenario_csv, self.scenario_large):
                if scenario.__name__.split("_", 1)[1] in self.args.scenarios:
                    guarded(scenario, tool, runner, base, res)
            if not self.args.keep:
                shutil.rmtree(base, ignore_errors=True)

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


def scenario_of(key: str) -> str:
    """The scenario a result or error key belongs to."""
    key = key.removeprefix("scenario_")
    for prefix in ("weights", "csv", "large"):
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
    return f"{v / MIB:.1f} MiB"


def build_report(bench: Bench) -> tuple[str, list[dict[str, Any]]]:  # noqa: C901 - the report, section by section
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

    def table(title: str, rows: list[tuple[str, str, str]]) -> None:
        w_label = 34
        col = 14
        lines.append("")
        lines.append(title)
        header = f"{'step':{w_label}s}" + "".join(f"{t:>{col}s}" for t in tools)
        header += "".join(f"{'git-ml/' + t:>{col + 4}s}" for t in ratio_cols)
        lines.append(header)
        lines.append("-" * len(header))
        for key, label, unit in rows:
            label = label.format(n=args.files, large=args.large_mib)
            row = f"{label:{w_label}s}"
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

    table("Wall time (perf_counter around subprocess.run) and store sizes:", ROWS)
    table("CPU time (user+sys of the commands and their children; less load-sensitive):",
          CPU_ROWS)
    lines.append("")
    # correctness / notes
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
        if "readd_unchanged_all_s" in r:
            notes.append("re-add unchanged runs: "
                         + ", ".join(f"{x:.3f}" for x in r["readd_unchanged_all_s"]) + " s")
        if "status_unchanged_all_s" in r:
            notes.append("status unchanged runs: "
                         + ", ".join(f"{x:.3f}" for x in r["status_unchanged_all_s"]) + " s")
        for k, e in r.get("errors", {}).items():
            notes.append(f"ERROR in {k}: {e}")
        if notes:
            lines.append(f"{t}:")
            lines.extend(f"  - {n}" for n in notes)
    lines.append("")

    targets = check_targets(bench)
    lines.append("Targets (git-ml):")
    for tg in targets:
        lines.append(f"  [{tg['result']:4s}] {tg['target']}: {tg['detail']}")
    return "\n".join(lines), targets


def check_targets(bench: Bench) -> list[dict[str, Any]]:  # noqa: C901 - one check per target
    res = bench.results
    gm = res.get("git-ml", {})
    out: list[dict[str, Any]] = []

    def add(target: str, result: str, detail: str) -> None:
        out.append({"target": target, "result": result, "detail": detail})

    def installed(t: str) -> bool:
        return bool(res.get(t, {}).get("installed"))

    def no_figure(target: str, key: str, who: list[str]) -> None:
        scen = scenario_of(key)
        if scen not in bench.args.scenarios:
            return add(target, "SKIP", f"scenario '{scen}' not run")
        # the error of this step, else the one that stopped its scenario, else any
        step = key.removesuffix("_s").removesuffix("_bytes")
        errs: list[tuple[int, str]] = []
        for t in who:
            for k, e in res.get(t, {}).get("errors", {}).items():
                rank = 0 if k == step else 1 if scenario_of(k) == scen else 2
                errs.append((rank, f"{t}: {e}"))
        msg = min(errs)[1].replace("\n", " | ")[:300] if errs else "see errors"
        add(target, "FAIL", "no figure; " + msg)

    def ratio_target(target: str, key: str, other: str, limit: float,
                     extra_fail: str | None = None) -> None:
        if not installed("git-ml"):
            return add(target, "SKIP", "git-ml not installed")
        if other not in res:
            return add(target, "SKIP", f"{other} not benchmarked")
        if not installed(other):
            return add(target, "SKIP", f"{other} not installed")
        a, b = gm.get(key), res[other].get(key)
        if a is None or not b:
            return no_figure(target, key, ["git-ml", other])
        unit = "s" if key.endswith("_s") else "b"
        ok = a <= limit * b and extra_fail is None
        detail = f"git-ml {fmt(a, unit)} vs {other} {fmt(b, unit)} = {a / b:.2f}x (limit {limit}x)"
        if extra_fail:
            detail += f"; {extra_fail}"
        add(target, "PASS" if ok else "FAIL", detail)

    ratio_target("add <= 0.5x dvc add", "add_s", "dvc", 0.5)
    for key, label in (("readd_unchanged_s", "re-add unchanged < 0.25 s"),
                       ("status_unchanged_s", "status on unchanged < 0.25 s")):
        if not installed("git-ml"):
            add(label, "SKIP", "git-ml not installed")
        elif gm.get(key) is None:
            no_figure(label, key, ["git-ml"])
        else:
            extra = ""
            ok = gm[key] < FAST_LIMIT_S
            if key == "status_unchanged_s" and gm.get("status_unchanged_clean") is False:
                ok = False
                extra = " but it reports the unchanged dataset as changed"
            add(label, "PASS" if ok else "FAIL", f"{gm[key]:.3f} s (median){extra}")
    for other in ("dvc", "git-lfs"):
        ratio_target(f"5 weights versions store <= 0.3x {other}", "weights_store_bytes",
                     other, 0.3)
    t = "CSV half smaller in store than on disk"
    if not installed("git-ml"):
        add(t, "SKIP", "git-ml not installed")
    elif gm.get("csv_store_bytes") is None:
        no_figure(t, "csv_store_bytes", ["git-ml"])
    else:
        a, b = gm["csv_store_bytes"], gm["csv_disk_bytes"]
        add(t, "PASS" if a < b else "FAIL",
            f"{fmt(a, 'b')} in store vs {fmt(b, 'b')} on disk = {a / b:.2f}x")
    v = gm.get("checkout_verify")
    bad = None
    if v and (v["missing"] or v["wrong"]):
        bad = f"checkout content wrong: {v['missing']} missing, {v['wrong']} wrong"
    ratio_target("checkout <= 0.5x dvc checkout", "checkout_s", "dvc", 0.5, bad)
    # remotes
    ratio_target("push <= 0.5x dvc push (git push + dvc push)", "push_initial_s", "dvc", 0.5)
    v = gm.get("clone_verify")
    bad = None
    if v and (v["missing"] or v["wrong"]):
        bad = f"cloned content wrong: {v['missing']} missing, {v['wrong']} wrong"
    ratio_target("clone + pull <= 0.5x dvc clone + pull", "clone_pull_s", "dvc", 0.5, bad)
    t = "push after 1% change sends <= 2% of the dataset's bytes"
    if not installed("git-ml"):
        add(t, "SKIP", "git-ml not installed")
    elif gm.get("push_changed_bytes") is None:
        no_figure(t, "push_changed_bytes", ["git-ml"])
    else:
        a, b = gm["push_changed_bytes"], gm["push_changed_dataset_bytes"]
        rep_ = gm.get("push_plain_changed_report")
        extra = (f"; `git ml push` to a second remote reported \"{rep_['line']}\"" if rep_
                 else "")
        add(t, "PASS" if a <= PUSH_DELTA_LIMIT * b else "FAIL",
            f"{a / MIB:.2f} MiB new in the remote's packs vs {b / MIB:.1f} MiB dataset = "
            f"{100 * a / b:.2f}% (limit {100 * PUSH_DELTA_LIMIT:.0f}%){extra}")
    for key, label in (("push_empty_ml_s", "git ml push with nothing to send < 0.3 s"),
                       ("push_empty_s", "git push origin main with nothing to send < 0.3 s")):
        if not installed("git-ml"):
            add(label, "SKIP", "git-ml not installed")
        elif gm.get(key) is None:
            no_figure(label, key, ["git-ml"])
        else:
            extra = ""
            ok = gm[key] < EMPTY_PUSH_LIMIT_S
            rep_ = gm.get("push_empty_ml_report") if key == "push_empty_ml_s" else None
            if rep_ and rep_["objects"]:
                ok = False
                extra = f" but it sent data: {rep_['line']}"
            if key == "push_empty_s" and gm.get("push_empty_bytes"):
                ok = False
                extra = f" but {gm['push_empty_bytes']} bytes were added to the remote"
            add(label, "PASS" if ok else "FAIL", f"{gm[key]:.3f} s (median){extra}")
    t = f"add of a {bench.args.large_mib} MiB file: peak RSS < 300 MB"
    if not installed("git-ml"):
        add(t, "SKIP", "git-ml not installed")
    elif gm.get("large_rss_bytes") is None:
        no_figure(t, "large_rss_bytes", ["git-ml"])
    else:
        rss = gm["large_rss_bytes"]
        add(t, "PASS" if rss < RSS_LIMIT_BYTES else "FAIL",
            f"{rss / 1e6:.0f} MB ({gm.get('rss_method')}), add took {gm['large_add_s']:.2f} s"
            + ("" if bench.args.large_mib >= 4096 else "; the 4 GiB target needs --large-mib 4096"))
    return out


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help="comma-separated subset of " + ",".join(ALL_TOOLS))
    ap.add_argument("--files", type=int, default=10_000, help="number of 64 KiB files")
    ap.add_argument("--weights-mib", type=int, default=256, help="weights file size (MiB)")
    ap.add_argument("--large-mib", type=int, default=1024,
                    help="single large file for the peak-RSS add (MiB); target is 4096")
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
                    help="comma-separated subset of files,remote,weights,csv,large (remote "
                         "runs inside the files scenario, so it implies files)")
    ap.add_argument("--keep", action="store_true", help="keep the repos in the workdir")
    args = ap.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in args.tools:
        if t not in ADAPTERS:
            ap.error(f"unknown tool {t!r}; choose from {', '.join(ALL_TOOLS)}")
    args.scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = args.scenarios - {"files", "remote", "weights", "csv", "large"}
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    if "remote" in args.scenarios:
        args.scenarios.add("files")
    if args.remote_rounds is None:
        args.remote_rounds = max(1, args.rounds)

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
    code_start = gitml_code_state()
    print(f"git-ml code at start: {code_start}")
    sys.stdout.flush()
    try:
        if args.scenarios & {"files", "csv"}:
            bench.dataset.ensure()
        bench.run_all()
        report, targets = build_report(bench)
        print(f"data: {bench.dataset.total_bytes / MIB:.1f} MiB in {args.files} files, CSV half "
              f"{bench.dataset.csv_bytes_on_disk / MIB:.1f} MiB")
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
            }, indent=2))
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
