"""Remotes end to end over a local path: push, fetch, pull, ls, hooks, lazy fetch, notes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml

import mlgit
from mlgit import errors
from mlgit.api.fetching import complete
from mlgit.format.ids import ObjectID


def _ids(root: Path, name: str = "data") -> ObjectID:
    return ObjectID((root / f"{name}.mlgit").read_text().split("id: ")[1].split()[0])


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository to push to."""
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(r))
    return r


@pytest.fixture
def alice(tmp_path: Path, origin: Path) -> Path:
    """A work repository with data, a checkpoint and notes, whose origin is ``origin``."""
    a = tmp_path / "alice"
    a.mkdir()
    git(a, "init", "-q")
    run_gitml(a, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(a, {f"data/part{i % 4}/f{i}.bin": os.urandom(3000) for i in range(40)})
    make_tree(a, {"data/README": "hello\n", "train.py": "print(1)\n"})
    run_gitml(a, "add", "data")
    git(a, "add", "train.py")
    git(a, "commit", "-qm", "v1")
    ck = a.parent / "ck"
    make_tree(ck, {"w.bin": os.urandom(10_000)})
    run_gitml(a, "commit-ckpt", str(ck), "--run", "r1", "--step", "1", "--metric", "acc=0.5")
    git(a, "remote", "add", "origin", str(origin))
    return a


def test_git_push_with_hooks_then_clone_and_pull(alice: Path, origin: Path,
                                                 tmp_path: Path) -> None:
    want = read_tree(alice / "data")
    p = git(alice, "push", "-q", "-u", "origin", "main")
    assert p.returncode == 0
    assert (origin / "ml" / "refs" / "datasets" / "data").read_text().strip() == _ids(alice)
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    assert not (bob / "data").exists()
    out = run_gitml(bob, "pull").stdout
    assert "Initialized git-ml store" in out
    assert read_tree(bob / "data") == want
    log = json.loads(run_gitml(bob, "log", "--json").stdout)
    assert [c["run"] for c in log[0]["checkpoints"]] == ["r1"]
    listing = json.loads(run_gitml(bob, "ls", "origin", "--json").stdout)
    assert {(e["kind"], e["name"]) for e in listing} == {("dataset", "data"),
                                                          ("checkpoint", "r1")}


def test_push_sends_only_what_is_missing(alice: Path) -> None:
    first = run_gitml(alice, "push").stdout
    assert "pushed to origin" in first
    again = run_gitml(alice, "push").stdout
    assert "0 objects" in again
    (alice / "data/part0/f0.bin").write_bytes(os.urandom(3000))
    run_gitml(alice, "add", "data")
    small = run_gitml(alice, "push").stdout
    n = int(small.split(": ")[1].split(" objects")[0])
    assert 1 <= n <= 6, small  # the new chunk(s), two trees, one snapshot


def test_non_fast_forward_is_refused_unless_forced(alice: Path, tmp_path: Path,
                                                   origin: Path) -> None:
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    (alice / "data/README").write_text("alice\n")
    run_gitml(alice, "add", "data")
    run_gitml(alice, "push")
    (bob / "data/README").write_text("bob\n")
    run_gitml(bob, "add", "data")
    p = run_gitml(bob, "push", check=False)
    assert p.returncode == errors.ConflictError.exit_code
    assert "datasets/data" in p.stderr
    assert "git ml fetch origin" in p.stderr
    assert (origin / "ml/refs/datasets/data").read_text().strip() == _ids(alice)
    run_gitml(bob, "push", "--force")
    assert (origin / "ml/refs/datasets/data").read_text().strip() == _ids(bob)


def test_fetch_makes_remote_tracking_refs_and_merges_notes(alice: Path, tmp_path: Path,
                                                          origin: Path) -> None:
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    # Both annotate the same commit; neither loses the other's record.
    ck = tmp_path / "ck2"
    make_tree(ck, {"w.bin": os.urandom(5000)})
    run_gitml(bob, "commit-ckpt", str(ck), "--run", "bobs")
    run_gitml(bob, "push")
    make_tree(ck, {"w.bin": os.urandom(5000)})
    run_gitml(alice, "commit-ckpt", str(ck), "--run", "alices")
    run_gitml(alice, "push")
    run_gitml(bob, "fetch")
    view = json.loads(run_gitml(bob, "note", "show", "--json").stdout)
    runs = {r["run"] for r in view["records"]}
    assert runs == {"r1", "bobs", "alices"}
    tracking = bob / ".git/ml/refs/remotes/origin/checkpoints/alices"
    assert tracking.exists()
    assert not (bob / ".git/ml/refs/checkpoints/alices").exists()
    assert mlgit.latest_checkpoint("bobs", repo=bob).is_dir()


def test_lazy_fetch_in_python(alice: Path, tmp_path: Path, origin: Path) -> None:
    want = read_tree(alice / "data")
    data_id = _ids(alice)
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    with mlgit.open(data_id, "part1/f1.bin", repo=bob) as f:
        assert f.read() == (alice / "data/part1/f1.bin").read_bytes()
    with mlgit.Repo(bob) as r:
        assert not complete(r, data_id)  # only that file's chunks came
    path = mlgit.checkout(data_id, repo=bob)
    assert read_tree(path) == want
    git(bob, "config", "ml.lazyFetch", "false")
    with pytest.raises(errors.RevisionError):
        mlgit.checkout("r1", repo=bob)


def test_post_checkout_hook_fetches_lazily(alice: Path, tmp_path: Path, origin: Path) -> None:
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    (alice / "data/README").write_text("v2\n")
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qam", "v2")
    git(alice, "push", "-q")
    git(bob, "pull", "-q", "--ff-only")  # post-merge: fetch v2's data, materialize it
    assert (bob / "data/README").read_text() == "v2\n"
    git(bob, "checkout", "-q", "HEAD~1")  # post-checkout: v1's data (fetched on demand)
    assert (bob / "data/README").read_text() == "hello\n"


def test_remote_corruption_is_refused_naming_the_remote(alice: Path, tmp_path: Path,
                                                       origin: Path) -> None:
    git(alice, "push", "-q", "-u", "origin", "main")
    for pack in (origin / "ml/packs").glob("*.pack"):
        raw = bytearray(pack.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        pack.write_bytes(bytes(raw))
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    p = run_gitml(bob, "pull", check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code
    assert str(origin) in p.stderr
    assert "nothing of it was kept" in p.stderr
    assert not (bob / "data").exists()


@pytest.mark.parametrize(("remote", "needle"), [
    ("nosuch", "unknown remote 'nosuch'"),
    ("https://example.invalid/x.git", "cannot reach https://"),
])
def test_bad_remotes(alice: Path, remote: str, needle: str) -> None:
    if remote.startswith("https"):
        git(alice, "remote", "add", "web", remote)
        remote = "web"
    p = run_gitml(alice, "push", remote, check=False)
    assert p.returncode == errors.UsageError.exit_code
    assert needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_remote_with_newer_store_format(alice: Path, origin: Path) -> None:
    run_gitml(alice, "push")
    cfg = origin / "ml/config"
    obj = json.loads(cfg.read_text())
    obj["format"] = 99
    cfg.write_text(json.dumps(obj))
    p = run_gitml(alice, "fetch", check=False)
    assert p.returncode == errors.UnsupportedFormatError.exit_code
    assert "newer" in p.stderr
    assert str(origin) in p.stderr


def test_git_pull_brings_notes(alice: Path, tmp_path: Path, origin: Path) -> None:
    git(alice, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    git(alice, "commit", "-q", "--allow-empty", "-m", "train more")
    ck = tmp_path / "ck3"
    make_tree(ck, {"w.bin": os.urandom(5000)})
    run_gitml(alice, "commit-ckpt", str(ck), "--run", "late", "--metric", "acc=0.9")
    git(alice, "push", "-q")  # pre-push hook: data, refs and notes
    git(bob, "pull", "-q", "--ff-only")  # post-merge hook: data and notes
    log = json.loads(run_gitml(bob, "log", "--json", "-n", "1").stdout)
    assert [c["run"] for c in log[0]["checkpoints"]] == ["late"]


def test_interrupted_push_resumes_sending_only_what_is_missing(alice: Path,
                                                                origin: Path) -> None:
    import signal
    import subprocess
    import time

    make_tree(alice, {"big/blob.bin": os.urandom(6 << 20)})  # ~100 packs at 64 KiB
    run_gitml(alice, "add", "big")
    # Its own process group, so that the kill reaches git-ml and not only the git above it.
    proc = subprocess.Popen(["git", "ml", "push"], cwd=alice, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    packs = origin / "ml" / "packs"
    while time.monotonic() < deadline and proc.poll() is None:
        if packs.exists() and len(list(packs.glob("*.idx"))) >= 10:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode != 0, "push finished before it could be interrupted"
    # The remote is valid: no ref names anything incomplete, every index decodes.
    assert not (origin / "ml/refs/datasets/big").exists()
    from mlgit.format.pack import decode_index

    on_remote: set[bytes] = set()
    for idx in packs.glob("*.idx"):
        entries = decode_index(idx.read_bytes(), (idx.with_suffix(".pack")).stat().st_size)
        on_remote.update(e.oid for e in entries)
    assert len(on_remote) > 10
    out = run_gitml(alice, "push").stdout
    resent = int(out.split(": ")[1].split(" objects")[0])
    with mlgit.Repo(alice) as r:
        local = set(r.store.objects.ids())
    # Exactly what the remote still lacked was sent; nothing that arrived before the kill.
    assert resent == len(local - on_remote)
    assert (origin / "ml/refs/datasets/big").read_text().strip() == _ids(alice, "big")


def test_git_push_and_pull_over_ssh(alice: Path, sshd: object, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same round trip through a real OpenSSH server: git's ssh command is git-ml's."""
    import shlex

    server = tmp_path / "srv.git"
    git(tmp_path, "init", "-q", "--bare", str(server))
    url = f"ssh://{sshd.user}@{sshd.host}{server}"  # type: ignore[attr-defined]
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))  # type: ignore[attr-defined]
    git(alice, "remote", "add", "srv", url)
    want = read_tree(alice / "data")
    git(alice, "push", "-q", "srv", "main")  # pre-push hook pushes the data over ssh
    assert (server / "ml/refs/datasets/data").read_text().strip() == _ids(alice)
    bob = tmp_path / "bob-ssh"
    git(tmp_path, "clone", "-q", url, str(bob))
    run_gitml(bob, "pull")
    assert read_tree(bob / "data") == want
    listing = json.loads(run_gitml(bob, "ls", "origin", "--json").stdout)
    assert {e["name"] for e in listing} == {"data", "r1"}
    log = json.loads(run_gitml(bob, "log", "--json").stdout)
    assert [c["run"] for c in log[0]["checkpoints"]] == ["r1"]


def test_interrupted_fetch_resumes_and_leaves_the_clone_valid(alice: Path, origin: Path,
                                                               tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    make_tree(alice, {"big/blob.bin": os.urandom(6 << 20)})
    run_gitml(alice, "add", "big")
    git(alice, "commit", "-qm", "big")
    git(alice, "push", "-q", "-u", "origin", "main")
    want = (alice / "big/blob.bin").read_bytes()
    bob = tmp_path / "bob-int"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init", "--pack-size", "65536")
    packs = bob / ".git/ml/packs"
    proc = subprocess.Popen(["git", "ml", "pull"], cwd=bob, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(packs.glob("*.idx"))) >= 10:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode != 0, "pull finished before it could be interrupted"
    assert not (bob / "big").exists()
    report = json.loads(run_gitml(bob, "fsck", "--json", check=False).stdout)
    assert {p["kind"] for p in report["problems"]} <= {"orphan-pack"}
    # What was missing is only what the pointer names and was not fetched yet.
    with mlgit.Repo(bob) as r:
        had = set(r.store.objects.ids())
    out = run_gitml(bob, "pull").stdout
    fetched = int(out.split(": ")[1].split(" objects")[0])
    with mlgit.Repo(bob) as r:
        now = set(r.store.objects.ids())
    assert fetched == len(now - had)  # nothing fetched twice
    assert (bob / "big/blob.bin").read_bytes() == want
    clean = json.loads(run_gitml(bob, "fsck", "--json", check=False).stdout)
    assert {p["kind"] for p in clean["problems"]} <= {"orphan-pack"}


def test_names_resolve_through_remote_tracking_refs(alice: Path, origin: Path,
                                                    tmp_path: Path) -> None:
    """As git resolves a branch to origin/NAME: a name with no local ref is the one
    remote's tracking ref; REMOTE/NAME names it explicitly; ls marks remote entries."""
    run_gitml(alice, "push")
    data_id, run_id = _ids(alice), run_gitml(alice, "show", "r1", "--json").stdout
    run_id = json.loads(run_id)["id"]
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "init")
    run_gitml(bob, "fetch")
    assert json.loads(run_gitml(bob, "show", "data", "--json").stdout)["id"] == data_id
    assert json.loads(run_gitml(bob, "show", "origin/r1", "--json").stdout)["id"] == run_id
    assert json.loads(run_gitml(bob, "show", "r1~0", "--json").stdout)["id"] == run_id
    listing = json.loads(run_gitml(bob, "ls", "--json").stdout)
    assert {(e["remote"], e["kind"], e["name"]) for e in listing} == {
        ("origin", "dataset", "data"), ("origin", "checkpoint", "r1")}
    assert "origin/data" in run_gitml(bob, "ls").stdout
    path = mlgit.latest_checkpoint("r1", repo=bob)
    assert read_tree(path) == read_tree(alice.parent / "ck")
    p = run_gitml(bob, "show", "upstream/data", check=False)
    assert p.returncode == 5, p.stderr
    # A second remote that has "data" at another version makes the bare name ambiguous.
    other = tmp_path / "other.git"
    git(tmp_path, "init", "-q", "--bare", str(other))
    git(alice, "remote", "add", "other", str(other))
    (alice / "data/README").write_text("changed\n")
    run_gitml(alice, "add", "data")
    run_gitml(alice, "push", "other")
    git(bob, "remote", "add", "other", str(other))
    run_gitml(bob, "fetch", "other")
    p = run_gitml(bob, "show", "data", check=False)
    assert p.returncode == 5
    assert "origin/data" in p.stderr
    assert "other/data" in p.stderr
    assert json.loads(run_gitml(bob, "show", "other/data", "--json").stdout)["id"] != data_id
