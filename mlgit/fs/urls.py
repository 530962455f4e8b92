"""``mlgit://`` URLs: a revision, then a path in that snapshot. Pure functions.

The form is ``mlgit://REV/PATH``:

- ``REV`` is any revision the project resolves (docs/revisions.md): a name
  (``data``), an id or a unique prefix of one (``3fa9c0``), ``NAME@PREFIX``
  (``data@3fa9``), with ``~N`` (``data~2``). It is the URL's first segment, so a
  ``/`` in it is written ``%2F`` (``origin/data`` is ``mlgit://origin%2Fdata/...``)
  and a ``%`` is written ``%25``; every ``%XX`` in the segment is decoded before
  the revision is resolved. ``~`` and ``@`` are written as they are (``~`` is an
  unreserved URL character; the filesystem never reads ``REV`` as ``user@host``).
- ``PATH`` is a ``/``-separated path inside the snapshot, taken literally (no
  ``%`` decoding), as fsspec takes the paths of every filesystem. Empty: the
  snapshot's root (for a snapshot of one file, that file).
- ``mlgit://`` alone (the root) lists the names a revision can use.

Inside the filesystem (fsspec's "stripped" paths: what ``ls``, ``find`` and
``glob`` return) a path is ``REV/PATH`` without the protocol, ``REV`` kept as
the caller wrote it.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

__all__ = ["PROTOCOL", "join", "quote_rev", "split", "strip_protocol", "unquote_rev", "url"]

PROTOCOL = "mlgit"


def quote_rev(rev: str) -> str:
    """``rev`` as a URL's first segment: ``/`` as ``%2F``, ``%`` as ``%25`` (and so on)."""
    return quote(rev.strip(), safe="@~")


def unquote_rev(segment: str) -> str:
    """The revision a URL's first segment names (every ``%XX`` decoded)."""
    return unquote(segment, errors="strict")


def url(rev: str, path: str = "") -> str:
    """The ``mlgit://`` URL of ``path`` in revision ``rev`` (the snapshot's root if empty)."""
    inner = path.strip("/")
    return f"{PROTOCOL}://{quote_rev(rev)}" + (f"/{inner}" if inner else "")


def strip_protocol(path: str) -> str:
    """``REV/PATH`` of a URL or stripped path: no protocol, no leading or trailing ``/``."""
    for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}::"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    return path.strip("/")


def split(path: str) -> tuple[str, str]:
    """A stripped path's (revision segment as written, path in the snapshot).

    Empty ``.`` components and repeated ``/`` are dropped from the path.
    """
    segment, _, rest = strip_protocol(path).partition("/")
    return segment, "/".join(p for p in rest.split("/") if p and p != ".")


def join(segment: str, inner: str) -> str:
    """The stripped path of ``inner`` in the revision written ``segment``."""
    return f"{segment}/{inner}" if inner else segment
