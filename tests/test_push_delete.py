"""``git ml push REMOTE --delete NAME`` between two teammates, over a local path, the real
sshd and moto's S3 server: a ref is deleted only at the version last fetched."""

from __future__ import annotations

import json
import os
import shlex
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git, make_tree, run_gitml


@dataclass
class Team:
    alice: Path
    bob: Path
    kind: str


def _remote_refs(repo: Path) -> dict[str, str]:
    return {f"{e['kind']}s/{e['name']}": e["id"]
            for e in json.loads(run_gitml(repo, "ls", "origin", "--json").stdout)}


def _tracking(repo: Path) -> dict[str, str]:
    return {f"{e['kind']}s/{e['name']}": e["id"]
            for e in json.loads(run_gitml(repo, "ls", "--json").stdout) if e["remote"] == "origin"}


@pytest.fixture(params=["local", "ssh", "s3"])
def team(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Team:
    """Alice pushed a dataset and a run; Bob cloned and fetched them."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    url = str(origin)
    ml_config: list[tuple[str, str]] = []
    if request.param == "ssh":
        sshd = request.getfixturevalue("sshd")
        monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))
        url = f"ssh://{sshd.user}@{sshd.host}{origin}"
    elif request.param == "s3":
        s3 = request.getfixturevalue("s3_env")
        ml_config = [("ml.origin.url", f"s3://{s3.bucket}/team-{uuid.uuid4().hex[:8]}"),
                     ("ml.origin.endpoint", s3.endpoint)]
    alice = tmp_path / "alice"
    alice.mkdir()
    git(alice, "init", "-q")
    git(alice, "remote", "add", "origin", url)
    for key, value in ml_config:
        git(alice, "config", key, value)
    run_gitml(alice, "init", "--chunk-size", "4096")
    make_tree(alice, {f"data/f{i}.bin": os.urandom(4000) for i in range(4)})
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qm", "v1")
    ck = tmp_path / "ck"
    make_tree(ck, {"w.bin": os.urandom(5000)})
    run_gitml(alice, "commit-ckpt", str(ck), "--run", "r1", "--step", "1")
    git(alice, "push", "-q", "-u", "origin", "main")
    run_gitml(alice, "push")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    for key, value in ml_config:
        git(bob, "config", key, value)
    run_gitml(bob, "init")
    run_gitml(bob, "fetch")
    assert set(_tracking(bob)) == {"datasets/data", "checkpoints/r1"}
    return Team(alice, bob, request.param)


def test_delete_removes_the_remote_ref_and_the_tracking_ref(team: Team) -> None:
    before = _remote_refs(team.alice)
    out = run_gitml(team.bob, "push", "origin", "--delete", "data").stdout
    assert f"deleted datasets/data ({before['datasets/data'][:12]}) from origin" in out
    assert _remote_refs(team.alice) == {"checkpoints/r1": before["checkpoints/r1"]}
    assert _tracking(team.bob) == {"checkpoints/r1": before["checkpoints/r1"]}
    run_gitml(team.bob, "push", "--delete", "checkpoints/r1")  # default remote, explicit kind
    assert _remote_refs(team.alice) == {}
    assert _tracking(team.bob) == {}
    # The objects stay on the remote: Alice's pushed commit still pins the data.
    run_gitml(team.bob, "pull")
    assert (team.bob / "data/f0.bin").read_bytes() == (team.alice / "data/f0.bin").read_bytes()


def test_a_ref_that_moved_since_fetch_is_refused_and_nothing_changes(team: Team) -> None:
    (team.alice / "data/f0.bin").write_bytes(os.urandom(4000))
    run_gitml(team.alice, "add", "data")
    run_gitml(team.alice, "push")
    remote = _remote_refs(team.alice)
    tracking = _tracking(team.bob)
    assert remote["datasets/data"] != tracking["datasets/data"]
    p = run_gitml(team.bob, "push", "origin", "--delete", "data", "--delete", "r1",
                  check=False)
    assert p.returncode == 9, p.stderr
    assert "datasets/data" in p.stderr
    assert "moved since you fetched" in p.stderr
    assert "git ml fetch origin" in p.stderr
    assert _remote_refs(team.alice) == remote  # r1 (unmoved) was not deleted either
    assert _tracking(team.bob) == tracking
    run_gitml(team.bob, "fetch")
    run_gitml(team.bob, "push", "origin", "--delete", "data")  # now at the version seen
    assert "datasets/data" not in _remote_refs(team.alice)


def test_a_ref_never_fetched_cannot_be_deleted(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", str(origin), str(alice))
    run_gitml(alice, "init")
    make_tree(alice, {"data/a": "a\n", "same/b": "b\n"})
    run_gitml(alice, "add", "data", "same")
    ck = tmp_path / "ck"
    make_tree(ck, {"w": "w\n"})
    run_gitml(alice, "commit-ckpt", str(ck), "--run", "same")
    git(alice, "commit", "-qm", "v1")
    git(alice, "push", "-q", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    refs = sorted(p.name for p in (origin / "ml/refs/datasets").iterdir())
    p = run_gitml(bob, "push", "--delete", "data", check=False)
    assert p.returncode == 2, p.stderr
    assert "git ml fetch origin" in p.stderr
    run_gitml(bob, "fetch")
    p = run_gitml(bob, "push", "--delete", "same", check=False)  # a dataset and a run
    assert p.returncode == 5, p.stderr
    assert "datasets/same or checkpoints/same" in p.stderr, p.stderr
    for bad in ("../x", "datasets/", "other/name"):
        p = run_gitml(bob, "push", "--delete", bad, check=False)
        assert p.returncode == 2, (bad, p.stderr)
    p = run_gitml(bob, "push", "--force", "--delete", "data", check=False)
    assert p.returncode == 2
    assert sorted(p.name for p in (origin / "ml/refs/datasets").iterdir()) == refs
    run_gitml(bob, "push", "--delete", "checkpoints/same")
    assert not (origin / "ml/refs/checkpoints/same").exists()
    assert (origin / "ml/refs/datasets/same").exists()


_OLD_SERVER = """\
import sys
import mlgit.sync.serve as serve
serve._OPS.pop("delete_ref")  # a git-ml from before the request existed
from mlgit.cli.main import main
sys.argv[0] = "git-ml"
main()
"""


def test_an_old_ssh_server_is_named_as_too_old(sshd: object, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    url = f"ssh://{sshd.user}@{sshd.host}{origin}"  # type: ignore[attr-defined]
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", url, str(alice))
    run_gitml(alice, "init")
    make_tree(alice, {"data/a": "a\n"})
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qm", "v1")
    git(alice, "push", "-q", "origin", "main")
    run_gitml(alice, "fetch")
    script = tmp_path / "old-git-ml.py"
    script.write_text(_OLD_SERVER)
    git(alice, "config", "ml.origin.gitml", f"{sys.executable} {script}")
    p = run_gitml(alice, "push", "--delete", "data", check=False)
    assert p.returncode == 14, p.stderr  # RemoteRefusedError
    assert "too old to delete refs" in p.stderr
    assert "upgrade git-ml there" in p.stderr
    assert (origin / "ml/refs/datasets/data").exists()
    assert "origin/data" in run_gitml(alice, "ls").stdout
