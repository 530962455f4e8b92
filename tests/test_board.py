"""``git ml board``: every teammate's runs in the real TensorBoard (issue 11, part 1).

As a team would: Alice and Bob each train a tiny Keras model with the
``CheckpointCallback`` on the CPU and push with plain ``git push``; Carol clones,
pulls (the event files stay on the server) and starts ``git ml board`` on
127.0.0.1. The test reads TensorBoard's own HTTP API (runs, the scalars plugin,
the HParams and graphs plugins) and has a headless Chromium (Debian's package)
render the page; then a team machine runs its own ``tensorboard`` over a logdir
that ``git ml board --logdir-only`` keeps up to date, and sees a new epoch
without a restart. Hostile notes and payloads are skipped with warnings while the
board still starts. Every server a test starts is stopped in a ``finally``, its
whole process group (TensorBoard's data server included) gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import BIN, git, make_tree, run_gitml

from mlgit import errors
from mlgit.api.repo import Repo
from mlgit.format.ids import ObjectID, hex_to_raw

pytest.importorskip("tensorboard")

T = TypeVar("T")
WAIT = 180.0  # at most, for TensorBoard to load what a test waits for (a busy machine)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _until(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """``probe()`` once it is truthy; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen in {timeout:.0f} s (last: {last!r})")


@dataclass
class Server:
    """A running board (or TensorBoard) and its URL."""

    proc: subprocess.Popen[str]
    url: str

    def get(self, path: str, **query: str) -> Any:
        q = f"?{urllib.parse.urlencode(query)}" if query else ""
        with urllib.request.urlopen(self.url.rstrip("/") + path + q, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url.rstrip("/") + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    """Signal the server's whole process group; wait until every process of it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)

    def gone() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        _until("the server's process group ending", gone, 60)
    except AssertionError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


@contextlib.contextmanager
def serving(cmd: list[str], cwd: Path, pattern: str = r"TensorBoard at (http://\S+)",
            stream: str = "stdout", env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``cmd`` in a process group of its own; yield it once it printed its URL."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    watchdog = threading.Timer(WAIT, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        out = proc.stdout if stream == "stdout" else proc.stderr
        assert out is not None
        seen = []
        for line in out:
            seen.append(line)
            m = re.search(pattern, line)
            if m:
                break
        else:
            rest = proc.stderr.read() if proc.stderr and stream == "stdout" else ""
            raise AssertionError(f"{cmd} printed no URL:\n{''.join(seen)}{rest}")
        watchdog.cancel()
        yield Server(proc, m.group(1))
    finally:
        watchdog.cancel()
        _stop(proc)


def _board(root: Path, *args: str, direct: bool = False) -> contextlib.AbstractContextManager[
        Server]:
    """``git ml board --port 0 ARGS`` (or the ``git-ml`` executable itself, ``direct``)."""
    cmd = [str(BIN / "git-ml")] if direct else ["git", "ml"]
    return serving([*cmd, "board", "--port", "0", *args], root)


def _session_groups(board: Server) -> dict[str, Any]:
    body = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS",
                                                      "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [], "startIndex": 0, "sliceSize": 100}
    return {g["name"]: g for g in board.post("/data/plugin/hparams/session_groups",
                                              body).get("sessionGroups", [])}


def _chromium_dom(url: str, tmp: Path) -> str:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    p = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        "--virtual-time-budget=30000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


# -- a team: two people train, a third looks ------------------------------------------------


def _person(tmp: Path, origin: Path, name: str) -> Path:
    root = tmp / name.lower()
    git(tmp, "clone", "-q", str(origin), str(root))
    git(root, "config", "user.name", name)
    git(root, "config", "user.email", f"{name.lower()}@example.com")
    return root


def _data() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(3)
    x = rng.random((96, 4), dtype=np.float32)
    return x, (x.sum(axis=1) > 2.0).astype("float32")


@dataclass
class Trained:
    model: Any
    callback: Any
    history: dict[str, list[float]]


def _train(tf: Any, root: Path, run: str, config: dict[str, Any], units: int) -> Trained:
    import mlgit.tf as mltf

    keras = tf.keras
    keras.utils.set_random_seed(units)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(config["lr"]), loss="binary_crossentropy",
                  metrics=["accuracy"])
    cb = mltf.CheckpointCallback(run, repo=root, config=config, datasets=[])
    x, y = _data()
    hist = model.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0,
                     callbacks=[cb])
    return Trained(model, cb, {k: [float(v) for v in vs] for k, vs in hist.history.items()})


def _payload_here(root: Path, oid: str) -> bool:
    with Repo(root) as r:
        return r.store.objects.has_committed(hex_to_raw(ObjectID(oid)))


def _tfevents_log(root: Path) -> str:
    text = git(root, "notes", "--ref", "ml", "show", "HEAD").stdout
    logs = [json.loads(line) for line in text.splitlines() if '"tfevents"' in line]
    return str(logs[-1]["object"])


def _series(board: Server, run: str, tag: str) -> list[tuple[int, float]]:
    try:
        points = board.get("/data/plugin/scalars/scalars", run=run, tag=tag)
    except urllib.error.HTTPError:
        return []
    return [(int(step), float(value)) for _, step, value in points]


def test_two_people_train_a_third_sees_both_in_tensorboard(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    for who in ("AUTHOR", "COMMITTER"):  # each clone's own user.name, as on two machines
        monkeypatch.delenv(f"GIT_{who}_NAME")
        monkeypatch.delenv(f"GIT_{who}_EMAIL")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))

    alice = _person(tmp_path, origin, "Alice")
    run_gitml(alice, "init")
    make_tree(alice, {"train.py": "# alice trains\n"})
    git(alice, "add", "train.py")
    git(alice, "commit", "-qm", "alice's training code")
    a = _train(tf, alice, "resnet-a", {"lr": 0.01, "units": 8}, 8)
    git(alice, "push", "-q", "-u", "origin", "main")

    bob = _person(tmp_path, origin, "Bob")
    run_gitml(bob, "pull")
    (bob / "train.py").write_text("# bob trains, wider steps\n")
    git(bob, "commit", "-qam", "bob's change")
    b = _train(tf, bob, "resnet-b", {"lr": 0.1, "units": 4}, 4)
    git(bob, "push", "-q")

    carol = _person(tmp_path, origin, "Carol")
    run_gitml(carol, "pull")
    alice_log = _tfevents_log(alice)
    assert not _payload_here(carol, alice_log)  # pull leaves payloads on the server

    # -- `git ml board`: TensorBoard's own API shows both people's runs.
    with _board(carol) as board:
        people = ("alice/resnet-a", "bob/resnet-b")
        runs = {f"{run}{sub}" for run in people
                for sub in ("", "/train", "/validation", "/checkpoints")}
        _until("both people's runs", lambda: runs <= set(board.get("/data/runs")))
        tags = board.get("/data/plugin/scalars/tags")
        for run in people:
            assert {"epoch_loss", "epoch_accuracy"} <= set(tags[f"{run}/train"])
            assert {"epoch_loss", "epoch_accuracy"} <= set(tags[f"{run}/validation"])
            assert {"loss", "val_loss", "accuracy"} <= set(tags[f"{run}/checkpoints"])
        for run, t in zip(people, (a, b), strict=True):
            got = _series(board, f"{run}/train", "epoch_loss")
            assert [s for s, _ in got] == [0, 1]
            assert [v for _, v in got] == pytest.approx(t.history["loss"], rel=1e-5)
            val = _series(board, f"{run}/validation", "epoch_loss")
            assert [v for _, v in val] == pytest.approx(t.history["val_loss"], rel=1e-5)
            ckpts = _series(board, f"{run}/checkpoints", "loss")
            assert [s for s, _ in ckpts] == [1, 2]  # the checkpoints' steps: epochs done
            assert [v for _, v in ckpts] == pytest.approx(t.history["loss"], rel=1e-5)
        # HParams: one session per person's run, their configs side by side.
        experiment = board.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        assert {"lr", "units"} <= {h["name"] for h in experiment["hparamInfos"]}
        metrics = {(m["name"].get("group", ""), m["name"]["tag"])
                   for m in experiment["metricInfos"]}
        assert {("validation", "epoch_loss"), ("checkpoints", "val_loss")} <= metrics
        groups = _session_groups(board)
        assert set(groups) == set(people)
        assert groups["alice/resnet-a"]["hparams"] == {"lr": 0.01, "units": 8.0}
        assert groups["bob/resnet-b"]["hparams"] == {"lr": 0.1, "units": 4.0}
        # Graphs: the conceptual graph (the model's JSON) and the traced op graph.
        graphs = board.get("/data/plugin/graphs/info")["alice/resnet-a/train"]
        assert graphs["run_graph"] is True
        assert graphs["tags"]["keras"]["conceptual_graph"] is True
        # A browser renders TensorBoard's page: both people's runs and their scalars.
        dom = _chromium_dom(board.url + "#timeseries", tmp_path)
        assert "<title>git-ml board</title>" in dom  # set by TensorBoard's script
        for run in people:
            assert f"{run}/train" in dom
            assert f"{run}/validation" in dom
        assert "epoch_loss" in dom
    assert _payload_here(carol, alice_log)  # fetched lazily for the board

    # -- Ctrl-C: git-ml stops TensorBoard and exits 0.
    with _board(carol, direct=True) as board:
        board.get("/data/runs")
        os.killpg(board.proc.pid, signal.SIGINT)
        assert board.proc.wait(60) == 0
        assert "board stopped" in (board.proc.stderr.read() if board.proc.stderr else "")

    # -- A team machine runs its own TensorBoard over a logdir git-ml keeps up to date.
    logdir = tmp_path / "team-logdir"
    first = json.loads(run_gitml(carol, "board", "--logdir-only", str(logdir), "--json").stdout)
    assert {(r["path"], r["status"]) for r in first["runs"]} == {
        ("alice/resnet-a", "added"), ("bob/resnet-b", "added")}
    assert first["files_written"] == 8
    again = json.loads(run_gitml(carol, "board", "--logdir-only", str(logdir), "--json").stdout)
    assert (again["changed"], again["files_written"]) == (False, 0)
    assert {r["status"] for r in again["runs"]} == {"unchanged"}
    (train_file,) = (logdir / "alice/resnet-a/train").iterdir()
    before = train_file.stat()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    tb_cmd = [str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1",
              "--port", "0", "--reload_interval", "1"]
    with serving(tb_cmd, tmp_path, r"at (http://\S+)", "stderr", env) as team_tb:
        _until("alice's two epochs on the team's TensorBoard",
               lambda: len(_series(team_tb, "alice/resnet-a/train", "epoch_loss")) == 2)
        # Alice trains one more epoch (the same run, resumed) and pushes it.
        x, y = _data()
        more = a.model.fit(x, y, initial_epoch=2, epochs=3, batch_size=32,
                           validation_split=0.25, verbose=0, callbacks=[a.callback])
        run_gitml(alice, "push")  # the new checkpoint is noted on a commit pushed already
        run_gitml(carol, "pull")
        refreshed = json.loads(run_gitml(carol, "board", "--logdir-only", str(logdir),
                                         "--json").stdout)
        status = {r["path"]: (r["status"], r["step"]) for r in refreshed["runs"]}
        assert status == {"alice/resnet-a": ("updated", 3), "bob/resnet-b": ("unchanged", 2)}
        after = train_file.stat()
        assert after.st_ino == before.st_ino  # appended in place, not replaced
        assert after.st_size > before.st_size
        def three() -> list[tuple[int, float]] | None:
            s = _series(team_tb, "alice/resnet-a/train", "epoch_loss")
            return s if len(s) == 3 else None

        got = _until("alice's third epoch, without restarting TensorBoard", three)
        assert got[-1][0] == 2
        assert got[-1][1] == pytest.approx(more.history["loss"][-1], rel=1e-5)


# -- hostile notes and payloads ---------------------------------------------------------------


def _record_bytes(data: bytes, length: int | None = None, data_ok: bool = True) -> bytes:
    import struct

    import google_crc32c

    def masked(b: bytes) -> int:
        c = int(google_crc32c.value(b))
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    head = struct.pack("<Q", len(data) if length is None else length)
    return (head + struct.pack("<I", masked(head)) + data
            + struct.pack("<I", masked(data) ^ (0 if data_ok else 1)))


def _scalar_event(step: int, value: float) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    return bytes(event_pb2.Event(step=step, wall_time=1.0, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="loss", simple_value=value)])).SerializeToString())


def _line(**fields: Any) -> str:
    return json.dumps({"v": 1, **fields}, sort_keys=True, separators=(",", ":"))


def _inside(root: Path) -> list[str]:
    """Every path below ``root``, checked: inside it, no git directory name."""
    out = []
    for p in root.rglob("*"):
        assert p.resolve().is_relative_to(root.resolve()), p
        rel = p.relative_to(root).as_posix()
        assert not any(part.lower() in (".git", "git~1") for part in rel.split("/")), rel
        out.append(rel)
    return out


def test_hostile_notes_and_payloads_are_skipped_and_the_board_still_starts(
        tmp_path: Path, repo_dir: Path) -> None:
    root = repo_dir
    make_tree(root, {"train.py": "# trains\n"})
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "code")
    commit = git(root, "rev-parse", "HEAD").stdout.strip()
    good_events = b"".join(_record_bytes(_scalar_event(i, 1.0 / (i + 1))) for i in range(3))
    work = tmp_path / "work"
    make_tree(work, {"ck/w.bin": b"weights", "hp.json": '{"lr": 0.5, "layers": 3}',
                     "tb/train/events.out.tfevents.1.good": good_events,
                     "bad-crc/events.out.tfevents.1.bad": good_events + _record_bytes(
                         _scalar_event(9, 9.0), data_ok=False),
                     "huge/events.out.tfevents.1.huge": good_events + _record_bytes(
                         b"", length=1 << 62)})
    ckpt = run_gitml(root, "commit-ckpt", str(work / "ck"), "--run", "good", "--step", "1",
                     "--metric", "loss=0.5", "--config", str(work / "hp.json"),
                     "--log", str(work / "tb"), "-q").stdout.strip()
    # Event files a log summary reads (up to the bad record) but a board must refuse.
    run_gitml(root, "note", "add", "--log", str(work / "bad-crc"))
    run_gitml(root, "note", "add", "--log", str(work / "huge"))
    good_log = next(json.loads(line)["object"] for line in git(
        root, "notes", "--ref", "ml", "show").stdout.splitlines() if '"tb"' in line)
    fake = "ab" * 16
    hostile = [
        _line(type="checkpoint", id=fake, run="evil", step=1, metrics={"loss": 1.0},
              author="../../../etc <e@x>"),
        _line(type="checkpoint", id=fake, run="r", author=".git <g@x>"),
        _line(type="checkpoint", id=fake, run="r", author="GIT~1 <g@x>"),
        _line(type="checkpoint", id=fake, run="r", author="\u00e9\u00e9 <\u00e9@x>"),
        _line(type="checkpoint", id=fake, run="../x", author="Mallory <m@x>"),
        # Someone else's checkpoint named in a record of one's own: not their logs.
        _line(type="checkpoint", id=ckpt, run="stolen", author="Mallory <m@x>"),
        _line(type="log", format="tfevents", name="../../../../tmp/pwn.tfevents",
              object=good_log, author="Mallory <m@x>"),
        _line(type="log", format="tfevents", name="big", object="cd" * 16, size=1 << 40,
              author="Mallory <m@x>"),
        "{not json",
    ]
    note = tmp_path / "note.txt"
    note.write_text(git(root, "notes", "--ref", "ml", "show").stdout + "\n".join(hostile) + "\n")
    git(root, "notes", "--ref", "ml", "add", "-f", "-F", str(note))

    logdir = tmp_path / "logdir"
    outside = tmp_path / "outside"
    outside.mkdir()
    p = run_gitml(root, "board", "--logdir-only", str(logdir), "--json", check=False)
    assert p.returncode == errors.FormatError.exit_code, p.stderr
    result = json.loads(p.stdout)
    lines = p.stderr.splitlines()
    assert all(ln.startswith(("git-ml: error: ", "git-ml: warning: ")) for ln in lines), lines
    problems = [ln for ln in lines if ln.startswith("git-ml: error: ")]
    assert len(problems) == 5, lines
    for what in ("is not a run name: '../x'", "not valid JSON", "fails its checksum",
                 "claims 4611686018427387904", "more than the 1024 MiB"):
        assert any(what in ln for ln in problems), (what, lines)
    paths = {r["path"]: r for r in result["runs"]}
    c7 = commit[:7]
    assert set(paths) == {"test-author/good", "etc/evil", "git/r", "git-1/r", "ee/r",
                          "mallory/stolen", f"mallory/tmp-pwn-{c7}", f"mallory/big-{c7}",
                          f"test-author/bad-crc-{c7}", f"test-author/huge-{c7}"}
    assert paths["test-author/good"]["log"] == good_log
    assert paths["mallory/stolen"]["log"] is None  # Alice's log stays Alice's
    assert paths[f"mallory/tmp-pwn-{c7}"]["log"] == good_log
    for refused in (f"test-author/bad-crc-{c7}", f"test-author/huge-{c7}", f"mallory/big-{c7}"):
        assert paths[refused]["log"] is None
    laid_out = _inside(logdir)
    assert "test-author/good/train/events.out.tfevents.1.good" in laid_out
    assert not any("bad" in p or "huge" in p for p in laid_out if "tfevents.1" in p)
    assert list(outside.iterdir()) == []

    # A symlink planted where a run would go is not written through.
    planted = tmp_path / "planted"
    (planted / "etc").mkdir(parents=True)
    (planted / "test-author").symlink_to(outside)
    p = run_gitml(root, "board", "--logdir-only", str(planted), check=False)
    assert p.returncode == errors.FormatError.exit_code  # the first problem: a note line
    assert f"{planted / 'test-author'} is not a directory" in p.stderr
    assert list(outside.iterdir()) == []
    assert (planted / "etc/evil").is_dir()  # the other runs are laid out

    # The board starts all the same: the problems are warnings, the good runs are served.
    with _board(root, direct=True) as board:
        _until("the good runs", lambda: {"test-author/good/train", "etc/evil",
                                          f"mallory/tmp-pwn-{c7}"} <= set(board.get("/data/runs")))
        assert [s for s, _ in _series(board, "test-author/good/train", "loss")] == [0, 1, 2]
        os.killpg(board.proc.pid, signal.SIGINT)
        assert board.proc.wait(60) == 0
        err = board.proc.stderr.read() if board.proc.stderr else ""
        assert "git-ml: warning: " in err
        assert "git-ml: error" not in err


def test_board_without_tensorboard_is_one_line_and_exit_69(tmp_path: Path,
                                                            repo_dir: Path) -> None:
    code = ("import sys\n"
            "sys.modules['tensorboard'] = None\n"
            "from mlgit.cli.main import main\n"
            "main(sys.argv[1:])\n")
    for args in (["board", "--logdir-only", str(tmp_path / "d")], ["board", "--port", "0"]):
        p = subprocess.run([sys.executable, "-c", code, *args], cwd=repo_dir,
                           capture_output=True, text=True, check=False)
        assert p.returncode == errors.MissingDependencyError.exit_code == 69
        assert p.stderr.splitlines() == [
            "git-ml: error: the board needs TensorBoard: pip install 'mlgit[board]'"]
    assert not (tmp_path / "d").exists()


def test_scope_prune_and_the_python_api(tmp_path: Path, repo_dir: Path) -> None:
    """REVS choose the commits; a logdir of one's own keeps runs gone out of scope."""
    import mlgit

    root = repo_dir
    work = tmp_path / "work"
    make_tree(work, {"ck/w.bin": b"w", "f.txt": "x"})
    make_tree(root, {"a.txt": "a"})
    git(root, "add", "a.txt")
    git(root, "commit", "-qm", "main")
    run_gitml(root, "commit-ckpt", str(work / "ck"), "--run", "on-main", "--metric", "loss=1")
    git(root, "checkout", "-qb", "side")
    make_tree(root, {"b.txt": "b"})
    git(root, "add", "b.txt")
    git(root, "commit", "-qm", "side")
    run_gitml(root, "commit-ckpt", str(work / "ck"), "--run", "on-side", "--metric", "loss=2")

    own = tmp_path / "own"
    both = mlgit.board_logdir(own, repo=root)
    assert {r.path for r in both.runs} == {"test-author/on-main", "test-author/on-side"}
    only_main = mlgit.board_logdir(own, revs=["main"], repo=root)
    assert {(r.path, r.status) for r in only_main.runs} == {("test-author/on-main", "unchanged")}
    assert (own / "test-author/on-side").is_dir()  # out of scope now: left as it is
    with Repo(root) as r:
        from mlgit.api.board import board_logdir, default_logdir

        cache = board_logdir(r, revs=["main"])
        assert cache.logdir == default_logdir(r, ["main"])
        assert {x.path for x in cache.runs} == {"test-author/on-main"}
    with pytest.raises(errors.RevisionError):
        mlgit.board_logdir(tmp_path / "never", revs=["nope"], repo=root)
    assert not (tmp_path / "never").exists()
    # A logdir whose manifest is not git-ml's is refused, nothing written.
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/.mlgit-board.json").write_text("[]")
    p = run_gitml(root, "board", "--logdir-only", str(tmp_path / "foreign"), check=False)
    assert p.returncode == errors.FormatError.exit_code
    assert len(p.stderr.splitlines()) == 1
    assert sorted(os.listdir(tmp_path / "foreign")) == [".mlgit-board.json",
                                                       ".mlgit-board.json.lock"]


def test_a_detached_heads_runs_are_on_the_board(tmp_path: Path, repo_dir: Path) -> None:
    """The default scope starts from HEAD too (as ``git ml results``): a run trained on a
    detached HEAD is shown."""
    import mlgit

    root = repo_dir
    make_tree(tmp_path / "ck", {"w.bin": b"w"})
    make_tree(root, {"a.txt": "a"})
    git(root, "add", "a.txt")
    git(root, "commit", "-qm", "one")
    git(root, "commit", "-q", "--allow-empty", "-m", "two")
    git(root, "checkout", "-q", "HEAD~1")
    git(root, "commit", "-q", "--allow-empty", "-m", "detached")
    run_gitml(root, "commit-ckpt", str(tmp_path / "ck"), "--run", "detached", "--metric", "a=1")
    result = mlgit.board_logdir(tmp_path / "own", repo=root)
    assert {r.path for r in result.runs} == {"test-author/detached"}
