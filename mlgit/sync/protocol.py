r"""The SSH transport's protocol: framing, message names, limits and error answers.

Both sides import this module and nothing of each other: the client
(:class:`mlgit.sync.ssh.SSHBackend`) and the server (:func:`mlgit.sync.serve.serve`,
which ``git-ml serve-store PATH`` runs on the remote host).

Framing. Both directions are a sequence of messages; one message is::

    length   4 bytes, unsigned big-endian: the byte length L of the header
    header   L bytes, a UTF-8 JSON object
    payload  only when the header has "size": N (an integer >= 0): exactly N raw bytes

L is at most 4 MiB (:data:`MAX_HEADER`) and N at most 1 MiB (:data:`MAX_PAYLOAD`, one
piece of a byte stream; a config travels as one payload and is at most 64 KiB); a
larger length, a header that is not a JSON object, or a "size" that is not such an
integer is a malformed message (:func:`read_frame` raises FormatError): the server
answers with an error and ends the session, and the client ends it too. Both bounds
hold before anything is read, so neither side ever allocates more for one message.
(Text that a shell startup file prints on the host is caught at once: 4 bytes of
printable ASCII read as a length are over 512 MiB.) Headers are written as compact
ASCII JSON. The start of a session, and a ranged read of 5 bytes at offset 8, byte
by byte::

    client  00 00 00 1b  {"op":"hello","protocol":1}
    server  00 00 00 37  {"ok":true,"protocol":1,"format":1,"store_format":null}
    client  00 00 00 57  {"op":"read_pack","stem":"pack-<32 hex>","offset":8,"length":5}
    server  00 00 00 21  {"ok":true,"more":false,"size":5}  <5 bytes of the pack>

Byte streams (pack and index contents, both ways) never travel as one payload: they
are a run of data messages of at most 1 MiB each (:data:`PIECE`), each with header
``{"size": n, "more": true|false}`` (plus ``"op": "data"`` from the client, or
``"ok": true`` from the server); the last one has ``"more": false``
(:func:`pieces_of` cuts bytes into such pieces). A server reading a file for a
stream may send an error message in place of any piece, which ends the answer.
Neither side holds more than one piece of a pack in memory.

Requests (client to server) have an ``"op"`` (the names are :class:`Op`); every
answer has ``"ok"``. An error answer is ``{"ok": false, "error": "<class>",
"message": "<one line>"}`` (:func:`error_answer`), where ``<class>`` names a class
of :mod:`mlgit.errors` (``ConflictError``, ``FormatError``, ``UsageError``, ...);
the client raises that class again (:func:`error_class`), and
:class:`~mlgit.errors.RemoteRefusedError` for ``MlgitError`` or a name it does not
know: the server failed to carry the request out. After an error answer to a
request the session goes on; after one to a malformed message, or to ``hello``,
the server exits.

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
does not know (a UsageError answer beginning with :data:`UNKNOWN_REQUEST`, the
session going on), which the client turns into "upgrade git-ml there".

Bounds on what is received: the client takes a config of at most 64 KiB
(``MAX_CONFIG_LEN``), an index stream of at most ``MAX_INDEX_LEN`` bytes, a pack
stream of exactly the length it asked for, and waits at most its timeout
(``ml.timeout``, 300 s by default) for the next bytes of an answer; the server takes
an index stream of at most ``MAX_INDEX_LEN`` bytes and a pack stream of at most
``MAX_PACK_LEN``. A stream past its bound ends the session with a FormatError.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any, Protocol

import mlgit.errors as errors  # (not "from mlgit import": that is the top layer)
from mlgit.errors import FormatError, MlgitError, RemoteRefusedError

__all__ = [
    "MAX_HEADER",
    "MAX_PAYLOAD",
    "PIECE",
    "PROTOCOL_VERSION",
    "REQUESTS",
    "UNKNOWN_REQUEST",
    "Disconnected",
    "Frame",
    "Op",
    "Reader",
    "Writer",
    "error_answer",
    "error_class",
    "pieces_of",
    "read_frame",
    "write_frame",
]

PROTOCOL_VERSION = 1
UNKNOWN_REQUEST = "git-ml here does not know the request"
"""How a server's error answer to a request it does not know begins (old servers too)."""
MAX_HEADER = 4 << 20
"""The longest header a message may have, in bytes."""
PIECE = 1 << 20
"""The longest piece of a byte stream, in bytes."""
MAX_PAYLOAD = PIECE
"""The longest payload a message may carry, in bytes."""
_LEN = struct.Struct(">I")

Frame = tuple[dict[str, Any], bytes | None]
"""One message: its header and its payload (None: the header has no ``size``)."""


class Op:
    """The names of the messages a client sends (the ``"op"`` of a header)."""

    HELLO = "hello"
    READ_CONFIG = "read_config"
    INIT = "init"
    LIST_PACKS = "list_packs"
    READ_INDEX = "read_index"
    READ_PACK = "read_pack"
    PUT_PACK = "put_pack"
    LIST_REFS = "list_refs"
    UPDATE_REF = "update_ref"
    DELETE_REF = "delete_ref"
    DATA = "data"
    """One piece of a byte stream the client sends (not a request)."""


REQUESTS = (Op.READ_CONFIG, Op.INIT, Op.LIST_PACKS, Op.READ_INDEX, Op.READ_PACK, Op.PUT_PACK,
            Op.LIST_REFS, Op.UPDATE_REF, Op.DELETE_REF)
"""Every request a server answers after ``hello``."""


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


def pieces_of(data: bytes | memoryview) -> Iterator[memoryview]:
    """``data`` cut into the pieces of a byte stream: at least one (maybe empty), each <= PIECE."""
    view = memoryview(data).cast("B")
    for i in range(0, max(len(view), 1), PIECE):
        yield view[i:i + PIECE]


def error_answer(name: str, message: str) -> dict[str, Any]:
    """The header of an error answer: class ``name``, ``message`` as one line of <= 1000."""
    return {"ok": False, "error": name, "message": " ".join(message.split())[:1000]}


def error_class(name: object) -> type[MlgitError]:
    """The class to raise for an error answer naming ``name``.

    A class of :mod:`mlgit.errors` by that name; RemoteRefusedError for the base
    class ``MlgitError`` (what a server sends for a failure of its own, such as a
    full disk) and for any name this git-ml does not know.
    """
    if isinstance(name, str) and name in errors.__all__ and name != "MlgitError":
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, MlgitError):
            return cls
    return RemoteRefusedError
