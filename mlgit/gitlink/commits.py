"""Commits: resolve revisions, HEAD and its cleanliness, pointer files in a commit's tree."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlgit.errors import GitCommandError, PointerError, RevisionError
from mlgit.format.ids import digest_hex
from mlgit.format.limits import MAX_PATH_LEN, MAX_POINTER_LEN
from mlgit.format.pointer import POINTER_SUFFIX, Pointer, decode_pointer
from mlgit.gitlink.pointers import check_pointer_path
from mlgit.gitlink.repo import GitRepo

__all__ = ["CommitInfo", "CodeState", "branch_tips", "code_state", "commit_info", "head_commit",
           "pointers_in_tree", "reachable_commits", "resolve_commit", "resolve_range",
           "walk_commits"]


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
    except (GitCommandError, OSError):
        return None
    return out.decode().strip() or None


def resolve_commit(repo: GitRepo, rev: str) -> str:
    """A commit id for a git revision; RevisionError if it names no commit."""
    import pygit2  # start-up time

    try:
        obj = repo.git.revparse_single(rev)
        commit = obj.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):  # not found; invalid spec; not a commit
        raise RevisionError(f"{rev!r} is not a commit in this repository") from None
    return str(commit.id)


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


_MODE_TREE = 0o040000
_MODE_BLOBS = (0o100644, 0o100755)


@dataclass
class _Frame:
    """One git tree being walked by :func:`pointers_in_tree`: its cache key, path, entries."""

    key: str
    prefix: str
    entries: Iterator[Any]
    found: list[tuple[str, Pointer]]
    bad: list[PointerError]


def _tree_pointer(repo: GitRepo, entry: Any, path: str) -> Pointer:
    """Decode one ``*.mlgit`` entry of a git tree; PointerError if git-ml must not use it.

    The path is checked first (git's rules), then the entry's mode (a symlink or
    a submodule is never followed), then the blob's size from its header: a blob
    over ``MAX_POINTER_LEN`` is refused without being read.
    """
    check_pointer_path(path)
    shown = repr(path[:300])
    if entry.filemode not in _MODE_BLOBS:
        kind = {0o120000: "a symbolic link", 0o160000: "a submodule"}.get(
            entry.filemode, f"of mode {entry.filemode:o}")
        raise PointerError(f"pointer file {shown} is {kind} in the commit, not a file")
    try:
        _, size = repo.git.odb.read_header(entry.id)
    except KeyError:
        raise PointerError(f"pointer file {shown}: its blob {entry.id} is not in the git "
                           "repository") from None
    if size > MAX_POINTER_LEN:
        raise PointerError(f"pointer file {shown} is {size} bytes in the commit, more than "
                           f"the {MAX_POINTER_LEN} allowed")
    return decode_pointer(repo.git[entry.id].data, path)


def pointers_in_tree(repo: GitRepo, tree_id: str, cache: dict[str, Any] | None = None,
                     problems: list[PointerError] | None = None) -> list[tuple[str, Pointer]]:
    """Every valid pointer file in a git tree as (path, pointer), in tree order.

    Pointers git-ml must not use (a path :func:`check_pointer_path` refuses, a
    symlink or submodule named ``*.mlgit``, a blob over ``MAX_POINTER_LEN``, a
    malformed pointer) are left out; each is appended to ``problems`` when given.
    Directories whose paths would be longer than ``MAX_PATH_LEN`` are not
    entered (no pointer there could be used; one problem says so).

    The walk is iterative (any depth). ``cache`` maps (subtree id, path) to
    results, so walking many commits that share subtrees reads each subtree
    once; pass the same dict to every call.
    """
    cache = {} if cache is None else cache
    found, bad = _walk_tree(repo, tree_id, cache)
    if problems is not None:
        problems.extend(bad)
    return list(found)


def _walk_tree(repo: GitRepo, tree_id: str, cache: dict[str, Any]
               ) -> tuple[list[tuple[str, Pointer]], list[PointerError]]:
    """The (pointers, problems) of a tree, from ``cache`` or by an explicit-stack walk."""
    key = f"{tree_id}\0"
    hit: tuple[list[tuple[str, Pointer]], list[PointerError]] | None = cache.get(key)
    if hit is not None:
        return hit
    stack = [_Frame(key, "", iter(repo.git[tree_id]), [], [])]
    while True:
        top = stack[-1]
        entry = next(top.entries, None)
        if entry is None:
            stack.pop()
            cache[top.key] = (top.found, top.bad)
            if not stack:
                return top.found, top.bad
            stack[-1].found.extend(top.found)
            stack[-1].bad.extend(top.bad)
            continue
        name = entry.raw_name.decode("utf-8", "surrogateescape")
        path = top.prefix + name
        if entry.filemode == _MODE_TREE:
            sub = path + "/"
            hit = cache.get(f"{entry.id}\0{sub}")
            if hit is not None:
                top.found.extend(hit[0])
                top.bad.extend(hit[1])
            elif len(sub.encode("utf-8", "surrogateescape")) > MAX_PATH_LEN:
                top.bad.append(PointerError(
                    f"directory {sub[:80]!r}... is deeper than any path git-ml uses "
                    f"({MAX_PATH_LEN} bytes); pointer files below it are ignored"))
            else:
                stack.append(_Frame(f"{entry.id}\0{sub}", sub, iter(repo.git[entry.id]),
                                    [], []))
        elif name.endswith(POINTER_SUFFIX):
            try:
                top.found.append((path, _tree_pointer(repo, entry, path)))
            except PointerError as e:
                top.bad.append(e)


def code_state(repo: GitRepo) -> CodeState:
    """HEAD, branch, and whether tracked files differ from HEAD (with a digest of the diff)."""
    head = head_commit(repo)
    try:
        branch = repo.run_git("symbolic-ref", "-q", "--short", "HEAD").decode().strip() or None
    except (GitCommandError, OSError, UnicodeDecodeError):
        branch = None
    if head is None:
        return CodeState(None, branch, False, None)
    diff = repo.run_git("diff", "--binary", "HEAD", "--")
    if not diff:
        return CodeState(head, branch, False, None)
    return CodeState(head, branch, True, digest_hex(diff))


_BRANCH_PREFIXES = ("refs/heads/", "refs/remotes/")


def branch_tips(repo: GitRepo) -> list[str]:
    """The commits of HEAD, every local branch and every remote-tracking branch, sorted.

    What ``git log --branches --remotes HEAD`` starts from. Symbolic refs
    (``origin/HEAD``) are skipped (their target is listed anyway); a ref that
    does not peel to a commit (damaged, or naming a tree) is left out.
    """
    import pygit2  # start-up time

    tips: set[str] = set()
    with contextlib.suppress(KeyError, ValueError, pygit2.GitError):  # unborn or damaged HEAD
        tips.add(str(repo.git.head.peel(pygit2.Commit).id))
    for ref in repo.git.references.iterator():
        direct = ref.type == pygit2.enums.ReferenceType.DIRECT
        if not direct or not ref.name.startswith(_BRANCH_PREFIXES):
            continue
        try:
            tips.add(str(ref.peel(pygit2.Commit).id))
        except (KeyError, ValueError, pygit2.GitError):  # a dangling or non-commit ref
            continue
    return sorted(tips)


def resolve_range(repo: GitRepo, revs: list[str]) -> tuple[list[str], list[str]]:
    """``git rev-list``'s arguments to (include, exclude) commit ids, each sorted.

    Each of ``revs`` is ``REV`` (its history), ``^REV`` (not its history) or
    ``A..B`` (B's history but not A's; an empty side means HEAD). RevisionError
    for a revision that names no commit.
    """
    include: set[str] = set()
    exclude: set[str] = set()
    for rev in revs:
        if rev.startswith("^"):
            exclude.add(resolve_commit(repo, rev[1:]))
        elif ".." in rev and "..." not in rev:
            a, _, b = rev.partition("..")
            include.add(resolve_commit(repo, b or "HEAD"))
            exclude.add(resolve_commit(repo, a or "HEAD"))
        else:
            include.add(resolve_commit(repo, rev))
    return sorted(include), sorted(exclude)


def reachable_commits(repo: GitRepo, include: list[str], exclude: list[str]) -> set[str]:
    """The ids of every commit reachable from ``include`` but not from ``exclude``.

    Unordered (no commit is read beyond what the walk needs), for callers that
    only ask whether a commit is in the history.
    """
    import pygit2  # start-up time

    if not include:
        return set()
    walker = repo.git.walk(None, pygit2.enums.SortMode.NONE)
    for c in include:
        walker.push(c)
    for c in exclude:
        walker.hide(c)
    return {str(c.id) for c in walker}
