"""``mlgit.tf.dataset``: the files of a dataset version as a ``tf.data.Dataset``.

::

    ds = mlgit.tf.dataset("train-data@3fa9", "**/*.tfrecord", shuffle_files=True, seed=7)
    ds = ds.map(parse_example).batch(64).prefetch(tf.data.AUTOTUNE)

Contracts (docs/tensorflow.md, "tf.data"; docs/reading-data.md, "tf.data"):

- The files are those of the snapshot ``rev`` names whose paths match ``pattern``,
  listed from the snapshot (never from a disk), in sorted path order; with
  ``shuffle_files`` the order is shuffled each pass by ``tf.data``'s shuffle,
  reproducibly for a given ``seed``.
- Where the bytes come from: the work tree's own copy when it is clean and its
  pointer pins exactly that version, or a read-only checkout already made under
  ``.git/ml/checkouts/`` (``checkout=True`` makes one): TensorFlow's C++ readers
  (``TFRecordDataset``, ``TextLineDataset``, ``CsvDataset``) read the files.
  Otherwise (``checkout=False``, no copy, or a ``remote=`` with no clone) the files
  are streamed through the ``mlgit://`` filesystem (:mod:`mlgit.fs`) in Python
  generators, fetching only what is read; TFRecord framing and its CRC32C checks
  are done here, decompression with :mod:`zlib`, CSV parsing by TensorFlow's own
  ``tf.io.decode_csv``. Both give the same elements.
- Bad input (an unknown revision, a checkpoint, a pattern that matches nothing, a
  format that cannot be read as records, options that do not go together) raises
  an :class:`~mlgit.errors.MlgitError` subclass before anything is read or
  written; data that fails its checks while streaming stops the iteration with the
  error TensorFlow raises for a failed generator, naming the file.
- The returned dataset carries ``.mlgit`` (a :class:`DatasetInfo`), and reading
  it is recorded for :class:`mlgit.tf.CheckpointCallback` (:mod:`mlgit.tf.lineage`)
  unless ``lineage=False``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlgit.api import copies
from mlgit.api.events import Events
from mlgit.api.repo import Repo
from mlgit.errors import BadPathError, FormatError, MlgitError, UsageError
from mlgit.format.ids import ObjectID
from mlgit.format.meta import DatasetRef
from mlgit.format.snapshot import KIND_DATASET, ROOT_FILE, Snapshot
from mlgit.records.tfevents import masked_crc
from mlgit.tf._compat import tf
from mlgit.tf.lineage import note_read

if TYPE_CHECKING:
    from mlgit.fs import MlgitFileSystem

__all__ = ["FORMATS", "MAX_RECORD_LEN", "OUTPUTS", "DatasetInfo", "dataset", "format_of",
           "match"]

OUTPUTS = ("records", "paths")
FORMATS = ("tfrecord", "csv", "text")
SUFFIXES = {".tfrecord": "tfrecord", ".tfrecords": "tfrecord", ".tfrec": "tfrecord",
            ".csv": "csv", ".tsv": "csv", ".txt": "text", ".text": "text"}
COMPRESSED = {".gz": "GZIP", ".gzip": "GZIP", ".zz": "ZLIB", ".zlib": "ZLIB"}
COMPRESSIONS = ("", "GZIP", "ZLIB")
MAX_RECORD_LEN = 1 << 30
"""The longest TFRecord record a stream reads (longer: refused, never allocated)."""
FS_HINT = "pip install 'mlgit[fs]'"
GROUP_RECORDS = 1024
GROUP_BYTES = 4 << 20
"""A streaming generator hands tf.data records in lists of at most this many (or bytes)."""
_BLOCK = 1 << 20
_HEADER = 12
_FOOTER = 4


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset made by :func:`dataset` reads (``ds.mlgit``).

    ``files`` are the paths in the snapshot, in the order listed (before any
    shuffle); ``local`` the directory (or file) they are read from, or None when
    they are streamed through ``mlgit://``; ``paths`` what the readers open (local
    paths, or ``mlgit://ID/PATH`` URLs).
    """

    rev: str
    id: ObjectID
    name: str
    format: str | None
    output: str
    compression_type: str
    files: tuple[str, ...]
    paths: tuple[str, ...]
    local: Path | None

    @property
    def ref(self) -> DatasetRef:
        """The version as a checkpoint's lineage records it."""
        return DatasetRef(self.name, self.id)


# -- the pattern ----------------------------------------------------------------------------
def _translate(pattern: str) -> str:
    """A regular expression for a ``/``-separated glob: ``*``, ``?``, ``[...]``, ``**``."""
    out = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        j = 0
        while j < len(part):
            c = part[j]
            if c == "*":
                out.append("[^/]*")
            elif c == "?":
                out.append("[^/]")
            elif c == "[":
                k = part.find("]", j + 2 if part[j + 1:j + 2] in ("!", "]") else j + 1)
                if k < 0:
                    out.append(re.escape(c))
                else:
                    body = part[j + 1:k]
                    if body.startswith("!"):
                        body = "^" + body[1:]
                    out.append("[" + body.replace("\\", "\\\\") + "]")
                    j = k
            else:
                out.append(re.escape(c))
            j += 1
        if not last:
            out.append("/")
    return "".join(out)


def match(pattern: str, paths: Sequence[str]) -> list[str]:
    """The ``paths`` (relative, ``/``-separated) ``pattern`` matches, in their order.

    ``*`` and ``?`` never match ``/``; ``**`` as a whole component matches any
    number of directories, none included (``**/*.csv`` matches ``a.csv`` and
    ``x/y/a.csv``); ``[abc]``, ``[!abc]`` as in :mod:`fnmatch`.
    """
    rx = re.compile(_translate(pattern.strip("/")))
    return [p for p in paths if rx.fullmatch(p)]


def format_of(path: str) -> tuple[str | None, str]:
    """(record format, compression) a name suggests: ``x.tfrecord.gz`` is (tfrecord, GZIP)."""
    name = path.rsplit("/", 1)[-1].lower()
    stem, dot, ext = name.rpartition(".")
    compression = ""
    if dot and "." + ext in COMPRESSED:
        compression = COMPRESSED["." + ext]
        stem, dot, ext = stem.rpartition(".")
    return (SUFFIXES.get("." + ext) if dot else None), compression


# -- checking the arguments -------------------------------------------------------------------
def _positive_or_autotune(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (
            value < 1 and value != tf.data.AUTOTUNE):
        raise UsageError(f"{name} must be a positive integer or tf.data.AUTOTUNE, "
                         f"not {value!r}")
    return int(value)


def _fs_options(repo: Any, remote: Any, storage_options: dict[str, Any] | None
                ) -> dict[str, Any]:
    opts = dict(storage_options or {})
    for key, value in (("repo", repo), ("remote", remote)):
        if value is None:
            continue
        if key in opts:
            raise UsageError(f"{key} is given twice: as {key}= and in storage_options")
        opts[key] = os.fspath(value)
    return opts


def _filesystem(opts: dict[str, Any]) -> MlgitFileSystem:
    try:
        from mlgit.fs import MlgitFileSystem
    except ImportError as e:
        raise ImportError(f"mlgit.tf.dataset reads through fsspec, which could not be "
                          f"imported ({e}); install it with: {FS_HINT}") from e
    try:
        return MlgitFileSystem(**opts)
    except (TypeError, ValueError) as e:
        raise UsageError(f"storage_options: {e}") from None


def _unwrap(e: Exception) -> Exception:
    """The git-ml error behind an fsspec exception (the filesystem keeps it as the cause)."""
    cause = e.__cause__
    return cause if isinstance(cause, MlgitError) else e


# -- what is there --------------------------------------------------------------------------
def _resolve(fs: MlgitFileSystem, rev: str) -> tuple[ObjectID, Snapshot]:
    from mlgit.fs.source import open_source

    if not isinstance(rev, str) or not rev.strip():
        raise UsageError("name a dataset version to read (a name, an id, NAME~N...)")
    src = open_source(fs.options)
    try:
        oid = src.resolve(rev)
        snap = src.get_snapshot(oid)
        src.commit()
    except BaseException:
        src.discard()
        raise
    finally:
        src.close()
    if snap.kind != KIND_DATASET:
        raise UsageError(f"{rev!r} is a {snap.kind}, not a dataset (mlgit.tf.load reads "
                         "checkpoints)")
    return oid, snap


def _files(fs: MlgitFileSystem, oid: ObjectID, snap: Snapshot) -> list[str]:
    """Every regular file of the snapshot, as paths in it, sorted (a file snapshot: [""])."""
    from mlgit.fs import url

    if snap.root == ROOT_FILE:
        return [""]
    prefix = f"{oid}/"
    found = fs.find(url(oid), detail=True)
    assert isinstance(found, dict)
    return sorted(name[len(prefix):] for name, info in found.items()
                  if info.get("type") == "file" and name.startswith(prefix))


def _local_copy(opts: dict[str, Any], oid: ObjectID, snap: Snapshot, make: bool) -> Path | None:
    """The local copy of ``oid`` to read: the clean work tree's, an existing checkout, or None.

    With ``make``, a read-only checkout is made (fetching what the store lacks).
    """
    with Repo(opts.get("repo")) as r:
        if make:
            return r.checkout(oid)
        own = copies.worktree_copy(r, oid)
        if own is not None:
            return own
        if (r.store.checkouts_dir / oid).exists():
            return copies.materialize(r, oid, snap, Events())  # held for this process
    return None


# -- streaming ------------------------------------------------------------------------------
def _blocks(fs: MlgitFileSystem, url: str, compression: str) -> Iterator[bytes]:
    """The (decompressed) bytes of the file at ``url``, a block at a time."""
    with fs.open(url, "rb") as f:
        yield from _decompressed(f, compression, url)


def _local_blocks(path: str, compression: str) -> Iterator[bytes]:
    """The (decompressed) bytes of the local file ``path``, a block at a time."""
    with open(path, "rb") as f:
        yield from _decompressed(f, compression, path)


def _decompressed(f: Any, compression: str, where: str) -> Iterator[bytes]:
    """What binary file ``f`` holds, a block at a time, GZIP or ZLIB data decompressed."""
    if not compression:
        while block := f.read(_BLOCK):
            yield block
        return
    wbits = 16 + zlib.MAX_WBITS if compression == "GZIP" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        while block := f.read(_BLOCK):
            while block:
                out = d.decompress(block, _BLOCK)
                if out:
                    yield out
                block = d.unconsumed_tail
                if d.eof and d.unused_data:  # another gzip member follows
                    block, d = d.unused_data + block, zlib.decompressobj(wbits)
        tail = d.flush()
        if tail:
            yield tail
    except zlib.error as e:
        raise FormatError(f"{where}: not {compression} data ({e})") from None
    if not d.eof:
        raise FormatError(f"{where}: the {compression} stream is cut short")


class _Buffer:
    """Bytes from a block iterator, taken in exact amounts (a bytearray, compacted)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.buf = bytearray()
        self.pos = 0
        self.offset = 0  # of buf[pos] in the stream

    def take(self, n: int) -> bytes:
        """``n`` bytes, or fewer only at the end of the stream."""
        while len(self.buf) - self.pos < n:
            block = next(self.blocks, None)
            if block is None:
                break
            if self.pos:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += block
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += len(out)
        self.offset += len(out)
        return out


def tfrecords(blocks: Iterator[bytes], where: str) -> Iterator[bytes]:
    """Each record of a TFRecord stream, its length and data checked by their CRC32C.

    A record cut short, a length past :data:`MAX_RECORD_LEN` or a checksum that
    fails is a FormatError naming ``where`` and the record's offset (TensorFlow's
    reader calls those data loss too).
    """
    buf = _Buffer(blocks)
    while True:
        offset = buf.offset
        head = buf.take(_HEADER)
        if not head:
            return
        if len(head) < _HEADER:
            raise FormatError(f"{where}: the TFRecord at byte {offset} is cut short")
        (length,) = struct.unpack("<Q", head[:8])
        if struct.unpack("<I", head[8:])[0] != masked_crc(head[:8]):
            raise FormatError(f"{where}: not a TFRecord at byte {offset} (its length fails "
                              "its checksum)")
        if length > MAX_RECORD_LEN:
            raise FormatError(f"{where}: the record at byte {offset} claims {length} bytes, "
                              f"more than the {MAX_RECORD_LEN >> 20} MiB git-ml reads")
        data = buf.take(length)
        foot = buf.take(_FOOTER)
        if len(data) < length or len(foot) < _FOOTER:
            raise FormatError(f"{where}: the TFRecord at byte {offset} is cut short")
        if struct.unpack("<I", foot)[0] != masked_crc(data):
            raise FormatError(f"{where}: the record at byte {offset} fails its checksum")
        yield data


def lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Each line of a stream, as ``TextLineDataset`` gives them: no LF nor CR LF at the end."""
    rest = b""
    for block in blocks:
        data = rest + block
        parts = data.split(b"\n")
        rest = parts.pop()
        for line in parts:
            yield line[:-1] if line.endswith(b"\r") else line
    if rest:
        yield rest[:-1] if rest.endswith(b"\r") else rest


def csv_records(blocks: Iterator[bytes], quoting: bool = True) -> Iterator[bytes]:
    """Each CSV record of a stream: lines joined while a quoted field is open; no blank ones."""
    pending: list[bytes] = []
    quotes = 0
    for line in lines(blocks):
        if quoting:
            quotes += line.count(b'"')
        pending.append(line)
        if quotes % 2 == 0:
            record = b"\n".join(pending)
            pending, quotes = [], 0
            if record:
                yield record
    if pending:
        yield b"\n".join(pending)


# -- CSV: columns and their types, as make_csv_dataset infers them ----------------------------
def _first_rows(blocks: Iterator[bytes], delim: str, quoting: bool, count: int
                ) -> list[list[str]]:
    text = (r.decode("utf-8", "replace") for r in csv_records(blocks, quoting))
    reader = csv.reader(text, delimiter=delim,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    out = []
    for row in reader:
        out.append(row)
        if len(out) >= count:
            break
    return out


def _infer(values: list[str], na_value: str) -> Any:
    """The dtype ``make_csv_dataset`` infers for a column's values (int32 ... string)."""
    kinds = [tf.int32, tf.int64, tf.float32, tf.float64, tf.string]
    tests: list[Callable[[str], bool]] = [_is_int32, _is_int64, _float(np.float32),
                                          _float(np.float64), lambda _v: True]
    best = -1
    for v in values:
        if v in ("", na_value):
            continue
        k = max(best, 0)
        while not tests[k](v):
            k += 1
        best = k
    return kinds[best] if best >= 0 else tf.string


def _is_int32(v: str) -> bool:
    try:
        return bool(np.int32(v) == np.int64(v))
    except (ValueError, OverflowError):
        return False


def _is_int64(v: str) -> bool:
    try:
        np.int64(v)
        return True
    except (ValueError, OverflowError):
        return False


def _float(t: Any) -> Callable[[str], bool]:
    def ok(v: str) -> bool:
        try:
            return bool(t(v) < np.inf)
        except ValueError:
            return False
    return ok


@dataclass(frozen=True)
class _Csv:
    """How CSV files are read: the selected columns, their defaults, the label."""

    names: tuple[str, ...]       # of the selected columns, in file order
    indices: tuple[int, ...]     # their positions in a row
    defaults: tuple[Any, ...]    # record_defaults of the selected columns
    label: str | None
    header: tuple[str, ...] | None
    delim: str
    quoting: bool
    na_value: str


def _select(names: tuple[str, ...], select_columns: Sequence[str | int] | None) -> list[int]:
    """The positions of the columns ``select_columns`` names (all: None), sorted."""
    if select_columns is None:
        return list(range(len(names)))
    by_name = {n: i for i, n in enumerate(names)}
    picked = set()
    for c in select_columns:
        if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(names):
            picked.add(c)
        elif isinstance(c, str) and c in by_name:
            picked.add(by_name[c])
        else:
            raise UsageError(f"select_columns: no column {c!r} (columns: {', '.join(names)})")
    if len(picked) != len(select_columns):
        raise UsageError("select_columns names a column twice")
    return sorted(picked)


def _defaults(rows: list[list[str]], names: tuple[str, ...], indices: list[int],
              column_defaults: Sequence[Any] | None, na_value: str, where: str, header: bool
              ) -> tuple[Any, ...]:
    """The selected columns' record defaults: as given, else inferred as make_csv_dataset does."""
    if column_defaults is not None:
        if len(column_defaults) != len(indices):
            raise UsageError(f"column_defaults has {len(column_defaults)} entries for "
                             f"{len(indices)} columns")
        return tuple(tf.constant([], d) if isinstance(d, tf.dtypes.DType)
                     else tf.constant([d]) for d in column_defaults)
    for n, row in enumerate(rows, start=2 if header else 1):
        if len(row) != len(names):
            raise FormatError(f"{where}: row {n} has {len(row)} fields, not {len(names)}")
    kinds = [_infer([row[i] for row in rows], na_value) for i in indices]
    return tuple(tf.constant([""] if k == tf.string else [0], k) for k in kinds)


def _csv_plan(blocks: Callable[[str], Iterator[bytes]], paths: list[str], *, check_all: bool,
              column_names: Sequence[str] | None, column_defaults: Sequence[Any] | None,
              select_columns: Sequence[str | int] | None, label_name: str | None,
              header: bool, field_delim: str, use_quote_delim: bool, na_value: str,
              num_rows_for_inference: int) -> _Csv:
    """How to read CSV files ``paths``.

    Columns come from the first file's header (or as given), their types from
    its first rows; with ``check_all``, every file's header is checked now.
    """
    if not isinstance(field_delim, str) or len(field_delim) != 1:
        raise UsageError(f"field_delim must be one character, not {field_delim!r}")
    first = blocks(paths[0])
    try:
        rows = _first_rows(first, field_delim, use_quote_delim,
                           num_rows_for_inference + (1 if header else 0))
    finally:
        first.close()  # type: ignore[attr-defined]
    head: tuple[str, ...] | None = None
    if header:
        if not rows:
            raise FormatError(f"{paths[0]}: an empty CSV file has no header row")
        head = tuple(rows.pop(0))
    names = tuple(column_names) if column_names is not None else head
    if names is None:
        raise UsageError("CSV files without a header row need column_names")
    if len(set(names)) != len(names):
        raise UsageError(f"CSV column names must be unique: {list(names)}")
    indices = _select(names, select_columns)
    selected = tuple(names[i] for i in indices)
    if label_name is not None and label_name not in selected:
        raise UsageError(f"label_name {label_name!r} is not one of the columns read "
                         f"({', '.join(selected)})")
    defaults = _defaults(rows, names, indices, column_defaults, na_value, paths[0], header)
    plan = _Csv(selected, tuple(indices), defaults, label_name, head, field_delim,
                use_quote_delim, na_value)
    if check_all and head is not None:
        for other in paths[1:]:  # CsvDataset skips each header unread: check them now
            stream = blocks(other)
            try:
                _check_header(stream, plan, other)
            finally:
                stream.close()  # type: ignore[attr-defined]
    return plan


def _check_header(stream: Iterator[bytes], plan: _Csv, where: str, records: bool = False
                  ) -> None:
    """Take a CSV file's header row from ``stream`` (blocks, or ``records``).

    FormatError if it is not the first file's.
    """
    rows = stream if records else csv_records(stream, plan.quoting)
    head = next(rows, None)
    if head is None:
        raise FormatError(f"{where}: an empty CSV file has no header row")
    got = next(csv.reader([head.decode("utf-8", "replace")], delimiter=plan.delim,
                          quoting=csv.QUOTE_MINIMAL if plan.quoting else csv.QUOTE_NONE))
    if tuple(got) != plan.header:
        raise FormatError(f"{where}: its header row ({', '.join(got)}) is not the first "
                          f"file's ({', '.join(plan.header or ())})")


def _csv_element(plan: _Csv, values: Sequence[Any]) -> Any:
    features = dict(zip(plan.names, values, strict=True))
    if plan.label is None:
        return features
    label = features.pop(plan.label)
    return features, label


# -- the dataset ----------------------------------------------------------------------------
def _check_args(output: str, fmt: str | None, compression_type: str | None,
                pattern: str | None, seed: int | None, checkout: bool | None,
                num_rows_for_inference: int) -> None:
    if output not in OUTPUTS:
        raise UsageError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if compression_type is not None and compression_type not in COMPRESSIONS:
        raise UsageError(f"compression_type must be '', 'GZIP' or 'ZLIB', not "
                         f"{compression_type!r}")
    if pattern is not None and (not isinstance(pattern, str) or not pattern.strip("/")):
        raise UsageError(f"pattern must be a glob like '**/*.tfrecord', not {pattern!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UsageError(f"seed must be an integer, not {seed!r}")
    if isinstance(num_rows_for_inference, bool) or not isinstance(
            num_rows_for_inference, int) or num_rows_for_inference < 1:
        raise UsageError("num_rows_for_inference must be a positive integer")
    if checkout not in (None, True, False):
        raise UsageError(f"checkout must be None, True or False, not {checkout!r}")


def _pick(every: list[str], pattern: str | None, oid: ObjectID, snap: Snapshot) -> list[str]:
    """The files ``pattern`` matches (a snapshot of one file: that file, whatever it says)."""
    if snap.root == ROOT_FILE:
        return every
    files = match(pattern, every) if pattern is not None else every
    if not files:
        raise BadPathError(f"no file of {snap.name} {oid[:12]} matches {pattern!r} "
                           f"({len(every)} files in it)")
    return files


def _kind(names: list[str], fmt: str | None, compression_type: str | None, output: str
          ) -> tuple[str | None, str]:
    """(record format, compression): as given, else what the names' suffixes say."""
    kinds = {format_of(n) for n in names}
    if fmt is None and output == "records":
        found = {k for k, _ in kinds}
        if None in found or len(found) > 1:
            raise UsageError("the files matched are not all of one kind that has a record "
                             f"reader ({', '.join(sorted(str(k) for k in found))}); pass "
                             "format='tfrecord', 'csv' or 'text', or output='paths'")
        fmt = next(iter(found))
    if compression_type is None:
        comps = {c for _, c in kinds}
        compression_type = comps.pop() if len(comps) == 1 else ""
    return fmt, compression_type


def _delimiter(names: list[str]) -> str:
    """A tab when every file is a ``.tsv`` (compressed or not), else a comma."""
    def tsv(n: str) -> bool:
        stem = n.lower()
        for ext in COMPRESSED:
            stem = stem.removesuffix(ext)
        return stem.endswith(".tsv")
    return "\t" if all(tsv(n) for n in names) else ","


def dataset(rev: str, pattern: str | None = "**/*.tfrecord", *, output: str = "records",
            format: str | None = None, compression_type: str | None = None,
            shuffle_files: bool = False, seed: int | None = None,
            num_parallel_reads: int | None = None, checkout: bool | None = None,
            lineage: bool = True,
            column_names: Sequence[str] | None = None,
            column_defaults: Sequence[Any] | None = None,
            select_columns: Sequence[str | int] | None = None, label_name: str | None = None,
            header: bool = True, field_delim: str | None = None, use_quote_delim: bool = True,
            na_value: str = "", num_rows_for_inference: int = 100,
            repo: str | os.PathLike[str] | None = None, remote: str | None = None,
            storage_options: dict[str, Any] | None = None) -> Any:
    """A ``tf.data.Dataset`` over the files of dataset version ``rev`` that match ``pattern``.

    See the module's docstring and docs/tensorflow.md for every argument. Returns
    records (``output="records"``: ``tf.string`` scalars for TFRecord and text
    files, a dict of columns, or ``(features, label)``, per CSV row) or the files'
    paths (``output="paths"``: local paths, or ``mlgit://ID/PATH`` URLs when
    streaming). The dataset has an attribute ``mlgit``, a :class:`DatasetInfo`.
    """
    _check_args(output, format, compression_type, pattern, seed, checkout,
                num_rows_for_inference)
    parallel = _positive_or_autotune("num_parallel_reads", num_parallel_reads)
    opts = _fs_options(repo, remote, storage_options)
    if checkout and opts.get("remote") is not None:
        raise UsageError("checkout=True needs a repository; with remote= the files are "
                         "streamed")
    fs = _filesystem(opts)
    try:
        oid, snap = _resolve(fs, rev)
        every = _files(fs, oid, snap)
    except (OSError, ValueError) as e:
        raise _unwrap(e) from None
    files = _pick(every, pattern, oid, snap)
    names = [snap.name] if snap.root == ROOT_FILE else files
    fmt, compression = _kind(names, format, compression_type, output)
    local = None
    if checkout is not False and opts.get("remote") is None:
        local = _local_copy(opts, oid, snap, make=bool(checkout))
    if local is not None:
        paths = [str(local) if f == "" else str(local / f) for f in files]
    else:
        from mlgit.fs import url
        paths = [url(oid, f) for f in files]
    info = DatasetInfo(rev, oid, snap.name, fmt, output, compression, tuple(files),
                       tuple(paths), local)
    plan = None
    if output == "records" and fmt == "csv":
        try:
            plan = _csv_plan(lambda p: (_local_blocks(p, compression) if local is not None
                                        else _blocks(fs, p, compression)),
                             paths, check_all=local is not None, column_names=column_names,
                             column_defaults=column_defaults, select_columns=select_columns,
                             label_name=label_name, header=header,
                             field_delim=(field_delim if field_delim is not None
                                          else _delimiter(names)),
                             use_quote_delim=use_quote_delim, na_value=na_value,
                             num_rows_for_inference=num_rows_for_inference)
        except (OSError, ValueError) as e:
            raise _unwrap(e) from None
    return _build(fs, info, plan, shuffle_files=shuffle_files, seed=seed, parallel=parallel,
                  record=lineage)


def _build(fs: MlgitFileSystem, info: DatasetInfo, plan: _Csv | None, *, shuffle_files: bool,
           seed: int | None, parallel: int | None, record: bool) -> Any:
    ref = info.ref

    def seen(path: Any) -> Any:
        note_read(ref)
        return path

    files = tf.data.Dataset.from_tensor_slices(tf.constant(list(info.paths), tf.string))
    if shuffle_files:
        files = files.shuffle(len(info.paths), seed=seed, reshuffle_each_iteration=True)
    if record:
        files = files.map(lambda p: tf.ensure_shape(
            tf.numpy_function(seen, [p], tf.string, stateful=True), []))
    if info.output == "paths":
        ds = files
    else:
        read = (_local_reader(info, plan) if info.local is not None
                else _stream_reader(fs, info, plan))
        if parallel in (None, 1):
            ds = files.interleave(read, cycle_length=1, block_length=1)
        else:
            ds = files.interleave(read, cycle_length=parallel, block_length=1,
                                  num_parallel_calls=parallel, deterministic=True)
        if plan is not None:
            ds = ds.map(lambda *values: _csv_element(plan, values))
    with contextlib.suppress(AttributeError):  # a Dataset that takes no attributes
        ds.mlgit = info
    return ds


def _local_reader(info: DatasetInfo, plan: _Csv | None) -> Callable[[Any], Any]:
    ct = info.compression_type
    if info.format == "tfrecord":
        return lambda p: tf.data.TFRecordDataset(p, compression_type=ct)
    if info.format == "text":
        return lambda p: tf.data.TextLineDataset(p, compression_type=ct)
    assert plan is not None
    return lambda p: tf.data.experimental.CsvDataset(
        p, list(plan.defaults), compression_type=ct, header=plan.header is not None,
        field_delim=plan.delim, use_quote_delim=plan.quoting, na_value=plan.na_value,
        select_cols=list(plan.indices))


def _groups(items: Iterator[bytes]) -> Iterator[list[bytes]]:
    """``items`` in lists of up to :data:`GROUP_RECORDS` or :data:`GROUP_BYTES`.

    One call into Python per list rather than per record (what makes a generator
    slow in tf.data); what was read before an error is yielded before it is raised.
    """
    group: list[bytes] = []
    size = 0
    try:
        for item in items:
            group.append(item)
            size += len(item)
            if len(group) >= GROUP_RECORDS or size >= GROUP_BYTES:
                yield group
                group, size = [], 0
    except Exception:
        if group:
            yield group
        raise
    if group:
        yield group


def _stream_reader(fs: MlgitFileSystem, info: DatasetInfo, plan: _Csv | None
                   ) -> Callable[[Any], Any]:
    ct = info.compression_type
    fmt = info.format
    spec = tf.TensorSpec((None,), tf.string)

    def records(path: bytes) -> Iterator[bytes]:
        where = path.decode()
        blocks = _blocks(fs, where, ct)
        if fmt == "tfrecord":
            yield from tfrecords(blocks, where)
        elif fmt == "text":
            yield from lines(blocks)
        else:
            assert plan is not None
            rows = csv_records(blocks, plan.quoting)
            if plan.header is not None:
                _check_header(rows, plan, where, records=True)
            yield from rows

    def grouped(path: bytes) -> Iterator[list[bytes]]:
        return _groups(records(path))

    def read(p: Any) -> Any:
        ds = tf.data.Dataset.from_generator(grouped, args=(p,), output_signature=spec)
        if plan is not None:  # decode_csv a group at a time, then one row per element
            ds = ds.map(lambda group: tuple(tf.io.decode_csv(
                group, list(plan.defaults), field_delim=plan.delim,
                use_quote_delim=plan.quoting, na_value=plan.na_value,
                select_cols=list(plan.indices))))
        return ds.unbatch()

    return read
