"""Whole packs copied as they are (mlgit/sync/packcopy.py): a clone of a local-path remote.

A fetch that wants every object of a remote pack copies the pack file and its
index unchanged (same name) instead of rebuilding it, and checks every object
of it before anything names it; a push of whole local packs sends their files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml

import mlgit
from mlgit import errors
from mlgit.format.ids import RawObjectID
from mlgit.format.pack import ENTRY_HEADER, OBJ_CHUNK, OBJ_TREE, PACK_MAGIC, IndexEntry
from mlgit.store.packs import read_index_file
from mlgit.sync.packcopy import contiguous, unit_order, whole_packs

PACK = "65536"


def _stems(packs: Path) -> set[str]:
    return {p.name[:-4] for p in packs.glob("*.idx")}


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(r))
    return r


@pytest.fixture
def alice(tmp_path: Path, origin: Path) -> Path:
    """A repository with ~1 MiB of data in 64 KiB packs, pushed to ``origin``."""
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", PACK, "--chunk-size", "4096")
    files: dict[str, bytes | str] = {f"data/d{i % 5}/f{i}.bin": os.urandom(9000 + i)
                                     for i in range(100)}
    files.update({f"data/csv/{i}.csv": "".join(f"{i},{j},{j * j}\n" for j in range(800))
                  for i in range(20)})
    make_tree(a, files)
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "v1")
    git(a, "remote", "add", "origin", str(origin))
    git(a, "push", "-q", "-u", "origin", "main")
    return a


def _clone(tmp_path: Path, origin: Path, name: str = "bob", pack: str = PACK) -> Path:
    bob = tmp_path / name
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init", "--pack-size", pack)
    return bob


def _fsck_clean(repo: Path) -> None:
    report = json.loads(run_gitml(repo, "fsck", "--json", check=False).stdout)
    assert report["problems"] == []


def test_a_clone_copies_whole_packs_and_gets_every_file(alice: Path, origin: Path,
                                                         tmp_path: Path) -> None:
    remote = _stems(origin / "ml/packs")
    bob = _clone(tmp_path, origin, pack="16384")  # every remote pack is big enough
    out = run_gitml(bob, "pull").stdout
    assert "fetched" in out
    copied = _stems(bob / ".git/ml/packs") & remote
    assert copied == remote, "not every remote pack was copied whole"
    # ... the one holding the trees and the snapshot too, after the chunks they name.
    assert any(e.type != OBJ_CHUNK for s in copied
               for e in read_index_file(bob / ".git/ml/packs" / f"{s}.idx"))
    for stem in copied:  # byte for byte the remote's pack, up to its last object
        ours = (bob / ".git/ml/packs" / f"{stem}.pack").read_bytes()
        assert ours == (origin / "ml/packs" / f"{stem}.pack").read_bytes()
        assert ours.startswith(PACK_MAGIC)
    assert read_tree(bob / "data") == read_tree(alice / "data")
    _fsck_clean(bob)
    # Nothing is fetched twice, and the clone pushes back nothing new.
    assert "0 objects" in run_gitml(bob, "fetch").stdout
    assert "nothing to push" in run_gitml(bob, "push").stdout or \
        "0 objects" in run_gitml(bob, "push").stdout


def _corrupt_one_object(pack: Path, e: IndexEntry) -> None:
    raw = bytearray(pack.read_bytes())
    raw[e.offset + ENTRY_HEADER.size + e.stored_len // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))


@pytest.mark.usefixtures("alice")
def test_a_corrupt_object_in_a_whole_pack_is_refused_and_nothing_names_it(
        origin: Path, tmp_path: Path) -> None:
    packs = origin / "ml/packs"
    # The biggest remote pack of leaves only: it would be copied whole.
    leafy = [(p.stat().st_size, p) for p in packs.glob("*.pack")
             if all(e.type == OBJ_CHUNK for e in read_index_file(p.with_suffix(".idx")))]
    assert leafy
    _, pack = max(leafy)
    entries = read_index_file(pack.with_suffix(".idx"))
    _corrupt_one_object(pack, entries[len(entries) // 2])
    bob = _clone(tmp_path, origin, pack="16384")  # every remote pack would be copied whole
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code
    assert str(origin) in p.stderr
    assert "nothing of it was kept" in p.stderr
    assert not (bob / "data").exists()
    assert pack.stem not in _stems(bob / ".git/ml/packs")  # never published whole
    _fsck_clean(bob)
    with mlgit.Repo(bob) as r:  # the pack's good objects were kept, the bad one not
        bad = entries[len(entries) // 2].oid
        assert not r.store.objects.has_committed(bad)
        assert sum(r.store.objects.has_committed(e.oid) for e in entries) == len(entries) - 1


@pytest.mark.usefixtures("alice")
def test_a_truncated_remote_pack_is_refused(origin: Path, tmp_path: Path) -> None:
    packs = origin / "ml/packs"
    _, pack = max((p.stat().st_size, p) for p in packs.glob("*.pack"))
    pack.write_bytes(pack.read_bytes()[:-100])
    bob = _clone(tmp_path, origin)
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode != 0
    assert str(origin) in p.stderr
    assert pack.stem not in _stems(bob / ".git/ml/packs")
    _fsck_clean(bob)


@pytest.mark.usefixtures("alice")
def test_a_remote_pack_with_bad_magic_is_refused(origin: Path, tmp_path: Path) -> None:
    packs = origin / "ml/packs"
    _, pack = max((p.stat().st_size, p) for p in packs.glob("*.pack"))
    raw = bytearray(pack.read_bytes())
    raw[0] ^= 0xFF
    pack.write_bytes(bytes(raw))
    bob = _clone(tmp_path, origin)
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code
    assert "magic" in p.stderr
    assert pack.stem not in _stems(bob / ".git/ml/packs")
    _fsck_clean(bob)


def test_a_clone_of_a_clone_that_fetched_whole_packs(alice: Path, origin: Path,
                                                     tmp_path: Path) -> None:
    bob = _clone(tmp_path, origin)
    run_gitml(bob, "pull")
    second = tmp_path / "second.git"
    git(tmp_path, "init", "-q", "--bare", str(second))
    git(bob, "remote", "add", "second", str(second))
    git(bob, "push", "-q", "second", "main")
    carol = _clone(tmp_path, second, "carol")
    run_gitml(carol, "pull")
    assert read_tree(carol / "data") == read_tree(alice / "data")
    _fsck_clean(carol)


def test_a_push_copies_whole_local_packs(alice: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.git"
    git(tmp_path, "init", "-q", "--bare", str(plain))
    git(alice, "remote", "add", "plain", str(plain))
    git(alice, "push", "-q", "plain", "main")  # the pre-push hook sends the data
    local = _stems(alice / ".git/ml/packs")
    sent = _stems(plain / "ml/packs")
    assert local & sent, "no local pack was sent whole"
    for stem in local & sent:
        assert (plain / "ml/packs" / f"{stem}.pack").read_bytes() == (
            alice / ".git/ml/packs" / f"{stem}.pack").read_bytes()
    dave = _clone(tmp_path, plain, "dave")
    run_gitml(dave, "pull")
    assert read_tree(dave / "data") == read_tree(alice / "data")
    _fsck_clean(dave)


# -- the planning functions --------------------------------------------------------


def _e(oid: bytes, offset: int, n: int, type_: int = OBJ_CHUNK) -> IndexEntry:
    return IndexEntry(RawObjectID(oid * 16), offset, n, n, type_, 0)


def test_contiguous_entries() -> None:
    a = _e(b"a", len(PACK_MAGIC), 10)
    b = _e(b"b", a.offset + ENTRY_HEADER.size + 10, 5)
    assert contiguous([a, b])
    assert not contiguous([b])  # a gap after the magic
    assert not contiguous([a, b._replace(offset=b.offset + 1)])  # a gap between
    assert not contiguous([])


def test_whole_packs_wants_every_object_with_its_type() -> None:
    a = _e(b"a", len(PACK_MAGIC), 10)
    b = _e(b"b", a.offset + ENTRY_HEADER.size + 10, 5)
    where = {a.oid: "p", b.oid: "p"}
    ents = {a.oid: a, b.oid: b}
    both = {a.oid: OBJ_CHUNK, b.oid: OBJ_CHUNK}
    assert whole_packs(both, where.get, {"p": 2}, ents.__getitem__) == {"p": [a, b]}
    assert whole_packs({a.oid: OBJ_CHUNK}, where.get, {"p": 2}, ents.__getitem__) == {}
    assert whole_packs({**both, b.oid: OBJ_TREE}, where.get, {"p": 2}, ents.__getitem__) == {}
    assert whole_packs(both, where.get, {"p": 3}, ents.__getitem__) == {}


def test_unit_order_puts_dependencies_first_and_finds_cycles() -> None:
    assert unit_order(["a", "b", "c"], {"a": {"b"}, "b": {"c"}}) == [["c"], ["b"], ["a"]]
    assert unit_order(["a", "b"], {"a": {"zzz", "a"}}) == [["a", "b"]]
    assert unit_order(["a", "b", "c"], {"c": {"a"}}) == [["a", "b"], ["c"]]
    assert unit_order(["a", "b"], {"a": {"b"}, "b": {"a"}}) is None
