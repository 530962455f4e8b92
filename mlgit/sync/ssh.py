"""A remote store on another host, reached by running ``git-ml serve-store`` there over ssh.

As git does with ``git-upload-pack``: nothing but git-ml needs installing on the
server, and the user's ssh client, its config, keys and agent do the connecting.
:class:`SSHBackend` starts one ``ssh`` process, on first use, and sends every
request over it (the protocol of :mod:`mlgit.sync.serve`)::

    ssh -o BatchMode=yes [-p PORT] [user@]host '<git-ml> serve-store <path>'

``BatchMode`` makes ssh fail at once instead of asking for a password or a
passphrase, which nobody could type here. Failures become one-line errors: the host
cannot be reached, authentication failed, git-ml is missing on the host, the remote
store has a newer format, the connection dropped. Like every backend, this module
reads no environment variable: the caller passes the ssh command
(``GIT_SSH_COMMAND`` / ``core.sshCommand``) and the remote git-ml command
(``git config ml.<remote>.gitml``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import mlgit.errors as errors  # (not "from mlgit import": that is the top layer)
from mlgit.errors import (
    FileChangedError,
    FormatError,
    MlgitError,
    UnsupportedFormatError,
    UsageError,
)
from mlgit.format.config import FORMAT_VERSION
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.sync.backend import Backend, check_pack_name, check_ref_path
from mlgit.sync.remote import RemoteSpec
from mlgit.sync.serve import (
    PIECE,
    PROTOCOL_VERSION,
    Disconnected,
    Frame,
    read_frame,
    write_frame,
)

__all__ = ["SSHBackend"]

_STDERR_KEEP = 16 << 10
_BYE_SECONDS = 5.0


def _error_class(name: object) -> type[MlgitError]:
    """The class of :mod:`mlgit.errors` called ``name``; MlgitError if there is none."""
    if isinstance(name, str) and name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, MlgitError):
            return cls
    return MlgitError


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class _Lost(Exception):
    """The session cannot go on: the connection ended (``detail`` empty), or sent garbage."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class _Abort(Exception):
    """Stop mid-request, ending the session, and raise ``error``."""

    def __init__(self, error: MlgitError) -> None:
        super().__init__(str(error))
        self.error = error


def _drain(stream: IO[bytes], buf: bytearray) -> None:
    """Keep the tail of what ssh writes to stderr (so that it never blocks on a full pipe)."""
    fd = stream.fileno()
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        if len(buf) > 2 * _STDERR_KEEP:
            del buf[:-_STDERR_KEEP]


class SSHBackend(Backend):
    """The store of a repository on another host, through ``ssh`` and ``git-ml serve-store``.

    ``ssh_command`` is the ssh client and its options (default ``["ssh"]``); callers
    pass ``GIT_SSH_COMMAND`` or ``core.sshCommand`` split with :func:`shlex.split`.
    ``remote_command`` is the git-ml command to run on the host (default
    ``git-ml``); callers pass ``git config ml.<remote>.gitml``. It is given to the
    remote shell as it is (like git's ``remote.<name>.uploadpack``), so it may be a
    path or a command with arguments; the store path is quoted for that shell.

    One ssh process serves every request, one request at a time (the backend can be
    shared between threads); :meth:`close` ends it. A request that fails because the
    connection dropped raises MlgitError; the next request starts a new connection.
    """

    def __init__(self, spec: RemoteSpec, ssh_command: list[str] | None = None,
                 remote_command: str | None = None) -> None:
        for part, what in ((spec.host, "host"), (spec.user, "user")):
            if part.startswith("-"):
                raise UsageError(f"remote {spec.name!r}: an ssh {what} cannot start with '-'")
        if ":" in spec.user:
            # Never echo the URL: the part after ':' is a password.
            raise UsageError(f"remote {spec.name!r}: ssh URLs cannot carry a password; "
                             "log in with an ssh key or agent instead")
        if not spec.host or not spec.path:
            raise UsageError(f"remote {spec.name!r}: an ssh URL needs a host and a path")
        self.spec = spec
        self.url = spec.url
        self.ssh_command = list(ssh_command) if ssh_command else ["ssh"]
        self.remote_command = remote_command or "git-ml"
        # ssh://host/~/repo means ~/repo, as in git.
        path = spec.path[1:] if spec.path.startswith("/~") else spec.path
        self.path = path
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = bytearray()
        self._stderr_thread: threading.Thread | None = None

    # -- the ssh process -------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.spec.host}:{self.spec.port}" if self.spec.port else self.spec.host

    def command(self) -> list[str]:
        """The argv that starts the session (no secrets: ssh takes none on its command line)."""
        argv = [*self.ssh_command, "-o", "BatchMode=yes"]
        if self.spec.port:
            argv += ["-p", str(self.spec.port)]
        dest = f"{self.spec.user}@{self.spec.host}" if self.spec.user else self.spec.host
        return [*argv, dest, f"{self.remote_command} serve-store {shlex.quote(self.path)}"]

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise UsageError(f"cannot run the ssh client {self.ssh_command[0]!r}: "
                             f"{e.strerror or e}; install OpenSSH's client, or set "
                             "core.sshCommand") from None
        self._proc = proc
        self._stderr = bytearray()
        assert proc.stderr is not None
        self._stderr_thread = threading.Thread(target=_drain, args=(proc.stderr, self._stderr),
                                               name="ssh-stderr", daemon=True)
        self._stderr_thread.start()
        return proc

    def _connect(self) -> subprocess.Popen[bytes]:
        if self._proc is not None:
            return self._proc
        proc = self._start()
        try:
            reply = self._exchange({"op": "hello", "protocol": PROTOCOL_VERSION})
        except _Lost as e:
            if e.detail:
                self._shutdown()
                msg = f"cannot open a git-ml session on {self._where}: {e.detail}"
                raise MlgitError(msg) from None
            raise self._connect_error() from None
        except MlgitError as e:
            self._shutdown()
            raise type(e)(f"{self._where}: {e}") from None
        except BaseException:
            self._shutdown()
            raise
        proto = reply.get("protocol")
        if proto != PROTOCOL_VERSION:
            self._shutdown()
            raise MlgitError(f"git-ml on {self._where} speaks protocol {str(proto)[:20]}, this "
                             f"one {PROTOCOL_VERSION}; install matching git-ml versions")
        fmt, server_fmt = reply.get("store_format"), reply.get("format")
        if isinstance(fmt, int) and fmt > FORMAT_VERSION:
            self._shutdown()
            raise UnsupportedFormatError(
                f"{self.url}: the store there is format {fmt}, newer than this git-ml "
                f"understands ({FORMAT_VERSION}); upgrade git-ml")
        if isinstance(fmt, int) and isinstance(server_fmt, int) and fmt > server_fmt:
            self._shutdown()
            raise UnsupportedFormatError(
                f"{self.url}: the store there is format {fmt}, newer than the git-ml on "
                f"{self._where} understands ({server_fmt}); upgrade git-ml there")
        return proc

    def _finish(self, timeout: float) -> int | None:
        """Wait for ssh to exit and for all it wrote to stderr; its exit code, or None."""
        proc = self._proc
        if proc is None:
            return None
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._stderr_thread is not None:
            self._stderr_thread.join(1.0)
        return rc

    def _shutdown(self) -> None:
        """End the ssh process (politely first: closing its input ends the session)."""
        proc = self._proc
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if proc.poll() is None:
            try:
                proc.wait(_BYE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(1.0)
        if proc.stderr is not None:
            proc.stderr.close()
        self._proc = None

    def _stderr_text(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace")

    def _why(self, rc: int | None) -> str:
        """What ssh said about how it ended, in a few words."""
        said = _last_line(self._stderr_text())
        if rc is not None and rc < 0:
            how = f"ssh was killed by signal {-rc}"
        elif rc is not None:
            how = f"ssh exited with code {rc}"
        else:
            how = "ssh stopped answering"
        return f"{how}: {said}" if said else how

    def _connect_error(self) -> MlgitError:
        """The error for a session that ended before the server said hello."""
        rc = self._finish(_BYE_SECONDS)
        text = self._stderr_text()
        low = text.lower()
        where = self._where
        self._shutdown()
        if rc == 255 or rc is None:
            if "connection refused" in low:
                return MlgitError(f"cannot connect to {where}: connection refused "
                                  "(is an ssh server running there, on that port?)")
            if "could not resolve hostname" in low or "name or service not known" in low:
                return MlgitError(f"cannot connect to {where}: unknown host")
            for reason in ("no route to host", "network is unreachable", "timed out"):
                if reason in low:
                    return MlgitError(f"cannot connect to {where}: {reason}")
            if "host key verification failed" in low:
                return UsageError(f"ssh does not know the host key of {where}: connect once "
                                  f"with `ssh {self.spec.host}` to check and accept it")
            if "permission denied" in low or "too many authentication failures" in low:
                return UsageError(
                    f"ssh could not log in to {where}: authentication failed (git-ml runs "
                    "ssh with BatchMode, so it cannot ask for a password or passphrase); "
                    "use an ssh key that the host accepts, loaded in your ssh agent")
        if rc != 255 and (rc in (126, 127) or "command not found" in low
                          or ": not found" in low):
            return UsageError(
                f"git-ml is not installed on {where} (or not on its PATH): running "
                f"`{self.remote_command}` there failed; install it there with "
                f"`pip install mlgit`, or set `git config ml.{self.spec.name or '<remote>'}"
                ".gitml /path/to/git-ml`")
        if "no such command" in low and "serve-store" in low:
            return UsageError(f"the git-ml on {where} is too old to serve a store over ssh; "
                              "upgrade it there")
        return MlgitError(f"cannot open a git-ml session on {where}: {self._why(rc)}")

    def _lost(self, op: str, detail: str) -> MlgitError:
        """The error for a session that broke off during ``op``; ends the session."""
        rc = self._finish(_BYE_SECONDS if not detail else 0.5)
        why = detail or self._why(rc)
        self._shutdown()
        return MlgitError(f"connection to {self._where} lost during {op} ({why})")

    # -- messages -----------------------------------------------------------------------

    def _send(self, header: dict[str, Any], payload: bytes | memoryview | None = None) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            write_frame(proc.stdin, header, payload)
        except Disconnected:
            raise _Lost() from None

    def _recv(self) -> Frame:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            frame = read_frame(proc.stdout)
        except Disconnected:
            raise _Lost() from None
        except FormatError as e:
            raise _Lost(f"{self._where} sent something that is not git-ml's protocol ({e}); "
                        "does a shell startup file there print to standard output?") from None
        if frame is None:
            raise _Lost()
        if not isinstance(frame[0].get("ok"), bool):
            raise _Lost(f"{self._where} sent an answer without 'ok'")
        return frame

    def _answer(self) -> Frame:
        """The next answer; an error answer is raised as its mlgit.errors class."""
        h, payload = self._recv()
        if not h["ok"]:
            cls = _error_class(h.get("error"))
            raise cls(str(h.get("message") or "git-ml serve-store failed")[:1000])
        return h, payload

    def _exchange(self, header: dict[str, Any],
                  payload: bytes | memoryview | None = None) -> dict[str, Any]:
        self._send(header, payload)
        return self._answer()[0]

    def _recv_stream(self) -> Iterator[bytes]:
        while True:
            h, payload = self._answer()
            if payload is None or not isinstance(h.get("more"), bool):
                raise _Lost(f"{self._where} sent a malformed byte stream")
            yield payload
            if not h["more"]:
                return

    def _send_stream(self, pieces: Iterator[bytes]) -> None:
        prev = next(pieces)
        for piece in pieces:
            self._send({"op": "data", "more": True}, prev)
            prev = piece
        self._send({"op": "data", "more": False}, prev)

    def _request(self, op: str, run: Any) -> Any:
        """Run ``run()`` (which sends requests and reads answers) under the session lock.

        An error answer leaves the session in step and usable; anything else that
        interrupts ``run`` (a lost connection, a local read error, Ctrl-C) may leave
        messages half sent or unread, so it ends the session.
        """
        with self._lock:
            self._connect()
            try:
                return run()
            except _Lost as e:
                raise self._lost(op, e.detail) from None
            except _Abort as e:
                self._shutdown()
                raise e.error from None
            except MlgitError:
                raise
            except BaseException:
                self._shutdown()
                raise

    # -- Backend ------------------------------------------------------------------------

    def read_config(self) -> bytes | None:
        """See :meth:`Backend.read_config`."""
        def run() -> bytes | None:
            self._send({"op": "read_config"})
            h, payload = self._answer()
            if not h.get("exists"):
                return None
            if payload is None:
                raise _Lost(f"{self._where} sent a config without its bytes")
            return payload

        result: bytes | None = self._request("read_config", run)
        return result

    def init(self, config: bytes) -> None:
        """See :meth:`Backend.init`."""
        self._request("init", lambda: self._exchange({"op": "init"}, config))

    def list_packs(self) -> list[str]:
        """See :meth:`Backend.list_packs`."""
        def run() -> list[str]:
            packs = self._exchange({"op": "list_packs"}).get("packs")
            if not isinstance(packs, list):
                raise _Lost(f"{self._where} sent a malformed pack list")
            return sorted(check_pack_name(str(p)) for p in packs)

        result: list[str] = self._request("list_packs", run)
        return result

    def read_index(self, stem: str) -> bytes:
        """See :meth:`Backend.read_index`."""
        check_pack_name(stem)

        def run() -> bytes:
            self._send({"op": "read_index", "stem": stem})
            return b"".join(self._recv_stream())

        result: bytes = self._request("read_index", run)
        return result

    def read_pack(self, stem: str, offset: int, length: int) -> bytes:
        """See :meth:`Backend.read_pack`."""
        check_pack_name(stem)
        if offset < 0 or length < 0:
            raise UsageError(f"read_pack: offset {offset} and length {length} must be >= 0")

        def run() -> bytes:
            self._send({"op": "read_pack", "stem": stem, "offset": offset, "length": length})
            parts: list[bytes] = []
            got = 0
            for piece in self._recv_stream():
                got += len(piece)
                if got > length:
                    raise _Lost(f"{self._where} sent more bytes than asked for")
                parts.append(piece)
            if got != length:
                raise _Lost(f"{self._where} sent {got} bytes of the {length} asked for")
            return b"".join(parts)

        result: bytes = self._request("read_pack", run)
        return result

    def put_pack(self, stem: str, pack: Path, index: bytes) -> None:
        """See :meth:`Backend.put_pack`. The pack is read and sent 1 MiB at a time."""
        check_pack_name(stem)
        with open(pack, "rb") as f:
            size = os.fstat(f.fileno()).st_size

            def file_pieces() -> Iterator[bytes]:
                left = size
                while True:
                    piece = f.read(min(PIECE, left))
                    if len(piece) != min(PIECE, left):
                        raise _Abort(FileChangedError(f"{pack} changed while it was being sent"))
                    left -= len(piece)
                    yield piece
                    if not left:
                        return

            def index_pieces() -> Iterator[bytes]:
                view = memoryview(index)
                for i in range(0, max(len(view), 1), PIECE):
                    yield bytes(view[i:i + PIECE])

            def run() -> None:
                h = self._exchange({"op": "put_pack", "stem": stem})
                if h.get("send_pack"):
                    self._send_stream(file_pieces())
                self._send_stream(index_pieces())
                self._answer()

            self._request("put_pack", run)

    def list_refs(self) -> dict[str, ObjectID]:
        """See :meth:`Backend.list_refs`."""
        def run() -> dict[str, ObjectID]:
            refs = self._exchange({"op": "list_refs"}).get("refs")
            if not isinstance(refs, dict):
                raise _Lost(f"{self._where} sent a malformed ref list")
            return {check_ref_path(str(k)): parse_object_id(str(v)) for k, v in refs.items()}

        result: dict[str, ObjectID] = self._request("list_refs", run)
        return result

    def update_ref(self, ref: str, new: ObjectID, expect: ObjectID | None) -> None:
        """See :meth:`Backend.update_ref`."""
        check_ref_path(ref)
        self._request("update_ref", lambda: self._exchange(
            {"op": "update_ref", "ref": ref, "new": new, "expect": expect}))

    def close(self) -> None:
        """End the ssh session (idempotent); the next request would start a new one."""
        with self._lock:
            self._shutdown()
