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
Given a :class:`~mlgit.snapshot.reuse.Reuse`, a file whose content is already on
disk there becomes a reflink of it instead (where the filesystem can).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgit.errors import BadPathError, CorruptObjectError, FormatError
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw, raw_to_hex
from mlgit.format.snapshot import ROOT_FILE, Snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TYPE_SYMLINK, ChunkRef, TreeEntry
from mlgit.format.treeshape import check_shape, file_root_entry
from mlgit.snapshot.build import build_tree
from mlgit.snapshot.reuse import Reuse
from mlgit.snapshot.scan import TMP_PREFIX, FileStat
from mlgit.snapshot.statcache import RACY_NS, DirCache, StatCache, dir_signature
from mlgit.snapshot.treewalk import Checked, TreeGetter, walk
from mlgit.store.fsutil import force_remove, move_dir_into_place, unique_tmp_name
from mlgit.store.store import Store

__all__ = ["materialize_readonly", "update_worktree"]

Progress = Callable[[int, int], None]
_WORKERS = min(4, (os.cpu_count() or 1) + 1)


def _write_file(store: Store, e: TreeEntry, dest: bytes, reuse: Reuse | None = None) -> None:
    """Write entry ``e`` at ``dest`` (a reflink of a file ``reuse`` knows, when it can be).

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
        cloned = reuse is not None and reuse.clone_into(e, fd)
        for cid, n in () if cloned else e.chunks:
            data = store.objects.get(cid)
            if len(data) != n:
                raise CorruptObjectError(f"chunk {raw_to_hex(cid)} has {len(data)} bytes, its tree "
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
    """Remove a file, symlink or directory tree (any depth); OSError if it stays."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        force_remove(path)
        if os.path.lexists(path):
            raise OSError(errno.ENOTEMPTY, "cannot remove the directory", os.fsdecode(path))
    else:
        os.unlink(path)


def _collect(check: Checked, tree: RawObjectID, claim: tuple[int, int], dest: bytes,
             files: list[tuple[TreeEntry, bytes]], links: list[tuple[TreeEntry, bytes]],
             dirs: list[bytes]) -> None:
    """Every directory, file and symlink of the tree, as paths below ``dest`` (checked)."""
    for p, e in walk(check, tree, dest, os.path.join, claim=claim):
        if e.type == TYPE_DIR:
            dirs.append(p)
        elif e.type == TYPE_FILE:
            files.append((e, p))
        else:
            links.append((e, p))


def _run(store: Store, jobs: list[tuple[TreeEntry, bytes]], progress: Progress | None,
         reuse: Reuse | None = None) -> None:
    """Write every file of ``jobs`` (:func:`_write_file`), on up to ``_WORKERS`` threads.

    Reading a chunk (zstd) and writing a file release the GIL, so the threads
    overlap. Each thread takes the next job from a shared iterator (no future
    per file); the first failure stops the others after the file they are
    writing and is raised once they have all stopped.
    """
    if len(jobs) <= 1:
        for e, dest in jobs:
            _write_file(store, e, dest, reuse)
            if progress:
                progress(1, e.size)
        return
    import threading  # start-up time

    it = iter(jobs)
    take = threading.Lock()
    stop = threading.Event()
    failed: list[BaseException] = []

    def work() -> None:
        while not stop.is_set():
            with take:
                job = next(it, None)
            if job is None:
                return
            try:
                _write_file(store, job[0], job[1], reuse)
                if progress:
                    progress(1, job[0].size)
            except BaseException as err:  # noqa: BLE001 - raised by the calling thread
                failed.append(err)
                stop.set()
                return

    helpers = [threading.Thread(target=work, name="mlgit-checkout", daemon=True)
               for _ in range(min(_WORKERS, len(jobs)) - 1)]
    for t in helpers:
        t.start()
    try:
        work()
    finally:
        stop.set()  # when this thread was interrupted: the others stop after their file
        for t in helpers:
            t.join()
    if failed:
        raise failed[0]


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


def _make_readonly(root: Path, dirs: list[bytes]) -> None:
    """Make every file and directory below ``root`` read-only (directories last).

    ``dirs`` are the directories created below ``root``, parents before children.
    """
    for d in [os.fsencode(root), *dirs]:
        with os.scandir(d) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    mode = e.stat(follow_symlinks=False).st_mode
                    os.chmod(e.path, 0o555 if mode & 0o100 else 0o444)
    for d in reversed(dirs):
        os.chmod(d, 0o555)
    os.chmod(root, 0o555)


def materialize_readonly(store: Store, oid: ObjectID, snap: Snapshot,
                         progress: Progress | None = None, *, reuse: Reuse | None = None) -> Path:
    """Return ``checkouts/<id>/`` (the snapshot's files, read-only), creating it once.

    For a file snapshot the returned path is the file inside that directory.
    Files whose content ``reuse`` finds on disk are reflinked where the
    filesystem can (its counters say how many).
    """
    final = store.checkouts_dir / oid
    where = f"snapshot {oid}"
    get = store.objects.get_tree
    root = hex_to_raw(snap.tree)
    if snap.root == ROOT_FILE:
        file_root_entry(get(root), where)
    if not final.exists():
        # Refused before anything is written: the shape first (depth, empty directories:
        # measured over distinct trees), then every subtree's claims while collecting.
        check_shape(get, root, where)
        files: list[tuple[TreeEntry, bytes]] = []
        links: list[tuple[TreeEntry, bytes]] = []
        dirs: list[bytes] = []
        tmp = store.checkouts_dir / unique_tmp_name(f".{oid}")
        _collect(Checked(get, where, os.fsencode(tmp)), root, (snap.files, snap.bytes),
                 os.fsencode(tmp), files, links, dirs)
        tmp.mkdir()
        try:
            for d in dirs:
                os.mkdir(d)
            if reuse is not None and not reuse.prepare(store.checkouts_dir, (e for e, _ in files)):
                reuse = None
            _run(store, files, progress, reuse)
            for e, p in links:
                os.symlink(e.target, p)
            _make_readonly(tmp, dirs)
            _syncfs(tmp)
            if not move_dir_into_place(tmp, final):
                force_remove(tmp)  # another process won the race with the same tree
        except BaseException:
            force_remove(tmp)
            raise
    if snap.root == ROOT_FILE:
        names = os.listdir(final)
        if len(names) != 1:
            raise FormatError(f"{where}: a file snapshot must hold exactly one regular file")
        return final / names[0]
    return final


def _stat_cache_for(check: Checked, tree: RawObjectID, dest: bytes, cache: StatCache) -> None:
    """Record every directory of ``tree`` as just written at ``dest`` in ``cache``."""
    stack: list[tuple[RawObjectID, list[TreeEntry], bytes, str, int]] = [
        (tree, check.get(tree), dest, "", 1)]
    while stack:
        tid, entries, d, rel, depth = stack.pop()
        files: dict[bytes, FileStat] = {}
        links: dict[bytes, bytes] = {}
        dirs: set[bytes] = set()
        for e in entries:
            p = os.path.join(d, e.name)
            if e.type == TYPE_FILE:
                files[e.name] = FileStat.of(os.lstat(p))
            elif e.type == TYPE_SYMLINK:
                links[e.name] = e.target
            else:
                dirs.add(e.name)
                sub = f"{rel}/{os.fsdecode(e.name)}" if rel else os.fsdecode(e.name)
                stack.append((e.subtree, check.below(e, depth, sub), p, sub, depth + 1))
        cache.dirs[rel] = DirCache(tid, dir_signature(files, links, dirs), files)


@dataclass
class _Plan:
    """What turns the tree at a path into another: the work of :func:`update_worktree`."""

    writes: list[tuple[TreeEntry, bytes]] = field(default_factory=list)
    removes: list[bytes] = field(default_factory=list)
    lost: list[tuple[bytes, TreeEntry]] = field(default_factory=list)
    mkdirs: list[bytes] = field(default_factory=list)
    links: list[tuple[TreeEntry, bytes]] = field(default_factory=list)
    chmods: list[tuple[TreeEntry, bytes]] = field(default_factory=list)


_Frame = tuple[Iterator[bytes], dict[bytes, TreeEntry], dict[bytes, TreeEntry], bytes, int]
"""One directory being planned: (names left, current entries, wanted entries, path, depth
of its subdirectories' contents)."""


def _frame(cur: list[TreeEntry], want: list[TreeEntry], dest: bytes, depth: int) -> _Frame:
    ce = {e.name: e for e in cur}
    we = {e.name: e for e in want}
    return iter(sorted(ce.keys() | we.keys())), ce, we, dest, depth


def _plan(want: Checked, cur: Checked, cur_root: RawObjectID | None, want_root: RawObjectID | None,
          claim: tuple[int, int], dest: bytes, plan: _Plan) -> None:
    """Work out what turns tree ``cur_root`` at ``dest`` into ``want_root`` (which holds ``claim``).

    Iterative, in path order; identical subtrees are skipped without being read.
    """
    if cur_root == want_root:
        return
    cut = len(dest) + 1  # paths in messages are relative to dest
    stack = [_frame(cur.root(cur_root, None) if cur_root is not None else [],
                    want.root(want_root, claim) if want_root is not None else [], dest, 1)]
    while stack:
        names, ce, we, d, depth = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        c, w = ce.get(name), we.get(name)
        p = os.path.join(d, name)
        if c is not None and w is not None and c.type == w.type:
            if w.type == TYPE_DIR:
                if c.subtree != w.subtree:
                    stack.append(_frame(cur.below(c, depth, p[cut:]),
                                        want.below(w, depth, p[cut:]), p, depth + 1))
                continue
            if w.type == TYPE_FILE and c.digest == w.digest:
                if c.executable != w.executable:
                    plan.chmods.append((w, p))
                continue
            if w.type == TYPE_SYMLINK and c.target == w.target:
                continue
        if c is not None:
            _note_lost(cur, c, p, plan.lost)
            if w is None or w.type != TYPE_FILE or c.type != TYPE_FILE:
                plan.removes.append(p)
        if w is None:
            continue
        if w.type == TYPE_DIR:
            plan.mkdirs.append(p)
            stack.append(_frame([], want.below(w, depth, p[cut:]), p, depth + 1))
        elif w.type == TYPE_FILE:
            plan.writes.append((w, p))
        else:
            plan.links.append((w, p))


def _note_lost(cur: Checked, c: TreeEntry, p: bytes, lost: list[tuple[bytes, TreeEntry]]) -> None:
    """Every regular file at or below current entry ``c`` (at ``p``): what a change replaces."""
    if c.type == TYPE_FILE:
        lost.append((p, c))
    elif c.type == TYPE_DIR and c.files:
        lost.extend((path, e) for path, e in walk(cur, c.subtree, p, os.path.join, dirs=False)
                    if e.type == TYPE_FILE)


def _fetch_missing(store: Store, writes: list[tuple[TreeEntry, bytes]], where: str,
                   fetch: Callable[[list[ChunkRef]], None] | None) -> None:
    """Bring the chunks of the files to write that the store lacks (a lazily fetched version).

    Only the files a checkout writes are looked at, so an up-to-date path costs nothing.
    """
    has = store.objects.has_committed
    missing = list({cid: n for e, _ in writes for cid, n in e.chunks if not has(cid)}.items())
    if missing and fetch is not None:
        fetch(missing)
        missing = [(cid, n) for cid, n in missing if not has(cid)]
    if missing:
        raise CorruptObjectError(
            f"{where}: {len(missing)} chunks of the files to write are not in the local store "
            f"(first: {raw_to_hex(missing[0][0])}) and no remote could supply them; nothing was "
            "written (`git ml fetch REMOTE`)")


def update_worktree(store: Store, snap: Snapshot, target: Path, old: StatCache, *,
                    force: bool = False, warn: Callable[[str], None] = lambda _m: None,
                    progress: Progress | None = None,
                    on_total: Callable[[int, int], None] | None = None,
                    label: str = "",
                    fetch: Callable[[list[ChunkRef]], None] | None = None,
                    reuse: Reuse | None = None) -> tuple[StatCache, int]:
    """Make ``target`` hold exactly snapshot ``snap``; return the new stat cache and its time.

    Raises BadPathError, changing nothing, if a file that would be overwritten
    or removed holds content that is not in the store (unless ``force``), and
    FormatError, changing nothing, if the snapshot's tree does not have the shape
    the format requires (:mod:`mlgit.format.treeshape`). ``label`` names the
    snapshot in messages (default: its kind and name). The snapshot's trees must
    be in the store; chunks of the files to write that are not are passed to
    ``fetch`` as (id, length) pairs before anything is written (without ``fetch``,
    or if they are still missing after it, a CorruptObjectError, changing nothing).
    Files whose content ``reuse`` finds on disk are reflinked where the filesystem can.
    """
    where = label or f"{snap.kind} {snap.name}"
    is_file = snap.root == ROOT_FILE
    want_root = hex_to_raw(snap.tree)
    # The snapshot's shape is checked before anything is touched: depth and empty
    # directories here, every subtree's claims while planning.
    if is_file:
        entry = file_root_entry(store.objects.get_tree(want_root), where)
    else:
        check_shape(store.objects.get_tree, want_root, where)
    tpath = os.fsencode(target)
    cur_root, trees, replace_target = _current(store, target, is_file=is_file, old=old,
                                               force=force, warn=warn)

    def get_cur(t: RawObjectID) -> list[TreeEntry]:
        got = trees.get(t)
        return got if got is not None else store.objects.get_tree(t)

    plan = _Plan()
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
        renamed = [dataclasses.replace(entry, name=os.path.basename(tpath))]

        def get_want(t: RawObjectID) -> list[TreeEntry]:
            return renamed if t == want_root else store.objects.get_tree(t)

    _plan(Checked(get_want, where), Checked(get_cur, target.name), cur_root, want_root,
          (snap.files, snap.bytes), base, plan)
    if not force:
        _refuse_losing_changes(store, plan)
    _fetch_missing(store, plan.writes, where, fetch)
    if on_total:
        on_total(len(plan.writes), sum(e.size for e, _ in plan.writes))
    if replace_target:
        _remove(tpath)
    if fresh_dir:
        os.makedirs(os.path.dirname(tpath) or b".", exist_ok=True)
        os.mkdir(staging)
    elif not is_file:
        os.makedirs(tpath, exist_ok=True)
    if reuse is not None and not reuse.prepare(Path(os.fsdecode(os.path.dirname(tpath) or b".")),
                                               (e for e, _ in plan.writes)):
        reuse = None
    try:
        _apply(store, plan, progress, reuse)
        if fresh_dir:
            os.rename(staging, tpath)
    except BaseException:
        if fresh_dir:
            force_remove(staging)
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
        _stat_cache_for(Checked(store.objects.get_tree, where), want_root, tpath, new)
    return new, stat_time


def _current(store: Store, target: Path, *, is_file: bool, old: StatCache, force: bool,
             warn: Callable[[str], None]
             ) -> tuple[RawObjectID | None, dict[RawObjectID, list[TreeEntry]], bool]:
    """What ``target`` holds now: (its tree's root or None, the trees built, replace it whole).

    The last is true for a file where a directory goes (or the reverse), with
    ``force``; without ``force`` that is a BadPathError, changing nothing.
    """
    tpath = os.fsencode(target)
    if not os.path.lexists(tpath):
        return None, {}, False
    is_dir = stat.S_ISDIR(os.lstat(tpath).st_mode)
    if is_dir == is_file:
        if not force:
            raise BadPathError(
                f"{target} is a {'directory' if is_dir else 'file'} but the snapshot holds a "
                f"{'file' if is_file else 'directory'}; move it away or use --force")
        return None, {}, True
    cur = build_tree(store, tpath, is_file=is_file, old=old, dry=True, warn=warn)
    return cur.root, cur.trees, False


def _refuse_losing_changes(store: Store, plan: _Plan) -> None:
    """BadPathError if a file the plan replaces or removes holds content not in the store."""
    unsafe = [p for p, e in plan.lost
              if not all(store.objects.has_committed(cid) for cid, _ in e.chunks)]
    if unsafe:
        shown = ", ".join(os.fsdecode(p) for p in unsafe[:5])
        more = f" and {len(unsafe) - 5} more" if len(unsafe) > 5 else ""
        raise BadPathError(
            f"checkout would overwrite local changes not saved in git-ml: {shown}{more}; "
            "`git ml add` them first, or use --force to discard them")


def _apply(store: Store, plan: _Plan, progress: Progress | None,
           reuse: Reuse | None = None) -> None:
    """Carry out ``plan``: removals, new directories, file writes, symlinks, modes, in order."""
    for p in plan.removes:
        with contextlib.suppress(FileNotFoundError):
            _remove(p)
    for p in plan.mkdirs:
        os.mkdir(p)
    _run(store, plan.writes, progress, reuse)
    for e, p in plan.links:
        os.symlink(e.target, p)
    for e, p in plan.chmods:
        os.chmod(p, os.lstat(p).st_mode & 0o7777 | 0o111 if e.executable
                 else os.lstat(p).st_mode & 0o7666)
