"""Install git-ml's merge driver for pointer files, leaving anyone else's alone.

git merges a file with a custom driver when two settings agree:

- the driver, in git config: ``merge.mlgit.name`` and ``merge.mlgit.driver``
  (``git-ml merge-driver %O %A %B %P``);
- the attribute ``merge=mlgit`` for ``*.mlgit`` files, which git-ml writes to the
  clone's ``info/attributes`` (``git rev-parse --git-path info/attributes``: in
  a linked worktree, the main repository's).

Both are per clone, on purpose: git never takes config from a commit, so the
driver must be set in each clone anyway (``git ml init``, and ``git ml pull`` in a
fresh clone, do it), and an attribute committed in ``.gitattributes`` without the
driver makes git fall back to its text merge. Keeping the two together means a
clone either merges pointer files with git-ml or exactly as before. A team that
commits ``*.mlgit merge=mlgit`` in its ``.gitattributes`` anyway is fine: the
attribute is then already in effect and nothing is added.

Polite: a ``merge.mlgit.driver`` that is not git-ml's is kept, and then no
attribute is added (it would send pointer files to that driver); a ``merge``
attribute that already applies to ``*.mlgit`` files with another value is kept.
Both are reported. Running it again changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from mlgit.errors import FormatError, GitCommandError
from mlgit.format.limits import MAX_GITIGNORE_LEN
from mlgit.gitlink.repo import GitRepo
from mlgit.hooks.install import HookResult
from mlgit.store.fsutil import atomic_write, read_bounded

__all__ = ["ATTRIBUTE_LINE", "DRIVER", "DRIVER_NAME", "attributes_path", "install_merge_driver"]

DRIVER_NAME = "mlgit"
DRIVER = "git-ml merge-driver %O %A %B %P"
ATTRIBUTE_LINE = f"*.mlgit merge={DRIVER_NAME}"
_LABEL = "git-ml pointer files (three-way merge of the dataset's trees)"
_COMMENT = "# git-ml: merge pointer files with git-ml's merge driver (set by `git ml init`)"


def _config(repo: GitRepo, key: str) -> str | None:
    try:
        return repo.run_git("config", "--get", key).decode("utf-8", "replace").strip()
    except GitCommandError:
        return None  # unset


def _is_ours(driver: str) -> bool:
    words = driver.split()
    return words[:2] == ["git-ml", "merge-driver"] or words[:3] == ["git", "ml", "merge-driver"]


def attributes_path(repo: GitRepo) -> Path:
    """The clone's ``info/attributes`` file (which git reads before any ``.gitattributes``)."""
    out = repo.run_git("rev-parse", "--git-path", "info/attributes").decode().strip()
    path = Path(out)
    if not path.is_absolute():
        path = (repo.workdir or repo.own_git_dir) / path
    return path


def _effective_merge_attribute(repo: GitRepo) -> str:
    """The ``merge`` attribute git applies to a top-level ``*.mlgit`` file now."""
    out = repo.run_git("check-attr", "merge", "--", "git-ml-probe.mlgit").decode(
        "utf-8", "replace").strip()
    return out.rsplit(": ", 1)[-1] if ": " in out else "unspecified"


def install_merge_driver(repo: GitRepo) -> list[HookResult]:
    """Set the driver and the attribute unless someone else's are there; see the docstring."""
    results = []
    key = f"merge.{DRIVER_NAME}.driver"
    current = _config(repo, key)
    cfg = repo.git_dir / "config"
    if current is not None and not _is_ours(current):
        return [HookResult("merge driver", "kept", cfg,
                           f"{key} is already set to {current[:200]!r}, which is not git-ml's; "
                           "pointer files are not merged by git-ml")]
    if current != DRIVER:
        repo.run_git("config", f"merge.{DRIVER_NAME}.name", _LABEL)
        repo.run_git("config", key, DRIVER)
        results.append(HookResult("merge driver", "installed" if current is None else "updated",
                                  cfg, f"{key} = {DRIVER}"))
    elif _config(repo, f"merge.{DRIVER_NAME}.name") is None:
        repo.run_git("config", f"merge.{DRIVER_NAME}.name", _LABEL)
    results.append(_install_attribute(repo))
    return results


def _install_attribute(repo: GitRepo) -> HookResult:
    path = attributes_path(repo)
    value = _effective_merge_attribute(repo)
    if value == DRIVER_NAME:
        return HookResult("merge attribute", "current", path)
    if value != "unspecified":
        shown = {"set": "merge (set)", "unset": "-merge (binary)"}.get(value, f"merge={value}")
        return HookResult("merge attribute", "kept", path,
                          f"*.mlgit files already have the attribute {shown[:200]}; git-ml's "
                          "merge driver is installed but git will not use it for them")
    try:
        text = read_bounded(path, MAX_GITIGNORE_LEN).decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        text = ""
    except FormatError as e:
        return HookResult("merge attribute", "kept", path,
                          f"{e}; add the line {ATTRIBUTE_LINE!r} to it by hand")
    sep = "" if not text or text.endswith("\n") else "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (text + sep + _COMMENT + "\n" + ATTRIBUTE_LINE + "\n").encode(
        "utf-8", "surrogateescape"))
    return HookResult("merge attribute", "installed", path, f"{ATTRIBUTE_LINE} in {path}")
