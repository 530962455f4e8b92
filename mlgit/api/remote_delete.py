"""``git ml push REMOTE --delete NAME``: remove a dataset or run ref from a remote.

As ``git push --force-with-lease --delete``: a remote ref is removed only at the
version this clone last fetched (its remote-tracking ref), by compare-and-delete
on the remote (:meth:`~mlgit.sync.backend.Backend.delete_ref`). So a ref someone
pushed to since then is refused (ConflictError, exit code 9), and a ref this
clone never fetched cannot be deleted from here (run ``git ml fetch`` first).

``NAME`` is resolved among the remote-tracking refs as a revision's name is: a
dataset or a run, whichever the remote has (both: ambiguous);
``datasets/NAME`` or ``checkpoints/NAME`` names the kind. Every name is checked
(resolved, and compared with the remote's current refs) before the first is
deleted; then each is deleted by compare-and-delete, and its remote-tracking ref
goes too. The remote's objects stay until a gc there finds nothing reaching them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlgit.api.events import Events
from mlgit.errors import AmbiguousRevisionError, ConflictError, FormatError, UsageError
from mlgit.format.ids import ObjectID
from mlgit.format.names import is_ref_name
from mlgit.store.refs import SNAPSHOT_KINDS
from mlgit.store.revision import tracking_refs
from mlgit.sync.remote import open_backend, resolve_remote

if TYPE_CHECKING:
    from mlgit.api.core import Core

__all__ = ["DeleteResult", "delete_remote_refs"]


@dataclass
class DeleteResult:
    """What ``push --delete`` removed: refs (``datasets/<name>``) and their last ids."""

    remote: str
    url: str
    deleted: list[tuple[str, ObjectID]] = field(default_factory=list)


def _resolve(repo: Core, remote: str, name: str) -> tuple[str, ObjectID]:
    """(``<kind>/<name>``, the id last fetched) for ``name``; UsageError/Ambiguous if none."""
    kind, slash, rest = name.partition("/")
    kinds = (kind,) if slash and kind in SNAPSHOT_KINDS else SNAPSHOT_KINDS
    base = rest if slash and kind in SNAPSHOT_KINDS else name
    if not is_ref_name(base):
        raise UsageError(f"{name!r} is not a dataset or run name (nor datasets/NAME, "
                         "checkpoints/NAME)")
    tracking = tracking_refs(repo.store, remote)
    found = {k: oid for k in kinds if (oid := tracking.get(k, base)) is not None}
    if len(found) > 1:
        raise AmbiguousRevisionError(
            f"{base!r} is both a dataset and a run on {remote}; say datasets/{base} or "
            f"checkpoints/{base}")
    if not found:
        what = f"{kinds[0]}/{base}" if len(kinds) == 1 else base
        raise UsageError(f"{remote} has no {what} that this clone has fetched; run "
                         f"`git ml fetch {remote}` first (a remote ref is deleted only at the "
                         "version you last fetched)")
    (k, oid), = found.items()
    return f"{k}/{base}", oid


def delete_remote_refs(repo: Core, remote: str | None, names: list[str], *,
                       events: Events | None = None) -> DeleteResult:
    """Delete ``names`` from ``remote``'s refs, each at the version last fetched.

    Raises before deleting anything when a name does not resolve or a ref moved
    on the remote since it was fetched (ConflictError); see the module docstring.
    """
    ev = events or Events()
    if not names:
        raise UsageError("name the datasets or runs to delete")
    spec = resolve_remote(repo.git, remote, repo.ssh_command)
    if not is_ref_name(spec.name):
        raise UsageError(f"{spec.name!r} has no remote-tracking refs (it is not a remote's "
                         "name), so git-ml cannot tell which version you mean to delete; "
                         "add it as a remote and `git ml fetch` it first")
    wanted = dict.fromkeys(_resolve(repo, spec.name, n) for n in names)
    result = DeleteResult(spec.name, spec.url)
    backend = open_backend(spec)
    try:
        problems: list[FormatError] = []
        current = backend.list_refs(lambda _, e: problems.append(e))
        moved = [f"{ref} (fetched {oid[:12]}, now "
                 f"{current[ref][:12] if ref in current else 'gone'})"
                 for ref, oid in wanted if current.get(ref) != oid]
        if moved:
            raise ConflictError(
                f"refusing to delete from {spec.name}: {', '.join(moved)} moved since you "
                f"fetched; run `git ml fetch {spec.name}`, check, and delete again")
        for p in problems:
            ev.warn(f"{p} (skipped)")
        for ref, oid in wanted:
            try:
                backend.delete_ref(ref, oid)
            except ConflictError as e:
                raise ConflictError(
                    f"{ref} on {spec.name} was not deleted: it moved while this command ran "
                    f"({e}); run `git ml fetch {spec.name}` and try again") from None
            result.deleted.append((ref, oid))
            kind, _, name = ref.partition("/")
            tracking = tracking_refs(repo.store, spec.name)
            try:
                tracking.delete(kind, name, oid)
            except (ConflictError, FormatError) as e:
                ev.warn(f"remote-tracking ref {spec.name}/{name} kept: {e}")
    finally:
        backend.close()
    return result
