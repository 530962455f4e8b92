"""``git ml board``: every teammate's training runs, laid out as one TensorBoard logdir.

The runs come from the notes of a set of commits (by default every commit
reachable from HEAD or a local or remote-tracking branch). A *run* is a person's
checkpoint run (the ``author`` and ``run`` of its ``checkpoint`` records), or a
``log`` of event files noted on a commit without a checkpoint (named after the
log and the commit). Each run becomes a directory ``<author>/<run>`` of the
logdir (``alice/resnet-a``):

- the event files of the run's newest ``log`` record of format ``tfevents``
  (for the Keras callback: ``train/`` and ``validation/``), fetched lazily from
  the lazy-fetch remote when not here, each checked (its TFRecord framing, no
  record over ``MAX_EVENT_RECORD_LEN``, all of them under ``MAX_LOGDIR_PAYLOAD``);
- ``events.out.tfevents.0.git-ml``: the run as a TensorBoard HParams session,
  its hyperparameters taken from its newest checkpoint's config files;
- ``checkpoints/events.out.tfevents.0.git-ml``: every checkpoint's metrics at
  its step, so the HParams dashboard compares runs by them.

The author's directory name is derived from the author's name (``Alice Smith
<alice@x>`` → ``alice-smith``; another identity with the same name gets a
suffix from a hash); every name is checked as a path component
(:mod:`mlgit.format.paths`), so a hostile author, run or payload cannot write
outside the logdir or into a git directory. What is wrong (a malformed note, a
payload that cannot be fetched or fails its checks, a name that clashes) is a
problem reported through ``events``; the rest is laid out.

The logdir is refreshed incrementally: ``.mlgit-board.json`` records what was
written (files with their digests, sizes and times, the authors' directory
names, so they stay stable). A refresh when neither the notes nor the branches
moved reads nothing but that file; otherwise a file whose new content extends
the old is appended to (TensorBoard, which follows files as they grow, shows the
new epochs without a restart), a changed one replaced, and one no longer wanted
removed. Files git-ml did not write are left alone; a run directory it did not
make is not touched (a problem).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api import fetching
from mlgit.api.events import Events
from mlgit.errors import BadPathError, CorruptObjectError, FormatError, MlgitError
from mlgit.format.ids import FileDigest, ObjectID, digest_to_hex, file_digest, hex_to_raw
from mlgit.format.limits import MAX_LOGDIR_PAYLOAD
from mlgit.format.paths import check_component, check_tracked_path
from mlgit.format.records import CheckpointRecord, LogRecord, decode_note
from mlgit.format.tree import TYPE_FILE, TreeEntry
from mlgit.gitlink.commits import branch_tips, resolve_commit
from mlgit.gitlink.notes import list_notes, notes_commit, read_note_blob
from mlgit.records import hparams as hp
from mlgit.records.tfevents import read_records
from mlgit.snapshot.reader import SnapshotFile
from mlgit.snapshot.treewalk import flatten
from mlgit.store.fsutil import DurableFile, atomic_write, force_remove, read_bounded
from mlgit.store.lock import lock_file

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["MANIFEST", "METRICS_DIR", "SESSION_FILE", "BoardResult", "BoardRun", "author_slug",
           "board_logdir", "default_logdir"]

MANIFEST = ".mlgit-board.json"
SESSION_FILE = "events.out.tfevents.0.git-ml"
METRICS_DIR = "checkpoints"
_FORMAT = 1
_TMP_DIR = ".mlgit-board.tmp"
_MAX_MANIFEST = 64 << 20
_BLOCK = 1 << 20
_MAX_SLUG = 40

RunKey = tuple[str, str]
"""A run: (author as recorded, run name)."""


@dataclass
class BoardRun:
    """One run of the logdir: where it is, whose it is, what it shows, what this refresh did.

    ``status`` is ``added``, ``updated``, ``unchanged`` or ``removed`` (a run of an
    earlier refresh that is out of scope now: only for a logdir git-ml owns).
    """

    path: str
    author: str
    run: str
    checkpoint: ObjectID | None
    step: int | None
    commit: str | None
    log: ObjectID | None
    status: str

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml board --json`` prints it."""
        return {"path": self.path, "author": self.author, "run": self.run,
                "checkpoint": self.checkpoint, "step": self.step, "commit": self.commit,
                "log": self.log, "status": self.status}


@dataclass
class BoardResult:
    """A logdir refresh: the directory, its runs, and what was written."""

    logdir: Path
    runs: list[BoardRun] = field(default_factory=list)
    files_written: int = 0
    bytes_written: int = 0

    @property
    def changed(self) -> bool:
        """True if any file was written or removed."""
        return self.files_written > 0 or any(r.status != "unchanged" for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{"logdir", "changed", "files_written", "bytes_written", "runs"}``."""
        return {"logdir": str(self.logdir), "changed": self.changed,
                "files_written": self.files_written, "bytes_written": self.bytes_written,
                "runs": [r.to_json() for r in self.runs]}


@dataclass
class _Run:
    """What the notes say about one run."""

    author: str
    run: str
    checkpoints: dict[ObjectID, tuple[str, CheckpointRecord]] = field(default_factory=dict)
    log: tuple[str, LogRecord] | None = None

    def newest(self) -> tuple[str, CheckpointRecord] | None:
        if not self.checkpoints:
            return None
        return max(self.checkpoints.values(),
                   key=lambda c: (c[1].time or 0, c[1].step or -1, c[1].id))


# -- the manifest ---------------------------------------------------------------------


@dataclass
class _Manifest:
    state: str = ""
    complete: bool = False
    authors: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "state": self.state, "complete": self.complete,
                "authors": self.authors, "runs": self.runs}


def _bad_manifest(path: Path, what: str) -> FormatError:
    return FormatError(f"{path}: {what}; not a logdir git-ml can refresh (remove that file to "
                       "start over, or choose another directory)")


def _check_run_entry(path: Path, run_path: str, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
        raise _bad_manifest(path, f"run {run_path[:80]!r} is malformed")
    parts = run_path.split("/")
    if len(parts) != 2:
        raise _bad_manifest(path, f"run path {run_path[:80]!r} is not author/run")
    for p in parts:
        check_component(p, f"{path.name}: run")
    for rel, f in entry["files"].items():
        check_tracked_path(rel)
        if not isinstance(f, dict) or not all(
                isinstance(f.get(k), t) for k, t in (("digest", str), ("size", int),
                                                     ("mtime_ns", int))):
            raise _bad_manifest(path, f"file {rel[:80]!r} is malformed")


def _load_manifest(logdir: Path) -> _Manifest:
    """The manifest of ``logdir`` (empty if none); FormatError if it is not one."""
    from mlgit.format import plainjson  # imported when used: start-up time

    path = logdir / MANIFEST
    try:
        data = read_bounded(path, _MAX_MANIFEST, "board manifest")
    except FileNotFoundError:
        return _Manifest()
    try:
        obj = plainjson.loads(data.decode("utf-8"), str(path))
    except (UnicodeDecodeError, FormatError) as e:
        raise _bad_manifest(path, f"not JSON ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise _bad_manifest(path, "unknown format")
    authors, runs = obj.get("authors"), obj.get("runs")
    if not isinstance(authors, dict) or not all(
            isinstance(v, str) for v in authors.values()) or not isinstance(runs, dict):
        raise _bad_manifest(path, "malformed")
    for slug in authors.values():
        check_component(slug, f"{path.name}: author")
    for run_path, entry in runs.items():
        _check_run_entry(path, run_path, entry)
    return _Manifest(str(obj.get("state", "")), obj.get("complete") is True, authors, runs)


# -- which runs -------------------------------------------------------------------------


def _scope(repo: Core, revs: list[str] | None) -> tuple[set[str], list[str]]:
    """The commits whose notes count, and the heads they are reachable from."""
    git = repo.git
    # Default: HEAD and every branch, where git ml results starts from.
    heads = sorted({resolve_commit(git, r) for r in revs}) if revs else branch_tips(git)
    if not heads:
        return set(), heads
    listing = git.run_git("rev-list", "--stdin", input="".join(h + "\n" for h in heads).encode())
    return set(listing.decode().split()), heads


def _collect(repo: Core, commits: set[str], ev: Events) -> dict[RunKey, _Run]:
    """The runs the notes on ``commits`` name."""
    ckpts: dict[tuple[ObjectID, str], RunKey] = {}  # (checkpoint, author) -> run
    logs: list[tuple[str, LogRecord]] = []
    runs: dict[RunKey, _Run] = {}
    for commit, blob in list_notes(repo.git):
        if commit not in commits:
            continue
        where = f"note on {commit[:12]}"
        try:
            text = read_note_blob(repo.git, blob, commit)
        except FormatError as e:
            ev.problem(e)
            continue
        records, problems = decode_note(text, where)
        for p in problems:
            ev.problem(FormatError(p))
        for r in records:
            if isinstance(r, CheckpointRecord):
                run = runs.setdefault((r.author, r.run), _Run(r.author, r.run))
                run.checkpoints.setdefault(r.id, (commit, r))
                ckpts.setdefault((r.id, r.author), (r.author, r.run))
            elif isinstance(r, LogRecord) and r.format == "tfevents":
                logs.append((commit, r))
    for commit, log in logs:
        # A log belongs to the run of its checkpoint as its own author recorded it: naming
        # someone else's checkpoint in a record of one's own cannot take their logs.
        key = ckpts.get((log.checkpoint, log.author)) if log.checkpoint is not None else None
        if key is None:
            stem = _slug(log.name.rsplit(".", 1)[0] if "." in log.name[1:] else log.name)
            key = (log.author, f"{stem or 'log'}-{commit[:7]}")
        run = runs.setdefault(key, _Run(*key))
        if run.log is None or _log_order(run, log) > _log_order(run, run.log[1]):
            run.log = (commit, log)
    return runs


def _log_order(run: _Run, log: LogRecord) -> tuple[int, int, str]:
    step = run.checkpoints[log.checkpoint][1].step if log.checkpoint in run.checkpoints else None
    return (log.time or 0, step if step is not None else -1, log.object)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-z0-9._-]+", "-", ascii_text.lower()).strip("-._")
    return s[:_MAX_SLUG].strip("-._")


def author_slug(author: str) -> str:
    """The directory name for ``author`` (``Name <email>``): the name, lower-cased, safe.

    Letters and digits (accents dropped), ``.``, ``_`` and ``-``; at most 40
    characters; the e-mail's local part when the name gives nothing; ``unknown``
    when neither does.
    """
    name, _, rest = author.partition("<")
    return _slug(name) or _slug(rest.split("@", 1)[0]) or "unknown"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def _name_runs(runs: dict[RunKey, _Run], manifest: _Manifest, ev: Events
               ) -> dict[str, _Run]:
    """Each run's path ``<author>/<run>`` (authors' names as the manifest has them)."""
    authors = manifest.authors
    taken = {slug: a for a, slug in authors.items()}
    first_seen: dict[str, int] = {}
    for r in runs.values():
        times = [c.time or 0 for _, c in r.checkpoints.values()]
        if r.log is not None:
            times.append(r.log[1].time or 0)
        first_seen[r.author] = min([first_seen.get(r.author, 1 << 62), *times])
    for author in sorted(first_seen, key=lambda a: (first_seen[a], a)):
        if author in authors:
            continue
        slug = author_slug(author)
        if slug in taken:
            slug = f"{slug[:_MAX_SLUG - 7]}-{_short_hash(author)}"
        authors[author] = taken[slug] = slug
    out: dict[str, _Run] = {}
    folded: dict[str, str] = {p.casefold(): p for p in manifest.runs}
    owners = {p: (e.get("author"), e.get("run")) for p, e in manifest.runs.items()}
    for key in sorted(runs):
        run = runs[key]
        try:
            comp = check_component(run.run, "run name")
        except FormatError as e:
            ev.problem(e)
            continue
        path = f"{authors[run.author]}/{comp}"
        other = folded.get(path.casefold())
        if (other is not None and owners.get(other, key) != key) or path in out:
            path = f"{path}-{_short_hash(key[0] + chr(0) + key[1])}"
        folded[path.casefold()] = path
        owners[path] = key
        out[path] = run
    return out


# -- fetching what is not here -----------------------------------------------------------------


def _payload_complete(repo: Core, oid: ObjectID) -> bool:
    """True if payload tree ``oid`` and every chunk below it is here (a damaged one: False)."""
    try:
        return fetching.tree_complete(repo, hex_to_raw(oid))
    except CorruptObjectError:
        return False


def _fetch_missing(repo: Core, runs: dict[str, _Run], ev: Events) -> None:
    """Bring, in one session each, the payloads and newest checkpoints that are not here."""
    from mlgit.api import sync  # imported when used: start-up time

    has = repo.store.objects.has_committed
    payloads = [r.log[1].object for r in runs.values()
                if r.log is not None and (r.log[1].size or 0) <= MAX_LOGDIR_PAYLOAD
                and not _payload_complete(repo, r.log[1].object)]
    snaps = [n[1].id for r in runs.values() if (n := r.newest()) is not None
             and not has(hex_to_raw(n[1].id))]
    if not payloads and not snaps:
        return
    remote = fetching.lazy_remote(repo)
    if remote is None:
        ev.warn(f"{len(payloads) + len(snaps)} payload(s) and checkpoint(s) are not here and "
                "there is no remote to fetch them from (lazy fetching off, or no remote)")
        return
    try:
        if payloads:
            sync.fetch_payloads(repo, remote, payloads, ev.problem)
        if snaps:
            sync.fetch(repo, remote, list(snaps), history=False, notes=False, chunks_too=False,
                       events=ev)
    except MlgitError as e:  # the remote cannot be used: what is here is laid out
        ev.problem(e)


# -- what a run's directory holds --------------------------------------------------------------


@dataclass(frozen=True)
class _Content:
    """A file to lay out: bytes in memory or a file of the store, and its XXH3-128 digest."""

    digest: FileDigest
    size: int
    data: bytes | None = None
    entry: TreeEntry | None = None

    def open(self, repo: Core, name: str) -> io.BufferedIOBase:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.entry is not None
        return io.BufferedReader(SnapshotFile(repo.store.objects, self.entry, name), _BLOCK)


def _bytes_content(data: bytes) -> _Content:
    return _Content(file_digest(data), len(data), data=data)


def _config_hparams(repo: Core, run: _Run) -> hp.HParams | None:
    """Hyperparameters from the run's newest checkpoint's config files; None if not here."""
    newest = run.newest()
    if newest is None:
        return {}
    objects = repo.store.objects
    try:
        meta = objects.get_snapshot(newest[1].id).checkpoint
        if meta is None:
            return {}
        files = [(c.name, objects.get(hex_to_raw(c.id))) for c in meta.config
                 if c.size is None or c.size <= hp.MAX_CONFIG_JSON]
    except FormatError:  # not fetched (or damaged): no hyperparameters this time
        return None
    return hp.hparams_from_configs(files)


def _session_files(path: str, run: _Run,
                   hparams: hp.HParams) -> dict[str, _Content]:
    """The run's HParams session and its checkpoints' metrics."""
    ckpts = sorted((c for _, c in run.checkpoints.values()),
                   key=lambda c: (c.time or 0, c.step if c.step is not None else -1, c.id))
    times = [c.time for c in ckpts if c.time is not None]
    if run.log is not None and run.log[1].time is not None:
        times.append(run.log[1].time)
    start = float(min(times)) if times else 0.0
    out = {SESSION_FILE: _bytes_content(hp.session_events(path, hparams, start))}
    if ckpts:
        points = sorted(((c.step if c.step is not None else i, float(c.time or start),
                          c.metrics) for i, c in enumerate(ckpts)), key=lambda p: p[0])
        out[f"{METRICS_DIR}/{SESSION_FILE}"] = _bytes_content(hp.metrics_events(points, start))
    return out


def _payload_files(repo: Core, path: str, run: _Run, ev: Events) -> dict[str, _Content]:
    """The event files of the run's newest event log, checked; empty (and a problem) if unusable."""
    if run.log is None:
        return {}
    commit, log = run.log
    what = f"event log {log.object[:12]} ({log.name[:80]!r}, note on {commit[:12]}) of {path}"
    if (log.size or 0) > MAX_LOGDIR_PAYLOAD:
        ev.problem(FormatError(f"{what} claims {log.size} bytes, more than the "
                               f"{MAX_LOGDIR_PAYLOAD >> 20} MiB a board lays out; skipped"))
        return {}
    if not _payload_complete(repo, log.object):
        ev.problem(CorruptObjectError(f"{what} is not in the local store; skipped (fetch it "
                                      "with `git ml fetch`)"))
        return {}
    out: dict[str, _Content] = {}
    total = 0
    objects = repo.store.objects
    try:
        for rel, e in flatten(objects.get_tree, hex_to_raw(log.object), where=what):
            if e.type != TYPE_FILE or "tfevents" not in rel.rsplit("/", 1)[-1]:
                continue
            check_tracked_path(rel)
            total += e.size
            if total > MAX_LOGDIR_PAYLOAD:
                raise FormatError(f"{what} holds more than {MAX_LOGDIR_PAYLOAD >> 20} MiB of "
                                  "event files")
            with SnapshotFile(objects, e, rel) as f:
                for _ in read_records(io.BufferedReader(f, _BLOCK), f"{what}: {rel[:120]}",
                                      skip_large=False):
                    pass
            out[rel] = _Content(e.digest, e.size, entry=e)
    except FormatError as e:
        ev.problem(type(e)(f"{e}; skipped"))
        return {}
    for reserved in (SESSION_FILE, f"{METRICS_DIR}/{SESSION_FILE}"):
        if out.pop(reserved, None) is not None:
            ev.warn(f"{what}: its file {reserved} has the name of git-ml's own; left out")
    return out


# -- writing ----------------------------------------------------------------------------


def _same_prefix(a: io.RawIOBase | io.BufferedIOBase, b: Any, n: int) -> bool:
    while n > 0:
        x = a.read(min(n, _BLOCK))
        y = b.read(len(x)) if x else b""
        if not x or x != y:
            return False
        n -= len(x)
    return True


class _Writer:
    """Puts files into a logdir, incrementally, and counts what it wrote."""

    def __init__(self, repo: Core, logdir: Path, old: _Manifest) -> None:
        self.repo = repo
        self.logdir = logdir
        self.old = old
        self.tmp = logdir / _TMP_DIR
        self.files = 0
        self.bytes = 0

    def _dir(self, rel_dir: str) -> Path:
        """``logdir/rel_dir``, made as real directories; BadPathError at a symlink or a file."""
        d = self.logdir
        for part in rel_dir.split("/") if rel_dir else []:
            d = d / part
            try:
                st = os.lstat(d)
            except FileNotFoundError:
                os.mkdir(d)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise BadPathError(f"{d} is not a directory (a symlink, or a file); the board "
                                   "does not write through it")
        return d

    def put(self, rel: str, content: _Content, known: dict[str, Any] | None
            ) -> dict[str, Any] | None:
        """Make ``logdir/rel`` hold ``content``; its manifest entry, None if already so."""
        parent, _, name = rel.rpartition("/")
        dest = self._dir(parent) / name
        try:
            st: os.stat_result | None = os.lstat(dest)
        except FileNotFoundError:
            st = None
        regular = st is not None and stat.S_ISREG(st.st_mode)
        if regular and known is not None and st is not None and (
                known["digest"] == digest_to_hex(content.digest) and known["size"] == st.st_size
                == content.size and known["mtime_ns"] == st.st_mtime_ns):
            return None
        if st is not None and not regular:
            force_remove(dest)
            st = None
        with content.open(self.repo, rel) as src:
            appended = st is not None and st.st_size <= content.size and self._append(
                dest, src, st)
            if not appended:
                src.seek(0)
                self._replace(dest, src)
        self.files += 1
        st = os.lstat(dest)
        return {"digest": digest_to_hex(content.digest), "size": st.st_size,
                "mtime_ns": st.st_mtime_ns}

    def _append(self, dest: Path, src: Any, st: os.stat_result) -> bool:
        """Append what ``src`` has beyond ``dest``'s bytes, if those are its start; else False."""
        fd = os.open(dest, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "r+b") as f:
            if not _same_prefix(f, src, st.st_size):
                return False
            src.seek(st.st_size)
            while block := src.read(_BLOCK):
                f.write(block)
                self.bytes += len(block)
        return True

    def _replace(self, dest: Path, src: Any) -> None:
        self.tmp.mkdir(exist_ok=True)
        with DurableFile(self.tmp, "board") as out:
            while block := src.read(_BLOCK):
                out.write(block)
                self.bytes += len(block)
            out.commit(dest)

    def remove(self, run_path: str, rel: str) -> None:
        path = self.logdir / run_path / rel
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                os.unlink(path)
        d = path.parent
        while d != self.logdir and d.is_relative_to(self.logdir):
            try:
                os.rmdir(d)  # only if empty
            except OSError:
                break
            d = d.parent


def _write_run(w: _Writer, path: str, files: dict[str, _Content],
               known: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """Lay out one run's files; (its manifest file entries, whether anything changed)."""
    old_files: dict[str, Any] = known["files"] if known is not None else {}
    entries: dict[str, Any] = {}
    changed = False
    for rel in sorted(files):
        entry = w.put(f"{path}/{rel}", files[rel], old_files.get(rel))
        changed |= entry is not None
        entries[rel] = entry if entry is not None else old_files[rel]
    for rel in sorted(set(old_files) - set(files)):
        w.remove(path, rel)
        changed = True
    return entries, changed


# -- the verb -----------------------------------------------------------------------------


def default_logdir(repo: Core, revs: list[str] | None) -> Path:
    """Where ``git ml board`` lays runs out: the store's cache, one directory per set of REVS."""
    key = "all" if not revs else hashlib.sha256("\0".join(sorted(revs)).encode()).hexdigest()[:16]
    return repo.store.cache_dir / "board" / key


def _state(repo: Core, heads: list[str]) -> str:
    notes = notes_commit(repo.git) or ""
    return hashlib.sha256(json.dumps([_FORMAT, notes, heads]).encode()).hexdigest()


def _unchanged(logdir: Path, m: _Manifest, state: str) -> bool:
    """True if ``m`` was written for ``state``, completely, and its files are as it says."""
    if not m.complete or m.state != state:
        return False
    for run_path, entry in m.runs.items():
        for rel, f in entry["files"].items():
            try:
                st = os.lstat(logdir / run_path / rel)
            except FileNotFoundError:
                return False
            if st.st_size != f["size"] or st.st_mtime_ns != f["mtime_ns"]:
                return False
    return True


def _listed(runs: dict[str, dict[str, Any]], status: str) -> Iterator[BoardRun]:
    for path, e in sorted(runs.items()):
        yield BoardRun(path, str(e.get("author", "")), str(e.get("run", "")), e.get("checkpoint"),
                       e.get("step"), e.get("commit"), e.get("log"), status)


def _open_logdir(logdir: Path) -> Path:
    logdir = Path(logdir).absolute()
    if logdir.exists() and not logdir.is_dir():
        raise BadPathError(f"{logdir} is not a directory")
    logdir.mkdir(parents=True, exist_ok=True)
    return logdir


def board_logdir(repo: Core, logdir: str | os.PathLike[str] | None = None,
                 revs: list[str] | None = None, *, prune: bool | None = None,
                 events: Events | None = None) -> BoardResult:
    """Lay out the runs the notes of ``revs`` name as a TensorBoard logdir; see the module doc.

    ``logdir`` defaults to :func:`default_logdir`. ``revs`` are commits (names,
    ids); None means HEAD and every local and remote-tracking branch. ``prune`` removes
    the runs of an earlier refresh that are not in scope now (default: only in
    the default logdir, which git-ml owns). Problems (bad notes, payloads that
    cannot be fetched or fail their checks, names that clash) go to ``events``;
    without ``events`` the first is raised once everything else is laid out.
    MissingDependencyError without TensorBoard; RevisionError for a REV that
    names no commit; FormatError for a logdir whose manifest is not git-ml's.
    """
    ev = events or Events()
    hp.require_tensorboard()
    scope = _scope(repo, revs)  # a REV that is no commit fails before anything is made
    target = _open_logdir(Path(logdir) if logdir is not None else default_logdir(repo, revs))
    with lock_file(target / MANIFEST):
        result = _Refresh(repo, target, ev).run(scope, logdir is None if prune is None else prune)
    if events is None:
        ev.raise_problems()
    return result


class _Refresh:
    """One refresh of one logdir, under its lock."""

    def __init__(self, repo: Core, logdir: Path, ev: Events) -> None:
        self.repo = repo
        self.logdir = logdir
        self.ev = ev
        self.incomplete = 0  # problems, and hyperparameters that could not be read

    def problem(self, error: MlgitError) -> None:
        self.incomplete += 1
        self.ev.problem(error)

    def run(self, scope: tuple[set[str], list[str]], prune: bool) -> BoardResult:
        old = _load_manifest(self.logdir)
        commits, heads = scope
        state = _state(self.repo, heads)
        if _unchanged(self.logdir, old, state):
            return BoardResult(self.logdir, list(_listed(old.runs, "unchanged")))
        counted = _Counted(self.ev, self.problem)
        runs = _name_runs(_collect(self.repo, commits, counted), old, counted)
        _fetch_missing(self.repo, runs, counted)
        w = _Writer(self.repo, self.logdir, old)
        new = _Manifest(state, True, dict(old.authors), {})
        result = BoardResult(self.logdir)
        for path in sorted(runs):
            entry, status = self._run(w, path, runs[path], old.runs.get(path), counted)
            if entry is not None:
                new.runs[path] = entry
                result.runs.extend(_listed({path: entry}, status))
        for path, known in sorted(old.runs.items()):
            if path in new.runs:
                continue
            if prune:
                for rel in known["files"]:
                    w.remove(path, rel)
                result.runs.extend(_listed({path: known}, "removed"))
            else:
                new.runs[path] = known  # out of scope now: left as it is
        new.complete = self.incomplete == 0
        atomic_write(self.logdir / MANIFEST,
                     (json.dumps(new.to_json(), indent=1, sort_keys=True) + "\n").encode())
        result.files_written, result.bytes_written = w.files, w.bytes
        return result

    def _run(self, w: _Writer, path: str, run: _Run, known: dict[str, Any] | None,
             ev: Events) -> tuple[dict[str, Any] | None, str]:
        """Lay out one run; (its manifest entry, its status), or (None, "") if left out."""
        if known is None and os.path.lexists(self.logdir / path):
            ev.problem(BadPathError(f"{self.logdir / path} exists and git-ml did not make it; "
                                    f"run {run.run!r} of {run.author!r} left out"))
            return None, ""
        hparams = _config_hparams(self.repo, run)
        if hparams is None:
            self.incomplete += 1
        payload = _payload_files(self.repo, path, run, ev)
        files = {**_session_files(path, run, hparams or {}), **payload}
        try:
            entries, changed = _write_run(w, path, files, known)
        except BadPathError as e:
            ev.problem(e)
            return None, ""
        newest = run.newest()
        commit = newest[0] if newest else run.log[0] if run.log else None
        entry = {"author": run.author, "run": run.run, "files": entries,
                 "checkpoint": newest[1].id if newest else None,
                 "step": newest[1].step if newest else None, "commit": commit,
                 "log": run.log[1].object if run.log is not None and payload else None}
        if known is None:
            return entry, "added"
        moved = changed or any(entry[k] != known.get(k) for k in ("checkpoint", "step", "log"))
        return entry, "updated" if moved else "unchanged"


class _Counted(Events):
    """Passes everything on to ``inner``; problems go through ``problem`` (which counts them)."""

    def __init__(self, inner: Events, problem: Callable[[MlgitError], None]) -> None:
        self.inner = inner
        self._problem = problem

    def warn(self, message: str) -> None:
        self.inner.warn(message)

    def problem(self, error: MlgitError) -> None:
        self._problem(error)

    def start(self, label: str, files: int, nbytes: int) -> None:
        self.inner.start(label, files, nbytes)

    def advance(self, files: int, nbytes: int) -> None:
        self.inner.advance(files, nbytes)

    def finish(self) -> None:
        self.inner.finish()
