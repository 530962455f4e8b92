r"""The server side of the SSH transport: ``git-ml serve-store PATH`` on the remote host.

As ``git-upload-pack`` does for git, :func:`serve` speaks a small protocol on its
standard input and output, and :class:`mlgit.sync.ssh.SSHBackend` runs it through
``ssh``. Every request is carried out by a :class:`~mlgit.sync.backend.LocalBackend`
on the store, so the remote store keeps exactly the contracts of a local one.

Framing. Both directions are a sequence of messages; one message is::

    length   4 bytes, unsigned big-endian: the byte length L of the header
    header   L bytes, a UTF-8 JSON object
    payload  only when the header has "size": N (an integer >= 0): exactly N raw bytes

L is at most 4 MiB (:data:`MAX_HEADER`) and N at most 1 MiB (:data:`MAX_PAYLOAD`, one
piece of a byte stream; a config travels as one payload and is at most 64 KiB); a
larger length, a header that is not a JSON object, or a "size" that is not such an
integer is a malformed message: the server answers with an error and ends the
session, and the client ends it too. Both bounds hold before anything is read, so
neither side ever allocates more for one message. (Text that a shell startup file
prints on the host is caught at once: 4 bytes of printable ASCII read as a length
are over 512 MiB.) Headers are written as compact ASCII JSON.
The start of a session, and a ranged read of 5 bytes at offset 8, byte by byte::

    client  00 00 00 1b  {"op":"hello","protocol":1}
    server  00 00 00 37  {"ok":true,"protocol":1,"format":1,"store_format":null}
    client  00 00 00 57  {"op":"read_pack","stem":"pack-<32 hex>","offset":8,"length":5}
    server  00 00 00 21  {"ok":true,"more":false,"size":5}  <5 bytes of the pack>

Byte streams (pack and index contents, both ways) never travel as one payload: they
are a run of data messages of at most 1 MiB each (:data:`PIECE`), each with header
``{"size": n, "more": true|false}`` (plus ``"op": "data"`` from the client, or
``"ok": true`` from the server); the last one has ``"more": false``. A server
reading a file for a stream may send an error message in place of any piece, which
ends the answer. Neither side holds more than one piece of a pack in memory.

Requests (client to server) have an ``"op"``; every answer has ``"ok"``. An error
answer is ``{"ok": false, "error": "<class>", "message": "<one line>"}``, where
``<class>`` names a class of :mod:`mlgit.errors` (``ConflictError``, ``FormatError``,
``UsageError``, ...; the client raises that class again, and :class:`MlgitError` for
a name it does not know). After an error answer to a request the session goes on;
after one to a malformed message, or to ``hello``, the server exits.

========================================  =================================================
request                                   answer
========================================  =================================================
``{"op":"hello","protocol":P}``           ``{"ok":true,"protocol":1,"format":F,
  first, and only first                   "store_format":S}``: the protocol the server
                                          will speak (<= P), the newest store format it
                                          knows, and the format in the store's config
                                          (null: no store yet, or no readable version)
``{"op":"read_config"}``                  ``{"ok":true,"exists":false}`` or
                                          ``{"ok":true,"exists":true,"size":N}`` + config
``{"op":"init","size":N}`` + config       ``{"ok":true}``
``{"op":"list_packs"}``                   ``{"ok":true,"packs":["pack-<h>", ...]}``
``{"op":"read_index","stem":S}``          a byte stream: the index file
``{"op":"read_pack","stem":S,``           a byte stream of exactly LEN bytes
  ``"offset":O,"length":LEN}``
``{"op":"put_pack","stem":S}``            ``{"ok":true,"send_pack":B}``; then the client
                                          sends the pack as a byte stream (only if B: the
                                          server has no such pack yet), then the index as
                                          a byte stream; then ``{"ok":true}``
``{"op":"list_refs"}``                    ``{"ok":true,"refs":{"datasets/x":"<id>",...},
                                          "bad":{"datasets/y":"<message>",...}}``: refs
                                          that could not be read are in ``bad`` (absent:
                                          none), the others in ``refs``
``{"op":"update_ref","ref":R,``           ``{"ok":true}``, or a ConflictError answer when
  ``"new":ID,"expect":ID|null}``          the ref does not hold ``expect``
``{"op":"delete_ref","ref":R,``           ``{"ok":true}`` once the ref is removed, or a
  ``"expect":ID}``                        ConflictError answer when it does not hold
                                          ``expect`` (or is gone)
========================================  =================================================

``delete_ref`` came after the first release of protocol 1; it did not change the
protocol's number, since a server that predates it answers it as any request it
does not know (a UsageError answer, the session going on), which the client
turns into "upgrade git-ml there".

Bounds on what is received: the client takes a config of at most 64 KiB
(``MAX_CONFIG_LEN``), an index stream of at most ``MAX_INDEX_LEN`` bytes, a pack
stream of exactly the length it asked for, and waits at most its timeout
(``ml.timeout``, 300 s by default) for the next bytes of an answer; the server takes
an index stream of at most ``MAX_INDEX_LEN`` bytes and a pack stream of at most
``MAX_PACK_LEN``. A stream past its bound ends the session with a FormatError.

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
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mlgit.errors import FormatError, MlgitError, UsageError
from mlgit.format.config import FORMAT_VERSION
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_INDEX_LEN, MAX_PACK_LEN
from mlgit.store.fsutil import DurableFile
from mlgit.sync.backend import LocalBackend, check_pack_name, check_ref_path
from mlgit.sync.remote import RemoteSpec, local_store

__all__ = [
    "MAX_HEADER",
    "MAX_PAYLOAD",
    "PIECE",
    "PROTOCOL_VERSION",
    "UNKNOWN_REQUEST",
    "Disconnected",
    "Frame",
    "Reader",
    "Writer",
    "read_frame",
    "resolve_store_root",
    "serve",
    "store_format",
    "write_frame",
]

PROTOCOL_VERSION = 1
UNKNOWN_REQUEST = "git-ml here does not know the request"
"""How a server's error answer to a request it does not know begins (old servers too)."""
MAX_HEADER = 4 << 20
PIECE = 1 << 20
MAX_PAYLOAD = PIECE
_LEN = struct.Struct(">I")

Frame = tuple[dict[str, Any], bytes | None]


class Reader(Protocol):
    """What :func:`read_frame` reads from: a binary file, or ssh's pipe with a timeout."""

    def read(self, n: int, /) -> bytes:
        """At most ``n`` bytes; ``b""`` at end of input."""
        ...


class Writer(Protocol):
    """What :func:`write_frame` writes to."""

    def write(self, data: bytes | memoryview, /) -> int:
        """Write all of ``data``."""
        ...

    def flush(self) -> None:
        """Push out what is buffered."""
        ...


class Disconnected(Exception):
    """The other side went away: end of input inside a message, or a broken pipe."""


def _read_exact(inp: Reader, n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at end of input."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            b = inp.read(n - got)
        except OSError as e:
            raise Disconnected(f"read failed: {e.strerror or e}") from None
        if not b:
            break
        parts.append(b)
        got += len(b)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_frame(inp: Reader) -> Frame | None:
    """The next message (header, payload or None); None at end of input before one.

    Raises :class:`Disconnected` when input ends inside a message and FormatError
    when the message is malformed (see the module docstring).
    """
    head = _read_exact(inp, 4)
    if not head:
        return None
    if len(head) < 4:
        raise Disconnected("input ended inside a message")
    (n,) = _LEN.unpack(head)
    if n > MAX_HEADER:
        raise FormatError(f"malformed message: a header of {n} bytes (at most {MAX_HEADER})")
    raw = _read_exact(inp, n)
    if len(raw) < n:
        raise Disconnected("input ended inside a message")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError("malformed message: the header is not UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise FormatError("malformed message: the header is not a JSON object")
    if "size" not in header:
        return header, None
    size = header["size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_PAYLOAD:
        raise FormatError(f"malformed message: bad payload size {str(size)[:40]}"
                          f" (an integer, at most {MAX_PAYLOAD})")
    payload = _read_exact(inp, size)
    if len(payload) < size:
        raise Disconnected("input ended inside a message")
    return header, payload


def write_frame(out: Writer, header: dict[str, Any],
                payload: bytes | memoryview | None = None) -> None:
    """Send one message (adding ``"size"`` for a payload) and flush it.

    Raises :class:`Disconnected` when the other side has gone.
    """
    if payload is not None:
        header = {**header, "size": len(payload)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    try:
        out.write(_LEN.pack(len(raw)) + raw)
        if payload is not None and len(payload):
            out.write(payload)
        out.flush()
    except (OSError, ValueError) as e:  # ValueError: write to a closed file
        raise Disconnected(f"write failed: {getattr(e, 'strerror', None) or e}") from None


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
    return {"ok": False, "error": name, "message": " ".join(message.split())[:1000]}


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
            if h.get("op") != "data" or payload is None or not isinstance(h.get("more"), bool):
                raise _EndSession("malformed message: expected a data message")
            got += len(payload)
            if got > limit:
                raise _EndSession(f"malformed message: a byte stream longer than the {limit} "
                                  "bytes allowed")
            sink(payload)
            if not h["more"]:
                return

    # One method per request; each sends its whole answer.

    def op_read_config(self, h: dict[str, Any], payload: bytes | None) -> None:
        config = self.backend.read_config()
        if config is None:
            self.send({"ok": True, "exists": False})
        else:
            self.send({"ok": True, "exists": True}, config)

    def op_init(self, h: dict[str, Any], payload: bytes | None) -> None:
        if payload is None:
            raise FormatError("request init: the config is missing")
        self.backend.init(payload)
        self.send({"ok": True})

    def op_list_packs(self, h: dict[str, Any], payload: bytes | None) -> None:
        self.send({"ok": True, "packs": self.backend.list_packs()})

    def op_read_index(self, h: dict[str, Any], payload: bytes | None) -> None:
        data = memoryview(self.backend.read_index(_str(h, "stem")))
        self.send_stream(data[i:i + PIECE] for i in range(0, max(len(data), 1), PIECE))

    def op_read_pack(self, h: dict[str, Any], payload: bytes | None) -> None:
        stem, offset, length = _str(h, "stem"), _uint(h, "offset"), _uint(h, "length")

        def pieces() -> Iterator[bytes]:
            for i in range(0, max(length, 1), PIECE):
                yield self.backend.read_pack(stem, offset + i, min(PIECE, length - i))

        self.send_stream(pieces())

    def op_put_pack(self, h: dict[str, Any], payload: bytes | None) -> None:
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

    def op_list_refs(self, h: dict[str, Any], payload: bytes | None) -> None:
        bad: dict[str, str] = {}

        def on_bad(ref: str, e: FormatError) -> None:
            bad[ref] = " ".join(str(e).split())[:1000]

        refs = self.backend.list_refs(on_bad)
        self.send({"ok": True, "refs": dict(refs), **({"bad": bad} if bad else {})})

    def op_update_ref(self, h: dict[str, Any], payload: bytes | None) -> None:
        ref = check_ref_path(_str(h, "ref"))
        new = parse_object_id(_str(h, "new"))
        expect: ObjectID | None = None
        if h.get("expect") is not None:
            expect = parse_object_id(_str(h, "expect"))
        self.backend.update_ref(ref, new, expect)
        self.send({"ok": True})

    def op_delete_ref(self, h: dict[str, Any], payload: bytes | None) -> None:
        ref = check_ref_path(_str(h, "ref"))
        self.backend.delete_ref(ref, parse_object_id(_str(h, "expect")))
        self.send({"ok": True})


_OPS: dict[str, Callable[[_Session, dict[str, Any], bytes | None], None]] = {
    "read_config": _Session.op_read_config,
    "init": _Session.op_init,
    "list_packs": _Session.op_list_packs,
    "read_index": _Session.op_read_index,
    "read_pack": _Session.op_read_pack,
    "put_pack": _Session.op_put_pack,
    "list_refs": _Session.op_list_refs,
    "update_ref": _Session.op_update_ref,
    "delete_ref": _Session.op_delete_ref,
}


def _hello(store_root: Path, frame: Frame) -> tuple[LocalBackend, dict[str, Any]]:
    h, _ = frame
    if h.get("op") != "hello":
        raise _EndSession("malformed message: the session must start with hello")
    proto = h.get("protocol")
    if not isinstance(proto, int) or isinstance(proto, bool) or proto < PROTOCOL_VERSION:
        raise UsageError(f"git-ml here speaks protocol {PROTOCOL_VERSION}, not "
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
            except Exception as e:  # a bug: the messages may be out of step, so stop
                session.send(_error_header(e, backend.url))
                return 1
    except Disconnected:
        return 1
