"""Pointer files (``<path>.mlgit``): the small text git commits to pin a snapshot.

Text, UTF-8, LF line endings::

    # git-ml pointer: pins one version of the data beside it. Managed by `git ml`.
    mlgit-pointer: 1
    kind: dataset
    name: <name>
    id: <32 hex>

Lines starting with ``#`` and blank lines are ignored; every other line is
``key: value``; the four keys are required, each once, and no others are allowed.
The tracked path is the pointer's own path without ``.mlgit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgit.errors import PointerError
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_POINTER_LEN
from mlgit.format.names import is_ref_name
from mlgit.format.snapshot import KIND_CHECKPOINT, KIND_DATASET

__all__ = ["POINTER_SUFFIX", "Pointer", "decode_pointer", "encode_pointer"]

POINTER_SUFFIX = ".mlgit"
_VERSION = "1"


@dataclass(frozen=True)
class Pointer:
    """What a pointer file says: the kind, name and snapshot id of the data it pins."""

    kind: str
    name: str
    id: ObjectID


def encode_pointer(p: Pointer) -> bytes:
    """Render a pointer file's bytes."""
    return (
        "# git-ml pointer: pins one version of the data beside it. Managed by `git ml`.\n"
        f"mlgit-pointer: {_VERSION}\nkind: {p.kind}\nname: {p.name}\nid: {p.id}\n"
    ).encode()


def decode_pointer(data: bytes, where: str = "pointer file") -> Pointer:
    """Parse pointer bytes; PointerError (naming ``where``) if they are not a valid pointer."""
    shown = where if where.isprintable() and len(where) <= 300 else repr(where[:300])

    def bad(why: str) -> PointerError:
        return PointerError(f"{shown}: {why}; restore it with `git checkout -- {shown}`")

    if len(data) > MAX_POINTER_LEN:
        raise bad("too large to be a pointer file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or key in fields:
            raise bad(f"bad line {line[:60]!r}")
        fields[key] = value
    if set(fields) != {"mlgit-pointer", "kind", "name", "id"}:
        raise bad("missing or unknown keys")
    if fields["mlgit-pointer"] != _VERSION:
        raise bad(f"pointer version {fields['mlgit-pointer']!r} is not supported")
    if fields["kind"] not in (KIND_DATASET, KIND_CHECKPOINT):
        raise bad(f"unknown kind {fields['kind']!r}")
    if not is_ref_name(fields["name"]):
        raise bad(f"invalid name {fields['name']!r}")
    try:
        oid = parse_object_id(fields["id"])
    except Exception:
        raise bad(f"invalid id {fields['id'][:40]!r}") from None
    return Pointer(fields["kind"], fields["name"], oid)
