"""Typed ids (issue 10, item 2): hex ids, raw ids and file digests are three types.

``mlgit.format.ids`` is the one place they change form. These tests check that no
other module converts by hand, that mypy rejects a mix-up, and that the conversions
round-trip and refuse every malformed input with FormatError.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlgit.errors import FormatError
from mlgit.format.ids import (
    ID_HEX_LEN,
    ID_LEN,
    FileDigest,
    FileHasher,
    RawObjectID,
    digest_bytes,
    digest_hex,
    digest_to_hex,
    file_digest,
    hex_to_raw,
    object_id,
    parse_object_id,
    raw_object_id,
    raw_to_hex,
)

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "mlgit"
IDS_MODULE = PKG / "format" / "ids.py"

# -- no conversion by hand outside format/ids.py ------------------------------------------

# ``.hex()`` on bytes that are no id, hash or digest: random tokens in temporary names
# (fsutil.unique_tmp_name, the S3 backend's delete check). Recognised by their receiver,
# a call of ``os.urandom``, so no module is exempt as a whole.
_RANDOM_TOKEN = "os.urandom"
# The modules that hash: the id, digest and checksum functions live in format/ids.py.
_HASH_MODULES = ("xxhash",)
_HEX_MODULE_FUNCS = {"hexlify", "unhexlify", "a2b_hex", "b2a_hex"}  # binascii's spellings


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def hand_conversions(source: str, name: str) -> list[str]:
    """Every place in ``source`` that turns an id between hex and bytes, or hashes, by hand.

    Flagged: ``bytes.fromhex``/``bytearray.fromhex`` (which accept upper case, spaces
    and any length), any ``<expr>.hex(...)`` whose receiver is not ``os.urandom(...)``,
    binascii's hex functions, and importing xxhash (ids and digests are computed by
    ``format/ids.py``'s typed functions).
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr == "fromhex":
            found.append((line, _dotted(node)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, recv = node.func.attr, node.func.value
            if attr == "hex" and not (
                    isinstance(recv, ast.Call) and _dotted(recv.func) == _RANDOM_TOKEN):
                found.append((line, ast.unparse(node)))
            elif attr in _HEX_MODULE_FUNCS and _dotted(recv) == "binascii":
                found.append((line, f"binascii.{attr}"))
        elif isinstance(node, ast.Import):
            found += [(line, f"import {a.name}") for a in node.names
                      if a.name.split(".")[0] in _HASH_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] in _HASH_MODULES):
            found.append((line, f"from {node.module} import ..."))
        elif isinstance(node, ast.ImportFrom) and node.module == "binascii":
            found += [(line, f"from binascii import {a.name}")
                      for a in node.names if a.name in _HEX_MODULE_FUNCS]
    return [f"{name}:{line}: {what}" for line, what in sorted(found)]


def test_only_format_ids_converts_ids_between_hex_and_bytes() -> None:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path != IDS_MODULE:
            bad += hand_conversions(path.read_text(), str(path.relative_to(ROOT)))
    assert bad == []
    # ... and format/ids.py does (the rule is not vacuous).
    assert hand_conversions(IDS_MODULE.read_text(), "ids.py")


def test_the_hand_conversion_rule_catches_each_spelling() -> None:
    src = textwrap.dedent("""\
        import os
        import xxhash
        import binascii
        from xxhash import xxh3_128_digest
        from binascii import unhexlify
        a = bytes.fromhex(text)
        b = bytearray.fromhex(text)
        c = entry.subtree.hex()
        d = raw[:12].hex()
        e = binascii.hexlify(raw)
        f = os.urandom(8).hex()          # a random token: allowed
        g = text.hex                     # not a call: allowed
        h = value.hex(":")
        """)
    got = [b.split(": ", 1)[1] for b in hand_conversions(src, "x")]
    assert got == ["import xxhash", "from xxhash import ...", "from binascii import unhexlify",
                   "bytes.fromhex", "bytearray.fromhex", "entry.subtree.hex()",
                   "raw[:12].hex()", "binascii.hexlify", "value.hex(':')"]


# -- mypy rejects a mix-up ------------------------------------------------------------------

_MIXUPS = """\
from mlgit.format.ids import FileDigest, ObjectID, RawObjectID, file_digest, hex_to_raw
from mlgit.format.tree import TYPE_FILE, TreeEntry
from mlgit.store.objects import ObjectStore


def needs_raw(oid: RawObjectID) -> None: ...


def mixups(store: ObjectStore, digest: FileDigest, hex_id: ObjectID, raw: RawObjectID,
           data: bytes) -> None:
    needs_raw(digest)                      # MIXUP file digest for an object id
    store.get(file_digest(data))           # MIXUP file digest for an object id
    store.get(hex_id)                      # MIXUP hex id for a raw id
    store.has_committed(data)              # MIXUP untyped bytes for a raw id
    TreeEntry(b"f", TYPE_FILE, 1, digest=raw, chunks=((raw, 1),))  # MIXUP raw id as digest
    TreeEntry(b"f", TYPE_FILE, 1, digest=digest, chunks=((digest, 1),))  # MIXUP digest as id
    hex_to_raw(raw)                        # MIXUP raw where hex belongs
    assert digest != raw                   # MIXUP never equal to mypy: comparison-overlap
"""

_CLEAN = """\
from mlgit.format.ids import FileDigest, ObjectID, RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.tree import TYPE_FILE, TreeEntry
from mlgit.store.objects import ObjectStore


def fine(store: ObjectStore, digest: FileDigest, hex_id: ObjectID, raw: RawObjectID) -> None:
    store.get(hex_to_raw(hex_id))
    store.get(raw)
    TreeEntry(b"f", TYPE_FILE, 1, digest=digest, chunks=((raw, 1),))
    print(raw_to_hex(raw), bytes(digest))  # each is still bytes where bytes are asked for
"""


def _mypy(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / f"{name}.py"
    f.write_text(source)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context",
         "--cache-dir", str(tmp_path / "mypy-cache"), "--python-version", "3.11", str(f)],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False)


def test_mypy_rejects_each_id_mixup_and_accepts_the_typed_conversions(tmp_path: Path) -> None:
    clean = _mypy(tmp_path, "clean", _CLEAN)
    assert clean.returncode == 0, clean.stdout + clean.stderr  # mlgit found, checks pass
    bad = _mypy(tmp_path, "mixups", _MIXUPS)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    flagged = {int(line.split(":")[1]) for line in bad.stdout.splitlines()
               if ": error:" in line}
    want = {i for i, line in enumerate(_MIXUPS.splitlines(), 1) if "# MIXUP" in line}
    assert flagged == want, bad.stdout
    assert 'incompatible type "FileDigest"; expected "RawObjectID"' in bad.stdout
    assert 'incompatible type "ObjectID"; expected "RawObjectID"' in bad.stdout
    assert 'incompatible type "RawObjectID"; expected "str"' in bad.stdout


# -- the conversions -------------------------------------------------------------------------

raw16 = st.binary(min_size=ID_LEN, max_size=ID_LEN)
hex32 = st.text("0123456789abcdef", min_size=ID_HEX_LEN, max_size=ID_HEX_LEN)


@given(raw16)
def test_raw_to_hex_round_trips(raw: bytes) -> None:
    oid = raw_to_hex(RawObjectID(raw))
    assert oid == raw.hex()
    assert parse_object_id(oid) == oid
    assert hex_to_raw(oid) == raw


@given(hex32)
def test_hex_to_raw_round_trips(text: str) -> None:
    raw = hex_to_raw(text)
    assert type(raw) is bytes  # a NewType is its base type at run time
    assert len(raw) == ID_LEN
    assert raw_to_hex(raw) == text


def _is_id(text: str) -> bool:
    return len(text) == ID_HEX_LEN and all(c in "0123456789abcdef" for c in text)


@st.composite
def near_ids(draw: st.DrawFn) -> str:
    """A valid id changed a little: what ``bytes.fromhex`` would take, or almost."""
    text = draw(hex32)
    i = draw(st.integers(0, ID_HEX_LEN - 1))
    how = draw(st.sampled_from(["upper", "space", "drop", "add", "pair", "swap", "pad"]))
    if how == "upper":
        return text[:i] + draw(st.sampled_from("ABCDEF")) + text[i + 1:]
    if how == "space":
        return text[:i & ~1] + " " + text[i & ~1:]  # fromhex skips spaces between pairs
    if how == "drop":
        return text[:i] + text[i + 1:]
    if how == "add":
        return text[:i] + draw(st.sampled_from("0123456789abcdef")) + text[i:]
    if how == "pair":
        return text + "00"
    if how == "swap":
        return text[:i] + draw(st.sampled_from("gz-+\0\n\u0660\uff10")) + text[i + 1:]
    return draw(st.sampled_from([" ", "\n", "\t"])) + text


@given(st.one_of(st.text(max_size=40), near_ids()))
def test_hex_to_raw_takes_exactly_32_lowercase_hex_digits(text: str) -> None:
    if _is_id(text):
        assert raw_to_hex(hex_to_raw(text)) == text
    else:
        with pytest.raises(FormatError, match="not an object id"):
            hex_to_raw(text)
        with pytest.raises(FormatError, match="not an object id"):
            parse_object_id(text)


@given(st.binary(max_size=40))
def test_raw_to_hex_and_digest_to_hex_refuse_wrong_lengths(raw: bytes) -> None:
    if len(raw) == ID_LEN:
        assert raw_to_hex(RawObjectID(raw)) == digest_to_hex(FileDigest(raw)) == raw.hex()
    else:
        with pytest.raises(FormatError):
            raw_to_hex(RawObjectID(raw))
        with pytest.raises(FormatError):
            digest_to_hex(FileDigest(raw))


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_the_digest_functions_agree(data: bytes, cuts: list[int]) -> None:
    """One hash (XXH3-128) under several types: the types change nothing at run time."""
    raw = raw_object_id(data)
    assert raw == digest_bytes(data)
    assert raw_to_hex(raw) == object_id(data) == digest_hex(data)
    # Equal bytes (a one-chunk file's digest is its chunk's id), but to mypy another
    # type: even ``file_digest(data) == raw`` is refused (strict's comparison-overlap).
    assert bytes(file_digest(data)) == raw
    h = FileHasher()
    pos = 0
    for cut in sorted(cuts):
        h.update(data[pos:cut])
        pos = max(pos, cut)
    h.update(data[pos:])
    assert h.digest() == file_digest(data)
