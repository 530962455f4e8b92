#!/usr/bin/env python3
"""The machine's floor for add and for clone + pull: the same work, done as simply as possible.

bench_storage.py runs this script with git-ml's own interpreter, because it uses the
libraries git-ml uses (xxhash for XXH3-128, zstandard for zstd level 1). Each pass
runs in one Python process on ``--threads`` threads and prints one JSON object
(``seconds`` is the pass itself, measured inside the process: interpreter start and
imports are not in it). See benchmarks/README.md, "The machine's floor".

    python bench_floor.py add SRC [--threads 2] [--pack DIR]
        List SRC (a directory, or one file), read every file, XXH3-128 it and zstd-1
        each piece of at most 64 KiB (a file of at most 128 KiB is one piece, as git-ml
        keeps such a file in one chunk) unless a zstd-1 probe of the piece's first 4 KiB
        shows it incompressible; keep zstd's output only where it saves 1/32, as
        git-ml does. With --pack, also append what would be stored to one pack file
        per thread, fsync the packs and write an index: the input of `restore`.
    python bench_floor.py restore PACKDIR DST [--threads 2] [--copy-to STORE]
        Read the packs that `add --pack` wrote (memory-mapped), decompress every
        piece and write every file under DST (one open/write/close per file, no
        fsync, as git, git-lfs and dvc write work-tree files). With --copy-to, first
        copy the packs and the index into STORE and fsync them (what a clone of a
        local-path remote must at least do before it can write files), then restore
        from that copy.

No content-defined chunking, no tree objects, no stat cache, no per-object index
lookups, no durable renames: what is left is reading, hashing, compressing and
writing bytes, which any implementation must do.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import shutil
import struct
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import xxhash
import zstandard

PIECE = 64 << 10  # git-ml's average chunk size: the compression unit of a large file
SINGLE_MAX = 128 << 10  # a file up to this size is one chunk in git-ml (chunk_max / 2)
READ_BLOCK = 4 << 20  # a large file is read in blocks of this size
PROBE = 4096
PROBE_KEEP = 0.97
MIN_SAVING = 1 / 32
CODEC_RAW, CODEC_ZSTD = 0, 1
# index entry: file number, offset in the file, pack number, offset in the pack,
# stored length, codec, raw length
ENTRY = struct.Struct("<IQBQIBI")
INDEX_NAME = "floor.idx"
_STATS_LOCK = threading.Lock()


def run_threads(target: Any, args: list[tuple[Any, ...]]) -> None:
    """Run target(*a) on one thread per a; re-raise the first exception a thread raised."""
    errors: list[BaseException] = []

    def guarded(*a: Any) -> None:
        try:
            target(*a)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    workers = [threading.Thread(target=guarded, args=a) for a in args]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


def list_files(src: Path) -> tuple[str, list[tuple[str, int]]]:
    """(root, [(path relative to root, size)]) of the regular files under src, no recursion."""
    if src.is_file():
        return str(src.parent), [(src.name, src.stat().st_size)]
    out: list[tuple[str, int]] = []
    stack = [""]
    root = str(src)
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append(r)
                elif e.is_file(follow_symlinks=False):
                    out.append((r, e.stat(follow_symlinks=False).st_size))
    return root, out


def compress(c: zstandard.ZstdCompressor, piece: bytes | memoryview) -> tuple[int, bytes | None]:
    """git-ml's rule: probe 4 KiB of a piece over 8 KiB, keep zstd only if it saves 1/32."""
    n = len(piece)
    if n > 2 * PROBE and len(c.compress(piece[:PROBE])) > PROBE * PROBE_KEEP:
        return CODEC_RAW, None
    out = c.compress(piece)
    if len(out) <= n - n * MIN_SAVING:
        return CODEC_ZSTD, out
    return CODEC_RAW, None


class PackOut:
    """One thread's pack file: pieces appended through an 8 MiB buffer."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.buf = bytearray()
        self.pos = 0

    def append(self, data: bytes | memoryview) -> int:
        at = self.pos
        self.buf += data
        self.pos += len(data)
        if len(self.buf) >= 8 << 20:
            self.flush()
        return at

    def flush(self) -> None:
        with memoryview(self.buf) as whole:
            view = whole
            while view:
                view = view[os.write(self.fd, view):]
            view.release()
        self.buf.clear()

    def close(self) -> None:
        self.flush()
        os.fsync(self.fd)
        os.close(self.fd)


def add_worker(root: str, items: list[tuple[int, str, int, int]], pack: PackOut | None,
               pack_no: int, stats: dict[str, int], entries: list[bytes]) -> None:
    """Read, hash and compress items (file number, relpath, offset, length)."""
    c = zstandard.ZstdCompressor(level=1, write_content_size=True)
    raw_pieces = zstd_pieces = stored = 0
    for fno, rel, off, length in items:
        fd = os.open(os.path.join(root, rel), os.O_RDONLY)
        try:
            data = os.pread(fd, length, off) if off or length > SINGLE_MAX else os.read(
                fd, length + 1)
        finally:
            os.close(fd)
        xxhash.xxh3_128_digest(data)
        if not data:
            continue  # an empty file: nothing to store (restore creates it from the index)
        view = memoryview(data)
        step = len(data) if len(data) <= SINGLE_MAX and off == 0 else PIECE
        for p in range(0, len(data), step):
            piece = view[p:p + step]
            codec, out = compress(c, piece)
            body = out if out is not None else piece
            if codec == CODEC_ZSTD:
                zstd_pieces += 1
            else:
                raw_pieces += 1
            stored += len(body)
            if pack is not None:
                at = pack.append(body)
                entries.append(ENTRY.pack(fno, off + p, pack_no, at, len(body), codec,
                                          len(piece)))
    if pack is not None:
        pack.close()
    with _STATS_LOCK:
        stats["raw_pieces"] += raw_pieces
        stats["zstd_pieces"] += zstd_pieces
        stats["stored_bytes"] += stored


def cmd_add(src: Path, threads: int, pack_dir: Path | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    root, files = list_files(src)
    items: list[tuple[int, str, int, int]] = []
    for fno, (rel, size) in enumerate(files):
        if size <= SINGLE_MAX:
            items.append((fno, rel, 0, size))
        else:
            items.extend((fno, rel, off, min(READ_BLOCK, size - off))
                         for off in range(0, size, READ_BLOCK))
    listed = time.perf_counter() - t0
    if pack_dir is not None:
        pack_dir.mkdir(parents=True, exist_ok=True)
    stats = {"raw_pieces": 0, "zstd_pieces": 0, "stored_bytes": 0}
    parts: list[list[bytes]] = [[] for _ in range(threads)]
    run_threads(add_worker, [(
        root, items[k::threads],
        PackOut(pack_dir / f"pack-{k}.bin") if pack_dir is not None else None, k, stats,
        parts[k]) for k in range(threads)])
    if pack_dir is not None:
        names = "\0".join(rel for rel, _ in files).encode("utf-8", "surrogateescape")
        with open(pack_dir / INDEX_NAME, "wb") as f:
            f.write(struct.pack("<IIQ", threads, len(files), len(names)))
            f.write(names)
            for part in parts:
                f.write(b"".join(part))
            f.flush()
            os.fsync(f.fileno())
    seconds = time.perf_counter() - t0
    return {"pass": "add" + ("+pack" if pack_dir else ""), "seconds": seconds,
            "list_seconds": listed, "files": len(files),
            "bytes": sum(s for _, s in files), "threads": threads, **stats}


def restore_worker(packs: list[mmap.mmap], entries: list[tuple[int, ...]], names: list[str],
                   big: set[int], dst: str, stats: dict[str, int]) -> None:
    d = zstandard.ZstdDecompressor()
    written = 0
    for fno, foff, pno, poff, slen, codec, rlen in entries:
        body = memoryview(packs[pno])[poff:poff + slen]
        data = d.decompress(body, max_output_size=rlen) if codec == CODEC_ZSTD else body
        path = os.path.join(dst, names[fno])
        if fno not in big:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        else:  # a piece of a large file: created by the main thread, written at its offset
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, foff)
            finally:
                os.close(fd)
        del body, data
        written += rlen
    with _STATS_LOCK:
        stats["bytes"] += written


def copy_packs(src: Path, store: Path) -> None:
    store.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()):
        shutil.copyfile(p, store / p.name)
        with open(store / p.name, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(store, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cmd_restore(pack_dir: Path, dst: Path, threads: int, copy_to: Path | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    copy_seconds = 0.0
    if copy_to is not None:
        copy_packs(pack_dir, copy_to)
        pack_dir = copy_to
        copy_seconds = time.perf_counter() - t0
    with open(pack_dir / INDEX_NAME, "rb") as f:
        head = f.read(16)
        npacks, nfiles, nlen = struct.unpack("<IIQ", head)
        names = f.read(nlen).decode("utf-8", "surrogateescape").split("\0")
        entries = list(ENTRY.iter_unpack(f.read()))
    if len(names) != nfiles:
        raise SystemExit("floor index: wrong number of names")
    fds = [os.open(pack_dir / f"pack-{k}.bin", os.O_RDONLY) for k in range(npacks)]
    maps = [mmap.mmap(fd, 0, prot=mmap.PROT_READ) if os.fstat(fd).st_size else
            mmap.mmap(-1, 1) for fd in fds]
    dirs = {os.path.dirname(n) for n in names}
    for d in sorted(dirs):
        os.makedirs(os.path.join(dst, d), exist_ok=True)
    big = {fno for fno, n in Counter(e[0] for e in entries).items() if n > 1}
    for fno in big:
        os.close(os.open(os.path.join(dst, names[fno]), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o644))
    for fno in set(range(nfiles)) - {e[0] for e in entries}:  # empty files have no piece
        os.close(os.open(os.path.join(dst, names[fno]), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o644))
    # Each directory's files go to one thread (two threads creating files in one directory
    # contend for its lock in the kernel); a large file's pieces go round-robin.
    dir_no = {d: k for k, d in enumerate(sorted(dirs))}
    by_thread: list[list[tuple[int, ...]]] = [[] for _ in range(threads)]
    for k, e in enumerate(entries):
        fno = e[0]
        by_thread[(k if fno in big else dir_no[os.path.dirname(names[fno])]) % threads].append(e)
    stats = {"bytes": 0}
    run_threads(restore_worker, [(maps, by_thread[k], names, big, str(dst), stats)
                                 for k in range(threads)])
    seconds = time.perf_counter() - t0
    for m in maps:
        m.close()
    for fd in fds:
        os.close(fd)
    return {"pass": "restore" + ("+copy" if copy_to else ""), "seconds": seconds,
            "copy_seconds": copy_seconds, "files": nfiles, "bytes": stats["bytes"],
            "stored_bytes": sum(e[4] for e in entries), "threads": threads}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add")
    a.add_argument("src", type=Path)
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--pack", type=Path, default=None)
    r = sub.add_parser("restore")
    r.add_argument("pack_dir", type=Path)
    r.add_argument("dst", type=Path)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--copy-to", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.cmd == "add":
        out = cmd_add(args.src, max(1, args.threads), args.pack)
    else:
        out = cmd_restore(args.pack_dir, args.dst, max(1, args.threads), args.copy_to)
    out["libs"] = {"python": platform.python_version(), "xxhash": xxhash.VERSION,
                   "zstandard": zstandard.__version__}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
