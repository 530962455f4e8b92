"""Object lookup without per-object memory: pack indexes searched in place, and the
multi-pack index (docs/format.md, "Index file" and "Multi-pack index").

A multi-pack index is never trusted for correctness: every hostile or stale one
here leaves every object readable, fsck reports it (``bad-midx``), gc rewrites it.
"""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import pytest
from conftest import fsck_ok, git, run_gitml
from hypothesis import given
from hypothesis import strategies as st

from mlgit.errors import FormatError
from mlgit.format.config import StoreConfig
from mlgit.format.ids import RawObjectID, digest_bytes, raw_to_hex
from mlgit.format.midx import (
    MIDX_FANOUT_LEN,
    MIDX_ROW,
    MidxWriter,
    decode_fanout,
    midx_layout,
    row_bytes,
)
from mlgit.format.pack import (
    INDEX_ENTRY,
    OBJ_BLOB,
    OBJ_SNAPSHOT,
    IndexEntry,
    IndexScan,
    decode_index,
    encode_index,
    pack_stem,
)
from mlgit.store import fsck as fsck_mod
from mlgit.store import gc as gc_mod
from mlgit.store.midx import MIDX_NAME, MIDX_PACK_THRESHOLD, MultiPackIndex, verify
from mlgit.store.packs import PackIndex
from mlgit.store.store import Store

PACK_SIZE = 8 << 10  # a few objects of ~1 KiB per pack: many packs from little data


def _store(tmp: Path, objects: int = 120, seed: int = 1) -> tuple[Path, dict[RawObjectID, bytes]]:
    """A store of ``objects`` random blobs spread over many small packs."""
    root = tmp / "ml"
    s, _ = Store.init(root, StoreConfig(pack_size=PACK_SIZE))
    rng = random.Random(seed)
    data = {}
    for _ in range(objects):
        b = rng.randbytes(rng.randrange(200, 1500))
        data[s.objects.put(OBJ_BLOB, b)] = b
    s.objects.flush()
    s.objects.close()  # not s.close(): no multi-pack index yet
    return root, data


def _packs(root: Path) -> list[str]:
    return sorted(n[:-4] for n in os.listdir(root / "packs") if n.endswith(".idx"))


def _write_midx(root: Path) -> Path:
    s = Store.open(root)
    try:
        assert s.objects.write_midx()
    finally:
        s.objects.close()
    return root / "packs" / MIDX_NAME


def _assert_reads_all(root: Path, data: dict[RawObjectID, bytes], *, exact_has: bool = True
                      ) -> Store:
    s = Store.open(root)
    for oid, b in data.items():
        assert s.objects.get(oid) == b
        e = s.objects.entry(oid)
        assert e is not None
        assert (e.raw_len, e.type) == (len(b), OBJ_BLOB)
        if exact_has:
            assert s.objects.has(oid)
    missing = RawObjectID(b"\xff" * 16)
    assert not s.objects.has(missing)
    assert s.objects.ids() == sorted(data)
    assert s.objects.ids(OBJ_BLOB) == sorted(data)
    assert s.objects.ids(OBJ_SNAPSHOT) == []
    return s


def _fsck_kinds(root: Path) -> list[str]:
    s = Store.open(root)
    try:
        report = fsck_mod.FsckReport()
        fsck_mod.close(fsck_mod.check_objects(s, report))
        return [p.kind for p in report.problems]
    finally:
        s.close()


def _rewrite(path: Path, body: bytes) -> None:
    """Write ``body`` with a correct checksum (so only the damage meant is there)."""
    path.write_bytes(body + digest_bytes(body))


# -- the multi-pack index in use --------------------------------------------------


def test_lookups_use_the_midx_and_open_no_pack_index(tmp_path: Path) -> None:
    root, data = _store(tmp_path)
    assert len(_packs(root)) > MIDX_PACK_THRESHOLD
    _write_midx(root)
    midx = MultiPackIndex(root / "packs" / MIDX_NAME)
    assert midx.rows == len(data)
    assert sorted(midx.stems) == _packs(root)
    s = _assert_reads_all(root, data)
    # Every pack is covered: none had its own index opened, yet every answer was right.
    assert not any(r.indexed for r in s.objects.readers())
    assert _fsck_kinds(root) == []
    s.close()


def test_midx_and_newer_packs_are_searched_together(tmp_path: Path) -> None:
    root, data = _store(tmp_path)
    _write_midx(root)
    s = Store.open(root)
    rng = random.Random(7)
    for _ in range(10):  # packs newer than the multi-pack index
        b = rng.randbytes(3000)
        data[s.objects.put(OBJ_BLOB, b)] = b
    s.objects.flush()
    s.objects.close()
    newer = set(_packs(root)) - set(MultiPackIndex(root / "packs" / MIDX_NAME).stems)
    assert newer
    _assert_reads_all(root, data).close()


def _covers_all_but_a_few(root: Path) -> MultiPackIndex:
    """The multi-pack index is exactly its packs' and leaves at most the threshold out."""
    midx = MultiPackIndex(root / "packs" / MIDX_NAME)
    assert set(midx.stems) <= set(_packs(root))
    assert len(set(_packs(root)) - set(midx.stems)) <= MIDX_PACK_THRESHOLD
    assert verify(midx, [PackIndex(root / "packs" / f"{p}.idx").records()
                         for p in midx.stems]) is None
    return midx


def test_writers_past_the_threshold_rewrite_the_midx(tmp_path: Path) -> None:
    root, data = _store(tmp_path, objects=8)
    s = Store.open(root)
    x = s.objects.put(OBJ_BLOB, b"x" * 100)
    data[x] = b"x" * 100
    s.objects.flush()
    s.close()
    assert not (root / "packs" / MIDX_NAME).exists()  # few packs: not worth one
    s = Store.open(root)
    rng = random.Random(3)
    for _ in range(60):  # one writer, many packs: rewritten as they come and on close
        b = rng.randbytes(1500)
        data[s.objects.put(OBJ_BLOB, b)] = b
    s.close()
    midx = _covers_all_but_a_few(root)
    # The next rewrites copy the rows it has and add only the newer packs'.
    s = Store.open(root)
    for _ in range(60):
        b = rng.randbytes(1500)
        data[s.objects.put(OBJ_BLOB, b)] = b
    s.close()
    midx2 = _covers_all_but_a_few(root)
    assert midx2.stems[:len(midx.stems)] == midx.stems
    assert midx2.rows > midx.rows
    _assert_reads_all(root, data).close()


def test_consolidation_rewrites_it_before_deleting_packs(tmp_path: Path) -> None:
    root, data = _store(tmp_path)
    s = Store.open(root)
    for i in range(4):  # small packs, one object each
        b = bytes([i]) * 100
        data[s.objects.put(OBJ_BLOB, b)] = b
        s.objects.flush()
    s.objects.close()
    _write_midx(root)  # covers the small packs too
    reader = Store.open(root)
    assert reader.objects.get(next(iter(data)))  # loaded: holds the old index and packs
    s = Store.open(root)
    report = gc_mod.consolidate(s, 2)
    assert report.merged_packs == 4
    s.close()
    midx = MultiPackIndex(root / "packs" / MIDX_NAME)
    assert sorted(midx.stems) == _packs(root)
    assert verify(midx, [PackIndex(root / "packs" / f"{p}.idx").records()
                         for p in midx.stems]) is None
    for oid, b in data.items():  # an old reader still reads everything
        assert reader.objects.get(oid) == b
    reader.close()
    _assert_reads_all(root, data).close()


def test_gc_removes_it_when_one_pack_stays(tmp_path: Path) -> None:
    root, _ = _store(tmp_path, objects=30)
    _write_midx(root)
    s = Store.open(root)
    gc_mod.collect(s, lambda: [], prune_before=2**40)  # nothing is live: all goes
    s.close()
    assert not (root / "packs" / MIDX_NAME).exists()
    assert _packs(root) == []


# -- hostile and stale multi-pack indexes ----------------------------------------


def _damage(path: Path, how: str) -> None:  # noqa: C901 - one branch per kind of damage
    data = path.read_bytes()
    body = data[:-16]
    lay = midx_layout(data[:16], len(data))
    row0 = lay.rows_at
    if how == "truncated":
        path.write_bytes(data[:-1])
    elif how == "truncated-to-header":
        path.write_bytes(data[:20])
    elif how == "bad-checksum":
        path.write_bytes(body + bytes(16))
    elif how == "flipped-byte":
        b = bytearray(data)
        b[row0 + 20] ^= 1
        path.write_bytes(bytes(b))
    elif how == "fanout-decreasing":
        b = bytearray(body)
        b[lay.fanout_at + 4 * 100:lay.fanout_at + 4 * 101] = struct.pack("<I", 2**31)
        _rewrite(path, bytes(b))
    elif how == "fanout-shifted":  # monotone, right total, every bucket wrong
        fan = decode_fanout(body[lay.fanout_at:lay.fanout_at + MIDX_FANOUT_LEN], lay.rows)
        shifted = [0] * 4096 + list(fan[:-4096])
        shifted[-1] = lay.rows
        _rewrite(path, body[:lay.fanout_at] + struct.pack(f"<{len(shifted)}I", *shifted))
    elif how == "missing-pack":
        b = bytearray(body)
        b[16:32] = b"\x42" * 16  # the first pack's name: a pack that is not there
        _rewrite(path, bytes(b))
    elif how == "wrong-pack-size":
        b = bytearray(body)
        b[32:40] = struct.pack("<Q", 9999)
        _rewrite(path, bytes(b))
    elif how == "pack-out-of-range":
        b = bytearray(body)
        for i in range(lay.rows):
            b[row0 + i * 38 + 16:row0 + i * 38 + 20] = struct.pack("<I", lay.packs + 5)
        _rewrite(path, bytes(b))
    elif how == "row-past-its-pack":
        b = bytearray(body)
        for i in range(lay.rows):
            b[row0 + i * 38 + 20:row0 + i * 38 + 28] = struct.pack("<Q", 2**40)
        _rewrite(path, bytes(b))
    elif how == "rows-reversed":  # out of order: lookups may miss, never wrongly hit
        rows = [body[row0 + i * 38:row0 + (i + 1) * 38] for i in range(lay.rows)]
        _rewrite(path, body[:row0] + b"".join(reversed(rows)) + body[lay.fanout_at:])
    elif how == "row-dropped":  # a whole, well-formed file that lacks one object
        rows = [body[row0 + i * 38:row0 + (i + 1) * 38] for i in range(lay.rows)]
        w = MidxWriter(list(zip(MultiPackIndex(path).stems, MultiPackIndex(path).sizes,
                                strict=True)))
        path.write_bytes(w.head() + w.add(rows[1:]) + w.finish())
    elif how == "bad-magic":
        _rewrite(path, b"NOTAMIDX" + body[8:])
    elif how == "future-version":
        _rewrite(path, b"MLGMIDX\x02" + body[8:])
    elif how == "huge-pack-count":
        _rewrite(path, body[:8] + struct.pack("<I", 2**31) + body[12:])
    elif how == "reserved":
        _rewrite(path, body[:12] + b"\x01\x00\x00\x00" + body[16:])
    elif how == "symlink":
        real = path.with_name("elsewhere")
        path.rename(real)
        path.symlink_to(real.name)
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "empty":
        path.write_bytes(b"")
    else:  # pragma: no cover
        raise AssertionError(how)


HOSTILE = ["truncated", "truncated-to-header", "bad-checksum", "flipped-byte",
           "fanout-decreasing", "fanout-shifted", "missing-pack", "wrong-pack-size",
           "pack-out-of-range", "row-past-its-pack", "rows-reversed", "row-dropped",
           "bad-magic", "future-version", "huge-pack-count", "reserved", "symlink",
           "directory", "empty"]
# Damage that only a lookup can notice (a well-formed file that is wrong): `has` may
# miss an object; a read never does.
MISSES = {"fanout-shifted", "rows-reversed", "row-dropped"}


@pytest.mark.parametrize("how", HOSTILE)
def test_a_hostile_midx_is_never_trusted(tmp_path: Path, how: str) -> None:
    root, data = _store(tmp_path, objects=60)
    path = _write_midx(root)
    _damage(path, how)
    assert "bad-midx" in _fsck_kinds(root)
    # Every object still reads, from a fresh store and the right bytes.
    _assert_reads_all(root, data, exact_has=how not in MISSES).objects.close()
    assert "bad-midx" in _fsck_kinds(root)
    s = Store.open(root)
    gc_mod.collect(s, lambda: [], prune_before=0.0)  # prunes nothing; rewrites it
    s.close()
    assert _fsck_kinds(root) == []
    midx = MultiPackIndex(root / "packs" / MIDX_NAME)
    assert midx.rows == len(data)
    _assert_reads_all(root, data).close()


@pytest.mark.parametrize("how", ["bad-checksum", "missing-pack", "pack-out-of-range"])
def test_a_reader_that_could_not_use_it_rewrites_it(tmp_path: Path, how: str) -> None:
    root, data = _store(tmp_path, objects=120)
    assert len(_packs(root)) > MIDX_PACK_THRESHOLD
    path = _write_midx(root)
    _damage(path, how)
    _assert_reads_all(root, data).close()  # searched many packs' own indexes: rewrites it
    assert _fsck_kinds(root) == []
    assert MultiPackIndex(path).rows == len(data)


def test_a_midx_that_misses_an_object_is_dropped_by_the_read_that_finds_it(
        tmp_path: Path) -> None:
    root, data = _store(tmp_path, objects=40)
    path = _write_midx(root)
    _damage(path, "row-dropped")
    s = Store.open(root)
    dropped = min(data)
    assert not s.objects.has(dropped)  # the index's word, for a cheap question
    assert s.objects.get(dropped) == data[dropped]  # never for a read
    assert s.objects.has(dropped)  # and it is no longer used
    assert s.objects.midx_problems()
    s.close()


def test_gc_does_not_take_a_lying_midx_word_for_what_exists(tmp_path: Path) -> None:
    """gc marks through lookups: a multi-pack index lacking a live object must not
    make gc think it absent (and so drop what it references)."""
    root, data = _store(tmp_path, objects=40)
    path = _write_midx(root)
    _damage(path, "row-dropped")
    keep = min(data)
    s = Store.open(root)
    report = gc_mod.collect(s, lambda: [(raw_to_hex(keep), "any")], prune_before=2**40)
    s.close()
    assert report.live_objects == 1
    s = Store.open(root)
    assert s.objects.get(keep) == data[keep]
    s.close()


def test_a_pack_removed_behind_a_readers_back(tmp_path: Path) -> None:
    """A stale multi-pack index: it names a pack since deleted (by hand, or an older
    git-ml's gc); a reader that had it open keeps reading through its descriptors."""
    root, data = _store(tmp_path, objects=60)
    path = _write_midx(root)
    victim = MultiPackIndex(path).stems[0]
    before = Store.open(root)
    assert before.objects.get(min(data)) == data[min(data)]
    lost = {e.oid for e in PackIndex(root / "packs" / f"{victim}.idx")}
    (root / "packs" / f"{victim}.idx").unlink()
    (root / "packs" / f"{victim}.pack").unlink()
    for oid, b in data.items():
        assert before.objects.get(oid) == b
    before.close()
    s = _assert_reads_all(root, {o: b for o, b in data.items() if o not in lost})
    for oid in lost:
        assert not s.objects.has(oid)
    s.close()
    assert "bad-midx" in _fsck_kinds(root)


# -- format: the index scan and the multi-pack index bytes -------------------------


def _entries(rng: random.Random, n: int) -> list[IndexEntry]:
    out, pos = [], 8
    for _ in range(n):
        ln = rng.randrange(0, 500)
        codec = rng.choice((0, 1))
        out.append(IndexEntry(RawObjectID(rng.randbytes(16)), pos, ln,
                              ln if codec == 0 else rng.randrange(0, 5000),
                              rng.choice((1, 2, 3, 4, 5)), codec))
        pos += 26 + ln
    return out


def _scan(data: bytes, pack_size: int | None, piece: int) -> str:
    scan = IndexScan(len(data), pack_size)
    for i in range(0, len(data), piece):
        scan.feed(data[i:i + piece])
    stem, ends = scan.finish()
    assert ends[-1] == scan.count
    return stem


@given(st.integers(0, 2**32), st.integers(0, 300), st.integers(1, 4096),
       st.integers(-1, 4000), st.integers(0, 255))
def test_index_scan_accepts_and_refuses_what_decode_index_does(
        seed: int, n: int, piece: int, at: int, xor: int) -> None:
    """The streaming check agrees with the decoder on valid and damaged bytes,
    whatever the pieces it is fed in."""
    rng = random.Random(seed)
    entries = _entries(rng, n)
    data = encode_index(entries)
    size = entries[-1].offset + 26 + entries[-1].stored_len if entries else 8
    if 0 <= at < len(data) and xor:
        b = bytearray(data)
        b[at] ^= xor
        body = bytes(b[:-16])
        data = body + digest_bytes(body) if rng.random() < 0.8 else bytes(b)
    try:
        want: list[IndexEntry] | None = decode_index(data, size)
    except FormatError:
        want = None
    try:
        stem = _scan(data, size, piece)
    except FormatError:
        assert want is None
        return
    assert want is not None
    assert stem == pack_stem(data)


def test_pack_index_finds_every_entry_and_nothing_else(tmp_path: Path) -> None:
    rng = random.Random(5)
    for n in (0, 1, 3, 50, 5000):
        entries = _entries(rng, n)
        data = encode_index(entries)
        p = tmp_path / f"{pack_stem(data)}.idx"
        p.write_bytes(data)
        idx = PackIndex(p, 1 << 40)
        assert len(idx) == n
        assert list(idx) == sorted(entries)
        for e in entries:
            assert idx.find(e.oid) == e
        for _ in range(200):
            assert idx.find(RawObjectID(rng.randbytes(16))) is None
        # An id that occurs inside another entry's bytes, not at its start: no match.
        for e in entries[:20]:
            tail = INDEX_ENTRY.pack(*e)[8:24]
            assert idx.find(RawObjectID(tail)) is None or tail in {x.oid for x in entries}


def test_pack_index_refuses_a_wrong_name_and_a_large_file(tmp_path: Path) -> None:
    data = encode_index(_entries(random.Random(1), 10))
    p = tmp_path / ("pack-" + "0" * 32 + ".idx")
    p.write_bytes(data)
    with pytest.raises(FormatError, match="named by the hash"):
        PackIndex(p)


def test_midx_writer_checks_order_and_pack_numbers() -> None:
    w = MidxWriter([("pack-" + "1" * 32, 100)])
    r1 = row_bytes(0, INDEX_ENTRY.pack(b"\x01" * 16, 8, 1, 1, 4, 0))
    r2 = row_bytes(0, INDEX_ENTRY.pack(b"\x02" * 16, 8, 1, 1, 4, 0))
    with pytest.raises(FormatError, match="sorted"):
        w.add([r2, r1])
    with pytest.raises(FormatError, match="past its table"):
        MidxWriter([("pack-" + "1" * 32, 100)]).add([row_bytes(1, INDEX_ENTRY.pack(
            b"\x01" * 16, 8, 1, 1, 4, 0))])
    with pytest.raises(FormatError, match="once"):
        MidxWriter([("pack-" + "1" * 32, 100)] * 2)
    w = MidxWriter([("pack-" + "1" * 32, 100)])
    data = w.head() + w.add([r1, r2]) + w.finish()
    lay = midx_layout(data[:16], len(data))
    assert (lay.packs, lay.rows) == (1, 2)
    assert len(data) == 16 + 24 + 2 * MIDX_ROW.size + MIDX_FANOUT_LEN + 16
    with pytest.raises(FormatError, match="whole rows"):
        midx_layout(data[:16], len(data) + 1)


# -- as a user runs it -------------------------------------------------------------


def test_cli_add_writes_it_fsck_checks_it_gc_rewrites_it(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init", "--pack-size", "4096", "--chunk-size", "1024")
    rng = random.Random(11)
    data = root / "data"
    data.mkdir()
    for i in range(80):
        (data / f"f{i}.bin").write_bytes(rng.randbytes(2000))
    run_gitml(root, "add", "data")
    midx = root / ".git/ml/packs" / MIDX_NAME
    assert midx.exists()
    fsck_ok(root)
    _damage(midx, "pack-out-of-range")
    p = run_gitml(root, "fsck", "--json", check=False)
    assert p.returncode == 1
    assert [x["kind"] for x in json.loads(p.stdout)["problems"]] == ["bad-midx"]
    p = run_gitml(root, "fsck", check=False)
    assert "bad-midx: " in p.stdout
    # Reads are unharmed meanwhile: a file deleted by hand comes back, every byte.
    want = (data / "f0.bin").read_bytes()
    (data / "f0.bin").unlink()
    run_gitml(root, "checkout", "--force", "data")
    assert (data / "f0.bin").read_bytes() == want
    run_gitml(root, "gc", "--prune", "now")
    fsck_ok(root)
    assert MultiPackIndex(midx).rows > 0


def test_an_object_in_two_packs_has_one_row(tmp_path: Path) -> None:
    root, data = _store(tmp_path, objects=40)
    s = Store.open(root)
    twice = sorted(data)[:5]
    for oid in twice:  # a second copy of each, in a pack of its own (as a repair writes)
        e, stored = s.objects.get_stored(oid)
        s.objects.put_stored(oid, e.type, e.codec, e.raw_len, stored, force=True)
        s.objects.flush()
    s.objects.close()
    midx = MultiPackIndex(_write_midx(root))
    assert midx.rows == len(data)
    assert verify(midx, [PackIndex(root / "packs" / f"{p}.idx").records()
                         for p in midx.stems]) is None
    _assert_reads_all(root, data).close()
    assert _fsck_kinds(root) == []


def test_a_quiet_directory_is_not_listed_again_until_it_changes(tmp_path: Path) -> None:
    """A miss lists packs/ again only if it changed since a listing taken while it was
    quiet; a pack another process commits changes it, so it is seen at once."""
    root, data = _store(tmp_path, objects=20)
    packs = root / "packs"
    old = os.stat(packs).st_mtime - 60
    os.utime(packs, (old, old))  # quiet for a minute
    reader = Store.open(root)
    missing = RawObjectID(b"\x01" * 16)
    assert not reader.objects.has(missing)  # listed once, now known quiet
    writer = Store.open(root)
    new = writer.objects.put(OBJ_BLOB, b"committed by another process")
    writer.objects.flush()
    writer.objects.close()
    assert reader.objects.has(new)  # the commit changed the directory: listed again
    for oid in data:
        assert reader.objects.has(oid)
    reader.close()
