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

Version 3 is an imported pointer (``git ml import``): the data is a version of
another repository's dataset or run, and the pointer records where it came from
(docs/format.md, "Imported pointer")::

    mlgit-pointer: 3
    kind: dataset | checkpoint
    name: <the dataset's or run's name in the source>
    id: <32 hex>
    source: "<the source repository's URL: a JSON string>"
    rev: <the revision asked for: NAME[@PREFIX][~N]>

Lines starting with ``#`` and blank lines are ignored; every other line is
``key: value``. Every key is required once except ``base`` (at most once) and
``conflict`` (repeated); no others are allowed. The tracked path is the pointer's
own path without ``.mlgit``. A version this module does not know is refused, so
an older git-ml stops at a conflicted or imported pointer with a one-line error.
The source URL and revision are checked by :mod:`mlgit.format.source` (a
teammate's commit may hold anything there).
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
from mlgit.format.source import check_source_url, parse_import_rev

__all__ = ["POINTER_SUFFIX", "Pointer", "PointerConflict", "PointerSource", "decode_pointer",
           "encode_pointer"]

POINTER_SUFFIX = ".mlgit"
_VERSION = "1"
_VERSION_CONFLICT = "2"
_VERSION_IMPORT = "3"
_KEYS_V1 = {"mlgit-pointer", "kind", "name", "id"}
_KEYS_V2 = _KEYS_V1 | {"ours", "theirs", "conflicts"}
_KEYS_V3 = _KEYS_V1 | {"source", "rev"}
_HEADER_V1 = "# git-ml pointer: pins one version of the data beside it. Managed by `git ml`.\n"
_HEADER_V2 = ("# git-ml pointer: a merge of two versions of this data left conflicts; see "
              "`git ml status`.\n# Resolve: edit the data, then `git ml add` it. Managed by "
              "`git ml`.\n")
_HEADER_V3 = ("# git-ml pointer: pins one version of data imported from another repository.\n"
              "# `git ml update <path>` moves it to the source's newest version. Managed by "
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
class PointerSource:
    """Where an imported pointer's data comes from (version 3).

    ``url`` is the source repository's URL (checked by
    :func:`~mlgit.format.source.check_source_url`), ``rev`` the revision asked for
    (``NAME[@PREFIX][~N]``, checked by :func:`~mlgit.format.source.parse_import_rev`).
    """

    url: str
    rev: str


@dataclass(frozen=True)
class Pointer:
    """What a pointer file says: the kind, name and snapshot id of the data it pins.

    ``conflict`` is set for a conflicted merge (version 2): ``id`` then names
    ours plus what merged cleanly, which is what ``git ml checkout`` materializes.
    ``source`` is set for imported data (version 3): ``name`` is then the name
    the dataset or run has in the source, not a ref of this repository.
    """

    kind: str
    name: str
    id: ObjectID
    conflict: PointerConflict | None = None
    source: PointerSource | None = None


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
    """Render a pointer file's bytes (version 2 for a conflict, 3 for an import).

    Nothing a reader would refuse is written: FormatError for a source URL or
    revision the checks refuse, ValueError for a conflicted import or a URL too
    long for a pointer file.
    """
    c = p.conflict
    if p.source is not None:
        if c is not None:
            raise ValueError("an imported pointer cannot record a merge conflict")
        src = p.source
        check_source_url(src.url)
        parse_import_rev(src.rev)
        data = (f"{_HEADER_V3}mlgit-pointer: {_VERSION_IMPORT}\nkind: {p.kind}\n"
                f"name: {p.name}\nid: {p.id}\nsource: {json.dumps(src.url, ensure_ascii=True)}\n"
                f"rev: {src.rev}\n").encode()
        if len(data) > MAX_POINTER_LEN:
            raise ValueError("the source URL is too long for a pointer file")
        return data
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


def _source(url_text: str, rev_text: str, name: str, bad: Callable[[str], PointerError]
            ) -> PointerSource:
    """The ``source`` (a JSON string literal) and ``rev`` of an imported pointer, checked."""
    try:  # a string literal only: nothing nested to parse
        url = json.loads(url_text) if url_text.startswith('"') else None
    except ValueError:
        url = None
    if not isinstance(url, str):
        raise bad(f"invalid source {url_text[:60]!r} (a JSON string is expected)")
    try:
        check_source_url(url)
        rev = parse_import_rev(rev_text)
    except FormatError as e:
        raise bad(str(e)) from None
    if rev.name != name:
        raise bad(f"rev {rev_text[:140]!r} does not name {name!r}")
    return PointerSource(url, rev_text)


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
    if version is not None and version not in (_VERSION, _VERSION_CONFLICT, _VERSION_IMPORT):
        raise bad(f"pointer version {version[:20]!r} is not supported (upgrade git-ml)")
    wanted = {_VERSION_CONFLICT: _KEYS_V2, _VERSION_IMPORT: _KEYS_V3}.get(version or "",
                                                                         _KEYS_V1)
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
    if version == _VERSION_IMPORT:
        return Pointer(fields["kind"], fields["name"], pid,
                       source=_source(fields["source"], fields["rev"], fields["name"], bad))
    if version != _VERSION_CONFLICT:
        return Pointer(fields["kind"], fields["name"], pid)
    if fields["kind"] != KIND_DATASET:
        raise bad("only a dataset pointer can record a merge conflict")
    count, paths = _conflict_paths(fields["conflicts"], listed, bad)
    conflict = PointerConflict(oid("ours"), oid("theirs"),
                               oid("base") if "base" in fields else None, count, tuple(paths))
    return Pointer(fields["kind"], fields["name"], pid, conflict)
