"""The Python surface: mlgit.checkout / open / add / show / ls."""

from __future__ import annotations

import io
import multiprocessing
import os
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree

import mlgit
from mlgit.errors import BadPathError, CorruptObjectError, RevisionError


def _checkout_in_child(args: tuple[str, str]) -> str:
    rev, repo = args
    return str(mlgit.checkout(rev, repo=repo))


def test_add_show_ls_checkout(repo_dir: Path) -> None:
    make_tree(repo_dir, {"data/a.txt": "a", "data/sub/b.bin": os.urandom(10_000)})
    want = read_tree(repo_dir / "data")
    r = mlgit.add(repo_dir / "data", message="one", repo=repo_dir)
    assert r.created
    assert r.name == "data"
    assert r.files == 2
    info = mlgit.show("data", repo=repo_dir)
    assert info.id == r.id
    assert info.snapshot.message == "one"
    assert [f.path for f in info.files or []] == ["a.txt", "sub/b.bin"]
    assert [(e.kind, e.name, e.id) for e in mlgit.ls(repo=repo_dir)] == [
        ("dataset", "data", r.id)]
    path = mlgit.checkout("data", repo=repo_dir)
    assert path == repo_dir / ".git/ml/checkouts" / r.id
    assert read_tree(path) == want


def test_checkout_of_an_older_version(repo_dir: Path) -> None:
    make_tree(repo_dir, {"data/a.txt": "v1"})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    (repo_dir / "data/a.txt").write_text("v2")
    mlgit.add(repo_dir / "data", repo=repo_dir)
    assert (mlgit.checkout("data~1", repo=repo_dir) / "a.txt").read_text() == "v1"
    assert (mlgit.checkout("data", repo=repo_dir) / "a.txt").read_text() == "v2"


def test_concurrent_checkouts_all_get_a_complete_tree(repo_dir: Path) -> None:
    files = {f"data/d{i % 7}/f{i}.bin": os.urandom(3000 + i) for i in range(120)}
    make_tree(repo_dir, files)
    want = read_tree(repo_dir / "data")
    mlgit.add(repo_dir / "data", repo=repo_dir)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        paths = pool.map(_checkout_in_child, [("data", str(repo_dir))] * 8)
    assert len(set(paths)) == 1
    assert read_tree(Path(paths[0])) == want
    leftovers = [p for p in (repo_dir / ".git/ml/checkouts").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_checkout_of_file_snapshot_returns_the_file(repo_dir: Path) -> None:
    content = os.urandom(5000)
    (repo_dir / "model.bin").write_bytes(content)
    mlgit.add(repo_dir / "model.bin", repo=repo_dir)
    p = mlgit.checkout("model.bin", repo=repo_dir)
    assert p.name == "model.bin"
    assert p.read_bytes() == content


def test_open_reads_ranges_without_materializing(repo_dir: Path) -> None:
    content = os.urandom(300_000)
    make_tree(repo_dir, {"data/big.bin": content, "data/t.txt": "l1\nl2\n"})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    with mlgit.open("data", "big.bin", repo=repo_dir) as f:
        assert f.read(10) == content[:10]
        f.seek(123_457)
        assert f.read(50_000) == content[123_457:173_457]
        f.seek(-7, io.SEEK_END)
        assert f.read() == content[-7:]
        f.seek(0)
        assert f.read() == content
    with mlgit.open("data", "t.txt", repo=repo_dir) as f:
        assert list(f) == [b"l1\n", b"l2\n"]
    assert list((repo_dir / ".git/ml/checkouts").iterdir()) == []
    with pytest.raises(BadPathError):
        mlgit.open("data", "nope.txt", repo=repo_dir)
    with pytest.raises(RevisionError):
        mlgit.open("nosuch", "t.txt", repo=repo_dir)


def test_checkout_fails_on_corrupt_pack_and_leaves_nothing(repo_dir: Path) -> None:
    make_tree(repo_dir, {"data/a.bin": os.urandom(50_000)})
    mlgit.add(repo_dir / "data", repo=repo_dir)
    packs = sorted((repo_dir / ".git/ml/packs").glob("*.pack"), key=lambda p: p.stat().st_size)
    victim = packs[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(CorruptObjectError):
        mlgit.checkout("data", repo=repo_dir)
    assert list((repo_dir / ".git/ml/checkouts").iterdir()) == []


def test_failed_add_then_retry_on_the_same_repo_stores_everything(repo_dir: Path) -> None:
    """An aborted pack must not leave its ids looking stored (they were never committed)."""
    from mlgit.api.repo import Repo
    from mlgit.format.pack import OBJ_CHUNK

    with Repo(repo_dir) as r:
        blob = os.urandom(3000)
        r.store.objects.put(OBJ_CHUNK, blob)
        r.store.objects.abort()  # as a failed add does
        make_tree(repo_dir, {"data/x.bin": blob})
        r.add([repo_dir / "data"])
    with Repo(repo_dir) as r:
        assert (r.checkout("data") / "x.bin").read_bytes() == blob


def test_the_verbs_work_on_a_bare_core(repo_dir: Path, tmp_path: Path) -> None:
    """Every verb module takes a Core: no Repo is needed to add, inspect and check out."""
    from mlgit.api import add, checkout, inspect, reading, status
    from mlgit.api.core import Core
    from mlgit.errors import NotInitializedError

    make_tree(repo_dir, {"data/a.txt": "one", "data/b.txt": "two"})
    with Core(repo_dir) as core:
        (result,) = add.add(core, [repo_dir / "data"], message="first")
        assert [e.state for e in status.status(core)] == ["clean"]
        assert inspect.show(core, "data").id == result.id
        assert [e.name for e in inspect.ls(core)] == ["data"]
        (repo_dir / "data/a.txt").write_text("changed")
        assert [e.state for e in status.status(core)] == ["modified"]
        path = checkout.checkout(core, "data")
        assert (path / "a.txt").read_text() == "one"
        assert checkout.checkout_worktree(core, force=True) == [("data", result.id)]
        assert (repo_dir / "data/a.txt").read_text() == "one"
        with reading.open_file(core, "data", "b.txt") as f:
            assert f.read() == b"two"
    assert core.author() == "Test Author <author@example.com>"
    other = tmp_path / "plain"
    other.mkdir()
    git(other, "init", "-q")
    with pytest.raises(NotInitializedError):
        status.status(Core(other))
