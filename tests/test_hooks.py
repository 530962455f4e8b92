"""Git hooks: installed by init, chained with existing hooks, materializing data on checkout."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import git, make_tree, read_tree, run_gitml

REPO_HOOKS = Path(__file__).resolve().parent.parent / "hooks"


def _two_versions(root: Path) -> tuple[dict[str, bytes | str], dict[str, bytes | str]]:
    make_tree(root, {"data/a.txt": "v1\n", "data/b.bin": os.urandom(5000)})
    run_gitml(root, "add", "data")
    git(root, "commit", "-qm", "v1")
    v1 = read_tree(root / "data")
    (root / "data/a.txt").write_text("v2\n")
    (root / "data/c.txt").write_text("new\n")
    run_gitml(root, "add", "data")
    git(root, "commit", "-qam", "v2")
    return v1, read_tree(root / "data")


def test_init_installs_hooks_idempotently(bare_git_repo: Path) -> None:
    out = run_gitml(bare_git_repo, "init").stdout
    assert "hook post-checkout: installed" in out
    assert "hook post-merge: installed" in out
    for name in ("post-checkout", "post-merge"):
        hook = bare_git_repo / ".git/hooks" / name
        assert hook.read_bytes() == (REPO_HOOKS / name).read_bytes()
        assert os.access(hook, os.X_OK)
    again = run_gitml(bare_git_repo, "init").stdout
    assert "hook post-" not in again


def test_checkout_of_an_older_commit_materializes_its_data(bare_git_repo: Path) -> None:
    run_gitml(bare_git_repo, "init")
    v1, v2 = _two_versions(bare_git_repo)
    git(bare_git_repo, "checkout", "-q", "HEAD~1")
    assert read_tree(bare_git_repo / "data") == v1
    git(bare_git_repo, "checkout", "-q", "main")
    assert read_tree(bare_git_repo / "data") == v2


def test_merge_materializes_its_data(bare_git_repo: Path) -> None:
    run_gitml(bare_git_repo, "init")
    make_tree(bare_git_repo, {"data/a.txt": "base\n"})
    run_gitml(bare_git_repo, "add", "data")
    git(bare_git_repo, "commit", "-qm", "base")
    git(bare_git_repo, "checkout", "-q", "-b", "feature")
    (bare_git_repo / "data/a.txt").write_text("feature\n")
    run_gitml(bare_git_repo, "add", "data")
    git(bare_git_repo, "commit", "-qam", "feature data")
    git(bare_git_repo, "checkout", "-q", "main")
    assert (bare_git_repo / "data/a.txt").read_text() == "base\n"
    git(bare_git_repo, "merge", "-q", "--ff-only", "feature")
    assert (bare_git_repo / "data/a.txt").read_text() == "feature\n"


def test_hooks_can_be_turned_off(bare_git_repo: Path) -> None:
    run_gitml(bare_git_repo, "init")
    _, v2 = _two_versions(bare_git_repo)
    git(bare_git_repo, "config", "ml.hooks", "false")
    git(bare_git_repo, "checkout", "-q", "HEAD~1")
    assert read_tree(bare_git_repo / "data") == v2
    st = json.loads(run_gitml(bare_git_repo, "status", "--json").stdout)
    assert st[0]["state"] == "modified"


def test_existing_hook_is_chained_and_runs_first(bare_git_repo: Path) -> None:
    hooks = bare_git_repo / ".git/hooks"
    hooks.mkdir(exist_ok=True)
    log = bare_git_repo.parent / "hook.log"
    (hooks / "post-checkout").write_text(f'#!/bin/sh\necho "mine $3" >> "{log}"\n')
    (hooks / "post-checkout").chmod(0o755)
    out = run_gitml(bare_git_repo, "init").stdout
    assert "existing hook runs first" in out
    assert (hooks / "post-checkout.mlgit-chained").exists()
    v1, _ = _two_versions(bare_git_repo)
    git(bare_git_repo, "checkout", "-q", "HEAD~1")
    assert log.read_text() == "mine 1\n"
    assert read_tree(bare_git_repo / "data") == v1


def test_failing_chained_hook_fails_the_checkout_as_before(bare_git_repo: Path) -> None:
    hooks = bare_git_repo / ".git/hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "post-checkout").write_text("#!/bin/sh\nexit 3\n")
    (hooks / "post-checkout").chmod(0o755)
    run_gitml(bare_git_repo, "init")
    make_tree(bare_git_repo, {"data/a.txt": "x"})
    run_gitml(bare_git_repo, "add", "data")
    git(bare_git_repo, "commit", "-qm", "v1")
    p = git(bare_git_repo, "checkout", "-q", "-b", "other", check=False)
    assert p.returncode != 0  # git reports a failed post-checkout hook as its own failure


def test_unsaved_local_changes_survive_the_hook(bare_git_repo: Path) -> None:
    run_gitml(bare_git_repo, "init")
    _two_versions(bare_git_repo)
    (bare_git_repo / "data/a.txt").write_text("precious\n")
    p = git(bare_git_repo, "checkout", "-q", "HEAD~1")
    assert "data not updated" in p.stderr
    assert "data/a.txt" in p.stderr
    assert (bare_git_repo / "data/a.txt").read_text() == "precious\n"
