"""``git ml import`` and ``git ml update``: a version of another repository's data, pinned here.

A *registry* is any git repository with a git-ml store that publishes datasets
(or checkpoint runs) by name. ``git ml import URL NAME[@PREFIX][~N] [PATH]``:

1. checks everything first: the revision's syntax, the URL
   (:func:`mlgit.format.source.check_source_url`; a relative local path or a
   remote of this clone is turned into the URL it stands for), that ``PATH``
   (default: ``NAME`` in the current directory) does not exist and is a path
   git-ml may track, and that this repository has a store;
2. finds the source's store as a remote's is found
   (:func:`mlgit.sync.remote.resolve_source`: a local path, ssh, or
   ``ml.<URL>.url`` for S3), resolves the revision there (``NAME``: the newest
   version, that is its ref; ``@PREFIX``: the one snapshot of that name whose id
   starts so; ``~N``: first parents back), and fetches that version whole,
   verified as every fetch is (:mod:`mlgit.sync.transfer`), without its history;
3. writes the data at ``PATH`` (built beside it and renamed into place), then a
   version 3 pointer (docs/format.md, "Imported pointer") recording the source's
   URL and the revision asked for, the ``.gitignore`` line, and stages both.

No local ref names an imported version: the pointer does (commits keep it from
gc). It is not pushed to this repository's remotes unless asked (``git ml push
--imports`` or ``ml.pushImports``: :func:`mlgit.api.sync.push`); a teammate's
clone fetches it from the source on ``git ml pull`` and ``git ml checkout``
(:func:`source_snapshots`, :func:`source_chunk_fetcher`), and from the project's
own remote only when the source cannot supply it.

``git ml update PATH...`` moves imported pointers to the source's newest version
of their name (or to ``rev``), the data with them (refusing, changing nothing,
to discard local changes the store does not hold), and stages the pointer: a
change to commit. Already there: nothing changes.

Bad input raises before anything changes: RevisionError (exit 5) for a name or
version the source lacks, BadPathError (6) for a path that exists or cannot be
tracked, UsageError (2) for a URL git-ml refuses or a source without a store,
the remote errors (11-14) for a source that cannot be reached.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgit.api import sync
from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.errors import (
    AmbiguousRevisionError,
    BadPathError,
    CorruptObjectError,
    FormatError,
    GitCommandError,
    MlgitError,
    RevisionError,
    UsageError,
)
from mlgit.format.compression import decompress
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw, is_hex_prefix, raw_to_hex
from mlgit.format.limits import MAX_SNAPSHOT_LEN
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.format.paths import check_tracked_path
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, PointerSource
from mlgit.format.snapshot import Snapshot, decode_snapshot
from mlgit.format.source import ImportRev, check_source_url, parse_import_rev
from mlgit.gitlink import index as gitindex
from mlgit.gitlink.pointers import (
    check_pointer_path,
    load_pointers,
    pointer_path_for,
    tracked_path_for,
    write_pointer,
)
from mlgit.gitlink.settings import setting_bool
from mlgit.snapshot import statcache
from mlgit.snapshot.materialize import update_worktree
from mlgit.store.refs import SNAPSHOT_KINDS
from mlgit.sync.remote import RemoteSpec, resolve_source
from mlgit.sync.transfer import (
    RemoteIndex,
    check_remote_config,
    fetch_objects,
    read_objects,
    remote_cache_dir,
)

__all__ = ["ChunkFetcher", "ImportResult", "chunk_fetcher_for", "fetch_lacking", "import_",
           "imported", "newer_import", "source_chunk_fetcher", "source_snapshots",
           "source_spec", "source_url", "update"]

_MAX_CANDIDATES = 256
"""Snapshots of a source whose id starts with an ``@PREFIX`` that are read to find the
one of the right name; a shorter prefix matching more is ambiguous."""


@dataclass
class ImportResult:
    """What ``import`` or ``update`` did for one path.

    ``old`` is the version the pointer pinned before (None for an import);
    ``changed`` says whether the pointer file was rewritten.
    """

    path: str
    pointer: str
    kind: str
    name: str
    url: str
    rev: str
    id: ObjectID
    old: ObjectID | None = None
    changed: bool = True
    files: int = 0
    bytes: int = 0
    fetched_objects: int = 0
    fetched_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml import --json`` and ``git ml update --json`` print it."""
        return {"path": self.path, "pointer": self.pointer, "kind": self.kind,
                "name": self.name, "source": {"url": self.url, "rev": self.rev},
                "id": self.id, "old": self.old, "changed": self.changed, "files": self.files,
                "bytes": self.bytes, "fetched_objects": self.fetched_objects,
                "fetched_bytes": self.fetched_bytes}


def source_url(repo: Core, text: str, base: Path | None = None) -> str:
    """The URL an import records for ``text``: checked, and absolute for a local path.

    ``text`` may be a remote of this clone (its URL is used), a local path
    relative to ``base`` (default: the current directory; made absolute and
    normalized), or any URL :func:`~mlgit.format.source.check_source_url`
    accepts. UsageError, naming the reason, for anything else.
    """
    url = text.strip()
    if url and "/" not in url and ":" not in url:
        try:
            named = repo.git.run_git("config", "--get", f"remote.{url}.url").decode().strip()
        except GitCommandError:
            named = ""
        if named:
            url = named
            base = repo.git.workdir or repo.git.git_dir
    if url.startswith("file://"):
        url = url[len("file://"):]
    local = url.startswith(("/", ".")) or os.path.isdir(Path(base or Path.cwd()) / url)
    if local and not url.startswith("/"):
        url = os.path.normpath(Path(base or Path.cwd()).absolute() / url)
    elif local:
        url = os.path.normpath(url)
    try:
        return check_source_url(url)
    except FormatError as e:
        raise UsageError(f"{e}; git-ml can import from a local path, an ssh://, host:path "
                         "or s3:// URL (or a web URL with `git config ml.<URL>.url`)") from None


def _parse_rev(text: str) -> ImportRev:
    try:
        return parse_import_rev(text)
    except FormatError as e:
        raise UsageError(str(e)) from None


def _check_free_path(repo: Core, path: str | os.PathLike[str]) -> str:
    """The work-tree path a new import may be written at; BadPathError if it may not.

    Refused: an existing file, directory or symlink (or an existing pointer file
    beside it), a path git's rules refuse, a path inside, around or on another
    pointer's data, one git tracks files under, one whose ``.gitignore`` cannot
    be changed, and a pointer file's own path.
    """
    git = repo.git
    rel = git.relpath(Path(path))
    if not rel or rel == ".":
        raise BadPathError("cannot import into the whole work tree; name a path in it")
    try:
        check_tracked_path(rel)
    except FormatError as e:
        raise BadPathError(f"{path}: {e}; git-ml cannot track data there") from None
    if rel.endswith(POINTER_SUFFIX):
        raise BadPathError(f"{path}: a data path cannot end in {POINTER_SUFFIX}")
    work = git.require_workdir()
    pointer_rel = pointer_path_for(rel)
    check_pointer_path(pointer_rel)
    for p in (rel, pointer_rel):
        if os.path.lexists(work / p):
            raise BadPathError(f"{p} already exists; import to another path (the PATH "
                               "argument), or `git ml update` an import that is there")
    good, bad = load_pointers(git)
    for other in [pr for pr, _ in good] + [pr for pr, _ in bad]:
        data = tracked_path_for(other)
        if data == rel or rel.startswith(data + "/") or data.startswith(rel + "/") or (
                other == rel):
            raise BadPathError(f"{rel} overlaps the data of {other}; import to another path")
    if gitindex.tracked_under(git, rel):
        raise BadPathError(f"{rel}: git tracks files there; import to another path")
    gitindex.check_ignorable(git, rel)
    return rel


def _no_store(spec: RemoteSpec, url: str) -> UsageError:
    key = shlex.quote(f"ml.{url}.url")
    return UsageError(f"{url} has no git-ml data (no store at {spec.url}); if its data "
                      f"lives elsewhere, set `git config {key} s3://bucket/prefix` (or a "
                      "path or ssh:// URL)")


class _Source:
    """One connection to an import's source store: its refs, index and snapshots."""

    def __init__(self, repo: Core, url: str) -> None:
        self.repo, self.url = repo, url
        spec = resolve_source(repo.git, url, repo.ssh_command)
        self.spec, self.backend = sync.connect_remote(repo, spec)
        try:
            if not check_remote_config(self.backend, repo.store, create=False):
                raise _no_store(self.spec, url)
            self.bad: dict[str, FormatError] = {}
            self.refs = self.backend.list_refs(self.bad.__setitem__)
            self.index = RemoteIndex(self.backend, remote_cache_dir(repo.store, self.spec.url))
        except BaseException:
            self.backend.close()
            raise

    def close(self) -> None:
        """End the connection."""
        self.backend.close()

    def snapshot(self, raw: RawObjectID) -> Snapshot:
        """A snapshot of the source, read and verified (RevisionError if it lacks it)."""
        hit = self.index.entries.get(raw)
        if hit is None or hit[1].type != OBJ_SNAPSHOT:
            raise RevisionError(f"{self.url} has no snapshot {raw_to_hex(raw)}")
        if hit[1].raw_len > MAX_SNAPSHOT_LEN:
            raise CorruptObjectError(f"{self.url}: snapshot {raw_to_hex(raw)} claims "
                                     f"{hit[1].raw_len} bytes, more than a snapshot may have")
        e, stored = read_objects(self.backend, self.index, [raw])[raw]
        try:
            return decode_snapshot(decompress(e.codec, stored, e.raw_len))
        except FormatError as err:
            raise CorruptObjectError(f"{self.url}: snapshot {raw_to_hex(raw)} does not "
                                     f"decode: {err}") from None

    def resolve(self, want: ImportRev) -> tuple[str, ObjectID]:
        """(kind, id) of ``want`` on the source; RevisionError if it names nothing there."""
        kinds = {kind[:-1]: self.refs[f"{kind}/{want.name}"] for kind in SNAPSHOT_KINDS
                 if f"{kind}/{want.name}" in self.refs}
        if want.prefix is None:
            unreadable = [self.bad[r] for r in (f"{k}/{want.name}" for k in SNAPSHOT_KINDS)
                          if r in self.bad]
            if not kinds and unreadable:
                raise unreadable[0]
            if not kinds:
                raise RevisionError(f"{self.url} has no dataset or run {want.name!r} (`git ml "
                                    f"ls {shlex.quote(self.url)}` lists what it has)")
            if len(set(kinds.values())) > 1:
                raise AmbiguousRevisionError(f"{want.name!r} is both a dataset and a run on "
                                             f"{self.url}; name a version: {want.name}@ID")
            kind, oid = next(iter(sorted(kinds.items())))
        else:
            kind, oid = self._by_prefix(want.name, want.prefix)
        for i in range(want.steps):
            parents = self.snapshot(hex_to_raw(oid)).parents
            if not parents:
                raise RevisionError(f"{want}: {want.name} has only {i} earlier versions on "
                                    f"{self.url}")
            oid = parents[0]
        snap = self.snapshot(hex_to_raw(oid))
        return snap.kind if want.steps or want.prefix else kind, oid

    def _by_prefix(self, name: str, prefix: str) -> tuple[str, ObjectID]:
        cands = sorted(raw for raw, (_, e) in self.index.entries.items()
                       if e.type == OBJ_SNAPSHOT and raw_to_hex(raw).startswith(prefix))
        if len(cands) > _MAX_CANDIDATES:
            raise AmbiguousRevisionError(f"{name}@{prefix} matches over {_MAX_CANDIDATES} "
                                         f"snapshots on {self.url}; give more of the id")
        found = []
        for raw in cands:
            snap = self.snapshot(raw)
            if snap.name == name:
                found.append((snap.kind, raw_to_hex(raw)))
        if not found:
            raise RevisionError(f"{self.url} has no snapshot of {name!r} whose id starts "
                                f"with {prefix!r}")
        if len(found) > 1:
            raise AmbiguousRevisionError(
                f"{name}@{prefix} is ambiguous on {self.url}: "
                f"{', '.join(oid[:12] for _, oid in found[:10])}")
        return found[0]

    def fetch(self, oid: ObjectID, ev: Events, history: bool = False) -> tuple[int, int]:
        """Bring snapshot ``oid`` whole (and with ``history`` its ancestors); (objects, bytes)."""
        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"fetching from {self.url}", files, nbytes)

        try:
            stats = fetch_objects(self.repo.store, self.backend, [hex_to_raw(oid)],
                                  self.index, history=history, progress=ev.advance,
                                  on_total=on_total)
        finally:
            ev.finish()
        return stats.objects, stats.bytes


def _materialize(repo: Core, rel: str, oid: ObjectID, force: bool, ev: Events) -> Snapshot:
    """Make work-tree path ``rel`` hold snapshot ``oid`` (all of it local) and cache its stat.

    Raises BadPathError, changing nothing, for local changes the store does not
    hold (unless ``force``).
    """
    store = repo.store
    full = repo.git.require_workdir() / rel
    snap = repo.snapshot(oid)
    cpath = statcache.cache_path(store.cache_dir, full)
    old = statcache.load(cpath)

    def on_total(files: int, nbytes: int) -> None:
        ev.start(f"checking out {rel}", files, nbytes)

    try:
        cache, stat_time = update_worktree(store, snap, full, old, force=force, warn=ev.warn,
                                           progress=ev.advance, on_total=on_total)
    finally:
        ev.finish()
    cache.snapshot = oid
    statcache.save(cpath, cache, stat_time, repo.git_index_target(full))
    return snap


def _pin(repo: Core, rel: str, pointer: Pointer) -> None:
    """Write the pointer, the ``.gitignore`` line, and stage both."""
    pointer_rel = pointer_path_for(rel)
    write_pointer(repo.git, pointer_rel, pointer)
    ignore_rel = gitindex.ensure_ignored(repo.git, rel)
    gitindex.stage(repo.git, [pointer_rel, ignore_rel])


def import_(repo: Core, url: str, rev: str, path: str | os.PathLike[str] | None = None, *,
            base: Path | None = None, events: Events | None = None) -> ImportResult:
    """Import version ``rev`` (``NAME[@PREFIX][~N]``) of repository ``url``'s data at ``path``.

    ``path`` defaults to ``NAME`` (relative paths, and a relative local ``url``,
    are taken from ``base``, default the current directory). See the module
    docstring for the steps and errors.
    """
    ev = events or Events()
    want = _parse_rev(rev)
    url = source_url(repo, url, base)
    store = repo.store  # NotInitializedError before anything else
    target = Path(path) if path is not None else Path(want.name)
    if base is not None and not target.is_absolute():
        target = base / target
    rel = _check_free_path(repo, target)
    with store.writing():
        src = _Source(repo, url)
        try:
            kind, oid = src.resolve(want)
            objects, nbytes = src.fetch(oid, ev)
        finally:
            src.close()
        (repo.git.require_workdir() / rel).parent.mkdir(parents=True, exist_ok=True)
        snap = _materialize(repo, rel, oid, False, ev)
        _pin(repo, rel, Pointer(kind, want.name, oid, source=PointerSource(url, str(want))))
    return ImportResult(rel, pointer_path_for(rel), kind, want.name, url, str(want), oid,
                        files=snap.files, bytes=snap.bytes, fetched_objects=objects,
                        fetched_bytes=nbytes)


def _update_rev(name: str, rev: str | None) -> ImportRev:
    """What ``update`` moves a pointer of ``name`` to: ``rev`` read as an import revision.

    None: the newest. ``PREFIX`` alone means ``NAME@PREFIX``; ``~N`` alone
    ``NAME~N``. A revision of another name is a UsageError (import that instead).
    """
    if rev is None:
        return ImportRev(name)
    text = rev.strip()
    if text.startswith("~") or (text.startswith("@") and len(text) > 1):
        text = name + text
    elif is_hex_prefix(text.lower()) and text != name:
        text = f"{name}@{text}"
    want = _parse_rev(text)
    if want.name != name:
        raise UsageError(f"--rev {rev[:80]!r} names {want.name!r}, but the import is "
                         f"{name!r}; `git ml import` it to another path instead")
    return want


def update(repo: Core, paths: list[str | os.PathLike[str]], *, rev: str | None = None,
           force: bool = False, events: Events | None = None) -> list[ImportResult]:
    """Move imported pointers (data paths or pointer files) to their source's newest version.

    With ``rev`` (see :func:`_update_rev`), to that version instead. Each path is
    checked (it must be an import) before any source is contacted; each source
    is contacted once per path. The data follows (refused, changing nothing for
    that path and the ones after it, when it holds local changes the store lacks,
    unless ``force``), then the pointer is written and staged. A pointer already
    at that version is left as it is (``changed`` False).
    """
    ev = events or Events()
    if not paths:
        raise BadPathError("nothing to update: name imported data paths or their pointers")
    store = repo.store
    good, bad = load_pointers(repo.git)
    by_data = {tracked_path_for(pr): p for pr, p in good}
    refused = {tracked_path_for(pr): e for pr, e in bad}
    plans: list[tuple[str, Pointer, ImportRev]] = []
    for path in paths:
        rel = repo.git.relpath(Path(path)).removesuffix(POINTER_SUFFIX)
        if rel in refused:
            raise refused[rel]
        p = by_data.get(rel)
        if p is None:
            raise BadPathError(f"not tracked by git-ml: {rel}")
        if p.source is None:
            raise BadPathError(f"{rel} is not imported (its data is this repository's own: "
                               "`git ml add` records a new version)")
        plans.append((rel, p, _update_rev(p.name, rev)))
    out = []
    with store.writing():
        for rel, p, want in plans:
            assert p.source is not None
            src = _Source(repo, p.source.url)
            try:
                kind, oid = src.resolve(want)
                objects, nbytes = src.fetch(oid, ev)  # nothing when it is all here
            finally:
                src.close()
            new = Pointer(kind, p.name, oid, source=PointerSource(p.source.url, str(want)))
            snap = _materialize(repo, rel, oid, force, ev) if (
                oid != p.id or not _is_here(repo, rel)) else repo.snapshot(oid)
            if new != p:
                _pin(repo, rel, new)
            out.append(ImportResult(rel, pointer_path_for(rel), kind, p.name, p.source.url,
                                    str(want), oid, p.id, new != p, snap.files, snap.bytes,
                                    objects, nbytes))
    return out


def _is_here(repo: Core, rel: str) -> bool:
    return os.path.lexists(repo.git.require_workdir() / rel)


def imported(pointers: list[tuple[str, Pointer]]) -> dict[ObjectID, str]:
    """The snapshots imported pointers pin, each with its source URL (the first by path)."""
    out: dict[ObjectID, str] = {}
    for _, p in sorted(pointers, key=lambda rp: rp[0]):
        if p.source is not None:
            out.setdefault(p.id, p.source.url)
    return out


def source_snapshots(repo: Core, wanted: dict[ObjectID, str], chunks_too: bool = False
                     ) -> dict[ObjectID, str]:
    """Fetch imported snapshots (id: source URL) and their trees from their sources.

    Chunks too with ``chunks_too``. Returns, for each one still not in the local
    store, why (one clause for a message, as the lazy remote's fetch says it).
    A source that cannot be reached or lacks the version is that reason; the
    others are still fetched.
    """
    why: dict[ObjectID, str] = {}
    by_url: dict[str, list[ObjectID]] = {}
    for oid, url in sorted(wanted.items()):
        by_url.setdefault(url, []).append(oid)
    for url, oids in by_url.items():
        reason = f"and its source {url} could not supply it"
        collect = Events()
        try:
            spec = resolve_source(repo.git, url, repo.ssh_command)
            sync.fetch(repo, spec, [str(o) for o in oids], history=False, notes=False,
                       chunks_too=chunks_too, events=collect)
        except MlgitError as e:
            reason = f"and fetching it from its source {url} failed: {e}"
        found = getattr(collect, "problems", [])
        if found:
            reason = f"and its source {url} could not supply it: {found[0]}"
        has = repo.store.objects.has_committed
        why.update({o: reason for o in oids if not has(hex_to_raw(o))})
    return why


ChunkFetcher = Callable[[list[tuple[RawObjectID, int]]], None]


def source_chunk_fetcher(repo: Core, url: str, fallback: ChunkFetcher | None = None
                         ) -> ChunkFetcher:
    """What brings an imported snapshot's missing chunks for a checkout: its source's.

    When the source fails (cannot be reached, lacks a chunk) and there is a
    ``fallback`` (the lazy-fetch remote's fetcher: data pushed with ``--imports``),
    that is tried; if it fails too, the source's error is raised.
    """
    def fetch(chunks: list[tuple[RawObjectID, int]]) -> None:
        try:
            spec = resolve_source(repo.git, url, repo.ssh_command)
            sync.fetch_chunks(repo, spec, chunks)
        except MlgitError:
            if fallback is None:
                raise
            try:
                fallback(chunks)
            except MlgitError:
                pass
            else:
                return
            raise

    return fetch



def source_spec(repo: Core, oid: ObjectID) -> RemoteSpec | None:
    """Where snapshot ``oid`` comes from when the work tree imports it: its source, or None.

    None too when no work tree pointer imports it, when the source's URL is
    refused (the caller then uses the lazy-fetch remote, as for any snapshot),
    and when lazy fetching is off (``ml.lazyFetch false``).
    """
    if repo.git.workdir is None or not _lazy(repo):
        return None
    url = imported(load_pointers(repo.git)[0]).get(oid)
    if url is None:
        return None
    try:
        return resolve_source(repo.git, url, repo.ssh_command)
    except UsageError:
        return None


def fetch_lacking(repo: Core, pointers: list[tuple[str, Pointer]], lacking: list[ObjectID],
                  lazy: Callable[[list[ObjectID]], dict[ObjectID, str]]) -> dict[ObjectID, str]:
    """Fetch the snapshots (and trees) ``pointers`` pin that the store lacks; why, for each not.

    An imported one comes from its source (:func:`source_snapshots`), else from
    ``lazy`` (the lazy-fetch remote's fetch, which says why for each it could not
    bring); any other comes from ``lazy``.
    """
    sources = imported(pointers) if _lazy(repo) else {}
    own = [o for o in lacking if o not in sources]
    why = lazy(own) if own else {}
    missing = source_snapshots(repo, {o: sources[o] for o in lacking if o in sources})
    if missing:
        still = lazy(sorted(missing))
        why.update({o: missing[o] for o in still})
    return why


def chunk_fetcher_for(repo: Core, p: Pointer, lazy: ChunkFetcher | None) -> ChunkFetcher | None:
    """What brings the missing chunks of pointer ``p``'s data: its source's, or ``lazy``.

    None when lazy fetching is off (``ml.lazyFetch false``).
    """
    if p.source is None or not _lazy(repo):
        return lazy
    return source_chunk_fetcher(repo, p.source.url, lazy)


def _lazy(repo: Core) -> bool:
    """False when ``ml.lazyFetch`` is false: data the store lacks is fetched only when asked."""
    return setting_bool(repo.git, "ml.lazyFetch") is not False


def _ancestors(repo: Core, src: _Source, start: ObjectID, stop: ObjectID) -> bool:
    """True if ``stop`` is ``start`` or one of its ancestors (snapshots read here or there)."""
    has = repo.store.objects.has_committed
    seen: set[str] = set()
    stack = [start]
    while stack:
        oid = stack.pop()
        if oid == stop:
            return True
        if oid in seen:
            continue
        seen.add(oid)
        raw = hex_to_raw(oid)
        try:
            snap = repo.snapshot(oid) if has(raw) else src.snapshot(raw)
        except RevisionError:
            continue  # the source lacks it: a line of history that ends here
        stack.extend(snap.parents)
    return False


def newer_import(repo: Core, url: str, a: ObjectID, b: ObjectID) -> ObjectID | None:
    """Of two versions of one import, the one the other is an ancestor of; None if neither.

    What the merge driver keeps when both sides of a merge moved an imported
    pointer (``git ml update``): the newer, as a fast-forward. Snapshots the local
    store lacks are read from the source (nothing is stored).
    """
    src = _Source(repo, url)
    try:
        if _ancestors(repo, src, b, a):
            return b
        if _ancestors(repo, src, a, b):
            return a
        return None
    finally:
        src.close()
