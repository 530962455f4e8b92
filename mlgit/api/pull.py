"""``git ml pull``: fetch what HEAD pins and every remote name, then check the data out.

A fetch (:func:`mlgit.api.sync.fetch`) followed by a work-tree checkout
(:func:`mlgit.api.checkout.checkout_worktree`); here rather than in ``sync`` so
that the remote layer does not depend on checking out.
"""

from __future__ import annotations

from mlgit.api.checkout import checkout_worktree
from mlgit.api.core import Core
from mlgit.api.events import Events
from mlgit.api.sync import PushResult, bring_imports, fetch
from mlgit.format.ids import ObjectID, hex_to_raw

__all__ = ["pull"]


def pull(core: Core, remote: str | None = None, *, events: Events | None = None
         ) -> tuple[PushResult, list[tuple[str, ObjectID]]]:
    """Bring the remote's notes and names, move local refs, and check out what HEAD pins.

    Fetches the versions HEAD's pointer files pin (just those, whole; imported
    data from its source, :func:`~mlgit.api.sync.bring_imports`) and, for
    every remote ref, its snapshot and trees with a remote-tracking ref; then
    fast-forwards local refs that are behind, creates those we lack, and keeps
    (a ConflictError problem) one that diverged. Returns the fetch result and
    the paths materialized (none in a bare repository). Bad pointer files are
    left out of both; the checkout reports each (to ``events``, else it raises
    the first once the other paths are checked out).
    """
    ev = events or Events()
    tracked = core.tracked() if core.git.workdir is not None else []
    has = core.store.objects.has_committed
    missing = sorted({p.id for _, p in tracked
                      if p.source is None and not has(hex_to_raw(p.id))})
    result = fetch(core, remote, [str(m) for m in missing], history=False, all_refs=True,
                   local_refs="ff", require_store=bool(missing), events=ev)
    # Imported data comes from its source, whole (the checkout then tries ``remote``
    # for what a source could not supply, and reports what nothing could).
    imported = {p.id: p.source.url for _, p in tracked
                if p.source is not None and not has(hex_to_raw(p.id))}
    if imported:
        bring_imports(core, imported, Events(), history=False)
    done = checkout_worktree(core, events=ev) if core.git.workdir is not None else []
    if events is None:
        ev.raise_problems()
    return result, done
