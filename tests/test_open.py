"""``mlgit.open`` in long loops: constant file descriptors, small packs consolidated.

A data loader opens thousands of files, each through its own ``mlgit.open`` (which
opens a ``Repo``) or through one long-lived ``Repo``; on a clone every open of a
file not yet here is a lazy fetch, which writes a pack. The file object owns what
it opened, and small packs are merged as ``git gc --auto`` merges them
(``ml.autoPackLimit``).
"""

from __future__ import annotations

import gc
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SMALL_CONFIG, git, make_tree, run_gitml

import mlgit
from mlgit.format.config import StoreConfig
from mlgit.format.pack import OBJ_CHUNK
from mlgit.store import gc as gc_mod
from mlgit.store.store import Store

N_FILES = 60


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _packs(root: Path) -> list[Path]:
    return sorted((root / ".git/ml/packs").glob("*.idx"))


def _gc_figures(out: str) -> tuple[int, int, int]:
    """(live objects, packs before, packs after) from ``git ml gc``'s line."""
    m = re.search(r"(\d+) live objects; packs (\d+) -> (\d+)", out)
    assert m, out
    return int(m[1]), int(m[2]), int(m[3])


def _content(i: int) -> bytes:
    """1000 bytes (below the smallest chunk: one chunk per file), every file different."""
    return b"%06d" % i + random.Random(i).randbytes(994)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(r))
    return r


@pytest.fixture
def alice(tmp_path: Path, origin: Path) -> Path:
    """A repository whose dataset ``data`` (N_FILES files) is pushed to ``origin``."""
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(a, {f"data/f{i}.bin": _content(i) for i in range(N_FILES)})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "data")
    git(a, "remote", "add", "origin", str(origin))
    git(a, "push", "-q", "-u", "origin", "main")  # the pre-push hook sends the data
    return a


@pytest.fixture
def bob(tmp_path: Path, alice: Path, origin: Path) -> Path:  # noqa: ARG001 - alice pushed
    """A clone of ``origin`` with an empty store: every file is fetched lazily."""
    b = tmp_path / "bob"
    git(tmp_path, "clone", "-q", "--no-checkout", str(origin), str(b))
    run_gitml(b, "init")
    return b


def test_a_program_opening_10000_files_holds_constant_descriptors(repo_dir: Path) -> None:
    make_tree(repo_dir, {f"data/f{i}.bin": _content(i) for i in range(150)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    assert len(_packs(repo_dir)) > 1  # every open reads through several packs
    with mlgit.open("data", "f0.bin", repo=repo_dir) as f:
        f.read()
    before = _fds()
    for i in range(10_000):
        with mlgit.open("data", f"f{i % 150}.bin", repo=repo_dir) as f:
            assert f.read(6) == b"%06d" % (i % 150)
    assert _fds() == before


def test_the_file_releases_its_descriptors_on_close_with_and_gc(repo_dir: Path) -> None:
    make_tree(repo_dir, {f"data/f{i}.bin": _content(i) for i in range(10)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    before = _fds()

    with mlgit.open("data", "f1.bin", repo=repo_dir) as f:
        assert _fds() > before
        assert f.read() == _content(1)
    assert _fds() == before

    f = mlgit.open("data", "f2.bin", repo=repo_dir)
    f.seek(3)
    assert f.read(3) == b"002"
    f.close()
    assert _fds() == before
    with pytest.raises(ValueError, match="closed file"):
        f.read()

    for _ in range(3):
        f = mlgit.open("data", "f3.bin", repo=repo_dir)
        assert f.readline().startswith(b"000003")
        del f  # never closed: its collection releases it
    gc.collect()
    assert _fds() == before

    with pytest.raises(mlgit.errors.BadPathError):
        mlgit.open("data", "nope.bin", repo=repo_dir)
    assert _fds() == before  # a failed open leaks nothing either


def test_every_api_function_releases_what_it_opens(repo_dir: Path, tmp_path: Path) -> None:
    make_tree(repo_dir, {"data/a.bin": _content(1), "data/b.bin": _content(2)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    ck = tmp_path / "ck"
    make_tree(ck, {"w.bin": _content(3)})
    mlgit.commit_ckpt(ck, run="r1", repo=repo_dir)
    calls: list[Callable[[], object]] = [
             lambda: mlgit.show("data", repo=repo_dir), lambda: mlgit.ls(repo=repo_dir),
             lambda: mlgit.checkout("data", repo=repo_dir),
             lambda: mlgit.latest_checkpoint("r1", repo=repo_dir),
             lambda: mlgit.prefetch("data", repo=repo_dir),
             lambda: mlgit.add(repo_dir / "data", repo=repo_dir)]
    for call in calls:
        call()
    before = _fds()
    for _ in range(20):
        for call in calls:
            call()
    assert _fds() == before


def test_a_long_lived_repo_shares_its_store(repo_dir: Path) -> None:
    make_tree(repo_dir, {f"data/f{i}.bin": _content(i) for i in range(20)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    with mlgit.Repo(repo_dir) as r:
        with r.open("data", "f0.bin") as f:
            f.read()
        during = _fds()
        files = [r.open("data", f"f{i}.bin") for i in range(20)]
        assert _fds() == during  # twenty open files, no descriptor more
        assert [f.read() for f in files] == [_content(i) for i in range(20)]
        for f in files:
            f.close()
        with r.open("data", "f5.bin") as f:  # closing a file leaves the Repo open
            assert f.read() == _content(5)


def test_lazy_opens_hold_constant_descriptors_and_bounded_packs(alice: Path,
                                                               bob: Path) -> None:
    data_id = mlgit.show("data", repo=alice, files=False).id
    git(bob, "config", "ml.autoPackLimit", "8")
    with mlgit.open(data_id, "f0.bin", repo=bob) as f:
        assert f.read() == _content(0)
    before = _fds()
    most = 0
    for i in range(1, N_FILES):
        with mlgit.open(data_id, f"f{i}.bin", repo=bob) as f:
            assert f.read() == _content(i)
        assert _fds() == before
        most = max(most, len(_packs(bob)))
    assert most <= 8 + 1  # the limit, and the pack that just exceeded it
    assert len(_packs(bob)) <= 8
    run_gitml(bob, "fsck")  # nothing lost: every chunk fetched is still there
    dry = _gc_figures(run_gitml(bob, "gc", "-n", "--prune", "now").stdout)
    real = _gc_figures(run_gitml(bob, "gc", "--prune", "now").stdout)
    assert dry == real == (N_FILES + 2, real[1], len(_packs(bob)))  # chunks, tree, snapshot
    run_gitml(bob, "fsck")
    for i in range(N_FILES):  # still readable, now from the consolidated packs
        with mlgit.open(data_id, f"f{i}.bin", repo=bob) as f:
            assert f.read() == _content(i)


def test_a_long_lived_repo_consolidates_as_it_fetches(alice: Path, bob: Path) -> None:
    data_id = mlgit.show("data", repo=alice, files=False).id
    with mlgit.Repo(bob) as r:
        with r.open(data_id, "f0.bin") as f:
            f.read()
        before = _fds()
        files = []
        for i in range(1, N_FILES):
            f = r.open(data_id, f"f{i}.bin")
            files.append(f)
            assert len(_packs(bob)) <= gc_mod.AUTO_PACK_LIMIT
        # the Repo holds one descriptor per pack it serves, not one per pack ever written
        assert _fds() <= before + gc_mod.AUTO_PACK_LIMIT
        assert [f.read() for f in files] == [_content(i) for i in range(1, N_FILES)]
        for f in files:
            f.close()
    run_gitml(bob, "fsck")


def test_auto_pack_limit_zero_turns_consolidation_off(alice: Path, bob: Path) -> None:
    data_id = mlgit.show("data", repo=alice, files=False).id
    git(bob, "config", "ml.autoPackLimit", "0")
    for i in range(12):
        with mlgit.open(data_id, f"f{i}.bin", repo=bob) as f:
            f.read()
    assert len(_packs(bob)) == 13  # one per lazy fetch, as before (and the trees')
    git(bob, "config", "ml.autoPackLimit", "4")
    with mlgit.open(data_id, "f12.bin", repo=bob) as f:
        f.read()
    assert len(_packs(bob)) <= 4
    run_gitml(bob, "fsck")


def test_a_bad_limit_is_a_warning_never_a_failure(alice: Path, bob: Path) -> None:
    data_id = mlgit.show("data", repo=alice, files=False).id
    git(bob, "config", "ml.autoPackLimit", "lots")
    for i in range(3):
        with mlgit.open(data_id, f"f{i}.bin", repo=bob) as f:  # Python: silent
            assert f.read() == _content(i)
    p = run_gitml(bob, "fetch")  # writes one more pack, then checks the limit
    assert "ml.autoPackLimit" in p.stderr
    assert "50" in p.stderr
    assert len(_packs(bob)) >= 4  # the default (50) is not exceeded: nothing merged
    run_gitml(bob, "fsck")


def test_prefetch_fetches_many_files_in_one_pack(alice: Path, bob: Path) -> None:
    data_id = mlgit.show("data", repo=alice, files=False).id
    n = mlgit.prefetch(data_id, [f"f{i}.bin" for i in range(30)], repo=bob)
    assert n == 30
    packs = len(_packs(bob))
    assert packs <= 2  # the trees, then every chunk in one go
    git(bob, "config", "ml.lazyFetch", "false")  # from here on the store alone answers
    for i in range(30):
        with mlgit.open(data_id, f"f{i}.bin", repo=bob) as f:
            assert f.read() == _content(i)
    assert mlgit.prefetch(data_id, [f"f{i}.bin" for i in range(30)], repo=bob) == 0
    git(bob, "config", "ml.lazyFetch", "true")
    assert mlgit.prefetch(data_id, repo=bob) == N_FILES - 30  # the rest: the whole snapshot
    assert len(_packs(bob)) == packs + 1
    with pytest.raises(mlgit.errors.BadPathError):
        mlgit.prefetch(data_id, ["nope.bin"], repo=bob)
    run_gitml(bob, "fsck")


def test_commands_that_write_packs_consolidate(repo_dir: Path, tmp_path: Path) -> None:
    git(repo_dir, "config", "ml.autoPackLimit", "3")
    git(repo_dir, "commit", "-q", "--allow-empty", "-m", "c")
    log = tmp_path / "log.csv"
    for i in range(6):
        make_tree(repo_dir, {f"data/f{i}.bin": _content(i)})
        run_gitml(repo_dir, "add", "data")
        log.write_text(f"epoch,loss\n{i},0.{i}\n")
        run_gitml(repo_dir, "note", "add", "--log", str(log))
        ck = tmp_path / f"ck{i}"
        make_tree(ck, {"w.bin": _content(100 + i)})
        run_gitml(repo_dir, "commit-ckpt", str(ck), "--run", "r")
        assert len(_packs(repo_dir)) <= 3
    run_gitml(repo_dir, "fsck")
    assert [e.name for e in mlgit.ls(repo=repo_dir)] == ["data", "r"]


def test_consolidation_copies_everything_and_keeps_the_newest_mtime(tmp_path: Path) -> None:
    store, _ = Store.init(tmp_path / "ml", SMALL_CONFIG)
    ids = []
    for i in range(6):
        ids.append(store.objects.put(OBJ_CHUNK, _content(i)))
        store.objects.flush()
    olds = [p.with_suffix(".pack") for p in sorted((tmp_path / "ml/packs").glob("*.idx"))]
    for k, p in enumerate(olds):
        os.utime(p, (1_000_000 + k, 1_000_000 + k))
    newest = 1_000_000 + len(olds) - 1
    report = gc_mod.consolidate(store, 3)
    assert (report.merged_packs, report.packs_written, report.objects) == (6, 1, 6)
    packs = list((tmp_path / "ml/packs").glob("*.pack"))
    assert len(packs) == 1
    assert os.stat(packs[0]).st_mtime == newest
    assert [store.objects.get(o) for o in ids] == [_content(i) for i in range(6)]
    assert gc_mod.consolidate(store, 3).merged_packs == 0  # nothing more to do
    store.close()


def test_consolidation_rewrites_each_byte_a_logarithmic_number_of_times(tmp_path: Path
                                                                        ) -> None:
    store, _ = Store.init(tmp_path / "ml", StoreConfig(pack_size=1 << 30))
    rewritten = 0
    n = 400
    for i in range(n):
        store.objects.put(OBJ_CHUNK, _content(i))
        store.objects.flush()
        rewritten += gc_mod.consolidate(store, 10).bytes
        assert len(gc_mod.small_packs(store)) <= 10
    stored = sum(p.stat().st_size for p in (tmp_path / "ml/packs").glob("*.pack"))
    # merging every small pack each time would rewrite ~n/20 times the data
    assert rewritten < 10 * stored
    store.close()


def test_a_damaged_small_pack_is_left_for_fsck(repo_dir: Path) -> None:
    store = Store.open(repo_dir / ".git/ml")
    ids = []
    for i in range(5):
        ids.append(store.objects.put(OBJ_CHUNK, _content(i)))
        store.objects.flush()
    store.close()
    victim = sorted((repo_dir / ".git/ml/packs").glob("*.pack"))[2]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    store = Store.open(repo_dir / ".git/ml")
    report = gc_mod.consolidate(store, 2)
    assert report.merged_packs == 4
    assert victim.exists()  # never deleted, never copied forward
    store.close()


_WRITER = """
import sys, time
import mlgit
from pathlib import Path
root = Path(sys.argv[1])
for i in range(int(sys.argv[2])):
    (root / "more").mkdir(exist_ok=True)
    (root / "more" / f"m{i}.bin").write_bytes(b"%08d" % i * 100)
    mlgit.add(root / "more", repo=root)
"""

_READER = """
import sys, time
import mlgit
from pathlib import Path
root, n, stop = Path(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
rounds = 0
while time.time() < stop:
    for i in range(n):
        with mlgit.open("data", f"f{i}.bin", repo=root) as f:
            assert f.read(6) == b"%06d" % i, i
    rounds += 1
print(rounds)
"""


def test_concurrent_writers_readers_and_gc_are_safe(repo_dir: Path) -> None:
    make_tree(repo_dir, {f"data/f{i}.bin": _content(i) for i in range(20)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-qm", "data")
    git(repo_dir, "config", "ml.autoPackLimit", "2")  # every add consolidates
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(repo_dir), "20", "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(repo_dir), "25"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        t = time.monotonic()
        while writer.poll() is None and time.monotonic() - t < 120:
            run_gitml(repo_dir, "gc", "--prune", "now")
        assert writer.wait(120) == 0, writer.stderr.read() if writer.stderr else ""
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        assert int(out) >= 1
    finally:
        for p in (reader, writer):
            if p.poll() is None:
                p.kill()
                p.wait()
    run_gitml(repo_dir, "fsck")
    assert len(mlgit.show("more", repo=repo_dir).files or []) == 25
