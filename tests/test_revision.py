"""Tests of revision parsing: ids, prefixes, names, name@prefix, ~N."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgit.errors import AmbiguousRevisionError, RevisionError
from mlgit.format.config import StoreConfig
from mlgit.format.ids import ObjectID, object_id, raw_to_hex
from mlgit.format.pack import OBJ_BLOB
from mlgit.format.snapshot import Snapshot, encode_snapshot
from mlgit.format.tree import TYPE_SYMLINK, TreeEntry
from mlgit.store.revision import resolve_revision, snapshot_ids_with_prefix
from mlgit.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s, _ = Store.init(tmp_path / "ml", StoreConfig(pack_size=1 << 16))
    yield s
    s.close()


@pytest.fixture
def tree(store: Store) -> ObjectID:
    tid = store.objects.put_tree([TreeEntry(b"link", TYPE_SYMLINK, 3, target=b"abc")])
    store.objects.flush()
    return raw_to_hex(tid)


def _snap(tree: ObjectID, name: str, parents: tuple[ObjectID, ...] = (), message: str = "",
          kind: str = "dataset") -> Snapshot:
    return Snapshot(kind=kind, name=name, tree=tree, root="dir", parents=parents,
                    time=1_700_000_000, tz=0, author="t", message=message, files=1, bytes=3)


def commit(store: Store, tree: ObjectID, name: str, message: str = "",
           kind: str = "dataset") -> ObjectID:
    """Append a snapshot to ``name`` the way the tool does: store, flush, then CAS the ref."""
    refs_kind = kind + "s"
    cur = store.refs.get(refs_kind, name)
    oid = store.objects.put_snapshot(
        _snap(tree, name, (cur,) if cur else (), message or f"{name} {cur}", kind))
    store.objects.flush()
    store.refs.update(refs_kind, name, oid, cur)
    return oid


def _unique_prefix(store: Store, oid: str, n: int = 4) -> str:
    while len(snapshot_ids_with_prefix(store, oid[:n])) > 1:
        n += 1
    return oid[:n]


@pytest.fixture
def history(store: Store, tree: ObjectID) -> list[ObjectID]:
    """data: s0 <- s1 <- s2 <- s3 (s3 newest); plus an unrelated 'other' dataset."""
    chain = [commit(store, tree, "data", f"v{i}") for i in range(4)]
    commit(store, tree, "other", "o0")
    return chain


def test_full_id(store: Store, history: list[ObjectID]) -> None:
    for oid in history:
        assert resolve_revision(store, oid) == oid
        assert resolve_revision(store, oid.upper()) == oid
        assert resolve_revision(store, f"  {oid}\n") == oid


def test_unique_prefix(store: Store, history: list[ObjectID]) -> None:
    for oid in history:
        p = _unique_prefix(store, oid)
        assert len(p) >= 4
        assert resolve_revision(store, p) == oid
        for n in range(len(p), 33):
            assert resolve_revision(store, oid[:n]) == oid


def test_short_prefix_is_not_a_prefix(store: Store, history: list[ObjectID]) -> None:
    for oid in history:
        for n in (1, 2, 3):
            with pytest.raises(RevisionError) as e:
                resolve_revision(store, oid[:n])
            assert not isinstance(e.value, AmbiguousRevisionError)


def test_name_is_newest(store: Store, history: list[ObjectID]) -> None:
    assert resolve_revision(store, "data") == history[-1]
    assert resolve_revision(store, "other") != history[-1]
    assert store.objects.get_snapshot(resolve_revision(store, "other")).name == "other"


def test_name_tilde(store: Store, history: list[ObjectID]) -> None:
    for n in range(4):
        assert resolve_revision(store, f"data~{n}") == history[-1 - n]
    assert resolve_revision(store, "data~") == history[-2]
    assert resolve_revision(store, "data~~") == history[-3]
    assert resolve_revision(store, "data~1~2") == history[0]
    assert resolve_revision(store, "data~~1~") == history[0]
    assert resolve_revision(store, "data~0") == history[-1]


def test_id_tilde(store: Store, history: list[ObjectID]) -> None:
    top = history[-1]
    assert resolve_revision(store, f"{top}~2") == history[1]
    assert resolve_revision(store, f"{_unique_prefix(store, top)}~3") == history[0]
    assert resolve_revision(store, f"{history[1]}~") == history[0]


def test_tilde_past_the_root(store: Store, history: list[ObjectID]) -> None:
    for rev in ("data~4", "data~5", "data~~~~", "data~100", f"{history[0]}~", "other~1",
                f"data@{history[0][:8]}~1", "data~99999999999999999999"):
        with pytest.raises(RevisionError) as e:
            resolve_revision(store, rev)
        assert not isinstance(e.value, AmbiguousRevisionError)


def test_name_at_prefix(store: Store, history: list[ObjectID]) -> None:
    for oid in history:
        p = _unique_prefix(store, oid)
        assert resolve_revision(store, f"data@{p}") == oid
        assert resolve_revision(store, f"data@{oid}") == oid
        assert resolve_revision(store, f"data@{p.upper()}") == oid
    assert resolve_revision(store, f"data@{_unique_prefix(store, history[2])}~2") == history[0]
    # a prefix of another name's snapshot is not a snapshot of this name
    other = resolve_revision(store, "other")
    with pytest.raises(RevisionError):
        resolve_revision(store, f"data@{other}")
    with pytest.raises(RevisionError):
        resolve_revision(store, f"nosuch@{history[0]}")


@pytest.mark.parametrize("rev", ["data@", "data@abc", "data@xyzw", "@" + "0" * 32, "da ta",
                                 "data@@abcd", "data~x", "data~-1", "~", "~1", "", "   ",
                                 "data^", "data/x", "-data"])
@pytest.mark.usefixtures("history")
def test_malformed_revisions(store: Store, rev: str) -> None:
    with pytest.raises(RevisionError):
        resolve_revision(store, rev)


def test_unknown_name_and_unknown_id(store: Store, history: list[ObjectID]) -> None:
    for rev in ("nosuch", "dat", "data2", "Data", "nosuch~1"):
        with pytest.raises(RevisionError, match=r"nosuch|dat|Data"):
            resolve_revision(store, rev)
    absent = object_id(b"not a snapshot")
    assert absent not in history
    with pytest.raises(RevisionError):
        resolve_revision(store, absent)


@pytest.mark.usefixtures("history")
def test_other_object_types_are_not_revisions(store: Store, tree: ObjectID) -> None:
    blob = raw_to_hex(store.objects.put(OBJ_BLOB, b"some blob"))
    store.objects.flush()
    for oid in (tree, blob):
        with pytest.raises(RevisionError):
            resolve_revision(store, oid)


def test_unflushed_snapshot_is_not_found_by_prefix(store: Store, tree: ObjectID) -> None:
    oid = store.objects.put_snapshot(_snap(tree, "data", message="pending"))
    with pytest.raises(RevisionError):
        resolve_revision(store, oid)
    store.objects.flush()
    assert resolve_revision(store, oid) == oid


def test_name_wins_over_an_id_prefix(store: Store, tree: ObjectID,
                                     history: list[ObjectID]) -> None:
    target = history[0]
    prefix = target[:4]
    # a dataset literally called like the 4-char prefix of another snapshot
    named = commit(store, tree, prefix, "named like a prefix")
    assert named != target
    assert resolve_revision(store, prefix) == named
    assert resolve_revision(store, f"{prefix}~0") == named
    # a longer prefix is no name, so it is an id prefix again
    assert resolve_revision(store, _unique_prefix(store, target, 5)) == target


def test_name_in_both_kinds(store: Store, tree: ObjectID) -> None:
    ds = commit(store, tree, "both", "as dataset")
    assert resolve_revision(store, "both") == ds
    ck = commit(store, tree, "both", "as checkpoint", kind="checkpoint")
    assert ck != ds
    with pytest.raises(AmbiguousRevisionError):
        resolve_revision(store, "both")
    assert resolve_revision(store, ds) == ds
    assert resolve_revision(store, f"both@{ck}") == ck


def test_checkpoint_names_resolve(store: Store, tree: ObjectID) -> None:
    a = commit(store, tree, "run1", "step 1", kind="checkpoint")
    b = commit(store, tree, "run1", "step 2", kind="checkpoint")
    assert resolve_revision(store, "run1") == b
    assert resolve_revision(store, "run1~1") == a


def _colliding_pair(tree: ObjectID, name: str) -> tuple[Snapshot, Snapshot]:
    """Two snapshots of ``name`` whose ids share their first 4 hex characters."""
    seen: dict[str, Snapshot] = {}
    for i in range(20000):
        s = _snap(tree, name, message=f"try {i}")
        oid = object_id(encode_snapshot(s))
        hit = seen.get(oid[:4])
        if hit is not None:
            return hit, s
        seen[oid[:4]] = s
    raise AssertionError("no 4-char collision in 20000 snapshots")


def test_ambiguous_prefix_lists_candidates(store: Store, tree: ObjectID) -> None:
    a, b = _colliding_pair(tree, "data")
    ida, idb = store.objects.put_snapshot(a), store.objects.put_snapshot(b)
    store.objects.flush()
    assert ida != idb
    assert ida[:4] == idb[:4]
    common = 4
    while ida[common] == idb[common]:
        common += 1
    with pytest.raises(AmbiguousRevisionError) as e:
        resolve_revision(store, ida[:4])
    msg = str(e.value)
    assert ida[:12] in msg
    assert idb[:12] in msg
    assert "data" in msg
    assert "\n" not in msg
    with pytest.raises(AmbiguousRevisionError):
        resolve_revision(store, ida[:common])
    with pytest.raises(AmbiguousRevisionError):
        resolve_revision(store, ida[:4] + "~1")
    # one more character tells them apart
    assert resolve_revision(store, ida[: common + 1]) == ida
    assert resolve_revision(store, idb[: common + 1]) == idb
    assert sorted(snapshot_ids_with_prefix(store, ida[:4])) == sorted([ida, idb])


def test_ambiguous_name_at_prefix(store: Store, tree: ObjectID) -> None:
    a, b = _colliding_pair(tree, "data")
    ida, idb = store.objects.put_snapshot(a), store.objects.put_snapshot(b)
    store.objects.flush()
    with pytest.raises(AmbiguousRevisionError) as e:
        resolve_revision(store, f"data@{ida[:4]}")
    assert ida[:12] in str(e.value)
    assert idb[:12] in str(e.value)
    assert resolve_revision(store, f"data@{ida}") == ida


def test_name_at_prefix_ignores_other_names(store: Store, tree: ObjectID) -> None:
    """Snapshots of two names share a prefix: NAME@prefix picks the one of that name."""
    seen: dict[str, Snapshot] = {}
    i = 0
    while True:
        s = _snap(tree, ("data", "solo")[i % 2], message=f"try {i}")
        oid = object_id(encode_snapshot(s))
        hit = seen.get(oid[:4])
        if hit is not None and hit.name != s.name:
            break
        seen.setdefault(oid[:4], s)
        i += 1
    x, y = store.objects.put_snapshot(hit), store.objects.put_snapshot(s)
    store.objects.flush()
    prefix = x[:4]
    assert y[:4] == prefix
    by_name = {hit.name: x, s.name: y}
    assert resolve_revision(store, f"data@{prefix}") == by_name["data"]
    assert resolve_revision(store, f"solo@{prefix}") == by_name["solo"]
    with pytest.raises(AmbiguousRevisionError) as e:
        resolve_revision(store, prefix)
    assert "data" in str(e.value)
    assert "solo" in str(e.value)


def test_ambiguity_only_among_snapshots(store: Store, tree: ObjectID) -> None:
    """A blob sharing a snapshot's prefix does not make that prefix ambiguous."""
    s = _snap(tree, "data", message="the one")
    sid = store.objects.put_snapshot(s)
    i = 0
    while True:
        data = f"blob {i}".encode()
        if object_id(data)[:4] == sid[:4]:
            break
        i += 1
    store.objects.put(OBJ_BLOB, data)
    store.objects.flush()
    assert resolve_revision(store, sid[:4]) == sid
