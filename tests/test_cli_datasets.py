"""End to end, as a user: the real git, the installed git-ml, datasets through their life."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from conftest import fsck_ok, git, make_tree, read_tree, run_gitml


def _init(root: Path) -> None:
    run_gitml(root, "init", "--pack-size", "65536", "--chunk-size", "4096")


def _dataset(root: Path) -> dict[str, bytes | str]:
    rnd = os.urandom
    files: dict[str, bytes | str] = {
        "data/train/a.csv": "x,y\n" + "".join(f"{i},{i * 2}\n" for i in range(3000)),
        "data/train/b.bin": rnd(50_000),
        "data/test/c.bin": rnd(20_000),
        "data/README": "hello\n",
        "data/empty.txt": b"",
    }
    make_tree(root, files)
    (root / "data" / "empty_dir" / "nested_empty").mkdir(parents=True)
    (root / "data" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "data" / "run.sh").chmod(0o755)
    os.symlink("train/a.csv", root / "data" / "latest.csv")
    return read_tree(root / "data")


def test_init_is_idempotent(bare_git_repo: Path) -> None:
    first = run_gitml(bare_git_repo, "init")
    assert "Initialized empty" in first.stdout
    cfg = (bare_git_repo / ".git/ml/config").read_bytes()
    second = run_gitml(bare_git_repo, "init", "--pack-size", "99999")
    assert "Reinitialized" in second.stdout
    assert (bare_git_repo / ".git/ml/config").read_bytes() == cfg


def test_add_commit_modify_status_readd_diff_checkout(bare_git_repo: Path) -> None:
    root = bare_git_repo
    _init(root)
    v1 = _dataset(root)
    out = run_gitml(root, "add", "data", "-m", "first").stdout
    id1 = (root / "data.mlgit").read_text().split("id: ")[1].split()[0]
    assert id1 in out
    assert "/data" in (root / ".gitignore").read_text().splitlines()
    staged = git(root, "diff", "--cached", "--name-only").stdout.split()
    assert sorted(staged) == [".gitignore", "data.mlgit"]
    git(root, "commit", "-qm", "data v1")

    st = json.loads(run_gitml(root, "status", "--json").stdout)
    assert [(e["path"], e["state"]) for e in st] == [("data", "clean")]

    # Unchanged data makes no new snapshot.
    again = run_gitml(root, "add", "data").stdout
    assert "unchanged" in again
    assert id1 in again
    assert git(root, "status", "--porcelain").stdout == ""

    # Modify: one changed, one added, one removed.
    (root / "data/train/a.csv").write_text("x,y\n1,1\n")
    (root / "data/new.txt").write_text("new\n")
    (root / "data/test/c.bin").unlink()
    st = json.loads(run_gitml(root, "status", "--json").stdout)[0]
    assert st["state"] == "modified"
    got = {(c["status"], c["path"]) for c in st["changes"]}
    assert got == {("M", "train/a.csv"), ("A", "new.txt"), ("D", "test/c.bin")}
    human = run_gitml(root, "status").stdout
    assert "modified  data/train/a.csv" in human
    assert "removed   data/test/c.bin" in human

    run_gitml(root, "add", "data", "-m", "second")
    id2 = (root / "data.mlgit").read_text().split("id: ")[1].split()[0]
    assert id2 != id1
    show = json.loads(run_gitml(root, "show", "--json", "data").stdout)
    assert show["id"] == id2
    assert show["parents"] == [id1]
    assert show["kind"] == "dataset"
    assert show["name"] == "data"
    assert show["message"] == "second"
    paths = {f["path"] for f in show["file_list"]}
    assert "new.txt" in paths
    assert "test/c.bin" not in paths
    assert show["files"] == len(show["file_list"])
    git(root, "commit", "-qam", "data v2")

    diff = json.loads(run_gitml(root, "diff", "--json", "data~1", "data").stdout)
    assert {(d["status"], d["path"]) for d in diff} == {
        ("M", "train/a.csv"), ("A", "new.txt"), ("D", "test/c.bin")}
    sizes = {d["path"]: (d["old_size"], d["new_size"]) for d in diff}
    assert sizes["test/c.bin"] == (20_000, None)

    # Back to v1 through git, then materialize.
    git(root, "checkout", "-q", "HEAD~1")
    run_gitml(root, "checkout")
    assert read_tree(root / "data") == v1
    assert os.stat(root / "data/run.sh").st_mode & stat.S_IXUSR
    assert os.readlink(root / "data/latest.csv") == "train/a.csv"
    assert (root / "data/empty_dir/nested_empty").is_dir()
    st = json.loads(run_gitml(root, "status", "--json").stdout)
    assert st[0]["state"] == "clean"


def test_checkout_restores_deleted_directory(repo_dir: Path) -> None:
    want = _dataset(repo_dir)
    run_gitml(repo_dir, "add", "data")
    import shutil

    shutil.rmtree(repo_dir / "data")
    assert json.loads(run_gitml(repo_dir, "status", "--json").stdout)[0]["state"] == "missing"
    run_gitml(repo_dir, "checkout", "data")
    assert read_tree(repo_dir / "data") == want


def test_checkout_refuses_to_discard_unsaved_changes(repo_dir: Path) -> None:
    _dataset(repo_dir)
    run_gitml(repo_dir, "add", "data")
    (repo_dir / "data/README").write_text("precious local edit\n")
    p = run_gitml(repo_dir, "checkout", check=False)
    assert p.returncode != 0
    assert "data/README" in p.stderr
    assert "--force" in p.stderr
    assert (repo_dir / "data/README").read_text() == "precious local edit\n"
    run_gitml(repo_dir, "checkout", "--force")
    assert (repo_dir / "data/README").read_text() == "hello\n"


def test_checkout_allows_replacing_data_that_is_saved(repo_dir: Path) -> None:
    _dataset(repo_dir)
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "v1")
    (repo_dir / "data/README").write_text("v2\n")
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qam", "v2")
    git(repo_dir, "checkout", "-q", "HEAD~1")
    run_gitml(repo_dir, "checkout")  # v2's README is in the store: no --force needed
    assert (repo_dir / "data/README").read_text() == "hello\n"


def test_add_single_file_and_several_paths(repo_dir: Path) -> None:
    make_tree(repo_dir, {"model.bin": os.urandom(30_000), "a/x.txt": "x", "b/y.txt": "y"})
    run_gitml(repo_dir, "add", "model.bin", "a", "b", "-m", "many")
    assert (repo_dir / "model.bin.mlgit").exists()
    names = {e["name"] for e in json.loads(run_gitml(repo_dir, "ls", "--json").stdout)}
    assert names == {"model.bin", "a", "b"}
    ignore = (repo_dir / ".gitignore").read_text().splitlines()
    assert {"/model.bin", "/a", "/b"} <= set(ignore)
    content = (repo_dir / "model.bin").read_bytes()
    (repo_dir / "model.bin").unlink()
    run_gitml(repo_dir, "checkout", "model.bin")
    assert (repo_dir / "model.bin").read_bytes() == content


def test_add_with_name_and_nested_path(repo_dir: Path) -> None:
    make_tree(repo_dir, {"sub/data/x.txt": "x"})
    run_gitml(repo_dir, "add", "--name", "mydata", "sub/data")
    assert (repo_dir / "sub/data.mlgit").exists()
    assert "/data" in (repo_dir / "sub/.gitignore").read_text().splitlines()
    show = json.loads(run_gitml(repo_dir, "show", "--json", "--no-files", "mydata").stdout)
    assert show["name"] == "mydata"
    assert "file_list" not in show


def test_add_from_subdirectory_and_dash_c(repo_dir: Path) -> None:
    make_tree(repo_dir, {"sub/data/x.txt": "x"})
    run_gitml(repo_dir / "sub", "add", "data")
    assert (repo_dir / "sub/data.mlgit").exists()
    out = run_gitml(repo_dir.parent, "-C", str(repo_dir), "ls").stdout
    assert "data" in out


def test_revisions_on_the_command_line(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/f": "1"})
    ids = []
    for i in range(3):
        (repo_dir / "d/f").write_text(str(i))
        run_gitml(repo_dir, "add", "d")
        ids.append((repo_dir / "d.mlgit").read_text().split("id: ")[1].split()[0])
    def show_id(rev: str) -> str:
        return str(json.loads(run_gitml(repo_dir, "show", "--json", rev).stdout)["id"])
    assert show_id("d") == ids[2]
    assert show_id("d~1") == ids[1]
    assert show_id("d~2") == ids[0]
    assert show_id(ids[0][:8]) == ids[0]
    assert show_id(f"d@{ids[1][:6]}") == ids[1]
    assert show_id(f"{ids[2]}~2") == ids[0]
    hist = json.loads(run_gitml(repo_dir, "history", "--json", "d").stdout)
    assert [h["id"] for h in hist] == ids[::-1]


def test_python_checkout_is_readonly_and_reused(repo_dir: Path) -> None:
    want = _dataset(repo_dir)
    run_gitml(repo_dir, "add", "data")
    # The clean work tree holds that version: `path` gives it, no copy is made.
    assert run_gitml(repo_dir, "path", "data").stdout.strip() == str(repo_dir / "data")
    path = Path(run_gitml(repo_dir, "path", "--copy", "data").stdout.strip())
    assert read_tree(path) == want
    assert not os.access(path / "README", os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(os.stat(path / "README").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o555
    assert Path(run_gitml(repo_dir, "path", "--copy", "data").stdout.strip()) == path


def test_large_file_streams_through_many_chunks(repo_dir: Path) -> None:
    data = os.urandom(40 << 16)  # 2.5 MiB of random bytes: ~600 chunks, ~40 packs
    (repo_dir / "big.bin").write_bytes(data)
    run_gitml(repo_dir, "add", "big.bin")
    (repo_dir / "big.bin").unlink()
    run_gitml(repo_dir, "checkout")
    assert (repo_dir / "big.bin").read_bytes() == data
    packs = list((repo_dir / ".git/ml/packs").glob("*.idx"))
    assert len(packs) > 20  # tiny test pack size: the data spans many packs


def test_chunk_dedup_between_versions(repo_dir: Path) -> None:
    data = bytearray(os.urandom(1 << 20))
    (repo_dir / "w.bin").write_bytes(data)
    run_gitml(repo_dir, "add", "w.bin")
    packs = repo_dir / ".git/ml/packs"
    before = sum(p.stat().st_size for p in packs.iterdir())
    data[500_000:500_100] = os.urandom(100)
    (repo_dir / "w.bin").write_bytes(data)
    run_gitml(repo_dir, "add", "w.bin")
    grown = sum(p.stat().st_size for p in packs.iterdir()) - before
    assert 0 < grown < 100_000, grown


def test_stat_cache_notices_same_size_rewrite(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/f.txt": "aaaa"})
    run_gitml(repo_dir, "add", "d")
    (repo_dir / "d/f.txt").write_text("bbbb")  # same size, new mtime/ctime
    st = json.loads(run_gitml(repo_dir, "status", "--json").stdout)[0]
    assert st["state"] == "modified"
    # Even with the mtime put back, ctime changed and gives it away.
    os.utime(repo_dir / "d/f.txt", ns=(0, 0))
    st = json.loads(run_gitml(repo_dir, "status", "--json").stdout)[0]
    assert [c["path"] for c in st["changes"]] == ["f.txt"]


def test_special_files_are_skipped_with_warning(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/f.txt": "x"})
    os.mkfifo(repo_dir / "d/fifo")
    p = run_gitml(repo_dir, "add", "d")
    assert "warning" in p.stderr
    assert "fifo" in p.stderr
    show = json.loads(run_gitml(repo_dir, "show", "--json", "d").stdout)
    assert [f["path"] for f in show["file_list"]] == ["f.txt"]


def test_add_when_pointer_names_a_snapshot_missing_here(repo_dir: Path) -> None:
    make_tree(repo_dir, {"d/x": "x"})
    run_gitml(repo_dir, "add", "d")
    old_id = (repo_dir / "d.mlgit").read_text().split("id: ")[1].split()[0]
    import shutil

    shutil.rmtree(repo_dir / ".git/ml")
    run_gitml(repo_dir, "init")
    p = run_gitml(repo_dir, "add", "d")
    assert "not in the local store" in p.stderr
    show = json.loads(run_gitml(repo_dir, "show", "--json", "d").stdout)
    assert show["parents"] == [old_id]


def test_two_adds_at_once_in_one_repo(repo_dir: Path) -> None:
    import subprocess

    for n in range(4):
        make_tree(repo_dir, {f"set{n}/f{i}.bin": os.urandom(5000) for i in range(30)})
    procs = [subprocess.Popen(["git", "ml", "add", f"set{n}"], cwd=repo_dir,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for n in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ignore = set((repo_dir / ".gitignore").read_text().splitlines())
    assert ignore == {f"/set{n}" for n in range(4)}
    staged = set(git(repo_dir, "diff", "--cached", "--name-only").stdout.split())
    assert staged == {".gitignore"} | {f"set{n}.mlgit" for n in range(4)}
    names = {e["name"] for e in json.loads(run_gitml(repo_dir, "ls", "--json").stdout)}
    assert names == {f"set{n}" for n in range(4)}
    for n in range(4):
        shutil_rm = __import__("shutil").rmtree
        want = read_tree(repo_dir / f"set{n}")
        shutil_rm(repo_dir / f"set{n}")
        run_gitml(repo_dir, "checkout", f"set{n}")
        assert read_tree(repo_dir / f"set{n}") == want


def test_file_dataset_follows_a_renamed_pointer(repo_dir: Path) -> None:
    content = os.urandom(3000)
    (repo_dir / "a.bin").write_bytes(content)
    run_gitml(repo_dir, "add", "a.bin")
    git(repo_dir, "commit", "-qm", "a")
    git(repo_dir, "mv", "a.bin.mlgit", "b.bin.mlgit")
    (repo_dir / "a.bin").write_bytes(b"unrelated local file")
    run_gitml(repo_dir, "checkout")
    assert (repo_dir / "b.bin").read_bytes() == content
    assert (repo_dir / "a.bin").read_bytes() == b"unrelated local file"
    st = json.loads(run_gitml(repo_dir, "status", "--json").stdout)
    assert {e["path"]: e["state"] for e in st} == {"b.bin": "clean"}


def test_directory_totals_after_a_change_deep_down(repo_dir: Path) -> None:
    """A snapshot's totals (files and symlinks, bytes) count from the data, at every level.

    Unchanged directories are reused without decoding their trees; fsck checks every
    directory entry's totals against its tree.
    """
    make_tree(repo_dir / "data", {"a/b/c/f1": "1", "a/b/c/f2": "22", "a/f3": "333",
                                  "x/q": "q", "top": "t"})
    (repo_dir / "data" / "a" / "l").symlink_to("f3")
    (repo_dir / "data" / "x" / "e").mkdir()
    out = run_gitml(repo_dir, "add", "data").stdout
    assert "(6 files, 8 B; hashed 5," in out, out  # 5 files and a symlink
    (repo_dir / "data" / "a" / "b" / "c" / "f2").write_text("2" * 20)
    out = run_gitml(repo_dir, "add", "data").stdout
    assert "(6 files, 26 B; hashed 1," in out, out
    assert "files   6 (26 B)" in run_gitml(repo_dir, "show", "data").stdout
    fsck_ok(repo_dir)
