"""The registry between teammates: promotions pushed, fetched and pulled like runs.

Two clones (Alice and Bob, each with their own identity) and a real remote: a bare
repository reached by path, over the OpenSSH server fixture, and (the store) on moto's
S3 server. Both promote at once: the first push wins, the second is refused with one
line and exit 9, nothing is lost (the remote keeps the winner's record, the loser's
clone its own); after a fetch the loser's next promotion follows the winner's record.
``git ml fsck`` passes in both clones and on the server after every exchange. A fresh
clone reads ``MODEL@STAGE`` lazily (the checkpoint and the whole trail of records), and
``mlgit.tf.load("resnet@production")`` loads a model by its stage.
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import fsck_ok, git, make_tree, run_gitml

import mlgit


@dataclass
class Server:
    """Where the team's git repository and its store live, and how to check the store."""

    kind: str
    git_url: str
    tmp: Path
    shared: dict[str, str]  # settings Alice commits in .mlgitconfig
    bare: Path

    def fsck(self) -> None:
        """``git ml fsck`` on the server's store (for S3: a mirror that fetched all of it)."""
        if self.kind != "s3":
            fsck_ok(self.bare)
            return
        mirror = self.tmp / f"mirror-{uuid.uuid4().hex[:6]}.git"
        git(self.tmp, "clone", "-q", "--mirror", self.git_url, str(mirror))
        for key, value in self.shared.items():
            git(mirror, "config", key, value)
        run_gitml(mirror, "fetch")
        fsck_ok(mirror)

    def stage_ref(self, name: str) -> str | None:
        """What the server's ref ``stages/<name>`` holds (read with git-ml's own listing)."""
        listing = self.tmp / "lister"
        if not listing.exists():
            git(self.tmp, "clone", "-q", self.git_url, str(listing))
            for key, value in self.shared.items():
                git(listing, "config", key, value)
            run_gitml(listing, "init")
        run_gitml(listing, "fetch")
        ref = listing / ".git/ml/refs/remotes/origin/stages" / name
        return ref.read_text().strip() if ref.exists() else None


@pytest.fixture(params=["local", "ssh", "s3"])
def server(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    bare = tmp_path / "server" / "team.git"
    bare.parent.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    if request.param == "ssh":
        sshd = request.getfixturevalue("sshd")
        monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))
        yield Server("ssh", f"ssh://{sshd.user}@{sshd.host}{bare}", tmp_path, {}, bare)
    elif request.param == "s3":
        s3 = request.getfixturevalue("s3_env")
        shared = {"ml.origin.url": f"s3://{s3.bucket}/team-{uuid.uuid4().hex[:8]}",
                  "ml.origin.endpoint": s3.endpoint}
        yield Server("s3", str(bare), tmp_path, shared, bare)
    else:
        yield Server("local", str(bare), tmp_path, {}, bare)


@pytest.fixture
def own_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each clone's own user.name, as on two machines (conftest sets one for everyone)."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{who}_NAME")
        monkeypatch.delenv(f"GIT_{who}_EMAIL")


def _clone(server: Server, name: str, who: str) -> Path:
    root = server.tmp / name
    git(server.tmp, "clone", "-q", server.git_url, str(root))
    git(root, "config", "user.name", who)
    git(root, "config", "user.email", f"{who.lower()}@example.com")
    return root


def _ckpt(root: Path, run: str, step: int, acc: float) -> str:
    src = root.parent / f"w-{root.name}-{run}-{step}"
    make_tree(src, {"w.bin": os.urandom(3000)})
    return run_gitml(root, "commit-ckpt", str(src), "--run", run, "--step", str(step),
                     "--metric", f"acc={acc}", "-q").stdout.strip()


def _alice(server: Server) -> Path:
    """Alice's clone: two checkpoints of resnet-a, resnet-a~1 promoted to production, pushed."""
    alice = _clone(server, "alice", "Alice")
    run_gitml(alice, "init", "--chunk-size", "4096")
    for key, value in server.shared.items():
        run_gitml(alice, "config", "--shared", key, value)
    make_tree(alice, {"train.py": "# trains resnet\n"})
    git(alice, "add", "train.py")
    git(alice, "commit", "-qm", "training code")
    _ckpt(alice, "resnet-a", 1, 0.8)
    _ckpt(alice, "resnet-a", 2, 0.9)
    run_gitml(alice, "promote", "resnet-a~1", "production", "-m", "first")
    git(alice, "push", "-q", "-u", "origin", "main")  # plain git: the pre-push hook
    return alice


def _trail(root: Path, *args: str) -> list[tuple[str, str | None, str]]:
    """(message, checkpoint, author) of each record of a stage, newest first."""
    out = json.loads(run_gitml(root, "stages", *args, "--history", "--json").stdout)
    return [(r["message"], r["checkpoint"], r["author"].split(" <")[0]) for r in out]


@pytest.mark.usefixtures("own_identities")
def test_promotions_sync_and_the_loser_of_a_race_is_told(server: Server) -> None:
    alice = _alice(server)
    first = (alice / ".git/ml/refs/stages/resnet-a@production").read_text().strip()
    assert server.stage_ref("resnet-a@production") == first
    fsck_ok(alice)
    server.fsck()
    ids = {rev: mlgit.show(rev, repo=alice, files=False).id
           for rev in ("resnet-a", "resnet-a~1")}

    # Bob clones and pulls: the stage is his by name, locally and as origin's.
    bob = _clone(server, "bob", "Bob")
    run_gitml(bob, "pull")
    listing = json.loads(run_gitml(bob, "stages", "--json").stdout)
    assert [(r["remote"], r["stage"], r["checkpoint"], r["metrics"]) for r in listing] == [
        (None, "production", ids["resnet-a~1"], {"acc": 0.8}),
        ("origin", "production", ids["resnet-a~1"], {"acc": 0.8})]
    assert mlgit.checkout("resnet-a@production", repo=bob).is_dir()
    assert mlgit.show("origin/resnet-a@production", repo=bob).id == ids["resnet-a~1"]
    assert _trail(bob, "resnet-a", "production") == [("first", ids["resnet-a~1"], "Alice")]
    fsck_ok(bob)

    # Both move production at once. Alice pushes first and wins.
    run_gitml(alice, "promote", "resnet-a", "production", "-m", "alice: better")
    run_gitml(bob, "demote", "resnet-a", "production", "-m", "bob: incident")
    run_gitml(alice, "push")
    mine = (bob / ".git/ml/refs/stages/resnet-a@production").read_text().strip()
    won = (alice / ".git/ml/refs/stages/resnet-a@production").read_text().strip()
    p = run_gitml(bob, "push", check=False)
    assert p.returncode == 9, p.stderr
    [line] = p.stderr.splitlines()
    assert line.startswith("git-ml: error: push to origin rejected: the remote's "
                           "stages/resnet-a@production has versions yours lacks")
    assert "git ml stages resnet-a production --history" in line
    # Nothing lost: the remote has Alice's record, Bob's clone his own.
    assert server.stage_ref("resnet-a@production") == won
    assert (bob / ".git/ml/refs/stages/resnet-a@production").read_text().strip() == mine
    server.fsck()

    # Bob fetches: his record diverged from origin's; pull keeps his and says so.
    run_gitml(bob, "fetch")
    assert _trail(bob, "origin/resnet-a", "production") == [
        ("alice: better", ids["resnet-a"], "Alice"), ("first", ids["resnet-a~1"], "Alice")]
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode == 9
    assert "stage production of resnet-a has diverged from origin's" in p.stderr
    assert (bob / ".git/ml/refs/stages/resnet-a@production").read_text().strip() == mine
    # His next decision follows Alice's record; his lost one is left behind, said so.
    p = run_gitml(bob, "demote", "resnet-a", "production", "-m", "bob: incident, still")
    assert f"your record {mine[:12]} of resnet-a@production" in p.stderr
    run_gitml(bob, "push")
    run_gitml(alice, "pull")
    expected = [("bob: incident, still", None, "Bob"), ("alice: better", ids["resnet-a"], "Alice"),
                ("first", ids["resnet-a~1"], "Alice")]
    assert _trail(alice, "resnet-a", "production") == expected
    assert _trail(bob, "resnet-a", "production") == expected
    fsck_ok(alice, bob)
    server.fsck()
    # `git ml ls REMOTE` lists datasets and runs, not stages.
    assert {e["kind"] for e in json.loads(run_gitml(alice, "ls", "origin", "--json").stdout)
            } == {"checkpoint"}


def test_a_fresh_clone_reads_a_stage_lazily(server: Server) -> None:
    alice = _alice(server)
    run_gitml(alice, "promote", "resnet-a", "production", "-m", "second")
    run_gitml(alice, "promote", "resnet-a", "staging")
    run_gitml(alice, "push")
    want = mlgit.show("resnet-a", repo=alice, files=False).id
    carol = _clone(server, "carol", "Carol")
    run_gitml(carol, "init")
    # Nothing fetched yet: mlgit.checkout fetches what the stage names (lazily).
    path = mlgit.checkout("resnet-a@production", repo=carol)
    assert path == mlgit.checkout(want, repo=carol)
    assert sorted(p.name for p in path.iterdir()) == ["w.bin"]
    # ... with the stage's whole trail of records (not the older versions' data).
    assert [m for m, _, _ in _trail(carol, "resnet-a", "production")] == ["second", "first"]
    [rec] = json.loads(run_gitml(carol, "stages", "--json").stdout)
    assert (rec["remote"], rec["stage"], rec["step"]) == ("origin", "production", 2)
    report = json.loads(run_gitml(carol, "fsck", "--json").stdout)
    assert report["ok"], report["problems"]
    assert report["not_fetched"] > 0
    # Promoting what holds the stage already records nothing; the local ref catches up.
    same = json.loads(run_gitml(carol, "promote", "resnet-a", "production", "--json").stdout)
    assert (same["created"], same["message"]) == (False, "second")
    tracked = carol / ".git/ml/refs/remotes/origin/stages/resnet-a@production"
    assert (carol / ".git/ml/refs/stages/resnet-a@production").read_text() == \
        tracked.read_text()
    # An explicit fetch of a stage revision works the same way.
    run_gitml(carol, "fetch", "origin", "resnet-a@staging")
    assert mlgit.show("resnet-a@staging", repo=carol).id == want
    p = run_gitml(carol, "fetch", "origin", "resnet-a@canary", check=False)
    assert p.returncode == 5
    assert "the remote has no stage 'canary' of 'resnet-a'" in p.stderr


@pytest.fixture
def tf(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


def test_tf_load_by_stage_in_a_teammates_clone(tf: Any, tmp_path: Path) -> None:
    import numpy as np

    import mlgit.tf as mltf

    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", str(origin), str(alice))
    run_gitml(alice, "init")
    make_tree(alice, {"train.py": "# tiny\n"})
    git(alice, "add", "train.py")
    git(alice, "commit", "-qm", "code")
    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(1).random((32, 4), dtype=np.float32)
    cb = mltf.CheckpointCallback("tiny", repo=alice)
    model.fit(x, x.sum(axis=1), epochs=2, verbose=0, callbacks=[cb])
    mlgit.promote("tiny~1", "production", model="resnet", message="epoch 1", repo=alice)
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    first = mltf.load(cb.checkpoints[0][1], repo=alice)
    loaded = mltf.load("resnet@production", repo=bob)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), first.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
