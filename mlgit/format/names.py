"""Names of datasets and checkpoint runs, and names inside trees."""

from __future__ import annotations

import re

from mlgit.errors import FormatError
from mlgit.format.paths import is_git_dir_name

__all__ = ["MAX_ENTRY_NAME", "MAX_STAGE_NAME", "check_entry_name", "check_ref_name",
           "check_stage_name", "is_ref_name", "is_stage_name", "is_stage_ref_name",
           "split_stage_ref_name", "stage_ref_name"]

MAX_ENTRY_NAME = 255
MAX_STAGE_NAME = 64
_REF_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_HEX_PREFIX_RE = re.compile(r"[0-9A-Fa-f]{4,32}\Z")


def is_ref_name(name: str) -> bool:
    """True for a usable dataset or run name.

    A name starts with a letter or digit, continues with letters, digits, ``.``,
    ``_`` or ``-`` (at most 128 characters in all), has no ``..`` and does not
    end in ``.lock`` (the ref store's lock suffix). ``~`` and ``@`` are excluded
    so that ``name~N`` and ``name@id`` revisions stay unambiguous.
    """
    return bool(_REF_NAME_RE.match(name)) and ".." not in name and not name.endswith(".lock")


def check_ref_name(name: str) -> str:
    """Return ``name`` if :func:`is_ref_name` accepts it, else raise FormatError."""
    if not is_ref_name(name):
        raise FormatError(
            f"invalid name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def is_stage_name(stage: str) -> bool:
    """True for a usable stage name (``production``, ``staging``, ``canary-eu``).

    A name as :func:`is_ref_name` has it, of at most 64 characters, that is not 4 to
    32 hex digits in either case: ``MODEL@STAGE`` and ``NAME@ID-PREFIX`` are then told
    apart by the part after ``@`` alone (docs/revisions.md), whatever the store holds.
    """
    return (isinstance(stage, str) and len(stage) <= MAX_STAGE_NAME and is_ref_name(stage)
            and not _HEX_PREFIX_RE.match(stage))


def check_stage_name(stage: str) -> str:
    """Return ``stage`` if :func:`is_stage_name` accepts it, else raise FormatError."""
    if not is_stage_name(stage):
        hexy = isinstance(stage, str) and _HEX_PREFIX_RE.match(stage) is not None
        raise FormatError(
            f"invalid stage name {str(stage)[:80]!r}: "
            + ("4 to 32 hex digits read as an id prefix in MODEL@PREFIX; add a letter "
               "beyond a-f" if hexy else
               f"use letters, digits, '.', '_' and '-' (at most {MAX_STAGE_NAME}), starting "
               "with a letter or digit"))
    return stage


def stage_ref_name(model: str, stage: str) -> str:
    """The name of the ref that holds ``model``'s ``stage``: ``<model>@<stage>``."""
    return f"{check_ref_name(model)}@{check_stage_name(stage)}"


def split_stage_ref_name(name: str) -> tuple[str, str] | None:
    """``(model, stage)`` of a stage ref's name ``<model>@<stage>``, or None if it is not one."""
    model, at, stage = name.partition("@")
    if not at or not is_ref_name(model) or not is_stage_name(stage):
        return None
    return model, stage


def is_stage_ref_name(name: str) -> bool:
    """True for the name of a stage ref, ``<model>@<stage>`` (see :func:`stage_ref_name`)."""
    return split_stage_ref_name(name) is not None


def check_entry_name(name: bytes) -> bytes:
    r"""Return ``name`` if it is safe as one path component inside a tree, else raise FormatError.

    Refused: empty, longer than 255 bytes, containing ``/`` or NUL, ``.``, ``..``,
    and every name :func:`~mlgit.format.paths.is_git_dir_name` reads as a git
    directory (``.git`` in any case, with HFS-ignorable code points, or as NTFS
    reads it: ``.git ``, ``git~1``, ``.git::$INDEX_ALLOCATION``, ``a\.git``), so a
    tree, even one from a remote, can never make git-ml write into a git directory.
    """
    if not name or len(name) > MAX_ENTRY_NAME:
        raise FormatError(f"tree entry name has bad length {len(name)}")
    if b"/" in name or b"\0" in name:
        raise FormatError(f"tree entry name contains '/' or NUL: {name!r}")
    if name in (b".", b".."):
        raise FormatError(f"tree entry name not allowed: {name!r}")
    # Fast path (trees hold many names): an ASCII name without "git" in any case
    # cannot spell a git directory in any of the forms is_git_dir_name knows.
    if not (name.isascii() and b"git" not in name.lower()) and is_git_dir_name(name):
        raise FormatError(f"tree entry name {name!r} names a git directory")
    return name
