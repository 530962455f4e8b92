"""TensorFlow event files without TensorFlow: TFRecord framing, checked and bounded.

An event file (``events.out.tfevents.*``) is a sequence of TFRecords, each::

    uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes
    | length bytes of data | uint32 masked CRC32C of the data

and each record's data is one ``Event`` protocol buffer. This module reads and
writes that framing itself (:func:`read_records`, :func:`frame`), so that reading
a log never imports TensorFlow: the ``Event`` messages are decoded with the
protobuf classes TensorBoard ships (``tensorboard.compat.proto``), or, when only
TensorFlow is installed, with TensorFlow's own (:func:`event_class`).

Event files come from teammates, so the reader trusts nothing: a length whose
header fails its CRC, or data that fails its CRC, is a :class:`FormatError`
naming the file and the offset; a record longer than
:data:`~mlgit.format.limits.MAX_EVENT_RECORD_LEN` is skipped unread (or refused,
as the caller asks), so no length field makes it allocate; a record cut short at
the end of the file (a log still being written) ends the file quietly.

CRC32C comes from ``google-crc32c`` (C) when installed, else from a table here
(about 12 MB/s: enough for scalar logs). Pure reading; nothing here prints.
"""

from __future__ import annotations

import importlib
import io
import struct
from collections.abc import Iterator
from typing import IO, Any

from mlgit.errors import FormatError, MissingDependencyError
from mlgit.format.limits import MAX_EVENT_RECORD_LEN

__all__ = ["BOARD_INSTALL_HINT", "crc32c", "event_class", "event_scalars", "frame",
           "is_record_header", "masked_crc", "read_records", "tensor_scalar"]

BOARD_INSTALL_HINT = "pip install 'mlgit[board]'"
_HEADER = 12
_FOOTER = 4
_BLOCK = 1 << 20

_TABLE: list[int] = []


def _crc32c_table(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    if not _TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _TABLE.append(c)
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _fast_crc() -> Any:
    """google-crc32c's C ``extend``, or None when it is absent or only pure Python."""
    try:
        mod = importlib.import_module("google_crc32c")
    except ImportError:
        return None
    if getattr(mod, "implementation", "") != "c":
        return None
    return mod.extend


_EXTEND = _fast_crc()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C (Castagnoli) of ``data``, continuing from ``crc`` (0 to start)."""
    if _EXTEND is not None:
        return int(_EXTEND(crc, bytes(data)))
    return _crc32c_table(data, crc)


def masked_crc(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC32C TFRecords store: rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """``data`` as one TFRecord (length, its masked CRC, data, the data's masked CRC)."""
    head = struct.pack("<Q", len(data))
    return (head + struct.pack("<I", masked_crc(head)) + data
            + struct.pack("<I", masked_crc(data)))


def is_record_header(head: bytes) -> bool:
    """True if ``head`` starts with a TFRecord header (a length and its masked CRC)."""
    if len(head) < _HEADER:
        return False
    (masked,) = struct.unpack("<I", head[8:12])
    return bool(masked == masked_crc(head[:8]))


def _size(f: IO[bytes]) -> int | None:
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
        return end
    except (OSError, ValueError):
        return None


def _read_exact(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts = []
    while n > 0:
        b = f.read(min(n, _BLOCK))
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def read_records(f: IO[bytes], where: str, *, max_len: int = MAX_EVENT_RECORD_LEN,
                 skip_large: bool = True) -> Iterator[tuple[int, bytes | None]]:
    """Each TFRecord of stream ``f`` as (offset, data), checked.

    A record longer than ``max_len`` is skipped unread (data None) when
    ``skip_large``, else refused. FormatError (naming ``where`` and the offset)
    for a header or data that fails its CRC, or a refused record. A record cut
    short by the end of the stream ends it: nothing is yielded for it.
    """
    size = _size(f)
    offset = f.tell() if size is not None else 0
    while True:
        head = _read_exact(f, _HEADER)
        if len(head) < _HEADER:
            return
        if not is_record_header(head):
            raise FormatError(f"{where}: not a TFRecord at byte {offset} (its length fails "
                              "its checksum)")
        (length,) = struct.unpack("<Q", head[:8])
        if length > max_len:
            if not skip_large:
                raise FormatError(f"{where}: record at byte {offset} claims {length} bytes, "
                                  f"more than the {max_len >> 20} MiB git-ml reads")
            if size is None or offset + _HEADER + length + _FOOTER > size:
                return  # cut short (or a length that points past the end)
            f.seek(length + _FOOTER, io.SEEK_CUR)
            yield offset, None
            offset += _HEADER + length + _FOOTER
            continue
        data = _read_exact(f, length)
        foot = _read_exact(f, _FOOTER)
        if len(data) < length or len(foot) < _FOOTER:
            return
        if struct.unpack("<I", foot)[0] != masked_crc(data):
            raise FormatError(f"{where}: record at byte {offset} fails its checksum")
        yield offset, data
        offset += _HEADER + length + _FOOTER


def event_class() -> Any:
    """The ``Event`` protobuf class: TensorBoard's (no TensorFlow), else TensorFlow's.

    MissingDependencyError when neither package is installed.
    """
    try:
        return importlib.import_module("tensorboard.compat.proto.event_pb2").Event
    except ImportError:
        pass
    try:  # imports TensorFlow itself: slow, and only when TensorBoard is missing
        return importlib.import_module("tensorflow.core.util.event_pb2").Event
    except ImportError:
        raise MissingDependencyError(
            f"reading TensorFlow event files needs TensorBoard: {BOARD_INSTALL_HINT}"
        ) from None


# dtype number → (repeated field of a TensorProto, struct format of one element)
_DTYPES: dict[int, tuple[str, str]] = {
    1: ("float_val", "<f"), 2: ("double_val", "<d"), 3: ("int_val", "<i"),
    4: ("int_val", "<B"), 5: ("int_val", "<h"), 6: ("int_val", "<b"), 9: ("int64_val", "<q"),
    10: ("bool_val", "<?"), 14: ("half_val", "<H"), 17: ("int_val", "<H"),
    19: ("half_val", "<e"), 22: ("uint32_val", "<I"), 23: ("uint64_val", "<Q"),
}
_BFLOAT16 = 14
_HALF = 19


def tensor_scalar(tensor: Any) -> float | None:
    """The value of a rank-0 numeric (or bool) ``TensorProto``, or None if it is not one."""
    if tensor.tensor_shape.dim or tensor.tensor_shape.unknown_rank:
        return None
    spec = _DTYPES.get(tensor.dtype)
    if spec is None:
        return None
    field, fmt = spec
    content = tensor.tensor_content
    if content:
        if len(content) != struct.calcsize(fmt):
            return None
        (value,) = struct.unpack(fmt, content)
    else:
        values = getattr(tensor, field)
        if len(values) != 1:
            return None
        value = values[0]
        if tensor.dtype == _HALF:  # half_val holds the bits
            (value,) = struct.unpack("<e", struct.pack("<H", value & 0xFFFF))
    if tensor.dtype == _BFLOAT16:  # the upper half of a float32
        (value,) = struct.unpack("<f", struct.pack("<I", (int(value) & 0xFFFF) << 16))
    return float(value)


def event_scalars(f: IO[bytes], where: str) -> Iterator[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in the event file ``f``, in file order.

    ``simple_value`` scalars (TF1) count, and rank-0 tensors whose tag's plugin
    (named by the summaries of the tag that carry metadata) is ``scalars`` or
    unnamed (TF2 ``tf.summary.scalar``). As in TensorBoard, a record whose
    framing fails its checksum ends the file (what came before counts).
    FormatError for an event that does not decode; MissingDependencyError as
    :func:`event_class`.
    """
    event_type = event_class()
    decode_error = importlib.import_module("google.protobuf.message").DecodeError
    plugins: dict[str, str] = {}
    records = read_records(f, where)
    while True:
        try:
            offset, data = next(records)
        except (StopIteration, FormatError):
            return
        if data is None:
            continue
        try:
            event = event_type.FromString(data)
        except (decode_error, RecursionError, ValueError) as e:
            raise FormatError(f"{where}: event at byte {offset} does not decode ({e})") from None
        if event.WhichOneof("what") != "summary":
            continue
        yield from _summary_scalars(event, plugins)


def _summary_scalars(event: Any, plugins: dict[str, str]) -> Iterator[tuple[int, str, float]]:
    step = int(event.step)
    for value in event.summary.value:
        tag = value.tag
        plugin = value.metadata.plugin_data.plugin_name
        if plugin:
            plugins[tag] = plugin
        kind = value.WhichOneof("value")
        number: float | None = None
        if kind == "simple_value":
            number = float(value.simple_value)
        elif kind == "tensor" and plugins.get(tag, "scalars") == "scalars":
            number = tensor_scalar(value.tensor)
        if number is not None:
            yield step, tag, number
