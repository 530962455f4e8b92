r"""Which paths git-ml may derive from stored data and touch on disk: git's own rules.

Every path git-ml takes from a pointer file, a tree entry or snapshot metadata
obeys the rules git's ``verify_path`` applies to tracked paths (with
``core.protectNTFS`` and ``core.protectHFS`` both on, whatever the platform), so
nothing a teammate commits or a remote sends can make git-ml write into a git
directory, outside its target, or onto the work tree's root:

- a path is ``/``-separated, relative, not empty, with no empty component
  (no leading, trailing or doubled ``/``) and no NUL;
- no component is ``.`` or ``..``;
- no component names a git directory: ``.git`` in any letter case; the same with
  code points that HFS+ ignores inserted anywhere (U+200C-U+200F, U+202A-U+202E,
  U+206A-U+206F, U+FEFF); or, as NTFS reads names, ``.git`` or its 8.3 short name
  ``git~1`` followed only by spaces and dots, up to the end, a ``\`` or a ``:``
  (an alternate data stream), in any ``\``-separated part of the component.

Pure functions; they raise FormatError and nothing else.
"""

from __future__ import annotations

from mlgit.errors import FormatError
from mlgit.format.limits import MAX_PATH_LEN

__all__ = ["check_component", "check_tracked_path", "is_git_dir_name"]

_HFS_IGNORABLE = frozenset(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def _ntfs_is_dotgit(part: str) -> bool:
    r"""True if ``part`` (one ``\``-separated piece) reads as ``.git`` on NTFS."""
    head = part.split(":", 1)[0].lower()
    for base in (".git", "git~1"):
        if head.startswith(base) and not head[len(base):].strip(" ."):
            return True
    return False


def is_git_dir_name(name: str | bytes) -> bool:
    """True if ``name`` (one path component) would name a git directory on some filesystem.

    Bytes are read as UTF-8 (undecodable bytes cannot spell an ignorable code
    point, so they are kept as they are).
    """
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    if text.lower() == ".git":
        return True
    if "".join(ch for ch in text if ord(ch) not in _HFS_IGNORABLE).lower() == ".git":
        return True
    return any(_ntfs_is_dotgit(part) for part in text.split("\\"))


def check_component(name: str, where: str = "path") -> str:
    """Return ``name`` if it is a usable path component, else raise FormatError."""
    if not name:
        raise FormatError(f"{where}: empty path component")
    if "/" in name or "\0" in name:
        raise FormatError(f"{where}: path component contains '/' or NUL: {name[:80]!r}")
    if name in (".", ".."):
        raise FormatError(f"{where}: path component {name!r} is not allowed")
    if is_git_dir_name(name):
        raise FormatError(f"{where}: path component {name[:80]!r} names a git directory")
    return name


def check_tracked_path(path: str, where: str | None = None) -> str:
    """Return ``path`` if git-ml may read or write data there, else raise FormatError.

    ``path`` is relative to the work tree (or to a checkout), ``/``-separated, as
    a pointer file's path without ``.mlgit`` is. ``where`` names the input in the
    message (default: the path itself).
    """
    label = where or repr(path[:200])
    if not path:
        raise FormatError(f"{label}: the path is empty (it would be the work tree's root)")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_LEN:
        raise FormatError(f"{label}: the path is longer than {MAX_PATH_LEN} bytes")
    if path.startswith("/"):
        raise FormatError(f"{label}: the path is absolute")
    for part in path.split("/"):
        check_component(part, label)
    return path
