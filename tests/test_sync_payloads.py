"""Two teammates over a bare origin: note payloads travel, every name resolves in a clone,
pull moves local refs, and plain `git push` / `git pull` carry notes and data (issue 9).

Each step ends with `git ml fsck` passing on the server (the bare origin's store) and in
every clone.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import pytest
from conftest import fsck_ok, git, make_tree, note_records, read_tree, run_gitml

import mlgit
from mlgit import errors
from mlgit.format.ids import hex_to_raw


def _pointer_id(root: Path, name: str = "data") -> str:
    return (root / f"{name}.mlgit").read_text().split("id: ")[1].split()[0]


MODEL_JSON = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
    {"class_name": "Dense", "config": {"units": 2}}]}})


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(r))
    return r


def _alice(tmp_path: Path, url: str) -> Path:
    """Alice: data, a checkpoint with config, log and graph, results on a test set.

    A pre-push hook that was there before git-ml counts how often git runs it.
    """
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    hook = a / ".git/hooks/pre-push"
    hook.write_text(f"#!/bin/sh\necho run >> {shlex.quote(str(tmp_path / 'pre-push.log'))}\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(a, {f"data/part{i % 3}/f{i}.bin": os.urandom(2500) for i in range(24)})
    make_tree(a, {"testset/t.csv": "x,y\n1,2\n", "train.py": "print(1)\n"})
    run_gitml(a, "add", "data", "testset")
    git(a, "add", "train.py")
    git(a, "commit", "-qm", "v1")
    work = tmp_path / "work-alice"
    make_tree(work, {"ck/w.bin": os.urandom(9000), "hp.yaml": "lr: 0.1\n",
                     "train.csv": "epoch,loss,acc\n0,0.9,0.5\n1,0.5,0.7\n",
                     "model.json": MODEL_JSON, "eval.json": '{"acc": 0.91}',
                     "tb/events.out.tfevents.1": os.urandom(300)})
    run_gitml(a, "commit-ckpt", str(work / "ck"), "--run", "r1", "--step", "1",
              "--config", str(work / "hp.yaml"), "--log", str(work / "train.csv"),
              "--graph", str(work / "model.json"))
    run_gitml(a, "note", "add", "--results", str(work / "eval.json"), "--dataset", "testset")
    git(a, "remote", "add", "origin", url)
    return a


def _payloads(root: Path) -> dict[str, str]:
    """name -> object id of every payload record on HEAD."""
    return {str(r["name"]): str(r["object"]) for r in note_records(root) if "object" in r}


def test_payloads_names_and_fsck_across_two_teammates(tmp_path: Path, origin: Path) -> None:
    alice = _alice(tmp_path, str(origin))
    work = tmp_path / "work-alice"
    git(alice, "push", "-q", "-u", "origin", "main")  # plain git: the pre-push hook
    # The hook ran once (its own `git push --no-verify` of the notes did not run it again),
    # and the notes reached the server.
    assert (tmp_path / "pre-push.log").read_text().splitlines() == ["run"]
    assert git(origin, "rev-parse", "-q", "--verify", "refs/notes/ml").returncode == 0
    fsck_ok(origin, alice)
    payloads = _payloads(alice)
    assert set(payloads) == {"train.csv", "model.json", "eval.json"}

    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    fsck_ok(bob, origin)
    # Every payload comes back by the id its record names (fetched lazily), read-only.
    for name, oid in payloads.items():
        path = Path(run_gitml(bob, "path", oid).stdout.strip())
        assert path.name == name
        assert path.read_bytes() == (work / name).read_bytes()
        assert path.stat().st_mode & 0o222 == 0  # read-only, like a snapshot checkout
    assert mlgit.checkout(payloads["eval.json"][:10], repo=bob).read_text() == '{"acc": 0.91}'
    # Every name resolves: ls lists the run, show and latest_checkpoint work.
    listing = json.loads(run_gitml(bob, "ls", "--json").stdout)
    assert {(e["kind"], e["name"]) for e in listing} >= {("dataset", "data"),
                                                         ("dataset", "testset"),
                                                         ("checkpoint", "r1")}
    shown = json.loads(run_gitml(bob, "show", "r1", "--json").stdout)
    assert [f["path"] for f in shown["file_list"]] == ["w.bin"]
    assert shown["meta"]["config"][0]["name"] == "hp.yaml"
    ck = mlgit.latest_checkpoint("r1", repo=bob)
    assert read_tree(ck) == read_tree(work / "ck")
    fsck_ok(bob)

    # Bob adds his own results on the same commit and pushes.
    (tmp_path / "bob-eval.json").write_text('{"acc": 0.87}')
    run_gitml(bob, "note", "add", "--results", str(tmp_path / "bob-eval.json"),
              "--dataset", "testset")
    run_gitml(bob, "push")
    fsck_ok(origin, bob)

    out = run_gitml(alice, "fetch").stdout
    assert "notes synced" in out
    results = [r for r in note_records(alice) if r["type"] == "results"]
    assert sorted(r["metrics"]["acc"] for r in results) == [0.87, 0.91]
    bobs = next(str(r["object"]) for r in results if r["name"] == "bob-eval.json")
    with mlgit.Repo(alice) as r:  # `git ml fetch` brings payloads eagerly
        assert r.store.objects.has_committed(hex_to_raw(bobs))
    assert Path(run_gitml(alice, "path", bobs).stdout.strip()).read_text() == '{"acc": 0.87}'
    fsck_ok(alice, origin, bob)


def test_directory_payload_and_payload_errors(tmp_path: Path, origin: Path) -> None:
    alice = _alice(tmp_path, str(origin))
    run_gitml(alice, "note", "add", "--log", str(tmp_path / "work-alice/tb"))
    git(alice, "push", "-q", "-u", "origin", "main")
    tb = next(str(r["object"]) for r in note_records(alice) if r.get("name") == "tb")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    path = Path(run_gitml(bob, "path", tb).stdout.strip())
    assert path.is_dir()
    assert read_tree(path) == read_tree(tmp_path / "work-alice/tb")
    # An id no note names is not a payload; lazy fetch off and a payload not here: one line.
    p = run_gitml(bob, "path", "0" * 32, check=False)
    assert p.returncode == errors.RevisionError.exit_code
    assert len(p.stderr.strip().splitlines()) == 1
    git(bob, "config", "ml.lazyFetch", "false")
    eval_id = _payloads(bob)["eval.json"]
    p = run_gitml(bob, "path", eval_id, check=False)
    assert p.returncode == errors.RevisionError.exit_code, p.stderr
    assert "lazy fetching is off" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_a_payload_nobody_has_is_reported_and_the_rest_pushed(tmp_path: Path,
                                                              origin: Path) -> None:
    alice = _alice(tmp_path, str(origin))
    ghost = "ab" * 16
    line = json.dumps({"type": "log", "v": 1, "object": ghost, "name": "gone.csv",
                       "format": "csv"}, sort_keys=True, separators=(",", ":"))
    git(alice, "notes", "--ref", "ml", "append", "-m", line, "HEAD")
    p = run_gitml(alice, "push", check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code, p.stderr
    assert ghost in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    # Everything else went: refs, the other payloads, the notes.
    assert (origin / "ml/refs/checkpoints/r1").exists()
    with mlgit.Repo(origin) as r:
        for oid in _payloads(alice).values():
            if oid != ghost:
                assert r.store.objects.has_committed(hex_to_raw(oid))


def test_notes_pushed_before_payloads_travelled_get_their_payloads(tmp_path: Path,
                                                                   origin: Path) -> None:
    """Notes that reached the server without their payloads (an older git-ml, hooks off):
    the next `git ml push` sends what they name, though the notes themselves are equal."""
    alice = _alice(tmp_path, str(origin))
    git(alice, "config", "ml.hooks", "false")
    git(alice, "push", "-q", "origin", "main", "refs/notes/ml")
    run_gitml(origin, "init")
    p = run_gitml(origin, "fsck", check=False)
    assert p.returncode == 1
    assert "missing" in p.stdout
    run_gitml(alice, "push")
    fsck_ok(origin, alice)
    again = run_gitml(alice, "push").stdout
    assert "0 objects" in again


def test_git_push_and_git_ml_fetch_to_a_url_carry_notes(tmp_path: Path, origin: Path) -> None:
    """`git push URL` (no remote name) runs the pre-push hook with the URL: the notes go
    too, and `git ml fetch URL` brings a teammate's back."""
    alice = _alice(tmp_path, str(origin))
    git(alice, "remote", "remove", "origin")
    p = git(alice, "push", "-q", str(origin), "HEAD:main")
    assert "warning" not in p.stderr, p.stderr
    assert git(origin, "rev-parse", "-q", "--verify", "refs/notes/ml").returncode == 0
    fsck_ok(origin, alice)
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    assert {r["type"] for r in note_records(bob)} == {"checkpoint", "log", "graph", "results"}
    (tmp_path / "bob-eval.json").write_text('{"acc": 0.8}')
    run_gitml(bob, "note", "add", "--results", str(tmp_path / "bob-eval.json"))
    run_gitml(bob, "push")
    out = run_gitml(alice, "fetch", str(origin)).stdout
    assert "notes synced" in out
    assert {r["name"] for r in note_records(alice) if r["type"] == "results"} == {
        "eval.json", "bob-eval.json"}
    fsck_ok(alice, origin, bob)


def test_pull_fast_forwards_creates_and_refuses_divergence(tmp_path: Path,
                                                           origin: Path) -> None:
    alice = _alice(tmp_path, str(origin))
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    out = run_gitml(bob, "pull").stdout
    # Local refs the remote has and Bob lacked are created.
    assert (bob / ".git/ml/refs/checkpoints/r1").read_text().strip() == (
        origin / "ml/refs/checkpoints/r1").read_text().strip()
    assert "local refs updated: datasets/data" in out
    # Alice moves two refs; Bob's pull fast-forwards both (one he never checked out).
    (alice / "data/part0/f0.bin").write_bytes(b"alice v2")
    run_gitml(alice, "add", "data")
    make_tree(tmp_path, {"ck2/w.bin": os.urandom(4000)})
    run_gitml(alice, "commit-ckpt", str(tmp_path / "ck2"), "--run", "r1", "--step", "2")
    run_gitml(alice, "push")
    run_gitml(bob, "pull")
    for ref in ("datasets/data", "checkpoints/r1"):
        assert (bob / f".git/ml/refs/{ref}").read_text() == (
            origin / f"ml/refs/{ref}").read_text()
    assert mlgit.latest_checkpoint("r1", repo=bob).joinpath("w.bin").read_bytes() == (
        tmp_path / "ck2/w.bin").read_bytes()
    fsck_ok(bob, origin)
    # Both change the dataset; Alice pushes first, Bob's push is refused, so is his pull.
    (alice / "data/README").write_text("alice v3\n")
    run_gitml(alice, "add", "data")
    run_gitml(alice, "push")
    (bob / "data/README").write_text("bob v3\n")
    run_gitml(bob, "add", "data")
    p = run_gitml(bob, "push", check=False)
    assert p.returncode == errors.ConflictError.exit_code
    mine = (bob / ".git/ml/refs/datasets/data").read_text()
    before = read_tree(bob / "data")
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode == errors.ConflictError.exit_code, p.stderr
    lines = p.stderr.strip().splitlines()
    theirs = (origin / "ml/refs/datasets/data").read_text().strip()
    assert len(lines) == 1, p.stderr
    assert "diverged" in lines[0], p.stderr
    assert mine.strip()[:12] in lines[0]
    assert theirs[:12] in lines[0]
    assert "--force" in lines[0]
    assert (bob / ".git/ml/refs/datasets/data").read_text() == mine
    assert read_tree(bob / "data") == before
    assert _pointer_id(bob) == mine.strip()
    # The remote's version is still nameable explicitly.
    assert json.loads(run_gitml(bob, "show", "origin/data", "--json").stdout)["id"] == theirs
    fsck_ok(bob)


def test_git_pull_and_pull_rebase_bring_notes_payloads_and_names(tmp_path: Path,
                                                                 origin: Path) -> None:
    alice = _alice(tmp_path, str(origin))
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    # Alice trains a new run on a new commit and notes results; plain git push.
    git(alice, "commit", "-q", "--allow-empty", "-m", "train r2")
    make_tree(tmp_path, {"ck3/w.bin": os.urandom(3000), "r2.json": '{"acc": 0.5}'})
    run_gitml(alice, "commit-ckpt", str(tmp_path / "ck3"), "--run", "r2")
    run_gitml(alice, "note", "add", "--results", str(tmp_path / "r2.json"))
    git(alice, "push", "-q")
    git(bob, "pull", "-q", "--ff-only")  # post-merge: `git ml pull`
    assert [r["type"] for r in note_records(bob)] == ["checkpoint", "results"]
    assert (bob / ".git/ml/refs/checkpoints/r2").exists()  # a local ref, created
    assert mlgit.latest_checkpoint("r2", repo=bob).joinpath("w.bin").exists()
    fsck_ok(bob, origin)
    # git pull --rebase: post-checkout, then post-rewrite (rebase, from pull).
    make_tree(bob, {"bobs.txt": "b\n"})
    git(bob, "add", "bobs.txt")
    git(bob, "commit", "-qm", "bob's commit")
    (alice / "data/README").write_text("v4\n")
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qam", "v4")
    make_tree(tmp_path, {"v4.json": '{"acc": 0.6}'})
    run_gitml(alice, "note", "add", "--results", str(tmp_path / "v4.json"))
    git(alice, "push", "-q")
    p = git(bob, "pull", "-q", "--rebase")
    assert "warning" not in p.stderr, p.stderr
    assert (bob / "data/README").read_text() == "v4\n"
    assert run_gitml(bob, "status", "--json").stdout.count('"clean"') == 2
    v4 = git(alice, "rev-parse", "HEAD").stdout.strip()
    assert [r["name"] for r in note_records(bob, v4)] == ["v4.json"]
    assert (bob / ".git/ml/refs/datasets/data").read_text() == (
        origin / "ml/refs/datasets/data").read_text()
    fsck_ok(bob, origin)


def test_fetch_in_fresh_clone_and_ls_remote_order(tmp_path: Path, origin: Path) -> None:
    alice = _alice(tmp_path, str(origin))
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    out = run_gitml(bob, "fetch").stdout
    assert "Initialized git-ml store" in out
    fsck_ok(bob)
    kinds = [e["kind"] for e in json.loads(run_gitml(bob, "ls", "origin", "--json").stdout)]
    assert kinds == ["dataset", "dataset", "checkpoint"]
    text = run_gitml(bob, "ls", "origin").stdout.splitlines()
    assert [line.split()[0] for line in text] == kinds
    # fetch REVS: those versions whole, and every other name resolves too.
    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", str(origin), str(carol))
    run_gitml(carol, "fetch", "origin", "testset")
    assert json.loads(run_gitml(carol, "show", "r1", "--json").stdout)["name"] == "r1"
    assert {e["name"] for e in json.loads(run_gitml(carol, "ls", "--json").stdout)} == {
        "data", "testset", "r1"}
    fsck_ok(carol)


@pytest.mark.parametrize("how", ["--bare", "--mirror"])
def test_bare_and_mirror_clones_hold_the_store_and_serve(tmp_path: Path, origin: Path,
                                                         how: str) -> None:
    alice = _alice(tmp_path, str(origin))
    git(alice, "push", "-q", "-u", "origin", "main")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", how, str(origin), str(mirror))
    out = run_gitml(mirror, "fetch").stdout
    assert "Initialized git-ml store" in out
    listing = json.loads(run_gitml(mirror, "ls", "--json").stdout)
    assert {(e["remote"], e["name"]) for e in listing} >= {(None, "data"), (None, "r1"),
                                                           ("origin", "r1")}
    if how == "--bare":  # a --mirror clone got the notes from git itself
        assert "notes synced" in out
    fsck_ok(mirror)
    # It serves as a remote for Carol: data, names and payloads.
    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", str(mirror), str(carol))
    run_gitml(carol, "pull")
    assert read_tree(carol / "data") == read_tree(alice / "data")
    assert mlgit.latest_checkpoint("r1", repo=carol).is_dir()
    for name, oid in _payloads(alice).items():
        assert Path(run_gitml(carol, "path", oid).stdout.strip()).name == name
    fsck_ok(carol, mirror)
    # Alice moves on; the mirror's fetch follows the remote's refs.
    (alice / "data/README").write_text("moved\n")
    run_gitml(alice, "add", "data")
    run_gitml(alice, "push")
    run_gitml(mirror, "fetch")
    assert (mirror / "ml/refs/datasets/data").read_text() == (
        origin / "ml/refs/datasets/data").read_text()
    fsck_ok(mirror)


def test_push_pull_fsck_loop_over_ssh(tmp_path: Path, sshd: object,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    server = tmp_path / "srv.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(server))
    url = f"ssh://{sshd.user}@{sshd.host}{server}"  # type: ignore[attr-defined]
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    alice = _alice(tmp_path, url)
    git(alice, "push", "-q", "-u", "origin", "main")
    fsck_ok(server, alice)
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    run_gitml(bob, "pull")
    for name, oid in _payloads(alice).items():
        path = Path(run_gitml(bob, "path", oid).stdout.strip())
        assert path.read_bytes() == (tmp_path / "work-alice" / name).read_bytes()
    # The Python API's ssh client: core.sshCommand (GIT_SSH_COMMAND is the CLI's here).
    git(bob, "config", "core.sshCommand", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    assert mlgit.latest_checkpoint("r1", repo=bob).is_dir()
    assert "r1" in run_gitml(bob, "ls").stdout
    (tmp_path / "bob-eval.json").write_text('{"acc": 0.8}')
    run_gitml(bob, "note", "add", "--results", str(tmp_path / "bob-eval.json"))
    run_gitml(bob, "push")
    fsck_ok(server, bob)
    git(alice, "pull", "-q", "--ff-only")  # nothing new on main: notes come with ml fetch
    run_gitml(alice, "fetch")
    assert {r["name"] for r in note_records(alice) if r["type"] == "results"} == {
        "eval.json", "bob-eval.json"}
    fsck_ok(alice, bob, server)


def test_push_pull_fsck_loop_over_s3(tmp_path: Path, origin: Path, s3_env: object) -> None:
    """The store on moto's S3 server, code and notes on a git origin: plain `git push`."""
    store = f"s3://{s3_env.bucket}/store"  # type: ignore[attr-defined]
    settings = [("ml.origin.url", store),
                ("ml.origin.endpoint", s3_env.endpoint)]  # type: ignore[attr-defined]
    alice = _alice(tmp_path, str(origin))
    for key, value in settings:
        git(alice, "config", key, value)
    git(alice, "push", "-q", "-u", "origin", "main")
    assert git(origin, "rev-parse", "-q", "--verify", "refs/notes/ml").returncode == 0
    fsck_ok(alice)
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    for key, value in settings:
        git(bob, "config", key, value)
    run_gitml(bob, "pull")
    for name, oid in _payloads(alice).items():
        path = Path(run_gitml(bob, "path", oid).stdout.strip())
        assert path.read_bytes() == (tmp_path / "work-alice" / name).read_bytes()
    assert mlgit.latest_checkpoint("r1", repo=bob).is_dir()
    (tmp_path / "bob-eval.json").write_text('{"acc": 0.8}')
    run_gitml(bob, "note", "add", "--results", str(tmp_path / "bob-eval.json"))
    git(bob, "commit", "-q", "--allow-empty", "-m", "bob")
    git(bob, "push", "-q")
    run_gitml(alice, "fetch")
    assert {r["name"] for r in note_records(alice, "HEAD") if r["type"] == "results"} == {
        "eval.json", "bob-eval.json"}
    fsck_ok(alice, bob)
    # The bucket holds everything: a third clone fetches it all and checks it.
    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", str(origin), str(carol))
    for key, value in settings:
        git(carol, "config", key, value)
    run_gitml(carol, "fetch")
    with mlgit.Repo(carol) as r:
        for oid in _payloads(alice).values():
            assert r.store.objects.has_committed(hex_to_raw(oid))
    fsck_ok(carol)
