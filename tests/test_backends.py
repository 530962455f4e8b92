"""One conformance suite that every remote backend passes (local path, SSH, S3).

Each test is one contract of :mod:`mlgit.sync.backend` (its module docstring and the
methods' docstrings), run on every backend. Where a contract is about what a remote
may hold (a pack without its index, an oversized config, a garbage ref), the test
plants those files with :class:`Raw`, which writes the remote's storage directly:
the served directory for a local path and SSH, the bucket for S3.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlgit.errors import ConflictError, FormatError, MlgitError
from mlgit.format.config import StoreConfig, encode_config
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_CONFIG_LEN, MAX_INDEX_LEN, MAX_REF_LEN
from mlgit.sync.backend import Backend, LocalBackend
from mlgit.sync.layout import index_file, pack_file, ref_file

# Every backend whose test fixtures are present runs the suite (fixtures_ssh.py starts a
# real sshd, fixtures_s3.py moto's S3 server).
BACKENDS = ["local"] + [name for name, module in (("ssh", "fixtures_ssh"), ("s3", "fixtures_s3"))
                        if importlib.util.find_spec(module) is not None]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty remote store of each kind."""
    if request.param == "local":
        b: Backend = LocalBackend(tmp_path / "remote" / ".git" / "ml")
    else:
        factory: Callable[[], Backend] = request.getfixturevalue(f"{request.param}_backend_factory")
        b = factory()
    yield b
    b.close()


class Raw:
    """The files of a remote store, written and removed behind its backend's back.

    ``root`` is the store's directory for a local or SSH remote (None for S3);
    names are paths under the store's root (:mod:`mlgit.sync.layout`).
    """

    def __init__(self, backend: Backend, request: pytest.FixtureRequest) -> None:
        self.root: Path | None = None
        self.client: Any = None
        if isinstance(backend, LocalBackend):
            self.root = backend.root
        elif type(backend).__name__ == "SSHBackend":
            self.root = Path(backend.path) / ".git" / "ml"  # type: ignore[attr-defined]
        else:
            self.client = request.getfixturevalue("s3_env").client
            self.bucket = backend.bucket  # type: ignore[attr-defined]
            self.prefix = backend.prefix  # type: ignore[attr-defined]

    def put(self, name: str, data: bytes) -> None:
        """Write file ``name`` whole."""
        if self.root is not None:
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_bytes(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}", Body=data)

    def get(self, name: str) -> bytes | None:
        """File ``name``'s bytes, or None when it does not exist."""
        if self.root is not None:
            path = self.root / name
            return path.read_bytes() if path.exists() else None
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = resp["Body"].read()
        return data

    def delete(self, name: str) -> None:
        """Remove file ``name``."""
        if self.root is not None:
            (self.root / name).unlink()
        else:
            self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")


@pytest.fixture
def raw(backend: Backend, request: pytest.FixtureRequest) -> Raw:
    """Direct access to the files of ``backend``'s store."""
    return Raw(backend, request)


def _pack(tmp_path: Path, size: int) -> tuple[str, Path, bytes, bytes]:
    data = b"MLGPACK\x01" + os.urandom(size)
    p = tmp_path / f"up-{os.urandom(4).hex()}.pack"
    p.write_bytes(data)
    stem = "pack-" + os.urandom(16).hex()
    return stem, p, data, b"index-bytes-" + os.urandom(40)


OID_A = ObjectID("a" * 32)
OID_B = ObjectID("b" * 32)
OID_C = ObjectID("c" * 32)


def test_config_and_init(backend: Backend) -> None:
    assert backend.read_config() is None
    cfg = encode_config(StoreConfig())
    backend.init(cfg)
    assert backend.read_config() == cfg
    backend.init(encode_config(StoreConfig(pack_size=4096)))
    assert backend.read_config() == cfg  # init never replaces an existing config
    assert backend.list_packs() == []
    assert backend.list_refs() == {}


def test_packs_round_trip_with_ranged_reads(backend: Backend, tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stems = []
    for size in (10, 300_000):
        stem, path, data, index = _pack(tmp_path, size)
        backend.put_pack(stem, path, index)
        backend.put_pack(stem, path, index)  # idempotent
        stems.append(stem)
        assert backend.read_index(stem) == index
        assert backend.read_pack(stem, 0, len(data)) == data
        assert backend.read_pack(stem, 3, 5) == data[3:8]
        assert backend.read_pack(stem, len(data) - 4, 4) == data[-4:]
    assert backend.list_packs() == sorted(stems)


def test_reading_past_the_end_fails(backend: Backend, tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 100)
    backend.put_pack(stem, path, index)
    with pytest.raises(MlgitError):
        backend.read_pack(stem, len(data) - 2, 10)


def test_missing_pack_fails(backend: Backend) -> None:
    backend.init(encode_config(StoreConfig()))
    with pytest.raises((MlgitError, OSError)):
        backend.read_index("pack-" + "0" * 32)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "pack-xyz", "pack-" + "0" * 31, ""])
def test_bad_pack_names_are_refused(backend: Backend, bad: str, tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    with pytest.raises(FormatError):
        backend.read_index(bad)
    with pytest.raises(FormatError):
        backend.put_pack(bad, tmp_path / "x", b"")


def test_refs_compare_and_swap(backend: Backend) -> None:
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("datasets/data", OID_A, None)
    assert backend.list_refs() == {"datasets/data": OID_A}
    with pytest.raises(ConflictError):
        backend.update_ref("datasets/data", OID_B, None)
    with pytest.raises(ConflictError):
        backend.update_ref("datasets/data", OID_B, OID_C)
    assert backend.list_refs() == {"datasets/data": OID_A}
    backend.update_ref("datasets/data", OID_B, OID_A)
    backend.update_ref("checkpoints/run-1", OID_C, None)
    assert backend.list_refs() == {"datasets/data": OID_B, "checkpoints/run-1": OID_C}


@pytest.mark.parametrize("bad", ["datasets/../x", "other/name", "datasets/", "datasets/a b"])
def test_bad_ref_names_are_refused(backend: Backend, bad: str) -> None:
    backend.init(encode_config(StoreConfig()))
    with pytest.raises(FormatError):
        backend.update_ref(bad, OID_A, None)


def test_concurrent_ref_updates_lose_nothing(backend: Backend) -> None:
    """Racing writers: exactly one wins each round; the losers see ConflictError."""
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("checkpoints/r", ObjectID("0" * 32), None)
    wins: list[int] = []
    losses: list[int] = []

    def racer(n: int) -> None:
        try:
            backend.update_ref("checkpoints/r", ObjectID(f"{n + 1:032x}"), ObjectID("0" * 32))
            wins.append(n)
        except ConflictError:
            losses.append(n)

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(losses) == 3
    assert backend.list_refs()["checkpoints/r"] == ObjectID(f"{wins[0] + 1:032x}")


def test_refs_compare_and_delete(backend: Backend) -> None:
    """delete_ref removes a ref only at the version expected; anything else changes nothing."""
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("datasets/data", OID_A, None)
    backend.update_ref("checkpoints/run-1", OID_C, None)
    with pytest.raises(ConflictError):
        backend.delete_ref("datasets/data", OID_B)  # it moved (to A) since B was seen
    assert backend.list_refs() == {"datasets/data": OID_A, "checkpoints/run-1": OID_C}
    backend.delete_ref("datasets/data", OID_A)
    assert backend.list_refs() == {"checkpoints/run-1": OID_C}
    with pytest.raises(ConflictError):
        backend.delete_ref("datasets/data", OID_A)  # already gone
    backend.update_ref("datasets/data", OID_B, None)  # the name can be used again
    assert backend.list_refs() == {"datasets/data": OID_B, "checkpoints/run-1": OID_C}


@pytest.mark.parametrize("bad", ["datasets/../x", "other/name", "datasets/", "refs/datasets/a"])
def test_bad_ref_names_are_refused_for_delete(backend: Backend, bad: str) -> None:
    backend.init(encode_config(StoreConfig()))
    with pytest.raises(FormatError):
        backend.delete_ref(bad, OID_A)


def test_delete_racing_an_update_loses_nothing(backend: Backend) -> None:
    """A delete and updates racing on one ref: the delete wins only over no newer push."""
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("datasets/d", OID_A, None)
    outcomes: dict[str, str] = {}

    def delete() -> None:
        try:
            backend.delete_ref("datasets/d", OID_A)
            outcomes["delete"] = "won"
        except ConflictError:
            outcomes["delete"] = "lost"

    def update() -> None:
        try:
            backend.update_ref("datasets/d", OID_B, OID_A)
            outcomes["update"] = "won"
        except ConflictError:
            outcomes["update"] = "lost"

    threads = [threading.Thread(target=delete), threading.Thread(target=update)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["lost", "won"]
    refs = backend.list_refs()
    assert refs == ({} if outcomes["delete"] == "won" else {"datasets/d": OID_B})


# -- A pack is visible only once both its pack file and its index are written ----------


def test_a_pack_is_invisible_until_its_index_is_written(backend: Backend, raw: Raw,
                                                         tmp_path: Path) -> None:
    """list_packs counts a pack only when both files exist; put_pack completes a half one."""
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 1000)
    raw.put(pack_file(stem), data)  # an upload cut off before its index
    assert backend.list_packs() == []
    other, _, _, other_index = _pack(tmp_path, 10)
    raw.put(index_file(other), other_index)  # an index whose pack is gone
    assert backend.list_packs() == []
    backend.put_pack(stem, path, index)  # finishes the cut-off upload
    assert backend.list_packs() == [stem]
    assert backend.read_index(stem) == index
    assert backend.read_pack(stem, 0, len(data)) == data


def test_put_pack_writes_the_pack_before_its_index(backend: Backend, raw: Raw,
                                                   tmp_path: Path) -> None:
    """A pack whose file cannot be read fails put_pack before any index exists."""
    backend.init(encode_config(StoreConfig()))
    stem, _, _, index = _pack(tmp_path, 100)
    with pytest.raises((MlgitError, OSError)):
        backend.put_pack(stem, tmp_path / "no-such.pack", index)
    assert raw.get(index_file(stem)) is None
    assert backend.list_packs() == []


def test_put_pack_never_replaces_an_existing_index(backend: Backend, raw: Raw,
                                                   tmp_path: Path) -> None:
    """Idempotent: a second put_pack of the same name keeps the files already there."""
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 100)
    backend.put_pack(stem, path, index)
    backend.put_pack(stem, path, b"another index")
    assert backend.read_index(stem) == index
    assert raw.get(pack_file(stem)) == data


@pytest.mark.parametrize("name", ["pack-xyz", "pack-" + "A" * 32, "junk", "pack-" + "0" * 33])
def test_files_not_named_as_packs_are_never_listed(backend: Backend, raw: Raw,
                                                   name: str) -> None:
    backend.init(encode_config(StoreConfig()))
    raw.put(f"packs/{name}.pack", b"MLGPACK\x01")
    raw.put(f"packs/{name}.idx", b"index")
    assert backend.list_packs() == []


# -- Reads return exactly the bytes asked for or raise ---------------------------------


def test_ranged_reads_are_exact(backend: Backend, tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 3 << 20)  # several protocol pieces
    backend.put_pack(stem, path, index)
    assert backend.read_pack(stem, 0, 0) == b""
    assert backend.read_pack(stem, len(data), 0) == b""
    assert backend.read_pack(stem, (1 << 20) - 3, (1 << 20) + 7) == \
        data[(1 << 20) - 3:(2 << 20) + 4]
    for offset, length in ((-1, 4), (0, -1)):
        with pytest.raises(FormatError):
            backend.read_pack(stem, offset, length)
    with pytest.raises(FormatError):
        backend.read_pack(stem, len(data) + 10, 1)


def test_a_pack_shorter_than_asked_is_an_error(backend: Backend, raw: Raw,
                                               tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 100)
    backend.put_pack(stem, path, index)
    raw.put(pack_file(stem), data[:50])  # truncated behind the backend's back
    with pytest.raises(FormatError):
        backend.read_pack(stem, 0, len(data))
    assert backend.read_pack(stem, 10, 5) == data[10:15]


def test_read_pack_into_copies_exactly_the_range(backend: Backend, tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 300_000)
    backend.put_pack(stem, path, index)
    out = tmp_path / "copy"
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        backend.read_pack_into(stem, 0, len(data), fd, 0)
        backend.read_pack_into(stem, 7, 1000, fd, len(data))  # at an offset of the file
        backend.read_pack_into(stem, 5, 0, fd, 0)  # nothing
        for offset, length in ((-1, 4), (0, -1), (len(data) - 2, 3)):
            with pytest.raises(FormatError):
                backend.read_pack_into(stem, offset, length, fd, 0)
    finally:
        os.close(fd)
    assert out.read_bytes() == data + data[7:1007]


def test_read_pack_into_a_pack_shorter_than_asked_is_an_error(backend: Backend, raw: Raw,
                                                             tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 100)
    backend.put_pack(stem, path, index)
    raw.put(pack_file(stem), data[:50])
    fd = os.open(tmp_path / "copy", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(FormatError):
            backend.read_pack_into(stem, 0, len(data), fd, 0)
    finally:
        os.close(fd)


# -- Every read is bounded by the kind of file ------------------------------------------


def test_a_config_past_its_limit_is_refused(backend: Backend, raw: Raw) -> None:
    raw.put("config", b"{" + b" " * MAX_CONFIG_LEN + b"}")
    with pytest.raises(FormatError, match="config"):
        backend.read_config()


def test_an_index_past_its_limit_is_refused(backend: Backend, raw: Raw,
                                            tmp_path: Path) -> None:
    backend.init(encode_config(StoreConfig()))
    stem, _, data, _ = _pack(tmp_path, 10)
    raw.put(pack_file(stem), data)
    raw.put(index_file(stem), b"\0" * (MAX_INDEX_LEN + 1))
    with pytest.raises(FormatError):
        backend.read_index(stem)


@pytest.mark.parametrize("content", [b"a" * 32 + b"\n" + b" " * MAX_REF_LEN,
                                     b"not an id\n", b"\xff" * 33])
def test_a_bad_ref_is_reported_and_the_others_are_listed(backend: Backend, raw: Raw,
                                                         content: bytes) -> None:
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("datasets/good", OID_A, None)
    backend.update_ref("checkpoints/run", OID_B, None)
    raw.put(ref_file("datasets/bad"), content)
    bad: list[tuple[str, FormatError]] = []
    refs = backend.list_refs(lambda ref, err: bad.append((ref, err)))
    assert refs == {"datasets/good": OID_A, "checkpoints/run": OID_B}
    assert [ref for ref, _ in bad] == ["datasets/bad"]
    assert isinstance(bad[0][1], FormatError)
    with pytest.raises(FormatError):
        backend.list_refs()


def test_files_under_refs_that_are_not_refs_are_left_out(backend: Backend, raw: Raw) -> None:
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("datasets/good", OID_A, None)
    raw.put("refs/other/x", (OID_B + "\n").encode())
    raw.put("refs/datasets/.hidden", (OID_B + "\n").encode())
    assert backend.list_refs() == {"datasets/good": OID_A}


def test_a_file_that_is_not_regular_is_refused(backend: Backend, raw: Raw,
                                               tmp_path: Path) -> None:
    """On a file system, a symlink is refused before it is read (S3 has none)."""
    if raw.root is None:
        pytest.skip("an S3 store has no symlinks")
    secret = tmp_path / "secret"
    secret.write_bytes(encode_config(StoreConfig()))
    raw.root.mkdir(parents=True, exist_ok=True)
    (raw.root / "config").symlink_to(secret)
    with pytest.raises(FormatError):
        backend.read_config()
    (raw.root / "config").unlink()
    backend.init(encode_config(StoreConfig()))
    stem, path, data, index = _pack(tmp_path, 10)
    backend.put_pack(stem, path, index)
    target = tmp_path / "elsewhere.pack"
    target.write_bytes(data)
    (raw.root / pack_file(stem)).unlink()
    (raw.root / pack_file(stem)).symlink_to(target)
    with pytest.raises(FormatError):
        backend.read_pack(stem, 0, len(data))


# -- Compare-and-swap: a refused update changes nothing ---------------------------------


def test_a_refused_update_or_delete_changes_nothing(backend: Backend, raw: Raw) -> None:
    backend.init(encode_config(StoreConfig()))
    backend.update_ref("datasets/d", OID_A, None)
    before = raw.get(ref_file("datasets/d"))
    attempts: tuple[Callable[[], object], ...] = (
        lambda: backend.update_ref("datasets/d", OID_C, OID_B),
                    lambda: backend.update_ref("datasets/d", OID_C, None),
        lambda: backend.delete_ref("datasets/d", OID_B))
    for attempt in attempts:
        with pytest.raises(ConflictError):
            attempt()
        assert raw.get(ref_file("datasets/d")) == before
    with pytest.raises(ConflictError):
        backend.update_ref("datasets/new", OID_C, OID_A)  # expects a ref that is absent
    assert raw.get(ref_file("datasets/new")) is None
    assert backend.list_refs() == {"datasets/d": OID_A}


def test_close_is_idempotent_and_the_backend_can_be_used_after(backend: Backend) -> None:
    backend.init(encode_config(StoreConfig()))
    backend.close()
    backend.close()
    assert backend.list_refs() == {}
