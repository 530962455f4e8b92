"""Hostile remotes and hostile store files: every read bounded, every pack and index checked.

Classes 5, 6 and the fetch side of 8 of issue 8. The attacker controls a remote
store (a bare origin's ``ml/`` reached by path, a plain store directory, a fake SSH
server, an S3 bucket on moto's server) or plants files in the victim's own store;
every hostile byte is written with ``tests/hostile_bytes.py`` (by docs/format.md,
not through git-ml's writer). The victim runs the real entry points: ``git ml
fetch`` / ``ls REMOTE`` / ``pull`` / ``push``, and ``mlgit.checkout`` / ``mlgit.open``
in a child process, each under an ``RLIMIT_AS`` (set in a ``preexec_fn``, with
``MALLOC_ARENA_MAX=2``) and a timeout. Each case checks:

- one-line errors (``git-ml: error: ...``) with the documented exit code, never a
  traceback, never 70 (internal error), never a hang;
- the rest still works: good refs are fetched and listed beside the bad one;
- the victim's own store still passes ``git ml fsck``;
- a sentinel directory outside the repository is untouched.

The address-space limit is calibrated by :func:`test_honest_runs_fit_the_memory_limit`:
honest fetches of the same shapes pass under it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard
from conftest import BIN, git, make_tree
from hostile_bytes import (
    BLOB,
    CHUNK,
    CONFIG,
    PACK_MAGIC,
    RAW,
    SNAP_MAGIC,
    SNAPSHOT,
    TREE,
    ZSTD,
    Builder,
    Obj,
    RawStore,
    ent,
    fifo,
    file_body,
    hexid,
    index_bytes,
    oid,
    pack_bytes,
    pointer_text,
    raw_tree,
)

MiB = 1 << 20
GiB = 1 << 30
LIMIT_AS = 512 * MiB
"""Address space each command may use. An honest run of every shape tested here fits
with room to spare (test_honest_runs_fit_the_memory_limit: about 150 MiB were enough for
a 24 MiB fetch from S3 when this was written); the old code's unbounded reads did not (a
1.5 GiB sparse ref, /dev/zero, an endless index stream, a 60 MiB header of nested
lists, a 300 MiB S3 ref)."""
TIMEOUT = 90
"""Seconds a command may take; the old code hung forever on a FIFO or a silent server."""

# ---------------------------------------------------------------------------------------
# Running commands as the victim


@dataclass
class Run:
    """What a command did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def errors(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def _limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def run(cwd: Path, argv: list[str], timeout: float = TIMEOUT) -> Run:
    """Run ``argv`` under the address-space limit and a timeout (its whole process group
    is killed when the timeout passes, so a hung grandchild cannot hang the test)."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_limits, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(argv)} hung (killed after {timeout} s)\nstderr: {err[-2000:]}")
    return Run(tuple(argv), proc.returncode, out, err)


def gitml(cwd: Path, *args: str, timeout: float = TIMEOUT) -> Run:
    """``git ml ARGS`` through the real git, limited."""
    return run(cwd, ["git", "ml", *args], timeout)


_PY_CALL = """
import hashlib
import sys
import mlgit
from mlgit.errors import MlgitError
what, repo, rev, path = sys.argv[1:5]
try:
    if what == "checkout":
        print(mlgit.checkout(rev, repo=repo))
    else:
        with mlgit.open(rev, path, repo=repo) as f:
            print(hashlib.sha256(f.read()).hexdigest())
except MlgitError as e:
    print(f"git-ml: error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
"""


def py_call(cwd: Path, what: str, rev: str, path: str = "") -> Run:
    """``mlgit.checkout(rev)`` (prints the path) or ``mlgit.open(rev, path).read()`` (prints
    the content's SHA-256) in a limited child."""
    return run(cwd, [sys.executable, "-c", _PY_CALL, what, str(cwd), rev, path])


def assert_refused(r: Run, code: int, *needles: str) -> None:
    """Exit ``code``; every stderr line a one-line git-ml error (or warning); the first
    error names each of ``needles``; no traceback, no internal error."""
    assert r.returncode == code, (r.args, r.returncode, r.stderr[-3000:])
    lines = r.errors()
    assert lines, r.stderr
    for ln in lines:
        assert ln.startswith(("git-ml: error: ", "git-ml: warning: ")), r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert "internal error" not in r.stderr
    first = next(ln for ln in lines if ln.startswith("git-ml: error: "))
    for n in needles:
        assert n in first, (n, first)


def assert_ok(r: Run) -> None:
    assert r.returncode == 0, (r.args, r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------
# The world: an origin the attacker writes to, a victim who cloned it


def _state(path: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            rel = str(p.relative_to(path))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = (st.st_mode, "link:" + os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = (st.st_mode, p.read_bytes())
            else:
                out[rel] = (st.st_mode, "<dir>")
    return out


@dataclass
class World:
    """An attacker's origin (bare repository + raw store) and the victim's clone."""

    tmp: Path
    origin: Path  # the bare repository
    store: RawStore  # origin's ml/ (or whatever store the remote serves)
    victim: Path
    sentinel: Path
    good: bytes  # snapshot id of dataset "good" (pinned by good.mlgit in origin's commit)
    before: dict[str, tuple[int, bytes | str]] = field(default_factory=dict)

    @property
    def ml(self) -> Path:
        return self.store.root

    def add(self, name: str, files: dict[str, bytes], **over: Any) -> tuple[bytes, Builder]:
        """An honest dataset ``name`` in its own pack, with its ref; (snapshot id, builder)."""
        b = Builder()
        sid = b.dataset(name, files, **over)
        self.store.write(b.objects)
        self.store.ref("datasets", name, sid)
        return sid, b

    def pin(self, name: str, sid: bytes) -> None:
        """The attacker commits ``name.mlgit`` pinning ``sid``; the victim merges it with git
        alone (hooks off), so that ``git ml pull`` has something new to fetch."""
        work = self.tmp / "attacker"
        (work / f"{name}.mlgit").write_bytes(pointer_text(name, sid))
        with open(work / ".gitignore", "a") as f:
            f.write(f"/{name}\n")
        git(work, "add", f"{name}.mlgit", ".gitignore")
        git(work, "commit", "-q", "-m", f"pin {name}")
        git(work, "push", "-q", "origin", "HEAD:main")
        git(self.victim, "-c", "core.hooksPath=/nonexistent", "pull", "-q", "--no-rebase")

    def ref_path(self, name: str) -> Path:
        return self.ml / "refs" / "datasets" / name

    def check_victim(self) -> None:
        """The victim's store passes fsck, and the sentinel is untouched."""
        r = gitml(self.victim, "fsck")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert _state(self.sentinel) == self.before, "something was written outside the target"
        assert not os.path.lexists("/pwned")

    def tracking(self) -> dict[str, str]:
        d = self.victim / ".git/ml/refs/remotes/origin/datasets"
        names = sorted(n for n in os.listdir(d) if not n.endswith(".lock")) if d.exists() else []
        return {n: (d / n).read_text().strip() for n in names}

    def local_types(self) -> dict[bytes, int]:
        """Object id to the type the victim's own indexes record."""
        out: dict[bytes, int] = {}
        packs = self.victim / ".git/ml/packs"
        for idx in packs.glob("*.idx"):
            data = idx.read_bytes()
            (count,) = struct.unpack_from("<I", data, 8)
            for i in range(count):
                row = struct.unpack_from("<16sQIIBB", data, 16 + 34 * i)
                out[row[0]] = row[4]
        return out


def _make_world(tmp: Path) -> World:
    """Build the world in ``tmp`` (every URL in it relative, so the folder can be copied)."""
    origin = tmp / "origin.git"
    git(tmp, "init", "-q", "--bare", str(origin))
    store = RawStore(origin / "ml")
    b = Builder()
    good = b.dataset("good", {"a.txt": b"good data\n" * 50, "sub/b.bin": os.urandom(3000)})
    store.write(b.objects)
    store.ref("datasets", "good", good)
    # The attacker's commit pins the good dataset (a teammate's ordinary commit).
    work = tmp / "attacker"
    git(tmp, "clone", "-q", str(origin), str(work))
    git(work, "remote", "set-url", "origin", "../origin.git")
    (work / "good.mlgit").write_bytes(pointer_text("good", good))
    (work / ".gitignore").write_text("/good\n")
    git(work, "add", "good.mlgit", ".gitignore")
    git(work, "commit", "-q", "-m", "pin good")
    git(work, "push", "-q", "origin", "HEAD:main")
    victim = tmp / "victim"
    git(tmp, "clone", "-q", str(origin), str(victim))
    git(victim, "remote", "set-url", "origin", "../origin.git")
    for args in (("init", "--pack-size", "65536", "--chunk-size", "4096"), ("pull",)):
        p = subprocess.run(["git", "ml", *args], cwd=victim, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    # (in a folder of its own, so that its .gitignore never conflicts with the attacker's)
    make_tree(victim / "own" / "mine", {"own.txt": b"the victim's own data\n" * 20})
    p = subprocess.run(["git", "ml", "add", "own/mine"], cwd=victim, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    git(victim, "commit", "-q", "-m", "mine")
    make_tree(tmp / "sentinel", {"victim": b"original\n", "sub/inner": b"inner\n"})
    return _world_in(tmp, good)


def _world_in(tmp: Path, good: bytes) -> World:
    w = World(tmp, tmp / "origin.git", RawStore(tmp / "origin.git" / "ml"), tmp / "victim",
              tmp / "sentinel", good)
    w.before = _state(w.sentinel)
    return w


@pytest.fixture(scope="session")
def _world_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """One world built for the session; each test gets a copy (building one takes seconds).

    Built in the hermetic environment's way (no system config, a fixed identity) by hand,
    since the function-scoped fixture is not available here.
    """
    home = tmp_path_factory.mktemp("world-home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test Author\n\temail = author@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        del os.environ[key]
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                      GIT_CONFIG_NOSYSTEM="1",
                      PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    try:
        tmp = tmp_path_factory.mktemp("world")
        w = _make_world(tmp)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return tmp, w.good


@pytest.fixture
def world(tmp_path: Path, _world_template: tuple[Path, bytes]) -> World:
    template, good = _world_template
    tmp = tmp_path / "w"
    shutil.copytree(template, tmp, symlinks=True)
    return _world_in(tmp, good)


# ---------------------------------------------------------------------------------------
# Hostile file kinds where a store expects a small regular file


def plant(path: Path, kind: str, outside: Path) -> None:
    """Replace ``path`` with a hostile file of ``kind``.

    ``symlink-out`` links to a copy of the file's current (valid) content in
    ``outside``: a reader that follows links would accept it.
    """
    outside.mkdir(parents=True, exist_ok=True)
    valid = path.read_bytes() if path.is_file() else b"0" * 32 + b"\n"
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        fifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse-1.5GiB":
        path.write_bytes(valid)
        os.truncate(path, 3 * GiB // 2)
    elif kind == "symlink-out":
        copy = outside / uuid.uuid4().hex
        copy.write_bytes(valid)
        path.symlink_to(copy)
    elif kind == "directory":
        path.mkdir()
    else:
        raise AssertionError(kind)


FILE_KINDS = ["fifo", "dev-zero", "sparse-1.5GiB", "symlink-out", "directory"]


# ---------------------------------------------------------------------------------------
# Class 5 over a local path: files of the remote store that are not small regular files


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_bad_remote_ref_is_reported_and_the_rest_goes_on(world: World, kind: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    world.add("evil", {"e.txt": b"evil\n"})
    plant(world.ref_path("evil"), kind, world.tmp / "outside")
    # A lazy checkout of another version is not stopped by the bad ref...
    r = py_call(world.victim, "checkout", fresh.hex())
    assert_ok(r)
    assert (Path(r.stdout.strip()) / "f.txt").read_bytes() == b"fresh\n"
    # ... one of the bad ref names it.
    assert_refused(py_call(world.victim, "checkout", "evil"), 7, "datasets/evil")
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, "datasets/evil")
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    r = gitml(world.victim, "ls", "origin")
    assert_refused(r, 7, "datasets/evil")
    names = [ln.split()[1] for ln in r.stdout.splitlines()]
    assert names == ["fresh", "good"]
    # A pull of newly pinned data goes on: the bad ref is only a warning there.
    later, _ = world.add("later", {"l.txt": b"later\n"})
    world.pin("later", later)
    r = gitml(world.victim, "pull")
    assert_ok(r)
    assert (world.victim / "later" / "l.txt").read_bytes() == b"later\n"
    world.check_victim()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_bad_remote_config_is_refused(world: World, kind: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    plant(world.ml / "config", kind, world.tmp / "outside")
    for args in (("fetch", "origin"), ("ls", "origin"), ("push", "origin")):
        assert_refused(gitml(world.victim, *args), 7, "config")
    assert_refused(py_call(world.victim, "checkout", fresh.hex()), 7, "config")
    assert world.tracking() == {"good": world.good.hex()}
    world.check_victim()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_bad_remote_index_is_reported_and_its_pack_left_out(world: World, kind: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    world.add("evil", {"e.txt": b"evil\n"})
    stem = max(world.ml.glob("packs/*.idx"), key=lambda p: p.stat().st_mtime_ns).stem
    plant(world.ml / "packs" / f"{stem}.idx", kind, world.tmp / "outside")
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, f"{stem}.idx")
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    assert_refused(gitml(world.victim, "ls", "origin"), 7, f"{stem}.idx")
    world.check_victim()


@pytest.mark.parametrize("kind", [k for k in FILE_KINDS if k != "sparse-1.5GiB"])
def test_a_bad_remote_pack_is_refused(world: World, kind: str) -> None:
    """(A large pack is fine: packs are read by ranges.)"""
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    evil, _ = world.add("evil", {"e.txt": b"evil\n"})
    stem = max(world.ml.glob("packs/*.idx"), key=lambda p: p.stat().st_mtime_ns).stem
    plant(world.ml / "packs" / f"{stem}.pack", kind, world.tmp / "outside")
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, f"{stem}.pack")
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    assert_refused(py_call(world.victim, "checkout", evil.hex()), 7, f"{stem}.pack")
    world.check_victim()


# ---------------------------------------------------------------------------------------
# Class 6: remote packs and indexes checked as docs/format.md says readers must


def zframe(data: bytes) -> bytes:
    """One zstd frame that declares its content size."""
    return zstandard.ZstdCompressor(write_content_size=True).compress(data)


EVIL_PACKS = {
    # case: what the first error must say
    "offset-overflow": "points past its pack",        # an entry at 2**64-30 (was ValueError)
    "offset-past-max-pack": "points past its pack",   # inside u64, past MAX_PACK_LEN
    "bad-magic": "bad magic",                         # first read starts at the pack's start
    "bad-magic-far": "bad magic",                     # first read starts 2 MiB in
    "misnamed-index": "not named by the hash",
    "trailing-frame": "unused data",                  # a second zstd frame after the object
    "trailing-garbage": "unused data",
}


def plant_evil(store: RawStore, case: str) -> bytes:
    """Dataset ``evil`` (and its ref) in a pack that breaks one rule of the format."""
    data = b"evil payload\n" * 40
    b = Builder()
    if case.startswith("trailing-"):
        tail = zframe(b"more") if case == "trailing-frame" else b"garbage!"
        b.objects.append(Obj(data, CHUNK, ZSTD, stored=zframe(data) + tail))
        tree = b.tree([ent(b"e.txt", file_body([(oid(data), len(data))], digest=oid(data)))])
        sid = b.snapshot("evil", tree, files=1, bytes=len(data))
    else:
        sid = b.dataset("evil", {"e.txt": data})
    objs = list(b.objects)
    if case == "bad-magic-far":
        objs.insert(0, Obj(os.urandom(2 * MiB)))  # nothing evil needs lies near offset 0
    magic = b"NOTAPACK" if case.startswith("bad-magic") else PACK_MAGIC
    pack, rows = pack_bytes(objs, magic=magic)
    lie = {"offset-overflow": 2**64 - 30, "offset-past-max-pack": (1 << 40) - 10}.get(case)
    if lie is not None:
        rows = [(r[0], lie, *r[2:]) if r[0] == oid(data) else r for r in rows]
    index = index_bytes(rows)
    store.write_pack(pack, index, stem="pack-" + "0" * 32 if case == "misnamed-index" else None)
    store.ref("datasets", "evil", sid)
    return sid


@pytest.mark.parametrize("case", sorted(EVIL_PACKS))
def test_remote_packs_and_indexes_are_checked(world: World, case: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    evil = plant_evil(world.store, case)
    assert_refused(py_call(world.victim, "checkout", evil.hex()), 7, EVIL_PACKS[case])
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, EVIL_PACKS[case])
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    assert oid(b"evil payload\n" * 40) not in world.local_types()
    world.check_victim()


# ---------------------------------------------------------------------------------------
# Class 8, fetch side: roles, not the remote's claimed types; lengths before storing


def test_fetched_objects_are_stored_under_the_type_of_their_role(world: World) -> None:
    """The remote's pack and index agree on lies: the snapshot is a "tree", the tree a
    "chunk", the chunk a "snapshot", the config blob a "tree". The victim fetches by
    role and records each object as what it was fetched as."""
    data, blob = b"role data\n" * 30, b'{"lr": 0.1}\n'
    cid, bid = oid(data), oid(blob)
    tree_bytes = raw_tree(ent(b"r.txt", file_body([(cid, len(data))], digest=cid)))
    b = Builder()
    # A checkpoint: its meta.config ids are the references to config blobs.
    sid = b.snapshot("liar", oid(tree_bytes), kind="checkpoint", files=1, bytes=len(data),
                     meta={"config": [{"name": "c.json", "id": bid.hex(),
                                       "size": len(blob)}]})
    snap = b.objects[0].data
    store_objs = [Obj(snap, TREE, ZSTD), Obj(tree_bytes, CHUNK, ZSTD), Obj(data, SNAPSHOT, RAW),
                  Obj(blob, TREE, RAW)]
    pack, rows = pack_bytes(store_objs)
    world.store.write_pack(pack, index_bytes(rows))
    world.store.ref("datasets", "liar", sid)
    assert_ok(gitml(world.victim, "fetch", "origin"))
    types = world.local_types()
    assert (types[sid], types[oid(tree_bytes)], types[cid], types[bid]) == (
        SNAPSHOT, TREE, CHUNK, BLOB)
    assert world.tracking()["liar"] == sid.hex()
    r = py_call(world.victim, "checkout", sid.hex())
    assert_ok(r)
    assert (Path(r.stdout.strip()) / "r.txt").read_bytes() == data
    world.check_victim()


@pytest.mark.parametrize("target", ["tree", "chunk", "garbage", "tree-is-a-chunk", "absent"])
def test_a_ref_to_what_is_not_a_snapshot_is_reported_and_the_rest_fetched(
        world: World, target: str) -> None:
    fresh, fb = world.add("fresh", {"f.txt": b"fresh\n"})
    b = Builder()
    if target == "tree":
        named = next(oid(o.data) for o in fb.objects if o.type == TREE)
    elif target == "chunk":
        named = oid(b"fresh\n")
    elif target == "garbage":
        named = b.add(SNAP_MAGIC + b'{"kind": "dataset", oops', SNAPSHOT)
    elif target == "tree-is-a-chunk":
        chunk = b.chunk(b"not a tree at all\n")[0]
        named = b.snapshot("evil", chunk, files=1, bytes=18)
    else:
        named = oid(b"nothing has this id")
    if b.objects:
        world.store.write(b.objects)
    world.store.ref("datasets", "evil", named)
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, "lacks" if target == "absent" else "does not decode")
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    r = gitml(world.victim, "ls", "origin")
    names = [ln.split()[1] for ln in r.stdout.splitlines()]
    assert names == ["evil", "fresh", "good"]  # listed (without details when unreadable)
    if target in ("absent", "tree-is-a-chunk"):
        assert_ok(r)  # ls reads the snapshot only (and lists an absent one without details)
    else:
        assert_refused(r, 7, named.hex())
    assert_refused(py_call(world.victim, "checkout", "evil"), 7, named.hex())
    world.check_victim()


def _lying_lengths(world: World) -> tuple[bytes, bytes]:
    """Dataset ``lying``: its tree says its one chunk has 2 bytes fewer than it has."""
    data = b"0123456789" * 30
    b = Builder()
    c = b.chunk(data)[0]
    tree = b.tree([ent(b"f.bin", file_body([(c, len(data) - 2)], digest=oid(data)))])
    sid = b.snapshot("lying", tree, files=1, bytes=len(data) - 2)
    world.store.write(b.objects)
    world.store.ref("datasets", "lying", sid)
    return sid, c


def test_lazy_open_checks_chunk_lengths_before_storing(world: World) -> None:
    sid, chunk = _lying_lengths(world)
    r = py_call(world.victim, "open", sid.hex(), "f.bin")
    assert_refused(r, 7, chunk.hex(), "298")
    assert chunk not in world.local_types(), "a chunk of the wrong length was stored"
    world.check_victim()


def test_fetch_checks_chunk_lengths_and_fetches_the_rest(world: World) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    sid, chunk = _lying_lengths(world)
    assert_refused(gitml(world.victim, "fetch", "origin"), 7, chunk.hex())
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    assert chunk not in world.local_types()
    assert sid not in world.local_types()
    world.check_victim()


# ---------------------------------------------------------------------------------------
# Class 5 in the victim's own store


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_bad_ref_in_the_own_store_is_reported_and_the_rest_goes_on(
        world: World, kind: str) -> None:
    ml = world.victim / ".git/ml"
    plant(ml / "refs/datasets/evil", kind, world.tmp / "outside")
    r = gitml(world.victim, "ls")
    assert_refused(r, 7, "datasets/evil")
    # The good local refs (pull created "good"), then the remote-tracking ref.
    assert [ln.split()[1] for ln in r.stdout.splitlines()] == ["good", "mine", "origin/good"]
    r = gitml(world.victim, "push", "origin")
    assert_refused(r, 7, "datasets/evil")
    assert (world.ml / "refs/datasets/mine").exists()  # the rest was pushed
    r = gitml(world.victim, "fsck")
    assert r.returncode in (1, 7), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    (ml / "refs/datasets/evil").unlink() if kind != "directory" else (
        ml / "refs/datasets/evil").rmdir()
    world.check_victim()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_a_bad_remote_tracking_ref_is_reported_and_the_rest_updated(
        world: World, kind: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    tracking = world.victim / ".git/ml/refs/remotes/origin/datasets/good"
    plant(tracking, kind, world.tmp / "outside")
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, "datasets/good")
    assert (tracking.parent / "fresh").read_text().strip() == fresh.hex()
    tracking.rmdir() if kind == "directory" else tracking.unlink()
    world.check_victim()


def _own_pack(world: World) -> Path:
    """The victim's pack holding its own dataset (the newest one)."""
    return max((world.victim / ".git/ml/packs").glob("*.pack"), key=lambda p: p.stat().st_mtime_ns)


@pytest.mark.parametrize(("what", "kind"), [
    *[("config", k) for k in FILE_KINDS],
    *[("index", k) for k in FILE_KINDS],
    *[("pack", k) for k in FILE_KINDS if k != "sparse-1.5GiB"],
])
def test_a_bad_file_in_the_own_store_is_one_error_and_fsck_reports_it(
        world: World, what: str, kind: str) -> None:
    ml = world.victim / ".git/ml"
    target = {"config": ml / "config", "index": _own_pack(world).with_suffix(".idx"),
              "pack": _own_pack(world)}[what]
    saved = world.tmp / "saved"
    saved.write_bytes(target.read_bytes())
    plant(target, kind, world.tmp / "outside")
    needle = "config" if what == "config" else target.name
    assert_refused(gitml(world.victim, "ls"), 7, needle)
    assert_refused(py_call(world.victim, "checkout", "mine"), 7, needle)
    r = gitml(world.victim, "fsck")
    if what == "config":
        assert_refused(r, 7, needle)
    else:
        assert r.returncode == 1, (
            r.stdout, r.stderr)
        assert "bad-index" in r.stdout, (
            r.stdout, r.stderr)
        assert target.name in r.stdout, (
            r.stdout, r.stderr)
    if kind == "directory":
        target.rmdir()
    else:
        target.unlink()
    target.write_bytes(saved.read_bytes())
    world.check_victim()


# ---------------------------------------------------------------------------------------
# A fake SSH server: installed as the ssh client, it ignores its ssh arguments and speaks
# serve-store's framing (docs in mlgit/sync/serve.py), honestly from a store directory
# except for the answers its mode makes hostile.

FAKE_SSH = r"""
import json, os, struct, sys, time

mode, store = sys.argv[1], sys.argv[2]  # then ssh's own arguments, ignored
inp, out = sys.stdin.buffer, sys.stdout.buffer
PIECE = 1 << 20


def read_exact(n):
    buf = b""
    while len(buf) < n:
        got = inp.read(n - len(buf))
        if not got:
            sys.exit(0)
        buf += got
    return buf


def recv():
    head = read_exact(4)
    h = json.loads(read_exact(struct.unpack(">I", head)[0]))
    return h, (read_exact(h["size"]) if "size" in h else None)


def raw(header_bytes, payload=b""):
    out.write(struct.pack(">I", len(header_bytes)) + header_bytes + payload)
    out.flush()


def send(h, payload=None):
    if payload is not None:
        h = dict(h, size=len(payload))
    raw(json.dumps(h).encode(), payload or b"")


def stream(data):
    pieces = [data[i:i + PIECE] for i in range(0, max(len(data), 1), PIECE)]
    for i, p in enumerate(pieces):
        send({"ok": True, "more": i < len(pieces) - 1}, p)


def path(*parts):
    return os.path.join(store, *parts)


def hang(h=None):
    while True:
        time.sleep(60)


def honest(h):
    op = h["op"]
    if op == "hello":
        send({"ok": True, "protocol": 1, "format": 1, "store_format": 1})
    elif op == "read_config":
        send({"ok": True, "exists": True}, open(path("config"), "rb").read())
    elif op == "list_packs":
        names = os.listdir(path("packs"))
        send({"ok": True, "packs": sorted(n[:-4] for n in names
                                          if n.endswith(".idx") and n[:-4] + ".pack" in names)})
    elif op == "read_index":
        stream(open(path("packs", h["stem"] + ".idx"), "rb").read())
    elif op == "read_pack":
        with open(path("packs", h["stem"] + ".pack"), "rb") as f:
            f.seek(h["offset"])
            stream(f.read(h["length"]))
    elif op == "list_refs":
        send({"ok": True, "refs": refs()})
    else:
        send({"ok": False, "error": "UsageError", "message": "no such request here"})


def refs():
    out = {}
    for kind in ("datasets", "checkpoints"):
        d = path("refs", kind)
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            out[kind + "/" + n] = open(os.path.join(d, n)).read().strip()
    return out


def endless(h):
    piece = b"\0" * PIECE
    while True:
        send({"ok": True, "more": True}, piece)


def header_60mib(h):
    n = 60 << 20
    body = b'{"ok":true,"refs":{},"x":[' + b"[]," * ((n - 40) // 3) + b'[]]}'
    raw(body)


def config_padded(h):
    body = open(path("config"), "rb").read().rstrip() + b" " * (60 << 20)  # still valid JSON
    send({"ok": True, "exists": True}, body)


def config_1gib(h):
    raw(json.dumps({"ok": True, "exists": True, "size": 1 << 30}).encode())
    while True:
        out.write(b" " * PIECE)


def short_payload(h):
    raw(json.dumps({"ok": True, "more": False, "size": PIECE}).encode(), b"0123456789")
    hang()


def bad_ref_list(h):
    listed = refs()
    listed["datasets/garbage"] = "not an id at all"
    listed["datasets/../../escape"] = "0" * 32
    send({"ok": True, "refs": listed,
          "bad": {"datasets/fifo": "/srv/x: ref datasets/fifo is not a regular file"}})


def more_than_asked(h):
    with open(path("packs", h["stem"] + ".pack"), "rb") as f:
        f.seek(h["offset"])
        data = f.read(h["length"])
    stream(data + b"x" * 100)


HOSTILE = {
    "endless-index": {"read_index": endless},
    "header-60MiB": {"list_refs": header_60mib},
    "header-4GiB": {"list_refs": lambda h: (out.write(struct.pack(">I", 0xFFFFFFF0)),
                                            out.flush(), hang())},
    "config-60MiB": {"read_config": config_padded},
    "config-1GiB": {"read_config": config_1gib},
    "short-payload": {"read_index": short_payload},
    "silent": {op: hang for op in ("read_config", "list_packs", "read_index", "read_pack",
                                   "list_refs")},
    "silent-hello": {"hello": hang},
    "bad-ref-list": {"list_refs": bad_ref_list},
    "more-than-asked": {"read_pack": more_than_asked},
}
while True:
    h, _ = recv()
    HOSTILE.get(mode, {}).get(h["op"], honest)(h)
"""


def use_fake_ssh(world: World, mode: str, timeout: float | None = 3) -> None:
    """Point the victim's origin at the fake SSH server in ``mode``, serving ``world.ml``."""
    script = world.tmp / "fake_ssh.py"
    script.write_text(FAKE_SSH)
    git(world.victim, "config", "ml.origin.url", "fakehost:/srv/store")
    git(world.victim, "config", "core.sshCommand", f"{sys.executable} {script} {mode} {world.ml}")
    if timeout is not None:
        git(world.victim, "config", "ml.timeout", str(timeout))


SSH_CASES = {
    # mode: (exit code, what the first error says): 7 a bound (FormatError), 11 a server
    # gone silent (RemoteUnreachableError), 13 not the protocol (RemoteProtocolError)
    "endless-index": (7, "an index may have"),
    "header-60MiB": (13, "a header of"),
    "header-4GiB": (13, "a header of 4294967280 bytes"),
    "config-60MiB": (13, "bad payload size"),
    "config-1GiB": (13, "bad payload size"),
    "short-payload": (11, "no answer for 3 s"),
    "silent": (11, "no answer for 3 s"),
    "silent-hello": (11, "no answer for 3 s"),
    "bad-ref-list": (7, "datasets/"),
    "more-than-asked": (13, "more bytes than asked for"),
}


@pytest.mark.parametrize("mode", sorted(SSH_CASES))
def test_a_hostile_ssh_server(world: World, mode: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    use_fake_ssh(world, mode)
    code, needle = SSH_CASES[mode]
    assert_refused(gitml(world.victim, "fetch", "origin"), code, needle)
    if mode == "bad-ref-list":  # the good refs were fetched beside the bad ones
        assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    assert_refused(py_call(world.victim, "checkout", fresh.hex()) if mode != "bad-ref-list"
                   else py_call(world.victim, "checkout", "garbage"), code, needle)
    world.check_victim()


@pytest.mark.parametrize("case", ["offset-overflow", "bad-magic-far", "misnamed-index",
                                  "trailing-frame"])
def test_remote_packs_and_indexes_are_checked_over_ssh(world: World, case: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    plant_evil(world.store, case)
    use_fake_ssh(world, "honest")
    assert_refused(gitml(world.victim, "fetch", "origin"), 7, EVIL_PACKS[case])
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    world.check_victim()


def test_ssh_timeout_setting(world: World) -> None:
    from mlgit.sync.ssh import DEFAULT_TIMEOUT

    assert DEFAULT_TIMEOUT == 300  # docs/remotes.md
    use_fake_ssh(world, "honest", timeout=None)
    git(world.victim, "config", "ml.timeout", "soon")
    assert_refused(gitml(world.victim, "fetch", "origin"), 2, "ml.timeout")
    git(world.victim, "config", "ml.timeout", "0")
    assert_refused(gitml(world.victim, "fetch", "origin"), 2, "ml.timeout")
    git(world.victim, "config", "ml.origin.timeout", "2.5")  # the remote's own setting wins
    use_fake_ssh(world, "silent", timeout=None)
    assert_refused(gitml(world.victim, "ls", "origin"), 11, "no answer for 2.5 s")


# ---------------------------------------------------------------------------------------
# An S3 bucket on moto's server


class _Padded(io.RawIOBase):
    """``head`` and then spaces up to ``size`` bytes, without holding them in memory."""

    def __init__(self, head: bytes, size: int) -> None:
        self.head, self.size, self.pos = head, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.size - self.pos)
        view = memoryview(buf)
        for i in range(n):  # only the head is not a space; do it in bulk otherwise
            if self.pos + i >= len(self.head):
                view[i:n] = b" " * (n - i)
                break
            view[i] = self.head[self.pos + i]
        self.pos += n
        return n


@dataclass
class S3Remote:
    client: Any
    bucket: str
    prefix: str

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}", Body=data)

    def put_stream(self, name: str, stream: io.RawIOBase) -> None:
        self.client.upload_fileobj(io.BufferedReader(stream, 8 * MiB), self.bucket,
                                   f"{self.prefix}/{name}")

    def mirror(self, root: Path) -> None:
        """Upload every file of the store directory ``root`` (a store's layout)."""
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and rel.split("/")[0] in ("config", "packs", "refs"):
                self.put(rel, p.read_bytes())


@pytest.fixture
def s3(world: World, s3_env: Any) -> S3Remote:
    """The victim's origin moved to ``s3://bucket/<prefix>`` (a copy of the origin's store)."""
    remote = S3Remote(s3_env.client, s3_env.bucket, f"store-{uuid.uuid4().hex[:12]}")
    git(world.victim, "config", "ml.origin.url", f"s3://{remote.bucket}/{remote.prefix}")
    git(world.victim, "config", "ml.origin.endpoint", s3_env.endpoint)
    remote.mirror(world.ml)
    return remote


def test_a_huge_s3_ref_is_refused_before_it_is_read(world: World, s3: S3Remote) -> None:
    """A 300 MiB ref object, valid after stripping (old code read it whole, twice over)."""
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    s3.mirror(world.ml)
    s3.put_stream("refs/datasets/evil", _Padded(fresh.hex().encode() + b"\n", 300 * MiB))
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, "refs/datasets/evil", "314572800 bytes")
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    r = gitml(world.victim, "ls", "origin")
    assert_refused(r, 7, "refs/datasets/evil")
    assert [ln.split()[1] for ln in r.stdout.splitlines()] == ["fresh", "good"]
    assert_refused(py_call(world.victim, "checkout", "evil"), 7, "refs/datasets/evil")
    world.check_victim()


@pytest.mark.parametrize("what", ["config", "index"])
def test_a_huge_s3_config_or_index_is_refused(world: World, s3: S3Remote, what: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    s3.mirror(world.ml)
    if what == "config":
        s3.put_stream("config", _Padded(json.dumps(CONFIG).encode(), 40 * MiB))
        needle = "config is 41943040 bytes"
    else:
        stem = "pack-" + "e" * 32
        s3.put(f"packs/{stem}.pack", PACK_MAGIC)
        s3.put_stream(f"packs/{stem}.idx", _Padded(b"MLGIDX\0\1", 40 * MiB))
        needle = f"{stem}.idx is 41943040 bytes"
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7, needle)
    if what == "index":
        assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    world.check_victim()


@pytest.mark.parametrize("case", ["offset-overflow", "bad-magic", "misnamed-index",
                                  "trailing-garbage"])
def test_remote_packs_and_indexes_are_checked_on_s3(world: World, s3: S3Remote,
                                                    case: str) -> None:
    fresh, _ = world.add("fresh", {"f.txt": b"fresh\n"})
    evil = plant_evil(world.store, case)
    s3.mirror(world.ml)
    assert_refused(gitml(world.victim, "fetch", "origin"), 7, EVIL_PACKS[case])
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    assert_refused(py_call(world.victim, "checkout", evil.hex()), 7, EVIL_PACKS[case])
    world.check_victim()


# ---------------------------------------------------------------------------------------
# Calibration: the same shapes, honest, fit under the limit


@pytest.mark.parametrize("transport", ["local", "ssh", "s3"])
def test_honest_runs_fit_the_memory_limit(world: World, transport: str,
                                          request: pytest.FixtureRequest) -> None:
    files = {f"part{i}.bin": os.urandom(4 * MiB) for i in range(6)}
    fresh, _ = world.add("fresh", files)
    if transport == "ssh":
        use_fake_ssh(world, "honest")
    elif transport == "s3":
        request.getfixturevalue("s3")
    r = py_call(world.victim, "open", fresh.hex(), "part3.bin")
    assert_ok(r)
    assert r.stdout.strip() == hashlib.sha256(files["part3.bin"]).hexdigest()
    r = py_call(world.victim, "checkout", fresh.hex())
    assert_ok(r)
    assert (Path(r.stdout.strip()) / "part5.bin").read_bytes() == files["part5.bin"]
    for args in (("fetch", "origin"), ("ls", "origin")):
        assert_ok(gitml(world.victim, *args))
    assert world.tracking() == {"fresh": fresh.hex(), "good": world.good.hex()}
    later, _ = world.add("later", {"l.bin": os.urandom(8 * MiB)})
    if transport == "s3":
        request.getfixturevalue("s3").mirror(world.ml)
    world.pin("later", later)
    assert_ok(gitml(world.victim, "pull"))
    assert (world.victim / "later" / "l.bin").stat().st_size == 8 * MiB
    world.check_victim()


# ---------------------------------------------------------------------------------------
# The cached copies of remote indexes, and a plain store directory as the remote


def _cache_dir(world: World, url: str) -> Path:
    """docs/format.md: ``cache/remotes/<u>``, <u> the hex XXH3-128 of the URL as configured."""
    return world.victim / ".git/ml/cache/remotes" / hexid(os.fsencode(url))


@pytest.mark.parametrize("kind", [*FILE_KINDS, "misnamed", "garbage"])
def test_a_bad_cached_index_is_read_again_from_the_remote(world: World, kind: str) -> None:
    cache = _cache_dir(world, "../origin.git")
    (good_idx,) = [p for p in cache.glob("pack-*.idx")]  # the honest pull cached it
    if kind == "misnamed":  # another pack's index under this pack's name
        world.add("fresh", {"f.txt": b"fresh\n"})
        newest = max(world.ml.glob("packs/*.idx"), key=lambda p: p.stat().st_mtime_ns)
        good_idx.write_bytes(newest.read_bytes())
    elif kind == "garbage":
        good_idx.write_bytes(b"MLGIDX\0\1" + os.urandom(100))
    else:
        plant(good_idx, kind, world.tmp / "outside")
    r = gitml(world.victim, "fsck")  # the promised objects: the bad copy only means less known
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert_ok(gitml(world.victim, "ls", "origin"))
    assert_ok(gitml(world.victim, "fetch", "origin"))
    if kind != "directory":  # (a directory cannot be replaced by a file: left as it is)
        assert good_idx.is_file()
        assert not good_idx.is_symlink()
        assert hexid(good_idx.read_bytes()) == good_idx.stem[len("pack-"):]
    world.check_victim()


def test_a_plain_store_directory_as_the_remote(world: World) -> None:
    """A remote that is a store directory itself (``.../ml`` with a config), not a repository."""
    plain = RawStore(world.tmp / "plain" / "ml")
    b = Builder()
    sid = b.dataset("plain", {"p.txt": b"plain\n"})
    plain.write(b.objects)
    plain.ref("datasets", "plain", sid)
    plant_evil(plain, "bad-magic")
    plant(plain.root / "refs/datasets/evil2", "fifo", world.tmp / "outside")
    plant(plain.root / "refs/datasets/evil3", "dev-zero", world.tmp / "outside")
    git(world.victim, "config", "ml.origin.url", str(plain.root))
    r = gitml(world.victim, "fetch", "origin")
    assert_refused(r, 7)
    assert "bad magic" in r.stderr
    assert "datasets/evil2" in r.stderr
    assert "datasets/evil3" in r.stderr
    assert world.tracking()["plain"] == sid.hex()
    assert "evil" not in world.tracking()
    world.check_victim()


# ---------------------------------------------------------------------------------------
# The bounds themselves, in process


def test_decoders_refuse_an_index_past_its_entry_limit() -> None:
    from mlgit.errors import FormatError
    from mlgit.format.ids import RawObjectID
    from mlgit.format.limits import MAX_INDEX_ENTRIES
    from mlgit.format.pack import IndexEntry, decode_index, encode_index

    head = b"MLGIDX\0\1" + struct.pack("<II", MAX_INDEX_ENTRIES + 1, 0)
    with pytest.raises(FormatError, match="more than the 1048576 allowed"):
        decode_index(head + oid(head))  # refused on the count, before any length check
    entries = [IndexEntry(RawObjectID(i.to_bytes(16, "big")), 8, 1, 1, 1, 0)
               for i in range(MAX_INDEX_ENTRIES + 1)]
    with pytest.raises(FormatError, match="at most 1048576 entries"):
        encode_index(entries)


def test_the_pack_writer_closes_a_pack_at_the_entry_limit_for_a_store_and_for_a_push(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgit.format.ids import raw_object_id
    from mlgit.store import packs as packs_mod

    monkeypatch.setattr(packs_mod, "MAX_INDEX_ENTRIES", 3)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "packs").mkdir()
    committed: list[Path] = []
    w = packs_mod.PackWriter(tmp_path / "tmp", 1 << 30, packs_mod.commit_into(
        tmp_path / "packs", lambda _pack, idx: committed.append(idx)))
    for i in range(7):
        data = b"object %d" % i
        w.add(raw_object_id(data), CHUNK, RAW, len(data), data)
    w.commit()
    counts = [struct.unpack_from("<I", p.read_bytes(), 8)[0] for p in committed]
    assert counts == [3, 3, 1]
    # A push's packs (published by uploading, not into this store) are cut alike,
    # and their temporary files are gone afterwards.
    emitted: list[int] = []
    b = packs_mod.PackWriter(tmp_path / "tmp", 1 << 30,
                             lambda built: emitted.append(len(built.entries)), dedup=False)
    for i in range(7):
        data = b"object %d" % i
        b.add(raw_object_id(data), CHUNK, RAW, len(data), data)
    b.commit()
    assert emitted == [3, 3, 1]
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("tail", [b"", b"x", b"\0" * 4])
def test_a_zstd_object_is_exactly_one_frame(tail: bytes) -> None:
    from mlgit.errors import FormatError
    from mlgit.format.compression import CODEC_ZSTD, decompress

    data = b"one frame\n" * 10
    assert decompress(CODEC_ZSTD, zframe(data), len(data)) == data
    for extra in (zframe(b"second"), tail or b"garbage", zframe(b"") ):
        with pytest.raises(FormatError, match="unused data"):
            decompress(CODEC_ZSTD, zframe(data) + extra, len(data))


def test_serve_store_bounds_what_a_client_streams(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The server side: an index stream past MAX_INDEX_LEN ends the session (nothing kept)."""
    from mlgit.sync import protocol
    from mlgit.sync import serve as serve_mod

    monkeypatch.setattr(serve_mod, "MAX_INDEX_LEN", 3 * protocol.PIECE)
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    frames = io.BytesIO()
    protocol.write_frame(frames, {"op": "hello", "protocol": 1})
    protocol.write_frame(frames, {"op": "init"}, json.dumps(CONFIG).encode())
    stem = "pack-" + "1" * 32
    protocol.write_frame(frames, {"op": "put_pack", "stem": stem})
    protocol.write_frame(frames, {"op": "data", "more": False}, PACK_MAGIC)
    for _ in range(5):
        protocol.write_frame(frames, {"op": "data", "more": True}, b"i" * protocol.PIECE)
    out = io.BytesIO()
    assert serve_mod.serve(repo, io.BytesIO(frames.getvalue()), out) == 1
    answers = []
    replies = io.BytesIO(out.getvalue())
    while (frame := protocol.read_frame(replies)) is not None:
        answers.append(frame[0])
    assert answers[-1]["ok"] is False
    assert "longer than the" in answers[-1]["message"]
    store = repo / ".git/ml"
    assert os.listdir(store / "packs") == []
    assert os.listdir(store / "tmp") == []
