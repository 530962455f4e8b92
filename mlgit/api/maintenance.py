"""``git ml fsck`` and ``git ml gc``: what the store must keep, and checking and pruning it.

Roots (what must stay and be complete): every sidecar ref (datasets, runs, stages,
and remote-tracking refs), the snapshot named by every pointer file in every commit
of every local branch, tag and remote-tracking branch and in the work tree, and
every object a note record names (checkpoints, stored logs, graphs, results and
their test datasets). A version an imported pointer pins that this store does
not hold is counted by fsck as not fetched (its source holds it: a project's
remote holds none unless they were pushed with ``--imports``), not as missing;
gc keeps the imported versions the store holds.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from mlgit.api import sync
from mlgit.api.events import Events
from mlgit.errors import FormatError, GitCommandError, PointerError, UsageError
from mlgit.format.ids import RawObjectID, hex_to_raw, raw_to_hex
from mlgit.gitlink.commits import pointers_in_tree
from mlgit.gitlink.notes import note_roots
from mlgit.store import fsck as fsck_mod
from mlgit.store import gc as gc_mod
from mlgit.store import walk
from mlgit.store.fsck import Root
from mlgit.store.packs import read_index_file
from mlgit.store.refs import REF_KINDS, STAGES, RefStore, ref_role
from mlgit.sync.transfer import RemoteIndex, check_remote_config, read_objects, remote_cache_dir

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["collect_garbage", "fsck", "repair", "roots"]

DEFAULT_PRUNE = "2.weeks.ago"


def _ref_stores(repo: Core) -> list[tuple[str, RefStore]]:
    """The local refs (label ``""``) and each remote's tracking refs (``remotes/<r>/``)."""
    store = repo.store
    out = [("", store.refs)]
    remotes = store.root / "refs" / "remotes"
    for remote in sorted(os.listdir(remotes)) if remotes.exists() else []:
        out.append((f"remotes/{remote}/", RefStore(remotes / remote)))
    return out


def _sidecar_refs(repo: Core, ev: Events) -> list[Root]:
    """Every sidecar ref, local and remote-tracking, with the role of what it names.

    Dataset and run refs name snapshots, stage refs promotions. A ref that cannot be
    read is reported to ``ev`` and left out.
    """
    def bad(_ref: str, err: FormatError) -> None:
        ev.problem(_BadRef(str(err)))

    return [(oid, f"ref {where}{kind}/{name}", ref_role(kind))
            for where, refs in _ref_stores(repo) for kind in REF_KINDS
            for name, oid in refs.list(kind, bad).items()]


def _stage_ref_problems(repo: Core) -> list[fsck_mod.Problem]:
    """``bad-ref`` for each stage ref that names another stage's record.

    A record that is missing, damaged or not a promotion is left to the walk, which
    reports it.
    """
    out: list[fsck_mod.Problem] = []
    for where, refs in _ref_stores(repo):
        for name, oid in refs.list(STAGES, lambda _r, _e: None).items():
            try:
                p = repo.store.objects.get_promotion(oid)
            except FormatError:
                continue
            if f"{p.model}@{p.stage}" != name:
                out.append(fsck_mod.Problem(
                    "bad-ref", f"ref {where}{STAGES}/{name} names promotion {oid}, a record "
                    f"of {p.model}@{p.stage}", oid))
    return out


class _BadRef(FormatError):
    """A sidecar ref that cannot be read (fsck reports it as ``bad-ref``)."""


def _commits(repo: Core) -> list[str]:
    try:
        out = repo.git.run_git("rev-list", "--branches", "--tags", "--remotes", "HEAD", "--")
    except GitCommandError:
        try:
            out = repo.git.run_git("rev-list", "--branches", "--tags", "--remotes", "--")
        except GitCommandError:
            return []
    return out.decode().split()


def roots(repo: Core, events: Events | None = None,
          imported: set[RawObjectID] | None = None) -> list[Root]:
    """Every (id, what names it, the role it must have) that the store must keep, complete.

    Refs, pointer files, checkpoint records and results datasets name snapshots;
    note payloads name trees (see :mod:`mlgit.store.walk`). A ref that cannot be
    read, a pointer file git-ml must not use (in a commit or the work tree) and a
    malformed note line are reported to ``events`` (each once) and skipped: they
    must never stop fsck or gc. The snapshots imported pointers pin are added
    to ``imported`` (when given): their source holds them.
    """
    ev = events or Events()
    out = _sidecar_refs(repo, ev)
    cache: dict[str, Any] = {}
    reported: set[str] = set()
    for commit in _commits(repo):
        tree = str(repo.git.git[commit].tree_id)
        bad: list[PointerError] = []
        found = pointers_in_tree(repo.git, tree, cache, bad)
        out += [(p.id, f"{path} in commit {commit[:12]}", walk.SNAPSHOT) for path, p in found]
        if imported is not None:
            imported.update(hex_to_raw(p.id) for _, p in found if p.source is not None)
        for err in bad:
            if str(err) not in reported:
                reported.add(str(err))
                ev.problem(PointerError(f"commit {commit[:12]}: {err}"))
    if repo.git.workdir is not None:
        here = repo.tracked(ev)
        out += [(p.id, f"{path} in the work tree", walk.SNAPSHOT) for path, p in here]
        if imported is not None:
            imported.update(hex_to_raw(p.id) for _, p in here if p.source is not None)
    out += note_roots(repo.git, ev.problem)
    return out


def fsck(repo: Core, events: Events | None = None) -> fsck_mod.FsckReport:
    """Check every pack, index and object, and that everything roots reach is complete.

    Consistent while other processes write to the store (see
    :func:`mlgit.store.fsck.check`: the roots are read first, under the store's lock).
    """
    ev = events or Events()
    report = fsck_mod.FsckReport()
    skipped = Events()  # bad refs, pointers and note lines become problems of the report
    imported: set[RawObjectID] = set()  # a version imported pointers pin: its source holds it

    def named() -> list[Root]:
        out = roots(repo, skipped, imported)
        ev.start("checking objects", 0, 0)
        return out

    try:
        fsck_mod.check(repo.store, named, report, promised=lambda: _promised(repo) | imported,
                       progress=ev.advance)
    finally:
        ev.finish()
    for err in getattr(skipped, "problems", []):
        kind = ("bad-ref" if isinstance(err, _BadRef) else
                "bad-pointer" if isinstance(err, PointerError) else "bad-note")
        report.problems.append(fsck_mod.Problem(kind, str(err)))
    report.problems += _stage_ref_problems(repo)
    return report


def _promised(repo: Core) -> set[RawObjectID]:
    """Ids a remote is known to hold: the cached copies of remotes' pack indexes.

    Each is read as a remote's index is (bounded, a regular file, named by its
    hash, entries inside a pack of at most ``MAX_PACK_LEN``); one that fails is
    skipped.
    """
    out: set[RawObjectID] = set()
    cache = repo.store.cache_dir / "remotes"
    for idx in cache.glob("*/pack-*.idx") if cache.exists() else []:
        try:
            out.update(e.oid for e in read_index_file(idx))
        except (OSError, FormatError):
            continue  # a damaged cache file only means less is known
    return out


def repair(repo: Core, remote: str | None, report: fsck_mod.FsckReport,
           events: Events | None = None) -> int:
    """Fetch good copies of damaged and missing objects from ``remote``; return how many.

    The damaged copies stay where they are (readers fall back to the good one);
    ``gc`` drops them.
    """
    wanted = sorted(report.corrupt | report.missing)
    if not wanted:
        return 0
    spec, backend = sync.connect_remote(repo, remote)
    store = repo.store
    try:
        if not check_remote_config(backend, store, create=False):
            raise UsageError(f"remote {spec.name} has no git-ml data to repair from")
        index = RemoteIndex(backend, remote_cache_dir(store, spec.url))
        have = [o for o in wanted if index.has(o)]
        lacking = [raw_to_hex(o) for o in wanted if not index.has(o)]
        if lacking:
            (events or Events()).warn(f"{spec.name} lacks {len(lacking)} of the objects "
                                      f"(first {lacking[0]})")
        with store.writing():
            for oid, (e, stored) in read_objects(backend, index, have).items():
                # The type this store already knows the object by, not the remote's claim.
                local = store.objects.entry(oid)
                type_ = local.type if local is not None else e.type
                store.objects.put_stored(oid, type_, e.codec, e.raw_len, stored, force=True)
            store.objects.flush()
        # Missing objects' children may be missing too: fetch their closures.
        missing = [o for o in report.missing if index.has(o)]
        if missing:
            sync.fetch_objects_closure(repo, backend, index, missing)
        return len(have)
    finally:
        backend.close()


def collect_garbage(repo: Core, *, prune: str = DEFAULT_PRUNE, dry_run: bool = False,
                    events: Events | None = None) -> gc_mod.GcReport:
    """Remove what no root reaches from packs older than ``prune`` (an age or ``now``).

    In a clone that shares a store, the objects every other registered clone
    needs are kept too (:func:`mlgit.api.sharing.others_live`); when one cannot be
    read, nothing of the shared store is pruned and ``events`` is warned why.
    Then evict read-only checkouts, least recently used first, until they fit
    ``ml.checkouts.maxSize`` (:mod:`mlgit.api.copies`; never one a process holds).
    Bad pointer files and note lines are reported to ``events`` and skipped (the
    objects they would name are not kept for them); with no ``events`` the first
    is raised once gc is done.
    """
    from mlgit.api import copies, sharing  # imported when used: start-up time

    ev = events or Events()
    try:
        cutoff = gc_mod.parse_prune(prune, time.time())
    except ValueError as e:
        raise UsageError(str(e)) from None
    budget = copies.max_size(repo)  # a bad setting stops gc before it starts
    report = gc_mod.collect(repo.store,
                            lambda: [(oid, role) for oid, _, role in roots(repo, ev)],
                            prune_before=cutoff, dry_run=dry_run,
                            others=lambda: sharing.others_live(
                                repo, lambda c: [(o, r) for o, _, r in roots(c, Events())],
                                dry_run=dry_run))
    if report.shared_skipped:
        ev.warn(f"the shared store {repo.store.shared} was not pruned: "
                f"{report.shared_skipped}")
    evicted = copies.enforce_budget(repo, ev, dry_run=dry_run, budget=budget)
    report.evicted_checkouts = len(evicted.evicted)
    report.checkout_bytes = evicted.total_bytes
    if events is None:
        ev.raise_problems()
    return report
