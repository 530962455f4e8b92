"""Write a snapshot's files to disk.

Two forms:

- :func:`materialize_readonly` builds a complete, read-only copy under
  ``.git/ml/checkouts/<id>/`` (in a temp dir, synced, then renamed, so a reader
  either finds the whole tree or none of it; two processes racing both end up
  with the same complete tree).
- :func:`update_worktree` makes a tracked path in the working tree match a
  snapshot, rewriting only what differs. It refuses (unless forced) to
  overwrite or delete a file whose content is not in the store, so local work is
  never lost silently.

Each file is written to a temp file beside it and renamed into place; every
chunk read is checked against its id first, so a corrupt store makes checkout
fail rather than write wrong bytes. Nothing is ever written through a symlink.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from mlgit.errors import BadPathError, CorruptObjectError, FormatError
from mlgit.format.ids import ObjectID
from mlgit.format.snapshot import ROOT_FILE, Snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TYPE_SYMLINK, TreeEntry
from mlgit.snapshot.build import build_tree
from mlgit.snapshot.scan import TMP_PREFIX, FileStat
from mlgit.snapshot.statcache import RACY_NS, DirCache, StatCache, dir_signature
from mlgit.snapshot.treewalk import TreeGetter
from mlgit.store.fsutil import force_remove, unique_tmp_name
from mlgit.store.store import Store

__all__ = ["materialize_readonly", "update_worktree"]

Progress = Callable[[int, int], None]
_WORKERS = min(4, (os.cpu_count() or 1) + 1)


def _write_file(store: Store, e: TreeEntry, dest: bytes) -> None:
    """Write entry ``e`` at ``dest``.

    A file that exists is replaced through a temp file and a rename, so it is
    never seen half-written. A new one is created in place with ``O_EXCL`` (as
    git checks files out): a crash can leave it short, which ``status`` then
    reports as modified and ``checkout --force`` repairs.
    """
    mode = 0o777 if e.executable else 0o666
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    tmp: bytes | None = None
    try:
        fd = os.open(dest, flags, mode)
    except FileExistsError:
        parent = os.path.dirname(dest) or b"."
        tmp = os.path.join(parent, os.fsencode(unique_tmp_name(TMP_PREFIX.decode()[:-1])))
        fd = os.open(tmp, flags, mode)
    try:
        for cid, n in e.chunks:
            data = store.objects.get(cid)
            if len(data) != n:
                raise CorruptObjectError(f"chunk {cid.hex()} has {len(data)} bytes, its tree "
                                         f"says {n}; nothing was written for {os.fsdecode(dest)}")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        if tmp is not None:
            os.replace(tmp, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp if tmp is not None else dest)
        raise


def _remove(path: bytes) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _collect(get: TreeGetter, tree: bytes, dest: bytes,
             files: list[tuple[TreeEntry, bytes]], links: list[tuple[TreeEntry, bytes]],
             dirs: list[bytes]) -> None:
    for e in get(tree):
        p = os.path.join(dest, e.name)
        if e.type == TYPE_DIR:
            dirs.append(p)
            _collect(get, e.subtree, p, files, links, dirs)
        elif e.type == TYPE_FILE:
            files.append((e, p))
        else:
            links.append((e, p))


def _run(store: Store, jobs: list[tuple[TreeEntry, bytes]], progress: Progress | None) -> None:
    def one(job: tuple[TreeEntry, bytes]) -> None:
        _write_file(store, job[0], job[1])
        if progress:
            progress(1, job[0].size)

    if len(jobs) <= 1:
        for j in jobs:
            one(j)
        return
    from concurrent.futures import ThreadPoolExecutor  # start-up time

    with ThreadPoolExecutor(_WORKERS) as pool:
        for _ in pool.map(one, jobs):
            pass


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (syncfs(2); os.sync where unavailable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def _make_readonly(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                os.chmod(p, 0o555 if st.st_mode & 0o100 else 0o444)
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    os.chmod(root, 0o555)


def materialize_readonly(store: Store, oid: ObjectID, snap: Snapshot,
                         progress: Progress | None = None) -> Path:
    """Return ``checkouts/<id>/`` (the snapshot's files, read-only), creating it once.

    For a file snapshot the returned path is the file inside that directory.
    """
    final = store.checkouts_dir / oid
    if snap.root == ROOT_FILE:
        entries = store.objects.get_tree(bytes.fromhex(snap.tree))
        if len(entries) != 1 or entries[0].type == TYPE_DIR:
            raise FormatError(f"file snapshot {oid} does not hold exactly one file")
    if not final.exists():
        tmp = store.checkouts_dir / unique_tmp_name(f".{oid}")
        tmp.mkdir()
        try:
            files: list[tuple[TreeEntry, bytes]] = []
            links: list[tuple[TreeEntry, bytes]] = []
            dirs: list[bytes] = []
            root = bytes.fromhex(snap.tree)
            _collect(store.objects.get_tree, root, os.fsencode(tmp), files, links, dirs)
            for d in dirs:
                os.mkdir(d)
            _run(store, files, progress)
            for e, p in links:
                os.symlink(e.target, p)
            _make_readonly(tmp)
            _syncfs(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
                force_remove(tmp)  # another process won the race with the same tree
        except BaseException:
            force_remove(tmp)
            raise
    if snap.root == ROOT_FILE:
        names = os.listdir(final)
        if len(names) != 1:
            raise FormatError(f"file snapshot {oid} does not hold exactly one file")
        return final / names[0]
    return final


def _stat_cache_for(get: TreeGetter, tree: bytes, dest: bytes, rel: str,
                    cache: StatCache) -> None:
    files: dict[bytes, FileStat] = {}
    links: dict[bytes, bytes] = {}
    dirs: set[bytes] = set()
    for e in get(tree):
        p = os.path.join(dest, e.name)
        if e.type == TYPE_FILE:
            files[e.name] = FileStat.of(os.lstat(p))
        elif e.type == TYPE_SYMLINK:
            links[e.name] = e.target
        else:
            dirs.add(e.name)
            sub = f"{rel}/{os.fsdecode(e.name)}" if rel else os.fsdecode(e.name)
            _stat_cache_for(get, e.subtree, p, sub, cache)
    cache.dirs[rel] = DirCache(tree, dir_signature(files, links, dirs), files)


def _plan(get_want: TreeGetter, get_cur: TreeGetter, cur: bytes | None, want: bytes | None,
          dest: bytes, writes: list[tuple[TreeEntry, bytes]],
          removes: list[bytes], lost: list[tuple[bytes, TreeEntry]],
          mkdirs: list[bytes], links: list[tuple[TreeEntry, bytes]],
          chmods: list[tuple[TreeEntry, bytes]]) -> None:
    """Work out what turns tree ``cur`` at ``dest`` into tree ``want``."""
    if cur == want:
        return
    ce = {e.name: e for e in get_cur(cur)} if cur is not None else {}
    we = {e.name: e for e in get_want(want)} if want is not None else {}
    for name in sorted(ce.keys() | we.keys()):
        c, w = ce.get(name), we.get(name)
        p = os.path.join(dest, name)
        if c is not None and w is not None and c.type == w.type:
            if w.type == TYPE_DIR:
                _plan(get_want, get_cur, c.subtree, w.subtree, p, writes, removes, lost, mkdirs,
                      links, chmods)
                continue
            if w.type == TYPE_FILE and c.digest == w.digest:
                if c.executable != w.executable:
                    chmods.append((w, p))
                continue
            if w.type == TYPE_SYMLINK and c.target == w.target:
                continue
        if c is not None:
            _note_lost(get_cur, c, p, lost)
            if w is None or w.type != TYPE_FILE or c.type != TYPE_FILE:
                removes.append(p)
        if w is None:
            continue
        if w.type == TYPE_DIR:
            mkdirs.append(p)
            _plan(get_want, get_cur, None, w.subtree, p, writes, removes, lost, mkdirs, links,
                  chmods)
        elif w.type == TYPE_FILE:
            writes.append((w, p))
        else:
            links.append((w, p))


def _note_lost(get_cur: TreeGetter, c: TreeEntry, p: bytes,
               lost: list[tuple[bytes, TreeEntry]]) -> None:
    if c.type == TYPE_FILE:
        lost.append((p, c))
    elif c.type == TYPE_DIR:
        for e in get_cur(c.subtree):
            _note_lost(get_cur, e, os.path.join(p, e.name), lost)


def update_worktree(store: Store, snap: Snapshot, target: Path, old: StatCache, *,
                    force: bool = False, warn: Callable[[str], None] = lambda _m: None,
                    progress: Progress | None = None,
                    on_total: Callable[[int, int], None] | None = None) -> tuple[StatCache, int]:
    """Make ``target`` hold exactly snapshot ``snap``; return the new stat cache and its time.

    Raises BadPathError, changing nothing, if a file that would be overwritten
    or removed holds content that is not in the store (unless ``force``).
    """
    is_file = snap.root == ROOT_FILE
    want_root = bytes.fromhex(snap.tree)
    tpath = os.fsencode(target)
    cur_root: bytes | None = None
    trees: dict[bytes, list[TreeEntry]] = {}
    if os.path.lexists(tpath):
        is_dir = stat.S_ISDIR(os.lstat(tpath).st_mode)
        if is_dir == is_file:
            if not force:
                raise BadPathError(
                    f"{target} is a {'directory' if is_dir else 'file'} but the snapshot holds a "
                    f"{'file' if is_file else 'directory'}; move it away or use --force")
            _remove(tpath)
        else:
            cur = build_tree(store, tpath, is_file=is_file, old=old, dry=True, warn=warn)
            cur_root, trees = cur.root, cur.trees

    def get_cur(t: bytes) -> list[TreeEntry]:
        got = trees.get(t)
        return got if got is not None else store.objects.get_tree(t)

    writes: list[tuple[TreeEntry, bytes]] = []
    removes: list[bytes] = []
    lost: list[tuple[bytes, TreeEntry]] = []
    mkdirs: list[bytes] = []
    links: list[tuple[TreeEntry, bytes]] = []
    chmods: list[tuple[TreeEntry, bytes]] = []
    # A directory that does not exist yet is built beside its place and renamed into
    # it at the end, so a failure (a corrupt object, a full disk) leaves nothing behind.
    fresh_dir = not is_file and cur_root is None
    staging = os.path.join(os.path.dirname(tpath) or b".",
                           os.fsencode(unique_tmp_name(TMP_PREFIX.decode()[:-1]))) if (
        fresh_dir) else tpath
    base = os.path.dirname(tpath) if is_file else staging
    get_want: TreeGetter = store.objects.get_tree
    if is_file:
        # A file snapshot lands at the pointer's path, whatever name its tree recorded
        # (the pointer may have been renamed with `git mv`).
        entries = store.objects.get_tree(want_root)
        if len(entries) != 1 or entries[0].type == TYPE_DIR:
            raise FormatError(f"file snapshot {snap.name} does not hold exactly one file")
        renamed = [dataclasses.replace(entries[0], name=os.path.basename(tpath))]

        def get_want(t: bytes) -> list[TreeEntry]:
            return renamed if t == want_root else store.objects.get_tree(t)

    _plan(get_want, get_cur, cur_root, want_root, base, writes, removes, lost, mkdirs, links,
          chmods)
    if not force:
        unsafe = [p for p, e in lost
                  if not all(store.objects.has_committed(cid) for cid, _ in e.chunks)]
        if unsafe:
            shown = ", ".join(os.fsdecode(p) for p in unsafe[:5])
            more = f" and {len(unsafe) - 5} more" if len(unsafe) > 5 else ""
            raise BadPathError(
                f"checkout would overwrite local changes not saved in git-ml: {shown}{more}; "
                "`git ml add` them first, or use --force to discard them")
    if on_total:
        on_total(len(writes), sum(e.size for e, _ in writes))
    if fresh_dir:
        os.makedirs(os.path.dirname(tpath) or b".", exist_ok=True)
        os.mkdir(staging)
    elif not is_file:
        os.makedirs(tpath, exist_ok=True)
    try:
        for p in removes:
            with contextlib.suppress(FileNotFoundError):
                _remove(p)
        for p in mkdirs:
            os.mkdir(p)
        _run(store, writes, progress)
        for e, p in links:
            os.symlink(e.target, p)
        for e, p in chmods:
            os.chmod(p, os.lstat(p).st_mode & 0o7777 | 0o111 if e.executable
                     else os.lstat(p).st_mode & 0o7666)
        if fresh_dir:
            os.rename(staging, tpath)
    except BaseException:
        if fresh_dir:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    # Let the timestamp tick pass so every file we wrote can be cached (see statcache).
    time.sleep(RACY_NS / 1e9)
    new = StatCache(snapshot="", tree=snap.tree, files=snap.files, nbytes=snap.bytes)
    stat_time = time.time_ns()
    if is_file:
        (e,) = get_want(want_root)
        one_file = {e.name: FileStat.of(os.lstat(tpath))} if e.type == TYPE_FILE else {}
        one_link = {e.name: e.target} if e.type == TYPE_SYMLINK else {}
        new.dirs[""] = DirCache(want_root, dir_signature(one_file, one_link, ()), one_file)
    else:
        _stat_cache_for(store.objects.get_tree, want_root, tpath, "", new)
    return new, stat_time
