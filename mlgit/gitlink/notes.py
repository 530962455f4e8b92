"""Git notes under ``refs/notes/ml``: read a commit's records, append records (pygit2).

Appends from git-ml processes are serialized by a lock file in the store
directory, so concurrent ``commit-ckpt`` runs on one repository never lose a
line. Fetching, merging (``cat_sort_uniq``) and pushing notes with a git remote
are here too; :func:`note_roots` lists the objects the records name, the one
list fsck, gc, push and fetch all use.

Notes come from teammates: a note blob larger than ``MAX_NOTE_LEN`` is refused
(FormatError) from its header, before it is loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from mlgit.errors import FormatError, GitCommandError, MlgitError
from mlgit.format.limits import MAX_NOTE_LEN
from mlgit.format.names import is_ref_name
from mlgit.format.records import Record, decode_note
from mlgit.gitlink.repo import GitRepo
from mlgit.store.lock import lock_file

__all__ = ["NOTES_REF", "NoteRoot", "append_note_lines", "fetch_notes", "list_notes",
           "list_notes_at", "merge_notes", "note_records", "note_roots", "notes_commit",
           "notes_refs", "push_notes", "read_note", "read_note_blob"]

NOTES_REF = "refs/notes/ml"
_MAX_FANOUT = 20  # a 40-hex name split into 2-hex directories at most this deep


def _note_blob(repo: GitRepo, commit: str) -> Any:
    """The id of ``commit``'s note blob in the notes tree (any fan-out), or None.

    Found by name as git does (``ab/cdef...`` directories of two hex digits, or
    the whole name), without reading any blob.
    """
    import pygit2  # start-up time

    try:
        notes = repo.git.lookup_reference(NOTES_REF).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return None
    tree: Any = notes.tree
    rest = commit
    for _ in range(_MAX_FANOUT):
        try:
            if rest in tree:
                entry = tree[rest]
                if entry.type_str != "blob":
                    raise FormatError(f"note on {commit[:12]} is a {entry.type_str}, not a blob")
                return entry.id
            if len(rest) <= 2 or rest[:2] not in tree:
                return None
            sub = tree[rest[:2]]
            if sub.type_str != "tree":
                return None
            tree = repo.git[sub.id]
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise FormatError(f"notes tree {NOTES_REF} is damaged near {commit[:12]}: "
                              f"{e}") from None
        rest = rest[2:]
    return None


def read_note_blob(repo: GitRepo, blob: Any, commit: str) -> str:
    """The text of note blob ``blob`` (on ``commit``); FormatError past ``MAX_NOTE_LEN``.

    The size comes from the object's header, so an oversized note is never loaded.
    Bytes that are not UTF-8 become U+FFFD (a record line is ASCII anyway).
    """
    import pygit2  # start-up time

    try:
        oid = blob if isinstance(blob, pygit2.Oid) else pygit2.Oid(hex=str(blob))
        kind, size = repo.git.odb.read_header(oid)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise FormatError(f"note on {commit[:12]} cannot be read: {e}") from None
    if kind != pygit2.enums.ObjectType.BLOB:
        raise FormatError(f"note on {commit[:12]} is not a blob")
    if size > MAX_NOTE_LEN:
        raise FormatError(f"note on {commit[:12]} is {size} bytes, more than the "
                          f"{MAX_NOTE_LEN >> 20} MiB a note may hold; not read")
    return bytes(repo.git.odb.read(oid)[1]).decode("utf-8", "replace")


def read_note(repo: GitRepo, commit: str) -> str | None:
    """The text of ``commit``'s note (full hex id), or None.

    FormatError when the note is larger than ``MAX_NOTE_LEN`` (checked before
    it is loaded) or is not a blob.
    """
    blob = _note_blob(repo, commit)
    return None if blob is None else read_note_blob(repo, blob, commit)


def list_notes(repo: GitRepo) -> list[tuple[str, str]]:
    """Every (commit, note blob id) under ``refs/notes/ml`` (``git notes list``)."""
    try:
        listing = repo.run_git("notes", "--ref", NOTES_REF, "list").decode().split("\n")
    except GitCommandError:
        return []
    out = []
    for line in listing:
        parts = line.split()
        if len(parts) == 2:
            out.append((parts[1], parts[0]))
    return out


_HEX = frozenset("0123456789abcdef")


def list_notes_at(repo: GitRepo, notes: str) -> list[tuple[str, str]]:
    """Every (commit, note blob id) in the notes commit ``notes`` (a commit id, not a ref).

    Read from that commit's tree (``git ls-tree -r``), so what is listed is
    exactly that commit's notes, whatever the ref does meanwhile. A note's path
    is the annotated object's id, whole or split into 2-hex directories (any
    fan-out); entries that are not blobs at such a path are not notes and are
    left out, as git leaves them out.
    """
    out = []
    listing = repo.run_git("ls-tree", "-r", "-z", "--full-tree", notes).split(b"\0")
    for entry in listing:
        meta, tab, path = entry.partition(b"\t")
        parts = meta.split()
        if not tab or len(parts) != 3 or parts[1] != b"blob":
            continue
        name = path.decode("ascii", "replace").replace("/", "")
        if len(name) in (40, 64) and _HEX.issuperset(name):
            out.append((name, parts[2].decode("ascii")))
    return out


OnProblem = Callable[[MlgitError], None]

NoteRoot = tuple[str, str, str]
"""An object a note record names: (hex id, what names it, the walk role it must have)."""


def note_records(repo: GitRepo, on_problem: OnProblem | None = None
                 ) -> Iterator[tuple[str, Record]]:
    """Every valid record under ``refs/notes/ml``, as (commit, record).

    A note that cannot be read (larger than ``MAX_NOTE_LEN``, not a blob) and
    each malformed line go to ``on_problem`` (FormatError) and are skipped; the
    other records still count. Without ``on_problem`` they are skipped silently.
    """
    for commit, blob in list_notes(repo):
        where = f"note on {commit[:12]}"
        try:
            text = read_note_blob(repo, blob, commit)
        except FormatError as e:
            if on_problem is not None:
                on_problem(e)
            continue
        records, problems = decode_note(text, where)
        if on_problem is not None:
            for p in problems:
                on_problem(FormatError(p))
        for r in records:
            yield commit, r


def note_roots(repo: GitRepo, on_problem: OnProblem | None = None) -> list[NoteRoot]:
    """(hex id, label, walk role) of every object a note record names.

    Checkpoint ids and results datasets are snapshots (``"snapshot"``), payload
    objects trees (``"tree"``): what each typed record's ``roots()`` says. The
    one list of what notes keep alive and carry: fsck and gc walk it, push
    sends it, fetch brings it. Bad notes and lines are handled as in
    :func:`note_records`; they must never stop fsck, gc or a transfer.
    """
    return [(oid, f"{r.type} record, note on {commit[:12]}", role)
            for commit, r in note_records(repo, on_problem) for oid, role in r.roots()]


def notes_commit(repo: GitRepo, remote: str | None = None) -> str | None:
    """The commit ``refs/notes/ml`` points at (hex), or None when there are no notes.

    With ``remote``: the remote's notes as last fetched (:func:`fetch_notes`).
    """
    import pygit2  # start-up time

    ref = NOTES_REF if remote is None else _tracking_ref(remote)
    try:
        return str(repo.git.lookup_reference(ref).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        return None


_TRACKING_PREFIXES = ("refs/notes/remotes/", "refs/notes/remote-urls/")


def notes_refs(repo: GitRepo) -> list[tuple[str, str]]:
    """(ref, commit) of ``refs/notes/ml`` and of every remote's notes as last fetched.

    The tracking refs are those :func:`fetch_notes` writes
    (``refs/notes/remotes/<remote>/ml``, ``refs/notes/remote-urls/<hash>``):
    a fetch that has not been merged yet still counts. Sorted by ref; a ref
    that does not peel to a commit is left out.
    """
    import pygit2  # start-up time

    out = []
    for ref in repo.git.references.iterator():
        name = ref.name
        ours = name == NOTES_REF or name.startswith(_TRACKING_PREFIXES[1]) or (
            name.startswith(_TRACKING_PREFIXES[0]) and name.endswith("/ml"))
        if not ours:
            continue
        try:
            out.append((name, str(ref.peel(pygit2.Commit).id)))
        except (KeyError, ValueError, pygit2.GitError):  # dangling, or not a commit
            continue
    return sorted(out)


def _signature(repo: GitRepo) -> Any:
    import pygit2  # start-up time

    try:
        return repo.git.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature("git-ml", "git-ml@localhost")


def append_note_lines(repo: GitRepo, commit: str, lines: list[str]) -> None:
    """Append lines to ``commit``'s note, creating it if needed."""
    if not lines:
        return
    import pygit2  # start-up time

    with lock_file(repo.ml_dir / "notes"):
        current = read_note(repo, commit) or ""
        if current and not current.endswith("\n"):
            current += "\n"
        text = current + "".join(line + "\n" for line in lines)
        sig = _signature(repo)
        try:
            repo.git.create_note(text, sig, sig, commit, NOTES_REF, True)
        except (KeyError, ValueError, OSError, pygit2.GitError) as e:  # pygit2's error kinds
            raise GitCommandError(f"cannot write the note on {commit[:12]}: {e}") from None


def _tracking_ref(remote: str) -> str:
    """Where the notes of ``remote`` (a git remote's name, or a URL git can push to) go.

    A name that is one ref component keeps its readable ref; a URL (or a remote
    name with ``/``) is named by its hash, so no two remotes' refs can clash.
    """
    if is_ref_name(remote):
        return f"refs/notes/remotes/{remote}/ml"
    return f"refs/notes/remote-urls/{hashlib.sha256(remote.encode()).hexdigest()[:32]}"


def fetch_notes(repo: GitRepo, remote: str) -> bool:
    """Fetch the remote's ``refs/notes/ml`` into a tracking ref; False if it has none."""
    try:
        repo.run_git("fetch", "-q", "--no-write-fetch-head", remote,
                     f"+{NOTES_REF}:{_tracking_ref(remote)}")
    except GitCommandError as e:
        if "couldn't find remote ref" in e.stderr.lower():
            return False
        raise
    return True


def merge_notes(repo: GitRepo, remote: str) -> None:
    """Merge the fetched notes into ours with ``cat_sort_uniq``: both sides' lines survive."""
    with lock_file(repo.ml_dir / "notes"):
        try:
            repo.run_git("rev-parse", "-q", "--verify", NOTES_REF)
            have_local = True
        except GitCommandError:
            have_local = False
        if not have_local:
            repo.run_git("update-ref", NOTES_REF, _tracking_ref(remote))
            return
        repo.run_git("notes", "--ref", NOTES_REF, "merge", "-q", "-s", "cat_sort_uniq",
                     _tracking_ref(remote))


def push_notes(repo: GitRepo, remote: str, tries: int = 3, merged: bool = False) -> bool:
    """Fetch, merge and push ``refs/notes/ml``; False when there are no local notes.

    ``merged``: the remote's notes were just fetched and merged, so the first
    attempt pushes at once. A push that loses a race (someone pushed notes
    meanwhile) fetches, merges and tries again. ``--no-verify`` keeps git's
    pre-push hook from running again: this is called from that hook.
    """
    try:
        repo.run_git("rev-parse", "-q", "--verify", NOTES_REF)
    except GitCommandError:
        if not merged and fetch_notes(repo, remote):
            merge_notes(repo, remote)
        return False
    for attempt in range(tries):
        if (attempt or not merged) and fetch_notes(repo, remote):
            merge_notes(repo, remote)
        try:
            repo.run_git("push", "-q", "--no-verify", remote, f"{NOTES_REF}:{NOTES_REF}")
            return True
        except GitCommandError:
            if attempt == tries - 1:
                raise
    return True
