"""Checkpoints with lineage: ``commit-ckpt``, ``latest_checkpoint``, ``lineage``.

A checkpoint is a snapshot of kind ``checkpoint`` named after its run; its
metadata records the step, metrics, config files, the code (HEAD and whether
the work tree was dirty), the datasets it was trained on and where it came
from. Its parent is the run's previous checkpoint, or another run's checkpoint
for a fine-tune. docs/notes.md documents the metadata.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api.checkout import checkout
from mlgit.api.events import Events
from mlgit.api.payloads import LogPaths, payload_records
from mlgit.errors import BadPathError, ConflictError, FormatError, RevisionError, UsageError
from mlgit.format.ids import ObjectID, hex_to_raw, raw_to_hex
from mlgit.format.meta import (
    CodeInfo,
    ConfigRef,
    DatasetRef,
    config_digest,
    decode_checkpoint_meta,
)
from mlgit.format.names import is_ref_name
from mlgit.format.pack import OBJ_BLOB
from mlgit.format.plainjson import check_shown
from mlgit.format.records import RECORD_VERSION, encode_record
from mlgit.format.snapshot import KIND_CHECKPOINT, KIND_DATASET, ROOT_DIR, ROOT_FILE, Snapshot
from mlgit.gitlink.commits import CodeState, code_state, head_commit, pointers_in_tree
from mlgit.gitlink.notes import append_note_lines
from mlgit.snapshot import statcache
from mlgit.snapshot.build import build_tree
from mlgit.store.revision import resolve_name

if TYPE_CHECKING:
    from mlgit.api.core import Core
    from mlgit.api.samples import SamplesPayload
    from mlgit.store.store import Store

__all__ = ["CkptResult", "LineageEntry", "LineageStop", "LineageWalk", "commit_ckpt",
           "latest_checkpoint", "lineage", "resolve_source"]

MAX_CONFIG_FILE = 16 << 20
_CAS_TRIES = 50


@dataclass
class CkptResult:
    """A committed checkpoint: its id, run, step, parent, and the commit its note is on."""

    id: ObjectID
    run: str
    step: int | None
    parent: ObjectID | None
    files: int
    bytes: int
    stored_bytes: int
    note_commit: str | None
    created: bool = True


@dataclass
class LineageEntry:
    """One checkpoint in an ancestry: where it sits and what it was trained from."""

    id: ObjectID
    run: str
    step: int | None
    metrics: dict[str, float]
    code: CodeInfo | None
    datasets: list[DatasetRef] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml lineage --json`` prints it (``code`` is ``{}`` if unknown)."""
        return {"id": self.id, "run": self.run, "step": self.step, "metrics": self.metrics,
                "code": self.code.to_json() if self.code else {},
                "datasets": [d.to_json() for d in self.datasets]}


@dataclass(frozen=True)
class LineageStop:
    """Why a lineage walk ended before a checkpoint without parents.

    ``reason`` is ``missing`` (the parent is not in this store, e.g. not fetched),
    ``bad`` (it does not decode: a problem), ``not-checkpoint`` (it is a dataset)
    or ``cycle`` (the parent was already listed).
    """

    parent: ObjectID
    reason: str
    message: str


def resolve_source(path: Path) -> tuple[Path, str, frozenset[bytes] | None]:
    """What ``path`` names: (path to scan, ``file``/``dir``/``tf-prefix``, prefix's file names).

    A TensorFlow checkpoint prefix ``ckpt-1200`` stands for ``ckpt-1200.index``
    and ``ckpt-1200.data-*`` in its directory. A file or directory given as a
    symlink is stored as what the link points to (a checkpoint is its content,
    never a link to somewhere else).
    """
    if path.is_symlink():
        path = path.resolve()
    if path.is_dir():
        return path, "dir", None
    if path.is_file():
        return path, "file", None
    parent, name = path.parent, path.name
    if parent.is_dir() and name:
        try:
            names = os.listdir(parent)
        except OSError:
            names = []
        index = name + ".index"
        data = [n for n in names if n.startswith(name + ".data-")]
        if index in names and data:
            return parent, "tf-prefix", frozenset(os.fsencode(n) for n in [index, *data])
        if index in names or data:
            raise BadPathError(f"{path}: a TensorFlow checkpoint prefix needs both {index} and "
                               f"{name}.data-* files")
    raise BadPathError(f"{path}: not a file, a directory or a TensorFlow checkpoint prefix "
                       f"(no {name}.index beside it)")


def _check_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        if not isinstance(k, str) or not k or len(k) > 200:
            raise UsageError(f"bad metric name {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UsageError(f"metric {k} must be a number, got {v!r}")
        if not math.isfinite(v):
            raise UsageError(f"metric {k} must be finite, got {v!r}")
        out[k] = int(v) if isinstance(v, int) else float(v)
    return out


def _datasets(repo: Core, revs: Sequence[str | DatasetRef] | None) -> list[dict[str, str]]:
    if revs is not None:
        out = []
        for rev in revs:
            if isinstance(rev, DatasetRef):  # read and checked elsewhere (mlgit.tf.dataset)
                out.append({"name": rev.name, "id": str(rev.id)})
                continue
            oid = repo.resolve(rev)
            snap = repo.snapshot(oid)
            if snap.kind != KIND_DATASET:
                raise UsageError(f"{rev!r} is a {snap.kind}, not a dataset")
            out.append({"name": snap.name, "id": oid})
        return out
    head = head_commit(repo.git)
    if head is None:
        return []
    tree = str(repo.git.git[head].tree_id)
    return [{"name": p.name, "id": p.id, "path": path.removesuffix(".mlgit")}
            for path, p in pointers_in_tree(repo.git, tree) if p.kind == KIND_DATASET]


def commit_ckpt(repo: Core, path: str | os.PathLike[str], *, run: str, step: int | None = None,
                metrics: dict[str, Any] | None = None,
                config_files: list[str | os.PathLike[str]] | None = None, message: str = "",
                datasets: Sequence[str | DatasetRef] | None = None,
                parent: str | None = None, log: LogPaths = None,
                graph: str | os.PathLike[str] | None = None,
                events: Events | None = None,
                samples: SamplesPayload | None = None) -> CkptResult:
    """Store ``path`` as the next checkpoint of ``run`` and record it on HEAD's note.

    ``log`` is one training log or a list of them (a ``log`` record each).
    ``datasets`` are revisions (each must name a dataset here) or
    :class:`~mlgit.format.meta.DatasetRef` pins recorded as given (a version read
    and checked elsewhere, e.g. by ``mlgit.tf.dataset`` from a remote); None: the
    datasets HEAD's pointer files pin. ``samples`` (made by ``mlgit.tf.samples``)
    are noted with it as a ``samples`` record (:mod:`mlgit.api.samples`). Everything
    is validated before anything is written. Concurrent commits to one run are
    serialized by the ref's compare-and-swap: a loser re-parents its snapshot on
    the new head and tries again, so no checkpoint is lost.
    """
    ev = events or Events()
    if not is_ref_name(run):
        raise UsageError(f"invalid run name {run!r}: use letters, digits, '.', '_' and '-'")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise UsageError(f"step must be a non-negative integer, got {step!r}")
    clean_metrics = _check_metrics(metrics)
    target, kind, only = resolve_source(Path(path))
    configs = []
    for cf in config_files or []:
        p = Path(cf)
        if not p.is_file():
            raise BadPathError(f"config file {cf}: no such file")
        if p.stat().st_size > MAX_CONFIG_FILE:
            raise BadPathError(f"config file {cf} is larger than 16 MiB; commit it as data")
        configs.append((p.name, p.read_bytes()))
    explicit_parent: ObjectID | None = None
    if parent is not None:
        explicit_parent = repo.resolve(parent)
        psnap = repo.snapshot(explicit_parent)
        if psnap.kind != KIND_CHECKPOINT:
            raise UsageError(f"--parent {parent!r} is a {psnap.kind}, not a checkpoint")
    used = _datasets(repo, datasets)
    store = repo.store
    code = code_state(repo.git)
    # The metadata must decode as readers will decode it; check it before writing anything
    # (config ids are not known yet: any id will do).
    try:
        check_shown(message, "the message", lines=True)
        decode_checkpoint_meta(_checkpoint_meta(
            step, clean_metrics, [{"name": n, "id": "0" * 32, "size": len(d)} for n, d in configs],
            code, used, kind, path))
    except FormatError as e:
        raise UsageError(f"cannot record this checkpoint: {e}") from None
    if samples is not None and code.commit is None:
        raise UsageError("samples are noted on HEAD's commit, and there is none yet: commit "
                         "first")

    written_before = store.objects.bytes_written
    # A stat cache pays only for a path that is committed again (inside the work tree);
    # checkpoints saved to fresh temporary directories would each leave a dead cache file.
    work = repo.git.workdir
    cached = work is not None and work in target.absolute().resolve().parents
    cache_key = target / only_key(only) if only else target
    cpath = statcache.cache_path(store.cache_dir, cache_key.absolute())
    old_cache = statcache.load(cpath) if cached else statcache.StatCache()
    ev.start(f"committing {run}", 0, 0)
    held = contextlib.ExitStack()
    held.enter_context(store.writing())  # gc waits until the ref names the checkpoint
    try:
        payload_lines = payload_records(repo, log=log, graph=graph, results=None, dataset=None)
        if samples is not None:
            from mlgit.api.samples import samples_record  # imported when used: start-up time
            payload_lines.append(samples_record(repo, samples))
        return _commit_locked(repo, store, run, step, message, kind, target, only, cpath,
                              old_cache, cached, configs, explicit_parent, used, code,
                              payload_lines, clean_metrics, path, written_before, ev)
    finally:
        held.close()


def _checkpoint_meta(step: int | None, metrics: dict[str, float],
                     config: list[dict[str, Any]], code: CodeState, used: list[dict[str, str]],
                     kind: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint snapshot's ``meta`` (docs/notes.md, "Checkpoint snapshots")."""
    return {
        "step": step, "metrics": metrics, "config": config, "code": code.to_json(),
        "datasets": used,
        "source": {"type": kind, "path": str(path),
                   **({"prefix": Path(path).name} if kind == "tf-prefix" else {})},
    }


def _commit_locked(repo: Core, store: Store, run: str, step: int | None, message: str,
                   kind: str, target: Path, only: frozenset[bytes] | None, cpath: Path,
                   old_cache: statcache.StatCache, cached: bool,
                   configs: list[tuple[str, bytes]], explicit_parent: ObjectID | None,
                   used: list[dict[str, str]], code: CodeState,
                   payload_lines: list[dict[str, Any]], clean_metrics: dict[str, float],
                   path: str | os.PathLike[str], written_before: int, ev: Events) -> CkptResult:
    """The write phase of :func:`commit_ckpt`, under the store's shared gc lock."""
    try:
        def on_total(files: int, nbytes: int) -> None:
            ev.start(f"committing {run}", files, nbytes)

        built = build_tree(store, os.fsencode(target.absolute()), is_file=kind == "file",
                           old=old_cache, warn=ev.warn, progress=ev.advance,
                           on_total=on_total, only=only)
        config_meta = []
        config_refs = []
        for name, data in configs:
            oid = raw_to_hex(store.objects.put(OBJ_BLOB, data))
            config_meta.append({"name": name, "id": oid, "size": len(data)})
            config_refs.append(ConfigRef(name, oid, len(data)))
    except BaseException:
        store.objects.abort()
        raise
    finally:
        ev.finish()
    meta = _checkpoint_meta(step, clean_metrics, config_meta, code, used, kind, path)
    tz = time.localtime().tm_gmtoff // 60
    author = repo.author()
    config_id = config_digest(config_refs)

    def checkpoint_record(oid: str, parent_id: str | None, when: int) -> dict[str, Any]:
        return {"type": "checkpoint", "v": RECORD_VERSION, "id": oid, "run": run,
                "step": step, "metrics": clean_metrics, "parent": parent_id,
                "datasets": [{"name": d["name"], "id": d["id"]} for d in used],
                "dirty": code.dirty, "time": when, "author": author,
                "message": message.splitlines()[0] if message else "",
                **({"config": config_id} if config_id else {})}

    # Encode the note lines once before any ref moves: a record that cannot be
    # written must fail the command while nothing names the checkpoint yet.
    encode_record(checkpoint_record("0" * 32, "0" * 32, 0))
    payload_encoded = [encode_record({**rec, "checkpoint": "0" * 32}) for rec in payload_lines]
    del payload_encoded
    for _ in range(_CAS_TRIES):
        head = store.refs.get("checkpoints", run)
        parent_id = explicit_parent or head
        snap = Snapshot(KIND_CHECKPOINT, run, raw_to_hex(built.root),
                        ROOT_FILE if kind == "file" else ROOT_DIR,
                        (parent_id,) if parent_id else (), int(time.time()), tz, author,
                        message, built.files, built.total_bytes, meta)
        oid = store.objects.put_snapshot(snap)
        store.objects.flush()  # objects durable before the ref names them
        try:
            store.refs.update("checkpoints", run, oid, head)
            break
        except ConflictError:
            continue
    else:
        raise ConflictError(f"checkpoints/{run} kept moving; try again")
    if cached:
        built.cache.snapshot = oid
        statcache.save(cpath, built.cache, built.stat_time_ns)

    note_commit = code.commit
    if note_commit is None:
        ev.warn("no commit yet: the checkpoint is stored, but there is no commit to note it on")
    else:
        lines = [encode_record(checkpoint_record(oid, parent_id, snap.time))]
        for rec in payload_lines:
            lines.append(encode_record({**rec, "checkpoint": oid}))
        append_note_lines(repo.git, note_commit, lines)
    return CkptResult(oid, run, step, parent_id, built.files, built.total_bytes,
                      store.objects.bytes_written - written_before, note_commit)


def only_key(only: frozenset[bytes]) -> str:
    """A stable stat-cache key suffix for a checkpoint prefix's file set."""
    return "#" + ",".join(sorted(os.fsdecode(n) for n in only))


def latest_checkpoint(repo: Core, run: str) -> Path:
    """Path of ``run``'s newest checkpoint, materialized read-only (the prefix for TF ones)."""
    oid = resolve_name(repo.store, run, ("checkpoints",))
    if oid is None:
        raise RevisionError(f"no checkpoint run named {run!r}")
    return checkpoint_path(repo, oid)


def checkpoint_path(repo: Core, oid: ObjectID) -> Path:
    """Materialize a checkpoint; for a TF prefix checkpoint return the prefix inside it."""
    return checkout(repo, oid)


class LineageWalk:
    """A checkpoint and its ancestors (first parents, across runs), newest first, lazily.

    Iterating yields :class:`LineageEntry` objects one at a time (memory stays
    bounded however long the chain); at most ``limit`` of them. When the walk
    ends at a parent it cannot follow, :attr:`stop` says why afterwards; a parent
    that does not decode is also reported to ``events`` as a problem.
    """

    def __init__(self, repo: Core, rev: str, limit: int | None = None,
                 events: Events | None = None) -> None:
        self.repo = repo
        self.limit = limit
        self.events = events or Events()
        self.stop: LineageStop | None = None
        self.start = repo.resolve(rev)
        snap = repo.snapshot(self.start)
        if snap.checkpoint is None:
            raise UsageError(f"{rev!r} is a {snap.kind}, not a checkpoint")

    def __iter__(self) -> Iterator[LineageEntry]:
        oid: ObjectID | None = self.start
        seen: set[str] = set()
        count = 0
        while oid is not None and (self.limit is None or count < self.limit):
            snap = self._snapshot(oid, seen, first=count == 0)
            if snap is None:
                return
            meta = snap.checkpoint
            assert meta is not None  # checked by _snapshot
            seen.add(oid)
            count += 1
            yield LineageEntry(oid, snap.name, meta.step, meta.metrics, meta.code,
                               list(meta.datasets))
            oid = snap.parents[0] if snap.parents else None

    def _snapshot(self, oid: ObjectID, seen: set[str], first: bool) -> Snapshot | None:
        """The checkpoint ``oid``, or None (and :attr:`stop` set) if the walk ends there."""
        store = self.repo.store
        if oid in seen:
            self.stop = LineageStop(oid, "cycle", f"parent {oid[:12]} is already listed")
            return None
        if not first and not store.objects.has_committed(hex_to_raw(oid)):
            self.stop = LineageStop(oid, "missing", f"parent {oid[:12]} is not in this store "
                                    "(fetch it to see further)")
            return None
        try:
            snap = self.repo.snapshot(oid)
        except FormatError as e:
            if first:
                raise
            self.events.problem(e)
            self.stop = LineageStop(oid, "bad", f"parent {oid[:12]} does not decode")
            return None
        if snap.checkpoint is None:
            self.stop = LineageStop(oid, "not-checkpoint",
                                    f"parent {oid[:12]} is a {snap.kind}, not a checkpoint")
            return None
        return snap


def lineage(repo: Core, rev: str, limit: int | None = None,
            events: Events | None = None) -> list[LineageEntry]:
    """A checkpoint and its ancestors (first parents, across runs), newest first.

    The walk ends at the first parent that is not in the store or not a
    checkpoint; one that does not decode is a problem (raised at the end when
    no ``events`` are given). See :class:`LineageWalk` to stream a long chain.
    """
    walk = LineageWalk(repo, rev, limit, events)
    out = list(walk)
    if events is None:
        walk.events.raise_problems()
    return out
