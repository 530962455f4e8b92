"""Clones on one machine sharing one object store (``git ml init --shared PATH``).

Every test uses the real git binary and the installed git-ml, with clones as
teammates on one training box: a chunk is stored once per machine, gc in one clone
keeps what the others' refs, commits and work-tree pointers need, fsck passes in
each, and push, pull and fetch work from and into a clone that shares a store.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import threading
from pathlib import Path

import pytest
from conftest import fsck_ok, git, make_tree, read_tree, run_gitml
from fixtures_ssh import SSHServer

import mlgit
from mlgit.errors import FormatError
from mlgit.format.config import decode_config

MiB = 1 << 20


def _clone(tmp_path: Path, name: str, *init: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    git(root, "init", "-q")
    run_gitml(root, "init", *init)
    return root


def _pack_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in (d / "packs").glob("*.pack"))


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two clones, a and b, sharing the store at ``tmp_path/store``."""
    store = tmp_path / "store"
    return (_clone(tmp_path, "a", "--shared", str(store)),
            _clone(tmp_path, "b", "--shared", str(store)), store)


def test_the_same_data_added_in_two_clones_is_stored_once(
        box: tuple[Path, Path, Path]) -> None:
    a, b, store = box
    content = {f"data/f{i}.bin": os.urandom(MiB) for i in range(3)}
    make_tree(a, content)
    make_tree(b, content)
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "data")
    after_a = _pack_bytes(store)
    assert after_a > 3 * MiB
    assert _pack_bytes(a / ".git/ml") == 0  # nothing in the clone's own packs
    p = run_gitml(b, "add", "data")
    git(b, "commit", "-qm", "data")
    # The second clone stores only its own snapshot object (its author and time differ):
    # no chunk, no tree; a few hundred bytes of pack.
    assert _pack_bytes(store) - after_a < 1024, p.stdout
    assert _pack_bytes(b / ".git/ml") == 0
    fsck_ok(a, b)
    assert read_tree(mlgit.checkout("data", repo=b, worktree=False)) == read_tree(a / "data")


def test_gc_in_one_clone_keeps_what_the_other_needs(box: tuple[Path, Path, Path]) -> None:
    a, b, store = box
    make_tree(a, {"data/shared.bin": os.urandom(200_000)})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "a")
    # b: one committed version (then replaced), one only in the work tree's pointer
    # (staged, never committed), and a ref only.
    make_tree(b, {"data/b1.bin": os.urandom(200_000)})
    run_gitml(b, "add", "data")
    git(b, "commit", "-qm", "b1")
    (b / "data/b1.bin").unlink()
    make_tree(b, {"data/b2.bin": os.urandom(200_000)})
    run_gitml(b, "add", "data")
    make_tree(b, {"other/o.bin": os.urandom(100_000)})
    run_gitml(b, "add", "other")
    git(b, "rm", "-q", "--cached", "other.mlgit")
    (b / "other.mlgit").unlink()
    wanted = {rev: read_tree(mlgit.checkout(rev, repo=b, worktree=False))
              for rev in ("data~1", "data", "other")}
    for rev in wanted:
        mlgit.release(b / ".git/ml/checkouts" / mlgit.show(rev, repo=b).id)
    # a's gc prunes everything a itself does not reach, unless another clone needs it.
    # a's own unreachable data does go.
    make_tree(a, {"junk/j.bin": os.urandom(150_000)})
    run_gitml(a, "add", "junk")
    git(a, "rm", "-q", "--cached", "junk.mlgit")
    (a / "junk.mlgit").unlink()
    (a / ".git/ml/refs/datasets/junk").unlink()
    before = _pack_bytes(store)
    gc = run_gitml(a, "gc", "--prune", "now")
    assert gc.stderr == ""
    assert before - _pack_bytes(store) > 100_000, gc.stdout  # a's junk went
    fsck_ok(a, b)
    for rev, tree in wanted.items():
        got = mlgit.checkout(rev, repo=b, worktree=False)
        assert read_tree(got) == tree
        mlgit.release(got)
    # And b's gc keeps what a needs.
    run_gitml(b, "gc", "--prune", "now")
    fsck_ok(a, b)


def test_gc_prunes_nothing_shared_while_a_registered_clone_is_missing(
        tmp_path: Path, box: tuple[Path, Path, Path]) -> None:
    a, b, store = box
    make_tree(b, {"data/b.bin": os.urandom(100_000)})
    run_gitml(b, "add", "data")
    hidden = tmp_path / "b-unmounted"
    b.rename(hidden)  # as if its disk were not mounted
    make_tree(a, {"junk/j.bin": os.urandom(100_000)})
    run_gitml(a, "add", "junk")
    (a / ".git/ml/refs/datasets/junk").unlink()
    git(a, "rm", "-q", "--cached", "junk.mlgit")
    (a / "junk.mlgit").unlink()
    before = _pack_bytes(store)
    gc = run_gitml(a, "gc", "--prune", "now")
    assert gc.returncode == 0
    assert "was not pruned" in gc.stderr
    assert f"--forget-clone {b}" in gc.stderr
    assert _pack_bytes(store) == before
    hidden.rename(b)
    fsck_ok(a, b)
    # Deleted for good: forgotten on request, then gc prunes (b's data goes with it).
    shutil.rmtree(b)
    bad = run_gitml(a, "gc", "--forget-clone", str(tmp_path / "nobody"), check=False)
    assert bad.returncode == 2
    dry = run_gitml(a, "gc", "--prune", "now", "-n", "--forget-clone", str(b))
    assert dry.stdout.startswith("would forget")
    gc = run_gitml(a, "gc", "--prune", "now", "--forget-clone", str(b))
    assert gc.stderr == ""
    assert _pack_bytes(store) < before - 150_000
    assert len(os.listdir(store / "clones")) == 1
    fsck_ok(a)


def test_a_copied_clone_registers_itself_and_a_stale_entry_is_dropped(
        tmp_path: Path, box: tuple[Path, Path, Path]) -> None:
    a, b, store = box
    c = tmp_path / "c"
    shutil.copytree(b, c, symlinks=True)
    assert len(os.listdir(store / "clones")) == 2
    run_gitml(c, "status")
    assert len(os.listdir(store / "clones")) == 3
    # An entry naming a repository that does not share this store (it left, or was
    # re-created) is dropped by gc, which then goes on.
    plain = _clone(tmp_path, "plain")
    key = "ab" * 16
    (store / "clones" / key).write_text(json.dumps(
        {"ml": str(plain / ".git/ml"), "worktree": str(plain)}))
    run_gitml(a, "gc", "--prune", "now", "--dry-run")
    assert key in os.listdir(store / "clones")  # a dry run changes nothing
    gc = run_gitml(a, "gc", "--prune", "now")
    assert gc.stderr == ""
    assert key not in os.listdir(store / "clones")
    # A malformed entry stops pruning of the shared store until it is removed.
    (store / "clones" / key).write_text("not json")
    gc = run_gitml(a, "gc", "--prune", "now")
    assert f"--forget-clone {key}" in gc.stderr
    run_gitml(a, "gc", "--forget-clone", key)
    fsck_ok(a, b, c)


def test_joining_moves_an_existing_stores_packs(tmp_path: Path) -> None:
    a = _clone(tmp_path, "a")
    make_tree(a, {"data/x.bin": os.urandom(300_000)})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "x")
    own = _pack_bytes(a / ".git/ml")
    assert own > 300_000
    store = tmp_path / "store"
    out = run_gitml(a, "init", "--shared", str(store)).stdout
    assert "Reinitialized existing" in out
    assert f"objects are kept in the shared store {store}" in out
    assert _pack_bytes(a / ".git/ml") == 0
    assert _pack_bytes(store) == own
    config = decode_config((a / ".git/ml/config").read_bytes())
    assert (config.format, config.shared) == (2, str(store))
    fsck_ok(a)
    run_gitml(a, "init", "--shared", str(store))  # again: nothing changes
    again = run_gitml(a, "init", "--shared", str(tmp_path / "other"), check=False)
    assert again.returncode == 2
    assert "already keeps its objects" in again.stderr
    assert not (tmp_path / "other").exists()


def test_ml_shared_store_in_git_config_makes_new_clones_join(tmp_path: Path) -> None:
    store = tmp_path / "store"
    git(tmp_path, "config", "--global", "ml.sharedStore", str(store))
    a = _clone(tmp_path, "a")
    b = _clone(tmp_path, "b")
    for c in (a, b):
        assert decode_config((c / ".git/ml/config").read_bytes()).shared == str(store)
    assert len(os.listdir(store / "clones")) == 2
    # A store that exists already is left alone by the setting.
    git(tmp_path, "config", "--global", "--unset", "ml.sharedStore")
    c = _clone(tmp_path, "c")
    git(tmp_path, "config", "--global", "ml.sharedStore", str(store))
    run_gitml(c, "init")
    assert decode_config((c / ".git/ml/config").read_bytes()).shared == ""


def test_a_bad_shared_path_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    a = _clone(tmp_path, "a")
    b = _clone(tmp_path, "b")
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("mine")
    config = (a / ".git/ml/config").read_bytes()
    for bad, why in ((a / ".git/shared", "inside this repository's git directory"),
                     (b / ".git/ml", "a clone's own git-ml store"),
                     (full, "neither a shared store nor empty")):
        p = run_gitml(a, "init", "--shared", str(bad), check=False)
        assert p.returncode == 2, p.stderr
        assert why in p.stderr
        assert p.stderr.count("\n") == 1
    assert (a / ".git/ml/config").read_bytes() == config
    assert not (a / ".git/shared").exists()
    assert os.listdir(full) == ["something"]


def test_a_missing_shared_store_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "store"
    a = _clone(tmp_path, "a", "--shared", str(store))
    store.rename(tmp_path / "moved")
    p = run_gitml(a, "status", check=False)
    assert p.returncode == 4
    assert f"shared store {store} is missing" in p.stderr


def test_a_format_1_config_may_not_name_a_shared_store() -> None:
    with pytest.raises(FormatError, match="format 1"):
        decode_config(b'{"format": 1, "hash": "xxh3-128", "compression": "zstd", '
                      b'"chunk_min": 16384, "chunk_avg": 65536, "chunk_max": 262144, '
                      b'"pack_size": 33554432, "shared": "/srv/ml"}')
    with pytest.raises(FormatError, match="absolute"):
        decode_config(b'{"format": 2, "hash": "xxh3-128", "compression": "zstd", '
                      b'"chunk_min": 16384, "chunk_avg": 65536, "chunk_max": 262144, '
                      b'"pack_size": 33554432, "shared": "relative/path"}')


def test_clones_adding_at_once_stay_consistent(box: tuple[Path, Path, Path]) -> None:
    a, b, store = box
    common = os.urandom(400_000)
    errors: list[BaseException] = []

    def add(root: Path, n: int) -> None:
        try:
            for i in range(n):
                make_tree(root, {f"d{i}/common.bin": common, f"d{i}/own.bin": os.urandom(50_000)})
                run_gitml(root, "add", f"d{i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(r, 3)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fsck_ok(a, b)
    # The common file is stored a handful of times at most (racing writers may each
    # store a copy), never once per version and clone.
    assert _pack_bytes(store) < 6 * 400_000
    run_gitml(a, "gc", "--prune", "now")
    assert _pack_bytes(store) < 400_000 + 6 * 60_000
    fsck_ok(a, b)


def test_push_fetch_and_pull_through_a_shared_store(tmp_path: Path,
                                                   box: tuple[Path, Path, Path]) -> None:
    a, b, _ = box
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    make_tree(a, {"data/x.bin": os.urandom(300_000), "data/y.txt": "y"})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "x")
    git(a, "remote", "add", "origin", str(remote))
    git(a, "push", "-q", "origin", "main")  # the pre-push hook pushes the objects
    fsck_ok(remote)
    # A teammate elsewhere (no shared store) clones and pulls.
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", str(remote), str(elsewhere))
    run_gitml(elsewhere, "pull")
    assert read_tree(elsewhere / "data") == read_tree(a / "data")
    make_tree(elsewhere, {"data/z.bin": os.urandom(100_000)})
    run_gitml(elsewhere, "add", "data")
    git(elsewhere, "commit", "-qm", "z")
    git(elsewhere, "push", "-q", "origin", "main")
    # b (sharing the store) fetches it: the objects land in the shared store.
    git(b, "remote", "add", "origin", str(remote))
    git(b, "pull", "-q", "origin", "main")
    run_gitml(b, "pull")
    assert read_tree(b / "data") == read_tree(elsewhere / "data")
    assert _pack_bytes(b / ".git/ml") == 0
    fsck_ok(a, b, elsewhere)


def test_a_clone_that_shares_a_store_can_be_a_remote(tmp_path: Path,
                                                    box: tuple[Path, Path, Path]) -> None:
    """Fetching from a local path whose store is shared reads the shared store's packs."""
    a, _, _ = box
    make_tree(a, {"data/x.bin": os.urandom(200_000)})
    run_gitml(a, "add", "data")
    git(a, "commit", "-qm", "x")
    c = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(a), str(c))
    run_gitml(c, "pull")
    assert read_tree(c / "data") == read_tree(a / "data")
    make_tree(c, {"data/more.bin": os.urandom(50_000)})
    run_gitml(c, "add", "data")
    git(c, "commit", "-qm", "more")
    run_gitml(c, "push", "origin")  # into a's own packs/, which a reads too
    fsck_ok(a, c)
    git(a, "pull", "-q", str(c), "main")
    run_gitml(a, "checkout")
    assert read_tree(a / "data") == read_tree(c / "data")
    run_gitml(a, "gc", "--prune", "now")  # moves the pushed pack into the shared store
    assert _pack_bytes(a / ".git/ml") == 0
    fsck_ok(a, c)


def test_gc_in_one_clone_while_the_other_adds(box: tuple[Path, Path, Path]) -> None:
    """gc with no grace period in a, racing adds in b: nothing b's adds name is lost."""
    a, b, _ = box
    make_tree(a, {"data/a.bin": os.urandom(100_000)})
    run_gitml(a, "add", "data")
    stop = threading.Event()
    errors: list[BaseException] = []

    def collect() -> None:
        try:
            while not stop.is_set():
                run_gitml(a, "gc", "--prune", "now")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    gc = threading.Thread(target=collect)
    gc.start()
    try:
        for i in range(6):
            make_tree(b, {f"d{i}/f.bin": os.urandom(80_000)})
            run_gitml(b, "add", f"d{i}")
    finally:
        stop.set()
        gc.join()
    assert errors == []
    fsck_ok(a, b)
    for i in range(6):
        got = mlgit.checkout(f"d{i}", repo=b, worktree=False)
        assert read_tree(got) == read_tree(b / f"d{i}")
        mlgit.release(got)


def test_a_server_repository_that_shares_a_store_over_ssh(
        sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve-store on a bare repository whose objects are in a shared store, over real sshd."""
    server = tmp_path / "srv.git"
    git(tmp_path, "init", "-q", "--bare", str(server))
    run_gitml(server, "init", "--shared", str(tmp_path / "store"))
    url = f"ssh://{sshd.user}@{sshd.host}{server}"
    monkeypatch.setenv("GIT_SSH_COMMAND", shlex.join(sshd.ssh_command))
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", url, str(alice))
    run_gitml(alice, "init")
    make_tree(alice, {"data/x.bin": os.urandom(200_000)})
    run_gitml(alice, "add", "data")
    git(alice, "commit", "-qm", "x")
    git(alice, "push", "-q", "origin", "main")
    fsck_ok(server)
    run_gitml(server, "gc", "--prune", "now")  # the pushed packs move into the shared store
    assert _pack_bytes(server / "ml") == 0
    assert _pack_bytes(tmp_path / "store") > 200_000
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    run_gitml(bob, "pull")  # read from the shared store's packs, through serve-store
    assert read_tree(bob / "data") == read_tree(alice / "data")
    fsck_ok(server, bob)
