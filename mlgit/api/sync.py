"""``git ml push / fetch / pull / ls REMOTE``: sidecar objects, refs and notes with remotes.

Order of a push: the remote's notes are fetched and merged into ours (so what a
teammate noted counts as there); then objects (packs, children before
parents): the closure of every local ref, of what the pushed commits pin, and
of every object the merged notes name that the remote lacks; then each remote
ref by compare-and-swap (a non-fast-forward is refused unless forced); then
the notes (pushed; on a race fetched, merged and pushed again). So a remote
never holds a note whose payloads it lacks.

A fetch merges the remote's notes first, then brings objects, stores remote
refs as remote-tracking refs (``.git/ml/refs/remotes/<remote>/...``) and never
moves local ones (except in a bare repository, which has nothing to pull into:
there it updates them as pull does). ``git ml fetch`` without revisions brings
everything: every ref's history and every object the notes name. With
revisions, ``pull`` and the hooks bring those versions whole and, for every
other remote ref, its snapshot and trees (so every name resolves and ``show``
works); the rest (payloads, other versions' chunks) comes lazily when used.
Pull (:mod:`mlgit.api.pull`) then fast-forwards local refs to their
remote-tracking refs, creates the ones we lack, and refuses (ConflictError,
kept) one that diverged.

Bad input is reported and skipped, as ``git fsck`` does (``Events.problem``): a
ref that cannot be read (here or on the remote), a remote index that fails its
checks, a snapshot whose objects fail theirs (it is not fetched; the rest is),
an object a note names that neither side holds.
Called without ``events``, a verb raises the first problem once the rest is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.api.search import grep_matches
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
from mlgit.format.ids import ObjectID, RawObjectID, hex_to_raw, is_hex_prefix, raw_to_hex
from mlgit.format.limits import MAX_SNAPSHOT_LEN
from mlgit.format.names import is_ref_name, is_stage_name
from mlgit.format.pack import OBJ_SNAPSHOT
from mlgit.format.snapshot import KIND_CHECKPOINT, Snapshot, decode_snapshot
from mlgit.gitlink.commits import head_commit, pointers_in_tree, resolve_commit
from mlgit.gitlink.notes import (
    fetch_notes,
    merge_notes,
    note_roots,
    notes_commit,
    push_notes,
)
from mlgit.gitlink.settings import setting_bool
from mlgit.store import walk
from mlgit.store.fsutil import atomic_write, read_bounded
from mlgit.store.refs import REF_KINDS, SNAPSHOT_KINDS, STAGES, RefStore, ref_role
from mlgit.store.store import Store
from mlgit.sync.backend import Backend
from mlgit.sync.remote import (
    RemoteSpec,
    no_store_error,
    open_backend,
    resolve_remote,
    resolve_source,
)
from mlgit.sync.transfer import (
    RemoteIndex,
    TransferStats,
    check_remote_config,
    closure_postorder,
    fetch_objects,
    read_objects,
    remote_cache_dir,
    send_objects,
)

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["PushResult", "RemoteRef", "connect_remote", "fetch", "fetch_chunks", "fetch_payload",
           "fetch_payloads", "is_git_remote", "ls_remote", "push", "tracking_refs"]

_NOTES_SENT = "notes-pushed"
"""In a remote's index cache: the notes commit whose every named object that remote holds."""


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
    local: list[str] = field(default_factory=list)  # local refs a pull moved or created


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


def connect_remote(repo: Core, remote: str | RemoteSpec | None) -> tuple[RemoteSpec, Backend]:
    """``remote`` (None: the default one) resolved and its backend opened; close it after.

    A :class:`RemoteSpec` already resolved (an import's source) is used as it is.
    """
    spec = (remote if isinstance(remote, RemoteSpec) else
            resolve_remote(repo.git, remote, repo.ssh_command))
    return spec, open_backend(spec)


def is_git_remote(repo: Core, name: str) -> bool:
    """True when ``name`` is one of git's remotes (so notes can travel with git)."""
    try:
        repo.git.run_git("config", "--get", f"remote.{name}.url")
        return True
    except GitCommandError:
        return False


def _carries_notes(repo: Core, spec: RemoteSpec) -> bool:
    """True when git can fetch and push ``spec``'s notes (by ``spec.name``).

    A remote ``git remote`` knows, or a path or SSH URL given directly (``git push
    URL`` runs the pre-push hook with the URL as the remote's name; git-ml and
    git both take a relative path from the work tree's root). An S3 URL has no
    git repository, so no notes.
    """
    return is_git_remote(repo, spec.name) or (
        spec.name == spec.url and spec.kind in ("local", "ssh"))


def tracking_refs(store: Store, remote: str) -> RefStore:
    """The remote-tracking refs of ``remote`` (``.git/ml/refs/remotes/<remote>/``)."""
    if not is_ref_name(remote):
        raise UsageError(f"remote name {remote!r} cannot name remote-tracking refs")
    return RefStore(store.root / "refs" / "remotes" / remote)


def _local_refs(store: Store, ev: Events, warn: bool = False) -> dict[str, ObjectID]:
    """Every local dataset and run ref (``datasets/<name>``: id).

    Bad ones are problems (warnings with ``warn``) and left out.
    """
    def bad(_: str, e: FormatError) -> None:
        if warn:
            ev.warn(f"{e} (skipped)")
        else:
            ev.problem(e)

    return {f"{kind}/{name}": oid for kind in REF_KINDS
            for name, oid in store.refs.list(kind, bad).items()}


def _parents(store: Store, kind: str, oid: ObjectID) -> tuple[ObjectID, ...]:
    """What a ref of ``kind`` held before ``oid``: a snapshot's parents, a promotion's parent."""
    if kind == STAGES:
        parent = store.objects.get_promotion(oid).parent
        return (parent,) if parent is not None else ()
    return store.objects.get_snapshot(oid).parents


def _is_ancestor(store: Store, old: ObjectID, new: ObjectID, kind: str = "datasets") -> bool:
    """True if ``old`` is ``new`` or one of its ancestors (in the local store).

    Ancestors of a snapshot are its parents; of a promotion (``kind`` ``stages``) the
    stage's earlier records.
    """
    seen: set[str] = set()
    stack = [new]
    while stack:
        oid = stack.pop()
        if oid == old:
            return True
        if oid in seen or not store.objects.has_committed(hex_to_raw(oid)):
            continue
        seen.add(oid)
        stack.extend(_parents(store, kind, oid))
    return False


def _pinned(repo: Core, commits: list[str]) -> tuple[set[ObjectID], dict[ObjectID, str]]:
    """The snapshots the pointer files of ``commits`` pin (tags peeled; others skipped).

    Returns those of this repository's own pointers, and those only imported
    pointers pin, each with its source URL.
    """
    import pygit2  # start-up time

    cache: dict[str, Any] = {}
    own: set[ObjectID] = set()
    imported: dict[ObjectID, str] = {}
    for c in commits:
        try:
            tree = str(repo.git.git[c].peel(pygit2.Commit).tree_id)
        except (KeyError, ValueError, pygit2.GitError):
            continue  # not a commit (a tag of a tree or blob)
        for _, p in pointers_in_tree(repo.git, tree, cache):
            if p.source is None:
                own.add(p.id)
            else:
                imported.setdefault(p.id, p.source.url)
    return own, {oid: url for oid, url in imported.items() if oid not in own}


def _with_imports(repo: Core, pinned: set[ObjectID], imported: dict[ObjectID, str],
                  imports: bool | None) -> tuple[set[ObjectID], dict[ObjectID, str]]:
    """What a push sends of what commits pin: imports too when asked (``ml.pushImports``)."""
    if imports if imports is not None else setting_bool(repo.git, "ml.pushImports"):
        return pinned | set(imported), imported
    return pinned, {}


def _imports_ready(repo: Core, roots: list[tuple[RawObjectID, str]],
                   imported: dict[ObjectID, str], index: RemoteIndex, ev: Events
                   ) -> list[tuple[RawObjectID, str]]:
    """``roots`` less the imported versions the remote lacks that cannot be had whole here.

    Those the remote lacks are fetched with their history from their sources
    first (:func:`bring_imports`).
    """
    lacking = {o: u for o, u in imported.items() if not index.has(hex_to_raw(o))}
    if not lacking:
        return roots
    failed = {hex_to_raw(o) for o in set(lacking) - bring_imports(repo, lacking, ev)}
    return [r for r in roots if r[0] not in failed]


def bring_imports(repo: Core, wanted: dict[ObjectID, str], ev: Events,
                  history: bool = True) -> set[ObjectID]:
    """Fetch imported versions (id: source URL) whole, ``history`` too, from their sources.

    Returns those that came. What a push that sends imports needs (a store never
    holds a snapshot without its ancestors), and what pull fetches. A source that
    fails is a problem, and its versions are left out.
    """
    by_url: dict[str, list[ObjectID]] = {}
    for oid, url in sorted(wanted.items()):
        by_url.setdefault(url, []).append(oid)
    came: set[ObjectID] = set()
    for url, oids in by_url.items():
        collect = Events()
        try:
            fetch(repo, resolve_source(repo.git, url, repo.ssh_command), [str(o) for o in oids],
                  history=history, notes=False, events=collect)
        except MlgitError as e:
            collect.problem(e)
        found = getattr(collect, "problems", [])
        if found:
            ev.problem(_with_message(found[0], f"imported data from {url} not fetched: "
                                                f"{found[0]}"))
            continue
        came.update(oids)
    return came


def _with_message(e: MlgitError, message: str) -> MlgitError:
    """An error of ``e``'s class (so its exit code) with ``message``."""
    try:
        return type(e)(message)
    except TypeError:  # a class whose constructor takes other arguments
        out = MlgitError(message)
        out.exit_code = e.exit_code
        return out


def _ref_updates(store: Store, local: dict[str, ObjectID], remote_refs: dict[str, ObjectID],
                 force: bool, remote: str) -> list[tuple[str, ObjectID, ObjectID | None]]:
    """(ref, new, old) for each local ref the remote does not hold at the same version.

    ConflictError, before anything is sent, if the remote's version of one is not an
    ancestor of ours (unless ``force``).
    """
    updates: list[tuple[str, ObjectID, ObjectID | None]] = []
    refused: list[str] = []
    for ref, new in sorted(local.items()):
        old = remote_refs.get(ref)
        if old == new:
            continue
        kind = ref.partition("/")[0]
        if old is not None and not force and not _is_ancestor(store, old, new, kind):
            refused.append(ref)
            continue
        updates.append((ref, new, old))
    if refused:
        stages = [r.partition("/")[2] for r in refused if r.startswith(f"{STAGES}/")]
        then = []
        if len(stages) < len(refused):
            then.append("add or commit on top of the remote's version")
        if stages:
            model, _, stage = stages[0].partition("@")
            then.append(f"for a stage someone else moved, see `git ml stages {model} {stage} "
                        "--history` and promote again (your record then follows theirs)")
        raise ConflictError(
            f"push to {remote} rejected: the remote's {', '.join(refused)} has versions "
            f"yours lacks; run `git ml fetch {remote}`, then {'; '.join(then)} (or push with "
            "--force to replace it)")
    return updates


def push(repo: Core, remote: str | None = None, *, force: bool = False,
         commits: list[str] | None = None, notes: bool = True, imports: bool | None = None,
         events: Events | None = None) -> PushResult:
    """Send objects, refs and notes to ``remote``. See the module docstring for the order.

    ``commits`` are the commits being pushed (the pre-push hook passes them); by
    default HEAD. Every snapshot their pointer files pin is sent, every local
    dataset and run ref, and every object the notes name (payloads, checkpoints,
    test datasets) that the remote lacks and we have; one that neither has is a
    problem (reported; the rest is pushed). ``notes`` False: the notes ref
    itself is left to git (the pre-push hook of a ``git push`` that pushes it).

    Data imported from another repository (imported pointers) is not sent: a
    clone fetches it from its source. ``imports`` True (default: the setting
    ``ml.pushImports``) sends it too, with its history, fetched whole from the
    source first where this store lacks it (a source that fails is a problem;
    the rest is pushed).
    """
    ev = events or Events()
    store = repo.store
    spec, backend = connect_remote(repo, remote)
    result = PushResult(spec.name, spec.url)
    git_remote = _carries_notes(repo, spec)
    cache = remote_cache_dir(store, spec.url)
    notes_ok = True
    try:
        check_remote_config(backend, store, create=True)
        # Teammates' records count as present on the remote: merge theirs first.
        remote_notes = _notes_in(repo, spec.name) if git_remote and notes else None
        notes_at = notes_commit(repo.git)
        notes_sent = notes_at is None or _notes_marker(cache) == notes_at
        local = _local_refs(store, ev)
        heads = commits if commits is not None else [c for c in [head_commit(repo.git)] if c]
        pinned, imported = _with_imports(repo, *_pinned(repo, heads), imports)
        unreadable: set[str] = set()

        def bad_remote_ref(ref: str, e: FormatError) -> None:
            unreadable.add(ref)
            ev.problem(e)

        remote_refs = backend.list_refs(bad_remote_ref)
        local = {ref: oid for ref, oid in local.items() if ref not in unreadable}
        named_there = set(remote_refs.values())
        if notes_sent and all(remote_refs.get(ref) == oid for ref, oid in local.items()) and (
                pinned <= named_there):
            # Everything is named by a remote ref (which only ever names a complete
            # snapshot) and the notes' objects went with these notes already:
            # nothing to send, and no index needs reading.
            result.notes = notes and git_remote and _notes_out(repo, spec.name, remote_notes)
            if events is None:
                ev.raise_problems()
            return result
        absent = sorted(p for p in pinned - set(local.values())
                        if not store.objects.has_committed(hex_to_raw(p)))
        for p in absent:
            ev.warn(f"snapshot {p[:12]} is pinned by a pushed commit but not in the local store;"
                    " it cannot be pushed from here")
        updates = _ref_updates(store, local, remote_refs, force, spec.name)
        roots: list[tuple[RawObjectID, str]] = [
            (hex_to_raw(oid), ref_role(ref.partition("/")[0])) for ref, oid in sorted(
                local.items())]
        roots += [(hex_to_raw(x), walk.SNAPSHOT) for x in sorted(pinned - set(absent))]
        index = RemoteIndex(backend, cache, ev.problem)
        roots = _imports_ready(repo, roots, imported, index, ev)
        children: dict[RawObjectID, list[RawObjectID]] = {}  # lets whole packs go as they are
        todo = closure_postorder(store, roots, index.has, children)
        if not notes_sent:
            notes_ok = _plan_note_objects(repo, index, todo, spec, ev, children)

        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"pushing to {spec.name}", files, nbytes)

        try:
            stats = send_objects(store, backend, todo, index, progress=ev.advance,
                                 on_total=on_total, children=children)
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
    result.notes = notes and git_remote and _notes_out(repo, spec.name, remote_notes)
    if notes_ok and notes_at is not None:
        _set_notes_marker(cache, notes_at)
    if events is None:
        ev.raise_problems()
    return result


def _notes_in(repo: Core, remote: str) -> str | None:
    """Fetch the remote's notes and merge them into ours; return the remote's commit (or None)."""
    if not fetch_notes(repo.git, remote):
        return None
    merge_notes(repo.git, remote)
    return notes_commit(repo.git, remote)


def _notes_out(repo: Core, remote: str, remote_notes: str | None) -> bool:
    """Push our notes (already merged with the remote's) unless the remote has exactly them.

    True when the remote has our notes afterwards; False when there are none.
    """
    ours = notes_commit(repo.git)
    if ours is None:
        return False
    if ours == remote_notes:
        return True
    return push_notes(repo.git, remote, merged=True)


def _notes_marker(cache: Path) -> str | None:
    """The notes commit recorded as fully pushed to the remote of ``cache`` (or None)."""
    try:
        return read_bounded(cache / _NOTES_SENT, 64, "notes marker").decode("ascii").strip()
    except (OSError, FormatError, UnicodeDecodeError):
        return None


def _set_notes_marker(cache: Path, commit: str) -> None:
    """Record that the remote of ``cache`` holds every object notes ``commit`` names."""
    with contextlib.suppress(OSError):  # a cache: losing it costs one negotiation
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(cache / _NOTES_SENT, (commit + "\n").encode())


def _plan_note_objects(repo: Core, index: RemoteIndex, todo: list[RawObjectID], spec: RemoteSpec,
                       ev: Events, children: dict[RawObjectID, list[RawObjectID]] | None = None
                       ) -> bool:
    """Add to ``todo`` what the remote lacks of every object the notes name; False on a problem.

    An object we never fetched that the remote has is fine. One that neither
    side has (or whose closure is incomplete here and there) is a problem,
    and nothing of it is sent. Each root's closure is planned on its own, after
    what ``todo`` holds, so children still go before parents.
    """
    store = repo.store
    planned = set(todo)

    def have(oid: RawObjectID) -> bool:
        return oid in planned or index.has(oid)

    ok = True
    for oid_hex, label, role in dict.fromkeys(note_roots(repo.git)):
        raw = hex_to_raw(oid_hex)
        if store.objects.entry(raw) is None:
            if not index.has(raw):
                ok = False
                ev.problem(CorruptObjectError(
                    f"{label} names {role} {oid_hex}, which neither this store nor "
                    f"{spec.name} holds; it cannot be pushed (whoever wrote the record has it: "
                    "they can `git ml push` it)"))
            continue
        try:
            more = closure_postorder(store, [(raw, role)], have, children)
        except CorruptObjectError as e:
            ok = False
            ev.problem(CorruptObjectError(f"{label}: {role} {oid_hex} cannot be pushed: {e}"))
            continue
        todo.extend(more)
        planned.update(more)
    return ok


def _remote_snapshot_ids(index: RemoteIndex) -> list[str]:
    return sorted(raw_to_hex(oid) for oid, (_, e) in index.entries.items()
                  if e.type == OBJ_SNAPSHOT)


def _remote_rev_refs(base: str) -> list[str]:
    """The remote refs a revision's base (``~N`` cut off) may name: a stage's, or a name's."""
    name, at, right = base.partition("@")
    if at:
        return [f"{STAGES}/{base}"] if is_stage_name(right) and is_ref_name(name) else []
    return [f"{kind}/{base}" for kind in SNAPSHOT_KINDS]


def _resolve_remote_rev(rev: str, refs: dict[str, ObjectID], index: RemoteIndex
                        ) -> tuple[ObjectID, str]:
    """What ``rev`` names on the remote, as (id, role): a ref's object, or a snapshot by id."""
    base = rev.split("~", 1)[0]
    for ref in _remote_rev_refs(base):
        if ref in refs:
            return refs[ref], ref_role(ref.partition("/")[0])
    if "@" in base and is_stage_name(base.partition("@")[2]):
        model, _, stage = base.partition("@")
        raise RevisionError(f"the remote has no stage {stage!r} of {model!r}")
    if len(base) == 32 and is_hex_prefix(base.lower()) and index.has(hex_to_raw(base.lower())):
        # A full id: whatever type the remote's index claims.
        return ObjectID(base.lower()), walk.SNAPSHOT
    if is_hex_prefix(base.lower()):
        cands = [s for s in _remote_snapshot_ids(index) if s.startswith(base.lower())]
        if len(cands) == 1:
            return ObjectID(cands[0]), walk.SNAPSHOT
        if len(cands) > 1:
            raise RevisionError(f"revision {rev!r} is ambiguous on the remote")
    raise RevisionError(f"the remote has no dataset, run or snapshot {rev!r}")


def fetch(repo: Core, remote: str | RemoteSpec | None = None, revs: list[str] | None = None, *,
          history: bool = True, notes: bool = True, chunks_too: bool = True,
          all_refs: bool = False, local_refs: str | None = None, require_store: bool = True,
          events: Events | None = None) -> PushResult:
    """Bring notes, objects and remote-tracking refs from ``remote``.

    ``revs`` None: every remote ref with its history, whole, and every object
    the notes name (payloads come eagerly). Else just those revisions (with
    ``history``; with their chunks when ``chunks_too``). ``all_refs``: also
    every other remote ref's snapshot and trees, so that every name the
    remote has resolves here (chunks come lazily). A remote-tracking ref is
    set for every remote ref whose snapshot is now here.

    ``local_refs``: None leaves local refs alone; ``"ff"`` fast-forwards them to
    the remote's, creates the ones we lack, and reports one that diverged as a
    ConflictError problem (kept); ``"mirror"`` sets them to the remote's;
    ``"auto"`` is ``"ff"`` (``"mirror"`` for a ``--mirror`` remote) in a bare
    repository and None elsewhere. ``require_store`` False: a remote with no
    git-ml data only has its notes merged.
    """
    ev = events or Events()
    store = repo.store
    spec, backend = connect_remote(repo, remote)
    result = PushResult(spec.name, spec.url)
    git_remote = notes and _carries_notes(repo, spec)
    mode = _local_mode(repo, spec.name) if local_refs == "auto" else local_refs
    try:
        if not check_remote_config(backend, store, create=False):
            if require_store:
                raise no_store_error(spec)
            result.notes = git_remote and _notes_in(repo, spec.name) is not None
            if events is None:
                ev.raise_problems()
            return result
        # Notes first: a pusher sends objects and refs before notes, so every
        # object these notes name is listed by the indexes read below.
        result.notes = git_remote and _notes_in(repo, spec.name) is not None
        unreadable: dict[str, FormatError] = {}
        refs = backend.list_refs(unreadable.__setitem__)
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url), ev.problem)
        wanted = _wanted(revs, refs, unreadable, index, ev)
        bring = _Bringer(repo, backend, index, spec.name, result, ev)
        with store.writing():
            bring.roles(wanted, history=history, chunks_too=chunks_too)
            # A root that failed a check stays unfetched: no tracking ref will name it.
            others = {ref: oid for ref, oid in refs.items() if not bring.failed_ref(ref, oid)}
            if revs is None or all_refs or mode is not None:
                has = store.objects.has_committed
                bring.roles([(oid, ref_role(ref.partition("/")[0]))
                             for ref, oid in others.items() if not has(hex_to_raw(oid))],
                            history=False, chunks_too=False)
            if mode is not None:
                # What fast-forwarding needs: the remote versions' history (snapshots
                # and trees; a stage's earlier records), to tell "behind" from "diverged".
                mine = _local_refs(store, ev, warn=True)
                bring.roles([(oid, ref_role(ref.partition("/")[0]))
                             for ref, oid in others.items() if ref in mine and mine[ref] != oid],
                            history=True, chunks_too=False)
            if revs is None and notes:
                _bring_note_objects(repo, index, bring, spec, git_remote, ev)
        if is_ref_name(spec.name):
            fetched = {ref: oid for ref, oid in refs.items() if not bring.failed_ref(ref, oid)}
            fetched = _sound_stages(store, spec, fetched, ev)
            _track(store, spec.name, fetched, result, ev)
            if mode is not None:
                _update_local_refs(store, spec.name, fetched, mode, result, ev)
    finally:
        backend.close()
    if events is None:
        ev.raise_problems()
    return result


def _local_mode(repo: Core, remote: str) -> str | None:
    """``local_refs="auto"``: a bare repository follows the remote's refs, a mirror exactly."""
    if repo.git.workdir is not None:
        return None
    try:
        mirror = repo.git.run_git("config", "--bool", f"remote.{remote}.mirror").decode().strip()
    except GitCommandError:
        mirror = "false"
    return "mirror" if mirror == "true" else "ff"


class _Bringer:
    """Runs :func:`fetch_objects` for one fetch, adding up what came and what failed."""

    def __init__(self, repo: Core, backend: Backend, index: RemoteIndex, remote: str,
                 result: PushResult, ev: Events) -> None:
        self.store, self.backend, self.index = repo.store, backend, index
        self.remote, self.result, self.ev = remote, result, ev
        self.failed: set[tuple[RawObjectID, str]] = set()  # roots not fetched, in their role

    def __call__(self, oids: list[ObjectID] | list[RawObjectID], *, role: str = walk.SNAPSHOT,
                 history: bool = True, chunks_too: bool = True) -> None:
        """Bring ``oids`` (in ``role``) and what they reference; failures are problems."""
        roots = [o if isinstance(o, bytes) else hex_to_raw(o) for o in oids]
        if not roots:
            return
        ev = self.ev

        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"fetching from {self.remote}", files, nbytes)

        try:
            stats: TransferStats = fetch_objects(
                self.store, self.backend, roots, self.index, role=role, history=history,
                chunks_too=chunks_too, progress=ev.advance, on_total=on_total,
                on_bad=ev.problem)
        finally:
            ev.finish()
        self.result.objects += stats.objects
        self.result.bytes += stats.bytes
        self.failed |= {(oid, role) for oid in stats.failed}

    def failed_ref(self, ref: str, oid: ObjectID) -> bool:
        """True if the object ``ref`` names failed a check in the role the ref gives it.

        By role: a stage ref that names a snapshot fails as a promotion, and must not
        keep a run ref naming that snapshot from being fetched.
        """
        return (hex_to_raw(oid), ref_role(ref.partition("/")[0])) in self.failed

    def roles(self, wanted: list[tuple[ObjectID, str]], *, history: bool,
              chunks_too: bool) -> None:
        """Bring (id, role) pairs: one transfer per role, in the order roles first appear."""
        by_role: dict[str, list[ObjectID]] = {}
        for oid, role in dict.fromkeys(wanted):
            by_role.setdefault(role, []).append(oid)
        for role, oids in by_role.items():
            self(oids, role=role, history=history, chunks_too=chunks_too)


def _bring_note_objects(repo: Core, index: RemoteIndex, bring: _Bringer, spec: RemoteSpec,
                        report: bool, ev: Events) -> None:
    """Bring, whole, every object the notes name: payload trees, checkpoints, test datasets.

    One that neither this store nor the remote holds is a problem when the notes
    came from this remote (``report``): whoever wrote the record did not push it.
    """
    has = repo.store.objects.has_committed
    by_role: dict[str, list[RawObjectID]] = {walk.TREE: [], walk.SNAPSHOT: []}
    for oid_hex, label, role in dict.fromkeys(note_roots(repo.git)):
        raw = hex_to_raw(oid_hex)
        if not has(raw) and not index.has(raw):
            if report:
                ev.problem(CorruptObjectError(
                    f"{label} names {role} {oid_hex}, which neither this store nor "
                    f"{spec.name} ({spec.url}) holds; whoever wrote the record must "
                    "`git ml push` it"))
            continue
        by_role.setdefault(role, []).append(raw)
    for role, oids in by_role.items():
        bring(oids, role=role, history=False)


def _wanted(revs: list[str] | None, refs: dict[str, ObjectID],
            unreadable: dict[str, FormatError], index: RemoteIndex, ev: Events
            ) -> list[tuple[ObjectID, str]]:
    """What to fetch, as (id, role): for ``revs``, else (None) every remote ref.

    A ref that could not be read is a problem when it is wanted (every ref, or a
    rev naming it) and only a warning otherwise; so is a rev the remote lacks.
    """
    if revs is None:
        for e in unreadable.values():
            ev.problem(e)
        return sorted({(oid, ref_role(ref.partition("/")[0])) for ref, oid in refs.items()})
    wanted: list[tuple[ObjectID, str]] = []
    named: set[str] = set()
    for rev in revs:
        candidates = _remote_rev_refs(rev.split("~", 1)[0])
        bad = [ref for ref in candidates if ref in unreadable]
        if bad and not any(ref in refs for ref in candidates):
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


def _stage_problem(store: Store, name: str, oid: ObjectID, checked: ObjectID | None
                   ) -> str | None:
    """What is wrong with the records a stage ref ``stages/<name>`` names, or None.

    Each record here, from ``oid`` back to ``checked`` (the one the tracking ref names:
    it and its history were checked when it was set), must be one of that model's
    stage, and each checkpoint it names that is here must be a checkpoint (decoding
    checked each on arrival; this checks what decoding one object cannot).
    """
    model, _, stage = name.partition("@")
    seen: set[str] = set()
    cur: ObjectID | None = oid
    has = store.objects.has_committed
    while cur is not None and cur != checked and cur not in seen and has(hex_to_raw(cur)):
        seen.add(cur)
        p = store.objects.get_promotion(cur)
        if (p.model, p.stage) != (model, stage):
            return f"its record {cur} is one of {p.model}@{p.stage}"
        if p.checkpoint is not None and has(hex_to_raw(p.checkpoint)):
            kind = store.objects.get_snapshot(p.checkpoint).kind
            if kind != KIND_CHECKPOINT:
                return f"its record {cur} names {p.checkpoint}, a {kind}, not a checkpoint"
        cur = p.parent
    return None


def _sound_stages(store: Store, spec: RemoteSpec, refs: dict[str, ObjectID],
                  ev: Events) -> dict[str, ObjectID]:
    """``refs`` without the stage refs whose records are not that stage's (each a problem).

    Only stage refs that move are checked (what a tracking ref names was checked when
    it was set). The records stay in the store, named by nothing.
    """
    tracking = tracking_refs(store, spec.name)
    out: dict[str, ObjectID] = {}
    for ref, oid in refs.items():
        kind, _, name = ref.partition("/")
        if kind == STAGES:
            try:
                current = tracking.get(kind, name)
            except FormatError:
                current = None  # a damaged tracking ref: _track reports it
            try:
                wrong = None if current == oid else _stage_problem(store, name, oid, current)
            except FormatError as e:
                wrong = str(e)
            if wrong is not None:
                ev.problem(CorruptObjectError(f"remote {spec.url}: {ref}: {wrong}; the stage "
                                              "was not fetched"))
                continue
        out[ref] = oid
    return out


def _track(store: Store, remote: str, refs: dict[str, ObjectID], result: PushResult,
           ev: Events) -> None:
    """Point the remote-tracking refs at the remote refs whose snapshots are here.

    A tracking ref names a snapshot whose snapshot object and trees are in the
    local store; its chunks, blobs and parents may still be only on the remote
    (fetched when used). A bad one is a problem.
    """
    tracking = tracking_refs(store, remote)
    for ref, oid in _in_kind_order(refs):
        kind, _, name = ref.partition("/")
        if not store.objects.has_committed(hex_to_raw(oid)):
            continue  # not fetched (a check failed): a tracking ref names only what is here
        try:
            current = tracking.get(kind, name)
            if current != oid:
                tracking.update(kind, name, oid, current)
                result.refs.append(ref)
        except FormatError as e:
            ev.problem(e)


def _in_kind_order(refs: dict[str, ObjectID]) -> list[tuple[str, ObjectID]]:
    """``refs`` (``datasets/<name>``: id) sorted datasets first, then runs, each by name."""
    order = {k: i for i, k in enumerate(REF_KINDS)}
    return sorted(refs.items(), key=lambda kv: (order.get(kv[0].partition("/")[0], 99), kv[0]))


def _update_local_refs(store: Store, remote: str, refs: dict[str, ObjectID], mode: str,
                       result: PushResult, ev: Events) -> None:
    """Move local refs to the remote's: create missing ones, fast-forward those behind.

    A local ref ahead of the remote's stays. One that diverged (neither is an
    ancestor of the other) stays too and is a ConflictError problem naming both
    ids and the way out; ``mode`` ``"mirror"`` replaces it instead.
    """
    for ref, oid in _in_kind_order(refs):
        kind, _, name = ref.partition("/")
        if not store.objects.has_committed(hex_to_raw(oid)):
            continue
        try:
            mine = store.refs.get(kind, name)
        except FormatError as e:
            ev.problem(e)
            continue
        if mine == oid:
            continue
        if mine is not None and mode != "mirror" and not _is_ancestor(store, mine, oid, kind):
            if _is_ancestor(store, oid, mine, kind):
                continue  # ours is ahead: `git ml push` sends it
            ev.problem(ConflictError(_diverged(kind, name, mine, oid, remote)))
            continue
        try:
            store.refs.update(kind, name, oid, mine)
        except ConflictError as e:
            ev.problem(e)
            continue
        result.local.append(ref)


def _diverged(kind: str, name: str, mine: ObjectID, theirs: ObjectID, remote: str) -> str:
    """The message for a local ref kept because it diverged from ``remote``'s."""
    if kind == STAGES:
        model, _, stage = name.partition("@")
        return (f"stage {stage} of {model} has diverged from {remote}'s: your record is "
                f"{mine[:12]}, {remote}/{name} is {theirs[:12]}; yours is kept (see `git ml "
                f"stages {model} {stage} --history`; promote again to record your choice "
                f"after {remote}'s, or `git ml push --force` to replace {remote}'s)")
    what = "dataset" if kind == "datasets" else "run"
    return (f"{what} {name} has diverged from {remote}'s: yours is {mine[:12]}, "
            f"{remote}/{name} is {theirs[:12]}; yours is kept (merge the two and `git ml "
            f"add` the result, or `git ml push --force` to replace {remote}'s)")


def ls_remote(repo: Core, remote: str | RemoteSpec | None = None,
              events: Events | None = None, grep: Sequence[str] = ()) -> list[RemoteRef]:
    """The datasets and runs a remote holds, without downloading their data.

    A ref that cannot be read is a problem and left out; one whose snapshot
    cannot be read or does not decode is a problem and listed without details.
    ``grep``: only those whose name or newest message holds one of these words
    (:func:`mlgit.api.search.grep_matches`; one listed without details is kept
    only for its name).
    """
    ev = events or Events()
    store = repo.store
    spec, backend = connect_remote(repo, remote)
    out: list[RemoteRef] = []
    try:
        if not check_remote_config(backend, store, create=False):
            return []
        refs = {ref: oid for ref, oid in backend.list_refs(lambda _, e: ev.problem(e)).items()
                if ref.partition("/")[0] in SNAPSHOT_KINDS}  # stages: `git ml stages`
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url), ev.problem)
        raws = list(dict.fromkeys(hex_to_raw(o) for o in refs.values()))
        small = [r for r in raws
                 if index.has(r) and index.entries[r][1].raw_len <= MAX_SNAPSHOT_LEN]
        failed: dict[RawObjectID, MlgitError] = {}
        got = read_objects(backend, index, small, failed)
        for ref, oid in _in_kind_order(refs):  # datasets first, as local `ls` lists them
            kind, _, name = ref.partition("/")
            out.append(RemoteRef(kind[:-1], name, oid, _remote_snapshot(
                spec.url, ref, hex_to_raw(oid), index, got, failed, ev)))
    finally:
        backend.close()
    if events is None:
        ev.raise_problems()
    return [r for r in out
            if grep_matches(grep, r.name, r.snapshot.message if r.snapshot else None)]


def _remote_snapshot(url: str, ref: str, raw: RawObjectID, index: RemoteIndex,
                     got: dict[RawObjectID, tuple[Any, bytes]],
                     failed: dict[RawObjectID, MlgitError], ev: Events) -> Snapshot | None:
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


def resolve_commits(repo: Core, revs: list[str]) -> list[str]:
    """Commit ids for git revisions."""
    return [resolve_commit(repo.git, r) for r in revs]


def fetch_chunks(repo: Core, remote: str | RemoteSpec, chunks: list[tuple[RawObjectID, int]]
                 ) -> None:
    """Bring just these chunks (``mlgit.open`` reading one file of a lazy snapshot).

    ``chunks`` are (id, the length its tree records) pairs. Each chunk's length
    is checked against the tree's before it is stored; a chunk that fails (or
    that the remote lacks) raises, naming the remote.
    """
    lengths: dict[RawObjectID, int] = {}
    for cid, n in chunks:
        if lengths.setdefault(cid, n) != n:
            raise CorruptObjectError(f"chunk {raw_to_hex(cid)} is listed with two lengths "
                                     f"({lengths[cid]} and {n}) in one file")
    spec, backend = connect_remote(repo, remote)
    try:
        if not check_remote_config(backend, repo.store, create=False):
            raise no_store_error(spec)
        index = RemoteIndex(backend, remote_cache_dir(repo.store, spec.url))
        with repo.store.writing():
            fetch_objects(repo.store, backend, list(lengths), index, role=walk.LEAF,
                          lengths=lengths)
    finally:
        backend.close()


def fetch_payload(repo: Core, remote: str, oid: ObjectID) -> None:
    """Bring a note's payload (a tree, ``oid``) and everything below it, verified.

    RevisionError when the remote does not have it; other failures raise, naming
    the remote.
    """
    failed: list[MlgitError] = []
    fetch_payloads(repo, remote, [oid], failed.append)
    if failed:
        raise failed[0]


def fetch_payloads(repo: Core, remote: str, oids: list[ObjectID],
                   on_bad: Callable[[MlgitError], None]) -> None:
    """Bring notes' payloads (trees) and everything below them, in one session, verified.

    A payload the remote lacks (RevisionError) or whose objects fail their checks
    goes to ``on_bad``; the others are fetched. A remote that cannot be used
    raises, naming it.
    """
    spec, backend = connect_remote(repo, remote)
    try:
        if not check_remote_config(backend, repo.store, create=False):
            raise no_store_error(spec)
        index = RemoteIndex(backend, remote_cache_dir(repo.store, spec.url))
        wanted = []
        for oid in dict.fromkeys(oids):
            raw = hex_to_raw(oid)
            if not index.has(raw) and not repo.store.objects.has_committed(raw):
                on_bad(RevisionError(f"payload {oid} is neither here nor on {spec.name} "
                                     f"({spec.url}); whoever noted it must `git ml push` it"))
            else:
                wanted.append(raw)
        if wanted:
            with repo.store.writing():
                fetch_objects(repo.store, backend, wanted, index, role=walk.TREE,
                              history=False, on_bad=on_bad)
    finally:
        backend.close()


def fetch_objects_closure(repo: Core, backend: Backend, index: RemoteIndex,
                          oids: list[RawObjectID]) -> None:
    """Fetch these objects (of any role) and everything below them that is missing locally."""
    with repo.store.writing():
        fetch_objects(repo.store, backend, oids, index, role=walk.ANY)
