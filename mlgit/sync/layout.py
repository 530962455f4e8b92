"""The layout of a remote store: which files it holds, under which names.

Every backend (a local path, SSH's server, S3) keeps exactly the files of a local
store's layout (docs/format.md, "Directory tree") under its root, and takes every
name and rule from here rather than from a copy of its own::

    config                     the store's config (JSON)
    packs/pack-<h>.pack        a pack                    (pack_file)
    packs/pack-<h>.idx         its index                 (index_file)
    refs/<kind>/<name>         a ref: an id, a newline   (ref_file)
    tmp/                       scratch space of a file-system store

``<h>`` is 32 lowercase hex digits (the hash of the index: see
:func:`mlgit.format.pack.pack_stem`); ``<kind>`` is one of :data:`REF_KINDS`
(the store's own, :data:`mlgit.store.refs.REF_KINDS`: ``datasets``, ``checkpoints``,
``stages``); ``<name>`` is a valid name of that kind
(:func:`mlgit.store.refs.is_ref_name_of`: a dataset or run name, or ``<model>@<stage>``).
A pack exists for readers only when both of its files do (:func:`complete_packs`).
"""

from __future__ import annotations

from collections.abc import Iterable

from mlgit.errors import FormatError
from mlgit.format.pack import is_pack_stem
from mlgit.store.refs import REF_KINDS, is_ref_name_of

__all__ = [
    "CONFIG",
    "INDEX_SUFFIX",
    "PACKS",
    "PACK_SUFFIX",
    "REFS",
    "REF_KINDS",
    "STORE_DIRS",
    "TMP",
    "check_pack_name",
    "check_ref_path",
    "complete_packs",
    "index_file",
    "is_pack_name",
    "pack_file",
    "ref_file",
    "refs_in",
]

CONFIG = "config"
PACKS = "packs"
REFS = "refs"
TMP = "tmp"
PACK_SUFFIX = ".pack"
INDEX_SUFFIX = ".idx"
STORE_DIRS = (PACKS, *(f"{REFS}/{kind}" for kind in REF_KINDS), TMP)
"""The directories a file-system store needs before anything is written to it."""


def is_pack_name(stem: str) -> bool:
    """True if ``stem`` is a pack's name (``pack-<32 hex>``): see ``format.pack.is_pack_stem``."""
    return is_pack_stem(stem)


def check_pack_name(stem: str) -> str:
    """Return ``stem`` if it is a pack's name (``pack-<32 hex>``), else raise FormatError."""
    if not is_pack_name(stem):
        raise FormatError(f"bad pack name {stem[:80]!r}")
    return stem


def check_ref_path(ref: str) -> str:
    """Return ``ref`` if it is ``<kind>/<name>`` (a kind of REF_KINDS), else FormatError."""
    kind, _, name = ref.partition("/")
    if not is_ref_name_of(kind, name):
        raise FormatError(f"bad ref {ref[:80]!r}")
    return ref


def pack_file(stem: str) -> str:
    """``packs/<stem>.pack``, the pack's path under the root (FormatError for a bad name)."""
    return f"{PACKS}/{check_pack_name(stem)}{PACK_SUFFIX}"


def index_file(stem: str) -> str:
    """``packs/<stem>.idx``, the index's path under the root (FormatError for a bad name)."""
    return f"{PACKS}/{check_pack_name(stem)}{INDEX_SUFFIX}"


def ref_file(ref: str) -> str:
    """``refs/<kind>/<name>``, the ref's path under the root (FormatError for a bad ref)."""
    return f"{REFS}/{check_ref_path(ref)}"


def complete_packs(names: Iterable[str]) -> list[str]:
    """The packs of a listing of ``packs/`` (file names, no directory) with both files.

    Sorted stems; a name that is not a pack's is left out. This is the one rule of
    visibility: a pack is listed once its ``.pack`` and its ``.idx`` both exist.
    """
    have = set(names)
    stems = {n[:-len(INDEX_SUFFIX)] for n in have if n.endswith(INDEX_SUFFIX)}
    return sorted(s for s in stems if is_pack_name(s) and s + PACK_SUFFIX in have)


def refs_in(names: Iterable[str]) -> list[str]:
    """The refs (``<kind>/<name>``) of a listing of ``refs/`` (paths below it), in order.

    Kinds in the order of REF_KINDS, names sorted; a path that is not a ref of a
    known kind with a valid name is left out.
    """
    out: list[str] = []
    have = set(names)
    for kind in REF_KINDS:
        out += sorted(n for n in have if n.partition("/")[0] == kind
                      and is_ref_name_of(kind, n.partition("/")[2]))
    return out
