r"""The server side of the SSH transport: ``git-ml serve-store PATH`` on the remote host.

As ``git-upload-pack`` does for git, :func:`serve` speaks a small protocol on its
standard input and output, and :class:`mlgit.sync.ssh.SSHBackend` runs it through
``ssh``. Every request is carried out by a :class:`~mlgit.sync.backend.LocalBackend`
on the store, so the remote store keeps exactly the contracts of a local one.

The protocol (framing, the requests and their answers, the bounds on what each
side receives) is :mod:`mlgit.sync.protocol`, which the client imports too. The
server takes an index stream of at most ``MAX_INDEX_LEN`` bytes and a pack stream of
at most ``MAX_PACK_LEN``; a stream past its bound ends the session with a
FormatError answer.

The session ends when the client closes its end (end of input at a message boundary:
:func:`serve` returns 0; after a malformed message, a failed hello, or input that
ends inside a message, 1). A received pack is written to ``tmp/`` and fsynced,
renamed into ``packs/`` and the directory fsynced, and only then is the index
written (by ``LocalBackend.put_pack``): a pack cut off mid-transfer is never
visible, and its temporary file is removed. When storing a pack fails (a full
disk), the server still reads both streams to their end, then answers with the
error, so that the session stays in step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from mlgit.errors import FormatError, MlgitError, RemoteRefusedError, UsageError
from mlgit.format.config import FORMAT_VERSION
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_INDEX_LEN, MAX_PACK_LEN
from mlgit.store.fsutil import DurableFile
from mlgit.sync.backend import LocalBackend
from mlgit.sync.layout import check_pack_name, check_ref_path
from mlgit.sync.protocol import (
    PIECE,
    PROTOCOL_VERSION,
    REQUESTS,
    UNKNOWN_REQUEST,
    Disconnected,
    Frame,
    Op,
    error_answer,
    pieces_of,
    read_frame,
    write_frame,
)
from mlgit.sync.remote import RemoteSpec, local_store

__all__ = ["resolve_store_root", "serve", "store_format"]


def resolve_store_root(path: Path) -> Path:
    """The store that ``path`` names, found as for a local remote.

    A work tree's ``.git/ml``, a bare repository's ``ml/``, or a store directory
    itself (one that has a config); the store need not exist yet in the first two
    cases. UsageError when ``path`` is none of these.
    """
    try:
        return local_store(RemoteSpec("", str(path), "local", str(path)))
    except UsageError:
        raise UsageError(f"{path} is not a git repository (nor a git-ml store)") from None


def store_format(config: bytes | None) -> int | None:
    """The format version a store config declares; None if none or unreadable."""
    if config is None:
        return None
    try:
        obj = json.loads(config)
    except (ValueError, RecursionError):
        return None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    return fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else None


def _error_header(e: BaseException, where: str) -> dict[str, Any]:
    if isinstance(e, _EndSession):
        name, message = "FormatError", str(e)
    elif isinstance(e, MlgitError):
        name, message = type(e).__name__, str(e)
    elif isinstance(e, OSError):
        name = "MlgitError"
        fname = f" ({os.path.basename(str(e.filename))})" if e.filename else ""
        message = f"{where}: {e.strerror or e}{fname}"
    else:
        name = "MlgitError"
        message = f"internal error in git-ml serve-store: {type(e).__name__}: {e}"
    return error_answer(name, message)


def _str(h: dict[str, Any], key: str) -> str:
    v = h.get(key)
    if not isinstance(v, str):
        raise FormatError(f"request {str(h.get('op'))[:40]}: {key} must be a string")
    return v


def _uint(h: dict[str, Any], key: str) -> int:
    v = h.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise FormatError(f"request {str(h.get('op'))[:40]}: {key} must be an integer >= 0")
    return v


class _EndSession(Exception):
    """A malformed message: answer with a FormatError, then exit."""


class _Session:
    def __init__(self, backend: LocalBackend, inp: BinaryIO, out: BinaryIO) -> None:
        self.backend = backend
        self.inp = inp
        self.out = out

    def send(self, header: dict[str, Any], payload: bytes | memoryview | None = None) -> None:
        write_frame(self.out, header, payload)

    def send_stream(self, pieces: Iterator[bytes | memoryview]) -> None:
        """Send pieces as a byte stream; ``pieces`` yields at least one (maybe empty)."""
        prev = next(pieces)
        for piece in pieces:
            self.send({"ok": True, "more": True}, prev)
            prev = piece
        self.send({"ok": True, "more": False}, prev)

    def recv_stream(self, sink: Callable[[bytes], None], limit: int) -> None:
        """Read a byte stream from the client, giving each piece to ``sink``.

        A stream longer than ``limit`` bytes ends the session (it is not read on).
        """
        got = 0
        while True:
            try:
                frame = read_frame(self.inp)
            except FormatError as e:
                raise _EndSession(str(e)) from None
            if frame is None:
                raise Disconnected("input ended inside a byte stream")
            h, payload = frame
            if h.get("op") != Op.DATA or payload is None or not isinstance(h.get("more"), bool):
                raise _EndSession("malformed message: expected a data message")
            got += len(payload)
            if got > limit:
                raise _EndSession(f"malformed message: a byte stream longer than the {limit} "
                                  "bytes allowed")
            sink(payload)
            if not h["more"]:
                return

    # One method per request; each sends its whole answer.

    def op_read_config(self, _h: dict[str, Any], _payload: bytes | None) -> None:
        config = self.backend.read_config()
        if config is None:
            self.send({"ok": True, "exists": False})
        else:
            self.send({"ok": True, "exists": True}, config)

    def op_init(self, _h: dict[str, Any], payload: bytes | None) -> None:
        if payload is None:
            raise FormatError("request init: the config is missing")
        self.backend.init(payload)
        self.send({"ok": True})

    def op_list_packs(self, _h: dict[str, Any], _payload: bytes | None) -> None:
        self.send({"ok": True, "packs": self.backend.list_packs()})

    def op_read_index(self, h: dict[str, Any], _payload: bytes | None) -> None:
        self.send_stream(pieces_of(self.backend.read_index(_str(h, "stem"))))

    def op_read_pack(self, h: dict[str, Any], _payload: bytes | None) -> None:
        stem, offset, length = _str(h, "stem"), _uint(h, "offset"), _uint(h, "length")

        def pieces() -> Iterator[bytes]:
            for i in range(0, max(length, 1), PIECE):
                yield self.backend.read_pack(stem, offset + i, min(PIECE, length - i))

        self.send_stream(pieces())

    def op_put_pack(self, h: dict[str, Any], _payload: bytes | None) -> None:
        stem = check_pack_name(_str(h, "stem"))
        root = self.backend.root
        final = root / "packs" / f"{stem}.pack"
        send_pack = not final.exists()
        self.send({"ok": True, "send_pack": send_pack})
        # From here on the client streams; read all of it whatever fails, so that
        # the next message is read where it starts, and report the failure after.
        failure: BaseException | None = None
        f: DurableFile | None = None

        def to_file(piece: bytes) -> None:
            nonlocal failure, f
            if f is None:
                return
            try:
                f.write(piece)
            except OSError as e:  # e.g. a full disk: keep reading, report it at the end
                failure = e
                f.discard()
                f = None

        try:
            if send_pack:
                try:
                    (root / "tmp").mkdir(parents=True, exist_ok=True)
                    f = DurableFile(root / "tmp", stem)
                except OSError as e:
                    failure = e
                self.recv_stream(to_file, MAX_PACK_LEN)
            index = bytearray()
            self.recv_stream(index.extend, MAX_INDEX_LEN)
            if failure is not None:
                raise failure
            if f is not None:
                # The durable write of LocalBackend.put_pack, without its copy of the
                # whole pack; then it writes the index (and checks the name again).
                f.commit(final, overwrite=False)
            self.backend.put_pack(stem, final, bytes(index))
        finally:
            if f is not None:
                f.discard()  # a pack cut off mid-stream is never visible
        self.send({"ok": True})

    def op_list_refs(self, _h: dict[str, Any], _payload: bytes | None) -> None:
        bad: dict[str, str] = {}

        def on_bad(ref: str, e: FormatError) -> None:
            bad[ref] = " ".join(str(e).split())[:1000]

        refs = self.backend.list_refs(on_bad)
        self.send({"ok": True, "refs": dict(refs), **({"bad": bad} if bad else {})})

    def op_update_ref(self, h: dict[str, Any], _payload: bytes | None) -> None:
        ref = check_ref_path(_str(h, "ref"))
        new = parse_object_id(_str(h, "new"))
        expect: ObjectID | None = None
        if h.get("expect") is not None:
            expect = parse_object_id(_str(h, "expect"))
        self.backend.update_ref(ref, new, expect)
        self.send({"ok": True})

    def op_delete_ref(self, h: dict[str, Any], _payload: bytes | None) -> None:
        ref = check_ref_path(_str(h, "ref"))
        self.backend.delete_ref(ref, parse_object_id(_str(h, "expect")))
        self.send({"ok": True})


_OPS: dict[str, Callable[[_Session, dict[str, Any], bytes | None], None]] = {
    Op.READ_CONFIG: _Session.op_read_config,
    Op.INIT: _Session.op_init,
    Op.LIST_PACKS: _Session.op_list_packs,
    Op.READ_INDEX: _Session.op_read_index,
    Op.READ_PACK: _Session.op_read_pack,
    Op.PUT_PACK: _Session.op_put_pack,
    Op.LIST_REFS: _Session.op_list_refs,
    Op.UPDATE_REF: _Session.op_update_ref,
    Op.DELETE_REF: _Session.op_delete_ref,
}
assert tuple(_OPS) == REQUESTS, "serve.py answers exactly the requests protocol.py names"


def _hello(store_root: Path, frame: Frame) -> tuple[LocalBackend, dict[str, Any]]:
    h, _ = frame
    if h.get("op") != Op.HELLO:
        raise _EndSession("malformed message: the session must start with hello")
    proto = h.get("protocol")
    if not isinstance(proto, int) or isinstance(proto, bool) or proto < PROTOCOL_VERSION:
        raise RemoteRefusedError(f"git-ml here speaks protocol {PROTOCOL_VERSION}, not "
                                 f"{str(proto)[:20]}; install matching git-ml versions")
    backend = LocalBackend(resolve_store_root(store_root), str(store_root))
    reply = {"ok": True, "protocol": PROTOCOL_VERSION, "format": FORMAT_VERSION,
             "store_format": store_format(backend.read_config())}
    return backend, reply


def serve(store_root: Path, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer requests on ``stdin``/``stdout`` until the client hangs up.

    ``store_root`` is the path the client named: a work tree, a bare repository or
    a store directory (see :func:`resolve_store_root`); its store need not exist yet
    (``init`` creates it). Returns 0 when the client closed the session, 1 after
    a malformed message, a failed ``hello`` or a lost connection. Nothing but
    protocol messages is written to ``stdout``.
    """
    try:
        first = read_frame(stdin)
        if first is None:
            return 1
        try:
            backend, reply = _hello(store_root, first)
        except (MlgitError, OSError, _EndSession) as e:
            write_frame(stdout, _error_header(e, str(store_root)))
            return 1
        write_frame(stdout, reply)
        session = _Session(backend, stdin, stdout)
        while True:
            try:
                frame = read_frame(stdin)
            except FormatError as e:
                write_frame(stdout, _error_header(e, backend.url))
                return 1
            if frame is None:
                return 0
            h, payload = frame
            op = h.get("op")
            method = _OPS.get(op) if isinstance(op, str) else None
            try:
                if method is None:
                    raise UsageError(f"{UNKNOWN_REQUEST} {str(op)[:40]!r}; install matching "
                                     "git-ml versions")
                method(session, h, payload)
            except Disconnected:
                raise
            except _EndSession as e:
                session.send(_error_header(e, backend.url))
                return 1
            except (MlgitError, OSError) as e:
                session.send(_error_header(e, backend.url))
            except Exception as e:  # noqa: BLE001 - a bug: tell the client, and stop (out of step)
                session.send(_error_header(e, backend.url))
                return 1
    except Disconnected:
        return 1
