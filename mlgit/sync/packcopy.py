"""Whole packs moved as they are: one sequential copy instead of an object at a time.

When a transfer wants every object of a pack (an initial push, the clone of a
remote, a push of what one ``add`` wrote), the pack can travel as its file and
its index, unchanged: a pack's name is the hash of its index, so the copy has
the same name on the other side. This module decides which packs qualify
(:func:`whole_packs`), in which order whole packs and rebuilt ones may become
visible (:func:`unit_order`), and copies a remote pack into a local temporary
file while checking every object in it (:func:`download_pack`).

Nothing here weakens what a transfer checks. A pack qualifies only when its
entries lie back to back from the magic to its end (so the copy holds no byte
its index does not account for) and each has the type the transfer would store
it under. A downloaded pack is verified object by object (entry header against
the index, decompression to the indexed length, the hash against the id) before
anything names it, and is published only through
:func:`mlgit.store.packs.commit_into` (pack, then index, each durable).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mlgit.errors import CorruptObjectError, FormatError, MlgitError
from mlgit.format.compression import decompress
from mlgit.format.ids import RawObjectID, digest_bytes, raw_to_hex
from mlgit.format.pack import (
    ENTRY_HEADER,
    PACK_MAGIC,
    IndexEntry,
    check_pack_magic,
    decode_entry_header,
)
from mlgit.store.fsutil import DurableFile
from mlgit.sync.backend import Backend

__all__ = ["Downloaded", "check_entry", "contiguous", "download_pack", "pack_end",
           "unit_order", "whole_packs"]

_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
"""A copied pack is read whole right away: its pages are mapped in one go where Linux can."""


def contiguous(entries: list[IndexEntry]) -> bool:
    """True when ``entries`` (sorted by offset) lie back to back from the pack magic on.

    The pack is then exactly its magic and these entries: a copy of its first
    ``end`` bytes (:func:`pack_end`) holds nothing its index does not describe.
    """
    at = len(PACK_MAGIC)
    for e in entries:
        if e.offset != at:
            return False
        at += ENTRY_HEADER.size + e.stored_len
    return bool(entries)


def pack_end(entries: list[IndexEntry]) -> int:
    """Where the last of ``entries`` (sorted by offset) ends."""
    last = entries[-1]
    return last.offset + ENTRY_HEADER.size + last.stored_len


def whole_packs(wanted: Mapping[RawObjectID, int], where: Callable[[RawObjectID], str | None],
                counts: Mapping[str, int], entry: Callable[[RawObjectID], IndexEntry]
                ) -> dict[str, list[IndexEntry]]:
    """The packs every object of which is wanted, with their entries sorted by offset.

    ``wanted`` maps each object a transfer writes to the type it is stored
    under; ``where`` names the pack an object is read from (None: none),
    ``counts`` how many objects each pack holds, ``entry`` an object's entry
    there. A pack qualifies when all of its objects are wanted, each with the
    type its index gives it, and its entries are :func:`contiguous`.
    """
    by_pack: dict[str, list[IndexEntry]] = {}
    for oid in wanted:
        stem = where(oid)
        if stem is not None:
            by_pack.setdefault(stem, []).append(entry(oid))
    out: dict[str, list[IndexEntry]] = {}
    for stem, entries in by_pack.items():
        if len(entries) != counts.get(stem) or any(wanted[e.oid] != e.type for e in entries):
            continue
        entries.sort(key=lambda e: e.offset)
        if contiguous(entries):
            out[stem] = entries
    return out


def unit_order(units: Iterable[str], deps: Mapping[str, set[str]]) -> list[list[str]] | None:
    """``units`` in waves, each unit after every unit of ``deps[unit]``; None for a cycle.

    The units of a wave depend only on units of earlier waves (so they may be
    made visible at once). Dependencies on units not in ``units`` are taken as
    met. Within a wave the order of ``units`` is kept.
    """
    todo = list(dict.fromkeys(units))
    members = set(todo)
    waiting = {u: {d for d in deps.get(u, ()) if d in members and d != u} for u in todo}
    waves: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(todo):
        ready = [u for u in todo if u not in done and not waiting[u] - done]
        if not ready:
            return None
        waves.append(ready)
        done.update(ready)
    return waves


def check_entry(where: str, stem: str, view: memoryview, e: IndexEntry, base: int) -> None:
    """Check entry ``e`` of pack ``stem`` in ``view`` (the pack's bytes from offset ``base``).

    Its header must agree with ``e``, its bytes decompress to ``e.raw_len`` bytes
    and hash to its id; else CorruptObjectError naming ``where``.
    """
    off = e.offset - base
    try:
        head = decode_entry_header(view, off)
        if (head.oid, head.type, head.codec, head.raw_len, head.stored_len) != (
                e.oid, e.type, e.codec, e.raw_len, e.stored_len):
            raise FormatError("entry header disagrees with the index")
        start = off + ENTRY_HEADER.size
        # Released on the way out, even on an error: the view's memory map can then close.
        with view[start:start + e.stored_len] as piece:
            matches = digest_bytes(decompress(e.codec, piece, e.raw_len)) == e.oid  # type: ignore[arg-type]
    except FormatError as err:
        raise CorruptObjectError(f"{where} sent a corrupt object {raw_to_hex(e.oid)} ({stem}): "
                                 f"{err}; nothing of it was kept") from None
    if not matches:
        raise CorruptObjectError(f"{where} sent object {raw_to_hex(e.oid)} whose bytes do not "
                                 "match its id; nothing of it was kept")


@dataclass
class Downloaded:
    """A remote pack copied into a local temporary file: what came, and what failed."""

    file: DurableFile
    entries: list[IndexEntry]
    bad: dict[RawObjectID, MlgitError] = field(default_factory=dict)


def download_pack(backend: Backend, stem: str, entries: list[IndexEntry], file: DurableFile,
                  on_entry: Callable[[IndexEntry], None] | None = None) -> Downloaded:
    """Copy pack ``stem`` (``entries``: :func:`contiguous`) into ``file``, checking each object.

    The pack's bytes up to its last entry are copied in one
    :meth:`~mlgit.sync.backend.Backend.read_pack_into` (inside the kernel for
    a local path), then read back through a memory map: the magic first, then
    every object (:func:`check_entry`). Objects that fail a check go into
    :attr:`Downloaded.bad` (the file is then only good for the objects that
    passed); a copy that fails (a pack shorter than its index says) marks every
    object bad. ``file`` is closed (its bytes are on disk, not synced), never
    committed; ``on_entry`` is told of each entry once it has been checked.
    """
    got = Downloaded(file, entries)
    where = f"remote {backend.url}"
    end = pack_end(entries)
    fd = os.open(file.close(), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        try:
            backend.read_pack_into(stem, 0, end, fd, 0)
            if os.fstat(fd).st_size != end:
                raise FormatError(f"{where}: {stem}.pack changed while it was copied")
        except FormatError as err:
            got.bad = {e.oid: err for e in entries}
            return got
        with mmap.mmap(fd, end, _MAP_FLAGS, mmap.PROT_READ) as mm:
            view = memoryview(mm)
            try:
                check_pack_magic(view[:len(PACK_MAGIC)].tobytes())
            except FormatError as err:
                view.release()
                bad = CorruptObjectError(f"{where}: {stem}.pack: {err}")
                got.bad = {e.oid: bad for e in entries}
                return got
            try:
                for e in entries:
                    try:
                        check_entry(where, stem, view, e, 0)
                    except CorruptObjectError as err:
                        got.bad[e.oid] = err
                    if on_entry:
                        on_entry(e)
            finally:
                view.release()
    finally:
        os.close(fd)
    return got
