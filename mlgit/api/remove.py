"""``git ml rm PATH``: stop tracking a dataset, as ``git rm`` stops tracking a file.

For each path (the data path or its pointer file), in this order:

1. the pointer file leaves git's index and the work tree (``git rm``, so git's own
   safety rules apply: a pointer whose staged version is not committed, or whose
   file differs from the index, is refused unless ``force``);
2. the data leaves the work tree, but only if it holds nothing unsaved: it must be
   exactly the snapshot its pointer pins (or be absent); ``force`` deletes it
   anyway, ``cached`` keeps it (as ``git rm --cached`` keeps the file: the data
   stays as ordinary untracked files);
3. its line leaves the ``.gitignore`` beside it (a .gitignore left empty is
   deleted) and the change is staged;
4. the dataset's local ref (``refs/datasets/<name>``) goes, unless another pointer
   in the work tree still names that dataset (an imported pointer names its
   source's dataset, no ref here: its removal leaves every ref alone).

Nothing leaves the store: the snapshots stay until ``git ml gc`` finds nothing
reaching them (commits that still pin them keep them). Every check, for every
path, runs before anything changes, so a refused ``rm`` changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgit.api.events import Events
from mlgit.errors import BadPathError, ConflictError, GitCommandError, UsageError
from mlgit.format.ids import ObjectID, hex_to_raw, raw_to_hex
from mlgit.format.pointer import POINTER_SUFFIX, Pointer
from mlgit.gitlink import index as gitindex
from mlgit.gitlink.pointers import load_pointers, tracked_path_for
from mlgit.snapshot import statcache
from mlgit.snapshot.build import build_tree
from mlgit.store.fsutil import force_remove

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["RemoveResult", "remove"]


@dataclass
class RemoveResult:
    """What ``rm`` did for one path."""

    path: str
    pointer: str
    name: str
    id: ObjectID
    data_removed: bool
    ref_removed: bool
    gitignore: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``git ml rm --json`` prints it."""
        return {"path": self.path, "pointer": self.pointer, "name": self.name, "id": self.id,
                "data_removed": self.data_removed, "ref_removed": self.ref_removed,
                "gitignore": self.gitignore}


def _literal(rel: str) -> str:
    return f":(literal){rel}"


def _plan(repo: Core, paths: list[str | os.PathLike[str]]) -> list[tuple[str, str, Pointer]]:
    """(data path, pointer path, pointer) for each path named; BadPathError for the others."""
    good, problems = load_pointers(repo.git)
    by_data = {tracked_path_for(pr): (pr, p) for pr, p in good}
    refused = {pr.removesuffix(POINTER_SUFFIX): err for pr, err in problems}
    out: dict[str, tuple[str, str, Pointer]] = {}
    for path in paths:
        rel = repo.git.relpath(Path(path)).removesuffix(POINTER_SUFFIX)
        if rel in refused:
            raise refused[rel]
        if rel not in by_data:
            raise BadPathError(f"{rel or path}: not tracked by git-ml (there is no "
                               f"{rel or path}{POINTER_SUFFIX} in the work tree)")
        out[rel] = (rel, *by_data[rel])
    return sorted(out.values())


def _check_saved(repo: Core, rel: str, p: Pointer, ev: Events) -> None:
    """BadPathError unless the data at ``rel`` is absent or exactly the snapshot ``p`` pins."""
    store = repo.store
    full = repo.git.require_workdir() / rel
    if not os.path.lexists(full):
        return
    if full.is_symlink() or not (full.is_dir() or full.is_file()):
        raise BadPathError(f"{rel} is not the data git-ml checked out (a symlink or a special "
                           "file); remove it yourself, or use --force (or --cached to keep it)")
    if not store.objects.has_committed(hex_to_raw(p.id)):
        raise BadPathError(f"{rel}: its version {p.id[:12]} is not in the local store, so "
                           "git-ml cannot tell whether the files hold unsaved changes; "
                           "`git ml fetch` it first, or use --force (or --cached to keep them)")
    cpath = statcache.cache_path(store.cache_dir, full)
    old = statcache.load(cpath)
    if old.snapshot != p.id:
        old = statcache.StatCache()
    built = build_tree(store, os.fsencode(full), is_file=full.is_file(), old=old, dry=True,
                       warn=ev.warn)
    if raw_to_hex(built.root) != repo.snapshot(p.id).tree:
        raise BadPathError(f"{rel} has changes not saved in the store (it differs from "
                           f"{p.name} {p.id[:12]}); `git ml add {rel}` first, use --cached to "
                           "keep the files, or --force to delete them")


def _git_rm(repo: Core, pointers: list[str], force: bool, cached: bool, dry: bool) -> None:
    """``git rm`` the pointer files (``dry``: only git's checks); git's refusal as BadPathError.

    With ``cached``, ``git rm --cached`` (whose check is lighter: the index must match
    the commit or the file); the caller then deletes the files.
    """
    if not pointers:
        return
    args = ["rm", "-q", *(["-n"] if dry else []), *(["-f"] if force else []),
            *(["--cached"] if cached else []), "--"]
    try:
        repo.git.run_git(*args, *(_literal(p) for p in pointers))
    except GitCommandError as e:
        if "staged in the index" in e.stderr:
            why = ("has a version staged that is not committed (removing it could lose "
                   "that version); commit it first, or use --force")
        elif "local modifications" in e.stderr:
            why = ("differs from what git's index holds; `git add` or restore it first, or "
                   "use --force")
        else:
            raise
        listed = [p for p in pointers if p in e.stderr] or pointers
        raise BadPathError(f"{', '.join(listed)} {why}") from None


def remove(repo: Core, paths: list[str | os.PathLike[str]], *, force: bool = False,
           cached: bool = False, events: Events | None = None) -> list[RemoveResult]:
    """Stop tracking the datasets at ``paths``; see the module docstring.

    ``force`` skips the checks that protect unsaved data (git's and git-ml's);
    ``cached`` keeps the data in the work tree. Returns what was done per path.
    """
    ev = events or Events()
    if not paths:
        raise UsageError("name the datasets to remove (their data paths or pointer files)")
    store = repo.store  # NotInitializedError before anything else
    git = repo.git
    work = git.require_workdir()
    plan = _plan(repo, paths)
    indexed = set(gitindex.tracked_files_at(git, [pr for _, pr, _ in plan]))
    for rel, _, p in plan:
        gitindex.check_ignorable(git, rel)
        if not force and not cached:
            _check_saved(repo, rel, p, ev)
    in_index = [pr for _, pr, _ in plan if pr in indexed]
    _git_rm(repo, in_index, force, cached, dry=True)

    # Everything is checked: act.
    _git_rm(repo, in_index, force, cached, dry=False)
    results: list[RemoveResult] = []
    ignores: list[str] = []
    for rel, pr, p in plan:
        if cached or pr not in indexed:
            (work / pr).unlink(missing_ok=True)  # (git rm removed the others)
        full = work / rel
        removed = False
        if not cached and os.path.lexists(full):
            force_remove(full)
            if os.path.lexists(full):
                raise BadPathError(f"{rel} could not be removed completely (permissions?); "
                                   "the pointer is already gone: delete the rest yourself")
            removed = True
        statcache.cache_path(store.cache_dir, full).unlink(missing_ok=True)
        ignore = gitindex.remove_ignored(git, rel)
        if ignore is not None:
            ignores.append(ignore)
        results.append(RemoveResult(rel, pr, p.name, p.id, removed, False, ignore))
    if ignores:
        gitindex.stage_paths(git, sorted(set(ignores)))

    _drop_refs(repo, results, {pr for _, pr, p in plan if p.source is not None}, ev)
    return results


def _drop_refs(repo: Core, results: list[RemoveResult], imported: set[str],
               ev: Events) -> None:
    """Delete the ref of each dataset removed that no pointer names any more.

    The results of that name get ``ref_removed``; a ref moved meanwhile is kept, with
    a warning. An imported pointer (``imported``: their paths) names a dataset of
    its source, never a ref here: removing it leaves the refs alone.
    """
    store = repo.store
    still_named = {p.name for pr, p in load_pointers(repo.git)[0] if p.source is None}
    for r in results:
        if r.name in still_named or r.pointer in imported:
            continue
        current = store.refs.get("datasets", r.name)
        if current is None:
            continue
        try:
            store.refs.delete("datasets", r.name, current)
        except ConflictError as e:
            ev.warn(f"ref datasets/{r.name} kept: {e}")
            continue
        for same in results:
            if same.name == r.name:
                same.ref_removed = True
