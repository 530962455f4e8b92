"""git's hooks: installing git-ml's, and what git-ml does in each (``git ml hook``).

:func:`install_hooks` installs the hook scripts (chaining any hook already
there) and the pointer merge driver; :func:`run_hook` is the policy the scripts
run: push the data a ``git push`` needs, pull or check out the data a merge,
rebase or checkout pins. A hook never fails git's own command because data
could not be updated: git-ml's failures there become warnings.
"""

from __future__ import annotations

from mlgit.api import fetching
from mlgit.api.checkout import checkout_worktree
from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.api.pull import pull
from mlgit.api.sync import push
from mlgit.errors import MlgitError
from mlgit.hooks.install import HookResult, hooks_enabled, run_chained
from mlgit.hooks.install import install_hooks as install_hook_scripts
from mlgit.hooks.mergedriver import install_merge_driver

__all__ = ["install_hooks", "run_hook"]


def install_hooks(core: Core) -> list[HookResult]:
    """Install the hooks (chaining any hook already there) and the pointer merge driver.

    The merge driver and its ``*.mlgit`` attribute are left alone, and reported
    as ``kept``, where someone else's are set (:mod:`mlgit.hooks.mergedriver`).
    """
    return install_hook_scripts(core.git) + install_merge_driver(core.git)


class _HookEvents(Events):
    """Events for git's hooks: bad input becomes a warning, so git's own command succeeds."""

    def __init__(self, inner: Events, hook: str) -> None:
        self.inner, self.hook = inner, hook

    def warn(self, message: str) -> None:
        """Pass the warning on."""
        self.inner.warn(message)

    def problem(self, error: MlgitError) -> None:
        """Record it, and pass it on as a warning naming the hook."""
        super().problem(error)
        self.inner.warn(f"{self.hook}: skipped: {error}")

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Pass progress on."""
        self.inner.start(label, files, nbytes)

    def advance(self, files: int, nbytes: int) -> None:
        """Pass progress on."""
        self.inner.advance(files, nbytes)

    def finish(self) -> None:
        """Pass progress on."""
        self.inner.finish()


def run_hook(core: Core, name: str, args: list[str], events: Events | None = None,
             stdin: bytes | None = None, reflog_action: str | None = None) -> int:
    """Run git-ml's part of hook ``name`` after the hook it chained; return the exit code.

    pre-push (``git push``): ``git ml push`` to the same remote with the
    pushed commits (objects, refs, notes and the objects they name); if that
    fails the push is stopped (exit 1), so a remote never gets commits whose
    data it cannot have. post-merge (``git pull``, ``git merge``): ``git ml
    pull`` from the lazy-fetch remote (notes, every remote name, local refs
    fast-forwarded, HEAD's data checked out). post-rewrite after a rebase:
    the same when ``reflog_action`` (git's ``GIT_REFLOG_ACTION``) says it is
    ``git pull --rebase``, else HEAD's data is fetched and checked out.
    post-checkout: HEAD's data, fetched lazily. git-ml's own failures there
    become warnings (a hook must not fail git's command because data could
    not be updated); a chained hook's failure is passed on.
    """
    ev = events or Events()
    rc = run_chained(core.git, name, args, stdin)
    if not hooks_enabled(core.git) or not (core.git.ml_dir / "config").exists():
        return rc
    if name == "pre-push":
        return rc or _pre_push(core, args, stdin, ev)
    if name == "post-checkout" and (len(args) < 3 or args[2] != "1"):
        return rc  # a file checkout, not a branch or commit switch
    if name == "post-rewrite" and (not args or args[0] != "rebase"):
        return rc  # `git commit --amend`: git copies the notes, the data did not change
    # A bad pointer (a teammate's commit) is reported and skipped; the rest
    # is fetched and checked out, and git's own command still succeeds.
    hook_ev = _HookEvents(ev, name)
    pulling = name == "post-merge" or (
        name == "post-rewrite" and (reflog_action or "").startswith("pull"))
    try:
        remote = fetching.lazy_remote(core) if pulling else None
        if remote is not None:
            pull(core, remote, events=hook_ev)
        else:
            fetching.fetch_pinned(core, hook_ev)
            checkout_worktree(core, events=hook_ev)
    except MlgitError as e:
        ev.warn(f"{name}: data not updated: {e}; run `git ml pull` when ready")
    return rc


def _pre_push(core: Core, args: list[str], stdin: bytes | None, ev: Events) -> int:
    """``git ml push`` of what a ``git push`` sends (git's pre-push lines on ``stdin``)."""
    lines = [line.split() for line in (stdin or b"").decode().splitlines()]
    lines = [w for w in lines if len(w) == 4]
    # A push of the notes themselves (`git push origin refs/notes/ml`) carries
    # them: git-ml sends what they name and leaves the notes ref to git.
    notes = [w for w in lines if w[2].startswith("refs/notes/")]
    commits = [w[1] for w in lines if w not in notes and set(w[1]) != {"0"}]
    try:
        push(core, args[0] if args else None, commits=commits, notes=not notes, events=ev)
    except MlgitError as e:
        ev.warn(f"pre-push: git-ml data not pushed: {e}")
        return 1
    return 0
