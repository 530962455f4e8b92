"""PackCache: the parts of a remote's packs read so far, kept at their offsets.

Its answers must be exact (a range is covered only when every byte of it was
written), other processes' appends must be seen, and a ranges file that is not
what it writes (hostile or damaged) must never make it claim bytes it lacks
beyond what verification catches, nor cost unbounded memory.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlgit.errors import FormatError
from mlgit.sync.packcache import MAX_RANGES_LEN, PackCache

STEM = "pack-" + "ab" * 16


def test_written_ranges_are_covered_and_read_back(tmp_path: Path) -> None:
    cache = PackCache(tmp_path / "c")
    assert not cache.covers(STEM, 0, 1)
    assert cache.read(STEM, 0, 1) is None
    assert not (tmp_path / "c").exists()  # nothing written by looking
    cache.write(STEM, [(100, b"a" * 50), (150, b"b" * 50), (1000, b"c" * 10)])
    assert cache.covers(STEM, 100, 100)  # two adjacent pieces: one range
    assert cache.read(STEM, 120, 40) == b"a" * 30 + b"b" * 10
    assert not cache.covers(STEM, 99, 2)
    assert not cache.covers(STEM, 190, 20)
    assert cache.read(STEM, 1000, 10) == b"c" * 10
    assert (tmp_path / "c" / f"{STEM}.ranges").stat().st_size == 2 * 12  # merged records
    cache.close()


@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300)), max_size=30),
       st.integers(0, 2300), st.integers(1, 300))
def test_covers_is_exactly_the_union_of_what_was_written(
        writes: list[tuple[int, int]], start: int, length: int) -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cache = PackCache(Path(d))
        held = bytearray(2400)
        mask = [False] * 2400
        for off, n in writes:
            data = random.Random(off * 1000 + n).randbytes(n)
            cache.write(STEM, [(off, data)])
            held[off:off + n] = data
            mask[off:off + n] = [True] * n
        want = all(mask[start:start + length])
        assert cache.covers(STEM, start, length) == want
        if want:
            assert cache.read(STEM, start, length) == bytes(held[start:start + length])
        fresh = PackCache(Path(d))  # another process, reading the files
        assert fresh.covers(STEM, start, length) == want
        cache.close()
        fresh.close()


def test_another_process_appends_are_seen(tmp_path: Path) -> None:
    root = tmp_path / "c"
    mine = PackCache(root)
    mine.write(STEM, [(0, b"x" * 8)])
    assert not mine.covers(STEM, 8, 8)
    code = ("import sys; from pathlib import Path; from mlgit.sync.packcache import PackCache; "
            f"PackCache(Path(sys.argv[1])).write({STEM!r}, [(8, b'y' * 8)])")
    subprocess.run([sys.executable, "-c", code, str(root)], check=True)
    assert mine.read(STEM, 0, 16) == b"x" * 8 + b"y" * 8
    mine.close()


def test_a_hostile_ranges_file_costs_nothing(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    ranges = root / f"{STEM}.ranges"
    # A record past the largest pack, and a torn last record: ignored.
    ranges.write_bytes(struct.pack("<QI", (1 << 40) + 5, 10) + b"\x01\x02\x03")
    cache = PackCache(root)
    assert not cache.covers(STEM, (1 << 40) + 5, 10)
    # A ranges file past the bound is not read at all.
    with open(ranges, "wb") as f:
        f.truncate(MAX_RANGES_LEN + 12)
    assert not PackCache(root).covers(STEM, 0, 1)
    # Claims of bytes never written read as zeros: the caller's verification fails them.
    ranges.write_bytes(struct.pack("<QI", 0, 64))
    (root / f"{STEM}.pack").write_bytes(b"")
    assert PackCache(root).read(STEM, 0, 64) is None  # the file is shorter than claimed
    # Symlinks are not followed, neither for the ranges nor for the pack.
    ranges.unlink()
    target = tmp_path / "elsewhere"
    target.write_bytes(struct.pack("<QI", 0, 4))
    ranges.symlink_to(target)
    assert not PackCache(root).covers(STEM, 0, 4)
    cache.close()


def test_a_bad_stem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        PackCache(tmp_path).write("../../etc/passwd", [(0, b"x")])
    assert os.listdir(tmp_path) == []


def test_an_unwritable_cache_is_not_an_error(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.write_bytes(b"a file where the directory should be")
    cache = PackCache(root)
    cache.write(STEM, [(0, b"x")])  # silently not cached
    assert not cache.covers(STEM, 0, 1)
