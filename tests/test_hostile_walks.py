"""Hostile trees for every walk, roots of the wrong type, and ``gc -n``'s pack count.

Issue 8, classes 4 and 8. Every hostile store is built from bytes by
``tests/hostile_bytes.py`` (never by git-ml's writer) and written straight into
the victim's store, or into the store of the origin the victim pulls from:

- a tree 1,500 directories deep;
- trees shared as a DAG: sixty trees that each name the next one twice make 2**60
  paths, with honest counts (the snapshot then claims 2**60 files), with counts
  that lie, or holding only empty directories (which no count bounds);
- directory entries and snapshots whose ``files``/``bytes`` claims lie;
- refs and pointers that name a tree or a chunk instead of a snapshot;
- ``root: "file"`` snapshots holding a directory, a symlink, two files or nothing.

Each runs through the real entry points (``git ml checkout``, ``show``, ``diff``,
``status``, ``fsck``, ``gc``, ``git ml pull`` and ``git pull`` with the hooks,
``mlgit.checkout`` and ``mlgit.open`` in a child Python), each under a timeout and
an RLIMIT_AS (set in a ``preexec_fn``; ``MALLOC_ARENA_MAX=2``). A refusal is one
line, ``git-ml: error: ...``, with a documented exit code (never 70, never a
RecursionError); nothing is written outside the target (a sentinel directory
stays byte-identical); the victim's own data still checks out and fsck finds
nothing wrong with it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml
from hostile_bytes import (
    Builder,
    RawStore,
    deep_tree,
    ent,
    file_body,
    hexid,
    link_body,
    oid,
    pointer_text,
)

MEM = 512 << 20
"""Address space every command gets (an honest run of each needs well under half)."""

TIMEOUT = 120
"""Seconds every command gets (an honest run of each needs a few on a loaded machine)."""

ENV = {"MALLOC_ARENA_MAX": "2"}


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM, MEM))


def _env() -> dict[str, str]:
    return {**os.environ, **ENV}


def ml(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``git ml ARGS`` under the memory limit and the timeout."""
    return subprocess.run(["git", "ml", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, preexec_fn=_limit, env=_env())


def git_limited(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``git ARGS`` (and the hooks it runs) under the limit and the timeout."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, preexec_fn=_limit, env=_env())


def api(cwd: Path, expr: str) -> tuple[str, int, str]:
    """Evaluate ``expr`` (``mlgit`` imported) in a child Python under the limits.

    Returns (error class, exit code, message) for an MlgitError, else ("ok", 0,
    repr of the result). Anything else (RecursionError, MemoryError) fails here.
    """
    script = textwrap.dedent(f"""
        import sys
        import mlgit
        from mlgit.errors import MlgitError
        try:
            result = {expr}
        except MlgitError as e:
            print(type(e).__name__, e.exit_code, str(e), sep="\\t")
        else:
            print("ok", 0, repr(result), sep="\\t")
    """)
    p = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                       timeout=TIMEOUT, preexec_fn=_limit, env=_env())
    assert p.returncode == 0, f"{expr} crashed (rc {p.returncode}):\n{p.stderr[-3000:]}"
    kind, code, msg = p.stdout.strip().split("\t", 2)
    return kind, int(code), msg


def assert_refused(p: subprocess.CompletedProcess[str], code: int = 7) -> str:
    """One ``git-ml: error:`` line (warnings aside), exit ``code``; returns the message."""
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "internal error" not in p.stderr, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("git-ml: warning: ")]
    errors = [ln for ln in lines if ln.startswith("git-ml: error: ")]
    assert errors, p.stderr[-3000:]
    assert len(lines) == len(errors), p.stderr[-3000:]
    assert all(len(ln) < 1000 for ln in errors), errors
    return errors[0]


# -- the victim, its surroundings, cleanup ----------------------------------------------


def remove_tree(path: Path) -> None:
    """Delete a tree of any depth (shutil.rmtree recurses in Python 3.11), read-only or not."""
    top = os.fsencode(path)
    if not os.path.lexists(top):
        return
    if not stat.S_ISDIR(os.lstat(top).st_mode):
        os.unlink(top)
        return
    stack: list[tuple[bytes, bool]] = [(top, False)]
    while stack:
        p, emptied = stack.pop()
        if emptied:
            os.rmdir(p)
            continue
        os.chmod(p, 0o755)
        stack.append((p, True))
        for e in list(os.scandir(p)):
            if e.is_dir(follow_symlinks=False):
                stack.append((e.path, False))
            else:
                os.unlink(e.path)


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[None]:
    """Remove what a test leaves below ``tmp_path``: pytest's own cleanup would recurse."""
    yield
    for p in tmp_path.iterdir():
        remove_tree(p)


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory outside the repository that nothing may touch."""
    s = tmp_path / "sentinel"
    make_tree(s, {"victim": b"original\n", "sub/inner": b"inner\n"})
    return s


def _state(path: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            content: bytes | str = ("link:" + os.readlink(p) if p.is_symlink()
                                    else p.read_bytes() if p.is_file() else "<dir>")
            out[str(p.relative_to(path))] = (st.st_mode, content)
    return out


OWN = {f"d{i % 3}/f{i}.bin": os.urandom(3000 + i) for i in range(9)}


@pytest.fixture
def victim(repo_dir: Path, cleanup: None) -> Path:  # noqa: ARG001 - for its teardown
    """A repository with its own committed dataset ``data`` (and the hooks installed)."""
    make_tree(repo_dir / "data", OWN)
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "own data")
    return repo_dir


def own_data_intact(root: Path, hostile: set[str]) -> None:
    """The victim's dataset still checks out, and fsck faults nothing but hostile objects."""
    kind, _, path = api(root, "str(mlgit.checkout('data'))")
    assert kind == "ok", path
    assert read_tree(Path(eval(path))) == OWN
    p = ml(root, "fsck", "--json")
    assert p.returncode in (0, 1), p.stderr
    for problem in json.loads(p.stdout)["problems"]:
        assert problem["object"] in hostile, problem


def plant(root: Path, b: Builder, snap: bytes | str, name: str = "evil", *, ref: bool = True,
          pointer: bool = True) -> set[str]:
    """Write ``b``'s objects into ``root``'s store, name ``snap`` by a ref and a committed
    pointer; return the ids of everything hostile."""
    w = RawStore(root / ".git/ml")
    w.write(b.objects)
    if ref:
        w.ref("datasets", name, snap)
    if pointer:
        (root / f"{name}.mlgit").write_bytes(pointer_text(name, snap))
        git(root, "add", f"{name}.mlgit")
        git(root, "commit", "-qm", f"add {name}")
    return {hexid(o.data) for o in b.objects} | {snap.hex() if isinstance(snap, bytes) else snap}


# -- hostile trees ---------------------------------------------------------------------

LEAF = b"leaf\n"


def _deep(b: Builder) -> bytes:
    tree, files = deep_tree(b, 1500, LEAF)
    return b.snapshot("evil", tree, files=files, bytes=len(LEAF))


def _dag(b: Builder, *, honest: bool, empty: bool = False, levels: int = 60) -> bytes:
    """Sixty trees, each naming the next one twice: 2**60 paths from 61 objects."""
    tree = b.tree([] if empty else [b.file(b"f", LEAF)])
    files, size = (0, 0) if empty else (1, len(LEAF))
    for _ in range(levels):
        claim = (files, size) if honest or empty else (1, len(LEAF))
        tree = b.tree([b.dir(b"a", tree, *claim), b.dir(b"b", tree, *claim)])
        files, size = 2 * files, 2 * size
    if not (honest or empty):
        files, size = 2, 2 * len(LEAF)  # what the lying root claims
    return b.snapshot("evil", tree, files=files, bytes=size)


def _dir_lies(b: Builder, files: int, size: int) -> bytes:
    sub = b.tree([b.file(n, LEAF) for n in (b"x", b"y", b"z")])
    tree = b.tree([b.dir(b"sub", sub, files, size), b.file(b"top", LEAF)])
    return b.snapshot("evil", tree, files=files + 1, bytes=size + len(LEAF))


def _root_lies(b: Builder) -> bytes:
    tree = b.tree([b.file(b"a", LEAF), b.file(b"b", LEAF)])
    return b.snapshot("evil", tree, files=1, bytes=len(LEAF))


TREES: dict[str, Callable[[Builder], bytes]] = {
    "deep-1500": _deep,
    "dag-60-honest-counts": lambda b: _dag(b, honest=True),
    "dag-60-lying-counts": lambda b: _dag(b, honest=False),
    "dag-60-empty-dirs": lambda b: _dag(b, honest=True, empty=True),
    "dir-claims-fewer-files": lambda b: _dir_lies(b, 1, 3 * len(LEAF)),
    "dir-claims-more-files": lambda b: _dir_lies(b, 300, 3 * len(LEAF)),
    "dir-claims-other-bytes": lambda b: _dir_lies(b, 3, 7),
    "root-claims-fewer-files": _root_lies,
}
OPEN_PATH = {"deep-1500": "d/" * 1500 + "f", "dag-60-honest-counts": "a/" * 60 + "f",
             "dag-60-lying-counts": "b/" * 60 + "f", "dir-claims-fewer-files": "sub/x",
             "dir-claims-more-files": "sub/y", "dir-claims-other-bytes": "top",
             "root-claims-fewer-files": "a"}
"""A file of each tree, for ``mlgit.open``."""
LISTS_NOTHING = {"dag-60-empty-dirs"}
"""Trees whose files show, diff and status can list (none) without any error."""


@pytest.mark.parametrize("case", sorted(TREES))
def test_hostile_tree_is_refused_by_every_reader(victim: Path, sentinel: Path,
                                                 case: str) -> None:
    b = Builder()
    snap = TREES[case](b)
    hostile = plant(victim, b, snap)
    before = _state(sentinel)

    # git ml checkout: refuses, writes nothing (no evil/, no temporary directory).
    shutil.rmtree(victim / "data")
    assert_refused(ml(victim, "checkout", "evil"))
    assert not os.path.lexists(victim / "evil")
    assert not [n for n in os.listdir(victim) if n.startswith(".mlgit.")]
    # mlgit.checkout: FormatError, no checkouts/<id> left behind.
    kind, code, msg = api(victim, "mlgit.checkout('evil')")
    assert (kind, code) == ("FormatError", 7), msg
    assert not [n for n in os.listdir(victim / ".git/ml/checkouts") if snap.hex() in n]

    # mlgit.open reads one path, level by level: bounded by that path, whatever the DAG.
    # (A snapshot claiming more than MAX_FILES is refused before any path is read.)
    for path, want in ((OPEN_PATH.get(case, "nope"), ("ok", "BadPathError", "FormatError")),
                       ("nope/" * 2000 + "x", ("BadPathError", "FormatError"))):
        kind, _, msg = api(victim, f"mlgit.open('evil', {path!r}).read(16)")
        assert kind in want, (path[:40], kind, msg)

    # show, diff and status read the file list: refused (or, for a tree of empty
    # directories, nothing to list), quickly and within the memory limit.
    for args in (["show", "evil"], ["diff", "data", "evil"]):
        p = ml(victim, *args)
        if case in LISTS_NOTHING:
            assert p.returncode == 0, p.stderr
        else:
            assert_refused(p)
    make_tree(victim / "evil", {"local.txt": "mine\n"})
    p = ml(victim, "status")
    if case in LISTS_NOTHING:
        assert p.returncode == 0, p.stderr
    else:
        assert_refused(p)
    assert read_tree(victim / "evil") == {"local.txt": b"mine\n"}

    # fsck reports the hostile snapshot (and nothing of the victim's own data).
    p = ml(victim, "fsck", "--json")
    assert p.returncode == 1, (p.stdout, p.stderr)
    problems = json.loads(p.stdout)["problems"]
    assert any(x["kind"] == "corrupt" for x in problems), problems
    # gc keeps working: it marks what roots reach, each object once.
    p = ml(victim, "gc", "--prune=now")
    assert p.returncode == 0, p.stderr
    assert _state(sentinel) == before
    own_data_intact(victim, hostile)


# -- pulled from an origin -------------------------------------------------------------


@pytest.fixture
def origin(tmp_path: Path, victim: Path) -> Path:
    """A bare origin the victim has pushed its data to (with the hooks)."""
    r = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(r))
    git(victim, "remote", "add", "origin", str(r))
    p = git(victim, "push", "-q", "-u", "origin", "main")
    assert p.returncode == 0, p.stderr
    assert (r / "ml/refs/datasets/data").exists()
    return r


def _mallory_pushes(tmp_path: Path, origin: Path, b: Builder, snap: bytes) -> set[str]:
    """A teammate without git-ml commits a pointer to ``snap`` and plants its objects
    (and a ref) in the origin's store."""
    m = tmp_path / "mallory"
    git(tmp_path, "clone", "-q", str(origin), str(m))
    (m / "evil.mlgit").write_bytes(pointer_text("evil", snap))
    git(m, "add", "evil.mlgit")
    git(m, "commit", "-qm", "new data")
    git(m, "push", "-q", "origin", "main")
    store = RawStore(origin / "ml")
    store.write(b.objects)
    store.ref("datasets", "evil", snap)
    return {hexid(o.data) for o in b.objects} | {snap.hex()}


PULLED = ["deep-1500", "dag-60-honest-counts", "dag-60-lying-counts", "dag-60-empty-dirs",
          "dir-claims-more-files"]


@pytest.mark.parametrize("case", PULLED)
def test_hostile_tree_pulled_from_origin(victim: Path, origin: Path, tmp_path: Path,
                                         sentinel: Path, case: str) -> None:
    b = Builder()
    snap = TREES[case](b)
    hostile = _mallory_pushes(tmp_path, origin, b, snap)
    before = _state(sentinel)
    # git pull: the post-merge hook fetches the pinned snapshot and refuses to
    # materialize it with a warning; git's own pull succeeds.
    p = git_limited(victim, "pull", "-q", "--ff-only", "origin", "main")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "internal error" not in p.stderr, p.stderr[-3000:]
    assert "evil" in p.stderr or "data not updated" in p.stderr, p.stderr[-3000:]
    assert not os.path.lexists(victim / "evil")
    # git ml pull: the same, as an error.
    assert_refused(ml(victim, "pull"))
    assert not os.path.lexists(victim / "evil")
    assert read_tree(victim / "data") == OWN
    assert _state(sentinel) == before
    own_data_intact(victim, hostile)


# -- roots of the wrong type -----------------------------------------------------------


def _wrong_root(b: Builder, what: str) -> bytes:
    """The id of a tree or a chunk, to be named where a snapshot belongs."""
    if what == "tree":
        return b.tree([b.file(b"f", LEAF)])
    cid, _ = b.chunk(b"just a chunk\n" * 8)
    return cid


@pytest.mark.parametrize("what", ["tree", "chunk"])
@pytest.mark.parametrize("via", ["ref", "pointer"])
def test_root_naming_a_tree_or_a_chunk(victim: Path, what: str, via: str) -> None:
    b = Builder()
    target = _wrong_root(b, what)
    hostile = plant(victim, b, target, ref=via == "ref", pointer=via == "pointer")
    p = ml(victim, "fsck", "--json")
    assert p.returncode == 1, (p.stdout, p.stderr)
    problems = json.loads(p.stdout)["problems"]
    wrong = [x for x in problems if x["kind"] == "wrong-type"]
    assert [x["object"] for x in wrong] == [target.hex()], problems
    assert "not a snapshot" in wrong[0]["message"]
    assert f"a {what}" in wrong[0]["message"]
    assert ("ref datasets/evil" if via == "ref" else "evil.mlgit") in wrong[0]["referenced_by"]
    p = ml(victim, "fsck")
    assert p.returncode == 1, p.stdout
    assert "wrong-type: " in p.stdout, p.stdout
    if via == "pointer":
        shutil.rmtree(victim / "data")
        assert_refused(ml(victim, "checkout"))
        assert not os.path.lexists(victim / "evil")
        rev = target.hex()
    else:
        rev = "evil"
    # By name the ref's object is read as a snapshot (a format error); by id it is not
    # a snapshot at all (an unknown revision).
    code = 7 if via == "ref" else 5
    for expr in (f"mlgit.checkout({rev!r})", f"mlgit.open({rev!r}, 'f')"):
        kind, got, msg = api(victim, expr)
        assert got == code, (expr, kind, msg)
    assert_refused(ml(victim, "show", rev), code=code)
    assert ml(victim, "gc", "--prune=now").returncode == 0
    own_data_intact(victim, hostile)


# -- file snapshots of the wrong shape -------------------------------------------------


def _file_snapshot(b: Builder, shape: str) -> bytes:
    entries = {
        "a-directory": [b.dir(b"model.bin", b.tree([b.file(b"x", LEAF)]), 1, len(LEAF))],
        "a-symlink": [ent(b"model.bin", link_body(b"/etc/passwd"))],
        "two-files": [b.file(b"a.bin", LEAF), b.file(b"b.bin", LEAF)],
        "nothing": [],
        "an-empty-directory": [b.dir(b"model.bin", b.tree([]), 0, 0)],
    }[shape]
    tree = b.tree(entries)
    files = {"a-directory": 1, "a-symlink": 1, "two-files": 2, "nothing": 0,
             "an-empty-directory": 0}[shape]
    nbytes = {"a-directory": len(LEAF), "two-files": 2 * len(LEAF)}.get(shape, 0)
    return b.snapshot("evil", tree, root="file", files=files, bytes=nbytes)


@pytest.mark.parametrize("shape", ["a-directory", "a-symlink", "two-files", "nothing",
                                   "an-empty-directory"])
def test_file_snapshot_must_hold_one_regular_file(victim: Path, sentinel: Path,
                                                  shape: str) -> None:
    b = Builder()
    snap = _file_snapshot(b, shape)
    hostile = plant(victim, b, snap)
    before = _state(sentinel)
    shutil.rmtree(victim / "data")
    msg = assert_refused(ml(victim, "checkout", "evil"))
    assert "exactly one regular file" in msg, msg
    assert not os.path.lexists(victim / "evil")
    for expr in ("mlgit.checkout('evil')", "mlgit.open('evil')", "mlgit.open('evil', 'x')"):
        kind, code, msg = api(victim, expr)
        assert (kind, code) == ("FormatError", 7), (expr, kind, msg)
        assert "exactly one regular file" in msg, msg
    assert not [n for n in os.listdir(victim / ".git/ml/checkouts") if snap.hex() in n]
    assert "exactly one regular file" in assert_refused(ml(victim, "show", "evil"))
    p = ml(victim, "fsck", "--json")
    assert p.returncode == 1
    problems = json.loads(p.stdout)["problems"]
    assert any("exactly one regular file" in x["message"] for x in problems), problems
    assert _state(sentinel) == before
    own_data_intact(victim, hostile)


def test_file_snapshot_of_a_symlink_is_not_written(repo_dir: Path, tmp_path: Path,
                                                   cleanup: None) -> None:  # noqa: ARG001
    """A writer must not make what readers refuse: a checkpoint given as a symlink is
    stored as the regular file it points to, never as a link."""
    target = tmp_path / "real.bin"
    target.write_bytes(b"weights\n")
    (repo_dir / "model.bin").symlink_to(target)
    p = ml(repo_dir, "commit-ckpt", "model.bin", "--run", "r1", "-q")
    assert p.returncode == 0, p.stderr
    kind, _, got = api(repo_dir, "mlgit.checkout('r1').read_bytes()")
    assert (kind, got) == ("ok", repr(b"weights\n"))
    kind, _, islink = api(repo_dir, "mlgit.checkout('r1').is_symlink()")
    assert (kind, islink) == ("ok", "False")


# -- depth: what an honest user may store ----------------------------------------------


def _make_deep(base: Path, depth: int) -> Path:
    """``base/d/d/.../d/f`` with ``depth`` directories (built with relative paths)."""
    base.mkdir(parents=True)
    fd = os.open(base, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        f = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, LEAF)
        os.close(f)
    finally:
        os.close(fd)
    return base


def test_dataset_1000_levels_deep_round_trips(repo_dir: Path, cleanup: None) -> None:  # noqa: ARG001
    deep = _make_deep(repo_dir / "deep", 1000)
    leaf = "/".join(["d"] * 1000) + "/f"
    assert ml(repo_dir, "add", "deep").returncode == 0
    git(repo_dir, "commit", "-qm", "deep")
    p = ml(repo_dir, "status", "--json")
    assert p.returncode == 0, p.stderr
    assert [e["state"] for e in json.loads(p.stdout)] == ["clean"]
    remove_tree(deep)
    p = ml(repo_dir, "checkout")
    assert p.returncode == 0, p.stderr
    assert (deep / leaf).read_bytes() == LEAF
    assert json.loads(ml(repo_dir, "status", "--json").stdout)[0]["state"] == "clean"
    p = ml(repo_dir, "show", "--json", "deep")
    assert [f["path"] for f in json.loads(p.stdout)["file_list"]] == [leaf]
    (deep / leaf).write_bytes(b"changed\n")
    p = ml(repo_dir, "status", "--json")
    assert json.loads(p.stdout)[0]["changes"] == [
        {"status": "M", "path": leaf, "old_size": len(LEAF), "new_size": 8}]
    kind, _, path = api(repo_dir, "str(mlgit.checkout('deep'))")
    assert kind == "ok", path
    assert (Path(eval(path)) / leaf).read_bytes() == LEAF
    kind, _, got = api(repo_dir, f"mlgit.open('deep', {leaf!r}).read()")
    assert (kind, got) == ("ok", repr(LEAF))
    assert ml(repo_dir, "fsck").returncode == 0
    assert ml(repo_dir, "gc", "--prune=now").returncode == 0


def test_local_directory_too_deep_to_add(repo_dir: Path, cleanup: None) -> None:  # noqa: ARG001
    _make_deep(repo_dir / "deep", 1100)
    msg = assert_refused(ml(repo_dir, "add", "deep"), code=6)
    assert "1024" in msg, msg
    assert not (repo_dir / "deep.mlgit").exists()


def test_add_refuses_what_readers_would(repo_dir: Path, cleanup: None) -> None:  # noqa: ARG001
    """1024 levels is the limit: stored, checked out; the limit is the readers' too."""
    _make_deep(repo_dir / "deep", 1024)
    assert ml(repo_dir, "add", "deep").returncode == 0
    remove_tree(repo_dir / "deep")
    assert ml(repo_dir, "checkout").returncode == 0
    assert (repo_dir / "deep" / ("d/" * 1024 + "f")).read_bytes() == LEAF
    remove_tree(repo_dir / "deep")
    remove_tree(repo_dir / ".git/ml/checkouts")


# -- names git reserves, skipped when scanning ------------------------------------------

GIT_DIR_NAMES = [".git", ".GIT", ".Git", ".g\u200cit", "\ufeff.git", ".git\u200d", "git~1",
                 "GIT~1", ".git ", ".git.", ".git . ", ".git::$DATA", "x\\.git", "git~1\\y"]


@pytest.mark.parametrize("as_dir", [True, False])
def test_scan_skips_every_git_dir_name(repo_dir: Path, as_dir: bool) -> None:
    files = {"keep.txt": "kept\n", "sub/keep2.txt": "kept too\n"}
    for i, name in enumerate(GIT_DIR_NAMES):
        files[f"{name}/config" if as_dir else name] = f"[core]\n\tfsmonitor = pwn{i}\n"
        files[f"sub/{name}/hooks/x" if as_dir else f"sub/{name}"] = "pwn\n"
    make_tree(repo_dir / "data", files)
    p = ml(repo_dir, "add", "data")
    assert p.returncode == 0, p.stderr
    skipped = re.findall(r"skipping (\S.*?): ", p.stderr)
    assert len(skipped) == 2 * len(GIT_DIR_NAMES), p.stderr
    listed = json.loads(ml(repo_dir, "show", "--json", "data").stdout)["file_list"]
    assert [f["path"] for f in listed] == ["keep.txt", "sub/keep2.txt"]


# -- gc -n ------------------------------------------------------------------------------


def _packs_line(out: str) -> tuple[int, int]:
    m = re.search(r"packs (\d+) -> (\d+)", out)
    assert m, out
    return int(m[1]), int(m[2])


def test_gc_dry_run_counts_the_packs_it_would_write(repo_dir: Path) -> None:
    """Many small packs of live data (several versions) and dead packs: ``gc -n`` says
    the same ``packs A -> B`` as the real run, and B is what is left."""
    data = repo_dir / "data"
    for v in range(6):
        make_tree(data, {f"v{v}/f{i}.bin": os.urandom(9000) for i in range(8)})
        assert ml(repo_dir, "add", "data").returncode == 0
    git(repo_dir, "commit", "-qm", "data")
    store = RawStore(repo_dir / ".git/ml")
    for d in range(4):  # dead packs: objects nothing names
        b = Builder()
        for i in range(5):
            b.chunk(os.urandom(7000) + bytes([d, i]))
        store.write(b.objects)
    packs = repo_dir / ".git/ml/packs"
    before = len(list(packs.glob("*.idx")))
    dry = ml(repo_dir, "gc", "-n", "--prune=now")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 20 objects" in dry.stdout, dry.stdout
    assert len(list(packs.glob("*.idx"))) == before
    real = ml(repo_dir, "gc", "--prune=now")
    assert real.returncode == 0, real.stderr
    assert _packs_line(dry.stdout) == _packs_line(real.stdout), (dry.stdout, real.stdout)
    a, after = _packs_line(real.stdout)
    assert a == before
    assert after == len(list(packs.glob("*.idx")))
    assert 1 < after < before
    assert ml(repo_dir, "fsck").returncode == 0
    # Nothing more to do: the dry run and the real run agree again.
    dry2, real2 = ml(repo_dir, "gc", "-n", "--prune=now"), ml(repo_dir, "gc", "--prune=now")
    assert _packs_line(dry2.stdout) == _packs_line(real2.stdout)


# -- unit: the cheap test that spares is_git_dir_name ------------------------------------


def test_git_dir_name_prefilter_is_sound() -> None:
    """scan only calls is_git_dir_name for names its cheap test lets through."""
    from mlgit.format.paths import is_git_dir_name
    from mlgit.snapshot.scan import _GIT_FIRST

    names = [n.encode() for n in GIT_DIR_NAMES] + [
        os.fsencode(a + b) for a in ("", ".", "g", "G", "\u200c", "\ufeff", "x\\", "\u202a")
        for b in (".git", "git~1", "GIT~1 ", "it", ".g\u206ait")]
    for name in names:
        if is_git_dir_name(name):
            assert name[0] in _GIT_FIRST or b"\\" in name, name


def test_files_and_bytes_claims_are_checked_in_fsck_per_entry(victim: Path) -> None:
    """The message names the directory and both counts; one problem per lying entry."""
    b = Builder()
    snap = _dir_lies(b, 5, 3 * len(LEAF))
    plant(victim, b, snap)
    problems = json.loads(ml(victim, "fsck", "--json").stdout)["problems"]
    claims = [x for x in problems if "claims" in x["message"] and "'sub'" in x["message"]]
    assert len(claims) == 1, problems
    assert "5 files" in claims[0]["message"]
    assert "3 files" in claims[0]["message"]


def test_chunk_file_body_helper_is_consistent() -> None:
    """hostile_bytes' file entries carry the digest of their content (sanity of the builder)."""
    b = Builder()
    e = b.file(b"x", LEAF)
    assert e == ent(b"x", file_body([(oid(LEAF), len(LEAF))], digest=oid(LEAF)))
