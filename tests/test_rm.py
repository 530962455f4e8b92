"""``git ml rm``: a dataset stops being tracked through the real git, and gc frees it later."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml


def _pinned(root: Path, name: str = "data") -> str:
    return (root / f"{name}.mlgit").read_text().split("id: ")[1].split()[0]


def _state(repo: Path) -> dict[str, object]:
    """Everything rm may change: index, work tree files, .gitignore, refs."""
    refs = repo / ".git/ml/refs/datasets"
    return {
        "index": git(repo, "ls-files", "-s").stdout,
        "tree": read_tree(repo / "data") if (repo / "data").exists() else None,
        "pointer": (repo / "data.mlgit").read_text() if (repo / "data.mlgit").exists() else None,
        "gitignore": (repo / ".gitignore").read_text() if (repo / ".gitignore").exists() else None,
        "refs": sorted(p.name for p in refs.iterdir()) if refs.exists() else [],
    }


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A repository with one committed dataset ``data`` and a file git tracks."""
    r = tmp_path / "work"
    r.mkdir()
    git(r, "init", "-q")
    run_gitml(r, "init", "--chunk-size", "4096")
    make_tree(r, {f"data/f{i}.bin": os.urandom(5000) for i in range(6)})
    make_tree(r, {"train.py": "print(1)\n"})
    run_gitml(r, "add", "data")
    git(r, "add", "train.py")
    git(r, "commit", "-qm", "v1")
    return r


def test_rm_then_commit_then_fsck(work: Path) -> None:
    oid = _pinned(work)
    out = run_gitml(work, "rm", "data").stdout
    assert "rm data.mlgit" in out
    assert "data removed" in out
    assert "ref datasets/data removed" in out
    assert not (work / "data").exists()
    assert not (work / "data.mlgit").exists()
    assert git(work, "ls-files").stdout.split() == ["train.py"]  # pointer and .gitignore staged out
    assert not (work / ".gitignore").exists()  # it held only git-ml's line
    assert not (work / ".git/ml/refs/datasets/data").exists()
    git(work, "commit", "-qm", "drop data")
    assert git(work, "status", "--porcelain").stdout == ""
    assert json.loads(run_gitml(work, "status", "--json").stdout) == []
    assert run_gitml(work, "ls").stdout == ""
    run_gitml(work, "fsck")
    # The first commit still pins the version: it stays in the store, gc keeps it.
    run_gitml(work, "gc", "--prune=now")
    assert json.loads(run_gitml(work, "show", oid, "--json").stdout)["id"] == oid
    # And checking out that commit brings the data back.
    git(work, "checkout", "-q", "HEAD~1")
    assert (work / "data/f0.bin").is_file()


def test_unsaved_changes_are_refused_and_nothing_changes(work: Path) -> None:
    (work / "data/f0.bin").write_bytes(b"changed, not added")
    before = _state(work)
    p = run_gitml(work, "rm", "data", check=False)
    assert p.returncode == 6, p.stderr
    assert "changes not saved" in p.stderr
    assert "--force" in p.stderr
    assert "--cached" in p.stderr
    assert _state(work) == before
    p = run_gitml(work, "rm", "--force", "data")
    assert not (work / "data").exists()
    assert not (work / "data.mlgit").exists()


def test_a_pointer_not_committed_is_refused_unless_forced_then_gc_frees_it(work: Path) -> None:
    make_tree(work, {"extra/big.bin": os.urandom(40_000)})
    run_gitml(work, "add", "extra")  # staged, never committed
    oid = _pinned(work, "extra")
    before = git(work, "ls-files", "-s").stdout
    p = run_gitml(work, "rm", "extra", check=False)
    assert p.returncode == 6, p.stderr
    assert "extra.mlgit" in p.stderr
    assert "not committed" in p.stderr
    assert git(work, "ls-files", "-s").stdout == before
    assert (work / "extra/big.bin").exists()
    run_gitml(work, "rm", "-f", "extra.mlgit")  # the pointer file's name works too
    assert not (work / "extra").exists()
    assert "extra" not in git(work, "ls-files").stdout
    assert "/extra" not in (work / ".gitignore").read_text()
    assert "/data" in (work / ".gitignore").read_text()  # the other dataset's line stays
    assert git(work, "status", "--porcelain").stdout == ""  # as before the add
    run_gitml(work, "fsck")
    # Objects stay until gc, which then finds nothing reaching them.
    assert json.loads(run_gitml(work, "show", oid, "--json").stdout)["id"] == oid
    out = run_gitml(work, "gc", "--prune=now").stdout
    assert int(out.split("removed ")[1].split(" objects")[0]) >= 3, out
    p = run_gitml(work, "show", oid, check=False)
    assert p.returncode == 5, p.stderr
    run_gitml(work, "fsck")
    assert (work / "data/f0.bin").is_file()  # the other dataset is untouched


def test_cached_keeps_the_data_as_untracked_files(work: Path) -> None:
    want = read_tree(work / "data")
    (work / "data/f1.bin").write_bytes(b"even with changes")
    want["f1.bin"] = b"even with changes"
    out = run_gitml(work, "rm", "--cached", "data").stdout
    assert "data kept" in out
    assert read_tree(work / "data") == want
    assert not (work / "data.mlgit").exists()
    assert not (work / ".git/ml/refs/datasets/data").exists()
    status = git(work, "status", "--porcelain", "--untracked-files=normal").stdout
    assert "?? data/" in status
    assert "D  data.mlgit" in status


def test_rm_json_and_nested_dataset_with_other_gitignore_lines(work: Path) -> None:
    make_tree(work, {"sub/.gitignore": "*.tmp\n", "sub/set/a.txt": "a\n"})
    git(work, "add", "sub/.gitignore")
    git(work, "commit", "-qm", "ignore")
    run_gitml(work, "add", "sub/set")
    git(work, "commit", "-qm", "set")
    oid = _pinned(work / "sub", "set")
    got = json.loads(run_gitml(work / "sub", "rm", "--json", "set").stdout)
    assert got == [{"path": "sub/set", "pointer": "sub/set.mlgit", "name": "set", "id": oid,
                    "data_removed": True, "ref_removed": True, "gitignore": "sub/.gitignore"}]
    assert (work / "sub/.gitignore").read_text() == "*.tmp\n"
    assert git(work, "diff", "--cached", "--name-status").stdout.split() == [
        "M", "sub/.gitignore", "D", "sub/set.mlgit"]


def test_a_path_git_ml_does_not_track(work: Path) -> None:
    before = _state(work)
    for path in ("train.py", "nothing-here", "data/f0.bin"):
        p = run_gitml(work, "rm", path, check=False)
        assert p.returncode == 6, (path, p.stderr)
        assert "not tracked by git-ml" in p.stderr
    p = run_gitml(work, "rm", "data", "nothing-here", check=False)  # one bad path: none removed
    assert p.returncode == 6
    assert _state(work) == before
