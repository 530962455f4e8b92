"""Pointer files (``<path>.mlgit``): the small text git commits to pin a snapshot.

Text, UTF-8, LF line endings. Version 1, the usual form::

    # git-ml pointer: pins one version of the data beside it. Managed by `git ml`.
    mlgit-pointer: 1
    kind: dataset
    name: <name>
    id: <32 hex>

Version 2 is what git-ml's merge driver leaves when a merge of two versions of
a dataset has conflicts (docs/format.md, "Pointer file")::

    mlgit-pointer: 2
    kind: dataset
    name: <name>
    id: <32 hex: ours plus what merged cleanly>
    ours: <32 hex>
    theirs: <32 hex>
    base: <32 hex>            (absent when the two versions have no common base)
    conflicts: <count>
    conflict: "<path>"        (zero or more, at most <count>: a JSON string each)

Lines starting with ``#`` and blank lines are ignored; every other line is
``key: value``. Every key is required once except ``base`` (at most once) and
``conflict`` (repeated); no others are allowed. The tracked path is the pointer's
own path without ``.mlgit``. A version this module does not know is refused, so
an older git-ml stops at a conflicted pointer with a one-line error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from mlgit.errors import FormatError, PointerError
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.kinds import KIND_CHECKPOINT, KIND_DATASET
from mlgit.format.limits import MAX_FILES, MAX_PATH_LEN, MAX_POINTER_LEN
from mlgit.format.names import is_ref_name
from mlgit.format.plainjson import check_shown

__all__ = ["POINTER_SUFFIX", "Pointer", "PointerConflict", "decode_pointer", "encode_pointer"]

POINTER_SUFFIX = ".mlgit"
_VERSION = "1"
_VERSION_CONFLICT = "2"
_KEYS_V1 = {"mlgit-pointer", "kind", "name", "id"}
_KEYS_V2 = _KEYS_V1 | {"ours", "theirs", "conflicts"}
_HEADER_V1 = "# git-ml pointer: pins one version of the data beside it. Managed by `git ml`.\n"
_HEADER_V2 = ("# git-ml pointer: a merge of two versions of this data left conflicts; see "
              "`git ml status`.\n# Resolve: edit the data, then `git ml add` it. Managed by "
              "`git ml`.\n")


@dataclass(frozen=True)
class PointerConflict:
    """A merge that stopped at conflicts: the two versions merged and their base.

    ``count`` is the number of conflicting paths; ``paths`` lists the first of
    them (paths inside the dataset, as many as fit in a pointer file): a hint
    for people, the full list is recomputed from the three versions.
    """

    ours: ObjectID
    theirs: ObjectID
    base: ObjectID | None
    count: int
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pointer:
    """What a pointer file says: the kind, name and snapshot id of the data it pins.

    ``conflict`` is set for a conflicted merge (version 2): ``id`` then names
    ours plus what merged cleanly, which is what ``git ml checkout`` materializes.
    """

    kind: str
    name: str
    id: ObjectID
    conflict: PointerConflict | None = None


def _listable(path: str) -> bool:
    """True if a conflict path can be listed in a pointer file (and read back)."""
    if not path or len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_LEN:
        return False
    try:
        check_shown(path, "path")
        path.encode("utf-8")
    except (FormatError, UnicodeEncodeError):
        return False
    return True


def encode_pointer(p: Pointer) -> bytes:
    """Render a pointer file's bytes (version 2, at most MAX_POINTER_LEN, for a conflict)."""
    c = p.conflict
    if c is None:
        return (f"{_HEADER_V1}mlgit-pointer: {_VERSION}\nkind: {p.kind}\nname: {p.name}\n"
                f"id: {p.id}\n").encode()
    head = (f"{_HEADER_V2}mlgit-pointer: {_VERSION_CONFLICT}\nkind: {p.kind}\n"
            f"name: {p.name}\nid: {p.id}\nours: {c.ours}\ntheirs: {c.theirs}\n"
            + (f"base: {c.base}\n" if c.base is not None else "")
            + f"conflicts: {c.count}\n").encode()
    out = [head]
    size = len(head)
    for path in c.paths[: c.count]:
        if not _listable(path):
            continue
        line = f"conflict: {json.dumps(path, ensure_ascii=True)}\n".encode()
        if size + len(line) > MAX_POINTER_LEN:
            break
        out.append(line)
        size += len(line)
    return b"".join(out)


def _fields(text: str, bad: Callable[[str], PointerError]) -> tuple[dict[str, str], list[str]]:
    """The ``key: value`` lines of a pointer (each key once) and the ``conflict:`` values."""
    fields: dict[str, str] = {}
    listed: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            raise bad(f"bad line {line[:60]!r}")
        if key == "conflict":
            listed.append(value)
            continue
        if key in fields:
            raise bad(f"bad line {line[:60]!r}")
        fields[key] = value
    return fields, listed


def _conflict_paths(count_text: str, listed: list[str], bad: Callable[[str], PointerError]
                    ) -> tuple[int, list[str]]:
    """The conflict count and the paths listed (JSON string literals), checked."""
    if not (count_text.isascii() and count_text.isdigit() and len(count_text) <= 16):
        raise bad(f"invalid conflicts {count_text[:40]!r}")
    count = int(count_text)
    if not 1 <= count <= MAX_FILES or len(listed) > count:
        raise bad(f"conflicts {count} does not fit the {len(listed)} paths listed")
    paths = []
    for value in listed:
        try:  # a string literal only: nothing nested to parse
            path = json.loads(value) if value.startswith('"') else None
        except ValueError:
            path = None
        if not isinstance(path, str) or not _listable(path):
            raise bad(f"invalid conflict path {value[:60]!r}")
        paths.append(path)
    return count, paths


def decode_pointer(data: bytes, where: str = "pointer file", hint: str | None = None) -> Pointer:
    """Parse pointer bytes; PointerError (naming ``where``) if they are not a valid pointer.

    The message ends with ``hint`` (default: how to restore the file with git).
    """
    shown = where if where.isprintable() and len(where) <= 300 else repr(where[:300])
    fix = hint if hint is not None else f"restore it with `git checkout -- {shown}`"

    def bad(why: str) -> PointerError:
        return PointerError(f"{shown}: {why}; {fix}")

    if len(data) > MAX_POINTER_LEN:
        raise bad("too large to be a pointer file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    fields, listed = _fields(text, bad)
    version = fields.get("mlgit-pointer")
    if version is not None and version not in (_VERSION, _VERSION_CONFLICT):
        raise bad(f"pointer version {version[:20]!r} is not supported (upgrade git-ml)")
    wanted = _KEYS_V2 if version == _VERSION_CONFLICT else _KEYS_V1
    if not (wanted <= set(fields) <= wanted | ({"base"} if version == _VERSION_CONFLICT
                                                 else set())):
        raise bad("missing or unknown keys")
    if listed and version != _VERSION_CONFLICT:
        raise bad("missing or unknown keys")
    if fields["kind"] not in (KIND_DATASET, KIND_CHECKPOINT):
        raise bad(f"unknown kind {fields['kind'][:40]!r}")
    if not is_ref_name(fields["name"]):
        raise bad(f"invalid name {fields['name'][:140]!r}")

    def oid(key: str) -> ObjectID:
        try:
            return parse_object_id(fields[key])
        except FormatError:
            raise bad(f"invalid {key} {fields[key][:40]!r}") from None

    pid = oid("id")
    if version != _VERSION_CONFLICT:
        return Pointer(fields["kind"], fields["name"], pid)
    if fields["kind"] != KIND_DATASET:
        raise bad("only a dataset pointer can record a merge conflict")
    count, paths = _conflict_paths(fields["conflicts"], listed, bad)
    conflict = PointerConflict(oid("ours"), oid("theirs"),
                               oid("base") if "base" in fields else None, count, tuple(paths))
    return Pointer(fields["kind"], fields["name"], pid, conflict)
