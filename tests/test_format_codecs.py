"""Property and hostile-input tests for the pure codecs in :mod:`mlgit.format`.

Every decoder must round-trip what its encoder writes, and on any other input
raise :class:`mlgit.errors.FormatError` (or a subclass) and nothing else.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlgit.errors import FormatError, PointerError, UnsupportedFormatError
from mlgit.format.chunking import Chunker
from mlgit.format.compression import CODEC_RAW, CODEC_ZSTD, compress, decompress
from mlgit.format.config import FORMAT_VERSION, StoreConfig, decode_config, encode_config
from mlgit.format.ids import (
    HASH_NAME,
    ID_HEX_LEN,
    FileDigest,
    RawObjectID,
    digest_bytes,
    hex_to_raw,
    is_hex_prefix,
    object_id,
    parse_object_id,
    raw_to_hex,
)
from mlgit.format.limits import MAX_FILES, MAX_SNAPSHOT_BYTES, MAX_TIME
from mlgit.format.names import MAX_ENTRY_NAME, check_entry_name, check_ref_name, is_ref_name
from mlgit.format.paths import is_git_dir_name
from mlgit.format.pointer import Pointer, decode_pointer, encode_pointer
from mlgit.format.snapshot import (
    KIND_CHECKPOINT,
    KIND_DATASET,
    ROOT_DIR,
    ROOT_FILE,
    SNAPSHOT_MAGIC,
    Snapshot,
    decode_snapshot,
    encode_snapshot,
)
from mlgit.format.tree import (
    MAX_CHUNK_LEN,
    TREE_MAGIC,
    TYPE_DIR,
    TYPE_FILE,
    TYPE_SYMLINK,
    TreeEntry,
    decode_tree,
    encode_tree,
)

T = TypeVar("T")

_HC = [HealthCheck.too_slow, HealthCheck.data_too_large]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=_HC)
ROUND = settings(max_examples=150, deadline=None, suppress_health_check=_HC)
# Tree strategies are expensive to generate; fewer examples still cover the space.
TREES = settings(max_examples=100, deadline=None, suppress_health_check=_HC)
# Tests that try every offset of an encoding.
EVERY = settings(max_examples=100, deadline=None, suppress_health_check=_HC)


def decode_or_format_error(decode: Callable[[bytes], T], data: bytes) -> T | None:
    """Run a decoder; FormatError is an accepted outcome, any other exception fails the test."""
    try:
        return decode(data)
    except FormatError:
        return None


def truncations(data: bytes) -> list[bytes]:
    return [data[:i] for i in range(len(data))]


def flips(data: bytes, rnd: random.Random) -> list[bytes]:
    """``data`` with one byte changed, for every position (random non-zero xor each)."""
    out = []
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= rnd.randrange(1, 256)
        out.append(bytes(bad))
    return out


randoms = st.randoms(use_true_random=False)


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

raw_ids = st.binary(min_size=16, max_size=16).map(RawObjectID)
hex_ids = raw_ids.map(raw_to_hex)
file_digests = st.binary(min_size=16, max_size=16).map(FileDigest)


def _valid_entry_name(name: bytes) -> bool:
    return name not in (b".", b"..") and not is_git_dir_name(name)


def _clean_name(b: bytes) -> bytes:
    return b.replace(b"/", b"_").replace(b"\0", b"_")


_odd_names = st.sampled_from([b"...", b".gitx", b"git", b".g", b"a.git", b"\xff", b"-", b"\x01",
                              b".git.", b"..a", b" ", b"\\"])
short_names = st.one_of(st.binary(min_size=1, max_size=12).map(_clean_name),
                        _odd_names).filter(_valid_entry_name)
entry_names = st.one_of(
    short_names,
    st.binary(min_size=200, max_size=MAX_ENTRY_NAME).map(_clean_name),
).filter(_valid_entry_name)

chunk_lens = st.one_of(st.integers(1, 1 << 16), st.integers(1, MAX_CHUNK_LEN))


@st.composite
def file_entries(draw: st.DrawFn, name: bytes) -> TreeEntry:
    chunks = tuple(draw(st.lists(st.tuples(raw_ids, chunk_lens), max_size=6)))
    return TreeEntry(name, TYPE_FILE, size=sum(n for _, n in chunks),
                     executable=draw(st.booleans()), digest=draw(file_digests), chunks=chunks)


@st.composite
def symlink_entries(draw: st.DrawFn, name: bytes, long: bool = True) -> TreeEntry:
    targets = st.binary(min_size=1, max_size=64)
    if long:
        targets = st.one_of(targets, st.binary(min_size=4000, max_size=4096))
    target = draw(targets.map(lambda b: b.replace(b"\0", b"x")))
    return TreeEntry(name, TYPE_SYMLINK, size=len(target), target=target)


@st.composite
def dir_entries(draw: st.DrawFn, name: bytes) -> TreeEntry:
    return TreeEntry(name, TYPE_DIR, size=draw(st.integers(0, 2**64 - 1)),
                     subtree=draw(raw_ids), files=draw(st.integers(0, 2**64 - 1)))


def tree_entry(name: bytes, long: bool = True) -> st.SearchStrategy[TreeEntry]:
    return st.one_of(file_entries(name), symlink_entries(name, long), dir_entries(name))


trees = st.lists(entry_names, unique=True, max_size=10).flatmap(
    lambda names: st.tuples(*[tree_entry(n) for n in names]).map(list)
)
# Small trees for the tests that try every offset of the encoding.
small_trees = st.lists(short_names, unique=True, max_size=6).flatmap(
    lambda names: st.tuples(*[tree_entry(n, long=False) for n in names]).map(list)
)

ref_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True).filter(is_ref_name)
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)


# Snapshot strings are plain JSON (no lone surrogates); an author and a message are printed
# as they are, so they hold no control characters (a message may span lines).
plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
shown_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40)
message_text = st.text(st.one_of(st.characters(exclude_categories=("Cs", "Cc")),
                                 st.sampled_from("\t\n\r")), max_size=40)
plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False), plain_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(plain_text, inner, max_size=4)),
    max_leaves=12,
)
_CKPT_KEYS = {"step", "metrics", "config", "code", "datasets", "source", "path"}
finite = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False,
                                                            allow_infinity=False))
hexes = st.text("0123456789abcdef", min_size=4, max_size=64)
checkpoint_metas = st.fixed_dictionaries({}, optional={
    "step": st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    "metrics": st.dictionaries(shown_text, finite, max_size=3),
    "config": st.lists(st.fixed_dictionaries(
        {"name": shown_text, "id": hex_ids, "size": st.integers(0, 2**40)}), max_size=2),
    "code": st.fixed_dictionaries({"commit": st.one_of(st.none(), hexes),
                                   "branch": st.one_of(st.none(), shown_text),
                                   "dirty": st.booleans(),
                                   "diff": st.one_of(st.none(), hexes)}),
    "datasets": st.lists(st.fixed_dictionaries({"name": shown_text, "id": hex_ids},
                                               optional={"path": shown_text}), max_size=2),
    "source": st.fixed_dictionaries({"type": st.sampled_from(["file", "dir", "tf-prefix"]),
                                     "path": shown_text}, optional={"prefix": shown_text}),
})


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    kind = draw(st.sampled_from([KIND_DATASET, KIND_CHECKPOINT]))
    meta = draw(st.dictionaries(plain_text.filter(lambda k: k not in _CKPT_KEYS), plain_values,
                                max_size=5))
    if kind == KIND_CHECKPOINT:
        meta.update(draw(checkpoint_metas))
    elif draw(st.booleans()):
        meta["path"] = draw(plain_text)
    return Snapshot(
        kind=kind,
        name=draw(ref_names),
        tree=draw(hex_ids),
        root=draw(st.sampled_from([ROOT_DIR, ROOT_FILE])),
        parents=tuple(draw(st.lists(hex_ids, max_size=4))),
        time=draw(st.integers(0, MAX_TIME)),
        tz=draw(st.integers(-24 * 60, 24 * 60)),
        author=draw(shown_text),
        message=draw(message_text),
        files=draw(st.integers(0, MAX_FILES)),
        bytes=draw(st.integers(0, MAX_SNAPSHOT_BYTES)),
        meta=meta,
    )


pointers = st.builds(Pointer, kind=st.sampled_from([KIND_DATASET, KIND_CHECKPOINT]),
                     name=ref_names, id=hex_ids)


@st.composite
def configs(draw: st.DrawFn) -> StoreConfig:
    # Within the ranges the chunker (pyfastcdc) can actually use.
    lo = draw(st.integers(64, 1 << 20))
    avg = draw(st.integers(max(lo, 256), 4 << 20))
    hi = draw(st.integers(max(avg, 1024), 16 << 20))
    return StoreConfig(chunk_min=lo, chunk_avg=avg, chunk_max=hi,
                       pack_size=draw(st.integers(1024, 1 << 32)))


# ---------------------------------------------------------------------------
# ids and names
# ---------------------------------------------------------------------------

@given(st.binary(max_size=200))
@ROUND
def test_object_id_is_hex_of_digest(data: bytes) -> None:
    oid = object_id(data)
    assert oid == digest_bytes(data).hex()
    assert parse_object_id(oid) == oid
    assert hex_to_raw(oid) == digest_bytes(data)
    assert raw_to_hex(RawObjectID(digest_bytes(data))) == oid


@given(st.binary(max_size=40))
@ROUND
def test_raw_to_hex_rejects_wrong_lengths(raw: bytes) -> None:
    if len(raw) == 16:
        assert raw_to_hex(RawObjectID(raw)) == raw.hex()
    else:
        with pytest.raises(FormatError):
            raw_to_hex(RawObjectID(raw))


@given(st.text(max_size=40))
@ROUND
def test_parse_object_id_only_accepts_32_lowercase_hex(text: str) -> None:
    ok = len(text) == 32 and all(c in "0123456789abcdef" for c in text)
    if ok:
        assert parse_object_id(text) == text
    else:
        with pytest.raises(FormatError):
            parse_object_id(text)
        with pytest.raises(FormatError):
            hex_to_raw(text)


@pytest.mark.parametrize("text", ["ABCDEF0123456789ABCDEF0123456789", "0" * 31, "0" * 33,
                                  "g" * 32, " " + "0" * 31, "0" * 32 + "\n",
                                  "\uff10" * 32])
def test_parse_object_id_hostile(text: str) -> None:
    with pytest.raises(FormatError):
        parse_object_id(text)


@given(st.text(max_size=40))
@ROUND
def test_is_hex_prefix(text: str) -> None:
    expect = 4 <= len(text) <= ID_HEX_LEN and all(c in "0123456789abcdef" for c in text)
    assert is_hex_prefix(text) is expect


@given(st.text(max_size=140))
@ROUND
def test_ref_names(name: str) -> None:
    ok = is_ref_name(name)
    if ok:
        assert check_ref_name(name) == name
        assert 1 <= len(name) <= 128
        assert name[0].isascii()
        assert name[0].isalnum()
        assert not any(c in name for c in "~@/\\: \n\0^")
        assert ".." not in name
        assert not name.endswith(".lock")
    else:
        with pytest.raises(FormatError):
            check_ref_name(name)


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "_x", "a~1", "a@b", "a/b", "a..b",
                                  "x.lock", "a b", "ä", "a" * 129, "a\n"])
def test_ref_name_hostile(name: str) -> None:
    assert not is_ref_name(name)
    with pytest.raises(FormatError):
        check_ref_name(name)


@pytest.mark.parametrize("name", ["a", "A1", "data-v2.0_x", "1", "a" * 128, "x.locked"])
def test_ref_name_accepted(name: str) -> None:
    assert check_ref_name(name) == name


@pytest.mark.parametrize("name", [b"", b".", b"..", b".git", b".GIT", b".Git", b".gIT", b"a/b",
                                  b"/", b"a\0b", b"\0", b"x" * (MAX_ENTRY_NAME + 1),
                                  b".git ", b".Git. ", b"git~1", b"GIT~1",
                                  b".git::$INDEX_ALLOCATION", b"a\\.git", b".g\xe2\x80\x8cit",
                                  b"\xef\xbb\xbf.git"])
def test_check_entry_name_hostile(name: bytes) -> None:
    with pytest.raises(FormatError):
        check_entry_name(name)


@given(entry_names)
@ROUND
def test_check_entry_name_accepts_generated(name: bytes) -> None:
    assert check_entry_name(name) == name


# ---------------------------------------------------------------------------
# trees
# ---------------------------------------------------------------------------

@given(trees)
@TREES
def test_tree_round_trip(entries: list[TreeEntry]) -> None:
    data = encode_tree(entries)
    assert data.startswith(TREE_MAGIC)
    decoded = decode_tree(data)
    assert decoded == sorted(entries, key=lambda e: e.name)
    assert encode_tree(decoded) == data


@given(trees, st.randoms(use_true_random=False))
@TREES
def test_tree_encoding_is_canonical(entries: list[TreeEntry], rnd: random.Random) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert encode_tree(shuffled) == encode_tree(entries)
    assert encode_tree(reversed(entries)) == encode_tree(entries)
    assert encode_tree(iter(entries)) == encode_tree(entries)


def test_empty_tree() -> None:
    data = encode_tree([])
    assert data == TREE_MAGIC + struct.pack("<I", 0)
    assert decode_tree(data) == []


@given(st.binary(max_size=300))
@FUZZ
def test_tree_decode_random_bytes(data: bytes) -> None:
    decode_or_format_error(decode_tree, data)
    decode_or_format_error(decode_tree, TREE_MAGIC + data)


@given(small_trees)
@TREES
def test_tree_decode_every_truncation(entries: list[TreeEntry]) -> None:
    data = encode_tree(entries)
    for cut in truncations(data):
        with pytest.raises(FormatError):
            decode_tree(cut)


def test_tree_decode_truncations_of_magic() -> None:
    for cut in truncations(TREE_MAGIC + b"\0\0\0\0"):
        with pytest.raises(FormatError):
            decode_tree(cut)


@given(small_trees, randoms)
@TREES
def test_tree_decode_flipped_bytes(entries: list[TreeEntry], rnd: random.Random) -> None:
    for bad in flips(encode_tree(entries), rnd):
        out = decode_or_format_error(decode_tree, bad)
        if out is not None:
            # A flip may yield another valid tree; then it must be canonical.
            assert encode_tree(out) == bad


@given(trees, st.binary(min_size=1, max_size=40))
@TREES
def test_tree_decode_appended_junk(entries: list[TreeEntry], junk: bytes) -> None:
    with pytest.raises(FormatError):
        decode_tree(encode_tree(entries) + junk)


# hand-built tree bytes, bypassing encode_tree's checks ---------------------

def _raw_file(name: bytes, size: int, chunks: list[tuple[bytes, int]], flags: int = 0,
              nchunks: int | None = None) -> bytes:
    out = struct.pack("<H", len(name)) + name + struct.pack("<BBQ", TYPE_FILE, flags, size)
    out += b"D" * 16 + struct.pack("<I", len(chunks) if nchunks is None else nchunks)
    for cid, n in chunks:
        out += cid + struct.pack("<I", n)
    return out


def _raw_symlink(name: bytes, target: bytes, flags: int = 0, size: int | None = None) -> bytes:
    return (struct.pack("<H", len(name)) + name
            + struct.pack("<BBQ", TYPE_SYMLINK, flags, len(target) if size is None else size)
            + target)


def _raw_dir(name: bytes, flags: int = 0, etype: int = TYPE_DIR) -> bytes:
    return (struct.pack("<H", len(name)) + name + struct.pack("<BBQ", etype, flags, 10)
            + b"S" * 16 + struct.pack("<Q", 3))


SUBTREE = RawObjectID(b"S" * 16)
DIGEST = FileDigest(b"D" * 16)


def _raw_tree(*entries: bytes, count: int | None = None) -> bytes:
    n = len(entries) if count is None else count
    return TREE_MAGIC + struct.pack("<I", n) + b"".join(entries)


def test_raw_tree_builder_matches_encoder() -> None:
    """The hand builder used below writes exactly what encode_tree writes."""
    cid = RawObjectID(b"C" * 16)
    good = _raw_tree(_raw_dir(b"a"), _raw_file(b"b", 7, [(cid, 3), (cid, 4)], flags=1),
                     _raw_symlink(b"c", b"target"))
    expect = encode_tree([
        TreeEntry(b"c", TYPE_SYMLINK, 6, target=b"target"),
        TreeEntry(b"a", TYPE_DIR, 10, subtree=SUBTREE, files=3),
        TreeEntry(b"b", TYPE_FILE, 7, True, DIGEST, ((cid, 3), (cid, 4))),
    ])
    assert good == expect
    assert [e.name for e in decode_tree(good)] == [b"a", b"b", b"c"]


BAD_NAMES = [b"..", b".", b".git", b".GIT", b".gIt", b"a/b", b"/", b"a\0b", b"",
             b"n" * (MAX_ENTRY_NAME + 1)]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("kind", ["file", "symlink", "dir"])
def test_tree_hostile_names_rejected_by_decode(name: bytes, kind: str) -> None:
    entry = {"file": _raw_file(name, 0, []), "symlink": _raw_symlink(name, b"t"),
             "dir": _raw_dir(name)}[kind]
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(entry))
    # also when hidden behind a valid first entry
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"\x01"), entry))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_tree_hostile_names_rejected_by_encode(name: bytes) -> None:
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(name, TYPE_DIR, subtree=SUBTREE)])
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(name, TYPE_SYMLINK, target=b"t")])
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(name, TYPE_FILE, 0, digest=DIGEST)])


def test_tree_duplicate_names() -> None:
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"a"), _raw_dir(b"a")))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"a"), _raw_symlink(b"a", b"x")))
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"a", TYPE_DIR, subtree=SUBTREE),
                     TreeEntry(b"a", TYPE_SYMLINK, target=b"x")])


def test_tree_unsorted_entries() -> None:
    assert len(decode_tree(_raw_tree(_raw_dir(b"a"), _raw_dir(b"b")))) == 2
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"b"), _raw_dir(b"a")))
    # byte order, not case-insensitive or locale order
    assert len(decode_tree(_raw_tree(_raw_dir(b"B"), _raw_dir(b"a")))) == 2
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"a"), _raw_dir(b"B")))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"ab"), _raw_dir(b"a")))


def test_tree_chunk_lengths_must_sum_to_size() -> None:
    cid = RawObjectID(b"C" * 16)
    assert decode_tree(_raw_tree(_raw_file(b"f", 5, [(cid, 2), (cid, 3)])))[0].size == 5
    for size in (0, 4, 6, 2**64 - 1):
        with pytest.raises(FormatError):
            decode_tree(_raw_tree(_raw_file(b"f", size, [(cid, 2), (cid, 3)])))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_file(b"f", 1, [])))
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"f", TYPE_FILE, 6, digest=DIGEST,
                               chunks=((cid, 2), (cid, 3)))])
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"f", TYPE_FILE, 1, digest=DIGEST)])


def test_tree_bad_chunk_lengths() -> None:
    cid = RawObjectID(b"C" * 16)
    for n in (0, MAX_CHUNK_LEN + 1, 2**32 - 1):
        with pytest.raises(FormatError):
            decode_tree(_raw_tree(_raw_file(b"f", n, [(cid, n)])))
        with pytest.raises(FormatError):
            encode_tree([TreeEntry(b"f", TYPE_FILE, n, digest=DIGEST, chunks=((cid, n),))])


def test_tree_encode_rejects_bad_ids() -> None:
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"f", TYPE_FILE, 0, digest=FileDigest(b"D" * 15))])
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"f", TYPE_FILE, 1, digest=DIGEST,
                               chunks=((RawObjectID(b"C" * 17), 1),))])
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"d", TYPE_DIR, subtree=RawObjectID(b""))])
    with pytest.raises(FormatError):
        encode_tree([TreeEntry(b"x", 9)])


@pytest.mark.parametrize("count", [2, 1000, 2**31, 2**32 - 1])
def test_tree_count_claiming_more_entries_than_present(count: int) -> None:
    data = _raw_tree(_raw_dir(b"a"), count=count)
    t = time.monotonic()
    with pytest.raises(FormatError):
        decode_tree(data)
    assert time.monotonic() - t < 1.0


def test_tree_count_claiming_fewer_entries_than_present() -> None:
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"a"), _raw_dir(b"b"), count=1))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"a"), count=0))


@pytest.mark.parametrize("nchunks", [1, 2, 1000, 2**31, 2**32 - 1])
def test_tree_nchunks_claiming_huge_numbers(nchunks: int) -> None:
    data = _raw_tree(_raw_file(b"f", 0, [], nchunks=nchunks))
    tracemalloc.start()
    try:
        t = time.monotonic()
        with pytest.raises(FormatError):
            decode_tree(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t < 1.0
    assert peak < 1 << 20


@pytest.mark.parametrize("size", [0, 2, 4097, 2**32, 2**63, 2**64 - 1])
def test_tree_symlink_size_mismatch_or_out_of_range(size: int) -> None:
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_symlink(b"l", b"x", size=size)))


def test_tree_bad_symlink_targets() -> None:
    for target in (b"", b"a\0b", b"t" * 4097):
        with pytest.raises(FormatError):
            decode_tree(_raw_tree(_raw_symlink(b"l", target)))
        with pytest.raises(FormatError):
            encode_tree([TreeEntry(b"l", TYPE_SYMLINK, target=target)])
    assert decode_tree(_raw_tree(_raw_symlink(b"l", b"t" * 4096)))[0].target == b"t" * 4096


@pytest.mark.parametrize("etype", [0, 4, 5, 0x80, 255])
def test_tree_unknown_entry_type(etype: int) -> None:
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"a", etype=etype)))


def test_tree_unknown_flags() -> None:
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_file(b"f", 0, [], flags=2)))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_file(b"f", 0, [], flags=0x81)))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_symlink(b"l", b"t", flags=1)))
    with pytest.raises(FormatError):
        decode_tree(_raw_tree(_raw_dir(b"d", flags=1)))
    assert decode_tree(_raw_tree(_raw_file(b"f", 0, [], flags=1)))[0].executable is True


@pytest.mark.parametrize("head", [b"", b"MLG", b"MLGTREE", b"MLGTREE\x02", b"MLGTREE\x00",
                                  b"MLGTRE\x01\x01", b"mlgtree\x01", SNAPSHOT_MAGIC])
def test_tree_bad_magic(head: bytes) -> None:
    with pytest.raises(FormatError):
        decode_tree(head + b"\0\0\0\0")
    with pytest.raises(FormatError):
        decode_tree(head)


def test_tree_magic_alone() -> None:
    """``MLGTREE`` without its version byte: must be FormatError, not IndexError."""
    with pytest.raises(FormatError):
        decode_tree(b"MLGTREE")


# ---------------------------------------------------------------------------
# snapshots
# ---------------------------------------------------------------------------

def _snap(**kw: Any) -> Snapshot:
    base: dict[str, Any] = dict(kind=KIND_DATASET, name="data", tree=object_id(b"t"),
                                root=ROOT_DIR, parents=(), time=1_700_000_000, tz=60,
                                author="A <a@x>", message="m", files=1, bytes=2, meta={})
    base.update(kw)
    return Snapshot(**base)


@given(snapshots())
@ROUND
def test_snapshot_round_trip(s: Snapshot) -> None:
    data = encode_snapshot(s)
    assert data.startswith(SNAPSHOT_MAGIC)
    d = decode_snapshot(data)
    assert d == s
    assert encode_snapshot(d) == data
    assert object_id(encode_snapshot(d)) == object_id(data)


@given(snapshots())
@ROUND
def test_snapshot_encoding_ignores_meta_insertion_order(s: Snapshot) -> None:
    flipped = replace(s, meta=dict(reversed(list(s.meta.items()))))
    assert encode_snapshot(flipped) == encode_snapshot(s)


@given(snapshots(), st.binary(max_size=300))
@FUZZ
def test_snapshot_decode_random_bytes(s: Snapshot, data: bytes) -> None:
    decode_or_format_error(decode_snapshot, data)
    decode_or_format_error(decode_snapshot, SNAPSHOT_MAGIC + data)
    body = encode_snapshot(s)
    decode_or_format_error(decode_snapshot, body[: len(body) // 2] + data)


@given(snapshots())
@EVERY
def test_snapshot_decode_every_truncation(s: Snapshot) -> None:
    data = encode_snapshot(s)
    for cut in truncations(data):
        with pytest.raises(FormatError):
            decode_snapshot(cut)


@given(snapshots(), randoms)
@EVERY
def test_snapshot_decode_flipped_bytes(s: Snapshot, rnd: random.Random) -> None:
    for bad in flips(encode_snapshot(s), rnd):
        out = decode_or_format_error(decode_snapshot, bad)
        if out is not None:
            assert encode_snapshot(out) == bad


@given(snapshots(), st.binary(min_size=1, max_size=20))
@FUZZ
def test_snapshot_decode_appended_junk(s: Snapshot, junk: bytes) -> None:
    with pytest.raises(FormatError):
        decode_snapshot(encode_snapshot(s) + junk)


def _body(s: Snapshot) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode_snapshot(s)[8:])
    return body


def _raw_snapshot(obj: Any) -> bytes:
    return SNAPSHOT_MAGIC + json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(("field", "value"), [
    ("kind", "model"), ("kind", None), ("kind", ["dataset"]), ("name", ""), ("name", "a/b"),
    ("name", 5), ("name", "x~1"), ("tree", "00"), ("tree", None), ("tree", "A" * 32),
    ("root", "tree"), ("root", {}), ("parents", "0" * 32), ("parents", ["zz"]),
    ("parents", [5]), ("parents", ["0" * 32] * 65), ("parents", {"a": 1}), ("time", 1.5),
    ("time", True), ("time", "1"), ("tz", 24 * 60 + 1), ("tz", -24 * 60 - 1), ("tz", None),
    ("files", -1), ("bytes", -1), ("files", False), ("author", 3), ("message", None),
    ("meta", []), ("meta", None), ("meta", "x"),
    ("time", -1), ("time", MAX_TIME + 1), ("time", 10**20), ("files", MAX_FILES + 1),
    ("bytes", MAX_SNAPSHOT_BYTES + 1), ("bytes", 10**400), ("author", "a\nb"),
    ("author", "a\x1b[2J"), ("message", "\x1b]0;pwned\x07"), ("message", "\x9b31m"),
    ("meta", {"path": 5}), ("meta", {"x": "\ud800"}),
    ("meta", {"x": json.loads("[" * 40 + "]" * 40)}),
])
def test_snapshot_invalid_fields(field: str, value: Any) -> None:
    obj = _body(_snap())
    obj[field] = value
    with pytest.raises(FormatError):
        decode_snapshot(_raw_snapshot(obj))
    s = _snap()
    if field == "parents" and isinstance(value, list):
        value = tuple(value)
    with pytest.raises(FormatError):
        encode_snapshot(replace(s, **{field: value}))


def test_snapshot_missing_and_unknown_keys() -> None:
    obj = _body(_snap())
    for key in list(obj):
        partial = dict(obj)
        del partial[key]
        with pytest.raises(FormatError):
            decode_snapshot(_raw_snapshot(partial))
    with pytest.raises(FormatError):
        decode_snapshot(_raw_snapshot({**obj, "id": "x"}))
    for other in ([obj], "x", 5, None):
        with pytest.raises(FormatError):
            decode_snapshot(_raw_snapshot(other))


def test_snapshot_non_canonical_json_is_rejected() -> None:
    s = _snap(meta={"b": 1, "a": [1, 2]})
    obj = _body(s)
    assert decode_snapshot(_raw_snapshot(obj)) == s
    variants = [
        SNAPSHOT_MAGIC + json.dumps(obj, sort_keys=True).encode(),  # spaces
        encode_snapshot(s) + b" ",  # trailing whitespace
        SNAPSHOT_MAGIC + json.dumps(dict(reversed(list(obj.items()))),
                                    separators=(",", ":")).encode(),  # key order
        encode_snapshot(s).replace(b'"time":1700000000', b'"time":1.7e9'),
        encode_snapshot(s).replace(b'"m"', b'"\\u006d"'),
        encode_snapshot(s).replace(b'"files":1', b'"files":1,"files":1'),
    ]
    for v in variants:
        assert v != encode_snapshot(s)
        with pytest.raises(FormatError):
            decode_snapshot(v)


def test_snapshot_non_ascii_body_is_rejected() -> None:
    good = encode_snapshot(_snap(message="é"))
    assert b"\\u00e9" in good
    with pytest.raises(FormatError):
        decode_snapshot(good.replace(b"\\u00e9", "é".encode()))
    with pytest.raises(FormatError):
        decode_snapshot(good.replace(b"\\u00e9", b"\xff"))


@pytest.mark.parametrize("head", [b"", b"MLGSNAP", b"MLGSNAP\x02", b"MLGSNAP\x00", TREE_MAGIC,
                                  b"mlgsnap\x01"])
def test_snapshot_bad_magic(head: bytes) -> None:
    body = encode_snapshot(_snap())[8:]
    with pytest.raises(FormatError):
        decode_snapshot(head + body)
    with pytest.raises(FormatError):
        decode_snapshot(head)


@pytest.mark.parametrize("body", [
    b"[" * 100_000,
    b"{\"a\":" * 100_000,
])
def test_snapshot_deeply_nested_json_is_format_error(body: bytes) -> None:
    with pytest.raises(FormatError):
        decode_snapshot(SNAPSHOT_MAGIC + body)


def test_snapshot_deeply_nested_meta_is_format_error() -> None:
    enc = encode_snapshot(_snap())
    deep = b'"meta":{"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with pytest.raises(FormatError):
        decode_snapshot(enc.replace(b'"meta":{}', deep))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_snapshot_non_finite_numbers_are_format_error(literal: bytes) -> None:
    enc = encode_snapshot(_snap())
    with pytest.raises(FormatError):
        decode_snapshot(enc.replace(b'"meta":{}', b'"meta":{"x":' + literal + b"}"))
    with pytest.raises(FormatError):
        decode_snapshot(enc.replace(b'"time":1700000000', b'"time":' + literal))


def test_snapshot_encode_rejects_non_json_meta() -> None:
    for meta in ({"x": float("nan")}, {"x": object()}, {"x": b"bytes"}, {"x": {1, 2}}):
        with pytest.raises(FormatError):
            encode_snapshot(_snap(meta=meta))


# ---------------------------------------------------------------------------
# pointers
# ---------------------------------------------------------------------------

@given(pointers)
@ROUND
def test_pointer_round_trip(p: Pointer) -> None:
    data = encode_pointer(p)
    assert data.decode("utf-8").endswith("\n")
    assert decode_pointer(data) == p
    assert encode_pointer(decode_pointer(data)) == data


@given(pointers, st.randoms(use_true_random=False))
@ROUND
def test_pointer_tolerates_crlf_comments_blank_lines_and_order(p: Pointer,
                                                               rnd: random.Random) -> None:
    lines = [ln for ln in encode_pointer(p).decode().splitlines() if not ln.startswith("#")]
    rnd.shuffle(lines)
    lines.insert(rnd.randrange(len(lines) + 1), "")
    lines.insert(rnd.randrange(len(lines) + 1), "# a comment: with a colon")
    text = "\r\n".join("  " + ln + " " for ln in lines)
    assert decode_pointer(text.encode()) == p


@given(st.binary(max_size=300))
@FUZZ
def test_pointer_decode_random_bytes(data: bytes) -> None:
    with contextlib.suppress(PointerError):
        decode_pointer(data)


@given(pointers)
@FUZZ
def test_pointer_decode_every_truncation(p: Pointer) -> None:
    data = encode_pointer(p)
    for cut in truncations(data):
        try:
            got = decode_pointer(cut)
        except PointerError:
            continue
        # Cutting only the final newline leaves the same pointer.
        assert cut == data[:-1]
        assert got == p


@given(pointers, randoms)
@EVERY
def test_pointer_decode_flipped_bytes(p: Pointer, rnd: random.Random) -> None:
    for bad in flips(encode_pointer(p), rnd):
        try:
            got = decode_pointer(bad)
        except PointerError:
            continue
        assert isinstance(got, Pointer)
        assert is_ref_name(got.name)
        assert parse_object_id(got.id) == got.id
        assert got.kind in (KIND_DATASET, KIND_CHECKPOINT)


@given(pointers, st.binary(min_size=1, max_size=50))
@FUZZ
def test_pointer_decode_appended_junk(p: Pointer, junk: bytes) -> None:
    try:
        got = decode_pointer(encode_pointer(p) + junk)
    except PointerError:
        return
    assert got == p  # only whitespace, blank lines or comments can be appended


def test_pointer_hostile() -> None:
    oid = object_id(b"x")
    good = f"mlgit-pointer: 1\nkind: dataset\nname: data\nid: {oid}\n"
    assert decode_pointer(good.encode()) == Pointer("dataset", "data", oid)
    cases = [
        good.replace("kind: dataset", "kind: model"),
        good.replace("name: data", "name: ../etc"),
        good.replace("name: data", "name: a~1"),
        good.replace("name: data", "name:"),
        good.replace(oid, oid.upper()),
        good.replace(oid, oid[:-1]),
        good.replace(oid, oid + "0"),
        good.replace("mlgit-pointer: 1", "mlgit-pointer: 2"),
        good.replace("mlgit-pointer: 1\n", ""),
        good + "extra: 1\n",
        good + "kind: dataset\n",
        good + "no colon here\n",
        good.replace("id: ", "id "),
        "",
        "#only a comment\n",
        good + "#" * 5000,
    ]
    for case in cases:
        with pytest.raises(PointerError):
            decode_pointer(case.encode())
    with pytest.raises(PointerError):
        decode_pointer(good.encode("utf-16"))
    with pytest.raises(PointerError):
        decode_pointer(good.encode() + b"\xff\xfe")


def test_pointer_error_names_the_file() -> None:
    with pytest.raises(PointerError, match=r"data/x\.mlgit"):
        decode_pointer(b"garbage", "data/x.mlgit")


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------

def decode_config_or_error(data: bytes) -> StoreConfig | None:
    try:
        return decode_config(data)
    except (FormatError, UnsupportedFormatError):
        return None


@given(configs())
@ROUND
def test_config_round_trip(c: StoreConfig) -> None:
    data = encode_config(c)
    assert decode_config(data) == c
    assert encode_config(decode_config(data)) == data


def test_config_default_round_trip() -> None:
    c = StoreConfig()
    assert c.format == FORMAT_VERSION
    assert c.hash == HASH_NAME
    assert decode_config(encode_config(c)) == c


@given(configs(), st.randoms(use_true_random=False))
@ROUND
def test_config_decode_accepts_any_key_order_and_layout(c: StoreConfig,
                                                        rnd: random.Random) -> None:
    items = list(json.loads(encode_config(c)).items())
    rnd.shuffle(items)
    assert decode_config(json.dumps(dict(items)).encode()) == c


@given(st.binary(max_size=300))
@FUZZ
def test_config_decode_random_bytes(data: bytes) -> None:
    decode_config_or_error(data)


@given(st.dictionaries(st.sampled_from(["format", "hash", "compression", "chunk_min",
                                        "chunk_avg", "chunk_max", "pack_size", "other"]),
                       json_values, max_size=8))
@FUZZ
def test_config_decode_random_json(obj: dict[str, Any]) -> None:
    decode_config_or_error(json.dumps(obj).encode())


@given(configs())
@FUZZ
def test_config_decode_every_truncation(c: StoreConfig) -> None:
    data = encode_config(c)
    for cut in truncations(data):
        got = decode_config_or_error(cut)
        assert got is None or cut == data[:-1]  # only the final newline is optional


@given(configs(), randoms)
@EVERY
def test_config_decode_flipped_bytes(c: StoreConfig, rnd: random.Random) -> None:
    for bad in flips(encode_config(c), rnd):
        decode_config_or_error(bad)


@given(configs(), st.binary(min_size=1, max_size=20))
@FUZZ
def test_config_decode_appended_junk(c: StoreConfig, junk: bytes) -> None:
    got = decode_config_or_error(encode_config(c) + junk)
    assert got is None or got == c


def _chunk_with(c: StoreConfig) -> list[bytes]:
    data = bytes(range(256)) * (c.chunk_max // 256 + 2)
    chunks = list(Chunker(c.chunk_min, c.chunk_avg, c.chunk_max).chunks_of(data))
    assert b"".join(chunks) == data
    return chunks


@given(st.lists(st.integers(1, 32 << 20), min_size=3, max_size=3).map(sorted))
@settings(max_examples=60, deadline=None)
def test_every_accepted_config_makes_a_working_chunker(sizes: list[int]) -> None:
    """A config decode_config accepts must be usable: its chunker must cut data."""
    lo, avg, hi = sizes
    c = decode_config_or_error(_config_json(chunk_min=lo, chunk_avg=avg, chunk_max=hi))
    if c is not None:
        _chunk_with(c)


@pytest.mark.parametrize("sizes", [(64, 64, 64), (64, 128, 512), (2 << 20, 4 << 20, 16 << 20),
                                   (64, 8 << 20, 16 << 20), (64, 256, 1024)])
def test_accepted_config_edges_make_a_working_chunker(sizes: tuple[int, int, int]) -> None:
    lo, avg, hi = sizes
    c = decode_config_or_error(_config_json(chunk_min=lo, chunk_avg=avg, chunk_max=hi))
    if c is not None:
        _chunk_with(c)


def _config_json(**kw: Any) -> bytes:
    obj = json.loads(encode_config(StoreConfig()))
    obj.update(kw)
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP}).encode()


_DROP = object()


def test_config_newer_format_is_unsupported() -> None:
    for fmt in (FORMAT_VERSION + 1, 99, 2**70):
        with pytest.raises(UnsupportedFormatError):
            decode_config(_config_json(format=fmt))
    with pytest.raises(UnsupportedFormatError):
        decode_config(_config_json(hash="sha256"))


@pytest.mark.parametrize("kw", [
    {"format": _DROP}, {"format": "1"}, {"format": 1.0}, {"format": None},
    {"other": 1}, {"chunk_min": 63}, {"chunk_min": 0}, {"chunk_min": -1},
    {"chunk_avg": 1 << 10, "chunk_min": 2 << 10}, {"chunk_max": 32 << 10},
    {"chunk_max": (16 << 20) + 1}, {"pack_size": 0}, {"pack_size": -5},
    {"pack_size": "big"}, {"chunk_avg": 1.5}, {"chunk_min": None},
])
def test_config_invalid_fields_are_format_error(kw: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        decode_config(_config_json(**kw))


@pytest.mark.parametrize("kw", [
    {"format": True}, {"format": 0}, {"format": -1}, {"compression": 5},
    {"compression": "lz4"}, {"pack_size": True},
])
def test_config_wrongly_typed_or_impossible_values_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises((FormatError, UnsupportedFormatError)):
        decode_config(_config_json(**kw))


@pytest.mark.parametrize("data", [b"", b"null", b"[]", b"1", b'"x"', b"\xff\xfe",
                                  b"{", b"{}"])
def test_config_garbage(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_config(data)


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000])
def test_config_deeply_nested_json_is_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_config(data)


# ---------------------------------------------------------------------------
# compression
# ---------------------------------------------------------------------------

compressible = st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8),
                         st.integers(1, 2000))


@given(st.one_of(st.binary(max_size=2000), compressible))
@ROUND
def test_compression_round_trip(data: bytes) -> None:
    codec, stored = compress(data)
    assert codec in (CODEC_RAW, CODEC_ZSTD)
    if codec == CODEC_RAW:
        assert stored == data
    else:
        assert len(stored) < len(data)
    assert decompress(codec, stored, len(data)) == data
    assert compress(memoryview(data)) == (codec, stored)


def test_compression_picks_raw_for_random_and_zstd_for_repetitive() -> None:
    noise = os.urandom(10000)
    assert compress(noise) == (CODEC_RAW, noise)
    codec, stored = compress(b"abc" * 10000)
    assert codec == CODEC_ZSTD
    assert len(stored) < 1000
    assert zstandard.frame_content_size(stored) == 30000


@given(st.one_of(st.binary(max_size=2000), compressible), st.integers(0, 5000))
@FUZZ
def test_decompress_wrong_raw_len(data: bytes, raw_len: int) -> None:
    assume(raw_len != len(data))
    codec, stored = compress(data)
    with pytest.raises(FormatError):
        decompress(codec, stored, raw_len)


@given(st.integers(0, 255), st.binary(max_size=100), st.integers(0, 200))
@FUZZ
def test_decompress_random_input(codec: int, stored: bytes, raw_len: int) -> None:
    try:
        out = decompress(codec, stored, raw_len)
    except FormatError:
        return
    assert len(out) == raw_len


@given(compressible, randoms)
@FUZZ
def test_decompress_damaged_zstd(data: bytes, rnd: random.Random) -> None:
    codec, stored = compress(data)
    assume(codec == CODEC_ZSTD)
    for cut in truncations(stored):
        with pytest.raises(FormatError):
            decompress(codec, cut, len(data))
    for bad in flips(stored, rnd):
        try:
            out = decompress(codec, bad, len(data))
        except FormatError:
            continue
        assert len(out) == len(data)


@pytest.mark.parametrize("codec", [2, 3, 255, -1])
def test_decompress_unknown_codec(codec: int) -> None:
    with pytest.raises(FormatError):
        decompress(codec, b"abc", 3)


def test_decompress_frame_without_content_size() -> None:
    data = b"hello " * 100
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    with pytest.raises(FormatError):
        decompress(CODEC_ZSTD, frame, len(data))


def _rle_frame(claimed: int, block: int = 100) -> bytes:
    """A single-segment zstd frame that claims ``claimed`` bytes and holds one RLE block."""
    header = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", claimed)
    return header + (1 | (1 << 1) | (block << 3)).to_bytes(3, "little") + b"A"


def test_rle_frame_helper_is_a_real_frame() -> None:
    assert zstandard.frame_content_size(_rle_frame(100)) == 100
    assert decompress(CODEC_ZSTD, _rle_frame(100), 100) == b"A" * 100


@pytest.mark.parametrize(("claimed", "raw_len"), [(101, 100), (99, 100), (100, 101)])
def test_decompress_declared_size_differs_from_raw_len(claimed: int, raw_len: int) -> None:
    with pytest.raises(FormatError):
        decompress(CODEC_ZSTD, _rle_frame(claimed), raw_len)


@pytest.mark.parametrize("raw_len", [0, 100, 1 << 20, 256 << 20])
def test_decompression_bomb_refused_without_allocating(raw_len: int) -> None:
    bomb = _rle_frame(1 << 40)
    assert zstandard.frame_content_size(bomb) == 1 << 40
    tracemalloc.start()
    try:
        t = time.monotonic()
        with pytest.raises(FormatError):
            decompress(CODEC_ZSTD, bomb, raw_len)
        elapsed = time.monotonic() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 1 << 20


def test_decompression_bomb_with_matching_raw_len_is_format_error() -> None:
    """Even if the caller's raw_len agrees with a 1 TiB claim, the answer is FormatError.

    Run in a child with a 1 GiB address-space limit so a real allocation attempt
    cannot hurt the test machine.
    """
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from mlgit.errors import FormatError
        from mlgit.format.compression import decompress
        bomb = {_rle_frame(1 << 40)!r}
        try:
            decompress(1, bomb, 1 << 40)
        except FormatError:
            print("FormatError")
        except BaseException as e:
            print(type(e).__name__)
        else:
            print("returned")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "FormatError", (p.stdout, p.stderr)


# ---------------------------------------------------------------------------
# chunking
# ---------------------------------------------------------------------------

@given(st.one_of(st.binary(max_size=20000), compressible))
@settings(max_examples=100, deadline=None)
def test_chunker_cuts_cover_the_input(data: bytes) -> None:
    ch = Chunker(256, 1024, 4096)
    chunks = list(ch.chunks_of(data))
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= 4096 for c in chunks)
    assert all(len(c) >= 256 for c in chunks[:-1])
    assert list(ch.chunks(io.BytesIO(data))) == chunks
    assert list(Chunker(256, 1024, 4096).chunks_of(data)) == chunks


class _ShortReader:
    """A reader of ``data`` whose reads return at most the next size of ``sizes``
    (cycling), through ``read`` only or ``readinto`` only, as a pipe or socket may."""

    def __init__(self, data: bytes, sizes: list[int], readinto: bool) -> None:
        self._data, self._pos, self._sizes, self._i = data, 0, sizes, 0
        if readinto:
            self.readinto = self._readinto

    def _next(self, n: int) -> bytes:
        k = min(n, self._sizes[self._i % len(self._sizes)])
        self._i += 1
        out = self._data[self._pos:self._pos + k]
        self._pos += len(out)
        return out

    def read(self, n: int = -1) -> bytes:
        return self._next(len(self._data) if n < 0 else n)

    def _readinto(self, buf: memoryview) -> int:
        out = self._next(len(buf))
        buf[:len(out)] = out
        return len(out)


CHUNKER = (256, 1024, 4096)  # single_max is 2048
# High-entropy content (where FastCDC does find cuts) of every interesting size: empty,
# below min, the one-chunk range (where chunks(stream) used to cut and chunks_of did not),
# its edges, and several chunks.
chunker_inputs = st.builds(
    lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 2**32),
    st.one_of(st.integers(0, 20000), st.sampled_from([1, 255, 256, 257, 2047, 2048, 2049,
                                                      4095, 4096, 4097, 8192])))


@given(st.one_of(chunker_inputs, compressible),
       st.lists(st.integers(1, 5000), min_size=1, max_size=5), st.booleans())
@settings(max_examples=200, deadline=None)
def test_chunker_one_rule_whatever_the_reader(data: bytes, sizes: list[int],
                                              readinto: bool) -> None:
    """chunks(stream) cuts exactly what chunks_of cuts, for any reader (short reads,
    read-only or readinto readers), and content up to single_max is one chunk."""
    ch = Chunker(*CHUNKER)
    want = list(ch.chunks_of(data))
    if 0 < len(data) <= ch.single_max:
        assert want == [data]
    assert list(ch.chunks(io.BytesIO(data))) == want
    assert list(ch.chunks(_ShortReader(data, sizes, readinto))) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 1, 300, 1500, 2048, 2049, 5000, 100_000])
def test_chunker_one_rule_for_a_real_file(tmp_path: Any, n: int) -> None:
    data = random.Random(n).randbytes(n)
    (tmp_path / "f").write_bytes(data)
    ch = Chunker(*CHUNKER)
    with open(tmp_path / "f", "rb", buffering=0) as f:
        assert list(ch.chunks(f)) == list(ch.chunks_of(data))
    if 0 < n <= ch.single_max:
        assert list(ch.chunks_of(data)) == [data]


def test_chunker_is_content_defined() -> None:
    rnd = random.Random(7)
    data = bytes(rnd.getrandbits(8) for _ in range(200_000))
    ch = Chunker(256, 1024, 4096)
    before = list(ch.chunks_of(data))
    after = list(ch.chunks_of(data[:1000] + b"INSERTED" + data[1000:]))
    assert len(before) > 50
    # an insert near the start leaves most chunk boundaries (and so chunk bytes) intact
    assert len(set(before) & set(after)) >= len(before) - 3
