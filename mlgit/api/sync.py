"""``git ml push / fetch / pull / ls REMOTE``: sidecar objects, refs and notes with remotes.

Order of a push: objects (packs, children before parents), then each remote
ref by compare-and-swap (a non-fast-forward is refused unless forced), then
notes (fetched, merged with ``cat_sort_uniq``, pushed). A fetch stores remote
refs as remote-tracking refs (``.git/ml/refs/remotes/<remote>/...``) and never
moves local ones; it merges the remote's notes into ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.errors import ConflictError, GitCommandError, RevisionError, UsageError
from mlgit.format.compression import decompress
from mlgit.format.ids import ObjectID, is_hex_prefix, raw_to_hex
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.format.snapshot import Snapshot, decode_snapshot
from mlgit.gitlink.commits import head_commit, pointers_in_tree, resolve_commit
from mlgit.gitlink.notes import fetch_notes, merge_notes, push_notes
from mlgit.store.refs import REF_KINDS, RefStore
from mlgit.store.store import Store
from mlgit.sync.backend import Backend
from mlgit.sync.remote import RemoteSpec, open_backend, resolve_remote
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
        local = {f"{kind}/{name}": oid for kind in REF_KINDS
                 for name, oid in store.refs.list(kind).items()}
        heads = commits if commits is not None else [c for c in [head_commit(repo.git)] if c]
        pinned = _pinned(repo, heads)
        remote_refs = backend.list_refs()
        named_there = set(remote_refs.values())
        if all(remote_refs.get(ref) == oid for ref, oid in local.items()) and (
                pinned <= named_there):
            # Everything is named by a remote ref, and a remote ref only ever names a
            # complete snapshot: nothing to send, and no index needs reading.
            result.notes = _notes_after(repo, spec)
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
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url))
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
                tracking.update(kind, name, new, tracking.get(kind, name))
    finally:
        backend.close()
    result.notes = _notes_after(repo, spec)
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
            raise UsageError(f"remote {spec.name} ({spec.url}) has no git-ml data yet")
        refs = backend.list_refs()
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url))
        wanted = ([_resolve_remote_rev(r, refs, index) for r in revs] if revs
                  else sorted(set(refs.values())))
        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"fetching from {spec.name}", files, nbytes)

        try:
            with store.writing():
                stats = fetch_objects(store, backend, [bytes.fromhex(w) for w in wanted], index,
                                      history=history, chunks_too=chunks_too,
                                      progress=ev.advance, on_total=on_total)
        finally:
            ev.finish()
        result.objects, result.bytes = stats.objects, stats.bytes
        if is_ref_name(spec.name):
            tracking = tracking_refs(store, spec.name)
            for ref, oid in sorted(refs.items()):
                kind, _, name = ref.partition("/")
                if not chunks_too or not store.objects.has_committed(bytes.fromhex(oid)):
                    continue  # not fetched whole: a tracking ref must name complete data
                current = tracking.get(kind, name)
                if current != oid:
                    tracking.update(kind, name, oid, current)
                    result.refs.append(ref)
    finally:
        backend.close()
    if notes and is_git_remote(repo, spec.name) and fetch_notes(repo.git, spec.name):
        merge_notes(repo.git, spec.name)
        result.notes = True
    return result


def ls_remote(repo: Repo, remote: str | None = None) -> list[RemoteRef]:
    """The datasets and runs a remote holds, without downloading their data."""
    store = repo.store
    spec, backend = _connect(repo, remote)
    try:
        if not check_remote_config(backend, store, create=False):
            return []
        refs = backend.list_refs()
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url))
        out = []
        for ref, oid in sorted(refs.items()):
            kind, _, name = ref.partition("/")
            snap: Snapshot | None = None
            raw = bytes.fromhex(oid)
            if index.has(raw):
                e, stored = read_objects(backend, index, [raw])[raw]
                snap = decode_snapshot(decompress(e.codec, stored, e.raw_len))
            out.append(RemoteRef(kind[:-1], name, oid, snap))
        return out
    finally:
        backend.close()


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


def fetch_chunks(repo: Repo, remote: str, chunks: list[bytes]) -> None:
    """Bring just these chunks (``mlgit.open`` reading one file of a lazy snapshot)."""
    spec, backend = _connect(repo, remote)
    try:
        if not check_remote_config(backend, repo.store, create=False):
            raise UsageError(f"remote {spec.name} ({spec.url}) has no git-ml data yet")
        index = RemoteIndex(backend, remote_cache_dir(repo.store, spec.url))
        with repo.store.writing():
            fetch_objects(repo.store, backend, chunks, index)
    finally:
        backend.close()


def fetch_objects_closure(repo: Repo, backend: Backend, index: RemoteIndex,
                          oids: list[bytes]) -> None:
    """Fetch these objects and everything below them that is missing locally."""
    with repo.store.writing():
        fetch_objects(repo.store, backend, oids, index)
