"""The Python API honours what git honours from the environment (GIT_SSH_COMMAND, GIT_SSH,
core.sshCommand, GIT_DIR, GIT_WORK_TREE), as ``git ml`` does; a lazy fetch that fails says
why."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml

import mlgit
from mlgit.errors import MlgitError, NotARepositoryError


@dataclass
class Clone:
    alice: Path
    bob: Path
    url: str
    id: str


def _pinned(root: Path) -> str:
    return (root / "data.mlgit").read_text().split("id: ")[1].split()[0]


@pytest.fixture
def over_ssh(sshd: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clone:
    """Alice pushed data over the real sshd; Bob cloned (git-ml set up, no data fetched).

    Both needed GIT_SSH_COMMAND (the test server's key); afterwards it is unset, and
    nothing of it is in either clone's config.
    """
    server = tmp_path / "srv.git"
    git(tmp_path, "init", "-q", "--bare", str(server))
    url = f"ssh://{sshd.user}@{sshd.host}{server}"  # type: ignore[attr-defined]
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", url, str(alice))
    run_gitml(alice, "init", "--chunk-size", "4096")
    make_tree(alice, {f"data/f{i}.bin": os.urandom(3000) for i in range(4)})
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qm", "v1")
    git(alice, "push", "-q", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    run_gitml(bob, "init")
    monkeypatch.delenv("GIT_SSH_COMMAND")
    for repo in (alice, bob):
        assert "sshcommand" not in (repo / ".git/config").read_text().lower()
    return Clone(alice, bob, url, _pinned(alice))


def test_checkout_from_python_uses_git_ssh_command(over_ssh: Clone, sshd: object,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    path = mlgit.checkout(over_ssh.id, repo=over_ssh.bob)
    assert read_tree(path) == read_tree(over_ssh.alice / "data")


def test_checkout_from_python_uses_git_ssh(over_ssh: Clone, sshd: object, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """GIT_SSH names a program (run without a shell), as git runs it."""
    wrapper = tmp_path / "my ssh"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.join(sshd.ssh_command)} \"$@\"\n")  # type: ignore[attr-defined]
    wrapper.chmod(0o755)
    monkeypatch.setenv("GIT_SSH", str(wrapper))
    monkeypatch.chdir(over_ssh.bob)
    path = mlgit.checkout(over_ssh.id)
    assert read_tree(path) == read_tree(over_ssh.alice / "data")


def test_core_ssh_command_and_its_precedence(over_ssh: Clone, sshd: object, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """core.sshCommand from git's config; GIT_SSH_COMMAND wins over it, as in git."""
    marker = tmp_path / "core-ssh-ran"
    good = shlex.join(sshd.ssh_command)  # type: ignore[attr-defined]
    git(over_ssh.bob, "config", "core.sshCommand", f"touch {marker} && {good}")
    monkeypatch.setenv("GIT_SSH_COMMAND", "false")  # wins, and fails
    with pytest.raises(MlgitError):
        mlgit.checkout(over_ssh.id, repo=over_ssh.bob)
    assert not marker.exists()
    monkeypatch.delenv("GIT_SSH_COMMAND")
    path = mlgit.checkout(over_ssh.id, repo=over_ssh.bob)
    assert marker.exists()
    assert read_tree(path) == read_tree(over_ssh.alice / "data")


def test_a_failed_lazy_fetch_says_why(over_ssh: Clone, sshd: object, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    strict = [a if a != "StrictHostKeyChecking=no" else "StrictHostKeyChecking=yes"
              for a in sshd.ssh_command]  # type: ignore[attr-defined]
    strict = [a if a != "UserKnownHostsFile=/dev/null" else f"UserKnownHostsFile={known_hosts}"
              for a in strict]
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(strict))
    with pytest.raises(MlgitError) as exc:
        mlgit.checkout(over_ssh.id, repo=over_ssh.bob)
    message = str(exc.value)
    assert "does not know the host key" in message, message
    assert over_ssh.id in message
    assert "'origin'" in message
    assert "could not supply" not in message
    # The CLI says the same, with the cause's exit code (RemoteAuthError: accept the key).
    p = subprocess.run(["git", "ml", "path", over_ssh.id], cwd=over_ssh.bob,
                       capture_output=True, text=True)
    assert p.returncode == 12, p.stderr
    assert "does not know the host key" in p.stderr, p.stderr
    # By name, too (a name the clone has never heard of: the remote is asked).
    with pytest.raises(MlgitError, match="does not know the host key"):
        mlgit.checkout("data", repo=over_ssh.bob)


def test_a_refused_connection_says_so(over_ssh: Clone, sshd: object,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures_ssh import free_port

    closed = free_port()
    cmd = [a if a != str(sshd.port) else str(closed)  # type: ignore[attr-defined]
           for a in sshd.ssh_command]  # type: ignore[attr-defined]
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(cmd))
    with pytest.raises(MlgitError, match="connection refused"):
        mlgit.checkout(over_ssh.id, repo=over_ssh.bob)


def test_git_dir_and_work_tree_are_honoured(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    run_gitml(repo, "init")
    make_tree(repo, {"data/a.txt": "a\n"})
    run_gitml(repo, "add", "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # git's own options: `git --git-dir=... --work-tree=... ml ...` from anywhere.
    out = subprocess.run(["git", f"--git-dir={repo / '.git'}", f"--work-tree={repo}", "ml",
                          "status", "--json"], cwd=elsewhere, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert [e["path"] for e in json.loads(out.stdout)] == ["data"]
    # The environment, from Python.
    monkeypatch.chdir(elsewhere)
    with pytest.raises(NotARepositoryError):
        mlgit.ls()
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    assert [e.name for e in mlgit.ls()] == ["data"]
    with mlgit.Repo() as r:
        assert r.git.workdir == repo.resolve()
        assert [e.path for e in r.status()] == ["data"]
    # GIT_DIR alone: as in git, the current directory is the work tree.
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GIT_DIR", ".git")
    with mlgit.Repo() as r:
        assert r.git.workdir == repo.resolve()
        assert [e.path for e in r.status()] == ["data"]
    # An explicit repository wins over the environment, as --git-dir wins over GIT_DIR.
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    run_gitml(other, "init")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert mlgit.ls(repo=repo)[0].name == "data"
    assert mlgit.ls() == []  # GIT_DIR names the other repository
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nothing"))
    with pytest.raises(NotARepositoryError, match="GIT_DIR"):
        mlgit.ls()


@pytest.mark.parametrize("prefix", ["", "SILENT=1 "])
def test_an_ssh_command_that_stops_answering_is_ended_not_orphaned(
        tmp_path: Path, prefix: str) -> None:
    """git runs ``core.sshCommand`` through ``sh``; when git-ml gives up on a silent remote,
    the command itself must end, not only the shell (or it would live on forever)."""
    import sys
    import time

    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    run_gitml(repo, "init")
    pidfile = tmp_path / "ssh.pid"
    script = tmp_path / "silent_ssh.py"
    script.write_text("import os, sys, time\n"
                      f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
                      "time.sleep(600)\n")
    git(repo, "config", "core.sshCommand", f"{prefix}{sys.executable} {script}")
    git(repo, "config", "ml.origin.url", "somehost:/srv/store")
    git(repo, "config", "ml.timeout", "1")
    p = run_gitml(repo, "ls", "origin", check=False)
    assert p.returncode != 0, p.stderr
    assert "no answer for 1 s" in p.stderr, p.stderr
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the ssh command outlived git-ml")
