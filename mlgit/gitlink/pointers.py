"""Pointer files in the work tree and in the git index, and which of them are safe to use.

A pointer file's path comes from a commit (a teammate's, or a remote's), so it
is hostile input: its tracked path (the pointer's path without ``.mlgit``) is
where git-ml will write data. Before anything touches the disk,
:func:`load_pointers` refuses, pointer by pointer, every one that:

- breaks git's own rules for tracked paths (``check_tracked_path``: ``.mlgit``
  itself, whose data path is the work tree's root; any ``.git`` component in any
  of the spellings git refuses; ``.``/``..``; empty components);
- overlaps another pointer: both are refused when one data path lies inside the
  other; a pointer whose data path is another pointer's file is refused (the
  other is not);
- has its data path at or above a file git itself tracks (``README.md.mlgit``
  would replace ``README.md``), or at, above or inside the git directory;
- lies below a symlinked directory of the work tree (materializing there would
  write outside it);
- is not a regular file (a symlink, FIFO, directory or device), is larger than
  ``MAX_POINTER_LEN``, or does not parse.

Refused pointers are returned as problems beside the good ones, so the caller
can report each and go on with the rest.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from mlgit.errors import AmbiguousRevisionError, FormatError, PointerError
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_POINTER_LEN
from mlgit.format.paths import check_tracked_path
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, decode_pointer, encode_pointer
from mlgit.gitlink.index import indexed_pointers, tracked_files_at
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import atomic_write, read_bounded

__all__ = ["PointerProblem", "check_pointer_path", "imported_version", "list_pointers",
           "load_pointers", "pointer_path_for", "read_pointer", "tracked_path_for",
           "write_pointer"]

PointerProblem = tuple[str, PointerError]
"""A refused pointer file: its path (relative to the work tree) and why."""


def pointer_path_for(rel: str) -> str:
    """The pointer file's path for a tracked path (both relative to the work tree)."""
    return rel.rstrip("/") + POINTER_SUFFIX


def tracked_path_for(pointer_rel: str) -> str:
    """The tracked data path for a pointer file's path."""
    return pointer_rel[: -len(POINTER_SUFFIX)]


def _refuse(pointer_rel: str, why: str) -> PointerError:
    """The error for a pointer git-ml will not use (one line: the path is quoted)."""
    return PointerError(f"pointer file {pointer_rel[:300]!r}: {why}; git-ml leaves it alone "
                        "(remove it with `git rm --cached`, or fix it)")


def check_pointer_path(pointer_rel: str) -> str:
    """The tracked path of pointer file ``pointer_rel`` if git's path rules allow it.

    Raises PointerError (naming the pointer file) when the data path would be
    the work tree's root, reach a git directory, hold ``.``/``..`` or an empty
    component, or be too long. Pure: touches nothing on disk.
    """
    if not pointer_rel.endswith(POINTER_SUFFIX):
        raise _refuse(pointer_rel, f"its name does not end in {POINTER_SUFFIX}")
    rel = tracked_path_for(pointer_rel)
    try:
        check_tracked_path(rel, where="its data path")
    except FormatError as e:
        raise _refuse(pointer_rel, str(e)) from None
    return rel


def _parents_are_dirs(work: Path, rel: str, seen: dict[str, bool] | None = None) -> bool:
    """False if a directory above ``rel`` inside the work tree is a symlink (lstat only).

    A missing component (or one that is not a directory) ends the check: nothing
    below it exists to be followed. ``seen`` caches answers by parent path.
    """
    seen = {} if seen is None else seen
    parts = rel.split("/")[:-1]
    for n in range(1, len(parts) + 1):
        sub = "/".join(parts[:n])
        verdict = seen.get(sub)
        if verdict is None:
            try:
                mode = os.lstat(work / sub).st_mode
            except OSError:
                mode = 0
            verdict = not stat.S_ISLNK(mode)
            seen[sub] = verdict
            if not stat.S_ISDIR(mode):
                return verdict
        if not verdict:
            return False
    return True


def _read_checked(work: Path, pointer_rel: str) -> Pointer | None:
    """Read and decode a pointer whose path was checked; None if it does not exist."""
    try:
        data = read_bounded(work / pointer_rel, MAX_POINTER_LEN,
                            what=f"pointer file {pointer_rel[:300]!r}", error=PointerError)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ENOENT):
            return None
        raise
    return decode_pointer(data, pointer_rel)


def read_pointer(repo: GitRepo, pointer_rel: str) -> Pointer | None:
    """The pointer at ``pointer_rel`` in the work tree; None if absent, PointerError if bad.

    The path is checked first (:func:`check_pointer_path`, no symlinked parent
    directory), then the file is read without following a link and only if it
    is a regular file of at most ``MAX_POINTER_LEN`` bytes.
    """
    work = repo.require_workdir()
    check_pointer_path(pointer_rel)
    if not _parents_are_dirs(work, pointer_rel):
        raise _refuse(pointer_rel, "a directory above it is a symbolic link")
    return _read_checked(work, pointer_rel)


def write_pointer(repo: GitRepo, pointer_rel: str, p: Pointer) -> None:
    """Write a pointer file atomically (nothing is written when it already says this)."""
    path = repo.require_workdir() / pointer_rel
    data = encode_pointer(p)
    try:
        if read_bounded(path, MAX_POINTER_LEN, error=PointerError) == data:
            return
    except (OSError, FormatError):
        pass
    atomic_write(path, data)


def list_pointers(repo: GitRepo, indexed: list[str] | None = None) -> list[str]:
    """Pointer files git knows (in the index) plus any in the work tree's top level.

    Sorted, relative to the work tree; nothing is followed or read (a top-level
    entry counts unless it is a real directory), and nothing is checked: see
    :func:`load_pointers`. An index entry may be absent from the work tree.
    ``indexed``: the index's pointer files when the caller has them already.
    """
    found = set(indexed_pointers(repo) if indexed is None else indexed)
    with os.scandir(repo.require_workdir()) as it:
        for e in it:
            if e.name.endswith(POINTER_SUFFIX) and not e.is_dir(follow_symlinks=False):
                found.add(e.name)
    return sorted(found)


def _overlaps(paths: dict[str, str], guarded: list[str]) -> dict[str, str]:
    """Pointers (pointer path -> data path) whose paths collide, with why.

    Refused: both pointers when one data path lies inside the other (they would
    fight over the same files); a pointer whose data path is another pointer's
    file (it would replace it; the other is fine); a data path at, above or
    inside one of ``guarded`` (git directories).
    """
    owner = {rel: ptr for ptr, rel in paths.items()}
    bad: dict[str, str] = {}
    for ptr, rel in paths.items():
        parts = rel.split("/")
        for n in range(1, len(parts)):
            o = owner.get("/".join(parts[:n]))
            if o is not None:
                bad.setdefault(ptr, f"it lies inside the data path of {o[:300]!r}")
                bad.setdefault(o, f"its data path holds the pointer file {ptr[:300]!r}")
        o = owner.get(ptr)
        if o is not None:
            bad.setdefault(o, f"its data path is the pointer file {ptr[:300]!r}")
        for g in guarded:
            if g == rel or g.startswith(rel + "/") or rel.startswith(g + "/"):
                bad.setdefault(ptr, "its data path overlaps the git directory")
    return bad


def _guarded(repo: GitRepo, work: Path) -> list[str]:
    """The git directories inside the work tree, relative to it (``.git``, or others)."""
    out = []
    for d in {repo.git_dir, repo.own_git_dir}:
        try:
            out.append(d.resolve().relative_to(work.resolve()).as_posix())
        except ValueError:
            continue
    return [g for g in out if g not in ("", ".")]


def load_pointers(repo: GitRepo, rels: list[str] | None = None
                  ) -> tuple[list[tuple[str, Pointer]], list[PointerProblem]]:
    """The usable pointer files of the work tree, and the refused ones with why.

    ``rels`` defaults to :func:`list_pointers`. Every check of the module
    docstring runs before any pointer is read; the only disk access before that
    is one ``lstat`` per parent directory and one ``git ls-files`` for all
    pointers. A pointer listed in the index but absent from the work tree is
    not in the good list (and is a problem only if its path is refused). Both
    lists are sorted by pointer path.
    """
    work = repo.require_workdir()
    problems: list[PointerProblem] = []
    paths: dict[str, str] = {}
    for ptr in sorted(set(list_pointers(repo) if rels is None else rels)):
        try:
            paths[ptr] = check_pointer_path(ptr)
        except PointerError as e:
            problems.append((ptr, e))
    refused = _overlaps(paths, _guarded(repo, work))
    candidates = {rel: ptr for ptr, rel in paths.items() if ptr not in refused}
    for tracked in tracked_files_at(repo, sorted(candidates)):
        parts = tracked.split("/")
        for n in range(len(parts), 0, -1):
            owner = candidates.get("/".join(parts[:n]))
            if owner is not None:
                refused.setdefault(owner, f"its data path would replace {tracked[:300]!r}, "
                                          "which git tracks")
    seen: dict[str, bool] = {}
    good: list[tuple[str, Pointer]] = []
    for ptr, rel in paths.items():
        why = refused.get(ptr)
        if why is None and not _parents_are_dirs(work, rel, seen):
            why = ("a directory above it is a symbolic link (data there would be written "
                   "outside the work tree)")
        if why is not None:
            problems.append((ptr, _refuse(ptr, why)))
            continue
        try:
            p = _read_checked(work, ptr)
        except PointerError as e:
            problems.append((ptr, e))
            continue
        if p is not None:
            good.append((ptr, p))
    problems.sort(key=lambda pe: pe[0])
    return good, problems


def imported_version(repo: GitRepo, name: str) -> ObjectID | None:
    """The version the work tree's imported data called ``name`` is pinned at, or None.

    What a revision ``NAME`` means when no local ref has that name
    (:func:`mlgit.store.revision.resolve_name`): ``mlgit.checkout("mnist")`` reads
    the imported ``mnist`` the project pins. AmbiguousRevisionError when imports
    of that name pin different versions. None in a bare repository; bad pointers
    are left out (the commands that list pointers report them).
    """
    if repo.workdir is None:
        return None
    found = {pr: p.id for pr, p in load_pointers(repo)[0]
             if p.source is not None and p.name == name}
    if len(set(found.values())) > 1:
        where = ", ".join(f"{tracked_path_for(pr)} ({oid[:12]})"
                          for pr, oid in sorted(found.items()))
        raise AmbiguousRevisionError(f"{name!r} is imported at several versions: {where}; "
                                     "use an id")
    return next(iter(found.values()), None)
