"""Linked worktrees share one store; rebase and amend carry the ML notes.

Through the real git: ``git worktree add`` (its post-checkout hook), ``git ml``
inside the linked worktree, ``git rebase`` and ``git commit --amend``.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, make_tree, read_tree, run_gitml


def _repo_with_data(root: Path) -> None:
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init")
    make_tree(root / "data", {"a.txt": "one\n", "sub/b.bin": b"\x00" * 5000})
    run_gitml(root, "add", "data", "-m", "v1")
    git(root, "commit", "-qm", "v1")


def test_linked_worktree_shares_the_store(tmp_path: Path) -> None:
    main = tmp_path / "main"
    _repo_with_data(main)
    wt = tmp_path / "wt"
    p = git(main, "worktree", "add", "-q", str(wt))
    assert "error" not in p.stderr, p.stderr
    # The post-checkout hook materialized the data in the new worktree.
    assert read_tree(wt / "data") == read_tree(main / "data")
    assert json.loads(run_gitml(wt, "status", "--json").stdout)[0]["state"] == "clean"
    # A version added in the worktree is in the one store the main work tree sees.
    (wt / "data/a.txt").write_text("two\n")
    new_id = run_gitml(wt, "add", "data", "-q").stdout.strip()
    git(wt, "commit", "-qm", "v2")
    assert not (wt / ".git").is_dir()
    assert run_gitml(main, "show", new_id, "--json").returncode == 0
    assert run_gitml(main, "ls", "--json").stdout.count(new_id) == 1
    # Each work tree keeps its own pointers and stat caches: main still pins v1.
    st = json.loads(run_gitml(main, "status", "--json").stdout)
    assert st[0]["state"] == "clean"
    assert st[0]["id"] != new_id
    git(main, "merge", "-q", "--ff-only", "wt")
    assert (main / "data/a.txt").read_text() == "two\n"
    assert run_gitml(wt, "fsck").returncode == 0
    assert run_gitml(main, "fsck").returncode == 0


def _note_lines(root: Path, rev: str) -> list[str]:
    p = git(root, "notes", "--ref", "ml", "show", rev, check=False)
    return p.stdout.splitlines() if p.returncode == 0 else []


def test_amend_and_rebase_carry_the_notes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _repo_with_data(root)
    (root / "results.json").write_text('{"accuracy": 0.9}')
    run_gitml(root, "note", "add", "--results", "results.json")
    before = _note_lines(root, "HEAD")
    assert len(before) == 1
    git(root, "commit", "-q", "--amend", "-m", "v1, amended")
    assert _note_lines(root, "HEAD") == before
    # A second branch's commit moves under a rebase: its note moves with it.
    git(root, "checkout", "-q", "-b", "topic")
    (root / "code.py").write_text("print(1)\n")
    git(root, "add", "code.py")
    git(root, "commit", "-qm", "code")
    (root / "more.json").write_text('{"loss": 0.5}')
    run_gitml(root, "note", "add", "--results", "more.json")
    topic_note = _note_lines(root, "HEAD")
    git(root, "checkout", "-q", "main")
    (root / "other.txt").write_text("x\n")
    git(root, "add", "other.txt")
    git(root, "commit", "-qm", "other")
    git(root, "checkout", "-q", "topic")
    old = git(root, "rev-parse", "HEAD").stdout.strip()
    git(root, "rebase", "-q", "main")
    assert git(root, "rev-parse", "HEAD").stdout.strip() != old
    assert _note_lines(root, "HEAD") == topic_note
    assert _note_lines(root, "HEAD~2") == before
    # Running init again adds the setting once, and keeps values someone else set.
    git(root, "config", "--add", "notes.rewriteRef", "refs/notes/commits")
    run_gitml(root, "init")
    values = git(root, "config", "--get-all", "notes.rewriteRef").stdout.split()
    assert sorted(values) == ["refs/notes/commits", "refs/notes/ml"]
