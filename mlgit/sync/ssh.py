"""A remote store on another host, reached by running ``git-ml serve-store`` there over ssh.

As git does with ``git-upload-pack``: nothing but git-ml needs installing on the
server, and the user's ssh client, its config, keys and agent do the connecting.
:class:`SSHBackend` starts one ``ssh`` process, on first use, and sends every
request over it (the protocol of :mod:`mlgit.sync.protocol`)::

    ssh -o BatchMode=yes [-p PORT] [user@]host '<git-ml> serve-store <path>'

``BatchMode`` makes ssh fail at once instead of asking for a password or a
passphrase, which nobody could type here. Failures become one-line errors of the
remote kinds of :mod:`mlgit.errors`: the host cannot be reached, the connection
dropped or the server stopped answering (RemoteUnreachableError); the login or the
host key failed (RemoteAuthError); git-ml is missing or too old on the host, or
speaks another protocol (RemoteRefusedError); the server sent what is not the
protocol (RemoteProtocolError). A store of a newer format is an
UnsupportedFormatError.
Like every backend, this module reads no environment variable: the caller passes
the ssh command (``GIT_SSH_COMMAND`` / ``core.sshCommand``), the remote git-ml
command (``git config ml.<remote>.gitml``) and the timeout (``ml.timeout``).

A server is not trusted to be well-behaved: every wait for its next bytes (and for
room to send it ours) gives up after ``timeout`` seconds (default
:data:`DEFAULT_TIMEOUT`), and every answer is bounded (a message by the framing's
limits, a config by ``MAX_CONFIG_LEN``, an index stream by ``MAX_INDEX_LEN``, a pack
stream by the length asked for). A server that breaks the protocol is a
RemoteProtocolError naming it (a FormatError too), one that sends more than a bound
a FormatError, one that stops answering a RemoteUnreachableError; each ends the
session.
"""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlgit.errors import (
    FileChangedError,
    FormatError,
    MlgitError,
    RemoteAuthError,
    RemoteProtocolError,
    RemoteRefusedError,
    RemoteUnreachableError,
    UnsupportedFormatError,
    UsageError,
)
from mlgit.format.config import FORMAT_VERSION
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_CONFIG_LEN, MAX_INDEX_LEN
from mlgit.sync.backend import Backend, OnBadRef
from mlgit.sync.layout import check_pack_name, check_ref_path
from mlgit.sync.protocol import (
    PIECE,
    PROTOCOL_VERSION,
    UNKNOWN_REQUEST,
    Disconnected,
    Frame,
    Op,
    error_class,
    pieces_of,
    read_frame,
    write_frame,
)
from mlgit.sync.remote import RemoteSpec

__all__ = ["DEFAULT_TIMEOUT", "SSHBackend"]

DEFAULT_TIMEOUT = 300.0
"""Seconds to wait for the server's next bytes (or for it to take ours) before giving up."""
_STDERR_KEEP = 16 << 10
_BYE_SECONDS = 5.0


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class _Lost(Exception):
    """The session cannot go on: the connection ended (``detail`` empty), or sent garbage.

    ``error`` is the class the caller raises: RemoteProtocolError for a server that
    broke the protocol, FormatError for one past a bound, RemoteUnreachableError for
    one that went away or stopped answering.
    """

    def __init__(self, detail: str = "",
                 error: type[MlgitError] = RemoteUnreachableError) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error = error


class _Silent(Exception):
    """Nothing moved on the pipe for the whole timeout."""


class _Pipe:
    """ssh's standard input and output, where no wait lasts longer than ``timeout`` seconds.

    Offers ``read`` (what :func:`~mlgit.sync.protocol.read_frame` needs) and
    ``write``/``flush`` (what :func:`~mlgit.sync.protocol.write_frame` needs) on the raw
    file descriptors; raises :class:`_Silent` when the other side neither sends nor
    takes anything for ``timeout`` seconds, and OSError as the system calls do.
    """

    def __init__(self, rfd: int, wfd: int, timeout: float) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.timeout_ms = max(1, int(timeout * 1000))
        os.set_blocking(wfd, False)
        self._rpoll = select.poll()
        self._rpoll.register(rfd, select.POLLIN | select.POLLPRI)
        self._wpoll = select.poll()
        self._wpoll.register(wfd, select.POLLOUT)

    def read(self, n: int) -> bytes:
        """At most ``n`` bytes, once some arrive (``b""`` at end of input)."""
        if not self._rpoll.poll(self.timeout_ms):
            raise _Silent()
        return os.read(self.rfd, n)

    def write(self, data: bytes | memoryview) -> int:
        """Write all of ``data``, waiting at most the timeout each time the pipe is full."""
        view = memoryview(data).cast("B")
        while view:
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                n = 0
            if n:
                view = view[n:]
            elif not self._wpoll.poll(self.timeout_ms):
                raise _Silent()
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here."""


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

    ``ssh_command`` is the argv prefix of the ssh client (default ``["ssh"]``);
    callers pass ``GIT_SSH_COMMAND`` or ``core.sshCommand`` as git runs them
    (:func:`mlgit.gitlink.env.shell_command`: ``sh -c '... "$@"'``).
    ``remote_command`` is the git-ml command to run on the host (default
    ``git-ml``); callers pass ``git config ml.<remote>.gitml``. It is given to the
    remote shell as it is (like git's ``remote.<name>.uploadpack``), so it may be a
    path or a command with arguments; the store path is quoted for that shell.

    One ssh process serves every request, one request at a time (the backend can be
    shared between threads); :meth:`close` ends it. A request that fails because the
    connection dropped raises RemoteUnreachableError; the next request starts a new
    connection.
    """

    def __init__(self, spec: RemoteSpec, ssh_command: list[str] | None = None,
                 remote_command: str | None = None, timeout: float | None = None) -> None:
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
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        if not self.timeout > 0:
            raise UsageError(f"remote {spec.name!r}: the timeout must be a positive number "
                             "of seconds")
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: _Pipe | None = None
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
        assert proc.stdin is not None
        assert proc.stdout is not None
        # Raw descriptors only from here on: the buffered objects stay empty.
        self._pipe = _Pipe(proc.stdout.fileno(), proc.stdin.fileno(), self.timeout)
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
            reply = self._exchange({"op": Op.HELLO, "protocol": PROTOCOL_VERSION})
        except _Lost as e:
            if e.detail:
                self._shutdown(0.5)
                msg = f"cannot open a git-ml session on {self._where}: {e.detail}"
                raise e.error(msg) from None
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
            raise RemoteRefusedError(f"git-ml on {self._where} speaks protocol "
                                     f"{str(proto)[:20]}, this one {PROTOCOL_VERSION}; install "
                                     "matching git-ml versions")
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

    def _shutdown(self, grace: float = _BYE_SECONDS) -> None:
        """End the ssh process (politely first: closing its input ends the session).

        It gets ``grace`` seconds to exit, then it is killed.
        """
        proc = self._proc
        if proc is None:
            return
        self._pipe = None
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if proc.poll() is None:
            try:
                proc.wait(grace)
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
                return RemoteUnreachableError(f"cannot connect to {where}: connection refused "
                                              "(is an ssh server running there, on that port?)")
            if "could not resolve hostname" in low or "name or service not known" in low:
                return RemoteUnreachableError(f"cannot connect to {where}: unknown host")
            for reason in ("no route to host", "network is unreachable", "timed out"):
                if reason in low:
                    return RemoteUnreachableError(f"cannot connect to {where}: {reason}")
            if "host key verification failed" in low:
                return RemoteAuthError(f"ssh does not know the host key of {where}: connect "
                                       f"once with `ssh {self.spec.host}` to check and accept "
                                       "it")
            if "permission denied" in low or "too many authentication failures" in low:
                return RemoteAuthError(
                    f"ssh could not log in to {where}: authentication failed (git-ml runs "
                    "ssh with BatchMode, so it cannot ask for a password or passphrase); "
                    "use an ssh key that the host accepts, loaded in your ssh agent")
        if rc != 255 and (rc in (126, 127) or "command not found" in low
                          or ": not found" in low):
            return RemoteRefusedError(
                f"git-ml is not installed on {where} (or not on its PATH): running "
                f"`{self.remote_command}` there failed; install it there with "
                f"`pip install mlgit`, or set `git config ml.{self.spec.name or '<remote>'}"
                ".gitml /path/to/git-ml`")
        if "no such command" in low and "serve-store" in low:
            return RemoteRefusedError(f"the git-ml on {where} is too old to serve a store over "
                                      "ssh; upgrade it there")
        if rc == 255 or rc is None:  # ssh's own failure, or no answer at all
            return RemoteUnreachableError(f"cannot open a git-ml session on {where}: "
                                          f"{self._why(rc)}")
        return RemoteRefusedError(f"cannot open a git-ml session on {where}: {self._why(rc)}")

    def _lost(self, op: str, lost: _Lost) -> MlgitError:
        """The error for a session that broke off during ``op``; ends the session."""
        rc = self._finish(_BYE_SECONDS if not lost.detail else 0.5)
        why = lost.detail or self._why(rc)
        self._shutdown(0.5 if lost.detail else _BYE_SECONDS)
        if lost.error is not RemoteUnreachableError:
            return lost.error(f"{self.url}: session ended during {op}: {why}")
        return RemoteUnreachableError(f"connection to {self._where} lost during {op} ({why})")

    def _silent(self) -> _Lost:
        return _Lost(f"no answer for {self.timeout:g} s; `git config ml.timeout SECONDS` "
                     "waits longer")

    # -- messages -----------------------------------------------------------------------

    def _send(self, header: dict[str, Any], payload: bytes | memoryview | None = None) -> None:
        pipe = self._pipe
        assert pipe is not None
        try:
            write_frame(pipe, header, payload)
        except Disconnected:
            raise _Lost() from None
        except _Silent:
            raise self._silent() from None

    def _recv(self) -> Frame:
        pipe = self._pipe
        assert pipe is not None
        try:
            frame = read_frame(pipe)
        except Disconnected:
            raise _Lost() from None
        except _Silent:
            raise self._silent() from None
        except FormatError as e:
            raise _Lost(f"{self._where} sent something that is not git-ml's protocol ({e}); "
                        "does a shell startup file there print to standard output?",
                        RemoteProtocolError) from None
        if frame is None:
            raise _Lost()
        if not isinstance(frame[0].get("ok"), bool):
            raise _Lost(f"{self._where} sent an answer without 'ok'", RemoteProtocolError)
        return frame

    def _answer(self) -> Frame:
        """The next answer; an error answer is raised as its mlgit.errors class."""
        h, payload = self._recv()
        if not h["ok"]:
            cls = error_class(h.get("error"))
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
                raise _Lost(f"{self._where} sent a malformed byte stream", RemoteProtocolError)
            yield payload
            if not h["more"]:
                return

    def _send_stream(self, pieces: Iterator[bytes | memoryview]) -> None:
        prev = next(pieces)
        for piece in pieces:
            self._send({"op": Op.DATA, "more": True}, prev)
            prev = piece
        self._send({"op": Op.DATA, "more": False}, prev)

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
                raise self._lost(op, e) from None
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
            self._send({"op": Op.READ_CONFIG})
            h, payload = self._answer()
            if not h.get("exists"):
                return None
            if payload is None:
                raise _Lost(f"{self._where} sent a config without its bytes",
                            RemoteProtocolError)
            if len(payload) > MAX_CONFIG_LEN:
                raise FormatError(f"{self.url}: config is {len(payload)} bytes, more than the "
                                  f"{MAX_CONFIG_LEN} allowed")
            return payload

        result: bytes | None = self._request("read_config", run)
        return result

    def init(self, config: bytes) -> None:
        """See :meth:`Backend.init`."""
        self._request("init", lambda: self._exchange({"op": Op.INIT}, config))

    def list_packs(self) -> list[str]:
        """See :meth:`Backend.list_packs`."""
        def run() -> list[str]:
            packs = self._exchange({"op": Op.LIST_PACKS}).get("packs")
            if not isinstance(packs, list):
                raise _Lost(f"{self._where} sent a malformed pack list", RemoteProtocolError)
            return sorted(check_pack_name(str(p)) for p in packs)

        result: list[str] = self._request("list_packs", run)
        return result

    def read_index(self, stem: str) -> bytes:
        """See :meth:`Backend.read_index`."""
        check_pack_name(stem)

        def run() -> bytes:
            self._send({"op": Op.READ_INDEX, "stem": stem})
            parts: list[bytes] = []
            got = 0
            for piece in self._recv_stream():
                got += len(piece)
                if got > MAX_INDEX_LEN:
                    raise _Lost(f"{stem}.idx is longer than the {MAX_INDEX_LEN} bytes an "
                                "index may have", FormatError)
                parts.append(piece)
            return b"".join(parts)

        result: bytes = self._request("read_index", run)
        return result

    def read_pack(self, stem: str, offset: int, length: int) -> bytes:
        """See :meth:`Backend.read_pack`."""
        check_pack_name(stem)
        if offset < 0 or length < 0:
            raise FormatError(f"{self.url}: bad range {offset}+{length} of {stem}.pack")

        def run() -> bytes:
            self._send({"op": Op.READ_PACK, "stem": stem, "offset": offset, "length": length})
            parts: list[bytes] = []
            got = 0
            for piece in self._recv_stream():
                got += len(piece)
                if got > length:
                    raise _Lost(f"{self._where} sent more bytes than asked for",
                                RemoteProtocolError)
                parts.append(piece)
            if got != length:
                raise _Lost(f"{self._where} sent {got} bytes of the {length} asked for",
                            RemoteProtocolError)
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

            def run() -> None:
                h = self._exchange({"op": Op.PUT_PACK, "stem": stem})
                if h.get("send_pack"):
                    self._send_stream(file_pieces())
                self._send_stream(pieces_of(index))
                self._answer()

            self._request("put_pack", run)

    def list_refs(self, on_bad: OnBadRef | None = None) -> dict[str, ObjectID]:
        """See :meth:`Backend.list_refs`: the server names refs it could not read."""
        def run() -> tuple[dict[str, ObjectID], list[tuple[str, FormatError]]]:
            h = self._exchange({"op": Op.LIST_REFS})
            refs, bad = h.get("refs"), h.get("bad", {})
            if not isinstance(refs, dict) or not isinstance(bad, dict):
                raise _Lost(f"{self._where} sent a malformed ref list", RemoteProtocolError)
            out: dict[str, ObjectID] = {}
            problems: list[tuple[str, FormatError]] = []
            for k, v in refs.items():
                try:
                    out[check_ref_path(str(k))] = parse_object_id(str(v))
                except FormatError as e:
                    problems.append((str(k)[:80],
                                     FormatError(f"{self.url}: ref {str(k)[:80]!r}: {e}")))
            problems += [(str(k)[:80], FormatError(f"{self.url}: {str(v)[:500]}"))
                         for k, v in bad.items()]
            return out, problems

        result, problems = self._request("list_refs", run)
        for ref, err in problems:
            if on_bad is None:
                raise err
            on_bad(ref, err)
        refs: dict[str, ObjectID] = result
        return refs

    def update_ref(self, ref: str, new: ObjectID, expect: ObjectID | None) -> None:
        """See :meth:`Backend.update_ref`."""
        check_ref_path(ref)
        self._request("update_ref", lambda: self._exchange(
            {"op": Op.UPDATE_REF, "ref": ref, "new": new, "expect": expect}))

    def delete_ref(self, ref: str, expect: ObjectID) -> None:
        """See :meth:`Backend.delete_ref`; a server too old for it is a RemoteRefusedError."""
        check_ref_path(ref)
        expect = parse_object_id(expect)
        try:
            self._request("delete_ref", lambda: self._exchange(
                {"op": Op.DELETE_REF, "ref": ref, "expect": expect}))
        except UsageError as e:
            if not str(e).startswith(UNKNOWN_REQUEST):
                raise
            raise RemoteRefusedError(f"the git-ml on {self._where} is too old to delete refs (it "
                                     "does not know the request 'delete_ref'); upgrade git-ml "
                                     "there") from None

    def close(self) -> None:
        """End the ssh session (idempotent); the next request would start a new one."""
        with self._lock:
            self._shutdown()
