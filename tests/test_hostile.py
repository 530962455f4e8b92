"""Hostile stores: crafted trees, packs and indexes must never write outside the target.

Objects are planted with the store API (``objects.put`` accepts any bytes, so a
tree can hold whatever an attacker likes as long as its id is its hash); tree
bytes are built by hand with ``struct`` because ``encode_tree`` refuses bad names.
For every malformed store: ``git ml checkout`` exits 7 or 8 with one line,
``mlgit.checkout`` raises a FormatError, ``git ml fsck`` reports the problem (it
exits 1, as docs/cli.md says), nothing is written outside the target (a sentinel
directory is compared before and after), and nothing is left half-made (no
target directory, no ``.mlgit.*.tmp`` in the work tree, no ``checkouts/<id>``).

Symlink policy (decided here): a symlink entry is data. It is recreated verbatim
(``os.symlink(target)``), whatever it points at, absolute or escaping the dataset
root, and nothing is ever written, created, removed or chmod-ed *through* any
symlink. A tree cannot hold a symlink and a directory of the same name (names are
unique per tree), so the "write through the link" attacks that remain are across
versions and through links already in the work tree; those are tested here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlgit
from mlgit.api.repo import Repo
from mlgit.errors import FormatError
from mlgit.format.compression import MAX_OBJECT_LEN
from mlgit.format.ids import (
    ObjectID,
    RawObjectID,
    digest_bytes,
    file_digest,
    raw_object_id,
    raw_to_hex,
)
from mlgit.format.pack import (
    ENTRY_HEADER,
    INDEX_ENTRY,
    INDEX_MAGIC,
    OBJ_CHUNK,
    OBJ_SNAPSHOT,
    OBJ_TREE,
    PACK_MAGIC,
    IndexEntry,
    encode_index,
)
from mlgit.format.pointer import Pointer, encode_pointer
from mlgit.format.snapshot import Snapshot, encode_snapshot
from mlgit.format.tree import TREE_MAGIC, decode_tree
from mlgit.format.treeshape import totals
from mlgit.store.packs import PackReader

# -- raw tree bytes ----------------------------------------------------------------------

ZERO16 = b"\0" * 16


def ent(name: bytes, body: bytes) -> bytes:
    return struct.pack("<H", len(name)) + name + body


def file_body(chunks: list[tuple[bytes, int]], size: int | None = None, flags: int = 0,
              digest: bytes | None = None) -> bytes:
    total = sum(n for _, n in chunks) if size is None else size
    return (struct.pack("<BBQ", 1, flags, total) + (digest or ZERO16)
            + struct.pack("<I", len(chunks))
            + b"".join(c + struct.pack("<I", n) for c, n in chunks))


def link_body(target: bytes, size: int | None = None, flags: int = 0) -> bytes:
    return struct.pack("<BBQ", 2, flags, len(target) if size is None else size) + target


def dir_body(subtree: bytes, size: int = 0, files: int = 0) -> bytes:
    return struct.pack("<BBQ", 3, 0, size) + subtree + struct.pack("<Q", files)


def raw_tree(*entries: bytes, count: int | None = None) -> bytes:
    return TREE_MAGIC + struct.pack("<I", len(entries) if count is None else count) + b"".join(
        entries)


# -- planting objects ------------------------------------------------------------------


class Planter:
    """Writes arbitrary objects into a repository's store and names them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = Repo(root)
        self.objects = self.repo.store.objects

    def chunk(self, data: bytes) -> tuple[RawObjectID, int]:
        return self.objects.put(OBJ_CHUNK, data), len(data)

    def file(self, data: bytes) -> bytes:
        """A well-formed file entry body holding ``data`` (one chunk)."""
        return file_body([self.chunk(data)], digest=digest_bytes(data))

    def tree(self, raw: bytes) -> RawObjectID:
        return self.objects.put(OBJ_TREE, raw)

    def snapshot(self, name: str, tree: RawObjectID, root: str = "dir", files: int | None = None,
                 nbytes: int | None = None) -> str:
        """Store a snapshot of ``tree``, point the ref and a pointer file at it.

        ``files`` and ``nbytes`` default to what the root tree's entries claim (so
        that the snapshot is refused, or not, for what the test is about).
        """
        try:
            claimed = totals(decode_tree(self.objects.get(tree)))
        except FormatError:
            claimed = (1, 0)
        files = claimed[0] if files is None else files
        nbytes = claimed[1] if nbytes is None else nbytes
        snap = Snapshot("dataset", name, raw_to_hex(tree), root, (), 1_700_000_000, 0,
                        "Mallory <m@example.com>", "", files, nbytes, {"path": name})
        sid = raw_to_hex(self.objects.put(OBJ_SNAPSHOT, encode_snapshot(snap)))
        self.objects.flush()
        refs = self.repo.store.refs
        refs.update("datasets", name, sid, refs.get("datasets", name))
        (self.root / f"{name}.mlgit").write_bytes(encode_pointer(Pointer("dataset", name, sid)))
        return sid

    def close(self) -> None:
        self.repo.close()


@pytest.fixture
def planter(repo_dir: Path) -> Iterator[Planter]:
    p = Planter(repo_dir)
    yield p
    p.close()


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory outside the repository that nothing may touch."""
    s = tmp_path / "sentinel"
    make_tree(s, {"victim": b"original\n", "sub/inner": b"inner\n"})
    return s


def _state(path: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry below ``path`` with its mode and content (or link target)."""
    out: dict[str, tuple[int, bytes | str]] = {".": (os.lstat(path).st_mode, "")}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            rel = str(p.relative_to(path))
            if p.is_symlink():
                out[rel] = (st.st_mode, "link:" + os.readlink(p))
            elif p.is_file():
                out[rel] = (st.st_mode, p.read_bytes())
            else:
                out[rel] = (st.st_mode, "<dir>")
    return out


def _tmp_leftovers(root: Path) -> list[str]:
    """``.mlgit.*.tmp`` files or directories anywhere in the work tree (outside .git)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        found += [os.path.join(dirpath, n) for n in dirnames + filenames
                  if n.startswith(".mlgit.") and n.endswith(".tmp")]
    return found


class Witness:
    """Records the sentinel and the repository's surroundings; checks nothing changed."""

    def __init__(self, root: Path, sentinel: Path) -> None:
        self.root, self.sentinel = root, sentinel
        self.before = _state(sentinel)
        self.around = sorted(os.listdir(root.parent))
        self.top = sorted(os.listdir(root))

    def check(self, allow_top: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        assert _state(self.sentinel) == self.before, "something was written outside the target"
        assert sorted(os.listdir(self.root.parent)) == self.around
        assert set(os.listdir(self.root)) - set(self.top) <= set(allow_top)
        assert not _tmp_leftovers(self.root)
        assert not os.path.lexists("/pwned")
        assert not os.path.lexists("/etc/pwned")


def _checkouts(root: Path) -> list[str]:
    return os.listdir(root / ".git/ml/checkouts")


def _assert_refused(root: Path, name: str, sid: str, witness: Witness,
                     fsck_kinds: tuple[str, ...] = ("corrupt",)) -> None:
    """Every reader refuses snapshot ``sid`` (pinned by ``name.mlgit``), leaving no trace."""
    p = run_gitml(root, "checkout", check=False)
    assert p.returncode in (7, 8), (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("git-ml: error: "), p.stderr
    assert not os.path.lexists(root / name), "a partial target was left behind"
    witness.check()

    with pytest.raises(FormatError):
        mlgit.checkout(name, repo=root)
    with pytest.raises(FormatError):
        mlgit.checkout(sid, repo=root)
    assert not [n for n in _checkouts(root) if sid in n], _checkouts(root)
    p = run_gitml(root, "path", sid, check=False)
    assert p.returncode in (7, 8), (p.returncode, p.stderr)
    assert not [n for n in _checkouts(root) if sid in n], _checkouts(root)
    witness.check()

    _assert_fsck_objects(root, fsck_kinds)
    witness.check()


def _assert_fsck_objects(root: Path, kinds: tuple[str, ...]) -> None:
    """fsck must not pass: it reports a problem of one of ``kinds`` (exit 1), or, for a
    store it cannot even open, fails with one FormatError line (exit 7 or 8). Whether
    it should rather report a bad index and go on is tested separately."""
    p = run_gitml(root, "fsck", "--json", check=False)
    assert p.returncode in (1, 7, 8), (p.returncode, p.stdout, p.stderr)
    if p.returncode == 1:
        report = json.loads(p.stdout)
        assert report["ok"] is False
        assert {x["kind"] for x in report["problems"]} & set(kinds), report
    else:
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith("git-ml: error: "), p.stderr


# -- malformed trees ---------------------------------------------------------------------


def _bad_trees(pl: Planter, sentinel: Path) -> dict[str, bytes]:
    """Raw root trees that no reader may accept, by case name."""
    good = ent(b"a-good", pl.file(b"good data\n"))
    payload = pl.file(b"pwned\n")
    inner_ok = pl.tree(raw_tree(ent(b"pwned", payload)))
    sub_bad = pl.tree(raw_tree(ent(b"..", dir_body(inner_ok, 6, 1))))
    ch, n = pl.chunk(b"0123456789")
    cases = {
        "dotdot-dir": raw_tree(ent(b"..", dir_body(inner_ok, 6, 1))),
        "dotdot-file": raw_tree(ent(b"..", payload)),
        "dot": raw_tree(ent(b".", dir_body(inner_ok, 6, 1))),
        "absolute": raw_tree(ent(b"/pwned", payload)),
        "absolute-etc": raw_tree(ent(b"/etc/pwned", payload)),
        "slash": raw_tree(ent(b"sub/../../pwned", payload)),
        "sentinel-path": raw_tree(ent(os.fsencode(sentinel / "victim"), payload)),
        "nul": raw_tree(ent(b"a\0b", payload)),
        "empty-name": raw_tree(ent(b"", payload)),
        "git": raw_tree(ent(b".git", dir_body(inner_ok, 6, 1))),
        "git-upper": raw_tree(ent(b".GIT", payload)),
        "git-mixed": raw_tree(ent(b".gIt", dir_body(inner_ok, 6, 1))),
        "duplicate": raw_tree(ent(b"a", payload), ent(b"a", payload)),
        "duplicate-types": raw_tree(ent(b"x", link_body(os.fsencode(sentinel))),
                                    ent(b"x", dir_body(inner_ok, 6, 1))),
        "unsorted": raw_tree(ent(b"b", payload), ent(b"a", payload)),
        "nested-bad-name": raw_tree(good, ent(b"sub", dir_body(sub_bad, 6, 1))),
        "size-bigger-than-chunks": raw_tree(ent(b"f", file_body([(ch, n)], size=n + 100))),
        "size-smaller-than-chunks": raw_tree(ent(b"f", file_body([(ch, n)], size=n - 1))),
        "chunk-length-zero": raw_tree(ent(b"f", file_body([(ch, 0)], size=0))),
        "huge-chunk-count": raw_tree(ent(b"f", struct.pack("<BBQ", 1, 0, 10) + ZERO16
                                        + struct.pack("<I", 0xFFFFFFFF))),
        "huge-entry-count": raw_tree(good, count=0xFFFFFFFF),
        "count-too-small": raw_tree(good, ent(b"b", payload), count=1),
        "trailing-bytes": raw_tree(good) + b"\0",
        "unknown-type": raw_tree(ent(b"x", struct.pack("<BBQ", 9, 0, 0))),
        "unknown-flags": raw_tree(ent(b"f", file_body([(ch, n)], flags=0x80))),
        "symlink-flags": raw_tree(ent(b"l", link_body(b"t", flags=1))),
        "symlink-nul": raw_tree(ent(b"l", link_body(b"ok\0/etc"))),
        "symlink-empty": raw_tree(ent(b"l", link_body(b""))),
        "symlink-truncated": raw_tree(ent(b"l", link_body(b"abc", size=4096))),
        "bad-magic": b"MLGTREX\x01" + raw_tree(good)[8:],
        "newer-version": b"MLGTREE\x02" + raw_tree(good)[8:],
        "truncated": raw_tree(good)[:-3],
        "subtree-missing": raw_tree(good, ent(b"sub", dir_body(b"\x42" * 16, 6, 1))),
        "subtree-is-a-chunk": raw_tree(ent(b"sub", dir_body(ch, 6, 1))),
    }
    return cases


BAD_TREE_CASES = [
    "dotdot-dir", "dotdot-file", "dot", "absolute", "absolute-etc", "slash", "sentinel-path",
    "nul", "empty-name", "git", "git-upper", "git-mixed", "duplicate", "duplicate-types",
    "unsorted", "nested-bad-name", "size-bigger-than-chunks", "size-smaller-than-chunks",
    "chunk-length-zero", "huge-chunk-count", "huge-entry-count", "count-too-small",
    "trailing-bytes", "unknown-type", "unknown-flags", "symlink-flags", "symlink-nul",
    "symlink-empty", "symlink-truncated", "bad-magic", "newer-version", "truncated",
    "subtree-missing", "subtree-is-a-chunk",
]


@pytest.mark.parametrize("case", BAD_TREE_CASES)
def test_malformed_tree_is_refused(planter: Planter, repo_dir: Path, sentinel: Path,
                                   case: str) -> None:
    raw = _bad_trees(planter, sentinel)[case]
    tid = planter.tree(raw)
    sid = planter.snapshot("evil", tid)
    planter.close()
    witness = Witness(repo_dir, sentinel)
    kinds = ("missing", "corrupt") if case == "subtree-missing" else ("corrupt",)
    _assert_refused(repo_dir, "evil", sid, witness, kinds)


def test_bad_tree_cases_are_all_run(planter: Planter, sentinel: Path) -> None:
    assert sorted(_bad_trees(planter, sentinel)) == sorted(BAD_TREE_CASES)


def test_chunk_shorter_or_longer_than_the_tree_says_is_refused(
        planter: Planter, repo_dir: Path, sentinel: Path) -> None:
    """The tree's chunk lengths add up to its size, but the chunks themselves differ.

    The tree is self-consistent and every object hashes to its id, yet the file
    would come out with a size and digest other than the tree's: a reader must
    refuse rather than write those bytes (docs/format.md: a corrupt store "never
    yields wrong bytes").
    """
    big = b"x" * 100
    cid, _ = planter.chunk(big)
    tid = planter.tree(raw_tree(ent(b"f", file_body([(cid, 10)], digest=digest_bytes(big[:10])))))
    sid = planter.snapshot("evil", tid, nbytes=10)
    planter.close()
    witness = Witness(repo_dir, sentinel)
    p = run_gitml(repo_dir, "checkout", check=False)
    wrote = (repo_dir / "evil/f").read_bytes() if (repo_dir / "evil/f").exists() else None
    assert p.returncode in (7, 8), (
        f"checkout accepted a 100-byte chunk recorded as 10 bytes (rc {p.returncode}, "
        f"wrote {None if wrote is None else len(wrote)} bytes)")
    assert not os.path.lexists(repo_dir / "evil")
    witness.check()
    with pytest.raises(FormatError):
        mlgit.checkout(sid, repo=repo_dir)
    assert not [n for n in _checkouts(repo_dir) if sid in n]


def test_missing_chunk_deep_in_the_tree_leaves_nothing(planter: Planter, repo_dir: Path,
                                                      sentinel: Path) -> None:
    """Most files are fine and get written; one chunk is missing: everything is undone."""
    files = [ent(f"f{i:02d}".encode(), planter.file(os.urandom(3000))) for i in range(30)]
    sub = planter.tree(raw_tree(*files, ent(b"zz-missing", file_body([(b"\x77" * 16, 5)]))))
    tid = planter.tree(raw_tree(*files, ent(b"sub", dir_body(sub, 0, 31))))
    sid = planter.snapshot("evil", tid, files=61)
    planter.close()
    _assert_refused(repo_dir, "evil", sid, Witness(repo_dir, sentinel), ("missing",))


@pytest.mark.parametrize("shape", ["two-files", "one-directory"])
def test_file_snapshot_with_wrong_shape_is_refused(planter: Planter, repo_dir: Path,
                                                   sentinel: Path, shape: str) -> None:
    """A ``root: file`` snapshot must hold exactly one file (or symlink) entry."""
    if shape == "two-files":
        tid = planter.tree(raw_tree(ent(b"a", planter.file(b"a")),
                                    ent(b"b", planter.file(b"b"))))
    else:
        inner = planter.tree(raw_tree(ent(b"x", planter.file(b"x"))))
        tid = planter.tree(raw_tree(ent(b"d", dir_body(inner, 1, 1))))
    sid = planter.snapshot("evil", tid, root="file")
    planter.close()
    witness = Witness(repo_dir, sentinel)
    p = run_gitml(repo_dir, "checkout", check=False)
    assert p.returncode in (7, 8), p.stderr
    assert not os.path.lexists(repo_dir / "evil")
    witness.check()
    try:
        got = mlgit.checkout(sid, repo=repo_dir)
    except FormatError:
        got = None
    assert got is None, f"mlgit.checkout of a malformed file snapshot returned {got}"
    witness.check()


# -- symlinks ----------------------------------------------------------------------------


def _link_tree(pl: Planter, links: dict[bytes, bytes], files: dict[bytes, bytes]) -> bytes:
    entries = {n: link_body(t) for n, t in links.items()}
    entries.update({n: pl.file(d) for n, d in files.items()})
    return pl.tree(raw_tree(*(ent(n, entries[n]) for n in sorted(entries))))


def _escaping_links(sentinel: Path) -> dict[bytes, bytes]:
    return {
        b"abs-sentinel": os.fsencode(sentinel),
        b"abs-victim": os.fsencode(sentinel / "victim"),
        b"etc": b"/etc",
        b"up": b"../../etc",
        b"up-sentinel": b"../../sentinel",
        b"up-victim": b"../../sentinel/victim",
        b"self": b"self",
        b"dangling": b"../../../../nowhere/at/all",
    }


def test_escaping_symlinks_are_recreated_verbatim(planter: Planter, repo_dir: Path,
                                                  sentinel: Path) -> None:
    links = _escaping_links(sentinel)
    inner = _link_tree(planter, {b"back": b"../../../sentinel/victim"}, {b"ok": b"ok\n"})
    entries = {n: link_body(t) for n, t in links.items()}
    entries[b"dir"] = dir_body(inner, 3, 2)
    entries[b"victim"] = planter.file(b"dataset's own victim\n")
    tid = planter.tree(raw_tree(*(ent(n, entries[n]) for n in sorted(entries))))
    sid = planter.snapshot("data", tid, files=len(links) + 3)
    planter.close()
    witness = Witness(repo_dir, sentinel)
    run_gitml(repo_dir, "checkout")
    got = read_tree(repo_dir / "data")
    want: dict[str, bytes | str] = {os.fsdecode(n): "link:" + os.fsdecode(t)
                                    for n, t in links.items()}
    want.update({"victim": b"dataset's own victim\n", "dir/ok": b"ok\n",
                 "dir/back": "link:../../../sentinel/victim"})
    assert got == want
    witness.check(allow_top={"data", ".gitignore"})
    ro = mlgit.checkout(sid, repo=repo_dir)
    assert read_tree(ro) == want
    witness.check(allow_top={"data", ".gitignore"})
    # Checking it out again (nothing to do) and with --force (rewrites) follows nothing.
    run_gitml(repo_dir, "checkout", "--force")
    assert read_tree(repo_dir / "data") == want
    witness.check(allow_top={"data", ".gitignore"})
    assert run_gitml(repo_dir, "fsck").returncode == 0


@pytest.mark.parametrize("order", ["link-then-dir", "dir-then-link-then-dir"])
def test_no_write_through_a_link_across_versions(planter: Planter, repo_dir: Path,
                                                 sentinel: Path, order: str) -> None:
    """v1 has ``x -> sentinel``; v2 has a directory ``x`` holding ``victim``: the
    directory replaces the link, the sentinel's ``victim`` is untouched."""
    as_link = planter.tree(raw_tree(ent(b"x", link_body(os.fsencode(sentinel)))))
    inner = planter.tree(raw_tree(ent(b"sub", dir_body(
        planter.tree(raw_tree(ent(b"inner", planter.file(b"PWNED inner\n")))), 12, 1)),
        ent(b"victim", planter.file(b"PWNED\n"))))
    as_dir = planter.tree(raw_tree(ent(b"x", dir_body(inner, 18, 2))))
    seq = [as_link, as_dir] if order == "link-then-dir" else [as_dir, as_link, as_dir]
    witness = Witness(repo_dir, sentinel)
    for t in seq:
        planter.snapshot("data", t)
        run_gitml(repo_dir, "checkout")
        witness.check(allow_top={"data", "data.mlgit", ".gitignore"})
        x = repo_dir / "data/x"
        if t == as_link:
            assert x.is_symlink()
            assert os.readlink(x) == str(sentinel)
        else:
            assert not x.is_symlink()
            assert read_tree(x) == {"victim": b"PWNED\n", "sub/inner": b"PWNED inner\n"}
    planter.close()


def test_work_tree_link_where_a_directory_goes(planter: Planter, repo_dir: Path,
                                               sentinel: Path) -> None:
    """A symlink planted in the work tree (the target itself, or a subdirectory of it)."""
    inner = planter.tree(raw_tree(ent(b"victim", planter.file(b"PWNED\n"))))
    tid = planter.tree(raw_tree(ent(b"sub", dir_body(inner, 6, 1)),
                                ent(b"victim", planter.file(b"PWNED\n"))))
    planter.snapshot("data", tid, files=2)
    planter.close()
    data = repo_dir / "data"
    data.symlink_to(sentinel)
    witness = Witness(repo_dir, sentinel)
    p = run_gitml(repo_dir, "checkout", check=False)
    assert p.returncode == 6, p.stderr  # a file (link) where a directory goes: refused
    assert data.is_symlink()
    witness.check()
    run_gitml(repo_dir, "checkout", "--force")
    assert not data.is_symlink()
    assert read_tree(data) == {"victim": b"PWNED\n",
                                                         "sub/victim": b"PWNED\n"}
    witness.check(allow_top={".gitignore"})
    # A subdirectory replaced by a link to the sentinel, then a checkout that must
    # rewrite files below it.
    shutil.rmtree(data / "sub")
    (data / "sub").symlink_to(sentinel)
    (data / "victim").unlink()
    for force in ([], ["--force"]):
        run_gitml(repo_dir, "checkout", *force)
        witness.check(allow_top={".gitignore"})
        assert not (data / "sub").is_symlink()
        assert read_tree(data) == {"victim": b"PWNED\n", "sub/victim": b"PWNED\n"}
        shutil.rmtree(data / "sub")
        (data / "sub").symlink_to(sentinel)


def test_work_tree_link_where_a_file_goes(planter: Planter, repo_dir: Path,
                                          sentinel: Path) -> None:
    """A file snapshot whose path in the work tree is a link to a file outside."""
    tid = planter.tree(raw_tree(ent(b"model.bin", planter.file(b"PWNED\n"))))
    planter.snapshot("model.bin", tid, root="file")
    planter.close()
    target = repo_dir / "model.bin"
    target.symlink_to(sentinel / "victim")
    witness = Witness(repo_dir, sentinel)
    for force in ([], ["--force"]):
        p = run_gitml(repo_dir, "checkout", *force, check=False)
        witness.check(allow_top={".gitignore"})
        if p.returncode == 0:
            assert not target.is_symlink()
            assert target.read_bytes() == b"PWNED\n"
            target.unlink()
            target.symlink_to(sentinel / "victim")
        else:
            assert p.returncode == 6, p.stderr


def test_symlinked_parent_of_the_target(planter: Planter, repo_dir: Path,
                                        sentinel: Path) -> None:
    """``sub`` is a link to the sentinel and a pointer ``sub/data.mlgit`` is planted
    through it: nothing may be materialized into the sentinel."""
    tid = planter.tree(raw_tree(ent(b"victim", planter.file(b"PWNED\n"))))
    sid = planter.snapshot("data", tid)
    planter.close()
    (repo_dir / "data.mlgit").unlink()
    (repo_dir / "sub").symlink_to(sentinel)
    witness = Witness(repo_dir, sentinel)
    pointer = encode_pointer(Pointer("dataset", "data", ObjectID(sid)))
    blob = _hash_blob(repo_dir, pointer)
    git(repo_dir, "update-index", "--add", "--cacheinfo", f"100644,{blob},sub/data.mlgit")
    p = run_gitml(repo_dir, "checkout", check=False)
    witness.check()
    assert p.returncode != 0 or not (sentinel / "data").exists()


def _hash_blob(root: Path, data: bytes) -> str:
    import subprocess

    return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=root, input=data,
                          capture_output=True, check=True).stdout.decode().strip()


# -- packs and indexes -------------------------------------------------------------------


def _real_dataset(root: Path) -> dict[str, bytes | str]:
    make_tree(root / "data", {f"d{i % 3}/f{i}.bin": os.urandom(20_000) for i in range(12)})
    run_gitml(root, "add", "data")
    git(root, "commit", "-qm", "v1")
    want = read_tree(root / "data")
    shutil.rmtree(root / "data")
    return want


def _packs(root: Path) -> list[Path]:
    return sorted((root / ".git/ml/packs").glob("*.pack"))


def _write_pack(root: Path, objects: list[tuple[RawObjectID, int, int, int, bytes]],
                index_rows: list[IndexEntry] | None = None) -> Path:
    """Write a pack of (oid, type, codec, raw_len, stored) and its index (or ``index_rows``)."""
    body = bytearray(PACK_MAGIC)
    rows = []
    for oid, type_, codec, raw_len, stored in objects:
        rows.append(IndexEntry(oid, len(body), len(stored), raw_len, type_, codec))
        body += ENTRY_HEADER.pack(oid, type_, codec, raw_len, len(stored)) + stored
    index = encode_index(index_rows if index_rows is not None else rows)
    stem = "pack-" + digest_bytes(index).hex()
    packs = root / ".git/ml/packs"
    (packs / f"{stem}.pack").write_bytes(bytes(body))
    (packs / f"{stem}.idx").write_bytes(index)
    return packs / f"{stem}.pack"


def _zstd_frame(content_size: int, payload: bytes) -> bytes:
    """A zstd frame declaring ``content_size`` bytes but holding ``payload`` (one raw block)."""
    fhd = 0b1100_0000 | 0b0010_0000  # 8-byte content size, single segment
    block = (1 | (0 << 1) | (len(payload) << 3)).to_bytes(3, "little") + payload
    return b"\x28\xb5\x2f\xfd" + bytes([fhd]) + content_size.to_bytes(8, "little") + block


def _plant_dataset_with_chunk_in(root: Path, data: bytes,
                                 stored_entry: tuple[int, int, bytes]) -> str:
    """A dataset whose only chunk lives in a hand-written pack with the given entry."""
    cid = raw_object_id(data)
    codec, raw_len, stored = stored_entry
    _write_pack(root, [(cid, OBJ_CHUNK, codec, raw_len, stored)])
    pl = Planter(root)
    try:
        tid = pl.tree(raw_tree(ent(b"f", file_body([(cid, len(data))],
                                                   digest=digest_bytes(data)))))
        return pl.snapshot("evil", tid, nbytes=len(data))
    finally:
        pl.close()


@pytest.mark.parametrize("case", ["bomb-small-index", "bomb-at-limit", "frame-lies-short",
                                  "garbage-frame", "raw-wrong-bytes"])
def test_hostile_pack_entry(repo_dir: Path, sentinel: Path, case: str) -> None:
    data = b"small honest content\n" * 4
    entry = {
        # The frame claims 1 TiB; the index says the object is small.
        "bomb-small-index": (1, len(data), _zstd_frame(1 << 40, data)),
        # Frame and index agree on 256 MiB, the limit, but the frame holds a few bytes.
        "bomb-at-limit": (1, MAX_OBJECT_LEN, _zstd_frame(MAX_OBJECT_LEN, data)),
        "frame-lies-short": (1, len(data), _zstd_frame(len(data), data[:-5])),
        "garbage-frame": (1, len(data), b"\x28\xb5\x2f\xfd" + os.urandom(40)),
        "raw-wrong-bytes": (0, len(data), data[::-1]),
    }[case]
    sid = _plant_dataset_with_chunk_in(repo_dir, data, entry)
    _assert_refused(repo_dir, "evil", sid, Witness(repo_dir, sentinel))


@pytest.mark.parametrize("case", ["truncate-pack", "truncate-index", "empty-index",
                                  "index-without-pack", "flip-index-byte", "garbage-pack"])
def test_damaged_pack_or_index(repo_dir: Path, sentinel: Path, case: str) -> None:
    _real_dataset(repo_dir)
    pack = max(_packs(repo_dir), key=lambda p: p.stat().st_size)
    idx = pack.with_suffix(".idx")
    if case == "truncate-pack":
        os.truncate(pack, pack.stat().st_size // 2)
    elif case == "truncate-index":
        os.truncate(idx, idx.stat().st_size - 7)
    elif case == "empty-index":
        idx.write_bytes(b"")
    elif case == "index-without-pack":
        pack.unlink()
    elif case == "flip-index-byte":
        raw = bytearray(idx.read_bytes())
        raw[20] ^= 0x01
        idx.write_bytes(bytes(raw))
    else:
        pack.write_bytes(PACK_MAGIC + os.urandom(pack.stat().st_size - 8))
    sid = (repo_dir / ".git/ml/refs/datasets/data").read_text().strip()
    witness = Witness(repo_dir, sentinel)
    kinds = ("bad-index", "corrupt", "missing")
    p = run_gitml(repo_dir, "checkout", check=False)
    assert p.returncode in (7, 8), (p.returncode, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.path.lexists(repo_dir / "data")
    witness.check()
    with pytest.raises(FormatError):
        mlgit.checkout(sid, repo=repo_dir)
    assert not [n for n in _checkouts(repo_dir) if sid in n]
    _assert_fsck_objects(repo_dir, kinds)
    witness.check()


def test_fsck_reports_a_bad_index_and_checks_the_rest(repo_dir: Path) -> None:
    """docs/cli.md: fsck prints one line per problem, ``bad-index: ...`` among them, and
    exits 1 (so ``--repair`` can fetch what the damaged pack held). One torn index
    must not stop it from checking every other pack."""
    _real_dataset(repo_dir)
    packs = _packs(repo_dir)

    def only_chunks(pack: Path) -> bool:
        r = PackReader(pack, pack.with_suffix(".idx"))
        try:
            return all(e.type == OBJ_CHUNK for e in r.entries)
        finally:
            r.close()

    # A pack of chunks only: the snapshot and trees stay readable, so fsck walks them.
    idx = next(p for p in packs if only_chunks(p)).with_suffix(".idx")
    os.truncate(idx, idx.stat().st_size - 7)
    p = run_gitml(repo_dir, "fsck", "--json", check=False)
    assert p.returncode == 1, f"fsck died instead of reporting: rc {p.returncode}: {p.stderr}"
    report = json.loads(p.stdout)
    assert [x["kind"] for x in report["problems"]].count("bad-index") == 1, report
    assert report["packs"] == len(packs)


@pytest.mark.parametrize("case", ["offset-past-end", "length-past-end", "offset-into-magic",
                                  "points-at-other-object", "wrong-type-in-index"])
def test_index_entry_that_lies(repo_dir: Path, sentinel: Path, case: str) -> None:
    data = b"lying index\n" * 10
    other = b"another object\n" * 10
    cid, oid2 = raw_object_id(data), raw_object_id(other)
    # Write a good pack first to learn the offsets, then lie about them in the index.
    good_pack = _write_pack(repo_dir, [(cid, OBJ_CHUNK, 0, len(data), data),
                                       (oid2, OBJ_CHUNK, 0, len(other), other)])
    size = good_pack.stat().st_size
    rows = {e.oid: e for e in [IndexEntry(cid, 8, len(data), len(data), OBJ_CHUNK, 0),
                               IndexEntry(oid2, 8 + 26 + len(data), len(other), len(other),
                                          OBJ_CHUNK, 0)]}
    good_pack.with_suffix(".idx").unlink()
    pack_bytes = good_pack.read_bytes()
    good_pack.unlink()
    e = rows[cid]
    lie = {
        "offset-past-end": e._replace(offset=size + 100),
        "length-past-end": e._replace(stored_len=size, raw_len=size),
        "offset-into-magic": e._replace(offset=3),
        "points-at-other-object": e._replace(offset=rows[oid2].offset),
        "wrong-type-in-index": e._replace(type=OBJ_TREE),
    }[case]
    rows[cid] = lie
    body = b"".join(INDEX_ENTRY.pack(*r) for r in sorted(rows.values()))
    head = INDEX_MAGIC + struct.pack("<II", len(rows), 0)
    index = head + body + digest_bytes(head + body)
    stem = "pack-" + digest_bytes(index).hex()
    pl = Planter(repo_dir)  # before the lying pack exists: a bad index stops every write
    try:
        tid = pl.tree(raw_tree(ent(b"f", file_body([(cid, len(data))], digest=cid))))
        sid = pl.snapshot("evil", tid, nbytes=len(data))
    finally:
        pl.close()
    packs = repo_dir / ".git/ml/packs"
    (packs / f"{stem}.pack").write_bytes(pack_bytes)
    (packs / f"{stem}.idx").write_bytes(index)
    with contextlib.suppress(FormatError):
        # decode_index is the first line of defence; PackReader.read the second.
        PackReader(packs / f"{stem}.pack", packs / f"{stem}.idx").close()
    kinds = ("bad-index", "corrupt", "missing")
    _assert_refused(repo_dir, "evil", sid, Witness(repo_dir, sentinel), kinds)


# -- property tests: the pack reader on random input -------------------------------------


def _index_bytes(rows: list[tuple[bytes, int, int, int, int, int]]) -> bytes:
    head = INDEX_MAGIC + struct.pack("<II", len(rows), 0)
    body = b"".join(INDEX_ENTRY.pack(*r) for r in rows)
    return head + body + digest_bytes(head + body)


def _read_all(pack: bytes, index: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        stem = "pack-" + digest_bytes(index).hex()  # a pack is named by its index's hash
        pp, ip = Path(d) / f"{stem}.pack", Path(d) / f"{stem}.idx"
        pp.write_bytes(pack)
        ip.write_bytes(index)
        try:
            reader = PackReader(pp, ip)
        except FormatError:
            return
        try:
            for e in reader.entries:
                with contextlib.suppress(FormatError):
                    reader.read(e)
                reader.find(e.oid)
        finally:
            reader.close()


_row = st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 4096),
                 st.integers(0, 4096), st.integers(0, 1 << 29), st.integers(0, 6),
                 st.integers(0, 3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=4096), rows=st.lists(_row, max_size=8),
       magic=st.booleans(), sort=st.booleans())
def test_pack_reader_random_pack_with_valid_looking_index(
        body: bytes, rows: list[tuple[bytes, int, int, int, int, int]], magic: bool,
        sort: bool) -> None:
    pack = (PACK_MAGIC + body) if magic else body
    if sort:
        rows = sorted({r[0]: r for r in rows}.values())
    _read_all(pack, _index_bytes(rows))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), body=st.binary(max_size=2048))
def test_pack_reader_random_pack_with_index_that_fits(data: st.DataObject, body: bytes) -> None:
    """Index rows that pass every bounds check, over random pack bytes."""
    pack = PACK_MAGIC + body
    n = data.draw(st.integers(0, 6))
    rows = []
    for _ in range(n):
        off = data.draw(st.integers(8, max(8, len(pack) - 26)))
        slen = data.draw(st.integers(0, max(0, len(pack) - off - 26)))
        codec = data.draw(st.integers(0, 1))
        rlen = slen if codec == 0 else data.draw(st.integers(0, 1 << 20))
        rows.append((data.draw(st.binary(min_size=16, max_size=16)), off, slen, rlen,
                     data.draw(st.integers(1, 4)), codec))
    rows = sorted({r[0]: r for r in rows}.values())
    _read_all(pack, _index_bytes(rows))


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=600), prefix=st.sampled_from([b"", INDEX_MAGIC, b"MLGIDX\x00\x07"]),
       fix_checksum=st.booleans(), pack=st.binary(max_size=512))
def test_pack_reader_random_index(raw: bytes, prefix: bytes, fix_checksum: bool,
                                  pack: bytes) -> None:
    index = prefix + raw
    if fix_checksum:
        index += digest_bytes(index)
    _read_all(PACK_MAGIC + pack, index)


# -- one id, two roles ---------------------------------------------------------------------


def test_file_whose_bytes_are_a_tree_does_not_make_gc_lose_data(repo_dir: Path) -> None:
    """Ids hash content, not type: a chunk and a tree with equal bytes are one object.

    Dataset ``a`` holds a file whose content is exactly the tree bytes of dataset
    ``b``'s ``sub/``. ``a`` is stored first, so the object is indexed as a chunk;
    ``b``'s tree then reuses it as its subtree. fsck and gc must still walk it as a
    tree (its role in ``b``), or gc deletes ``sub/x``'s chunk, which ``b`` needs.
    """
    from mlgit.format.tree import TYPE_FILE, TreeEntry, encode_tree

    content = b"precious content\n" * 10
    tree_bytes = encode_tree([TreeEntry(b"x", TYPE_FILE, len(content), False,
                                        file_digest(content),
                                        ((raw_object_id(content), len(content)),))])
    make_tree(repo_dir, {"a/blob.bin": tree_bytes, "b/sub/x": content})
    run_gitml(repo_dir, "add", "a")
    run_gitml(repo_dir, "add", "b")
    git(repo_dir, "commit", "-qm", "both")
    run_gitml(repo_dir, "gc", "--prune", "now")
    fsck = run_gitml(repo_dir, "fsck", check=False)
    shutil.rmtree(repo_dir / "b")
    p = run_gitml(repo_dir, "checkout", "b", check=False)
    assert p.returncode == 0, (
        f"gc --prune now deleted data dataset b needs (fsck said: {fsck.stdout.strip()!r}); "
        f"checkout: {p.stderr.strip()}")
    assert read_tree(repo_dir / "b") == {"sub/x": content}


def test_fsck_checks_a_subtree_in_its_role(planter: Planter, repo_dir: Path) -> None:
    """A directory entry naming a chunk whose bytes are no tree: checkout refuses, so
    fsck must report it too (fsck ok must mean the data can be read back)."""
    ch, _ = planter.chunk(b"definitely not a tree")
    tid = planter.tree(raw_tree(ent(b"sub", dir_body(ch, 0, 1))))
    planter.snapshot("evil", tid)
    planter.close()
    assert run_gitml(repo_dir, "checkout", check=False).returncode == 7
    p = run_gitml(repo_dir, "fsck", "--json", check=False)
    assert p.returncode == 1, f"fsck passes a store checkout cannot read: {p.stdout}"
