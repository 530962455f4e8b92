"""Two teammates end to end, as issue 9's "done when" says, over a real OpenSSH server on
127.0.0.1 and over moto's S3 server (a separate process).

Alice adds data, trains with the Keras callback, attaches a log, a graph and results, and
pushes with plain ``git push``; Bob clones (configured only by what the clone carries:
for S3 the committed ``.mlgitconfig``), pulls, reads every payload, loads the run by name,
adds his own results on the same commit and pushes; Alice fetches and sees both, told
apart by author. Then Bob works in a linked worktree, Alice moves main on, Bob rebases
onto it with plain ``git pull --rebase`` and pushes with plain ``git push``; Alice gets
Bob's branch with its data and notes. ``git ml fsck`` passes on both clones and on the
server after every exchange (for S3, which runs no git-ml, on a mirror that fetched every
ref and note from it).

Real TensorFlow on the CPU with a tiny model; skipped when TensorFlow is not installed.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import fsck_ok, git, make_tree, note_records, read_tree, run_gitml

import mlgit
from mlgit import errors

GRAPH = json.dumps({"class_name": "Sequential", "config": {"name": "tiny", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
    {"class_name": "Dense", "config": {"units": 8}}]}})


@dataclass
class Server:
    """Where the team's git repository and its store live, and how to check the store."""

    kind: str
    git_url: str
    tmp: Path
    shared: dict[str, str]  # settings Alice commits in .mlgitconfig
    bare: Path  # the git repository on the server

    def fsck(self) -> None:
        """``git ml fsck`` on the server's store (for S3: a mirror holding all of it)."""
        if self.kind == "ssh":
            fsck_ok(self.bare)
            return
        mirror = self.tmp / f"mirror-{uuid.uuid4().hex[:6]}.git"
        git(self.tmp, "clone", "-q", "--mirror", self.git_url, str(mirror))
        for key, value in self.shared.items():  # a mirror has no work tree to carry them
            git(mirror, "config", key, value)
        run_gitml(mirror, "fetch")
        fsck_ok(mirror)


@pytest.fixture
def tf(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


@pytest.fixture(params=["ssh", "s3"])
def server(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    bare = tmp_path / "server" / "team.git"
    bare.parent.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    if request.param == "ssh":
        sshd = request.getfixturevalue("sshd")
        # The user's environment, as for git itself (an ssh config would do the same).
        monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))
        yield Server("ssh", f"ssh://{sshd.user}@{sshd.host}{bare}", tmp_path, {}, bare)
    else:
        s3 = request.getfixturevalue("s3_env")
        shared = {"ml.origin.url": f"s3://{s3.bucket}/team-{uuid.uuid4().hex[:8]}",
                  "ml.origin.endpoint": s3.endpoint}
        yield Server("s3", str(bare), tmp_path, shared, bare)


def _all_clean(root: Path) -> bool:
    states = [e["state"] for e in json.loads(run_gitml(root, "status", "--json").stdout)]
    return states == ["clean", "clean"]


def _payload(root: Path, oid: str) -> bytes:
    """A note payload's bytes, through ``git ml path`` (fetched lazily when missing)."""
    path = Path(run_gitml(root, "path", oid).stdout.strip())
    if path.is_dir():
        return b"".join(p.relative_to(path).as_posix().encode() + b"\0" + p.read_bytes()
                        for p in sorted(path.rglob("*")) if p.is_file())
    return path.read_bytes()


def _clone(server: Server, name: str, who: str) -> Path:
    root = server.tmp / name
    git(server.tmp, "clone", "-q", server.git_url, str(root))
    git(root, "config", "user.name", who)
    git(root, "config", "user.email", f"{who.lower()}@example.com")
    return root


def _data(n: int = 128) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.random((n, 4), dtype=np.float32)
    y = (x.sum(axis=1) > 2.0).astype("float32")
    return x, y


def _train(tf: Any, alice: Path) -> Any:
    import mlgit.tf as mltf

    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = _data()
    cb = mltf.CheckpointCallback("tiny-a", repo=alice, datasets=["data"],
                                 config={"lr": 0.001, "units": 8})
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    return model


def test_two_teammates_end_to_end(tf: Any, server: Server,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import mlgit.tf as mltf

    for who in ("AUTHOR", "COMMITTER"):  # each clone's own user.name, as on two machines
        monkeypatch.delenv(f"GIT_{who}_NAME")
        monkeypatch.delenv(f"GIT_{who}_EMAIL")

    tmp = server.tmp
    # --- Alice: data, training with the Keras callback, log + graph + results, git push.
    alice = _clone(server, "alice", "Alice")
    run_gitml(alice, "init", "--chunk-size", "4096")
    for key, value in server.shared.items():
        run_gitml(alice, "config", "--shared", key, value)
    make_tree(alice, {f"data/train/part{i}.csv": "".join(f"{i},{j},{i * j % 7}\n"
                                                        for j in range(200))
                      for i in range(6)})
    make_tree(alice, {"data/README": "six parts\n", "testset/t.csv": "x,y\n1,0\n",
                      "train.py": "# trains tiny-a\n"})
    run_gitml(alice, "add", "data", "testset")
    git(alice, "add", "train.py")
    git(alice, "commit", "-qm", "data and training code")
    model = _train(tf, alice)
    work = tmp / "work-alice"
    make_tree(work, {"graph.json": GRAPH, "eval.json": '{"accuracy": 0.75, "loss": 0.5}',
                     "train-log.csv": "epoch,loss\n0,0.7\n1,0.6\n"})
    run_gitml(alice, "note", "add", "--graph", str(work / "graph.json"))
    run_gitml(alice, "note", "add", "--log", str(work / "train-log.csv"))
    run_gitml(alice, "note", "add", "--results", str(work / "eval.json"),
              "--dataset", "testset")
    git(alice, "push", "-q", "-u", "origin", "main")  # plain git: the pre-push hook
    commit = git(alice, "rev-parse", "HEAD").stdout.strip()
    alice_records = note_records(alice)
    assert {r["type"] for r in alice_records} >= {"checkpoint", "log", "graph", "results"}
    payloads = {r["object"]: _payload(alice, r["object"])
                for r in alice_records if "object" in r}
    assert len(payloads) >= 4  # the callback's log, and the graph, log, results above
    fsck_ok(alice)
    server.fsck()

    # --- Bob: a clone configured only by what it carries; every payload; the run by name.
    bob = _clone(server, "bob", "Bob")
    run_gitml(bob, "pull")
    assert "ml." not in (bob / ".git/config").read_text().replace("ml.mlgit", "")
    assert read_tree(bob / "data") == read_tree(alice / "data")
    assert note_records(bob, commit) == alice_records
    for oid, content in payloads.items():
        assert _payload(bob, oid) == content
    listing = json.loads(run_gitml(bob, "ls", "--json").stdout)
    assert {(e["kind"], e["name"]) for e in listing} >= {("dataset", "data"),
                                                         ("checkpoint", "tiny-a")}
    shown = json.loads(run_gitml(bob, "show", "tiny-a", "--json").stdout)
    assert shown["meta"]["step"] == 2
    assert mlgit.latest_checkpoint("tiny-a", repo=bob).is_dir()
    loaded = mltf.load("tiny-a", repo=bob)
    x, _ = _data(16)
    assert (loaded.predict(x, verbose=0) == model.predict(x, verbose=0)).all()
    make_tree(tmp / "work-bob", {"bob-eval.json": '{"accuracy": 0.7}'})
    run_gitml(bob, "note", "add", "--results", str(tmp / "work-bob/bob-eval.json"),
              "--dataset", "testset", commit)
    run_gitml(bob, "push")
    fsck_ok(bob)
    server.fsck()

    # --- Alice fetches and sees both people's results on the one commit.
    run_gitml(alice, "fetch")
    results = [r for r in note_records(alice, commit) if r["type"] == "results"]
    assert {r["name"] for r in results} == {"eval.json", "bob-eval.json"}
    by_author = {r["name"]: r.get("author", "") for r in results}
    assert "Alice" in by_author["eval.json"]
    assert "Bob" in by_author["bob-eval.json"]
    bob_result = next(r for r in results if r["name"] == "bob-eval.json")
    assert _payload(alice, bob_result["object"]) == b'{"accuracy": 0.7}'
    fsck_ok(alice, bob)

    # --- Bob in a linked worktree: a new data version, a commit, results on it.
    wt = tmp / "bob-wt"
    git(bob, "worktree", "add", "-q", "-b", "more-data", str(wt), "origin/main")
    assert read_tree(wt / "data") == read_tree(alice / "data")  # post-checkout materialized
    (wt / "data/train/part6.csv").write_text("6,0,0\n")
    run_gitml(wt, "add", "data")
    git(wt, "commit", "-qm", "a seventh part")
    make_tree(tmp / "work-bob", {"wt-eval.json": '{"accuracy": 0.72}'})
    run_gitml(wt, "note", "add", "--results", str(tmp / "work-bob/wt-eval.json"),
              "--dataset", "testset")
    assert _all_clean(wt)
    fsck_ok(wt)

    # --- Alice moves main on; Bob rebases onto it and pushes, all with plain git.
    (alice / "train.py").write_text("# trains tiny-a, seeded\n")
    git(alice, "commit", "-qam", "seed the training")
    git(alice, "push", "-q")
    p = git(wt, "pull", "-q", "--rebase", "origin", "main")
    assert "warning" not in p.stderr.lower(), p.stderr
    assert (wt / "train.py").read_text() == "# trains tiny-a, seeded\n"
    rebased = git(wt, "rev-parse", "HEAD").stdout.strip()
    assert [r["name"] for r in note_records(wt, rebased)] == ["wt-eval.json"]  # notes carried
    git(wt, "push", "-q", "-u", "origin", "more-data")
    fsck_ok(bob, wt)
    server.fsck()

    # --- Alice gets Bob's branch: its data and the notes on the rebased commit.
    git(alice, "fetch", "-q", "origin")
    run_gitml(alice, "fetch")
    assert [r["name"] for r in note_records(alice, rebased)] == ["wt-eval.json"]
    git(alice, "checkout", "-q", "more-data")
    assert (alice / "data/train/part6.csv").read_text() == "6,0,0\n"
    assert _all_clean(alice)
    fsck_ok(alice, bob)
    server.fsck()


def _state(root: Path) -> list[tuple[str, int, int]]:
    """Every file of the clone (git dir and store included) with size and mtime."""
    return sorted((p.relative_to(root).as_posix(), p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in root.rglob("*") if not p.is_dir())


@pytest.mark.parametrize(("args", "code", "says"), [
    (["push", "nosuch"], errors.UsageError.exit_code, "unknown remote 'nosuch'"),
    (["fetch", "nosuch"], errors.UsageError.exit_code, "unknown remote 'nosuch'"),
    (["pull", "nosuch"], errors.UsageError.exit_code, "unknown remote 'nosuch'"),
    (["ls", "nosuch"], errors.UsageError.exit_code, "unknown remote 'nosuch'"),
    (["push", "nosuch", "--delete", "data"], errors.UsageError.exit_code,
     "unknown remote 'nosuch'"),
    (["push", "origin", "--delete", "nosuchref"], errors.UsageError.exit_code,
     "has no nosuchref"),
    (["path", "f" * 32], errors.RevisionError.exit_code, "not in the local store"),
    (["show", "nosuch/data"], errors.RevisionError.exit_code, "unknown revision"),
    (["fetch", "origin", "nosuchrev"], errors.RevisionError.exit_code, "nosuchrev"),
])
def test_bad_input_to_the_team_verbs_is_one_line_and_changes_nothing(
        tmp_path: Path, args: list[str], code: int, says: str) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", str(bare), str(alice))
    run_gitml(alice, "init")
    make_tree(alice, {"data/a.csv": "1,2\n"})
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qm", "v1")
    git(alice, "push", "-q", "origin", "main")
    before, server_before = _state(alice), _state(bare)
    p = run_gitml(alice, *args, check=False)
    assert p.returncode == code, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("git-ml: error: "), lines
    assert says in lines[0], lines
    assert _state(alice) == before
    assert _state(bare) == server_before
