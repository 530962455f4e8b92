"""Hostile paths (issue 8, classes 1 and 2): pointer files and metadata that aim outside.

A teammate (or whoever can push) controls the commits a victim pulls: the pointer
files in them and the snapshots in the shared store. Every path git-ml derives
from them must obey git's own ``verify_path`` rules and stay inside its place:
no ``.git`` in any spelling git refuses, not the work tree's root, no ``.``/``..``
or empty component, no pointer overlapping another or a file git tracks, nothing
below a symlinked directory, no pointer that is a symlink, FIFO, directory or too
big (never followed, never read whole), no walk that recurses on a git tree's
depth; and a checkpoint's ``meta.source.prefix`` (or a TensorFlow state file) can
never name a path outside the checkout.

Hostile store content is written with ``hostile_bytes`` (bytes by the format
doc, not git-ml's writer) into the victim's store or into a bare origin's
``ml/`` that the attacker controls; hostile pointer files are committed with the
real git (``git update-index --cacheinfo``, or loose objects and ``git
commit-tree`` for trees git's own index refuses). Each case checks: a one-line
error with its exit code (7 for a refused pointer or metadata, 6 for a refused
``.gitignore``), a sentinel directory outside the repository left as it was, the
victim's store still passing ``git ml fsck``, and the good pointers beside the bad
one still handled.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import stat
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml
from hostile_bytes import Builder, RawStore, fifo, pointer_text
from hypothesis import given
from hypothesis import strategies as st

import mlgit
from mlgit.api.events import Events
from mlgit.api.repo import Repo
from mlgit.errors import FormatError, PointerError, UsageError
from mlgit.format.names import check_entry_name
from mlgit.format.paths import is_git_dir_name
from mlgit.gitlink.commits import pointers_in_tree

GOOD = {"a.txt": b"good a\n", "d/b.txt": b"good b\n"}
SPELLINGS = [".git", ".GIT", ".Git ", ".git.", "git~1", ".g\u200cit", ".git::$INDEX_ALLOCATION",
             "a\\.git"]

# -- helpers ------------------------------------------------------------------------------


class Witness:
    """A directory outside the repository that must stay exactly as it was."""

    def __init__(self, root: Path) -> None:
        self.root = root
        make_tree(root, {"victim": b"original\n", "sub/inner": b"inner\n"})
        self.before = self.state()

    def state(self) -> dict[str, tuple[int, bytes | str]]:
        out: dict[str, tuple[int, bytes | str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                st_ = os.lstat(p)
                rel = str(p.relative_to(self.root))
                if stat.S_ISLNK(st_.st_mode):
                    out[rel] = (st_.st_mode, "link:" + os.readlink(p))
                elif stat.S_ISREG(st_.st_mode):
                    out[rel] = (st_.st_mode, p.read_bytes())
                else:
                    out[rel] = (st_.st_mode, "")
        return out

    def check(self) -> None:
        assert self.state() == self.before, "something was written outside the repository"


@pytest.fixture
def sentinel(tmp_path: Path) -> Witness:
    return Witness(tmp_path / "sentinel")


@pytest.fixture
def victim(repo_dir: Path) -> Path:
    """A repository with a README git tracks and one good dataset ``good/``, committed."""
    make_tree(repo_dir, {"README.md": "readme\n"})
    make_tree(repo_dir / "good", GOOD)
    git(repo_dir, "add", "README.md")
    run_gitml(repo_dir, "add", "good")
    git(repo_dir, "commit", "-qm", "good data")
    return repo_dir


def _blob(root: Path, data: bytes) -> str:
    return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=root, input=data,
                          capture_output=True, check=True).stdout.decode().strip()


def _index_add(root: Path, rel: str, blob: str, mode: str = "100644",
               checkout: bool = True) -> bool:
    """Put ``rel`` in git's index (False if git itself refuses the path) and check it out."""
    p = subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"{mode},{blob},{rel}"],
                       cwd=root, capture_output=True)
    if p.returncode != 0:
        return False
    if checkout and mode != "160000":
        git(root, "checkout-index", "-f", "--", rel)
    return True


def _plant(root: Path, b: Builder) -> None:
    """Write the builder's objects as one pack into the victim's store."""
    RawStore(root / ".git/ml").write(b.objects)


def _git_dir_snapshot(marker: Path, name: str = "evil") -> tuple[Builder, bytes]:
    """A snapshot that is a git directory whose config runs a command on `git status`."""
    b = Builder()
    config = (f"[core]\n\trepositoryformatversion = 0\n\tfsmonitor = touch {marker}\n"
              "\tbare = false\n").encode()
    sid = b.dataset(name, {"HEAD": b"ref: refs/heads/main\n", "config": config,
                           "objects/info/packs": b"\n", "refs/heads/.keep": b"",
                           "hooks/post-checkout": f"#!/bin/sh\ntouch {marker}\n".encode(),
                           "README.md": b"PWNED\n"})
    return b, sid


def _errors(p: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr's error lines; every stderr line must be one (no traceback, no internal error)."""
    lines = p.stderr.strip().splitlines()
    assert "internal error" not in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert all(ln.startswith("git-ml: error: ") for ln in lines), p.stderr
    return lines


def _refused(p: subprocess.CompletedProcess[str], code: int, *names: str) -> None:
    """One error line, exit ``code``, naming each of ``names`` (as repr quotes them)."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = _errors(p)
    assert len(lines) == 1, p.stderr
    for n in names:
        assert repr(n) in lines[0], lines[0]


def _fsck_ok(root: Path) -> None:
    """fsck finds nothing wrong with the victim's data: at most the hostile pointers
    themselves, reported as ``bad-pointer`` (as git fsck reports a bad tree)."""
    p = run_gitml(root, "fsck", "--json", check=False)
    assert p.returncode in (0, 1), (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, (p.stdout, p.stderr)
    kinds = {pr["kind"] for pr in json.loads(p.stdout)["problems"]}
    assert kinds <= {"bad-pointer"}, (p.stdout, p.stderr)
    assert (p.returncode == 1) == bool(kinds)


def _reported(p: subprocess.CompletedProcess[str]) -> None:
    """The command did its work and reported the hostile pointer: exit 0, or 7 with
    every error line about a pointer file (fsck's own report goes to stdout)."""
    assert p.returncode in (0, 7), (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, (p.returncode, p.stderr)
    lines = _errors(p)
    assert all("pointer file" in ln or ".mlgit" in ln or "deeper than any path" in ln
               for ln in lines), p.stderr
    assert (p.returncode == 7) == bool(lines), p.stderr


def _good_intact(root: Path) -> None:
    assert read_tree(root / "good") == GOOD
    assert (root / "README.md").read_text() == "readme\n"
    assert (root / ".git/ml/config").is_file()
    assert (root / ".git/HEAD").is_file()


# -- loose git objects, for trees git's index would refuse ------------------------------


def _loose(root: Path, kind: str, body: bytes) -> str:
    """Write a loose git object (the real git's format) and return its id."""
    data = b"%s %d\0" % (kind.encode(), len(body)) + body
    oid = hashlib.sha1(data).hexdigest()  # git's object id, not security
    d = root / ".git/objects" / oid[:2]
    d.mkdir(parents=True, exist_ok=True)
    if not (d / oid[2:]).exists():
        (d / oid[2:]).write_bytes(zlib.compress(data, 1))
    return oid


def _tree(root: Path, entries: list[tuple[str, bytes, str]]) -> str:
    """A git tree of (mode, name, id) entries, in git's order (directories sort with '/')."""
    def key(e: tuple[str, bytes, str]) -> bytes:
        return e[1] + (b"/" if e[0] == "40000" else b"")
    body = b"".join(m.encode() + b" " + n + b"\0" + bytes.fromhex(i)
                    for m, n, i in sorted(entries, key=key))
    return _loose(root, "tree", body)


def _tree_at(root: Path, path: str, leaf: tuple[str, str], extra: list[tuple[str, bytes, str]]
             ) -> str:
    """A root tree holding ``extra`` and ``leaf`` (mode, id) at ``path`` (``/``-separated)."""
    *dirs, name = path.split("/")
    tid = _tree(root, [(leaf[0], name.encode("utf-8", "surrogateescape"), leaf[1])])
    for d in reversed(dirs):
        tid = _tree(root, [("40000", d.encode("utf-8", "surrogateescape"), tid)])
    if not extra:
        return tid
    top = _loose_entries(root, tid)
    return _tree(root, top + extra)


def _loose_entries(root: Path, tid: str) -> list[tuple[str, bytes, str]]:
    """The entries of a tree written by :func:`_tree` (read back with git)."""
    out = subprocess.run(["git", "cat-file", "tree", tid], cwd=root, capture_output=True,
                         check=True).stdout
    entries = []
    while out:
        head, _, rest = out.partition(b"\0")
        mode, _, name = head.partition(b" ")
        entries.append((mode.decode(), name, rest[:20].hex()))
        out = rest[20:]
    return entries


def _commit(root: Path, tree: str, branch: str = "evil") -> str:
    """Commit ``tree`` on top of HEAD as ``refs/heads/<branch>`` with the real git."""
    c = subprocess.run(["git", "commit-tree", tree, "-p", "HEAD", "-m", "hostile"], cwd=root,
                       capture_output=True, text=True, check=True).stdout.strip()
    git(root, "update-ref", f"refs/heads/{branch}", c)
    return c


def _head_entries(root: Path) -> list[tuple[str, bytes, str]]:
    tree = git(root, "rev-parse", "HEAD^{tree}").stdout.strip()
    return _loose_entries(root, tree)


def _as_limit(nbytes: int) -> Callable[[], None]:
    def pre() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    return pre


def _limited(root: Path, limit: int, *args: str, timeout: float = 120
             ) -> subprocess.CompletedProcess[str]:
    """``git ml ARGS`` with its address space capped at ``limit`` (glibc arenas kept few)."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    return subprocess.run(["git-ml", *args], cwd=root, capture_output=True, text=True, env=env,
                          preexec_fn=_as_limit(limit), timeout=timeout)


# Address space for one git-ml command on a small repository: an honest status, log,
# fsck, gc or checkout runs under 200 MiB (measured, MALLOC_ARENA_MAX=2); this leaves
# room to spare and stays far below the 1 GiB a hostile pointer or blob would make a
# careless reader allocate.
MEMORY = 512 << 20


# -- the headline: a plain `git pull` with the hooks -------------------------------------


def test_pull_with_hooks_does_not_plant_a_git_dir(tmp_path: Path, sentinel: Witness) -> None:
    """A teammate commits ``sub/.git.mlgit`` pinning a git directory (config with
    ``core.fsmonitor``, hooks) and puts its objects in origin's store; the victim's
    ``git pull`` (post-merge hook) must not materialize it, must warn and succeed,
    and must still bring the commit's good dataset."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    attacker, clone = tmp_path / "attacker", tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(attacker))
    run_gitml(attacker, "init")
    make_tree(attacker, {"README.md": "readme\n"})
    git(attacker, "add", "README.md")
    git(attacker, "commit", "-qm", "start")
    git(attacker, "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    run_gitml(clone, "init")

    make_tree(attacker / "good", GOOD)
    run_gitml(attacker, "add", "good")
    marker = sentinel.root.parent / "marker"
    b, sid = _git_dir_snapshot(marker)
    RawStore(origin / "ml").write(b.objects)
    (attacker / "sub").mkdir()
    (attacker / "sub/.git.mlgit").write_bytes(pointer_text("evil", sid))
    git(attacker, "add", "sub/.git.mlgit")
    git(attacker, "commit", "-qm", "data, and a surprise")
    git(attacker, "push", "-q", "origin", "main")

    p = git(clone, "pull", "-q", "--ff-only", check=False)
    assert p.returncode == 0, p.stderr
    assert "sub/.git.mlgit" in p.stderr
    assert "Traceback" not in p.stderr
    assert not os.path.lexists(clone / "sub/.git")
    assert (clone / "sub/.git.mlgit").is_file()  # git's own file, left alone
    subprocess.run(["git", "status"], cwd=clone / "sub", capture_output=True)
    assert not marker.exists(), "git status ran the attacker's fsmonitor command"
    assert read_tree(clone / "good") == GOOD  # the rest of the pull's data is there
    _fsck_ok(clone)
    st_ = run_gitml(clone, "status", check=False)
    _refused(st_, 7, "sub/.git.mlgit")
    assert "good: clean" in st_.stdout
    sentinel.check()


# -- git ml checkout -f onto .git and onto the work tree's root --------------------------


@pytest.mark.parametrize("pointer", [".git.mlgit", ".mlgit"])
def test_checkout_force_keeps_git_dir_and_root(victim: Path, sentinel: Witness,
                                                pointer: str) -> None:
    b, sid = _git_dir_snapshot(sentinel.root.parent / "marker")
    _plant(victim, b)
    assert _index_add(victim, pointer, _blob(victim, pointer_text("evil", sid)))
    git(victim, "commit", "-qm", "hostile")
    shutil.rmtree(victim / "good")
    p = run_gitml(victim, "checkout", "-f", check=False)
    _refused(p, 7, pointer)
    assert "good: " in p.stdout  # the good pointer was checked out
    _good_intact(victim)
    assert (victim / ".git/ml/packs").is_dir()
    assert not (victim / ".git/config").read_text(
        ).count("fsmonitor")
    assert not (victim / "HEAD").exists()
    assert not (victim / "config").exists()
    _fsck_ok(victim)
    sentinel.check()


# -- every spelling of .git, at the top and one level down -------------------------------


@pytest.mark.parametrize("where", ["top", "sub"])
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_git_dir_spellings_are_refused(victim: Path, sentinel: Witness, spelling: str,
                                       where: str) -> None:
    b, sid = _git_dir_snapshot(sentinel.root.parent / "marker")
    _plant(victim, b)
    data_rel = spelling if where == "top" else f"sub/{spelling}"
    pointer = data_rel + ".mlgit"
    if not _index_add(victim, pointer, _blob(victim, pointer_text("evil", sid))):
        # git refuses the path itself (core.protectNTFS): it can only be an untracked file,
        # and git-ml looks for those at the top level only.
        if where == "sub":
            pytest.skip("git itself refuses this path in its index")
        (victim / pointer).write_bytes(pointer_text("evil", sid))
    else:
        git(victim, "commit", "-qm", "hostile")
    st_ = run_gitml(victim, "status", check=False)
    _refused(st_, 7, pointer)
    assert "good: clean" in st_.stdout
    shutil.rmtree(victim / "good")
    p = run_gitml(victim, "checkout", "-f", check=False)
    _refused(p, 7, pointer)
    assert not os.path.lexists(victim / data_rel / "README.md")  # nothing of the snapshot
    assert data_rel == ".git" or not os.path.lexists(victim / data_rel)
    _good_intact(victim)
    _fsck_ok(victim)
    sentinel.check()


# -- other bad pointers in the work tree -------------------------------------------------


def _big_sparse(path: Path, size: int = 1 << 30) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _case_pointers(case: str, root: Path, sid: bytes, outside: Path) -> list[str]:
    """Create bad pointer(s) of kind ``case``; return the pointer paths that must be named."""
    text = pointer_text("evil", sid)
    if case == "root":
        assert _index_add(root, ".mlgit", _blob(root, text))
        return [".mlgit"]
    if case == "empty-component":
        assert _index_add(root, "sub/.mlgit", _blob(root, text))
        return ["sub/.mlgit"]
    if case == "nested":
        assert _index_add(root, "outer.mlgit", _blob(root, text))
        assert _index_add(root, "outer/inner.mlgit", _blob(root, pointer_text("evil2", sid)))
        return ["outer.mlgit", "outer/inner.mlgit"]
    if case == "over-a-pointer":  # its data path is good.mlgit: the good pointer must stay
        assert _index_add(root, "good.mlgit.mlgit", _blob(root, text))
        return ["good.mlgit.mlgit"]
    if case == "over-tracked-file":
        assert _index_add(root, "README.md.mlgit", _blob(root, text))
        return ["README.md.mlgit"]
    if case == "under-symlink":  # `link` is the victim's own link to a directory elsewhere
        elsewhere = outside.parent / "elsewhere"
        make_tree(elsewhere, {"data.mlgit": text})
        os.symlink(elsewhere, root / "link")
        assert _index_add(root, "link/data.mlgit", _blob(root, text), checkout=False)
        return ["link/data.mlgit"]
    if case == "symlink-to-big-file":
        target = _big_sparse(outside.parent / "big")
        assert _index_add(root, "evil.mlgit", _blob(root, os.fsencode(target)), "120000")
        return ["evil.mlgit"]
    if case == "symlink-to-dev-zero":
        assert _index_add(root, "evil.mlgit", _blob(root, b"/dev/zero"), "120000")
        return ["evil.mlgit"]
    if case == "fifo-tracked":
        assert _index_add(root, "evil.mlgit", _blob(root, text))
        (root / "evil.mlgit").unlink()
        fifo(root / "evil.mlgit")
        return ["evil.mlgit"]
    if case == "fifo-untracked":
        fifo(root / "evil.mlgit")
        return ["evil.mlgit"]
    if case == "oversized":
        assert _index_add(root, "evil.mlgit", _blob(root, text + b"#" * 5000 + b"\n"))
        return ["evil.mlgit"]
    if case == "directory":  # a submodule named *.mlgit: git leaves a directory there
        head = git(root, "rev-parse", "HEAD").stdout.strip()
        assert _index_add(root, "evil.mlgit", head, "160000")
        (root / "evil.mlgit").mkdir(exist_ok=True)
        return ["evil.mlgit"]
    raise AssertionError(case)


WORK_TREE_CASES = ["root", "empty-component", "nested", "over-a-pointer", "over-tracked-file",
                   "under-symlink", "symlink-to-big-file", "symlink-to-dev-zero",
                   "fifo-tracked", "fifo-untracked", "oversized", "directory"]


@pytest.mark.parametrize("case", WORK_TREE_CASES)
def test_bad_work_tree_pointer(victim: Path, sentinel: Witness, case: str) -> None:
    b, sid = _git_dir_snapshot(sentinel.root.parent / "marker")
    _plant(victim, b)
    names = _case_pointers(case, victim, sid, sentinel.root)
    git(victim, "commit", "-qm", "hostile", check=False)
    for cmd in (["status"], ["checkout", "-f"]):
        if cmd[0] == "checkout":
            shutil.rmtree(victim / "good")
        p = _limited(victim, MEMORY, *cmd, timeout=60)
        assert p.returncode == 7, (cmd, p.stdout, p.stderr)
        lines = _errors(p)
        assert len(lines) == len(names), p.stderr
        for n in names:
            assert any(repr(n) in ln for ln in lines), (n, lines)
        assert "good: " in p.stdout
    _good_intact(victim)
    assert not (victim / "evil").exists()
    assert not (victim / "outer").exists() or os.listdir(victim / "outer") == ["inner.mlgit"]
    assert not os.path.lexists(sentinel.root.parent / "elsewhere/data")
    assert (victim / "good.mlgit").read_bytes().startswith(b"# git-ml pointer")
    _fsck_ok(victim)
    sentinel.check()


def test_python_api_reports_bad_pointers_and_goes_on(victim: Path, sentinel: Witness) -> None:
    """``Repo.tracked`` returns only the good pointers and reports the bad to ``events``;
    ``status``/``checkout_worktree`` without events do all the good work, then raise."""
    b, sid = _git_dir_snapshot(sentinel.root.parent / "marker")
    _plant(victim, b)
    assert _index_add(victim, "sub/.git.mlgit", _blob(victim, pointer_text("evil", sid)))
    shutil.rmtree(victim / "good")
    good_id = mlgit.show("good", repo=victim).id
    with Repo(victim) as r:
        ev = Events()
        assert [pr for pr, _ in r.tracked(ev)] == ["good.mlgit"]
        assert len(ev.problems) == 1
        assert isinstance(ev.problems[0], PointerError)
        assert [e.path for e in r.status(events=Events())] == ["good"]
        with pytest.raises(PointerError, match=r"sub/\.git\.mlgit"):
            r.checkout_worktree()
        assert read_tree(victim / "good") == GOOD
        with pytest.raises(PointerError, match=r"sub/\.git\.mlgit"):
            r.status()
        ev = Events()
        assert r.checkout_worktree([str(victim / "good")], events=ev) == [("good", good_id)]
        assert not getattr(ev, "problems", [])  # only the paths asked for are reported
    assert not os.path.lexists(victim / "sub/.git")
    sentinel.check()


def test_post_checkout_hook_warns_and_git_succeeds(victim: Path, sentinel: Witness) -> None:
    """Switching to a branch with a bad pointer: git's checkout succeeds, the hook warns
    and checks out the good data."""
    marker = sentinel.root.parent / "marker"
    b, sid = _git_dir_snapshot(marker)
    _plant(victim, b)
    git(victim, "checkout", "-q", "-b", "evil")
    (victim / "good/a.txt").write_text("v2\n")
    run_gitml(victim, "add", "good")
    assert _index_add(victim, "sub/.git.mlgit", _blob(victim, pointer_text("evil", sid)))
    git(victim, "commit", "-qm", "v2 and a surprise")
    git(victim, "checkout", "-q", "main")
    assert read_tree(victim / "good") == GOOD
    p = git(victim, "checkout", "-q", "evil", check=False)
    assert p.returncode == 0, p.stderr
    assert "warning" in p.stderr
    assert "sub/.git.mlgit" in p.stderr
    assert (victim / "good/a.txt").read_text() == "v2\n"
    assert not os.path.lexists(victim / "sub/.git")
    subprocess.run(["git", "status"], cwd=victim / "sub", capture_output=True)
    assert not marker.exists()
    _fsck_ok(victim)
    sentinel.check()


def test_symlinked_pointer_is_never_read(victim: Path, tmp_path: Path) -> None:
    """A pointer committed as a symlink to a 1 GiB file: refused by lstat, not read
    (under an address-space limit that reading it would break)."""
    _case_pointers("symlink-to-big-file", victim, b"\0" * 16, tmp_path / "x")
    p = _limited(victim, MEMORY, "status")
    _refused(p, 7, "evil.mlgit")
    assert "symbolic link" in p.stderr


# -- pointers in git trees: log, fsck, gc, push ------------------------------------------


TREE_CASES: dict[str, tuple[str, str]] = {
    # case: (path of the *.mlgit entry, its mode)
    "dot": ("./x.mlgit", "100644"),
    "dotdot": ("a/../b.mlgit", "100644"),
    "git-dir": (".git/x.mlgit", "100644"),
    "git-dir-ntfs": ("git~1/x.mlgit", "100644"),
    "nested-git": ("sub/.git.mlgit", "100644"),
    "root": (".mlgit", "100644"),
    "empty-component": ("sub/.mlgit", "100644"),
    "symlink-mode": ("link.mlgit", "120000"),
    "gitlink-mode": ("module.mlgit", "160000"),
    "oversized": ("big.mlgit", "100644"),
    "malformed": ("bad.mlgit", "100644"),
}


def _hostile_tree_commit(root: Path, case: str, sid: str) -> str:
    path, mode = TREE_CASES[case]
    if mode == "160000":
        oid = git(root, "rev-parse", "HEAD").stdout.strip()
    elif mode == "120000":
        oid = _loose(root, "blob", b"/dev/zero")
    elif case == "oversized":
        oid = _loose(root, "blob", pointer_text("evil", sid) + b"#" * 5000 + b"\n")
    elif case == "malformed":
        oid = _loose(root, "blob", b"mlgit-pointer: 1\nkind: dataset\n")
    else:
        oid = _loose(root, "blob", pointer_text("evil", sid))
    return _commit(root, _tree_at(root, path, (mode, oid), _head_entries(root)))


@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_bad_pointer_in_a_git_tree(victim: Path, sentinel: Witness, case: str) -> None:
    b, raw_sid = _git_dir_snapshot(sentinel.root.parent / "marker")
    _plant(victim, b)
    commit = _hostile_tree_commit(victim, case, raw_sid.hex())
    with Repo(victim) as r:
        problems: list[PointerError] = []
        tree = str(r.git.git[commit].tree_id)
        found = pointers_in_tree(r.git, tree, {}, problems)
        assert [p for p, _ in found] == ["good.mlgit"]
        assert len(problems) == 1, problems
        assert isinstance(problems[0], PointerError), problems
        assert "\n" not in str(problems[0])
    log = _limited(victim, MEMORY, "log", "evil", "--json")
    _reported(log)
    assert [d["path"] for d in json.loads(log.stdout)[0]["datasets"]] == ["good"]
    _fsck_ok(victim)
    _reported(run_gitml(victim, "gc", "--prune", "now", check=False))
    _fsck_ok(victim)
    run_gitml(victim, "checkout", "-f")
    _good_intact(victim)
    sentinel.check()


def test_pointer_1200_directories_deep_in_a_git_tree(victim: Path) -> None:
    """No RecursionError: log, fsck and gc walk the tree iteratively and find the pointer."""
    sid = mlgit.show("good", repo=victim).id
    blob = _loose(victim, "blob", pointer_text("deep", sid))
    path = "/".join(["d"] * 1200) + "/deep.mlgit"
    _commit(victim, _tree_at(victim, path, ("100644", blob), _head_entries(victim)))
    log = run_gitml(victim, "log", "evil", "--json", "-n", "1", check=False)
    assert log.returncode == 0, log.stderr[-2000:]
    assert sorted(d["path"] for d in json.loads(log.stdout)[0]["datasets"]) == [
        path.removesuffix(".mlgit"), "good"]
    _fsck_ok(victim)
    _reported(run_gitml(victim, "gc", "--prune", "now", check=False))


def test_pre_push_walks_a_deep_tree(victim: Path, tmp_path: Path) -> None:
    """``git push`` of a commit with a pointer 1,200 directories deep: the pre-push hook
    finds what it pins (iteratively) and pushes it."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(victim, "remote", "add", "origin", str(origin))
    sid = mlgit.show("good", repo=victim).id
    blob = _loose(victim, "blob", pointer_text("good", sid))
    path = "/".join(["d"] * 1200) + "/deep.mlgit"
    _commit(victim, _tree_at(victim, path, ("100644", blob), []))
    p = git(victim, "push", "-q", "origin", "evil", check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (origin / "ml/refs/datasets/good").read_text().strip() == sid


class _CountingGit:
    """A pygit2 repository that counts object lookups (to see the cache at work)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.lookups = inner, 0

    def __getitem__(self, key: object) -> object:
        self.lookups += 1
        return self.inner[key]  # type: ignore[index]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_tree_walk_cache_reads_a_shared_subtree_once(victim: Path) -> None:
    sid = mlgit.show("good", repo=victim).id
    blob = _loose(victim, "blob", pointer_text("good", sid))
    shared = _tree_at(victim, "/".join(["s"] * 50) + "/x.mlgit", ("100644", blob), [])
    a = _tree(victim, [("40000", b"shared", shared), ("100644", b"a.txt", blob)])
    b = _tree(victim, [("40000", b"shared", shared), ("100644", b"b.txt", blob)])
    with Repo(victim) as r:
        counting = _CountingGit(r.git.git)
        r.git._git = counting
        cache: dict[str, object] = {}
        first = pointers_in_tree(r.git, a, cache)
        after_first = counting.lookups
        second = pointers_in_tree(r.git, b, cache)
        assert [p for p, _ in first] == [p for p, _ in second] == [
            "shared/" + "/".join(["s"] * 50) + "/x.mlgit"]
        assert after_first >= 52
        assert counting.lookups - after_first == 1  # b's root only
        assert pointers_in_tree(r.git, a, cache) == first
        assert counting.lookups - after_first == 1  # a whole tree from the cache


def test_git_tree_deeper_than_any_path_is_not_walked_to_the_bottom(victim: Path) -> None:
    """5,000 levels (paths past MAX_PATH_LEN): the walk stops, says so, and goes on."""
    leaf = _loose(victim, "blob", b"x")
    tid = _tree(victim, [("100644", b"x.mlgit", leaf)])
    for _ in range(5000):
        tid = _tree(victim, [("40000", b"d", tid)])
    _commit(victim, _tree(victim, [*_head_entries(victim), ("40000", b"deep", tid)]))
    log = run_gitml(victim, "log", "evil", "--json", "-n", "1", check=False)
    _reported(log)
    assert [d["path"] for d in json.loads(log.stdout)[0]["datasets"]] == ["good"]
    _fsck_ok(victim)


@pytest.fixture(scope="session")
def gib_blob() -> tuple[str, bytes]:
    """A loose git blob of 1 GiB of zeros (id, compressed bytes: ~4.6 MiB, built in ~2 s)."""
    n = 1 << 30
    h, c = hashlib.sha1(), zlib.compressobj(1)  # git's object id, not security
    head = b"blob %d\0" % n
    h.update(head)
    parts = [c.compress(head)]
    zeros = bytes(1 << 20)
    for _ in range(n >> 20):
        h.update(zeros)
        parts.append(c.compress(zeros))
    parts.append(c.flush())
    return h.hexdigest(), b"".join(parts)


def test_gib_pointer_blob_is_never_read(victim: Path, gib_blob: tuple[str, bytes]) -> None:
    """A 1 GiB blob named ``x.mlgit`` in a commit: its header says 1 GiB, so log, fsck and
    gc skip it without loading it (they run under an address-space limit below 1 GiB)."""
    oid, data = gib_blob
    d = victim / ".git/objects" / oid[:2]
    d.mkdir(parents=True, exist_ok=True)
    (d / oid[2:]).write_bytes(data)
    _commit(victim, _tree(victim, [*_head_entries(victim), ("100644", b"x.mlgit", oid)]))
    for cmd in (["log", "evil", "--json"], ["fsck"], ["gc", "--prune", "now"]):
        p = _limited(victim, MEMORY, *cmd)
        if cmd[0] == "fsck":  # the oversized pointer blob is fsck's one finding
            assert p.returncode == 1, (cmd, p.stdout[-2000:])
            assert "bad-pointer" in p.stdout, (cmd, p.stdout[-2000:])
        else:
            _reported(p)
    log = _limited(victim, MEMORY, "log", "evil", "--json")
    assert [x["path"] for x in json.loads(log.stdout)[0]["datasets"]] == ["good"]


# -- tree entry names --------------------------------------------------------------------


@pytest.mark.parametrize("name", [".GIT", ".Git ", ".git.", "git~1", ".g\u200cit",
                                  ".git::$INDEX_ALLOCATION", "a\\.git"])
def test_tree_entry_named_like_a_git_dir_is_refused(victim: Path, sentinel: Witness,
                                                    name: str) -> None:
    """A snapshot from a store holding ``<name>/config``: checkout refuses the tree."""
    b = Builder()
    sid = b.dataset("evil", {f"{name}/config": b"[core]\n\tfsmonitor = touch /x\n"})
    _plant(victim, b)
    (victim / "evil.mlgit").write_bytes(pointer_text("evil", sid))
    p = run_gitml(victim, "checkout", "-f", check=False)
    assert p.returncode == 7, p.stderr
    assert len(_errors(p)) == 1, p.stderr
    assert "git directory" in p.stderr
    assert not os.path.lexists(victim / "evil")
    with pytest.raises(FormatError):
        mlgit.checkout(sid.hex(), repo=victim)
    _good_intact(victim)
    sentinel.check()


names = st.text(st.sampled_from(list(".gitGIT~1 :$\\\u200c\ufeffab")), min_size=1, max_size=12)


@given(names)
def test_entry_name_check_agrees_with_git_dir_rule(name: str) -> None:
    raw = name.encode()
    try:
        check_entry_name(raw)
        refused = False
    except FormatError:
        refused = True
    assert refused == (is_git_dir_name(raw) or raw in (b".", b".."))


# -- class 2: metadata used as a path ----------------------------------------------------


def _checkpoint(root: Path, prefix: object, files: dict[str, bytes] | None = None,
                source_type: str = "tf-prefix") -> str:
    """A checkpoint run ``evil`` whose meta.source.prefix is ``prefix`` (bytes by the doc)."""
    b = Builder()
    files = files if files is not None else {"ckpt-1.index": b"index",
                                             "ckpt-1.data-00000-of-00001": b"data"}
    source: dict[str, object] = {"type": source_type, "path": "/tmp/ckpt-1"}
    if prefix is not None:
        source["prefix"] = prefix
    meta = {"step": 1, "metrics": {}, "config": [], "datasets": [],
            "code": {"commit": None, "branch": None, "dirty": False, "diff": None},
            "source": source}
    sid = b.dataset("evil", files, kind="checkpoint", meta=meta)
    RawStore(root / ".git/ml").write(b.objects)
    RawStore(root / ".git/ml").ref("checkpoints", "evil", sid)
    return sid.hex()


PREFIXES: list[object] = ["/etc/passwd", "../../x", "..", ".", "", "a/b", ".git", "ckpt-2", 5,
                          None]


@pytest.mark.parametrize("prefix", PREFIXES, ids=repr)
def test_checkpoint_prefix_must_name_a_prefix_in_the_snapshot(victim: Path, prefix: object,
                                                              sentinel: Witness) -> None:
    sid = _checkpoint(victim, prefix)
    calls: list[Callable[[], object]] = [lambda: mlgit.checkout(sid, repo=victim),
                                         lambda: mlgit.latest_checkpoint("evil", repo=victim)]
    for call in calls:
        with pytest.raises(FormatError, match="prefix"):
            call()
    p = run_gitml(victim, "path", "evil", check=False)
    assert p.returncode == 7, p.stderr
    assert len(_errors(p)) == 1, p.stderr
    if isinstance(prefix, str) or prefix is None:
        _fsck_ok(victim)  # a well-typed snapshot: only using its prefix as a path is refused
    else:  # not a string: the snapshot breaks the metadata schema, and fsck says so
        p = run_gitml(victim, "fsck", check=False)
        assert p.returncode == 1, p.stdout
        assert "meta.source.prefix" in p.stdout, p.stdout
    sentinel.check()


def test_good_checkpoint_prefix_still_returns_the_prefix(victim: Path) -> None:
    sid = _checkpoint(victim, "ckpt-1")
    path = mlgit.checkout(sid, repo=victim)
    assert path.name == "ckpt-1"
    assert Path(f"{path}.index").is_file()
    assert mlgit.latest_checkpoint("evil", repo=victim) == path


def _tf() -> object:
    return pytest.importorskip("mlgit.tf")


@pytest.mark.parametrize("prefix", ["/etc/passwd", "../../x", "..", 5])
def test_tf_checkpoint_prefix_refuses_hostile_meta(tmp_path: Path, prefix: object) -> None:
    tfmod = _tf()
    (tmp_path / "ckpt-1.index").write_bytes(b"i")
    (tmp_path.parent / "x.index").write_bytes(b"i")
    meta = {"source": {"type": "tf-prefix", "prefix": prefix}}
    with pytest.raises(FormatError):
        tfmod.checkpoint_prefix(tmp_path, meta)  # type: ignore[attr-defined]


def test_tf_load_and_restore_refuse_hostile_prefix(victim: Path) -> None:
    tfmod = _tf()
    _checkpoint(victim, "../../x")
    with pytest.raises(FormatError):
        tfmod.load("evil", repo=victim)  # type: ignore[attr-defined]
    with pytest.raises(FormatError):
        tfmod.restore("evil", object(), repo=victim)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["..", ".git", ""])
def test_tf_state_file_must_name_a_component(victim: Path, name: str) -> None:
    """``model_checkpoint_path: ".."`` beside a file named ``...index``: the old code
    returned the checkout's parent directory."""
    tfmod = _tf()
    files = {"checkpoint": f'model_checkpoint_path: "{name}"\n'.encode(),
             "...index": b"i", ".git.index": b"i", ".index": b"i", "ckpt-3.index": b"i",
             "ckpt-3.data-00000-of-00001": b"d"}
    sid = _checkpoint(victim, None, files, source_type="dir")
    path = mlgit.checkout(sid, repo=victim)
    with pytest.raises(FormatError, match="model_checkpoint_path"):
        tfmod.checkpoint_prefix(path)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("victim")
def test_tf_state_file_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    tfmod = _tf()
    big = _big_sparse(tmp_path / "big", 64 << 20)
    ckpt = tmp_path / "ckpt"
    make_tree(ckpt, {"ckpt-3.index": b"i", "ckpt-3.data-00000-of-00001": b"d"})
    os.symlink(big, ckpt / "checkpoint")
    with pytest.raises(FormatError, match="symbolic link"):
        tfmod.checkpoint_prefix(ckpt)  # type: ignore[attr-defined]
    os.unlink(ckpt / "checkpoint")
    os.symlink(tmp_path / "elsewhere", ckpt / "ckpt-9.index")
    (tmp_path / "elsewhere").write_bytes(b"i")
    assert tfmod.checkpoint_prefix(ckpt) == ckpt / "ckpt-3"  # type: ignore[attr-defined]


def test_find_model_does_not_follow_links(tmp_path: Path, sentinel: Witness) -> None:
    tfmod = _tf()
    outside = sentinel.root / "victim"
    d = tmp_path / "ckpt"
    d.mkdir()
    os.symlink(outside, d / "model.keras")
    with pytest.raises(UsageError, match="no Keras model"):
        tfmod.find_model(d)  # type: ignore[attr-defined]
    with pytest.raises(FormatError, match="symbolic link"):
        tfmod.find_model(d / "model.keras")  # type: ignore[attr-defined]
    saved = tmp_path / "saved"
    make_tree(saved, {"saved_model.pb": b"pb"})
    (saved / "variables").mkdir()
    os.symlink(outside, saved / "variables/variables.index")
    with pytest.raises(FormatError, match="symbolic link"):
        tfmod.find_model(saved)  # type: ignore[attr-defined]
    deep = tmp_path / "deep"
    cur = deep
    deep.mkdir()
    try:
        for _ in range(1100):  # deeper than Python's recursion limit
            cur = cur / "d"
            cur.mkdir()
        (cur / "m.keras").write_bytes(b"k")
        assert tfmod.find_model(deep) == ("keras", cur / "m.keras")  # type: ignore[attr-defined]
    finally:  # pytest's own clean-up of tmp_path recurses, and would fail at this depth
        (cur / "m.keras").unlink(missing_ok=True)
        while cur != tmp_path:
            cur.rmdir()
            cur = cur.parent
    sentinel.check()


def test_commit_ckpt_of_a_symlink_stores_the_file(victim: Path, tmp_path: Path) -> None:
    real = tmp_path / "weights.bin"
    real.write_bytes(b"weights\n")
    link = tmp_path / "latest.bin"
    os.symlink(real, link)
    run_gitml(victim, "commit-ckpt", str(link), "--run", "r")
    files = json.loads(run_gitml(victim, "show", "r", "--json").stdout)["file_list"]
    assert [f["type"] for f in files] == ["file"]
    path = mlgit.latest_checkpoint("r", repo=victim)
    assert not path.is_symlink()
    assert path.read_bytes() == b"weights\n"


# -- .gitignore reads --------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/dev/zero", "file"])
def test_gitignore_that_is_a_symlink_is_refused(victim: Path, sentinel: Witness,
                                                target: str) -> None:
    dest = "/dev/zero" if target == "/dev/zero" else str(sentinel.root / "victim")
    (victim / ".gitignore").unlink(missing_ok=True)
    os.symlink(dest, victim / ".gitignore")
    make_tree(victim / "more", {"x.txt": "x\n"})
    p = _limited(victim, MEMORY, "add", "more", timeout=60)
    assert p.returncode == 6, p.stderr
    assert len(_errors(p)) == 1
    assert ".gitignore" in p.stderr
    assert os.readlink(victim / ".gitignore") == dest
    assert not (victim / "more.mlgit").exists()  # refused before anything was written
    _fsck_ok(victim)
    sentinel.check()


def test_add_refuses_a_git_dir_spelling(victim: Path) -> None:
    make_tree(victim / "sub/.GIT", {"config": "x\n"})
    p = run_gitml(victim, "add", "sub/.GIT", check=False)
    assert p.returncode == 6, p.stderr
    assert len(_errors(p)) == 1, p.stderr
    assert not (victim / "sub/.GIT.mlgit").exists()
