"""Names of datasets and checkpoint runs, and names inside trees."""

from __future__ import annotations

import re

from mlgit.errors import FormatError
from mlgit.format.paths import is_git_dir_name

__all__ = ["MAX_ENTRY_NAME", "check_entry_name", "check_ref_name", "is_ref_name"]

MAX_ENTRY_NAME = 255
_REF_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


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
