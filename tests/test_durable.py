"""One durable write (``mlgit.store.fsutil``) and one pack writer (``mlgit.store.packs``).

What every durable write promises (fsutil's docstring): a reader, an exception or
a kill at any moment sees the old file or the whole new one, never a mix; a write
that fails or is interrupted by an exception leaves no temporary file; the file is
fsynced before the rename and its directory after. The order of the syscalls is
checked by recording ``os.fsync`` and ``os.replace`` calls, as a unit test of the
helpers only; the kill tests run a real writer in a subprocess and SIGKILL it.
Packs are built by one class for a store and for a push alike, with no fsync per
object. And no module but fsutil renames files into place by hand.
"""

from __future__ import annotations

import ast
import contextlib
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import mlgit
from mlgit.format.compression import CODEC_RAW
from mlgit.format.ids import raw_object_id
from mlgit.format.pack import OBJ_CHUNK, encode_index
from mlgit.store import fsutil
from mlgit.store.packs import BuiltPack, PackWriter, commit_into, read_index_file
from mlgit.sync.backend import LocalBackend

SEED = 20261202
KILL_TRIALS = 12

# -- recording the syscalls (unit tests of the helpers only) -------------------------


Event = tuple[str, str]  # ("fsync-file" | "fsync-dir", path) or ("replace", dest)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    log: list[Event] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file"
        log.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        log.append(("replace", os.fspath(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def _durable_sequence(log: list[Event], dest: Path) -> None:
    """``log`` is: fsync of a file, its rename to ``dest``, fsync of ``dest``'s directory."""
    assert [k for k, _ in log] == ["fsync-file", "replace", "fsync-dir"], log
    assert log[1][1] == str(dest)
    assert log[2][1] == str(dest.parent)


def test_atomic_write_fsyncs_the_file_renames_then_fsyncs_the_directory(
        tmp_path: Path, events: list[Event]) -> None:
    dest = tmp_path / "f"
    fsutil.atomic_write(dest, b"new")
    _durable_sequence(events, dest)
    assert dest.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f"]


def test_each_durable_helper_keeps_the_order(tmp_path: Path, events: list[Event]) -> None:
    (tmp_path / "tmp").mkdir()
    src = tmp_path / "src"
    src.write_bytes(b"copied")
    writes: list[Callable[[Path], object]] = [
        lambda d: fsutil.atomic_write(d, b"x", tmp_dir=tmp_path / "tmp"),
        lambda d: fsutil.copy_into_place(src, d, tmp_dir=tmp_path / "tmp"),
        lambda d: _durable_file(tmp_path / "tmp", d),
    ]
    for n, write in enumerate(writes):
        events.clear()
        dest = tmp_path / f"dest{n}"
        write(dest)
        _durable_sequence(events, dest)
    assert os.listdir(tmp_path / "tmp") == []
    assert (tmp_path / "dest1").read_bytes() == b"copied"
    assert (tmp_path / "dest2").read_bytes() == b"piece 0piece 1piece 2"


def _durable_file(tmp_dir: Path, dest: Path) -> None:
    with fsutil.DurableFile(tmp_dir, dest.name) as f:
        for i in range(3):
            f.write(b"piece %d" % i)
        assert f.commit(dest)


def test_a_pack_costs_two_file_fsyncs_and_two_directory_fsyncs_whatever_it_holds(
        tmp_path: Path, events: list[Event]) -> None:
    tmp, packs = tmp_path / "tmp", tmp_path / "packs"
    tmp.mkdir()
    packs.mkdir()
    committed: list[Path] = []
    w = PackWriter(tmp, 1 << 30, commit_into(packs, lambda _p, idx: committed.append(idx)))
    for i in range(500):
        data = b"object %d" % i
        w.add(raw_object_id(data), OBJ_CHUNK, CODEC_RAW, len(data), data)
    assert events == [], "no fsync before the pack is committed"
    w.commit()
    (idx,) = committed
    pack = idx.with_suffix(".pack")
    # The pack, durable and in place, before its index: readers see it only then.
    assert events == [("fsync-file", events[0][1]), ("replace", str(pack)),
                      ("fsync-dir", str(packs)), ("fsync-file", events[3][1]),
                      ("replace", str(idx)), ("fsync-dir", str(packs))]
    assert len(read_index_file(idx)) == 500
    assert os.listdir(tmp) == []


def test_the_local_backend_puts_the_pack_then_the_index_each_durably(
        tmp_path: Path, events: list[Event]) -> None:
    root = tmp_path / "remote"
    (root / "packs").mkdir(parents=True)
    data = b"one object"
    built: list[tuple[str, bytes, bytes]] = []

    def keep(b: BuiltPack) -> None:
        built.append((b.stem, b.index, b.file.close().read_bytes()))

    w = PackWriter(tmp_path, 1 << 30, keep, dedup=False)
    w.add(raw_object_id(data), OBJ_CHUNK, CODEC_RAW, len(data), data)
    w.commit()
    ((stem, index, pack_bytes),) = built
    src = tmp_path / "upload.pack"
    src.write_bytes(pack_bytes)
    events.clear()
    LocalBackend(root, str(root)).put_pack(stem, src, index)
    assert [k for k, _ in events] == ["fsync-file", "replace", "fsync-dir"] * 2
    assert [p for k, p in events if k == "replace"] == [
        str(root / "packs" / f"{stem}.pack"), str(root / "packs" / f"{stem}.idx")]
    assert sorted(os.listdir(root / "packs")) == [f"{stem}.idx", f"{stem}.pack"]
    assert os.listdir(root / "tmp") == []


# -- failures leave the old file and no temporary file --------------------------------


def test_a_failed_rename_leaves_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    # A non-empty directory where the file should go: the rename fails for real.
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep").write_bytes(b"old")
    with pytest.raises(OSError):  # noqa: PT011 - the real failure differs by platform
        fsutil.atomic_write(tmp_path / "dest", b"new")
    with pytest.raises(OSError):  # noqa: PT011
        fsutil.copy_into_place(tmp_path / "dest" / "keep", tmp_path / "dest")
    # The failure must pass through DurableFile's exit, as in real use.
    with pytest.raises(OSError), fsutil.DurableFile(tmp_path, "dest") as f:  # noqa: PT011, PT012
        f.write(b"new")
        f.commit(tmp_path / "dest")
    assert os.listdir(tmp_path) == ["dest"]
    assert (tmp_path / "dest" / "keep").read_bytes() == b"old"


def test_an_exception_while_writing_leaves_the_old_file_and_no_temporary_file(
        tmp_path: Path) -> None:
    dest = tmp_path / "f"
    fsutil.atomic_write(dest, b"old")
    with pytest.raises(KeyboardInterrupt), fsutil.DurableFile(tmp_path, ".f") as f:  # noqa: PT012
        f.write(b"half of the new")
        raise KeyboardInterrupt
    with fsutil.DurableFile(tmp_path, ".f") as f:
        f.write(b"never committed")
    assert os.listdir(tmp_path) == ["f"]
    assert dest.read_bytes() == b"old"


def test_an_existing_content_addressed_file_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "pack-x.pack"
    dest.write_bytes(b"first")
    with fsutil.DurableFile(tmp_path, "pack") as f:
        f.write(b"second")
        assert not f.commit(dest, overwrite=False)
    src = tmp_path / "src"
    src.write_bytes(b"third")
    assert not fsutil.copy_into_place(src, dest, overwrite=False)
    assert sorted(os.listdir(tmp_path)) == ["pack-x.pack", "src"]
    assert dest.read_bytes() == b"first"


def test_a_pack_whose_commit_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Fails on main: the temp pack (or the temp index) stayed in tmp/ after a failed rename."""
    tmp, packs = tmp_path / "tmp", tmp_path / "packs"
    tmp.mkdir()
    data = b"an object"
    oid = raw_object_id(data)

    def writer() -> PackWriter:
        w = PackWriter(tmp, 1 << 30, commit_into(packs, lambda _p, _i: None))
        w.add(oid, OBJ_CHUNK, CODEC_RAW, len(data), data)
        return w

    # 1. packs/ is not a directory: the pack's rename fails.
    packs.write_bytes(b"")
    w = writer()
    with pytest.raises(OSError):  # noqa: PT011 - the real failure differs by platform
        w.commit()
    assert os.listdir(tmp) == []
    assert oid not in w.pending  # forgotten: a retry writes it again
    # 2. the index's name is taken by a directory: the pack is in, its index fails.
    packs.unlink()
    packs.mkdir()
    from mlgit.format.pack import IndexEntry, pack_stem
    stem = pack_stem(encode_index([IndexEntry(oid, 8, len(data), len(data), OBJ_CHUNK,
                                              CODEC_RAW)]))
    (packs / f"{stem}.idx").mkdir()
    (packs / f"{stem}.idx" / "x").write_bytes(b"")
    with pytest.raises(OSError):  # noqa: PT011
        writer().commit()
    assert os.listdir(tmp) == []
    # What is left is an unindexed pack, which no reader sees (gc removes it).
    assert sorted(os.listdir(packs)) == [f"{stem}.idx", f"{stem}.pack"]


def test_a_publisher_that_raises_leaves_no_temporary_file(tmp_path: Path) -> None:
    def upload(_b: BuiltPack) -> None:
        raise ConnectionError("the remote went away")

    w = PackWriter(tmp_path, 1 << 30, upload, dedup=False)
    w.add(raw_object_id(b"x"), OBJ_CHUNK, CODEC_RAW, 1, b"x")
    with pytest.raises(ConnectionError):
        w.commit()
    assert os.listdir(tmp_path) == []
    w.add(raw_object_id(b"y"), OBJ_CHUNK, CODEC_RAW, 1, b"y")
    w.abort()
    assert os.listdir(tmp_path) == []


def _fill(w: PackWriter, tag: bytes, n: int) -> None:
    for i in range(n):
        data = tag + b" %d " % i + b"." * 200
        w.add(raw_object_id(data), OBJ_CHUNK, CODEC_RAW, len(data), data)


def test_a_full_pack_is_published_outside_the_lock_and_commit_waits_for_it(
        tmp_path: Path) -> None:
    """While the thread that filled a pack publishes it (fsyncs, renames), other threads
    go on adding to the next pack, and ``commit`` returns only once both are published."""
    tmp, packs = tmp_path / "tmp", tmp_path / "packs"
    tmp.mkdir()
    packs.mkdir()
    release, publishing, second = threading.Event(), threading.Event(), threading.Event()
    published: list[str] = []
    into = commit_into(packs, lambda _p, idx: published.append(idx.name))

    def publish(b: BuiltPack) -> None:
        if not publishing.is_set():
            publishing.set()
            assert release.wait(60), "never released"
        else:
            second.set()
        into(b)

    w = PackWriter(tmp, 4096, publish)
    big = b"x" * 5000  # one object fills a pack of 4096 bytes
    filler = threading.Thread(target=w.add, args=(raw_object_id(big), OBJ_CHUNK, CODEC_RAW,
                                                  len(big), big))
    filler.start()
    try:
        assert publishing.wait(60)
        adder = threading.Thread(target=_fill, args=(w, b"second", 5))
        adder.start()
        adder.join(60)
        assert not adder.is_alive(), "the writer's lock is held while a full pack is published"
        seen: list[int] = []

        def commit() -> None:
            w.commit()
            seen.append(len(published))

        committer = threading.Thread(target=commit)
        committer.start()
        assert second.wait(60)  # commit published the second pack and now waits for the first
    finally:
        release.set()
    committer.join(60)
    filler.join(60)
    assert seen == [2]
    assert len(os.listdir(packs)) == 4
    assert not w.pending


def test_a_pack_that_failed_to_publish_in_another_thread_fails_the_next_commit(
        tmp_path: Path) -> None:
    """Objects of a pack whose publishing failed are not in the store: a later commit
    (on another thread) says so instead of returning as if everything were durable;
    an abort (the caller gives the write up) forgets it."""
    calls: list[int] = []

    def publish(_b: BuiltPack) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("the disk went away")

    w = PackWriter(tmp_path, 4096, publish, dedup=False)

    def fill_failing() -> None:
        errors: list[BaseException] = []

        def fill() -> None:
            try:
                _fill(w, b"full", 40)
            except ConnectionError as e:
                errors.append(e)

        t = threading.Thread(target=fill)
        t.start()
        t.join(60)
        assert len(errors) == 1

    fill_failing()
    assert not w.pending  # what failed is not claimed as written
    with pytest.raises(ConnectionError):
        w.commit()
    w.commit()  # reported once
    fill_failing()
    w.abort()
    w.commit()
    _fill(w, b"then", 3)
    w.commit()
    assert len(calls) == 3
    assert os.listdir(tmp_path) == []


def test_a_background_writer_publishes_full_packs_on_other_threads(tmp_path: Path) -> None:
    """With ``background`` no adding thread publishes a full pack (nor waits for its
    fsyncs); commit publishes the last one itself and returns when all are in place,
    and a failure is raised by commit (and by the adds after it)."""
    tmp, packs = tmp_path / "tmp", tmp_path / "packs"
    tmp.mkdir()
    packs.mkdir()
    by: list[str] = []
    into = commit_into(packs, lambda _p, _i: None)

    def publish(b: BuiltPack) -> None:
        by.append(threading.current_thread().name)
        into(b)

    w = PackWriter(tmp, 4096, publish, background=True)
    _fill(w, b"many", 200)
    w.commit()
    assert len(by) > 5
    assert by[:-1] == ["mlgit-publish"] * (len(by) - 1)
    assert by[-1] == threading.current_thread().name
    assert len(os.listdir(packs)) == 2 * len(by)
    assert os.listdir(tmp) == []

    def fail(_b: BuiltPack) -> None:
        raise ConnectionError("the disk went away")

    w = PackWriter(tmp, 4096, fail, background=True)
    with contextlib.suppress(ConnectionError):  # raised by an add if the publish failed by then
        _fill(w, b"full", 40)
    with pytest.raises(ConnectionError):
        w.commit()
    assert not w.pending
    w.commit()  # reported once
    assert os.listdir(tmp) == []


def test_threads_filling_a_background_writer_with_slow_publishing_lose_nothing(
        tmp_path: Path) -> None:
    """More threads fill packs than may be published at once: each waits for a slot,
    none waits forever, and every object is in exactly one published pack."""
    tmp, packs = tmp_path / "tmp", tmp_path / "packs"
    tmp.mkdir()
    packs.mkdir()
    into = commit_into(packs, lambda _p, _i: None)

    def publish(b: BuiltPack) -> None:
        time.sleep(0.02)  # a slow disk: packs fill faster than they are published
        into(b)

    w = PackWriter(tmp, 4096, publish, background=True)
    threads = [threading.Thread(target=_fill, args=(w, b"t%d" % t, 150)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread waits forever for a slot"
    w.commit()
    ids = [e.oid for idx in packs.glob("*.idx") for e in read_index_file(idx)]
    assert len(ids) == len(set(ids)) == 4 * 150
    assert os.listdir(tmp) == []


# -- kills ------------------------------------------------------------------------------

_WRITER = """
import signal, sys, time
from pathlib import Path
from mlgit.store.fsutil import DurableFile
# SIGINT raises KeyboardInterrupt even when this process started with SIGINT ignored
# (as a background job of a non-interactive shell is, e.g. a CI runner's).
signal.signal(signal.SIGINT, signal.default_int_handler)
dest, size = Path(sys.argv[1]), int(sys.argv[2])
n = 0
print("ready", flush=True)
while True:
    n += 1
    fill = b"AB"[n % 2:n % 2 + 1]
    with DurableFile(dest.parent, "." + dest.name) as f:
        for _ in range(size // 65536):
            f.write(fill * 65536)
        f.commit(dest)
"""


def _start_writer(dest: Path, size: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(mlgit.__file__).parent.parent)}
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(dest), str(size)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n", p.stderr.read() if p.stderr else b""
    return p


def _whole(dest: Path, size: int) -> None:
    data = dest.read_bytes()
    mix = f"{dest.name} is a mix: {len(data)} bytes, {data[:1]!r}...{data[-1:]!r}"
    assert len(data) == size, mix
    assert data in (b"A" * size, b"B" * size), mix


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_writer_killed_at_any_moment_leaves_the_old_file_or_the_new_one(
        tmp_path: Path, sig: signal.Signals) -> None:
    """SIGKILL may leave a hidden temporary file (nothing reads it; gc sweeps it);
    SIGINT, an exception in the writer, leaves none."""
    rng = random.Random(SEED + sig)
    size = 4 << 20
    dest = tmp_path / "f"
    fsutil.atomic_write(dest, b"A" * size)
    tmp_name = re.compile(r"\.f\.\d+\.[0-9a-f]{12}\.tmp")
    for _ in range(KILL_TRIALS):
        p = _start_writer(dest, size)
        time.sleep(rng.uniform(0.0, 0.15))
        p.send_signal(sig)
        try:
            p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"the writer did not end on {sig.name}")
        _whole(dest, size)
        left = [n for n in os.listdir(tmp_path) if n != "f"]
        if sig == signal.SIGINT:
            assert left == [], left
        assert all(tmp_name.fullmatch(n) for n in left), left
        for n in left:
            os.unlink(tmp_path / n)


# -- no module but fsutil renames files into place --------------------------------------

# Renames allowed outside fsutil, each on files that are not the store's: a file or
# directory in the user's work tree (git does not fsync those either), or a
# user's own git hook moved aside.
_ALLOWED: dict[str, int] = {
    "snapshot/materialize.py": 2,  # a worktree file over its old version; a staged tree
    "hooks/install.py": 1,  # the user's hook renamed to <hook>.chained
}


def _renames(tree: ast.AST) -> list[int]:
    """Lines calling os.replace/rename/renames, os.fsync/fdatasync, shutil.move or
    Path.rename/replace (a ``.replace`` with one positional argument and no keyword,
    unlike ``str.replace`` and ``dataclasses.replace``)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        f = node.func
        base = f.value.id if isinstance(f.value, ast.Name) else None
        if ((base == "os" and f.attr in ("replace", "rename", "renames", "fsync", "fdatasync"))
                or (base == "shutil" and f.attr == "move")
                or f.attr == "rename"
                or (f.attr == "replace" and len(node.args) == 1 and not node.keywords)):
            found.append(node.lineno)
    return found


def test_no_module_but_fsutil_renames_or_fsyncs_by_hand() -> None:
    """Fails on main: packs.py, sync/backend.py and sync/serve.py wrote their own."""
    root = Path(mlgit.__file__).parent
    seen: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "store/fsutil.py":
            continue
        lines = _renames(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            seen[rel] = lines
    extra = {rel: lines for rel, lines in seen.items()
             if len(lines) > _ALLOWED.get(rel, 0)}
    assert not extra, (f"hand-written rename/fsync (use mlgit.store.fsutil's durable writes): "
                       f"{extra}")
    assert {rel: len(lines) for rel, lines in seen.items()} == _ALLOWED, (
        "an allowed rename is gone: update _ALLOWED")
