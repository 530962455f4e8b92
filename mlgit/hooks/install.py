"""Install git-ml's hooks into a repository, keeping (chaining) any hook already there.

The hook scripts are the files of the project's top-level ``hooks/`` folder
(shipped inside the package as ``mlgit/hooks/scripts`` by the build). A hook
that is not git-ml's is renamed ``<name>.mlgit-chained``; git-ml's hook runs it
first, with the same arguments and standard input, and passes on its failure.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlgit.errors import MlgitError
from mlgit.gitlink.notes import NOTES_REF
from mlgit.gitlink.repo import GitRepo
from mlgit.store.fsutil import atomic_write

__all__ = ["CHAINED_SUFFIX", "HOOK_NAMES", "HookResult", "carry_notes_on_rewrite", "hooks_dir",
           "hooks_enabled",
           "install_hooks", "run_chained", "scripts_dir"]

HOOK_NAMES = ("post-checkout", "post-merge", "post-rewrite", "pre-push")
CHAINED_SUFFIX = ".mlgit-chained"
_MARKER = b"git-ml hook"


@dataclass(frozen=True)
class HookResult:
    """What :func:`install_hooks` did with one hook: installed, updated, chained or current.

    Also used for the merge driver (:mod:`mlgit.hooks.mergedriver`), whose action
    may be ``kept`` (someone else's setting left alone); ``detail`` says what.
    """

    name: str
    action: str
    path: Path
    detail: str = ""


def scripts_dir() -> Path:
    """The folder holding the hook scripts (installed package, or a source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "scripts", here.parent.parent / "hooks"):
        if all((candidate / n).is_file() for n in HOOK_NAMES):
            return candidate
    raise MlgitError("git-ml's hook scripts are missing from its installation; reinstall it")


def hooks_dir(repo: GitRepo) -> Path:
    """Where git looks for this repository's hooks (honours ``core.hooksPath``)."""
    out = repo.run_git("rev-parse", "--git-path", "hooks").decode().strip()
    path = Path(out)
    if not path.is_absolute():
        path = (repo.workdir or repo.own_git_dir) / path
    return path


def install_hooks(repo: GitRepo) -> list[HookResult]:
    """Install or update each hook; idempotent."""
    src = scripts_dir()
    target_dir = hooks_dir(repo)
    target_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in HOOK_NAMES:
        ours = (src / name).read_bytes()
        target = target_dir / name
        action = "installed"
        if target.exists() or target.is_symlink():
            current = target.read_bytes() if target.is_file() else b""
            if current == ours:
                results.append(HookResult(name, "current", target))
                continue
            if _MARKER in current:
                action = "updated"
            else:
                chained = target.with_name(name + CHAINED_SUFFIX)
                if chained.exists():
                    raise MlgitError(f"{target} is not git-ml's hook and {chained} exists too; "
                                     "merge them by hand")
                os.replace(target, chained)
                action = "chained"
        atomic_write(target, ours, mode=0o755)
        target.chmod(0o755)
        results.append(HookResult(name, action, target))
    carry_notes_on_rewrite(repo)
    return results


def carry_notes_on_rewrite(repo: GitRepo) -> None:
    """Make ``git rebase`` and ``git commit --amend`` copy ``refs/notes/ml`` to new commits.

    Adds ``refs/notes/ml`` to the multi-valued ``notes.rewriteRef`` unless it is
    there (other values are kept). git's defaults then do the rest
    (``notes.rewrite.amend`` and ``notes.rewrite.rebase`` are true, and
    ``notes.rewriteMode`` is ``concatenate``, which keeps every record line).
    """
    try:
        have = repo.run_git("config", "--get-all", "notes.rewriteRef").decode().split()
    except MlgitError:
        have = []  # unset
    if NOTES_REF not in have:
        repo.run_git("config", "--add", "notes.rewriteRef", NOTES_REF)


def run_chained(repo: GitRepo, name: str, args: list[str], stdin: bytes | None) -> int:
    """Run the hook that git-ml's hook replaced, if any; return its exit code (0 if none)."""
    chained = hooks_dir(repo) / (name + CHAINED_SUFFIX)
    if not chained.is_file() or not os.stat(chained).st_mode & stat.S_IXUSR:
        return 0
    p = subprocess.run([str(chained), *args], input=stdin, cwd=repo.workdir or repo.git_dir)
    return p.returncode


def hooks_enabled(repo: GitRepo) -> bool:
    """False when ``git config ml.hooks false`` turned git-ml's hooks off."""
    try:
        value = repo.run_git("config", "--bool", "ml.hooks").decode().strip()
    except MlgitError:
        return True  # unset
    return value != "false"
