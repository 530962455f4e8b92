"""``mlgit://`` with no clone: reading a remote store (a path, S3 on moto's server, SSH).

A worker that has no git repository reads a pinned version by id (and by name, from
the remote's refs) with ranged reads of the remote's packs, cached under a cache
directory. Counted: a 64 KiB range costs one or two ranged reads (a LocalBackend
that counts its calls, the backend the filesystem really uses, only observed).
Hostile remotes: a damaged object is refused and never cached. Failures leave
nothing behind (no cache directory at all).
"""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import git, make_tree, run_gitml

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")

import mlgit.fs.source  # noqa: E402
from mlgit.format.ids import ObjectID, hex_to_raw, raw_to_hex  # noqa: E402
from mlgit.format.snapshot import Snapshot  # noqa: E402
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry  # noqa: E402
from mlgit.snapshot.treewalk import lookup  # noqa: E402
from mlgit.store.store import Store  # noqa: E402
from mlgit.sync.backend import LocalBackend  # noqa: E402
from mlgit.sync.remote import RemoteSpec, local_store  # noqa: E402


def _csv(seed: int, rows: int = 2000) -> bytes:
    import random
    r = random.Random(seed)
    return ("id,x\n" + "".join(f"{i},{r.random():.6f}\n" for i in range(rows))).encode()


FILES = {f"part-000{i}.csv": _csv(i) for i in range(1, 4)}


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, str]:
    """A repository holding dataset ``data`` (3 CSVs and an 8 MiB random file): (root, id)."""
    root = tmp_path / "origin"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(root / "data", {**FILES, "big/blob.bin": os.urandom(8 << 20)})
    run_gitml(root, "add", "data")
    oid = run_gitml(root, "show", "data", "--json").stdout.split('"id": "')[1][:32]
    return root, oid


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory in no git repository (a worker's)."""
    d = tmp_path / "worker"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def _fs(**options: Any) -> Any:
    return fsspec.filesystem("mlgit", skip_instance_cache=True, **options)


class CountingBackend(LocalBackend):
    """A LocalBackend that records its reads (every call still does the real read)."""

    made: ClassVar[list[CountingBackend]] = []

    def __init__(self, spec: RemoteSpec) -> None:
        super().__init__(local_store(spec), spec.url)
        self.pack_reads: list[tuple[str, int, int]] = []
        self.index_reads: list[str] = []
        CountingBackend.made.append(self)

    def read_pack(self, stem: str, offset: int, length: int) -> bytes:
        self.pack_reads.append((stem, offset, length))
        return super().read_pack(stem, offset, length)

    def read_index(self, stem: str) -> bytes:
        self.index_reads.append(stem)
        return super().read_index(stem)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[CountingBackend]:
    """Every backend the filesystem opens is a CountingBackend."""
    CountingBackend.made = []
    monkeypatch.setattr(mlgit.fs.source, "open_backend", CountingBackend)
    return CountingBackend


# -- a local path ------------------------------------------------------------------------------
def test_a_worker_with_no_repository_reads_a_version_by_id_and_by_name(
        origin: tuple[Path, str], elsewhere: Path, tmp_path: Path) -> None:
    root, oid = origin
    opts = {"remote": str(root), "cache_dir": str(tmp_path / "cache")}
    for rev in (oid, oid[:7], "data", f"data@{oid[:4]}"):
        df = pd.read_csv(f"mlgit://{rev}/part-0002.csv", storage_options=opts)
        pd.testing.assert_frame_equal(df, pd.read_csv(root / "data" / "part-0002.csv"))
    fs = _fs(**opts)
    assert fs.ls("", detail=False) == ["data"]
    assert fs.glob(f"{oid}/*.csv") == [f"{oid}/part-000{i}.csv" for i in (1, 2, 3)]
    assert fs.info(oid)["snapshot"] == oid
    assert fs.cat_file(f"{oid}/big/blob.bin") == (root / "data/big/blob.bin").read_bytes()
    assert not (elsewhere / ".git").exists()
    cache = tmp_path / "cache"
    assert any((cache / "remotes").rglob("*.idx"))
    assert any((cache / "remotes").rglob("*.pack"))  # the ranges read, cached
    assert any((cache / "remotes").rglob("*.ranges"))


@pytest.mark.usefixtures("elsewhere")
def test_a_64k_range_costs_one_or_two_ranged_reads(origin: tuple[Path, str],
                                                  tmp_path: Path,
                                                  counting: type[CountingBackend]) -> None:
    root, oid = origin
    fs = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"))
    path = f"{oid}/big/blob.bin"
    assert fs.info(path)["size"] == 8 << 20  # the snapshot and its trees: read, cached
    (backend,) = counting.made
    backend.pack_reads.clear()
    blob = (root / "data/big/blob.bin").read_bytes()
    start = 5_000_000
    assert fs.cat_file(path, start, start + 65536) == blob[start:start + 65536]
    assert 1 <= len(backend.pack_reads) <= 2, backend.pack_reads
    read = sum(n for _, _, n in backend.pack_reads)
    pack_bytes = sum(p.stat().st_size for p in (root / ".git/ml/packs").glob("*.pack"))
    assert read < 1 << 20 < pack_bytes  # a few chunks, not a pack download
    # Read again: the cache answers; a new filesystem (another process) too.
    backend.pack_reads.clear()
    assert fs.cat_file(path, start, start + 65536) == blob[start:start + 65536]
    assert backend.pack_reads == []
    fs2 = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"))
    assert fs2.cat_file(path, start + 100, start + 200) == blob[start + 100:start + 200]
    assert counting.made[-1].pack_reads == []
    assert counting.made[-1].index_reads == []


@pytest.mark.usefixtures("elsewhere")
def test_a_sequential_read_reads_the_file_once(origin: tuple[Path, str],
                                               tmp_path: Path,
                                               counting: type[CountingBackend]) -> None:
    root, oid = origin
    fs = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"), cache_data=False)
    blob = (root / "data/big/blob.bin").read_bytes()
    got = bytearray()
    with fs.open(f"{oid}/big/blob.bin", block_size=2 << 20) as f:
        while piece := f.read(100_000):
            got += piece
    assert bytes(got) == blob
    fs.close()
    (backend,) = counting.made
    read = sum(n for _, _, n in backend.pack_reads)
    # Each byte about once: a pack holds a file's chunks nearly in order (chunks are
    # compressed on a pool), and a read takes the bytes between a batch's chunks
    # when they lie within 1 MiB of each other rather than make another request.
    assert read < len(blob) * 1.25
    # cache_data=False: the chunks were not kept, the snapshot and trees were.
    kept = sum(p.stat().st_blocks * 512 for p in (tmp_path / "cache").rglob("*.pack"))
    assert 0 < kept < 64 << 10


@pytest.mark.usefixtures("elsewhere")
def test_failures_leave_nothing_behind(origin: tuple[Path, str],
                                       tmp_path: Path) -> None:
    root, oid = origin
    cache = tmp_path / "cache"
    fs = _fs(remote=str(root), cache_dir=str(cache))
    with pytest.raises(FileNotFoundError, match="unknown revision 'nope'"):
        fs.open("nope/part-0001.csv")
    with pytest.raises(FileNotFoundError, match="unknown revision 'ffffffff'"):
        fs.info("ffffffff")
    with pytest.raises(FileNotFoundError, match=r"'nope\.csv' is not in snapshot"):
        fs.cat_file(f"{oid}/nope.csv")
    with pytest.raises(PermissionError, match="read-only"):
        fs.pipe_file(f"{oid}/new.csv", b"x")
    assert not cache.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(FileNotFoundError, match="holds no git-ml store"):
        _fs(remote=str(empty), cache_dir=str(cache)).ls(oid)
    with pytest.raises(FileNotFoundError, match="not a git repository"):
        _fs(remote=str(tmp_path / "nothing"), cache_dir=str(cache)).ls(oid)
    assert not cache.exists()
    assert fs.cat_file(f"{oid}/part-0001.csv") == FILES["part-0001.csv"]
    assert cache.exists()  # a success is cached


def _damage(root: Path, oid: str, path: str) -> None:
    """Flip a byte inside the first chunk of ``path``'s file in ``root``'s packs."""
    store = Store.open(root / ".git" / "ml")
    try:
        snap = store.objects.get_snapshot(ObjectID(oid))
        e = lookup(store.objects.get_tree, hex_to_raw(snap.tree), path)
        assert e.type == TYPE_FILE
        cid = e.chunks[0][0]
        for reader in store.objects.readers():
            ent = reader.find(cid)
            if ent is not None:
                pack = reader.path
                at = ent.offset + 26 + ent.stored_len // 2
                break
        else:
            raise AssertionError("chunk not found")
    finally:
        store.close()
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.usefixtures("elsewhere")
def test_a_damaged_remote_object_is_refused_and_never_cached(origin: tuple[Path, str],
                                                            tmp_path: Path) -> None:
    root, oid = origin
    _damage(root, oid, "big/blob.bin")
    cache = tmp_path / "cache"
    fs = _fs(remote=str(root), cache_dir=str(cache))
    with pytest.raises(OSError, match=r"do not match its id|corrupt") as err:
        fs.cat_file(f"{oid}/big/blob.bin", 0, 100)
    assert err.value.errno == errno.EIO
    assert not isinstance(err.value, FileNotFoundError)
    # The next reader (same cache) gets the same refusal: nothing bad was kept.
    with pytest.raises(OSError, match=r"do not match its id|corrupt"):
        _fs(remote=str(root), cache_dir=str(cache)).cat_file(f"{oid}/big/blob.bin", 0, 100)
    assert fs.cat_file(f"{oid}/part-0003.csv") == FILES["part-0003.csv"]  # the rest reads


# -- S3 (moto's server) -----------------------------------------------------------------------
def _push_to_s3(root: Path, s3: Any) -> str:
    url = f"s3://{s3.bucket}/data-{uuid.uuid4().hex[:8]}"
    git(root, "config", "ml.origin.url", url)
    git(root, "config", "ml.origin.endpoint", s3.endpoint)
    run_gitml(root, "push", "origin")
    return url


@pytest.mark.usefixtures("elsewhere")
def test_s3_remote_read_by_id_with_pandas(origin: tuple[Path, str],
                                          tmp_path: Path, s3_env: Any) -> None:
    root, oid = origin
    url = _push_to_s3(root, s3_env)
    opts = {"remote": url, "endpoint": s3_env.endpoint, "cache_dir": str(tmp_path / "cache")}
    df = pd.read_csv(f"mlgit://{oid}/part-0001.csv", storage_options=opts)
    pd.testing.assert_frame_equal(df, pd.read_csv(root / "data/part-0001.csv"))
    fs = _fs(**opts)
    assert fs.find(oid, detail=False) == sorted(
        [f"{oid}/{n}" for n in FILES] + [f"{oid}/big/blob.bin"])
    assert fs.cat_file("data/part-0003.csv", -20) == FILES["part-0003.csv"][-20:]


@pytest.mark.usefixtures("elsewhere")
def test_s3_failures_are_os_errors_and_write_nothing(origin: tuple[Path, str],
                                                     tmp_path: Path, s3_env: Any) -> None:
    from fixtures_s3 import _free_port  # type: ignore[attr-defined,unused-ignore]

    root, oid = origin
    url = _push_to_s3(root, s3_env)
    cache = tmp_path / "cache"
    dead = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ConnectionError, match="cannot reach the S3 endpoint"):
        _fs(remote=url, endpoint=dead, cache_dir=str(cache), timeout=5).ls(oid)
    with pytest.raises(FileNotFoundError, match="holds no git-ml store"):
        _fs(remote=f"s3://{s3_env.bucket}/nothing-here", endpoint=s3_env.endpoint,
            cache_dir=str(cache)).ls(oid)
    with pytest.raises(FileNotFoundError, match="unknown revision"):
        _fs(remote=url, endpoint=s3_env.endpoint, cache_dir=str(cache)).ls("nope")
    assert not cache.exists()


# -- SSH ----------------------------------------------------------------------------------------
@pytest.mark.usefixtures("elsewhere")
def test_ssh_remote_reads_a_version(origin: tuple[Path, str], tmp_path: Path,
                                    sshd: Any) -> None:
    root, oid = origin
    fs = _fs(remote=f"ssh://{sshd.user}@{sshd.host}{root}",
             ssh_command=shlex.join(sshd.ssh_command), cache_dir=str(tmp_path / "cache"))
    try:
        assert fs.cat_file(f"{oid}/part-0002.csv") == FILES["part-0002.csv"]
        assert fs.cat_file("data/big/blob.bin", 10, 20) == (
            root / "data/big/blob.bin").read_bytes()[10:20]
    finally:
        fs.close()  # ends the ssh process


@pytest.mark.usefixtures("elsewhere")
def test_a_name_read_is_kept_until_the_cache_is_invalidated(origin: tuple[Path, str],
                                                           tmp_path: Path) -> None:
    root, v1 = origin
    fs = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"))
    assert fs.info("data")["snapshot"] == v1
    make_tree(root / "data", {"part-0001.csv": b"id,x\n1,2\n"})
    run_gitml(root, "add", "data")  # the remote's ref moves on
    assert fs.info("data")["snapshot"] == v1  # as fsspec's listings cache would
    assert fs.cat_file(f"{v1}/part-0001.csv") == FILES["part-0001.csv"]
    fs.invalidate_cache()
    v2 = fs.info("data")["snapshot"]
    assert v2 != v1
    assert fs.cat_file("data/part-0001.csv") == b"id,x\n1,2\n"
    assert fs.cat_file("data~1/part-0001.csv") == FILES["part-0001.csv"]


def test_what_a_process_read_is_cached_without_a_close(origin: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    root, oid = origin
    cache = tmp_path / "cache"
    code = ("import fsspec, sys; fs = fsspec.filesystem('mlgit', remote=sys.argv[1], "
            "cache_dir=sys.argv[2]); sys.stdout.buffer.write(fs.cat_file(sys.argv[3]))")
    out = subprocess.run([sys.executable, "-c", code, str(root), str(cache),
                          f"{oid}/part-0002.csv"], capture_output=True, check=True,
                         cwd=tmp_path)
    assert out.stdout == FILES["part-0002.csv"]
    assert list(cache.rglob("*.pack"))  # written as it read (never closed)


@pytest.mark.usefixtures("elsewhere")
def test_get_copies_a_version_out(origin: tuple[Path, str], tmp_path: Path) -> None:
    root, oid = origin
    fs = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"))
    fs.get(f"{oid}/", str(tmp_path / "copy"), recursive=True)
    for name, content in FILES.items():
        assert (tmp_path / "copy" / name).read_bytes() == content
    assert (tmp_path / "copy/big/blob.bin").read_bytes() == (
        root / "data/big/blob.bin").read_bytes()
    with fs.open(f"{oid}/part-0001.csv", cache_type="none") as f:
        f.seek(100)
        assert f.read(50) == FILES["part-0001.csv"][100:150]


def _forge(root: Path, name: str, entries: list[TreeEntry], files: int, size: int) -> str:
    """A snapshot ``name`` whose root tree holds ``entries``, written into ``root``'s store."""
    store = Store.open(root / ".git" / "ml")
    try:
        tree = store.objects.put_tree(entries)
        oid = store.objects.put_snapshot(Snapshot(
            kind="dataset", name=name, tree=raw_to_hex(tree), root="dir", parents=(),
            time=1_700_000_000, tz=0, author="Mallory <m@example.com>", message="",
            files=files, bytes=size))
        store.objects.flush()
        store.refs.update("datasets", name, oid, None)
        return oid
    finally:
        store.close()


@pytest.mark.usefixtures("elsewhere")
def test_hostile_trees_are_refused_with_eio(origin: tuple[Path, str], tmp_path: Path) -> None:
    root, oid = origin
    store = Store.open(root / ".git" / "ml")
    try:
        snap = store.objects.get_snapshot(ObjectID(oid))
        real = lookup(store.objects.get_tree, hex_to_raw(snap.tree), "part-0001.csv")
    finally:
        store.close()
    (cid, n), *_ = real.chunks
    # A file whose tree claims a chunk is shorter than it is.
    liar = TreeEntry(b"liar.csv", TYPE_FILE, n - 1, digest=real.digest, chunks=((cid, n - 1),))
    _forge(root, "liar", [liar], 1, n - 1)
    # A directory that claims more files than its tree holds.
    sub = _forge(root, "sub-src", [real], 1, real.size)
    sub_tree = hex_to_raw(_snapshot_tree(root, sub))
    lying_dir = TreeEntry(b"d", TYPE_DIR, real.size, subtree=sub_tree, files=5)
    _forge(root, "claims", [lying_dir], 5, real.size)
    fs = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(OSError, match=r"its tree says") as err:
        fs.cat_file("liar/liar.csv")
    assert err.value.errno == errno.EIO
    with pytest.raises(OSError, match=r"claims|holds") as err:
        fs.find("claims")
    assert err.value.errno == errno.EIO
    assert fs.cat_file(f"{oid}/part-0001.csv") == FILES["part-0001.csv"]  # the rest reads


def _snapshot_tree(root: Path, oid: str) -> str:
    store = Store.open(root / ".git" / "ml")
    try:
        return str(store.objects.get_snapshot(ObjectID(oid)).tree)
    finally:
        store.close()


def test_a_model_stage_is_read_from_a_remote_with_no_clone(tmp_path: Path,
                                                            elsewhere: Path) -> None:
    """``mlgit://MODEL@STAGE/...`` on a remote: the stage's ref and record, read remotely."""
    root = tmp_path / "reg"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(tmp_path / "w1", {"w.bin": b"one" * 1000})
    make_tree(tmp_path / "w2", {"w.bin": b"two" * 1000})
    for step, w in ((1, "w1"), (2, "w2")):
        run_gitml(root, "commit-ckpt", str(tmp_path / w), "--run", "net", "--step", str(step),
                  "-q")
    run_gitml(root, "promote", "net~1", "production", "--model", "net")
    run_gitml(root, "promote", "net", "staging", "--model", "net")
    opts = {"remote": str(root), "cache_dir": str(tmp_path / "cache")}
    fs = _fs(**opts)
    assert fs.cat_file("net@production/w.bin") == b"one" * 1000
    assert fs.cat_file("net@staging/w.bin") == b"two" * 1000
    assert fs.ls("", detail=False) == ["net"]  # stage refs are not snapshot names
    with pytest.raises(FileNotFoundError, match="its stages: production, staging"):
        fs.cat_file("net@canary/w.bin")
    run_gitml(root, "demote", "net", "staging")
    with pytest.raises(FileNotFoundError, match="is empty"):
        _fs(**opts).cat_file("net@staging/w.bin")
    assert not (elsewhere / ".git").exists()


def test_a_remote_stage_ref_naming_another_stages_record_is_refused(tmp_path: Path,
                                                                     elsewhere: Path) -> None:
    """A hostile remote whose ``stages/net@staging`` names production's record: EIO, named."""
    root = tmp_path / "reg"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(tmp_path / "w", {"w.bin": b"w" * 1000})
    run_gitml(root, "commit-ckpt", str(tmp_path / "w"), "--run", "net", "-q")
    run_gitml(root, "promote", "net", "production", "--model", "net")
    run_gitml(root, "promote", "net", "staging", "--model", "net")
    refs = root / ".git/ml/refs/stages"
    (refs / "net@staging").write_bytes((refs / "net@production").read_bytes())
    fs = _fs(remote=str(root), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(OSError, match="a record of net@production") as e:
        fs.cat_file("net@staging/w.bin")
    assert e.value.errno == errno.EIO
    assert fs.cat_file("net@production/w.bin") == b"w" * 1000
    assert not (elsewhere / ".git").exists()
