"""Commits: resolve revisions, HEAD and its cleanliness, pointer files in a commit's tree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlgit.errors import PointerError, RevisionError
from mlgit.format.ids import digest_bytes
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, decode_pointer
from mlgit.gitlink.repo import GitRepo

__all__ = ["CommitInfo", "CodeState", "code_state", "commit_info", "head_commit",
           "pointers_in_tree", "resolve_commit", "walk_commits"]


@dataclass(frozen=True)
class CommitInfo:
    """A commit as ``git ml log`` shows it."""

    id: str
    parents: tuple[str, ...]
    author: str
    time: int
    tz: int
    summary: str
    tree: str


@dataclass(frozen=True)
class CodeState:
    """The code a checkpoint was trained with.

    HEAD's commit and branch, whether tracked files differed from HEAD, and then
    an XXH3-128 digest of ``git diff --binary HEAD``.
    """

    commit: str | None
    branch: str | None
    dirty: bool
    diff_digest: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as stored in checkpoint metadata."""
        return {"commit": self.commit, "branch": self.branch, "dirty": self.dirty,
                "diff": self.diff_digest}


def head_commit(repo: GitRepo) -> str | None:
    """HEAD's commit id, or None in a repository with no commits yet."""
    try:
        out = repo.run_git("rev-parse", "--verify", "-q", "HEAD^{commit}")
    except Exception:
        return None
    return out.decode().strip() or None


def resolve_commit(repo: GitRepo, rev: str) -> str:
    """A commit id for a git revision; RevisionError if it names no commit."""
    try:
        obj = repo.git.revparse_single(rev)
        commit = obj.peel(_commit_type())
    except (KeyError, ValueError, Exception):
        raise RevisionError(f"{rev!r} is not a commit in this repository") from None
    return str(commit.id)


def _commit_type() -> Any:
    import pygit2

    return pygit2.Commit


def commit_info(repo: GitRepo, commit: str) -> CommitInfo:
    """Read one commit."""
    c = repo.git[commit]
    a = c.author
    return CommitInfo(str(c.id), tuple(str(p) for p in c.parent_ids), f"{a.name} <{a.email}>",
                      int(a.time), int(a.offset), c.message.splitlines()[0] if c.message else "",
                      str(c.tree_id))


def walk_commits(repo: GitRepo, include: list[str], exclude: list[str],
                 limit: int | None = None) -> Iterator[CommitInfo]:
    """Commits reachable from ``include`` but not ``exclude``, newest first (as ``git log``)."""
    import pygit2

    walker = repo.git.walk(None, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
    for c in include:
        walker.push(c)
    for c in exclude:
        walker.hide(c)
    for n, c in enumerate(walker):
        if limit is not None and n >= limit:
            return
        yield commit_info(repo, str(c.id))


def pointers_in_tree(repo: GitRepo, tree_id: str,
                     cache: dict[str, list[tuple[str, Pointer]]] | None = None,
                     prefix: str = "") -> list[tuple[str, Pointer]]:
    """Every valid pointer file in a git tree as (path, pointer); bad pointers are skipped.

    ``cache`` maps subtree ids to results, so walking many commits that share
    subtrees reads each subtree once.
    """
    cache = {} if cache is None else cache
    key = tree_id + "\0" + prefix
    hit = cache.get(key)
    if hit is not None:
        return hit
    out: list[tuple[str, Pointer]] = []
    tree = repo.git[tree_id]
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.type_str == "tree":
            out.extend(pointers_in_tree(repo, str(entry.id), cache, path + "/"))
        elif entry.type_str == "blob" and entry.name.endswith(POINTER_SUFFIX):
            blob = repo.git[entry.id]
            if blob.size > 4096:
                continue
            try:
                out.append((path, decode_pointer(blob.data, path)))
            except PointerError:
                continue
    cache[key] = out
    return out


def code_state(repo: GitRepo) -> CodeState:
    """HEAD, branch, and whether tracked files differ from HEAD (with a digest of the diff)."""
    head = head_commit(repo)
    try:
        branch = repo.run_git("symbolic-ref", "-q", "--short", "HEAD").decode().strip() or None
    except Exception:
        branch = None
    if head is None:
        return CodeState(None, branch, False, None)
    diff = repo.run_git("diff", "--binary", "HEAD", "--")
    if not diff:
        return CodeState(head, branch, False, None)
    return CodeState(head, branch, True, digest_bytes(diff).hex())
