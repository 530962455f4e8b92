"""One conformance suite that every remote backend passes (local path, SSH, S3)."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlgit.errors import ConflictError, FormatError, MlgitError
from mlgit.format.config import StoreConfig, encode_config
from mlgit.format.ids import ObjectID
from mlgit.sync.backend import Backend, LocalBackend

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
    assert len(wins) == 1 and len(losses) == 3
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
