"""Where imported data comes from: source URLs and import revisions, checked.

``git ml import URL NAME[@PREFIX][~N] [PATH]`` records the source repository's
URL and the revision asked for in the pointer it writes (docs/format.md,
"Imported pointer"). A pointer arrives in a teammate's commit, so both are
hostile input: a URL that git-ml will connect to, and a revision it will look
up there. :func:`check_source_url` accepts only URLs that cannot make git-ml
run anything but the ssh client with a host, or read a path it was not meant
to:

- an absolute local path (``/srv/registry``) or ``file:///srv/registry``;
- ``ssh://[user@]host[:port]/path`` and git's ``[user@]host:path``;
- ``s3://bucket[/prefix]``;
- ``http(s)://host[:port]/path`` and ``git://host[:port]/path``: names only
  (a git host serves no git-ml store); the store is found through the
  ``ml.<URL>.url`` setting (docs/remotes.md).

Refused: relative paths, a ``.`` or ``..`` component or an empty one in any
path, a path starting with ``-``, a host or user that starts with ``-`` (ssh
would read it as an option) or holds anything but letters, digits, ``.``, ``_``
and ``-``, a password in the URL, git's ``<transport>::<address>`` syntax
(``ext::``, ``fd::``), any other scheme, characters Python does not call
printable (control and formatting characters, tabs), surrounding whitespace,
and URLs over ``MAX_SOURCE_URL_LEN`` bytes. Pure: nothing here touches the disk or network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgit.errors import FormatError
from mlgit.format.ids import is_hex_prefix
from mlgit.format.limits import MAX_SOURCE_URL_LEN
from mlgit.format.names import is_ref_name
from mlgit.format.plainjson import check_shown

__all__ = ["ImportRev", "check_source_url", "parse_import_rev"]

_HOST = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})"
_USER = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}"
_SSH_RE = re.compile(r"ssh://(?:(?P<user>[^@/]*)@)?(?P<host>[^:/]*)(?::(?P<port>[^/]*))?"
                     r"(?P<path>/.*)\Z")
_SCP_RE = re.compile(r"(?:(?P<user>[^@/:]*)@)?(?P<host>[^:/@]+):(?P<path>.*)\Z")
_WEB_RE = re.compile(r"(?P<scheme>https?|git)://(?:(?P<user>[^@/]*)@)?(?P<host>[^:/]*)"
                     r"(?::(?P<port>[^/]*))?(?P<path>/.*)?\Z")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_TRANSPORT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_REV_RE = re.compile(r"(?P<name>[^@~]+)(?:@(?P<prefix>[^~]*))?(?P<tildes>(?:~\d{0,6})*)\Z")
_MAX_STEPS = 1 << 20


def _bad(url: str, why: str) -> FormatError:
    shown = url[:200] if url.isprintable() else repr(url[:200])
    return FormatError(f"source URL {shown}: {why}")


def _check_path(url: str, path: str, absolute: bool) -> None:
    """A path inside a URL: absolute if asked, no empty, ``.`` or ``..`` component."""
    if absolute and not path.startswith("/"):
        raise _bad(url, "a local path must be absolute")
    if path.startswith("-"):
        raise _bad(url, "the path cannot start with '-'")
    parts = path.strip("/").split("/")
    if path.strip("/") == "" or any(p in ("", ".", "..") for p in parts):
        raise _bad(url, "the path must name a directory without '.', '..' or empty "
                        "components")


def _check_host(url: str, host: str, user: str | None, port: str | None) -> None:
    if not re.fullmatch(_HOST, host):
        raise _bad(url, "the host must be letters, digits, '.', '_' and '-', not starting "
                        "with '-'")
    if user is not None:
        if ":" in user:
            raise _bad(url, "a URL cannot carry a password")
        if not re.fullmatch(_USER, user):
            raise _bad(url, "the user must be letters, digits, '.', '_' and '-', not "
                            "starting with '-'")
    if port is not None and not (port.isascii() and port.isdigit() and len(port) <= 5
                                 and 0 < int(port) < 65536):
        raise _bad(url, "the port must be a number from 1 to 65535")


def check_source_url(url: str) -> str:
    """Return ``url`` if an imported pointer may record it; FormatError saying why if not.

    See the module docstring for what is accepted.
    """
    if not isinstance(url, str) or not url:
        raise FormatError("source URL is empty")
    if len(url.encode("utf-8", "surrogatepass")) > MAX_SOURCE_URL_LEN:
        raise _bad(url, f"longer than {MAX_SOURCE_URL_LEN} bytes")
    check_shown(url, "source URL")
    if not url.isprintable() or url != url.strip():
        raise _bad(url, "only printable characters, without surrounding whitespace")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(url, "not valid Unicode") from None
    _check_form(url)
    return url


def _check_form(url: str) -> None:
    """The URL's form (see :func:`check_source_url`); FormatError if it is none git-ml takes."""
    if _TRANSPORT_RE.match(url):
        raise _bad(url, "git's <transport>::<address> URLs run programs; git-ml does not "
                        "use them")
    if url.startswith("/"):
        _check_path(url, url, absolute=True)
        return
    if url.startswith("file://"):
        _check_path(url, url[len("file://"):], absolute=True)
        return
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise _bad(url, "not a valid S3 bucket name")
        if prefix:
            _check_path(url, prefix, absolute=False)
        return
    m = _SSH_RE.match(url)
    if m:
        _check_host(url, m["host"], m["user"], m["port"])
        _check_path(url, m["path"], absolute=True)
        return
    m = _WEB_RE.match(url)
    if m:
        _check_host(url, m["host"], m["user"], m["port"])
        if m["path"] and m["path"] != "/":
            _check_path(url, m["path"], absolute=True)
        return
    if "://" in url:
        raise _bad(url, f"git-ml cannot use {url.split('://', 1)[0][:20]!r} URLs (use a "
                        "path, ssh://, s3://, or an http(s):// or git:// URL with "
                        "`git config ml.<URL>.url`)")
    m = _SCP_RE.match(url)
    if m:
        _check_host(url, m["host"], m["user"], None)
        _check_path(url, m["path"], absolute=False)
        return
    raise _bad(url, "not an absolute path, an ssh, s3, http(s) or git URL, or host:path")


@dataclass(frozen=True)
class ImportRev:
    """``NAME[@PREFIX][~N]``: a dataset or run of a source, at its newest version or another.

    ``prefix`` (lowercase hex, 4 to 32 characters) picks a version of ``NAME`` by
    id; ``steps`` goes that many first parents back (``~N`` parts add up).
    """

    name: str
    prefix: str | None = None
    steps: int = 0

    def __str__(self) -> str:
        at = f"@{self.prefix}" if self.prefix is not None else ""
        return f"{self.name}{at}{f'~{self.steps}' if self.steps else ''}"


def parse_import_rev(text: str) -> ImportRev:
    """Parse ``NAME[@PREFIX][~N]`` (surrounding whitespace ignored); FormatError if malformed."""
    shown = text[:160] if text.isprintable() else repr(text[:160])
    m = _REV_RE.match(text.strip()) if len(text) <= 400 else None
    if m is None or not is_ref_name(m["name"]):
        raise FormatError(f"invalid import revision {shown!r}: expected NAME, NAME@ID-PREFIX "
                          "or either followed by ~N (NAME: letters, digits, '.', '_', '-')")
    prefix = m["prefix"]
    if prefix is not None and not is_hex_prefix(prefix.lower()):
        raise FormatError(f"invalid import revision {shown!r}: {prefix[:40]!r} is not an id "
                          "prefix (4 to 32 hex characters)")
    steps = 0
    for part in m["tildes"].split("~")[1:]:
        steps += int(part) if part else 1
    if steps > _MAX_STEPS:
        raise FormatError(f"invalid import revision {shown!r}: more than {_MAX_STEPS} steps "
                          "back")
    return ImportRev(m["name"], prefix.lower() if prefix is not None else None, steps)
