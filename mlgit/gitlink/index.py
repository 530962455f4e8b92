"""The git index: is a path tracked, which pointer files does git know, stage files.

Queries and staging run the real git: ``git ls-files`` answers in a few
milliseconds, and ``git add`` takes git's own ``index.lock`` for its whole
read-modify-write, so concurrent git-ml processes (and git itself) never lose
each other's staging. Staging is skipped when the index already holds the file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mlgit.errors import BadPathError, FormatError, GitCommandError
from mlgit.format.ids import digest_hex
from mlgit.format.limits import MAX_GITIGNORE_LEN
from mlgit.format.pointer import POINTER_SUFFIX
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import atomic_write, read_bounded
from mlgit.store.lock import lock_file

__all__ = ["check_ignorable", "ensure_ignored", "ignored_by", "index_entries", "indexed_pointers",
           "remove_ignored", "stage", "stage_paths", "staged", "tracked_files_at", "tracked_under"]

_INDEX_LOCK_WAIT = 30.0
_PATHSPEC_BATCH = 256 << 10
"""Bytes of pathspecs per ``git ls-files`` call (far below the kernel's argument limit)."""


def _split(out: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


def tracked_under(repo: GitRepo, rel: str) -> list[str]:
    """Index entries at ``rel`` or below it."""
    return _split(repo.run_git("ls-files", "-z", "--", f":(literal){rel}"))


def tracked_files_at(repo: GitRepo, rels: list[str]) -> list[str]:
    """Index entries at or below any of ``rels``: one ``git ls-files`` for them all.

    (Several calls only when the paths would not fit on one command line.)
    """
    out: list[str] = []
    batch: list[str] = []
    size = 0
    for rel in rels:
        batch.append(f":(literal){rel}")
        size += len(batch[-1]) + 1
        if size > _PATHSPEC_BATCH:
            out += _split(repo.run_git("ls-files", "-z", "--", *batch))
            batch, size = [], 0
    if batch:
        out += _split(repo.run_git("ls-files", "-z", "--", *batch))
    return out


def indexed_pointers(repo: GitRepo) -> list[str]:
    """Every pointer file (``*.mlgit``) in the git index."""
    return [p for p in _split(repo.run_git("ls-files", "-z", "--", f":(glob)**/*{POINTER_SUFFIX}"))
            if p.endswith(POINTER_SUFFIX)]


def _blob_id(data: bytes, hex_len: int) -> str:
    import hashlib  # start-up time (OpenSSL): only when staging is checked

    h = hashlib.sha256() if hex_len == 64 else hashlib.sha1()  # git object id, not security
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def stage(repo: GitRepo, rels: list[str]) -> None:
    """``git add`` these work-tree paths, unless the index already holds their content.

    A path git left unmerged (a conflict) is always added: that resolves it.
    """
    todo = _unstaged(repo, rels)
    if not todo:
        return
    deadline = time.monotonic() + _INDEX_LOCK_WAIT
    while True:
        try:
            repo.run_git("add", "-f", "--", *(f":(literal){r}" for r in todo))
            return
        except GitCommandError as e:
            if "index.lock" not in e.stderr or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def staged(repo: GitRepo, rels: list[str],
           entries: dict[str, tuple[str, bool]] | None = None) -> bool:
    """Whether the index holds each of these work-tree files as it is (:func:`stage` would not).

    One ``git ls-files`` (none with ``entries``, from :func:`index_entries` with
    these paths); the files are read and hashed as git would.
    """
    return not _unstaged(repo, rels, entries)


def index_entries(repo: GitRepo, pathspecs: list[str]) -> dict[str, tuple[str, bool]]:
    """Index entries matching any of ``pathspecs`` (git's, magic allowed): path -> (id, unmerged).

    One ``git ls-files -s``; ``unmerged`` when the path has a conflict stage.
    What :func:`tracked_under`, :func:`indexed_pointers` and :func:`staged`
    ask, for callers that ask them all at once.
    """
    out: dict[str, tuple[str, bool]] = {}
    for line in repo.run_git("ls-files", "-s", "-z", "--", *pathspecs).split(b"\0"):
        if line:
            meta, _, path = line.partition(b"\t")
            fields = meta.split()
            name = path.decode("utf-8", "surrogateescape")
            unmerged = fields[2:3] != [b"0"] or out.get(name, ("", False))[1]
            out[name] = (fields[1].decode(), unmerged)
    return out


def _unstaged(repo: GitRepo, rels: list[str],
              entries: dict[str, tuple[str, bool]] | None = None) -> list[str]:
    """Those of ``rels`` that are not in the index as the work tree has them, or are unmerged."""
    work = repo.require_workdir()
    if entries is None:
        entries = index_entries(repo, [f":(literal){r}" for r in rels])
    return [r for r in rels
            if r not in entries or entries[r][1]
            or _blob_id((work / r).read_bytes(), len(entries[r][0])) != entries[r][0]]


def ignored_by(repo: GitRepo, rel: str) -> str | None:
    """The .gitignore already holding ``rel``'s line, else None (the first would be left alone).

    :func:`ensure_ignored` would leave that file alone; BadPathError as it raises.
    """
    _, ignore_rel, line, text = _ignore_line(repo, rel)
    return ignore_rel if line in text.splitlines() else None


def _ignore_line(repo: GitRepo, rel: str) -> tuple[Path, str, str, str]:
    """(.gitignore path, its path in the work tree, the line for ``rel``, its current text).

    BadPathError if ``rel``'s name cannot be written as a literal pattern, or if the
    .gitignore is not a regular file of at most ``MAX_GITIGNORE_LEN`` bytes (it is
    read without following a link).
    """
    work = repo.require_workdir()
    parent, _, name = rel.rstrip("/").rpartition("/")
    if any(c in name for c in "*?[]!#\\\n") or name.startswith(" ") or name.endswith(" "):
        raise BadPathError(f"{rel!r} has characters a .gitignore pattern cannot hold literally")
    ignore_rel = f"{parent}/.gitignore" if parent else ".gitignore"
    path = work / ignore_rel
    return path, ignore_rel, f"/{name}", _read(path, ignore_rel)


def check_ignorable(repo: GitRepo, rel: str) -> None:
    """Raise BadPathError now if :func:`ensure_ignored` would refuse ``rel`` later."""
    _ignore_line(repo, rel)


def ensure_ignored(repo: GitRepo, rel: str) -> str:
    """Add ``/<name>`` to the ``.gitignore`` beside ``rel``; return that .gitignore's path.

    Leaves the file alone when the line is already there. The .gitignore is read
    without following a link and only if it is a regular file of at most
    ``MAX_GITIGNORE_LEN`` bytes (else BadPathError).
    """
    path, ignore_rel, line, text = _ignore_line(repo, rel)
    if line in text.splitlines():
        return ignore_rel
    # Read-modify-write: another git-ml may be adding a line too. The lock lives in the
    # store, not beside the .gitignore, so the work tree stays clean.
    key = digest_hex(os.fsencode(str(path)))
    with lock_file(repo.ml_dir / "tmp" / f"gitignore-{key}"):
        text = _read(path, ignore_rel)
        if line not in text.splitlines():
            sep = "" if not text or text.endswith("\n") else "\n"
            atomic_write(path, (text + sep + line + "\n").encode("utf-8", "surrogateescape"))
    return ignore_rel


def remove_ignored(repo: GitRepo, rel: str) -> str | None:
    """Take out the line :func:`ensure_ignored` added for ``rel``; its .gitignore if it changed.

    Returns the .gitignore's path when the line was there, else None. A .gitignore
    left with nothing but blank lines is deleted. The same bounds as
    :func:`ensure_ignored` apply (BadPathError); the caller stages the change.
    """
    path, ignore_rel, line, text = _ignore_line(repo, rel)
    if line not in text.splitlines():
        return None
    key = digest_hex(os.fsencode(str(path)))
    with lock_file(repo.ml_dir / "tmp" / f"gitignore-{key}"):
        text = _read(path, ignore_rel)
        lines = text.splitlines(keepends=True)
        kept = [ln for ln in lines if ln.rstrip("\r\n") != line]
        if len(kept) == len(lines):
            return None
        if any(ln.strip() for ln in kept):
            atomic_write(path, "".join(kept).encode("utf-8", "surrogateescape"))
        else:
            os.unlink(path)
    return ignore_rel


def stage_paths(repo: GitRepo, rels: list[str]) -> None:
    """Record these paths in the index as the work tree has them, removals included.

    (``git add -A``; a path neither in the index nor in the work tree is left out.)
    """
    work = repo.require_workdir()
    known = set(tracked_files_at(repo, rels))
    todo = [r for r in rels if r in known or os.path.lexists(work / r)]
    if todo:
        repo.run_git("add", "-A", "-f", "--", *(f":(literal){r}" for r in todo))


def _read(path: Path, rel: str) -> str:
    """A .gitignore's text ("" if absent); BadPathError if it is not a small regular file."""
    try:
        data = read_bounded(path, MAX_GITIGNORE_LEN, what=repr(rel[:300]))
    except FileNotFoundError:
        return ""
    except FormatError as e:
        raise BadPathError(f"{e}; git-ml will not add a line to it") from None
    return data.decode("utf-8", "surrogateescape")
