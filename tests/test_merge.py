"""Merging datasets: git-ml's merge driver for pointer files, through the real git.

Two teammates over a bare origin on a local path: Alice and Bob change one
dataset; ``git pull`` (and ``git merge``) call the driver ``git ml init``
installed, which merges the snapshots' trees three ways. A clean merge makes a
snapshot with both parents; a conflict leaves a conflicted pointer that ``git ml
status`` lists and ``git ml add`` resolves with both parents. ``git ml checkout``
fetches what it lacks. Hostile driver input changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml

import mlgit
from mlgit import errors
from mlgit.format.ids import (
    ObjectID,
    RawObjectID,
    digest_to_hex,
    file_digest,
    hex_to_raw,
    raw_object_id,
)
from mlgit.format.limits import MAX_POINTER_LEN
from mlgit.format.pointer import Pointer, PointerConflict, decode_pointer, encode_pointer
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TYPE_SYMLINK, TreeEntry, encode_tree
from mlgit.snapshot.merge import MergeInput, merge_trees

ID_A = ObjectID("a" * 32)
ID_B = ObjectID("b" * 32)
ID_C = ObjectID("c" * 32)


def _pid(root: Path, pointer: str = "data.mlgit") -> str:
    return decode_pointer((root / pointer).read_bytes()).id


def _show(root: Path, rev: str) -> dict[str, object]:
    out = json.loads(run_gitml(root, "show", "--json", "--no-files", rev).stdout)
    assert isinstance(out, dict)
    return out


def _digest(data: bytes) -> str:
    return digest_to_hex(file_digest(data))


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(r))
    return r


@pytest.fixture
def alice(tmp_path: Path, origin: Path) -> Path:
    """Alice's clone: a dataset ``data`` (a.txt, b.txt, sub/c.txt) and a file dataset, pushed."""
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init")
    make_tree(a, {"data/a.txt": "a v1\n", "data/b.txt": "b v1\n", "data/sub/c.txt": "c v1\n",
                  "model.bin": os.urandom(2000), "train.py": "print(1)\n"})
    run_gitml(a, "add", "data", "model.bin")
    git(a, "add", "train.py")
    git(a, "commit", "-qm", "v1")
    git(a, "remote", "add", "origin", str(origin))
    git(a, "push", "-q", "-u", "origin", "main")
    git(a, "config", "pull.rebase", "false")
    return a


@pytest.fixture
def bob(tmp_path: Path, alice: Path, origin: Path) -> Path:  # noqa: ARG001 - alice pushed
    """Bob's clone of the origin, with the data pulled."""
    b = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(b))
    run_gitml(b, "pull")
    git(b, "config", "pull.rebase", "false")
    git(b, "config", "user.name", "Bob")
    return b


def _change(root: Path, files: dict[str, str | None], msg: str, paths: tuple[str, ...] = ("data",)
            ) -> str:
    """Write (or, for None, delete) files, `git ml add` and commit; return the data's new id."""
    for rel, text in files.items():
        p = root / rel
        if text is None:
            if p.is_dir():
                import shutil
                shutil.rmtree(p)
            else:
                p.unlink()
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    run_gitml(root, "add", *paths)
    git(root, "commit", "-qam", msg)
    return _pid(root, f"{paths[0]}.mlgit")


# -- a clean merge ------------------------------------------------------------------

def test_clean_merge_through_git_pull(alice: Path, bob: Path) -> None:
    a1 = _change(alice, {"data/a.txt": "a by alice\n"}, "alice changes a")
    git(alice, "push", "-q")
    b1 = _change(bob, {"data/b.txt": "b by bob\n"}, "bob changes b")

    p = git(bob, "pull", "--no-edit", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    text = (bob / "data.mlgit").read_text()
    assert "<<<<<<<" not in text
    assert "mlgit-pointer: 1" in text
    merged = _pid(bob)
    snap = _show(bob, merged)
    assert snap["parents"] == [b1, a1]  # ours first
    # The post-merge hook materialized the merge (fetching Alice's chunk for a.txt).
    assert read_tree(bob / "data") == {"a.txt": b"a by alice\n", "b.txt": b"b by bob\n",
                                       "sub/c.txt": b"c v1\n"}
    st = json.loads(run_gitml(bob, "status", "--json").stdout)
    assert {e["path"]: e["state"] for e in st} == {"data": "clean", "model.bin": "clean"}
    assert all(e["conflict"] is None for e in st)
    assert run_gitml(bob, "fsck").returncode == 0
    assert (bob / ".git/ml/refs/datasets/data").read_text().strip() == merged
    assert len(git(bob, "log", "-1", "--format=%P").stdout.split()) == 2  # a merge commit
    assert json.loads(run_gitml(bob, "history", "data", "--json").stdout)[1]["id"] == b1

    # The merge commit is pushed with plain git, and Alice gets the merged data.
    p = git(bob, "push", "-q", check=False)
    assert p.returncode == 0, p.stderr
    p = git(alice, "pull", "-q", "--no-edit", check=False)
    assert p.returncode == 0, p.stderr
    assert _pid(alice) == merged
    assert read_tree(alice / "data") == read_tree(bob / "data")
    assert run_gitml(alice, "fsck").returncode == 0


def test_merge_fetches_the_other_side_first(alice: Path, bob: Path) -> None:
    a1 = _change(alice, {"data/sub/c.txt": "c by alice\n"}, "alice changes c")
    git(alice, "push", "-q")
    _change(bob, {"data/a.txt": "a by bob\n"}, "bob changes a")
    git(bob, "fetch", "-q")  # git's objects only: Alice's snapshot is not here
    with mlgit.Repo(bob) as r:
        assert not r.store.objects.has_committed(hex_to_raw(a1))
    p = git(bob, "merge", "--no-edit", "origin/main", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    with mlgit.Repo(bob) as r:
        assert r.store.objects.has_committed(hex_to_raw(a1))
    assert _show(bob, _pid(bob))["parents"][1] == a1  # type: ignore[index]
    assert (bob / "data/sub/c.txt").read_text() == "c by alice\n"
    assert (bob / "data/a.txt").read_text() == "a by bob\n"


def test_identical_changes_on_both_sides_merge_cleanly(alice: Path, bob: Path) -> None:
    _change(alice, {"data/a.txt": "same\n", "data/new.txt": "new\n"}, "alice")
    git(alice, "push", "-q")
    _change(bob, {"data/a.txt": "same\n", "data/new.txt": "new\n", "data/b.txt": "bob\n"}, "bob")
    p = git(bob, "pull", "--no-edit", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert read_tree(bob / "data") == {"a.txt": b"same\n", "b.txt": b"bob\n", "new.txt": b"new\n",
                                       "sub/c.txt": b"c v1\n"}


# -- a conflict, and its resolution ---------------------------------------------------

def test_conflict_is_listed_and_resolved_with_both_parents(alice: Path, bob: Path) -> None:
    a1 = _change(alice, {"data/a.txt": "a by alice\n", "data/sub/c.txt": "c by alice\n"},
                 "alice")
    git(alice, "push", "-q")
    b1 = _change(bob, {"data/a.txt": "a by bob\n", "data/b.txt": "b by bob\n"}, "bob")

    p = git(bob, "pull", "--no-edit", check=False)
    assert p.returncode != 0
    assert "data.mlgit" in p.stdout
    assert "CONFLICT" in p.stdout
    assert "a.txt" in p.stderr  # the driver's own line
    assert "data.mlgit" in git(bob, "diff", "--name-only", "--diff-filter=U").stdout
    ptr = decode_pointer((bob / "data.mlgit").read_bytes())
    assert ptr.conflict is not None
    assert (ptr.conflict.ours, ptr.conflict.theirs) == (b1, a1)
    assert ptr.conflict.paths == ("a.txt",)

    st = run_gitml(bob, "status", "--json")
    assert st.returncode == 0
    entry = {e["path"]: e for e in json.loads(st.stdout)}["data"]
    assert entry["state"] == "conflicted"
    c = entry["conflict"]
    assert (c["ours"], c["theirs"], c["count"]) == (b1, a1, 1)
    assert c["paths"] == [{
        "path": "a.txt", "kind": "both-modified",
        "base": {"type": "file", "size": 5, "id": _digest(b"a v1\n")},
        "ours": {"type": "file", "size": 9, "id": _digest(b"a by bob\n")},
        "theirs": {"type": "file", "size": 11, "id": _digest(b"a by alice\n")}}]
    human = run_gitml(bob, "status")
    assert human.returncode == 0
    assert "data: conflicted" in human.stdout
    assert "both modified" in human.stdout
    assert b1[:12] in human.stdout
    assert a1[:12] in human.stdout
    assert _digest(b"a by bob\n")[:12] in human.stdout
    assert _digest(b"a by alice\n")[:12] in human.stdout
    assert "git ml add data" in human.stdout

    # checkout: ours plus what merged cleanly (Alice's c.txt, fetched lazily).
    run_gitml(bob, "checkout", "data")
    assert read_tree(bob / "data") == {"a.txt": b"a by bob\n", "b.txt": b"b by bob\n",
                                       "sub/c.txt": b"c by alice\n"}
    (bob / "data/a.txt").write_text("a by both\n")
    run_gitml(bob, "add", "data")
    resolved = _pid(bob)
    assert "mlgit-pointer: 1" in (bob / "data.mlgit").read_text()
    p = git(bob, "commit", "-q", "--no-edit", check=False)
    assert p.returncode == 0, p.stdout + p.stderr

    assert _show(bob, resolved)["parents"] == [b1, a1]
    hist = json.loads(run_gitml(bob, "history", "data", "--json").stdout)
    assert hist[0]["id"] == resolved
    assert hist[0]["parents"] == [b1, a1]
    assert hist[1]["id"] == b1  # ~1 is ours
    log = json.loads(run_gitml(bob, "log", "--json", "-n", "1").stdout)[0]
    assert len(log["parents"]) == 2
    assert {d["name"]: d["id"] for d in log["datasets"]}["data"] == resolved
    st2 = json.loads(run_gitml(bob, "status", "--json").stdout)
    assert {e["path"]: e["state"] for e in st2}["data"] == "clean"
    assert run_gitml(bob, "fsck").returncode == 0
    assert (bob / ".git/ml/refs/datasets/data").read_text().strip() == resolved


def test_resolving_with_ours_only_warns(alice: Path, bob: Path) -> None:
    _change(alice, {"data/a.txt": "alice\n", "data/sub/c.txt": "alice c\n"}, "alice")
    git(alice, "push", "-q")
    b1 = _change(bob, {"data/a.txt": "bob\n"}, "bob")
    assert git(bob, "pull", "--no-edit", check=False).returncode != 0
    out = run_gitml(bob, "add", "data")  # the data is still exactly Bob's
    assert "merged cleanly" in out.stderr
    assert _show(bob, _pid(bob))["parents"][0] == b1  # type: ignore[index]


def test_deletes_against_modifications(alice: Path, bob: Path) -> None:
    # Alice deletes sub/ (Bob leaves it alone: clean) and a.txt (Bob modifies it: conflict).
    a1 = _change(alice, {"data/sub": None, "data/a.txt": None}, "alice deletes")
    git(alice, "push", "-q")
    b1 = _change(bob, {"data/a.txt": "a by bob\n", "data/b.txt": "b by bob\n"}, "bob")
    assert git(bob, "pull", "--no-edit", check=False).returncode != 0
    entry = {e["path"]: e for e in json.loads(run_gitml(bob, "status", "--json").stdout)}["data"]
    (c,) = entry["conflict"]["paths"]
    assert (c["path"], c["kind"], c["theirs"]) == ("a.txt", "deleted-by-them", None)
    assert c["ours"]["id"] == _digest(b"a by bob\n")
    run_gitml(bob, "checkout", "data")
    assert read_tree(bob / "data") == {"a.txt": b"a by bob\n", "b.txt": b"b by bob\n"}
    (bob / "data/a.txt").unlink()  # take Alice's delete
    run_gitml(bob, "add", "data")
    git(bob, "commit", "-q", "--no-edit")
    assert _show(bob, _pid(bob))["parents"] == [b1, a1]
    assert read_tree(bob / "data") == {"b.txt": b"b by bob\n"}

    # The other way round, with plain git merge: Bob deletes, Alice modifies.
    git(bob, "push", "-q")
    git(alice, "pull", "-q", "--no-edit")
    _change(alice, {"data/b.txt": "b by alice\n"}, "alice modifies b")
    git(alice, "push", "-q")
    _change(bob, {"data/b.txt": None, "data/d.txt": "d\n"}, "bob deletes b")
    git(bob, "fetch", "-q")
    assert git(bob, "merge", "--no-edit", "origin/main", check=False).returncode != 0
    entry = {e["path"]: e for e in json.loads(run_gitml(bob, "status", "--json").stdout)}["data"]
    assert [(x["path"], x["kind"]) for x in entry["conflict"]["paths"]] == [
        ("b.txt", "deleted-by-us")]


def test_file_dataset_merge(alice: Path, bob: Path) -> None:
    # Content on one side, the executable bit on the other: a clean merge.
    new = os.urandom(3000)
    (alice / "model.bin").write_bytes(new)
    m1 = _change(alice, {}, "alice retrains", paths=("model.bin",))
    git(alice, "push", "-q")
    (bob / "model.bin").chmod(0o755)
    m2 = _change(bob, {}, "bob marks it executable", paths=("model.bin",))
    p = git(bob, "pull", "--no-edit", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    merged = _pid(bob, "model.bin.mlgit")
    snap = _show(bob, merged)
    assert snap["parents"] == [m2, m1]
    assert snap["root"] == "file"
    assert (bob / "model.bin").read_bytes() == new
    assert os.access(bob / "model.bin", os.X_OK)
    assert run_gitml(bob, "fsck").returncode == 0
    git(bob, "push", "-q")

    # Both change the content: a conflict on the one file.
    git(alice, "pull", "-q", "--no-edit")
    (alice / "model.bin").write_bytes(b"alice" * 100)
    _change(alice, {}, "alice", paths=("model.bin",))
    git(alice, "push", "-q")
    (bob / "model.bin").write_bytes(b"bob" * 100)
    _change(bob, {}, "bob", paths=("model.bin",))
    assert git(bob, "pull", "--no-edit", check=False).returncode != 0
    entry = {e["path"]: e for e in json.loads(run_gitml(bob, "status", "--json").stdout)}
    paths = entry["model.bin"]["conflict"]["paths"]
    assert [(x["path"], x["kind"]) for x in paths] == [("model.bin", "both-modified")]
    assert paths[0]["theirs"]["id"] == _digest(b"alice" * 100)
    (bob / "model.bin").write_bytes(b"both" * 100)
    run_gitml(bob, "add", "model.bin")
    git(bob, "commit", "-q", "--no-edit")
    assert len(_show(bob, _pid(bob, "model.bin.mlgit"))["parents"]) == 2  # type: ignore[arg-type]


# -- checkout fetches ------------------------------------------------------------------

def test_checkout_fetches_what_it_lacks(alice: Path, tmp_path: Path, origin: Path) -> None:
    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", str(origin), str(carol))
    run_gitml(carol, "init")  # no data fetched yet
    assert not (carol / "data").exists()
    out = run_gitml(carol, "checkout")
    assert "data:" in out.stdout
    assert read_tree(carol / "data") == read_tree(alice / "data")
    assert (carol / "model.bin").read_bytes() == (alice / "model.bin").read_bytes()
    # A newer version of which only the snapshot is here: checkout brings the chunks.
    a2 = _change(alice, {"data/b.txt": "b v2\n"}, "v2")
    git(alice, "push", "-q")
    git(carol, "config", "ml.hooks", "false")
    git(carol, "pull", "-q", "--ff-only")
    run_gitml(carol, "fetch", "origin", a2)  # whole: then checkout has nothing to fetch
    run_gitml(carol, "checkout", "data")
    assert (carol / "data/b.txt").read_text() == "b v2\n"


@pytest.mark.usefixtures("alice")
def test_checkout_without_a_remote_says_why(tmp_path: Path, origin: Path) -> None:
    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", str(origin), str(carol))
    run_gitml(carol, "init")
    git(carol, "config", "ml.lazyFetch", "false")
    p = run_gitml(carol, "checkout", check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code
    assert "no remote to fetch it from" in p.stderr
    assert not (carol / "data").exists()


# -- init installs the driver, politely ---------------------------------------------------

def test_init_installs_the_merge_driver_politely(bare_git_repo: Path) -> None:
    root = bare_git_repo
    out = run_gitml(root, "init").stdout
    assert "merge driver: installed" in out
    assert "merge attribute: installed" in out
    assert git(root, "config", "merge.mlgit.driver").stdout.strip() == \
        "git-ml merge-driver %O %A %B %P"
    assert "*.mlgit merge=mlgit" in (root / ".git/info/attributes").read_text()
    assert git(root, "check-attr", "merge", "--", "sub/x.mlgit").stdout.strip().endswith(
        "merge: mlgit")
    assert git(root, "status", "--porcelain").stdout == ""  # nothing committed changes
    before = (root / ".git/config").read_text(), (root / ".git/info/attributes").read_text()
    again = run_gitml(root, "init").stdout
    assert again.splitlines() == [again.splitlines()[0]]  # only "Reinitialized ..."
    assert ((root / ".git/config").read_text(), (root / ".git/info/attributes").read_text()) \
        == before

    # Someone else's driver is left alone and reported; no attribute is added for it.
    other = bare_git_repo.parent / "other"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "config", "merge.mlgit.driver", "my-merge %A %B")
    out = run_gitml(other, "init").stdout
    assert "merge driver: left alone" in out
    assert "my-merge" in out
    assert git(other, "config", "merge.mlgit.driver").stdout.strip() == "my-merge %A %B"
    attrs = other / ".git/info/attributes"
    assert not attrs.exists() or "mlgit" not in attrs.read_text()

    # A merge attribute already set for *.mlgit (here a committed .gitattributes) is kept.
    third = bare_git_repo.parent / "third"
    third.mkdir()
    git(third, "init", "-q")
    (third / ".gitattributes").write_text("*.mlgit merge=union\n")
    out = run_gitml(third, "init").stdout
    assert "merge attribute: left alone" in out
    assert "merge=union" in out
    assert git(third, "check-attr", "merge", "--", "x.mlgit").stdout.strip().endswith("union")


# -- hostile driver input -------------------------------------------------------------------

def _store_state(root: Path) -> tuple[list[str], dict[str, str]]:
    ml = root / ".git/ml"
    packs = sorted(p.name for p in (ml / "packs").iterdir())
    refs = {str(p.relative_to(ml)): p.read_text() for p in (ml / "refs").rglob("*") if p.is_file()}
    return packs, refs


@pytest.mark.parametrize("which", ["base", "ours", "theirs"])
@pytest.mark.parametrize("garbage", [
    b"<<<<<<< HEAD\nid: 1\n=======\n>>>>>>> x\n",
    b"\xff\xfe not utf-8",
    b"x" * (MAX_POINTER_LEN + 1),
    b"mlgit-pointer: 2\nkind: dataset\nname: data\nid: " + b"a" * 32 + b"\nours: zz\n",
])
def test_driver_refuses_garbage(bob: Path, which: str, garbage: bytes) -> None:
    good = (bob / "data.mlgit").read_bytes()
    files = {}
    for side in ("base", "ours", "theirs"):
        f = bob / f".merge_file_{side}"
        f.write_bytes(garbage if side == which else good)
        files[side] = f
    before = _store_state(bob)
    p = run_gitml(bob, "merge-driver", files["base"].name, files["ours"].name,
                  files["theirs"].name, "data.mlgit", check=False)
    assert p.returncode == errors.PointerError.exit_code
    assert p.stderr.startswith("git-ml: error: ")
    assert len(p.stderr.strip().splitlines()) == 1
    assert which in p.stderr
    assert files["ours"].read_bytes() == (garbage if which == "ours" else good)
    assert _store_state(bob) == before


def test_driver_refuses_a_symlink_or_fifo(bob: Path) -> None:
    good = bob / ".merge_file_good"
    good.write_bytes((bob / "data.mlgit").read_bytes())
    fifo = bob / ".merge_file_fifo"
    os.mkfifo(fifo)
    link = bob / ".merge_file_link"
    link.symlink_to("/etc/passwd")
    for bad in (fifo, link):
        p = run_gitml(bob, "merge-driver", good.name, good.name, bad.name, "data.mlgit",
                      check=False)
        assert p.returncode == errors.PointerError.exit_code, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


def test_driver_with_a_missing_version_and_no_remote(alice: Path, bob: Path) -> None:
    _change(alice, {"data/a.txt": "alice\n"}, "alice")
    git(alice, "push", "-q")
    _change(bob, {"data/b.txt": "bob\n"}, "bob")
    git(bob, "config", "ml.lazyFetch", "false")
    before_ptr = (bob / "data.mlgit").read_bytes()
    before = _store_state(bob)
    p = git(bob, "pull", "--no-edit", check=False)
    assert p.returncode != 0  # git reports the conflict
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("git-ml:")]
    assert len(err) == 1
    assert "no remote to fetch it from" in err[0]
    assert (bob / "data.mlgit").read_bytes() == before_ptr  # git kept ours as the result
    assert _store_state(bob) == before
    # status reads it (a plain pointer), and aborting the merge restores everything.
    assert run_gitml(bob, "status").returncode == 0
    git(bob, "merge", "--abort")
    assert (bob / "data.mlgit").read_bytes() == before_ptr


def test_driver_with_an_id_no_store_has(bob: Path) -> None:
    good = (bob / "data.mlgit").read_bytes()
    ghost = encode_pointer(Pointer("dataset", "data", ObjectID("0" * 31 + "1")))
    for name, data in (("base", good), ("ours", good), ("theirs", ghost)):
        (bob / f".m_{name}").write_bytes(data)
    before = _store_state(bob)
    p = run_gitml(bob, "merge-driver", ".m_base", ".m_ours", ".m_theirs", "data.mlgit",
                  check=False)
    # base == ours: the trivial case takes theirs without reading the store.
    assert p.returncode == 0
    assert (bob / ".m_ours").read_bytes() == ghost
    (bob / ".m_ours").write_bytes(encode_pointer(Pointer("dataset", "data", ID_A)))
    p = run_gitml(bob, "merge-driver", ".m_base", ".m_ours", ".m_theirs", "data.mlgit",
                  check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code
    assert len(p.stderr.strip().splitlines()) == 1
    assert "could not supply it" in p.stderr
    assert _store_state(bob)[1] == before[1]
    assert decode_pointer((bob / ".m_ours").read_bytes()).id == ID_A


def test_different_datasets_are_not_merged(bob: Path) -> None:
    good = (bob / "data.mlgit").read_bytes()
    other = encode_pointer(Pointer("dataset", "other", ID_A))
    base = encode_pointer(Pointer("dataset", "data", ID_B))
    for name, data in (("base", base), ("ours", good), ("theirs", other)):
        (bob / f".m_{name}").write_bytes(data)
    p = run_gitml(bob, "merge-driver", ".m_base", ".m_ours", ".m_theirs", "data.mlgit",
                  check=False)
    assert p.returncode == 1
    assert "CONFLICT" in p.stderr
    assert "'other'" in p.stderr
    assert (bob / ".m_ours").read_bytes() == good


def test_older_git_ml_refuses_a_conflicted_pointer_cleanly(alice: Path, bob: Path) -> None:
    _change(alice, {"data/a.txt": "alice\n"}, "alice")
    git(alice, "push", "-q")
    _change(bob, {"data/a.txt": "bob\n"}, "bob")
    assert git(bob, "pull", "--no-edit", check=False).returncode != 0
    text = (bob / "data.mlgit").read_text()
    assert "mlgit-pointer: 2" in text
    # What a version-1-only reader does with it: the version line is refused.
    v1_only = text.replace("mlgit-pointer: 2", "mlgit-pointer: 9")
    with pytest.raises(errors.PointerError, match="version '9' is not supported"):
        decode_pointer(v1_only.encode())


# -- the pointer codec ------------------------------------------------------------------------

def test_conflict_pointer_round_trip_and_bounds() -> None:
    c = PointerConflict(ID_A, ID_B, ID_C, 2, ("a.txt", "sub/b \u00e9.txt"))
    p = Pointer("dataset", "data", ID_C, c)
    assert decode_pointer(encode_pointer(p)) == p
    no_base = Pointer("dataset", "data", ID_C, PointerConflict(ID_A, ID_B, None, 1, ("x",)))
    assert decode_pointer(encode_pointer(no_base)) == no_base
    plain = Pointer("dataset", "data", ID_A)
    assert decode_pointer(encode_pointer(plain)) == plain
    assert b"mlgit-pointer: 1" in encode_pointer(plain)
    # Many long paths: the file stays within the limit; the count says how many there are.
    many = PointerConflict(ID_A, ID_B, ID_C, 5000, tuple(f"{'d' * 200}/{i}" for i in range(5000)))
    data = encode_pointer(Pointer("dataset", "data", ID_C, many))
    assert len(data) <= MAX_POINTER_LEN
    back = decode_pointer(data)
    assert back.conflict is not None
    assert back.conflict.count == 5000
    assert 0 < len(back.conflict.paths) < 5000
    # Paths that cannot be shown on one line are counted, not listed.
    odd = PointerConflict(ID_A, ID_B, None, 2, ("bad\nname", "\x1b[31m"))
    back = decode_pointer(encode_pointer(Pointer("dataset", "data", ID_C, odd)))
    assert back.conflict is not None
    assert back.conflict.paths == ()


@pytest.mark.parametrize("body", [
    "mlgit-pointer: 2\nkind: dataset\nname: data\nid: {a}\nours: {a}\ntheirs: {b}\n",  # no count
    "mlgit-pointer: 2\nkind: dataset\nname: data\nid: {a}\nours: {a}\ntheirs: {b}\n"
    "conflicts: 0\n",
    "mlgit-pointer: 2\nkind: dataset\nname: data\nid: {a}\nours: {a}\ntheirs: {b}\n"
    "conflicts: 1\nconflict: \"x\"\nconflict: \"y\"\n",
    "mlgit-pointer: 2\nkind: checkpoint\nname: data\nid: {a}\nours: {a}\ntheirs: {b}\n"
    "conflicts: 1\n",
    "mlgit-pointer: 2\nkind: dataset\nname: data\nid: {a}\nours: {a}\ntheirs: {b}\n"
    "conflicts: 1\nconflict: [[[[\"x\"]]]]\n",
    "mlgit-pointer: 2\nkind: dataset\nname: data\nid: {a}\nours: {a}\ntheirs: nope\n"
    "conflicts: 1\n",
    "mlgit-pointer: 2\nkind: dataset\nname: data\nid: {a}\nours: {a}\ntheirs: {b}\n"
    "conflicts: 99999999999999999999999\n",
    "mlgit-pointer: 1\nkind: dataset\nname: data\nid: {a}\nconflict: \"x\"\n",
    "mlgit-pointer: 1\nkind: dataset\nname: data\nid: {a}\nours: {a}\n",
])
def test_malformed_conflict_pointers_are_refused(body: str) -> None:
    with pytest.raises(errors.PointerError):
        decode_pointer(body.format(a=ID_A, b=ID_B).encode())


# -- the tree merge itself ---------------------------------------------------------------------

class _Trees:
    """An in-memory tree store for :func:`merge_trees`."""

    def __init__(self) -> None:
        self.trees: dict[RawObjectID, list[TreeEntry]] = {}

    def put(self, entries: list[TreeEntry]) -> RawObjectID:
        oid = raw_object_id(encode_tree(entries))
        self.trees[oid] = sorted(entries, key=lambda e: e.name)
        return oid

    def file(self, name: str, content: bytes, executable: bool = False) -> TreeEntry:
        return TreeEntry(name.encode(), TYPE_FILE, len(content), executable,
                         file_digest(content),
                         ((raw_object_id(content), len(content)),) if content else ())

    def dir(self, name: str, entries: list[TreeEntry]) -> TreeEntry:
        from mlgit.format.treeshape import totals
        files, nbytes = totals(entries)
        return TreeEntry(name.encode(), TYPE_DIR, nbytes, subtree=self.put(entries), files=files)

    def flat(self, root: RawObjectID, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for e in self.trees[root]:
            path = f"{prefix}{e.name.decode()}"
            if e.type == TYPE_DIR:
                out[path + "/"] = "dir"
                out.update(self.flat(e.subtree, path + "/"))
            else:
                out[path] = (e.type, e.digest, e.executable, e.target)
        return out


def _merge(t: _Trees, b: list[TreeEntry] | None, o: list[TreeEntry], th: list[TreeEntry]
           ) -> tuple[dict[str, object], list[tuple[str, str]]]:
    r = merge_trees(t.trees.__getitem__, MergeInput(t.put(b) if b is not None else None),
                    MergeInput(t.put(o)), MergeInput(t.put(th)), put=t.put)
    assert r.tree is not None
    return t.flat(r.tree), [(c.path, c.kind) for c in r.conflicts]


def test_tree_merge_cases() -> None:
    t = _Trees()
    f = t.file
    x1, x2, x3 = f("x", b"1"), f("x", b"2"), f("x", b"3")
    # Directory against file: a type conflict, ours kept.
    got, conflicts = _merge(t, [x1], [t.dir("x", [f("in", b"i")])], [x2])
    assert conflicts == [("x", "type-changed")]
    assert "x/in" in got
    # Symlink against file, both added.
    link = TreeEntry(b"x", TYPE_SYMLINK, 1, target=b"y")
    got, conflicts = _merge(t, None, [link], [x3])
    assert conflicts == [("x", "both-added")]
    # Ours deleted a directory, theirs changed one file in it and left another alone.
    d_base = t.dir("d", [f("keep", b"k"), f("edit", b"e")])
    d_theirs = t.dir("d", [f("keep", b"k"), f("edit", b"E")])
    got, conflicts = _merge(t, [d_base], [], [d_theirs])
    assert conflicts == [("d/edit", "deleted-by-us")]
    assert got == {}
    # Both deleted different files of a directory: the directory goes when it empties...
    got, conflicts = _merge(t, [t.dir("d", [f("a", b"a"), f("b", b"b")])],
                            [t.dir("d", [f("b", b"b")])], [t.dir("d", [f("a", b"a")])])
    assert conflicts == []
    assert got == {"d/": "dir"}
    # ... and stays (empty) only if both sides kept it: empty directories are data.
    got, conflicts = _merge(t, [t.dir("d", [f("a", b"a")])], [t.dir("d", [])],
                            [t.dir("d", [f("a", b"a")]), f("z", b"z")])
    assert conflicts == []
    assert got == {"d/": "dir", "z": (TYPE_FILE, file_digest(b"z"),
                                                           False, b"")}
    got, conflicts = _merge(t, [t.dir("d", [f("a", b"a"), f("b", b"b")])],
                            [t.dir("d", [f("b", b"b")])], [])
    assert conflicts == []
    assert got == {}
    # Content on one side, executable bit on the other: merged attribute by attribute.
    got, conflicts = _merge(t, [x1], [f("x", b"2")], [f("x", b"1", executable=True)])
    assert conflicts == []
    assert got["x"] == (TYPE_FILE, file_digest(b"2"), True, b"")
    # Both changed the executable bit and the content differently.
    got, conflicts = _merge(t, [x1], [f("x", b"2", executable=True)], [x3])
    assert conflicts == [("x", "both-modified")]


def test_tree_merge_is_iterative_at_depth() -> None:
    t = _Trees()
    depth = 900

    def chain(leaf: TreeEntry) -> list[TreeEntry]:
        entries = [leaf]
        for _ in range(depth):
            entries = [t.dir("d", entries)]
        return entries

    base = chain(t.file("f", b"0"))
    ours = chain(t.file("f", b"1"))
    theirs = chain(t.file("f", b"2"))
    _, conflicts = _merge(t, base, [*ours, t.file("o", b"o")], theirs)
    assert conflicts == [("/".join(["d"] * depth + ["f"]), "both-modified")]


def test_git_without_git_ml_driver_keeps_its_text_merge(alice: Path, bob: Path) -> None:
    """Turning the driver off (ml's attribute removed) gives git's own text merge back."""
    (bob / ".git/info/attributes").write_text("")
    _change(alice, {"data/a.txt": "alice\n"}, "alice")
    git(alice, "push", "-q")
    _change(bob, {"data/b.txt": "bob\n"}, "bob")
    assert git(bob, "pull", "--no-edit", check=False).returncode != 0
    assert "<<<<<<<" in (bob / "data.mlgit").read_text()
    p = run_gitml(bob, "status", check=False)
    assert p.returncode == errors.PointerError.exit_code  # reported, not an internal error


def test_conflicted_pointer_in_git_history_is_read(alice: Path, bob: Path) -> None:
    """A conflicted pointer committed by mistake is still a valid root for log and fsck."""
    _change(alice, {"data/a.txt": "alice\n"}, "alice")
    git(alice, "push", "-q")
    _change(bob, {"data/a.txt": "bob\n"}, "bob")
    assert git(bob, "pull", "--no-edit", check=False).returncode != 0
    run_gitml(bob, "checkout", "data")
    git(bob, "add", "data.mlgit")
    git(bob, "commit", "-q", "--no-edit")
    log = json.loads(run_gitml(bob, "log", "--json", "-n", "1").stdout)[0]
    assert {d["name"]: d["id"] for d in log["datasets"]}["data"] == _pid(bob)
    assert run_gitml(bob, "fsck").returncode == 0
    st = json.loads(run_gitml(bob, "status", "--json").stdout)
    assert {e["path"]: e["state"] for e in st}["data"] == "conflicted"
