"""The committed ``.mlgitconfig``: a clone needs no configuration by hand, its own config wins,
and a hostile file is reported and ignored."""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml

import mlgit
from mlgit.api.fetching import lazy_remote


def _team_repo(tmp_path: Path, name: str = "alice") -> tuple[Path, Path]:
    """A bare origin and a clone of it with git-ml set up and one dataset committed."""
    origin = tmp_path / "origin.git"
    if not origin.exists():
        git(tmp_path, "init", "-q", "--bare", str(origin))
    repo = tmp_path / name
    git(tmp_path, "clone", "-q", str(origin), str(repo))
    run_gitml(repo, "init", "--chunk-size", "4096")
    make_tree(repo, {f"data/f{i}.bin": os.urandom(3000) for i in range(5)})
    run_gitml(repo, "add", "data")
    git(repo, "commit", "-qm", "v1")
    return origin, repo


def test_bob_pulls_from_s3_with_only_what_the_clone_carries(s3_env: object,
                                                              tmp_path: Path) -> None:
    origin, alice = _team_repo(tmp_path)
    url = f"s3://{s3_env.bucket}/team-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    endpoint = s3_env.endpoint  # type: ignore[attr-defined]
    out = run_gitml(alice, "config", "--shared", "ml.origin.url", url).stdout
    assert "staged" in out
    run_gitml(alice, "config", "--shared", "ml.origin.endpoint", endpoint)
    assert "A  .mlgitconfig" in git(alice, "status", "--porcelain").stdout
    assert run_gitml(alice, "config", "ml.origin.url").stdout.strip() == url
    assert "ml.origin.url" not in (alice / ".git/config").read_text()
    git(alice, "commit", "-qm", "share the data's location")
    git(alice, "push", "-q", "origin", "main")  # pre-push pushes the data to S3
    assert not (origin / "ml").exists()  # the data went to the bucket, not the git remote
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    out = run_gitml(bob, "pull").stdout
    assert url in out
    assert read_tree(bob / "data") == read_tree(alice / "data")
    assert "ml." not in (bob / ".git/config").read_text()  # nothing configured by hand
    listed = run_gitml(bob, "config", "--list").stdout
    assert f"ml.origin.url={url}  (.mlgitconfig)" in listed


def test_the_clones_own_config_wins(tmp_path: Path) -> None:
    origin, alice = _team_repo(tmp_path)
    git(alice, "push", "-q", "origin", "main")  # the data is on the git remote
    run_gitml(alice, "config", "--shared", "ml.origin.url", "/nonexistent/elsewhere")
    run_gitml(alice, "config", "--shared", "ml.lazyFetch", "false")
    run_gitml(alice, "config", "ml.origin.url", str(origin))  # Alice's own config wins
    git(alice, "commit", "-qm", "settings")
    git(alice, "push", "-q", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode != 0
    assert "/nonexistent/elsewhere" in p.stderr
    run_gitml(bob, "config", "ml.origin.url", str(origin))  # Bob's own config
    run_gitml(bob, "pull")
    assert (bob / "data/f0.bin").is_file()
    assert run_gitml(bob, "config", "--list").stdout.splitlines() == [
        "ml.lazyfetch=false  (.mlgitconfig)", f"ml.origin.url={origin}"]
    # ml.lazyFetch from the file holds: mlgit.checkout does not fetch.
    with mlgit.Repo(bob) as r:
        assert lazy_remote(r) is None
    git(bob, "config", "ml.lazyFetch", "true")
    with mlgit.Repo(bob) as r:
        assert lazy_remote(r) == "origin"
    run_gitml(bob, "config", "--unset", "ml.origin.url")
    assert run_gitml(bob, "config", "ml.origin.url").stdout.strip() == "/nonexistent/elsewhere"


_HOSTILE = """\
[core]
\tsshCommand = touch {pwned}
[ml]
\thooks = false
\tlazyFetch = maybe
[ml "origin"]
\tgitml = sh -c 'touch {pwned}'
\turl = ssh://bob:hunter2@evil.example/x
\tendpoint = http://key:secret@evil.example
\ttimeout = -1
[include]
\tpath = {elsewhere}
"""


@pytest.mark.parametrize("kind", ["forbidden-keys", "oversized", "symlink", "malformed",
                                  "fifo"])
def test_a_hostile_file_is_reported_and_ignored(kind: str, tmp_path: Path) -> None:
    origin, alice = _team_repo(tmp_path)
    git(alice, "push", "-q", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    pwned = tmp_path / "PWNED"
    elsewhere = tmp_path / "included"
    elsewhere.write_text('[ml "origin"]\n\turl = /nonexistent/included\n')
    target = bob / ".mlgitconfig"
    if kind == "forbidden-keys":
        target.write_text(_HOSTILE.format(pwned=pwned, elsewhere=elsewhere))
        expect = ["core.sshcommand", "ml.hooks", "ml.lazyfetch", "ml.origin.gitml",
                  "ml.origin.url", "ml.origin.endpoint", "ml.origin.timeout", "include.path"]
    elif kind == "oversized":
        target.write_text("# padding\n" * 7000 + '[ml "origin"]\n\turl = /nonexistent\n')
        expect = ["more than the 65536 allowed"]
    elif kind == "symlink":
        elsewhere.write_text('[ml "origin"]\n\turl = /nonexistent/through-link\n')
        target.symlink_to(elsewhere)
        expect = ["symbolic link"]
    elif kind == "fifo":
        os.mkfifo(target)
        expect = ["not a regular file"]
    else:
        target.write_bytes(b'[ml "origin"\n\turl = /nonexistent\n\x00\xff')
        expect = ["does not parse"]
    p = run_gitml(bob, "pull")  # works: from the git remote, as if the file were not there
    assert (bob / "data/f0.bin").is_file()
    warned = [ln for ln in p.stderr.splitlines() if ln.startswith("git-ml: warning: .mlgitconfig")]
    for word in expect:
        assert any(word in ln for ln in warned), (word, p.stderr)
    assert all(ln.endswith("(ignored)") for ln in warned), warned
    assert "hunter2" not in p.stderr
    assert "secret" not in p.stderr
    assert not pwned.exists()
    # The Python API reports it as a warning too, and goes on.
    from mlgit.gitlink.settings import SettingsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mlgit.Repo(bob) as r:
            assert lazy_remote(r) == "origin"
    assert any(issubclass(w.category, SettingsWarning) for w in caught)


def test_the_settings_command_refuses_what_the_file_may_not_hold(tmp_path: Path) -> None:
    _, alice = _team_repo(tmp_path)
    for key, value in (("core.sshCommand", "evil"), ("ml.hooks", "false"),
                       ("ml.origin.gitml", "sh -c evil"), ("ml.origin.gitml", "evil;git-ml"),
                       ("ml.origin.url", "ssh://u:pw@host/x"), ("ml.timeout", "soon"),
                       ("ml.origin.endpoint", "ftp://host"), ("ml.x y.url", "/p")):
        p = run_gitml(alice, "config", "--shared", key, value, check=False)
        assert p.returncode == 2, (key, value, p.stderr)
        assert "pw" not in p.stderr or key != "ml.origin.url"
    assert not (alice / ".mlgitconfig").exists()
    run_gitml(alice, "config", "--shared", "ml.origin.gitml", "/opt/venv/bin/git-ml")
    run_gitml(alice, "config", "--shared", "ml.timeout", "30")
    run_gitml(alice, "config", "--shared", "--unset", "ml.timeout")
    text = (alice / ".mlgitconfig").read_text()
    assert "gitml = /opt/venv/bin/git-ml" in text
    assert "timeout" not in text
    p = run_gitml(alice, "config", "--shared", "--unset", "ml.timeout", check=False)
    assert p.returncode == 2
    # Never written through a symlink.
    (alice / ".mlgitconfig").unlink()
    outside = tmp_path / "outside"
    (alice / ".mlgitconfig").symlink_to(outside)
    p = run_gitml(alice, "config", "--shared", "ml.timeout", "5", check=False)
    assert p.returncode == 6, p.stderr
    assert "symbolic link" in p.stderr, p.stderr
    assert not outside.exists()
    # Keys that are not git-ml's are refused without --shared too.
    p = run_gitml(alice, "config", "core.sshCommand", "x", check=False)
    assert p.returncode == 2
    assert run_gitml(alice, "config", "ml.nope", check=False).returncode == 1


def test_a_clone_that_lacks_the_setting_is_told_the_fix(s3_env: object,
                                                        tmp_path: Path) -> None:
    origin, alice = _team_repo(tmp_path)
    git(alice, "config", "ml.origin.url",
        f"s3://{s3_env.bucket}/p")  # type: ignore[attr-defined]
    git(alice, "config", "ml.origin.endpoint", s3_env.endpoint)  # type: ignore[attr-defined]
    git(alice, "push", "-q", "origin", "main")  # the data went to S3, only Alice knows
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode == 2, p.stderr
    assert "has no git-ml data yet" in p.stderr
    assert "`git config ml.origin.url s3://bucket/prefix`" in p.stderr
    assert "git ml config --shared ml.origin.url URL" in p.stderr


def test_gitml_path_from_the_file_reaches_the_ssh_server(sshd: object, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import shlex

    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    url = f"ssh://{sshd.user}@{sshd.host}{origin}"  # type: ignore[attr-defined]
    # The server's git-ml, at a path of the team's choosing (it logs that it ran).
    marker = tmp_path / "server-git-ml-ran"
    server_bin = tmp_path / "server-bin"
    server_bin.mkdir()
    (server_bin / "git-ml").write_text(
        f"#!/bin/sh\ntouch {marker}\nexec {Path(sys.executable).parent / 'git-ml'} \"$@\"\n")
    (server_bin / "git-ml").chmod(0o755)
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", url, str(alice))
    run_gitml(alice, "init")
    make_tree(alice, {"data/a": "a\n"})
    run_gitml(alice, "add", "data")
    run_gitml(alice, "config", "--shared", "ml.origin.gitml", str(server_bin / "git-ml"))
    git(alice, "commit", "-qm", "v1")
    git(alice, "push", "-q", "origin", "main")
    assert marker.exists()
    assert (origin / "ml/refs/datasets/data").exists()
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    marker.unlink()
    run_gitml(bob, "pull")
    assert marker.exists()
    assert (bob / "data/a").read_text() == "a\n"
