"""The SSH transport: the serve-store protocol, and SSHBackend against a real sshd.

The conformance suite (tests/test_backends.py) covers what every backend does; this
file covers what only SSH has: failures to connect and log in, a missing or too old
git-ml on the host, a dropped connection, big packs, and malformed messages.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from fixtures_ssh import SSHServer, free_port, keygen, ssh_options

from mlgit.errors import (
    FormatError,
    RemoteAuthError,
    RemoteProtocolError,
    RemoteRefusedError,
    RemoteUnreachableError,
    UnsupportedFormatError,
    UsageError,
)
from mlgit.format.config import FORMAT_VERSION, StoreConfig, encode_config
from mlgit.format.ids import ObjectID
from mlgit.sync.protocol import PIECE, PROTOCOL_VERSION, read_frame, write_frame
from mlgit.sync.remote import RemoteSpec, parse_url
from mlgit.sync.serve import serve
from mlgit.sync.ssh import SSHBackend

BIN = Path(sys.executable).parent
MiB = 1 << 20


def _git_init(path: Path, *args: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", *args, str(path)], check=True, capture_output=True)
    return path


def _backend(sshd: SSHServer, path: Path, **kw: Any) -> SSHBackend:
    kw.setdefault("ssh_command", sshd.ssh_command)
    return SSHBackend(sshd.spec(path), **kw)


# -- the protocol, in process (no ssh) ---------------------------------------------------


def _frames(*msgs: dict[str, Any] | tuple[dict[str, Any], bytes]) -> bytes:
    buf = io.BytesIO()
    for m in msgs:
        if isinstance(m, tuple):
            write_frame(buf, m[0], m[1])
        else:
            write_frame(buf, m)
    return buf.getvalue()


def _answers(data: bytes) -> list[dict[str, Any]]:
    inp = io.BytesIO(data)
    out = []
    while (frame := read_frame(inp)) is not None:
        out.append(frame[0])
    return out


HELLO = {"op": "hello", "protocol": PROTOCOL_VERSION}


def _serve(root: Path, data: bytes) -> tuple[int, list[dict[str, Any]]]:
    out = io.BytesIO()
    rc = serve(root, io.BytesIO(data), out)
    return rc, _answers(out.getvalue())


def test_hello_reports_formats_and_a_clean_hangup_exits_0(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "r")
    rc, answers = _serve(repo, _frames(HELLO, {"op": "list_refs"}))
    assert rc == 0
    assert answers == [
        {"ok": True, "protocol": PROTOCOL_VERSION, "format": FORMAT_VERSION, "store_format": None},
        {"ok": True, "refs": {}},
    ]
    assert not (repo / ".git" / "ml").exists()  # serving alone creates nothing


def _raw(header: bytes) -> bytes:
    return struct.pack(">I", len(header)) + header


@pytest.mark.parametrize("raw", [
    _raw(b"{nope"),                                   # not JSON
    _raw(b"\xff\xfe{}"),                              # not UTF-8
    _raw(b"[]"),                                      # not an object
    struct.pack(">I", 0xFFFFFFFF),                    # a header over the limit
    _raw(b'{"op":"init","size":1099511627776}'),      # a payload over the limit
    _raw(b'{"op":"init","size":true}'),               # a size that is no integer
])
def test_malformed_messages_end_the_session_with_an_error(tmp_path: Path, raw: bytes) -> None:
    repo = _git_init(tmp_path / "r")
    rc, answers = _serve(repo, _frames(HELLO) + raw + _frames({"op": "list_refs"}))
    assert rc == 1
    assert answers[0]["ok"] is True
    assert answers[1]["ok"] is False
    assert answers[1]["error"] == "FormatError"
    assert "malformed message" in answers[1]["message"]
    assert len(answers) == 2  # nothing after: the session ended


def test_the_session_must_start_with_hello(tmp_path: Path) -> None:
    rc, answers = _serve(_git_init(tmp_path / "r"), _frames({"op": "list_refs"}))
    assert rc == 1
    assert answers == [{"ok": False, "error": "FormatError",
                        "message": "malformed message: the session must start with hello"}]


def test_request_errors_travel_by_class_and_the_session_goes_on(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "r")
    oid = "a" * 32
    rc, answers = _serve(repo, _frames(
        HELLO,
        {"op": "frobnicate"},
        ({"op": "init"}, encode_config(StoreConfig())),
        {"op": "update_ref", "ref": "datasets/d", "new": oid, "expect": None},
        {"op": "update_ref", "ref": "datasets/d", "new": oid, "expect": None},
        {"op": "update_ref", "ref": "datasets/d", "new": "not-an-id", "expect": oid},
        {"op": "read_index", "stem": "pack-" + "0" * 32},
        {"op": "read_pack", "stem": "pack-" + "0" * 32, "offset": -1, "length": 3},
        {"op": "list_refs"},
    ))
    assert rc == 0
    assert [(a["ok"], a.get("error")) for a in answers] == [
        (True, None), (False, "UsageError"), (True, None), (True, None),
        (False, "ConflictError"), (False, "FormatError"), (False, "MlgitError"),
        (False, "FormatError"), (True, None)]
    assert answers[-1]["refs"] == {"datasets/d": oid}
    assert answers[6]["message"].endswith(": No such file or directory (pack-" + "0" * 32 + ".idx)")


def test_serving_a_path_that_is_not_a_repository_fails_hello(tmp_path: Path) -> None:
    rc, answers = _serve(tmp_path / "nothing", _frames(HELLO))
    assert rc == 1
    assert answers[0]["error"] == "UsageError"
    assert "is not a git repository" in answers[0]["message"]


def test_serve_store_writes_nothing_but_messages_to_stdout(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "r")
    p = subprocess.run([str(BIN / "git-ml"), "serve-store", str(repo)],
                       input=_frames(HELLO, {"op": "list_packs"}), capture_output=True)
    assert p.returncode == 0, p.stderr
    assert _answers(p.stdout) == [
        {"ok": True, "protocol": PROTOCOL_VERSION, "format": FORMAT_VERSION, "store_format": None},
        {"ok": True, "packs": []},
    ]


def test_the_server_holds_one_piece_of_a_pack_at_a_time(tmp_path: Path) -> None:
    """A 40 MiB upload through serve() in a thread: peak Python memory stays a few MiB."""
    repo = _git_init(tmp_path / "r")
    (c2s_r, c2s_w), (s2c_r, s2c_w) = os.pipe(), os.pipe()
    with open(c2s_r, "rb") as sin, open(s2c_w, "wb") as sout, \
            open(c2s_w, "wb") as cout, open(s2c_r, "rb") as cin:
        rcs: list[int] = []
        server = threading.Thread(target=lambda: rcs.append(serve(repo, sin, sout)))
        server.start()
        stem = "pack-" + "1" * 32
        tracemalloc.start()
        try:
            write_frame(cout, HELLO)
            assert read_frame(cin) is not None
            write_frame(cout, {"op": "init"}, encode_config(StoreConfig()))
            assert read_frame(cin) == ({"ok": True}, None)
            write_frame(cout, {"op": "put_pack", "stem": stem})
            assert read_frame(cin) == ({"ok": True, "send_pack": True}, None)
            for i in range(40):
                write_frame(cout, {"op": "data", "more": i < 39}, bytes([i]) * PIECE)
            write_frame(cout, {"op": "data", "more": False}, b"idx")
            assert read_frame(cin) == ({"ok": True}, None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            cout.close()
            server.join(30)
    assert rcs == [0]
    assert peak < 8 * MiB
    pack = repo / ".git" / "ml" / "packs" / f"{stem}.pack"
    assert pack.stat().st_size == 40 * MiB
    assert (repo / ".git" / "ml" / "packs" / f"{stem}.idx").read_bytes() == b"idx"
    assert os.listdir(repo / ".git" / "ml" / "tmp") == []


def test_an_upload_cut_short_leaves_no_pack_and_no_temporary_file(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "r")
    stem = "pack-" + "2" * 32
    rc, answers = _serve(repo, _frames(
        HELLO, ({"op": "init"}, encode_config(StoreConfig())),
        {"op": "put_pack", "stem": stem},
        ({"op": "data", "more": True}, b"x" * 1000)))  # then the input ends
    assert rc == 1
    assert answers[-1] == {"ok": True, "send_pack": True}
    store = repo / ".git" / "ml"
    assert os.listdir(store / "packs") == []
    assert os.listdir(store / "tmp") == []


# -- SSHBackend without a server ---------------------------------------------------------


def test_a_password_in_the_url_is_refused_and_never_shown(tmp_path: Path) -> None:
    spec = parse_url("origin", "ssh://alice:hunter2@example.com/srv/repo", tmp_path)
    with pytest.raises(UsageError) as e:
        SSHBackend(spec)
    assert "hunter2" not in str(e.value)
    assert "ssh key or agent" in str(e.value)


def test_hosts_that_look_like_options_are_refused(tmp_path: Path) -> None:
    spec = parse_url("origin", "ssh://-oProxyCommand=touch-x/srv/repo", tmp_path)
    with pytest.raises(UsageError, match="cannot start with '-'"):
        SSHBackend(spec)


def test_the_ssh_command_line() -> None:
    spec = RemoteSpec("origin", "ssh://bob@h:2222/srv/my repo", "ssh", "/srv/my repo", "h",
                      "bob", 2222)
    b = SSHBackend(spec, ssh_command=["ssh", "-i", "k"], remote_command="/opt/bin/git-ml")
    assert b.command() == ["ssh", "-i", "k", "-o", "BatchMode=yes", "-p", "2222", "bob@h",
                           "/opt/bin/git-ml serve-store '/srv/my repo'"]
    home = RemoteSpec("o", "ssh://h/~/r", "ssh", "/~/r", "h")
    assert SSHBackend(home).command() == ["ssh", "-o", "BatchMode=yes", "h",
                                          "git-ml serve-store '~/r'"]


def test_a_missing_ssh_client(tmp_path: Path) -> None:
    spec = parse_url("origin", "me@example.com:repo", tmp_path)
    b = SSHBackend(spec, ssh_command=[str(tmp_path / "no-ssh-here")])
    with pytest.raises(UsageError, match=r"cannot run the ssh client .*install OpenSSH"):
        b.list_refs()
    b.close()


# -- SSHBackend against a real sshd ------------------------------------------------------


def test_connection_refused_names_the_host(sshd: SSHServer) -> None:
    port = free_port()
    spec = RemoteSpec("origin", f"ssh://127.0.0.1:{port}/x", "ssh", "/x", "127.0.0.1", "", port)
    b = SSHBackend(spec, ssh_command=ssh_options(sshd.key))
    with pytest.raises(RemoteUnreachableError) as e:
        b.list_refs()
    assert str(e.value) == (f"cannot connect to 127.0.0.1:{port}: connection refused "
                            "(is an ssh server running there, on that port?)")
    b.close()


def test_a_key_the_host_does_not_accept_is_an_authentication_failure(
        sshd: SSHServer, tmp_path: Path) -> None:
    wrong = keygen(tmp_path / "wrong_key")
    b = _backend(sshd, _git_init(tmp_path / "r"), ssh_command=ssh_options(wrong, sshd.port))
    with pytest.raises(RemoteAuthError) as e:
        b.read_config()
    msg = str(e.value)
    assert msg.startswith("ssh could not log in to 127.0.0.1: authentication failed")
    assert "password" in msg
    assert "ssh key" in msg
    assert "agent" in msg
    assert str(wrong) not in msg
    b.close()


def test_git_ml_missing_on_the_host(sshd: SSHServer, tmp_path: Path) -> None:
    b = _backend(sshd, _git_init(tmp_path / "r"), remote_command="no-such-git-ml")
    with pytest.raises(RemoteRefusedError) as e:
        b.list_packs()
    assert str(e.value) == (
        "git-ml is not installed on 127.0.0.1 (or not on its PATH): running `no-such-git-ml` "
        "there failed; install it there with `pip install mlgit`, or set "
        "`git config ml.origin.gitml /path/to/git-ml`")
    b.close()


def test_a_remote_store_of_a_newer_format(sshd: SSHServer, tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "r")
    (repo / ".git" / "ml").mkdir()
    (repo / ".git" / "ml" / "config").write_text(f'{{"format": {FORMAT_VERSION + 1}}}\n')
    b = _backend(sshd, repo)
    newer = f"format {FORMAT_VERSION + 1}, newer than this git-ml understands"
    with pytest.raises(UnsupportedFormatError, match=newer):
        b.read_config()
    b.close()


def test_a_host_whose_shell_prints_to_stdout(sshd: SSHServer, tmp_path: Path) -> None:
    b = _backend(sshd, _git_init(tmp_path / "r"), remote_command="echo Welcome; git-ml")
    with pytest.raises(RemoteProtocolError,
                       match="does a shell startup file there print to standard"):
        b.list_refs()
    b.close()


def test_a_path_that_is_not_a_repository(sshd: SSHServer, tmp_path: Path) -> None:
    b = _backend(sshd, tmp_path / "nothing-here")
    with pytest.raises(UsageError, match=r"^127\.0\.0\.1: .*nothing-here is not a git repo"):
        b.list_refs()
    b.close()


def test_port_in_the_url_a_path_to_quote_and_a_fresh_bare_repository(
        sshd: SSHServer, tmp_path: Path) -> None:
    bare = _git_init(tmp_path / "it's a bare repo; $(echo no)", "--bare")
    b = SSHBackend(sshd.spec(bare, with_port=True), ssh_command=ssh_options(sshd.key))
    assert b.read_config() is None
    cfg = encode_config(StoreConfig())
    b.init(cfg)  # push to a fresh remote: the store is created
    b.update_ref("datasets/d", ObjectID("a" * 32), None)
    b.close()
    assert (bare / "ml" / "config").read_bytes() == cfg
    assert (bare / "ml" / "refs" / "datasets" / "d").read_text() == "a" * 32 + "\n"


def test_a_40_mib_pack_streams_up_and_back_in_ranges(sshd: SSHServer, tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "r")
    data = os.urandom(40 * MiB)
    pack = tmp_path / "big.pack"
    pack.write_bytes(data)
    stem, index = "pack-" + "3" * 32, os.urandom(100_000)
    b = _backend(sshd, repo)
    b.init(encode_config(StoreConfig()))
    tracemalloc.start()
    try:
        b.put_pack(stem, pack, index)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB  # the client sent it a piece at a time
    b.put_pack(stem, pack, index)  # idempotent: the pack is not sent again
    assert b.list_packs() == [stem]
    assert b.read_index(stem) == index
    for off, n in [(0, 10), (PIECE - 3, 7), (17 * MiB + 5, 3 * MiB + 1), (len(data) - 1, 1),
                   (5, 0)]:
        assert b.read_pack(stem, off, n) == data[off:off + n]
    assert b.read_pack(stem, 0, len(data)) == data
    with pytest.raises(FormatError, match="shorter than its index says"):
        b.read_pack(stem, len(data) - 10, 2 * PIECE)
    assert b.list_packs() == [stem]  # the session survived the error
    b.close()
    stored = repo / ".git" / "ml" / "packs" / f"{stem}.pack"
    assert stored.stat().st_size == len(data)
    assert os.listdir(repo / ".git" / "ml" / "tmp") == []


def test_a_killed_ssh_process_is_a_clear_error_and_the_next_request_reconnects(
        sshd: SSHServer, tmp_path: Path) -> None:
    b = _backend(sshd, _git_init(tmp_path / "r"))
    assert b.list_refs() == {}
    assert b._proc is not None
    os.kill(b._proc.pid, signal.SIGKILL)
    with pytest.raises(RemoteUnreachableError) as e:
        b.list_packs()
    assert str(e.value).startswith("connection to 127.0.0.1 lost during list_packs")
    assert "killed by signal 9" in str(e.value)
    assert b.list_packs() == []  # a new session
    b.close()
    b.close()  # idempotent


_DROPPER = """
import os, subprocess, sys
limit, cmd = int(sys.argv[1]), sys.argv[2:]
ssh = subprocess.Popen(cmd, stdin=subprocess.PIPE)
sent = 0
while chunk := os.read(0, 1 << 16):
    ssh.stdin.write(chunk)
    ssh.stdin.flush()
    sent += len(chunk)
    if sent >= limit:
        ssh.kill()
        sys.stderr.write("Connection reset by peer\\n")
        sys.exit(255)
ssh.stdin.close()
sys.exit(ssh.wait())
"""


def test_a_connection_dropped_mid_upload(sshd: SSHServer, tmp_path: Path) -> None:
    """ssh dies after 3 MiB of a 20 MiB pack: a clear error, and nothing half-written."""
    repo = _git_init(tmp_path / "r")
    dropper = tmp_path / "dropper.py"
    dropper.write_text(_DROPPER)
    b = _backend(sshd, repo,
                 ssh_command=[sys.executable, str(dropper), str(3 * MiB), *sshd.ssh_command])
    b.init(encode_config(StoreConfig()))
    pack = tmp_path / "p.pack"
    pack.write_bytes(os.urandom(20 * MiB))
    with pytest.raises(RemoteUnreachableError) as e:
        b.put_pack("pack-" + "4" * 32, pack, b"index")
    assert str(e.value) == ("connection to 127.0.0.1 lost during put_pack (ssh exited with "
                            "code 255: Connection reset by peer)")
    b.close()
    store = repo / ".git" / "ml"
    deadline = time.monotonic() + 10
    while os.listdir(store / "tmp") and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the hangup and removes its temporary file
    assert os.listdir(store / "tmp") == []
    assert os.listdir(store / "packs") == []


def test_each_remote_failure_exits_with_its_own_code(sshd: SSHServer, tmp_path: Path) -> None:
    """Through the CLI: unreachable 11, authentication 12, protocol 13, refused 14."""
    import shlex

    from conftest import git, run_gitml

    clone = _git_init(tmp_path / "clone")
    run_gitml(clone, "init")
    served = _git_init(tmp_path / "served")
    git(clone, "config", "ml.origin.url", sshd.spec(served).url)
    wrong = keygen(tmp_path / "wrong_key")
    cases = [
        (RemoteUnreachableError, ssh_options(sshd.key, free_port()), None, "connection refused"),
        (RemoteAuthError, ssh_options(wrong, sshd.port), None, "authentication failed"),
        (RemoteProtocolError, sshd.ssh_command, "echo Welcome; git-ml", "shell startup file"),
        (RemoteRefusedError, sshd.ssh_command, "no-such-git-ml", "is not installed"),
    ]
    for cls, ssh, gitml, says in cases:
        git(clone, "config", "core.sshCommand", shlex.join(ssh))
        if gitml:
            git(clone, "config", "ml.origin.gitml", gitml)
        p = run_gitml(clone, "ls", "origin", check=False)
        assert (p.returncode, p.stdout) == (cls.exit_code, ""), p.stderr
        assert p.stderr.startswith("git-ml: error: "), p.stderr
        assert says in p.stderr, p.stderr
        assert len(p.stderr.splitlines()) == 1, p.stderr
    assert {cls.exit_code for cls, *_ in cases} == {11, 12, 13, 14}


def test_an_error_answer_is_raised_as_its_class() -> None:
    """The class an error answer names; RemoteRefusedError for the base or an unknown one."""
    from mlgit.errors import ConflictError
    from mlgit.sync.protocol import error_answer, error_class

    assert error_class("ConflictError") is ConflictError
    assert error_class("FormatError") is FormatError
    assert error_class("UsageError") is UsageError
    for name in ("MlgitError", "NoSuchError", "Exception", "__class__", 5, None):
        assert error_class(name) is RemoteRefusedError
    h = error_answer("ConflictError", "a\nmultiline   message " + "x" * 2000)
    assert h["ok"] is False
    assert h["error"] == "ConflictError"
    assert h["message"].startswith("a multiline message x")
    assert len(h["message"]) == 1000


def test_a_failure_on_the_server_is_a_refusal(sshd: SSHServer, tmp_path: Path) -> None:
    """The server cannot write its store (an OSError there): the client gets RemoteRefusedError."""
    repo = _git_init(tmp_path / "r")
    b = _backend(sshd, repo)
    b.init(encode_config(StoreConfig()))
    scratch = repo / ".git" / "ml" / "tmp"
    scratch.rmdir()
    scratch.write_bytes(b"")  # its scratch directory is a file: no upload can be written
    pack = tmp_path / "p.pack"
    pack.write_bytes(b"MLGPACK\x01" + os.urandom(100))
    with pytest.raises(RemoteRefusedError):
        b.put_pack("pack-" + "5" * 32, pack, b"index")
    assert b.list_packs() == []  # the session went on
    b.close()


def test_a_client_of_an_older_protocol_is_refused(tmp_path: Path) -> None:
    rc, answers = _serve(_git_init(tmp_path / "r"), _frames({"op": "hello", "protocol": 0}))
    assert rc == 1
    assert answers[0]["error"] == "RemoteRefusedError"
    assert "speaks protocol 1, not 0" in answers[0]["message"]
