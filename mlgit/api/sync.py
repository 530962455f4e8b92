"""``git ml push / fetch / pull / ls REMOTE``: sidecar objects, refs and notes with remotes.

Order of a push: objects (packs, children before parents), then each remote
ref by compare-and-swap (a non-fast-forward is refused unless forced), then
notes (fetched, merged with ``cat_sort_uniq``, pushed). A fetch stores remote
refs as remote-tracking refs (``.git/ml/refs/remotes/<remote>/...``) and never
moves local ones; it merges the remote's notes into ours.

Bad input is reported and skipped, as ``git fsck`` does (``Events.problem``): a
ref that cannot be read (here or on the remote), a remote index that fails its
checks, a snapshot whose objects fail theirs (it is not fetched; the rest is).
Called without ``events``, a verb raises the first problem once the rest is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.errors import (
    ConflictError,
    CorruptObjectError,
    FormatError,
    GitCommandError,
    MlgitError,
    RevisionError,
    UsageError,
)
from mlgit.format.compression import decompress
from mlgit.format.ids import ObjectID, is_hex_prefix, raw_to_hex
from mlgit.format.limits import MAX_SNAPSHOT_LEN
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.format.snapshot import Snapshot, decode_snapshot
from mlgit.gitlink.commits import head_commit, pointers_in_tree, resolve_commit
from mlgit.gitlink.notes import fetch_notes, merge_notes, push_notes
from mlgit.store import walk
from mlgit.store.refs import REF_KINDS, RefStore
from mlgit.store.store import Store
from mlgit.sync.backend import Backend
from mlgit.sync.remote import RemoteSpec, no_store_error, open_backend, resolve_remote
from mlgit.sync.transfer import (
    RemoteIndex,
    check_remote_config,
    fetch_objects,
    push_objects,
    read_objects,
    remote_cache_dir,
)

if TYPE_CHECKING:
    from mlgit.api.repo import Repo

__all__ = ["PushResult", "RemoteRef", "fetch", "fetch_chunks", "is_git_remote", "ls_remote", "pull",
           "push", "tracking_refs"]


@dataclass
class PushResult:
    """What a push or fetch did."""

    remote: str
    url: str
    objects: int = 0
    bytes: int = 0
    packs: int = 0
    refs: list[str] = field(default_factory=list)
    notes: bool = False


@dataclass
class RemoteRef:
    """A dataset or run on a remote, with its newest snapshot (when readable)."""

    kind: str
    name: str
    id: ObjectID
    snapshot: Snapshot | None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml ls REMOTE --json`` prints it."""
        s = self.snapshot
        return {"kind": self.kind, "name": self.name, "id": self.id,
                "time": s.time if s else None, "files": s.files if s else None,
                "bytes": s.bytes if s else None, "message": s.message if s else None}


def _connect(repo: Repo, remote: str | None) -> tuple[RemoteSpec, Backend]:
    spec = resolve_remote(repo.git, remote, repo.ssh_command)
    return spec, open_backend(spec)


def is_git_remote(repo: Repo, name: str) -> bool:
    """True when ``name`` is one of git's remotes (so notes can travel with git)."""
    try:
        repo.git.run_git("config", "--get", f"remote.{name}.url")
        return True
    except GitCommandError:
        return False


def tracking_refs(store: Store, remote: str) -> RefStore:
    """The remote-tracking refs of ``remote`` (``.git/ml/refs/remotes/<remote>/``)."""
    if not is_ref_name(remote):
        raise UsageError(f"remote name {remote!r} cannot name remote-tracking refs")
    return RefStore(store.root / "refs" / "remotes" / remote)


def _local_refs(store: Store, ev: Events) -> dict[str, ObjectID]:
    """Every local dataset and run ref (``datasets/<name>``: id); bad ones are problems."""
    return {f"{kind}/{name}": oid for kind in REF_KINDS
            for name, oid in store.refs.list(kind, lambda _, e: ev.problem(e)).items()}


def _is_ancestor(store: Store, old: ObjectID, new: ObjectID) -> bool:
    """True if ``old`` is ``new`` or one of its ancestors (in the local store)."""
    seen: set[str] = set()
    stack = [new]
    while stack:
        oid = stack.pop()
        if oid == old:
            return True
        if oid in seen or not store.objects.has_committed(bytes.fromhex(oid)):
            continue
        seen.add(oid)
        stack.extend(store.objects.get_snapshot(oid).parents)
    return False


def _pinned(repo: Repo, commits: list[str]) -> set[ObjectID]:
    cache: dict[str, Any] = {}
    out: set[ObjectID] = set()
    for c in commits:
        tree = str(repo.git.git[c].tree_id)
        out.update(p.id for _, p in pointers_in_tree(repo.git, tree, cache))
    return out


def push(repo: Repo, remote: str | None = None, *, force: bool = False,
         commits: list[str] | None = None, events: Events | None = None) -> PushResult:
    """Send objects, refs and notes to ``remote``. See the module docstring for the order.

    ``commits`` are the commits being pushed (the pre-push hook passes them); by
    default HEAD. Every snapshot their pointer files name is sent, and every
    local dataset and run ref.
    """
    ev = events or Events()
    store = repo.store
    spec, backend = _connect(repo, remote)
    result = PushResult(spec.name, spec.url)
    try:
        check_remote_config(backend, store, create=True)
        local = _local_refs(store, ev)
        heads = commits if commits is not None else [c for c in [head_commit(repo.git)] if c]
        pinned = _pinned(repo, heads)
        unreadable: set[str] = set()

        def bad_remote_ref(ref: str, e: FormatError) -> None:
            unreadable.add(ref)
            ev.problem(e)

        remote_refs = backend.list_refs(bad_remote_ref)
        local = {ref: oid for ref, oid in local.items() if ref not in unreadable}
        named_there = set(remote_refs.values())
        if all(remote_refs.get(ref) == oid for ref, oid in local.items()) and (
                pinned <= named_there):
            # Everything is named by a remote ref, and a remote ref only ever names a
            # complete snapshot: nothing to send, and no index needs reading.
            result.notes = _notes_after(repo, spec)
            if events is None:
                ev.raise_problems()
            return result
        absent = sorted(p for p in pinned - set(local.values())
                        if not store.objects.has_committed(bytes.fromhex(p)))
        for p in absent:
            ev.warn(f"snapshot {p[:12]} is pinned by a pushed commit but not in the local store;"
                    " it cannot be pushed from here")
        updates: list[tuple[str, ObjectID, ObjectID | None]] = []
        refused: list[str] = []
        for ref, new in sorted(local.items()):
            old = remote_refs.get(ref)
            if old == new:
                continue
            if old is not None and not force and not _is_ancestor(store, old, new):
                refused.append(ref)
                continue
            updates.append((ref, new, old))
        if refused:
            raise ConflictError(
                f"push to {spec.name} rejected: the remote's {', '.join(refused)} has versions "
                f"yours lacks; run `git ml fetch {spec.name}`, then add or commit on top of "
                "the remote's version (or push with --force to replace it)")
        roots = [bytes.fromhex(x) for x in sorted(set(local.values()) | (pinned - set(absent)))]
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url), ev.problem)

        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"pushing to {spec.name}", files, nbytes)

        try:
            stats = push_objects(store, backend, roots, index, progress=ev.advance,
                                 on_total=on_total)
        finally:
            ev.finish()
        result.objects, result.bytes, result.packs = stats.objects, stats.bytes, stats.packs
        for ref, new, old in updates:
            try:
                backend.update_ref(ref, new, old)
            except ConflictError as e:
                raise ConflictError(
                    f"{ref} on {spec.name} could not be updated ({e}); if someone else pushed, "
                    f"run `git ml fetch {spec.name}` and push again") from None
            result.refs.append(ref)
        tracking = tracking_refs(store, spec.name) if is_ref_name(spec.name) else None
        if tracking is not None:
            for ref, new, _ in updates:
                kind, _, name = ref.partition("/")
                try:
                    tracking.update(kind, name, new, tracking.get(kind, name))
                except FormatError as e:
                    ev.problem(e)
    finally:
        backend.close()
    result.notes = _notes_after(repo, spec)
    if events is None:
        ev.raise_problems()
    return result


def _notes_after(repo: Repo, spec: RemoteSpec) -> bool:
    """Push the notes when the remote is one of git's (objects and refs went first)."""
    return is_git_remote(repo, spec.name) and push_notes(repo.git, spec.name)


def _remote_snapshot_ids(index: RemoteIndex) -> list[str]:
    return sorted(raw_to_hex(oid) for oid, (_, e) in index.entries.items()
                  if e.type == OBJ_SNAPSHOT)


def _resolve_remote_rev(rev: str, refs: dict[str, ObjectID], index: RemoteIndex) -> ObjectID:
    base = rev.split("~", 1)[0]
    for kind in REF_KINDS:
        if f"{kind}/{base}" in refs:
            return refs[f"{kind}/{base}"]
    if len(base) == 32 and is_hex_prefix(base.lower()) and index.has(bytes.fromhex(base)):
        return ObjectID(base.lower())  # a full id: whatever type the remote's index claims
    if is_hex_prefix(base.lower()):
        cands = [s for s in _remote_snapshot_ids(index) if s.startswith(base.lower())]
        if len(cands) == 1:
            return ObjectID(cands[0])
        if len(cands) > 1:
            raise RevisionError(f"revision {rev!r} is ambiguous on the remote")
    raise RevisionError(f"the remote has no dataset, run or snapshot {rev!r}")


def fetch(repo: Repo, remote: str | None = None, revs: list[str] | None = None, *,
          history: bool = True, notes: bool = True, chunks_too: bool = True,
          events: Events | None = None) -> PushResult:
    """Bring objects (for ``revs``, default every remote ref), remote-tracking refs and notes."""
    ev = events or Events()
    store = repo.store
    spec, backend = _connect(repo, remote)
    result = PushResult(spec.name, spec.url)
    try:
        if not check_remote_config(backend, store, create=False):
            raise no_store_error(spec)
        unreadable: dict[str, FormatError] = {}
        refs = backend.list_refs(unreadable.__setitem__)
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url), ev.problem)
        wanted = _wanted(revs, refs, unreadable, index, ev)

        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"fetching from {spec.name}", files, nbytes)

        try:
            with store.writing():
                stats = fetch_objects(store, backend, [bytes.fromhex(w) for w in wanted], index,
                                      history=history, chunks_too=chunks_too,
                                      progress=ev.advance, on_total=on_total,
                                      on_bad=ev.problem)
        finally:
            ev.finish()
        result.objects, result.bytes = stats.objects, stats.bytes
        if is_ref_name(spec.name):
            fetched = {ref: oid for ref, oid in refs.items()
                       if bytes.fromhex(oid) not in stats.failed}
            _track(store, spec.name, fetched, chunks_too, result, ev)
    finally:
        backend.close()
    if notes and is_git_remote(repo, spec.name) and fetch_notes(repo.git, spec.name):
        merge_notes(repo.git, spec.name)
        result.notes = True
    if events is None:
        ev.raise_problems()
    return result


def _wanted(revs: list[str] | None, refs: dict[str, ObjectID],
            unreadable: dict[str, FormatError], index: RemoteIndex, ev: Events
            ) -> list[ObjectID]:
    """The snapshots to fetch: for ``revs``, else every remote ref.

    A ref that could not be read is a problem when it is wanted (every ref, or a
    rev naming it) and only a warning otherwise; so is a rev the remote lacks.
    """
    if not revs:
        for e in unreadable.values():
            ev.problem(e)
        return sorted(set(refs.values()))
    wanted: list[ObjectID] = []
    named: set[str] = set()
    for rev in revs:
        base = rev.split("~", 1)[0]
        bad = [f"{kind}/{base}" for kind in REF_KINDS if f"{kind}/{base}" in unreadable]
        if bad and not any(f"{kind}/{base}" in refs for kind in REF_KINDS):
            named.update(bad)
            ev.problem(unreadable[bad[0]])
            continue
        try:
            wanted.append(_resolve_remote_rev(rev, refs, index))
        except RevisionError as err:
            ev.problem(err)
    for ref, bad_ref in unreadable.items():
        if ref not in named:
            ev.warn(f"{bad_ref} (skipped)")
    return wanted


def _track(store: Store, remote: str, refs: dict[str, ObjectID], chunks_too: bool,
           result: PushResult, ev: Events) -> None:
    """Point the remote-tracking refs at what was fetched whole (a bad one is a problem)."""
    tracking = tracking_refs(store, remote)
    for ref, oid in sorted(refs.items()):
        kind, _, name = ref.partition("/")
        if not chunks_too or not store.objects.has_committed(bytes.fromhex(oid)):
            continue  # not fetched whole: a tracking ref must name complete data
        try:
            current = tracking.get(kind, name)
            if current != oid:
                tracking.update(kind, name, oid, current)
                result.refs.append(ref)
        except FormatError as e:
            ev.problem(e)


def ls_remote(repo: Repo, remote: str | None = None, events: Events | None = None
              ) -> list[RemoteRef]:
    """The datasets and runs a remote holds, without downloading their data.

    A ref that cannot be read is a problem and left out; one whose snapshot
    cannot be read or does not decode is a problem and listed without details.
    """
    ev = events or Events()
    store = repo.store
    spec, backend = _connect(repo, remote)
    out: list[RemoteRef] = []
    try:
        if not check_remote_config(backend, store, create=False):
            return []
        refs = backend.list_refs(lambda _, e: ev.problem(e))
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url), ev.problem)
        raws = list(dict.fromkeys(bytes.fromhex(o) for o in refs.values()))
        small = [r for r in raws
                 if index.has(r) and index.entries[r][1].raw_len <= MAX_SNAPSHOT_LEN]
        failed: dict[bytes, MlgitError] = {}
        got = read_objects(backend, index, small, failed)
        for ref, oid in sorted(refs.items()):
            kind, _, name = ref.partition("/")
            out.append(RemoteRef(kind[:-1], name, oid, _remote_snapshot(
                spec.url, ref, bytes.fromhex(oid), index, got, failed, ev)))
    finally:
        backend.close()
    if events is None:
        ev.raise_problems()
    return out


def _remote_snapshot(url: str, ref: str, raw: bytes, index: RemoteIndex,
                     got: dict[bytes, tuple[Any, bytes]], failed: dict[bytes, MlgitError],
                     ev: Events) -> Snapshot | None:
    """The decoded snapshot a remote ref names, or None (a problem if it is bad)."""
    if raw in failed:
        ev.problem(failed[raw])
        return None
    if raw not in got:
        if index.has(raw):
            ev.problem(CorruptObjectError(
                f"remote {url}: {ref}: snapshot {raw_to_hex(raw)} claims "
                f"{index.entries[raw][1].raw_len} bytes, more than a snapshot may have"))
        return None  # not in its packs: listed without details
    e, stored = got[raw]
    try:
        return decode_snapshot(decompress(e.codec, stored, e.raw_len))
    except FormatError as err:
        ev.problem(CorruptObjectError(f"remote {url}: {ref}: snapshot {raw_to_hex(raw)} "
                                      f"does not decode: {err}"))
        return None


def resolve_commits(repo: Repo, revs: list[str]) -> list[str]:
    """Commit ids for git revisions."""
    return [resolve_commit(repo.git, r) for r in revs]


def pull(repo: Repo, remote: str | None = None, *, events: Events | None = None
         ) -> tuple[PushResult, list[tuple[str, ObjectID]]]:
    """Fetch what HEAD's pointer files pin (just those versions) and the notes, then check out.

    Returns the fetch result and the paths materialized. Bad pointer files are
    left out of both; the checkout reports each (to ``events``, else it raises the
    first once the other paths are checked out).
    """
    pins = sorted({p.id for _, p in repo.tracked()})
    missing = [p for p in pins if not repo.store.objects.has_committed(bytes.fromhex(p))]
    if missing:
        result = fetch(repo, remote, [str(m) for m in missing], history=False, events=events)
    else:
        spec = resolve_remote(repo.git, remote)
        result = PushResult(spec.name, spec.url)
        if is_git_remote(repo, spec.name) and fetch_notes(repo.git, spec.name):
            merge_notes(repo.git, spec.name)
            result.notes = True
    return result, repo.checkout_worktree(events=events)


def fetch_chunks(repo: Repo, remote: str, chunks: list[tuple[bytes, int]]) -> None:
    """Bring just these chunks (``mlgit.open`` reading one file of a lazy snapshot).

    ``chunks`` are (id, the length its tree records) pairs. Each chunk's length
    is checked against the tree's before it is stored; a chunk that fails (or
    that the remote lacks) raises, naming the remote.
    """
    lengths: dict[bytes, int] = {}
    for cid, n in chunks:
        if lengths.setdefault(cid, n) != n:
            raise CorruptObjectError(f"chunk {raw_to_hex(cid)} is listed with two lengths "
                                     f"({lengths[cid]} and {n}) in one file")
    spec, backend = _connect(repo, remote)
    try:
        if not check_remote_config(backend, repo.store, create=False):
            raise no_store_error(spec)
        index = RemoteIndex(backend, remote_cache_dir(repo.store, spec.url))
        with repo.store.writing():
            fetch_objects(repo.store, backend, list(lengths), index, role=walk.LEAF,
                          lengths=lengths)
    finally:
        backend.close()


def fetch_objects_closure(repo: Repo, backend: Backend, index: RemoteIndex,
                          oids: list[bytes]) -> None:
    """Fetch these objects (of any role) and everything below them that is missing locally."""
    with repo.store.writing():
        fetch_objects(repo.store, backend, oids, index, role=walk.ANY)
