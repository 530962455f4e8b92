"""Remembered answers: ``git ml status`` / ``add`` with nothing changed, from git's own stat check.

The quick answer (tests/test_quick_paths.py) is remembered with the files it read
(``mlgit.gitlink.answers``) and a private git index of each tracked path's files
(``mlgit.format.gitindex``), which the real ``git diff-files`` checks
(``mlgit.gitlink.statindex``). These tests make a remembered answer, then change
one thing as a user (or a teammate's commit) would, and check that the next
answer is the full CLI's, never the remembered one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import full_cli, git, make_tree, run_gitml

from mlgit.errors import FormatError
from mlgit.format.gitindex import MODE_FILE, IndexEntry, encode_index
from mlgit.gitlink import answers, statindex

FILES = {f"d{i % 3}/f{i}.bin": os.urandom(200 + i) for i in range(12)} | {"top.txt": "hello"}
HEAVY = ("click", "mlgit.cli.main", "mlgit.api.core", "mlgit.store.store", "json", "pygit2")


def _settle(top: Path) -> None:
    """Date every file below ``top`` (and ``top``) a minute back: nothing is racy.

    Their ctimes (utime sets them to now) are then let fall into a past second:
    git compares whole seconds, so an entry of the current second is not trusted.
    """
    when = time.time() - 60.5
    for f in [top, *top.rglob("*")]:
        os.utime(f, (when, when), follow_symlinks=False)
    time.sleep(1.05 - time.time() % 1)


def _entry(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the entry point; its result and which heavy modules it imported."""
    code = ("import sys\nfrom mlgit.cli.entry import main\ntry:\n    main(sys.argv[1:])\n"
            "finally:\n    heavy = " + repr(list(HEAVY)) + "\n"
            "    print(*[m for m in heavy if m in sys.modules], sep=',', file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                       text=True)
    last = p.stderr.strip().rsplit("\n", 1)[-1]
    return p, {m for m in last.split(",") if m}


def _remembered(cwd: Path, *args: str) -> str:
    """Run ``git ml ARGS`` until its answer is remembered; the remembered output."""
    for _ in range(6):
        run_gitml(cwd, *args)
        time.sleep(0.05)  # what the run read, older than the racy window
        p, heavy = _entry(cwd, *args)
        if not heavy:
            assert p.returncode == 0
            return p.stdout
    raise AssertionError(f"git ml {' '.join(args)} was never remembered")


def _same_as_full(cwd: Path, *args: str, recalled: bool = False
                  ) -> subprocess.CompletedProcess[str]:
    """The entry point's answer, asserted equal to the full CLI's (and not remembered)."""
    p, heavy = _entry(cwd, *args)
    full = full_cli(cwd, *args)
    assert (p.returncode, p.stdout) == (full.returncode, full.stdout), (p, full)
    if not recalled:
        assert "mlgit.api.core" in heavy  # worked out, not recalled
    return p


@pytest.fixture
def tracked(repo_dir: Path) -> Path:
    """``repo_dir`` with ``data/`` added and committed, its status remembered."""
    make_tree(repo_dir / "data", FILES)
    _settle(repo_dir / "data")
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "data")
    assert _remembered(repo_dir, "status").startswith("data: clean (data ")
    return repo_dir


def test_status_and_add_are_remembered_and_equal_the_full_answer(tracked: Path) -> None:
    out = _remembered(tracked, "status")
    assert out == full_cli(tracked, "status").stdout
    assert run_gitml(tracked, "status").stdout == out
    added = _remembered(tracked, "add", "data")
    assert added == full_cli(tracked, "add", "data").stdout
    assert "(unchanged) -> data.mlgit" in added
    # another directory, another answer (the paths are the user's)
    assert _remembered(tracked / "data", "add", ".") == full_cli(
        tracked / "data", "add", ".").stdout
    assert git(tracked, "status", "--porcelain").stdout == ""


def _chmod(p: Path) -> None:
    p.chmod(0o755)


@pytest.mark.parametrize("change", [
    "same size and mtime", "new file", "removed file", "new dir", "empty dir", "symlink",
    "missing", "git dir name", "fifo", "chmod", "renamed", "dir is a symlink", "file to dir",
])
def test_a_change_under_the_data_is_never_answered_from_memory(tracked: Path,
                                                                 change: str) -> None:
    data = tracked / "data"
    f = data / "d1" / "f1.bin"
    if change == "same size and mtime":  # only ctime (and git's stat) tells
        st = f.stat()
        f.write_bytes(bytes(st.st_size))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == "new file":
        (data / "d0" / "new.bin").write_bytes(b"new")
    elif change == "removed file":
        (data / "d2" / "f2.bin").unlink()
    elif change == "new dir":
        (data / "d9").mkdir()
        (data / "d9" / "x").write_bytes(b"x")
    elif change == "empty dir":
        (data / "d0" / "e").mkdir()
    elif change == "symlink":
        (data / "d1" / "link").symlink_to("f1.bin")
    elif change == "missing":
        shutil.rmtree(data)
    elif change == "git dir name":
        (data / "d2" / ".git").mkdir()
    elif change == "fifo":
        os.mkfifo(data / "pipe")
    elif change == "chmod":
        _chmod(f)
    elif change == "renamed":
        f.rename(data / "d1" / "g1.bin")
    elif change == "dir is a symlink":  # the same files, reached through a symlink
        data.rename(tracked / "elsewhere")
        data.symlink_to("elsewhere")
    else:
        f.unlink()
        f.mkdir()
    p = _same_as_full(tracked, "status")
    if change not in ("git dir name", "fifo", "dir is a symlink"):  # those: clean, as before
        assert "data: clean" not in p.stdout
    p, heavy = _entry(tracked, "add", "data")  # (add changes things: no second answer)
    assert "mlgit.api.core" in heavy
    if change not in ("git dir name", "fifo", "dir is a symlink"):
        assert "(unchanged)" not in p.stdout


@pytest.mark.parametrize("change", [
    "pointer edited", "older pointer checked out", "pointer unstaged", "ignore line removed",
    "dataset ref removed", "stat cache removed", "stat index removed", "store config changed",
    "another pointer", "parent dir replaced",
])
def test_a_change_to_what_the_answer_read_is_never_answered_from_memory(tracked: Path,
                                                                          change: str) -> None:
    _remembered(tracked, "add", "data")
    pointer = tracked / "data.mlgit"
    cache = tracked / ".git" / "ml" / "cache" / "stat"
    if change == "pointer edited":
        text = pointer.read_text()
        pointer.write_text(text.replace("\nname: data\n", "\nname: dat2\n"))
    elif change == "older pointer checked out":
        (tracked / "data" / "top.txt").write_text("v2")
        run_gitml(tracked, "add", "data")
        git(tracked, "commit", "-qm", "v2")
        _remembered(tracked, "status")
        git(tracked, "checkout", "-q", "HEAD~1", "--", "data.mlgit")
    elif change == "pointer unstaged":
        git(tracked, "rm", "-q", "--cached", "data.mlgit")
    elif change == "ignore line removed":
        (tracked / ".gitignore").write_text("")
    elif change == "dataset ref removed":
        (tracked / ".git" / "ml" / "refs" / "datasets" / "data").unlink()
    elif change == "stat cache removed":
        for c in cache.glob("*.json"):
            c.unlink()
    elif change == "stat index removed":
        for c in cache.glob("*.index"):
            c.unlink()
    elif change == "store config changed":
        config = tracked / ".git" / "ml" / "config"
        config.write_bytes(config.read_bytes())
    elif change == "another pointer":
        shutil.copy(pointer, tracked / "copy.mlgit")
        git(tracked, "add", "-f", "copy.mlgit")
    else:  # the pointer's directory moved away and put back as a copy
        make_tree(tracked / "sub" / "data", {"x": "x"})
        run_gitml(tracked, "add", "--name", "subdata", "sub/data")
        git(tracked, "commit", "-qm", "sub")
        _remembered(tracked, "status")
        (tracked / "sub").rename(tracked / "sub-old")
        shutil.copytree(tracked / "sub-old", tracked / "sub", symlinks=True)
        shutil.rmtree(tracked / "sub-old")
        # (the copy has other inodes: what was read is not what is there)
    # status reads neither the .gitignore files nor the refs: it may answer from memory
    _same_as_full(tracked, "status",
                  recalled=change in ("ignore line removed", "dataset ref removed"))
    _, heavy = _entry(tracked, "add", "data")  # (add may repair things: no second answer)
    assert "mlgit.api.core" in heavy


def test_a_touched_file_costs_one_full_answer_then_is_remembered_again(tracked: Path) -> None:
    f = tracked / "data" / "top.txt"
    f.touch()
    _same_as_full(tracked, "status")  # clean (same content), worked out: the cache refreshed
    assert _remembered(tracked, "status") == full_cli(tracked, "status").stdout


def test_a_racy_witness_is_not_remembered(tracked: Path) -> None:
    """Read within the racy window: nothing is remembered (the next run works it out again)."""
    key = b"k"
    cache_dir = tracked / ".git" / "ml" / "cache"
    w = tracked / "w"
    w.write_text("x")
    now = time.time_ns()
    assert not answers.remember(str(cache_dir), key, [(answers.CONTENT, str(w))], [], b"out",
                                now)
    assert answers.recall(str(cache_dir), key, str(tracked / ".git"), str(tracked),
                          dict(os.environ)) is None
    assert answers.remember(str(cache_dir), key, [(answers.CONTENT, str(w))], [], b"out",
                            now + 10**9)
    assert answers.recall(str(cache_dir), key, str(tracked / ".git"), str(tracked),
                          dict(os.environ)) == b"out"
    assert answers.recall(str(cache_dir), b"other", str(tracked / ".git"), str(tracked),
                          dict(os.environ)) is None
    w.write_text("y")
    assert answers.recall(str(cache_dir), key, str(tracked / ".git"), str(tracked),
                          dict(os.environ)) is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "long field", "extra field",
                                    "negative", "empty", "huge"])
def test_a_damaged_record_is_no_answer(tmp_path: Path, damage: str) -> None:
    w = tmp_path / "w"
    w.write_text("x")
    key = b"key"
    assert answers.remember(str(tmp_path), key, [(answers.CONTENT, str(w))], [], b"out",
                            time.time_ns() + 10**9)
    path = Path(answers.record_path(str(tmp_path), key))
    data = path.read_bytes()
    damaged = {
        "truncated": data[:-3],
        "garbage": b"\xff" * 40,
        "long field": data.replace(b"3:out,", b"9:out,"),
        "extra field": data + b"1:x,",
        "negative": data.replace(b"3:out,", b"-3:out,"),
        "empty": b"",
        "huge": data + b"x" * answers.MAX_RECORD_LEN,
    }[damage]
    path.write_bytes(damaged)
    assert answers.recall(str(tmp_path), key, str(tmp_path), str(tmp_path),
                          dict(os.environ)) is None


def test_git_reads_the_index_and_sees_what_changed(tmp_path: Path) -> None:
    """The encoder's bytes are a git index: git lists them, checks them, and sees changes."""
    git(tmp_path, "init", "-q")
    make_tree(tmp_path / "d", {"b/x.bin": b"xx", "a.txt": "a", "b/y": "y", "c-d": "c"})
    _settle(tmp_path / "d")
    entries = []
    for f in sorted((tmp_path / "d").rglob("*")):
        if f.is_file():
            st = f.lstat()
            entries.append(IndexEntry(f.relative_to(tmp_path).as_posix().encode(),
                                      st.st_ctime_ns, st.st_mtime_ns, st.st_dev, st.st_ino,
                                      MODE_FILE, st.st_uid, st.st_gid, st.st_size))
    index = tmp_path / "stat.index"
    index.write_bytes(encode_index(reversed(entries), "sha1"))  # sorted by the encoder
    env = dict(os.environ, GIT_INDEX_FILE=str(index))
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert [ln.split("\t")[1] for ln in listed] == ["d/a.txt", "d/b/x.bin", "d/b/y", "d/c-d"]
    assert all(ln.startswith("100644 " + "5a" * 20) for ln in listed)
    git_dir, top = str(tmp_path / ".git"), str(tmp_path)
    check = [(str(index), "d")]
    assert statindex.unchanged(check, git_dir, top, dict(os.environ))
    (tmp_path / "d" / "new").write_text("n")
    assert not statindex.unchanged(check, git_dir, top, dict(os.environ))
    assert statindex.unchanged(check, git_dir, top, dict(os.environ), others=False)
    (tmp_path / "d" / "new").unlink()
    (tmp_path / "d" / "b" / "y").write_text("Y")  # same size, new mtime and ctime
    assert not statindex.unchanged(check, git_dir, top, dict(os.environ), others=False)
    assert not statindex.unchanged([(str(tmp_path / "missing.index"), "d")], git_dir, top,
                                   dict(os.environ))
    assert not statindex.unchanged([], git_dir, top, dict(os.environ))


def test_a_sha256_repository_gets_a_sha256_index(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--object-format=sha256")
    (tmp_path / "f").write_text("f")
    _settle(tmp_path)
    st = (tmp_path / "f").lstat()
    index = tmp_path / "stat.index"
    index.write_bytes(encode_index([IndexEntry(b"f", st.st_ctime_ns, st.st_mtime_ns, st.st_dev,
                                               st.st_ino, MODE_FILE, st.st_uid, st.st_gid,
                                               st.st_size)], "sha256"))
    assert statindex.unchanged([(str(index), "f")], str(tmp_path / ".git"), str(tmp_path),
                               dict(os.environ))


@pytest.mark.parametrize("bad", [b"", b"/abs", b"a\0b", b"twice"])
def test_the_encoder_refuses_a_bad_entry(bad: bytes) -> None:
    entries = [IndexEntry(bad, 0, 0, 0, 0, MODE_FILE, 0, 0, 0)]
    if bad == b"twice":
        entries *= 2
    with pytest.raises(FormatError, match="is not a relative path given once"):
        encode_index(entries, "sha1")
    with pytest.raises(FormatError, match="unknown git object format 'md5'"):
        encode_index([], "md5")


def test_the_answer_right_after_a_commit_is_remembered(tracked: Path) -> None:
    """git's index, just replaced by a commit, is no reason to work the answer out twice."""
    (tracked / "data" / "top.txt").write_text("v2")
    _settle(tracked / "data")
    run_gitml(tracked, "add", "data")
    git(tracked, "commit", "-qm", "v2")
    first, heavy = _entry(tracked, "status")
    assert "mlgit.api.core" in heavy  # worked out...
    again, heavy = _entry(tracked, "status")
    assert (again.stdout, heavy) == (first.stdout, set())  # ...and remembered at once


def test_a_file_dataset_and_a_nested_one(repo_dir: Path) -> None:
    """One file tracked alone and a dataset in a subdirectory: remembered, and changes seen."""
    make_tree(repo_dir, {"model.bin": os.urandom(300), "sub/data/x.csv": "a,b\n"})
    _settle(repo_dir / "sub")
    _settle(repo_dir / "model.bin")
    run_gitml(repo_dir, "add", "model.bin", "sub/data")
    git(repo_dir, "commit", "-qm", "two")
    out = _remembered(repo_dir, "status")
    assert "model.bin: clean" in out
    assert "sub/data: clean" in out
    assert _remembered(repo_dir / "sub", "add", "data") == full_cli(
        repo_dir / "sub", "add", "data").stdout
    model = repo_dir / "model.bin"
    st = model.stat()
    model.write_bytes(os.urandom(300))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    p = _same_as_full(repo_dir, "status")
    assert "model.bin: modified" in p.stdout
    (repo_dir / "sub" / "data" / "y.csv").write_text("new")
    assert "sub/data: modified" in _same_as_full(repo_dir, "status").stdout


def test_the_stat_index_is_written_in_git_order_one_directory_at_a_time(tmp_path: Path) -> None:
    """Files and subdirectories sorted together as git sorts paths ('a-b' < 'a/x' < 'a0')."""
    from mlgit.format.tree import NO_SUBTREE
    from mlgit.snapshot.scan import FileStat
    from mlgit.snapshot.statcache import (
        DirCache,
        GitIndexTarget,
        StatCache,
        git_index_path,
        write_git_index,
    )

    root = tmp_path / "data"
    root.mkdir()
    names = [b"a", b"a-b", b"a.b", b"a0", b"b", b"a_", b"A", b"\xff", b"a b", b"az"]
    subdirs = {"": ["a", "a.b", "a0", "z"], "a": ["a/x"]}
    cache = StatCache()
    ino = 1
    for rel in ["", "a", "a/x", "a.b", "a0", "z"]:
        taken = {os.fsencode(s.rpartition("/")[2]) for s in subdirs.get(rel, [])}
        files = {}
        for n in names:
            if n not in taken:
                ino += 1
                files[n] = FileStat(ino, 10**18 + ino, 10**18, ino, ino % 2 == 0)
        cache.dirs[rel] = DirCache(NO_SUBTREE, "", files)
    path = tmp_path / "c.json"
    assert write_git_index(path, cache, 2 * 10**18, GitIndexTarget(os.fsencode(root), b"data",
                                                                   "sha1"))
    st = root.lstat()
    expected = [IndexEntry(b"data/" + (os.fsencode(rel) + b"/" if rel else b"") + n, s.ctime_ns,
                           s.mtime_ns, st.st_dev, s.ino, 0o100755 if s.executable else MODE_FILE,
                           st.st_uid, st.st_gid, s.size)
                for rel, dc in cache.dirs.items() for n, s in dc.files.items()]
    assert git_index_path(path).read_bytes() == encode_index(expected, "sha1")


def test_the_index_refuses_a_count_it_was_not_given_and_out_of_range_stats() -> None:
    from mlgit.format.gitindex import index_chunks

    one = IndexEntry(b"a", 0, 0, 0, 0, MODE_FILE, 0, 0, 0)
    with pytest.raises(FormatError, match="git index of 2 entries given 1"):
        b"".join(index_chunks([one], 2, "sha1"))
    with pytest.raises(FormatError, match="out of range"):
        encode_index([one._replace(mode=1 << 33)], "sha1")


def test_a_teammates_clone_and_a_linked_worktree_get_their_own_answers(tracked: Path,
                                                                     tmp_path: Path) -> None:
    """Bob's clone after push and pull, and a linked worktree of Alice's: each remembers
    its own answer (their own stat caches and stat indexes), and sees its own changes."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(tracked, "remote", "add", "origin", str(origin))
    git(tracked, "push", "-q", "-u", "origin", "main")
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    run_gitml(bob, "pull")
    _settle(bob / "data")
    git(tracked, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "wt")
    wt = tmp_path / "wt"
    run_gitml(wt, "checkout")
    _settle(wt / "data")
    for where in (bob, wt, tracked):
        out = _remembered(where, "status")
        assert out == full_cli(where, "status").stdout
        assert out.startswith("data: clean (data ")
    (bob / "data" / "top.txt").write_text("bob's")
    assert "data: modified" in _same_as_full(bob, "status").stdout
    (wt / "data" / "d0" / "new.bin").write_bytes(b"wt")
    assert "data: modified" in _same_as_full(wt, "status").stdout
    assert _entry(tracked, "status")[1] == set()  # Alice's own answer still holds
