"""Data from another repository (a registry): ``git ml import``, ``update``, ``ls --grep``.

A *registry* repository publishes datasets by pushing them to its bare remote
(``registry.git``); a *project* imports a version, commits and pushes to its own
bare remote; a teammate clones the project and gets the imported data from the
registry, never from the project's remote (which holds none of it unless pushed
with ``--imports``). All through the real git binary, its hooks and ``git ml``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import fsck_ok, git, make_tree, read_tree, run_gitml
from fixtures_ssh import SSHServer

import mlgit
from mlgit import errors
from mlgit.format.ids import ObjectID, hex_to_raw
from mlgit.store.store import Store

V1: dict[str, str | bytes] = {"train/a.csv": "x,y\n1,2\n", "train/b.csv": os.urandom(20_000),
                              "README": "digits v1\n"}
V2: dict[str, str | bytes] = {**V1, "train/c.csv": "x,y\n5,6\n", "README": "digits v2\n"}
V3: dict[str, str | bytes] = {**V2, "test/t.csv": os.urandom(9000)}


def _pinned(root: Path, pointer: str) -> ObjectID:
    return ObjectID(next(line.split(": ")[1] for line in (root / pointer).read_text().splitlines()
                         if line.startswith("id: ")))


def _publish(reg: Path, files: dict[str, str | bytes], message: str, name: str = "mnist") -> str:
    """Write ``files`` as dataset ``name`` in the registry, commit and push; return its id."""
    if (reg / name).exists():
        shutil.rmtree(reg / name)
    make_tree(reg / name, files)
    run_gitml(reg, "add", name, "-m", message)
    git(reg, "commit", "-qm", f"{name}: {message}")
    git(reg, "push", "-q", "origin", "main")
    return _pinned(reg, f"{name}.mlgit")


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Path, Path]:
    """(the registry's work repository, its bare remote) with mnist v1 and cifar published."""
    bare = tmp_path / "registry.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    reg = tmp_path / "registry"
    reg.mkdir()
    git(reg, "init", "-q")
    run_gitml(reg, "init", "--chunk-size", "4096")
    git(reg, "remote", "add", "origin", str(bare))
    _publish(reg, V1, "handwritten digits, first cut")
    _publish(reg, {"img/0.png": os.urandom(5000)}, "tiny images", name="cifar")
    return reg, bare


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """(a project with a dataset of its own, its bare remote ``origin``)."""
    bare = tmp_path / "project.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    proj = tmp_path / "project"
    proj.mkdir()
    git(proj, "init", "-q")
    run_gitml(proj, "init")
    git(proj, "remote", "add", "origin", str(bare))
    make_tree(proj / "own", {"x.txt": "ours\n"})
    run_gitml(proj, "add", "own")
    git(proj, "commit", "-qm", "own data")
    return proj, bare


def _state(root: Path) -> tuple[str, dict[str, bytes | str], list[str]]:
    """What a failed command must leave as it was: git's status, the files, the store's packs."""
    files = {k: v for k, v in read_tree(root).items() if not k.startswith(".git/")}
    packs = sorted(os.listdir(root / ".git/ml/packs"))
    return git(root, "status", "--porcelain", "--ignored").stdout, files, packs


def _has(store_dir: Path, oid: str) -> bool:
    store = Store.open(store_dir)
    try:
        return store.objects.has_committed(hex_to_raw(ObjectID(oid)))
    finally:
        store.close()


def test_import_commit_clone_pull_update(registry: tuple[Path, Path],
                                         project: tuple[Path, Path], tmp_path: Path) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    v1 = _pinned(reg, "mnist.mlgit")
    out = run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist").stdout
    assert f"imported dataset mnist {v1} from {reg_bare}" in out
    assert read_tree(proj / "data/mnist") == read_tree(reg / "mnist")
    text = (proj / "data/mnist.mlgit").read_text()
    assert "mlgit-pointer: 3\n" in text
    assert f'source: "{reg_bare}"\n' in text
    assert "rev: mnist\n" in text
    assert git(proj, "diff", "--cached", "--name-only").stdout.split() == [
        "data/.gitignore", "data/mnist.mlgit"]
    status = json.loads(run_gitml(proj, "status", "--json").stdout)
    imported = next(e for e in status if e["path"] == "data/mnist")
    assert imported["state"] == "clean"
    assert imported["source"] == {"url": str(reg_bare), "rev": "mnist"}
    assert next(e for e in status if e["path"] == "own")["source"] is None
    assert "imported from" in run_gitml(proj, "status").stdout
    git(proj, "commit", "-qm", "import mnist")
    git(proj, "push", "-q", "-u", "origin", "main")  # the pre-push hook runs `git ml push`

    # The project's remote got its own data, not the imported version.
    assert _has(proj_bare / "ml", _pinned(proj, "own.mlgit"))
    assert not _has(proj_bare / "ml", v1)
    fsck_ok(reg, reg_bare, proj, proj_bare)

    # A teammate gets the imported data from the registry.
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "pull")
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    assert read_tree(mate / "own") == read_tree(proj / "own")
    fsck_ok(mate)

    # The registry publishes v2; `git ml update` moves the pointer (a change to commit).
    v2 = _publish(reg, V2, "more digits")
    out = run_gitml(proj, "update", "data/mnist").stdout
    assert f"{v1[:12]} -> {v2[:12]}" in out
    assert _pinned(proj, "data/mnist.mlgit") == v2
    assert read_tree(proj / "data/mnist") == read_tree(reg / "mnist")
    assert git(proj, "diff", "--cached", "--name-only").stdout.split() == ["data/mnist.mlgit"]
    again = run_gitml(proj, "update", "data/mnist.mlgit")
    assert "already at the newest of mnist" in again.stdout
    assert git(proj, "diff", "--cached", "--name-only").stdout.split() == ["data/mnist.mlgit"]
    git(proj, "commit", "-qm", "mnist v2")
    git(proj, "push", "-q")
    assert not _has(proj_bare / "ml", v2)

    # The teammate's `git pull` (post-merge hook) brings v2 from the registry.
    git(mate, "pull", "-q")
    assert _pinned(mate, "data/mnist.mlgit") == v2
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    fsck_ok(reg, reg_bare, proj, proj_bare, mate)


def test_update_rev_pins_another_version_and_back(registry: tuple[Path, Path],
                                                  project: tuple[Path, Path]) -> None:
    reg, reg_bare = registry
    proj, _ = project
    v1 = _pinned(reg, "mnist.mlgit")
    v2 = _publish(reg, V2, "more digits")
    run_gitml(proj, "import", str(reg_bare), "mnist~1", "data/old")
    assert _pinned(proj, "data/old.mlgit") == v1
    assert "rev: mnist~1\n" in (proj / "data/old.mlgit").read_text()
    run_gitml(proj, "import", str(reg_bare), f"mnist@{v2[:8].upper()}", "data/at")
    assert _pinned(proj, "data/at.mlgit") == v2
    assert f"rev: mnist@{v2[:8]}\n" in (proj / "data/at.mlgit").read_text()
    res = json.loads(run_gitml(proj, "update", "data/old", "--json").stdout)
    assert res[0]["old"] == v1
    assert res[0]["id"] == v2
    assert res[0]["source"] == {"url": str(reg_bare), "rev": "mnist"}
    run_gitml(proj, "update", "data/old", "--rev", v1[:10])
    assert _pinned(proj, "data/old.mlgit") == v1
    assert read_tree(proj / "data/old") == {k: (v.encode() if isinstance(v, str) else v)
                                            for k, v in V1.items()}
    run_gitml(proj, "update", "data/old", "--rev", "~0")
    assert _pinned(proj, "data/old.mlgit") == v2
    fsck_ok(proj)


def test_ls_grep_searches_names_and_messages(registry: tuple[Path, Path],
                                             project: tuple[Path, Path]) -> None:
    _, reg_bare = registry
    proj, _ = project
    every = json.loads(run_gitml(proj, "ls", str(reg_bare), "--json").stdout)
    assert sorted(e["name"] for e in every) == ["cifar", "mnist"]
    by_message = json.loads(run_gitml(proj, "ls", str(reg_bare), "--grep", "DIGITS",
                                      "--json").stdout)
    assert [e["name"] for e in by_message] == ["mnist"]
    assert by_message[0]["message"] == "handwritten digits, first cut"
    by_name = run_gitml(proj, "ls", str(reg_bare), "--grep", "ifa").stdout
    assert "cifar" in by_name
    assert "mnist" not in by_name
    either = json.loads(run_gitml(proj, "ls", str(reg_bare), "--grep", "cifar", "--grep",
                                  "handwritten", "--json").stdout)
    assert sorted(e["name"] for e in either) == ["cifar", "mnist"]
    assert run_gitml(proj, "ls", str(reg_bare), "--grep", "nothing-like-it").stdout == ""
    assert json.loads(run_gitml(proj, "ls", "--grep", "own", "--json").stdout)[0]["name"] == "own"
    assert json.loads(run_gitml(proj, "ls", "--grep", "mnist", "--json").stdout) == []


def test_push_imports_sends_them_and_a_clone_falls_back_to_the_remote(
        registry: tuple[Path, Path], project: tuple[Path, Path], tmp_path: Path) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    v1 = _pinned(reg, "mnist.mlgit")
    v2 = _publish(reg, V2, "more digits")
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    run_gitml(proj, "push", "--no-imports")
    assert not _has(proj_bare / "ml", v2)
    run_gitml(proj, "push", "--imports")
    # The version and its history: a store never holds a snapshot without its ancestors.
    assert _has(proj_bare / "ml", v2)
    assert _has(proj_bare / "ml", v1)
    git(proj, "push", "-q", "origin", "main")
    fsck_ok(proj, proj_bare)
    # The registry is gone: a teammate still gets the data from the project's remote.
    shutil.move(reg_bare, tmp_path / "elsewhere.git")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "pull")
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    fsck_ok(mate)


def test_push_imports_setting(registry: tuple[Path, Path], project: tuple[Path, Path]) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    run_gitml(proj, "config", "--shared", "ml.pushImports", "true")
    git(proj, "commit", "-qm", "share the setting")
    git(proj, "push", "-q", "origin", "main")  # the hook's push reads the setting
    assert _has(proj_bare / "ml", _pinned(reg, "mnist.mlgit"))
    fsck_ok(proj_bare)


def test_python_api_import_update_checkout_open(registry: tuple[Path, Path],
                                                project: tuple[Path, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    reg, reg_bare = registry
    proj, _ = project
    monkeypatch.chdir(proj)
    r = mlgit.import_(str(reg_bare), "mnist", "data/mnist")
    assert (r.kind, r.name, r.path, r.changed) == ("dataset", "mnist", "data/mnist", True)
    assert r.files == 3
    # The name resolves to the version the project pins, as a local dataset's does.
    path = mlgit.checkout("mnist")
    assert (path / "README").read_text() == "digits v1\n"
    with mlgit.open("mnist", "train/a.csv") as f:
        assert f.read() == b"x,y\n1,2\n"
    assert mlgit.show("mnist", files=False).id == r.id
    v2 = _publish(reg, V2, "more digits")
    (u,) = mlgit.update(["data/mnist"])
    assert (u.old, u.id, u.changed) == (r.id, v2, True)
    assert (mlgit.checkout("mnist") / "README").read_text() == "digits v2\n"
    assert mlgit.update(["data/mnist"])[0].changed is False
    # A relative local path is recorded as the absolute path it names.
    monkeypatch.chdir(reg_bare.parent)
    r2 = mlgit.import_("registry.git", "cifar", proj / "cifar", repo=proj)
    assert r2.url == str(reg_bare)


def test_teammate_checkout_and_mlgit_open_fetch_from_the_source(
        registry: tuple[Path, Path], project: tuple[Path, Path], tmp_path: Path) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    git(proj, "push", "-q", "-u", "origin", "main")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "init")
    with mlgit.Repo(mate) as repo, repo.open("mnist", "train/b.csv") as f:
        assert f.read() == (reg / "mnist/train/b.csv").read_bytes()
    run_gitml(mate, "checkout", "data/mnist")
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    run_gitml(mate, "checkout")  # the project's own data, from its remote
    fsck_ok(mate)


def test_the_filesystem_reads_imported_data_from_its_source(
        registry: tuple[Path, Path], project: tuple[Path, Path], tmp_path: Path) -> None:
    """``mlgit://NAME/...`` in a teammate's clone: the import resolves, its chunks come lazily
    from the source (the project's own remote has no copy)."""
    fsspec = pytest.importorskip("fsspec")
    reg, reg_bare = registry
    proj, proj_bare = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    git(proj, "push", "-q", "-u", "origin", "main")
    run_gitml(proj, "push", "origin")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "init")
    fs = fsspec.filesystem("mlgit", repo=str(mate), skip_instance_cache=True)
    try:
        assert fs.cat_file("mnist/train/b.csv") == (reg / "mnist/train/b.csv").read_bytes()
        assert fs.cat_file("own/x.txt") == b"ours\n"  # the project's own, from its remote
    finally:
        fs.close()
    fsck_ok(mate)


def test_merge_of_two_updates_keeps_the_newer(registry: tuple[Path, Path],
                                              project: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    _publish(reg, V2, "more digits")
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import v2")
    git(proj, "push", "-q", "-u", "origin", "main")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "pull")
    v3 = _publish(reg, V3, "test split")
    run_gitml(proj, "update", "data/mnist")  # to v3
    git(proj, "commit", "-qm", "mnist v3")
    git(proj, "push", "-q")
    run_gitml(mate, "update", "data/mnist", "--rev", "~1")  # back to v1
    git(mate, "commit", "-qm", "mnist v1")
    p = git(mate, "pull", "-q", "--no-rebase", "--no-edit", check=False)
    assert p.returncode == 0, p.stderr
    assert _pinned(mate, "data/mnist.mlgit") == v3
    assert "mlgit-pointer: 3" in (mate / "data/mnist.mlgit").read_text()
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    fsck_ok(mate)


def test_add_refuses_an_import_and_rm_leaves_refs(registry: tuple[Path, Path],
                                                  project: tuple[Path, Path]) -> None:
    reg, reg_bare = registry
    proj, _ = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "own2")
    run_gitml(proj, "import", str(reg_bare), "cifar", "data/cifar")
    (proj / "own2/README").write_text("changed\n")
    p = run_gitml(proj, "add", "own2", check=False)
    assert p.returncode == errors.BadPathError.exit_code
    assert "git ml update own2" in p.stderr
    v1 = _pinned(proj, "own2.mlgit")
    _publish(reg, V2, "more digits")
    p = run_gitml(proj, "update", "own2", check=False)
    assert p.returncode == errors.BadPathError.exit_code  # unsaved changes are kept
    assert (proj / "own2/README").read_text() == "changed\n"
    assert _pinned(proj, "own2.mlgit") == v1
    # A local dataset named like an import keeps its ref when the import goes.
    make_tree(proj / "cifar", {"mine.txt": "mine\n"})
    p = run_gitml(proj, "add", "cifar", check=False)
    assert p.returncode == errors.BadPathError.exit_code  # the name is the import's
    run_gitml(proj, "add", "cifar", "--name", "cifar-local")
    git(proj, "commit", "-qm", "imports and cifar-local")
    res = json.loads(run_gitml(proj, "rm", "data/cifar", "--json").stdout)
    assert res[0]["ref_removed"] is False
    assert not (proj / "data/cifar").exists()
    assert (proj / ".git/ml/refs/datasets/cifar-local").exists()
    fsck_ok(proj)


def test_gc_keeps_imported_versions(registry: tuple[Path, Path],
                                    project: tuple[Path, Path]) -> None:
    reg, reg_bare = registry
    proj, _ = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    shutil.rmtree(proj / "data/mnist")
    shutil.move(reg_bare, reg_bare.with_name("gone.git"))
    run_gitml(proj, "gc", "--prune", "now")
    run_gitml(proj, "checkout", "data/mnist")  # from the local store alone
    assert read_tree(proj / "data/mnist") == read_tree(reg / "mnist")
    fsck_ok(proj)


def _refused(proj: Path, args: list[str], code: int, says: str) -> None:
    before = _state(proj)
    p = run_gitml(proj, *args, check=False)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert p.stderr.startswith("git-ml: error: "), p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert says in p.stderr, p.stderr
    assert _state(proj) == before


def test_bad_input_is_one_line_and_changes_nothing(registry: tuple[Path, Path],
                                                   project: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    _, reg_bare = registry
    proj, _ = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    url = str(reg_bare)
    _refused(proj, ["import", url, "nope"], errors.RevisionError.exit_code,
             "has no dataset or run 'nope'")
    _refused(proj, ["import", url, "mnist@ffffffff"], errors.RevisionError.exit_code,
             "no snapshot of 'mnist'")
    _refused(proj, ["import", url, "mnist~9"], errors.RevisionError.exit_code,
             "has only 0 earlier versions")
    _refused(proj, ["import", url, "mnist", "data/mnist"], errors.BadPathError.exit_code,
             "data/mnist already exists")
    _refused(proj, ["import", url, "mnist", "own"], errors.BadPathError.exit_code,
             "own already exists")
    _refused(proj, ["import", url, "mnist", "data/mnist/inner"], errors.BadPathError.exit_code,
             "overlaps the data of data/mnist.mlgit")
    _refused(proj, ["import", str(tmp_path / "no-such-repo"), "mnist", "x"],
             errors.UsageError.exit_code, "is not a git repository")
    _refused(proj, ["import", str(tmp_path), "mnist", "x"], errors.UsageError.exit_code,
             "is not a git repository")
    _refused(proj, ["import", "ssh://127.0.0.1:1/srv/registry", "mnist", "x"],
             errors.RemoteUnreachableError.exit_code, "cannot connect")
    _refused(proj, ["import", "ext::sh -c touch% /tmp/pwned", "mnist", "x"],
             errors.UsageError.exit_code, "<transport>::<address>")
    _refused(proj, ["import", "ssh://-oProxyCommand=touch/srv/x", "mnist", "x"],
             errors.UsageError.exit_code, "not starting with '-'")
    _refused(proj, ["import", url, "mn~st@x", "x"], errors.UsageError.exit_code,
             "invalid import revision")
    _refused(proj, ["update", "own"], errors.BadPathError.exit_code, "own is not imported")
    _refused(proj, ["update", "data/mnist", "--rev", "cifar"], errors.UsageError.exit_code,
             "names 'cifar'")
    _refused(proj, ["update", "nothing-here"], errors.BadPathError.exit_code,
             "not tracked by git-ml")
    shutil.move(reg_bare, tmp_path / "moved.git")
    _refused(proj, ["update", "data/mnist"], errors.UsageError.exit_code,
             "is not a git repository")
    fsck_ok(proj)


def test_import_needs_a_store(registry: tuple[Path, Path], tmp_path: Path) -> None:
    _, reg_bare = registry
    bare = tmp_path / "plain"
    bare.mkdir()
    git(bare, "init", "-q")
    p = run_gitml(bare, "import", str(reg_bare), "mnist", check=False)
    assert p.returncode == errors.NotInitializedError.exit_code
    assert os.listdir(bare) == [".git"]


def test_source_with_its_store_elsewhere(registry: tuple[Path, Path],
                                         project: tuple[Path, Path], tmp_path: Path) -> None:
    """A web URL names the source; ``ml.<URL>.url`` (here in the committed file) says where
    its store is, for every clone; without it the error says how to set it."""
    _, reg_bare = registry
    proj, proj_bare = project
    web = "https://git.example.com/org/registry.git"
    p = run_gitml(proj, "import", web, "mnist", check=False)
    assert p.returncode == errors.UsageError.exit_code
    assert f"ml.{web}.url" in p.stderr
    run_gitml(proj, "config", "--shared", f"ml.{web}.url", str(reg_bare))
    run_gitml(proj, "import", web, "mnist", "data/mnist")
    assert f'source: "{web}"' in (proj / "data/mnist.mlgit").read_text()
    git(proj, "commit", "-qm", "import from the web URL")
    git(proj, "push", "-q", "-u", "origin", "main")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "pull")
    assert read_tree(mate / "data/mnist") == read_tree(proj / "data/mnist")
    fsck_ok(mate)


def test_import_over_ssh(registry: tuple[Path, Path], project: tuple[Path, Path],
                         sshd: SSHServer, tmp_path: Path) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    git(proj, "config", "core.sshCommand", shlex.join(sshd.ssh_command))
    url = f"ssh://{sshd.user}@{sshd.host}{reg_bare}"
    run_gitml(proj, "import", url, "mnist", "data/mnist")
    assert read_tree(proj / "data/mnist") == read_tree(reg / "mnist")
    git(proj, "commit", "-qm", "import over ssh")
    git(proj, "push", "-q", "-u", "origin", "main")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    git(mate, "config", "core.sshCommand", shlex.join(sshd.ssh_command))
    run_gitml(mate, "pull")
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    v2 = _publish(reg, V2, "more digits")
    run_gitml(proj, "update", "data/mnist")
    assert _pinned(proj, "data/mnist.mlgit") == v2
    fsck_ok(proj, proj_bare, mate)


def test_lazy_fetch_off_fetches_imports_only_when_asked(registry: tuple[Path, Path],
                                                        project: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    reg, reg_bare = registry
    proj, proj_bare = project
    run_gitml(proj, "import", str(reg_bare), "mnist", "data/mnist")
    git(proj, "commit", "-qm", "import")
    git(proj, "push", "-q", "-u", "origin", "main")
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(proj_bare), str(mate))
    run_gitml(mate, "init")
    git(mate, "config", "ml.lazyFetch", "false")
    p = run_gitml(mate, "checkout", "data/mnist", check=False)
    assert p.returncode == errors.CorruptObjectError.exit_code, p.stderr
    assert "ml.lazyFetch" in p.stderr
    assert not (mate / "data/mnist").exists()
    run_gitml(mate, "pull")  # asked: fetched from the source
    assert read_tree(mate / "data/mnist") == read_tree(reg / "mnist")
    fsck_ok(mate)


def test_import_a_checkpoint_run_through_a_remote_name(registry: tuple[Path, Path],
                                                       project: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """A run imports like a dataset (kind checkpoint); a remote of the clone names the source,
    and the pointer records that remote's URL, which every clone can use."""
    reg, reg_bare = registry
    proj, _ = project
    ck = tmp_path / "ck"
    make_tree(ck, {"w.bin": os.urandom(6000), "meta.json": "{}\n"})
    run_gitml(reg, "commit-ckpt", str(ck), "--run", "resnet", "--step", "7", "--metric",
              "acc=0.9")
    run_gitml(reg, "push")
    git(proj, "remote", "add", "registry", str(reg_bare))
    out = json.loads(run_gitml(proj, "import", "registry", "resnet", "models/resnet",
                               "--json").stdout)
    assert (out["kind"], out["name"], out["source"]["url"]) == (
        "checkpoint", "resnet", str(reg_bare))
    assert read_tree(proj / "models/resnet") == read_tree(ck)
    assert "kind: checkpoint\n" in (proj / "models/resnet.mlgit").read_text()
    assert mlgit.show("resnet", repo=proj, files=False).snapshot.checkpoint is not None
    fsck_ok(proj)
