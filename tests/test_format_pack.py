"""Property and hostile-input tests for pack entry headers, pack walking and pack indexes."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgit.errors import FormatError
from mlgit.format.compression import CODEC_RAW, CODEC_ZSTD, compress
from mlgit.format.ids import RawObjectID, digest_bytes, raw_object_id
from mlgit.format.limits import MAX_PACK_LEN
from mlgit.format.pack import (
    ENTRY_HEADER,
    INDEX_ENTRY,
    INDEX_MAGIC,
    MAX_OBJECT_LEN,
    OBJECT_TYPE_NAMES,
    PACK_MAGIC,
    IndexEntry,
    decode_entry_header,
    decode_index,
    encode_entry_header,
    encode_index,
    iter_pack_entries,
)

_HC = [HealthCheck.too_slow, HealthCheck.data_too_large]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=_HC)
ROUND = settings(max_examples=150, deadline=None, suppress_health_check=_HC)

raw_ids = st.binary(min_size=16, max_size=16).map(RawObjectID)
types = st.sampled_from(sorted(OBJECT_TYPE_NAMES))
lengths = st.one_of(st.integers(0, 4096), st.integers(0, MAX_OBJECT_LEN))
randoms = st.randoms(use_true_random=False)


T = TypeVar("T")


def decode_or_format_error(fn: Callable[..., T], *args: Any) -> T | None:
    try:
        return fn(*args)
    except FormatError:
        return None


def flips(data: bytes, rnd: random.Random) -> list[bytes]:
    out = []
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= rnd.randrange(1, 256)
        out.append(bytes(bad))
    return out


@st.composite
def headers(draw: st.DrawFn) -> tuple[RawObjectID, int, int, int, int]:
    codec = draw(st.sampled_from([CODEC_RAW, CODEC_ZSTD]))
    raw_len = draw(lengths)
    stored_len = raw_len if codec == CODEC_RAW else draw(lengths)
    return draw(raw_ids), draw(types), codec, raw_len, stored_len


@st.composite
def index_entries(draw: st.DrawFn, min_offset: int = len(PACK_MAGIC)) -> IndexEntry:
    oid, type_, codec, raw_len, stored_len = draw(headers())
    # Offsets up to the largest a pack may have (docs/format.md: MAX_PACK_LEN).
    top = MAX_PACK_LEN - ENTRY_HEADER.size - stored_len
    return IndexEntry(oid, draw(st.integers(min_offset, top)), stored_len, raw_len,
                      type_, codec)


indexes = st.lists(index_entries(), unique_by=lambda e: e.oid, max_size=20)


def _with_checksum(body: bytes) -> bytes:
    return body + digest_bytes(body)


def _raw_index(rows: list[tuple[bytes, int, int, int, int, int]], count: int | None = None,
               reserved: int = 0, magic: bytes = INDEX_MAGIC) -> bytes:
    body = struct.pack("<8sII", magic, len(rows) if count is None else count, reserved)
    body += b"".join(INDEX_ENTRY.pack(*r) for r in rows)
    return _with_checksum(body)


def _row(oid: bytes, offset: int = 8, stored: int = 5, raw: int = 5, type_: int = 1,
         codec: int = CODEC_RAW) -> tuple[bytes, int, int, int, int, int]:
    return (oid, offset, stored, raw, type_, codec)


# ---------------------------------------------------------------------------
# entry headers
# ---------------------------------------------------------------------------

@given(headers(), st.binary(max_size=40), st.binary(max_size=10))
@ROUND
def test_entry_header_round_trip(h: tuple[RawObjectID, int, int, int, int], before: bytes,
                                 after: bytes) -> None:
    oid, type_, codec, raw_len, stored_len = h
    enc = encode_entry_header(oid, type_, codec, raw_len, stored_len)
    assert len(enc) == ENTRY_HEADER.size == 26
    assert decode_entry_header(enc) == IndexEntry(oid, 0, stored_len, raw_len, type_, codec)
    e = decode_entry_header(before + enc + after, len(before))
    assert e == IndexEntry(oid, len(before), stored_len, raw_len, type_, codec)
    assert decode_entry_header(memoryview(before + enc), len(before)) == e


@given(st.binary(max_size=60), st.integers(0, 60))
@FUZZ
def test_entry_header_random_bytes(data: bytes, pos: int) -> None:
    e = decode_or_format_error(decode_entry_header, data, pos)
    if e is not None:
        assert e.type in OBJECT_TYPE_NAMES
        assert e.codec in (CODEC_RAW, CODEC_ZSTD)
        assert e.raw_len <= MAX_OBJECT_LEN
        assert e.stored_len <= MAX_OBJECT_LEN
        assert e.offset == pos


@given(headers())
@FUZZ
def test_entry_header_every_truncation(h: tuple[RawObjectID, int, int, int, int]) -> None:
    enc = encode_entry_header(*h)
    for i in range(len(enc)):
        with pytest.raises(FormatError):
            decode_entry_header(enc[:i])
        with pytest.raises(FormatError):
            decode_entry_header(enc, 26 - i + 1)


@given(headers(), randoms)
@FUZZ
def test_entry_header_flipped_bytes(h: tuple[RawObjectID, int, int, int, int],
                                    rnd: random.Random) -> None:
    for bad in flips(encode_entry_header(*h), rnd):
        e = decode_or_format_error(decode_entry_header, bad)
        if e is not None:
            assert encode_entry_header(e.oid, e.type, e.codec, e.raw_len, e.stored_len) == bad


@pytest.mark.parametrize("args", [
    (RawObjectID(b"x" * 15), 1, CODEC_RAW, 1, 1), (RawObjectID(b"x" * 17), 1, CODEC_RAW, 1, 1),
    (RawObjectID(b"x" * 16), 0, CODEC_RAW, 1, 1), (RawObjectID(b"x" * 16), 6, CODEC_RAW, 1, 1),
    (RawObjectID(b"x" * 16), 1, 2, 1, 1), (RawObjectID(b"x" * 16), 1, CODEC_RAW, 1, 2),
    (RawObjectID(b"x" * 16), 1, CODEC_ZSTD, MAX_OBJECT_LEN + 1, 10),
    (RawObjectID(b"x" * 16), 1, CODEC_ZSTD, 10, MAX_OBJECT_LEN + 1),
])
def test_encode_entry_header_rejects(args: tuple[RawObjectID, int, int, int, int]) -> None:
    with pytest.raises(FormatError):
        encode_entry_header(*args)


@pytest.mark.parametrize("fields", [
    (0, CODEC_RAW, 1, 1), (6, CODEC_RAW, 1, 1), (255, CODEC_RAW, 1, 1), (1, 2, 1, 1),
    (1, 255, 1, 1), (1, CODEC_RAW, 1, 2), (1, CODEC_ZSTD, 2**32 - 1, 10),
    (1, CODEC_ZSTD, 10, 2**32 - 1), (1, CODEC_RAW, 2**32 - 1, 2**32 - 1),
])
def test_decode_entry_header_rejects(fields: tuple[int, int, int, int]) -> None:
    with pytest.raises(FormatError):
        decode_entry_header(ENTRY_HEADER.pack(b"i" * 16, *fields))


# ---------------------------------------------------------------------------
# pack walking
# ---------------------------------------------------------------------------

@st.composite
def packs(draw: st.DrawFn) -> tuple[bytes, list[IndexEntry], list[bytes]]:
    objs = draw(st.lists(st.one_of(
        st.binary(max_size=200),
        st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.integers(1, 300)),
    ), max_size=8))
    out = [PACK_MAGIC]
    pos = len(PACK_MAGIC)
    entries = []
    for data in objs:
        codec, stored = compress(data)
        oid = raw_object_id(data)
        type_ = draw(types)
        out.append(encode_entry_header(oid, type_, codec, len(data), len(stored)))
        out.append(stored)
        entries.append(IndexEntry(oid, pos, len(stored), len(data), type_, codec))
        pos += ENTRY_HEADER.size + len(stored)
    return b"".join(out), entries, objs


@given(packs())
@ROUND
def test_iter_pack_entries_walks_every_object(p: tuple[bytes, list[IndexEntry], list[bytes]]
                                              ) -> None:
    data, entries, _ = p
    assert list(iter_pack_entries(data)) == entries
    assert list(iter_pack_entries(memoryview(data))) == entries


def _boundaries(entries: list[IndexEntry], total: int) -> dict[int, int]:
    """Pack length -> number of whole entries a pack cut at that length holds."""
    out = {len(PACK_MAGIC): 0}
    for i, e in enumerate(entries):
        out[e.offset + ENTRY_HEADER.size + e.stored_len] = i + 1
    assert max(out) == total
    return out


@given(packs())
@FUZZ
def test_iter_pack_entries_every_truncation(p: tuple[bytes, list[IndexEntry], list[bytes]]
                                            ) -> None:
    data, entries, _ = p
    cuts = _boundaries(entries, len(data))
    for i in range(len(data)):
        try:
            got = list(iter_pack_entries(data[:i]))
        except FormatError:
            assert i not in cuts
            continue
        # Only a cut exactly between objects leaves a (shorter) valid pack.
        assert i in cuts
        assert got == entries[: cuts[i]]


@given(packs(), randoms)
@FUZZ
def test_iter_pack_entries_flipped_bytes(p: tuple[bytes, list[IndexEntry], list[bytes]],
                                         rnd: random.Random) -> None:
    data, _, _ = p
    for bad in flips(data, rnd):
        got = decode_or_format_error(lambda b: list(iter_pack_entries(b)), bad)
        if got is not None:
            end = len(PACK_MAGIC)
            for e in got:
                assert e.offset == end
                end += ENTRY_HEADER.size + e.stored_len
            assert end == len(bad)


@given(st.binary(max_size=300))
@FUZZ
def test_iter_pack_entries_random_bytes(data: bytes) -> None:
    decode_or_format_error(lambda b: list(iter_pack_entries(b)), data)
    decode_or_format_error(lambda b: list(iter_pack_entries(b)), PACK_MAGIC + data)


@given(packs(), st.binary(min_size=1, max_size=25))
@FUZZ
def test_iter_pack_entries_appended_junk(p: tuple[bytes, list[IndexEntry], list[bytes]],
                                         junk: bytes) -> None:
    # Fewer bytes than an entry header can never be a whole entry.
    with pytest.raises(FormatError):
        list(iter_pack_entries(p[0] + junk))


def test_iter_pack_entries_bad_magic() -> None:
    for head in (b"", b"MLGPACK", b"MLGPACK\x02", b"MLGIDX\x00\x01", b"mlgpack\x01"):
        with pytest.raises(FormatError):
            list(iter_pack_entries(head))
    assert list(iter_pack_entries(PACK_MAGIC)) == []


def test_iter_pack_entries_object_running_past_the_end() -> None:
    head = encode_entry_header(RawObjectID(b"i" * 16), 1, CODEC_RAW, 100, 100)
    with pytest.raises(FormatError):
        list(iter_pack_entries(PACK_MAGIC + head + b"x" * 99))
    assert len(list(iter_pack_entries(PACK_MAGIC + head + b"x" * 100))) == 1


# ---------------------------------------------------------------------------
# indexes
# ---------------------------------------------------------------------------

@given(indexes)
@ROUND
def test_index_round_trip(entries: list[IndexEntry]) -> None:
    data = encode_index(entries)
    assert len(data) == 16 + len(entries) * INDEX_ENTRY.size + 16
    ordered = sorted(entries, key=lambda e: e.oid)
    assert decode_index(data) == ordered
    assert encode_index(decode_index(data)) == data


@given(indexes, randoms)
@ROUND
def test_index_encoding_is_canonical(entries: list[IndexEntry], rnd: random.Random) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert encode_index(shuffled) == encode_index(entries)
    assert encode_index(tuple(reversed(entries))) == encode_index(entries)


@given(indexes)
@ROUND
def test_index_pack_size_bound(entries: list[IndexEntry]) -> None:
    data = encode_index(entries)
    need = max((e.offset + ENTRY_HEADER.size + e.stored_len for e in entries), default=8)
    assert decode_index(data, pack_size=need) == sorted(entries, key=lambda e: e.oid)
    if entries:
        with pytest.raises(FormatError):
            decode_index(data, pack_size=need - 1)


@given(st.lists(index_entries(min_offset=0), unique_by=lambda e: e.oid, max_size=6))
@ROUND
def test_index_encode_accepts_only_what_decode_accepts(entries: list[IndexEntry]) -> None:
    """encode_index must never write an index that decode_index then refuses."""
    try:
        data = encode_index(entries)
    except FormatError:
        return
    assert decode_index(data) == sorted(entries, key=lambda e: e.oid)


def test_index_encode_rejects_duplicates_and_bad_fields() -> None:
    e = IndexEntry(RawObjectID(b"a" * 16), 8, 5, 5, 1, CODEC_RAW)
    with pytest.raises(FormatError):
        encode_index([e, e])
    with pytest.raises(FormatError):
        encode_index([IndexEntry(RawObjectID(b"a" * 16), 8, 5, 5, 1, CODEC_RAW),
                      IndexEntry(RawObjectID(b"a" * 16), 40, 6, 6, 2, CODEC_RAW)])
    for bad in (IndexEntry(RawObjectID(b"b" * 16), 8, 5, 5, 9, CODEC_RAW),
                IndexEntry(RawObjectID(b"b" * 16), 8, 5, 5, 1, 7),
                IndexEntry(RawObjectID(b"b" * 16), 8, 5, 6, 1, CODEC_RAW),
                IndexEntry(RawObjectID(b"b" * 16), 8, 5, MAX_OBJECT_LEN + 1, 1, CODEC_ZSTD)):
        with pytest.raises(FormatError):
            encode_index([e, bad])


@given(st.binary(max_size=300))
@FUZZ
def test_index_random_bytes(data: bytes) -> None:
    decode_or_format_error(decode_index, data)
    decode_or_format_error(decode_index, data, 100)
    decode_or_format_error(decode_index, _with_checksum(INDEX_MAGIC + data))


@given(st.lists(st.tuples(raw_ids, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255)),
                max_size=8),
       st.one_of(st.none(), st.integers(0, 2**32 - 1)), st.one_of(st.none(), st.integers(0, 2**40)))
@FUZZ
def test_index_random_rows_with_valid_checksum(rows: list[tuple[bytes, int, int, int, int, int]],
                                               count: int | None,
                                               pack_size: int | None) -> None:
    """Rows pass the checksum, so every field check is exercised."""
    got = decode_or_format_error(decode_index, _raw_index(rows, count), pack_size)
    if got is not None:
        assert [e.oid for e in got] == sorted({e.oid for e in got})
        for e in got:
            assert e.type in OBJECT_TYPE_NAMES
            assert e.codec in (CODEC_RAW, CODEC_ZSTD)
            assert e.offset >= len(PACK_MAGIC)
            if e.codec == CODEC_RAW:
                assert e.raw_len == e.stored_len
            if pack_size is not None:
                assert e.offset + ENTRY_HEADER.size + e.stored_len <= pack_size


@given(indexes)
@FUZZ
def test_index_every_truncation(entries: list[IndexEntry]) -> None:
    data = encode_index(entries)
    for i in range(len(data)):
        with pytest.raises(FormatError):
            decode_index(data[:i])


@given(indexes, randoms)
@FUZZ
def test_index_flipped_bytes(entries: list[IndexEntry], rnd: random.Random) -> None:
    # The checksum covers everything, so every single-byte change is refused.
    for bad in flips(encode_index(entries), rnd):
        with pytest.raises(FormatError):
            decode_index(bad)


@given(indexes, st.binary(min_size=1, max_size=80))
@FUZZ
def test_index_appended_junk(entries: list[IndexEntry], junk: bytes) -> None:
    with pytest.raises(FormatError):
        decode_index(encode_index(entries) + junk)


def test_index_hostile_rows() -> None:
    a, b = b"a" * 16, b"b" * 16
    assert len(decode_index(_raw_index([_row(a), _row(b, 39)]))) == 2
    cases = [
        _raw_index([_row(b), _row(a, 39)]),                    # unsorted
        _raw_index([_row(a), _row(a, 39)]),                    # duplicate
        _raw_index([_row(a, offset=0)]),                       # inside the pack magic
        _raw_index([_row(a, offset=7)]),
        _raw_index([_row(a, type_=0)]),
        _raw_index([_row(a, type_=9)]),
        _raw_index([_row(a, codec=2)]),
        _raw_index([_row(a, stored=5, raw=6)]),                # raw codec, lengths differ
        _raw_index([_row(a, codec=CODEC_ZSTD, raw=MAX_OBJECT_LEN + 1)]),
        _raw_index([_row(a, codec=CODEC_ZSTD, stored=2**32 - 1)]),
        _raw_index([_row(a)], reserved=1),
        _raw_index([_row(a)], count=2),
        _raw_index([_row(a)], count=0),
        _raw_index([_row(a)], magic=b"MLGIDX\x00\x02"),
        _raw_index([_row(a)], magic=b"MLGPACK\x01"),
    ]
    for data in cases:
        with pytest.raises(FormatError):
            decode_index(data)


def test_index_points_past_its_pack() -> None:
    a = b"a" * 16
    data = _raw_index([_row(a, offset=8, stored=5)])
    assert decode_index(data, pack_size=8 + 26 + 5)[0].offset == 8
    for size in (0, 8, 8 + 26, 8 + 26 + 4):
        with pytest.raises(FormatError):
            decode_index(data, pack_size=size)
    with pytest.raises(FormatError):
        decode_index(_raw_index([_row(a, offset=2**64 - 1)]), pack_size=2**40)


@pytest.mark.parametrize("count", [2**31, 2**32 - 1])
def test_index_count_claiming_huge_numbers(count: int) -> None:
    t = time.monotonic()
    with pytest.raises(FormatError):
        decode_index(_raw_index([_row(b"a" * 16)], count=count))
    assert time.monotonic() - t < 1.0


def test_index_checksum_mismatch() -> None:
    good = encode_index([IndexEntry(RawObjectID(b"a" * 16), 8, 5, 5, 1, CODEC_RAW)])
    with pytest.raises(FormatError):
        decode_index(good[:-16] + bytes(16))
    assert decode_index(good)[0].oid == b"a" * 16


@given(indexes)
@ROUND
def test_index_of_a_real_pack_matches_the_walk(entries: list[IndexEntry]) -> None:
    pack = [PACK_MAGIC]
    pos = len(PACK_MAGIC)
    real = []
    for i, e in enumerate(entries[:5]):
        data = bytes([i]) * (i + 1)
        oid = raw_object_id(data)
        pack.append(encode_entry_header(oid, e.type, CODEC_RAW, len(data), len(data)) + data)
        real.append(IndexEntry(oid, pos, len(data), len(data), e.type, CODEC_RAW))
        pos += ENTRY_HEADER.size + len(data)
    blob = b"".join(pack)
    walked = list(iter_pack_entries(blob))
    assert decode_index(encode_index(walked), pack_size=len(blob)) == sorted(
        real, key=lambda e: e.oid)
