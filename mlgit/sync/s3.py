"""A remote store in an S3 bucket (or an S3-compatible service), through boto3.

The remote ``s3://bucket/prefix`` holds exactly the files of a local store's
layout, under ``prefix/``: ``config``, ``packs/pack-<h>.pack``,
``packs/pack-<h>.idx`` and ``refs/<kind>/<name>`` (the id and a newline).
``git config ml.<remote>.endpoint URL`` points it at an S3-compatible service
(MinIO, Ceph, R2, moto...), addressed path-style. Credentials and the region come
from boto3's standard chain (environment, ``~/.aws``, SSO, instance roles...);
git-ml never reads or prints them.

How each contract of :class:`~mlgit.sync.backend.Backend` is kept on S3:

- Atomic files: a PUT (or a completed multipart upload) becomes visible whole or
  not at all, so :meth:`S3Backend.put_pack` uploads the pack (``upload_file``:
  multipart above 16 MiB, a few 8 MiB parts in flight, so bounded memory) and only
  then the index; :meth:`S3Backend.list_packs` counts a pack only when both exist.
  Existing files are not uploaded again (idempotent); the index is created with
  ``If-None-Match: *`` so that it can never replace another one.
- Compare-and-swap of refs: S3 conditional writes. :meth:`S3Backend.update_ref`
  GETs the ref (its id and its ETag), checks the id against ``expect``, then PUTs
  the new id with ``If-None-Match: *`` (the ref must still be absent) or
  ``If-Match: <ETag read>`` (the ref must still be that version). S3 evaluates the
  condition and the write as one atomic step: of racing writers one wins, the
  others get ``412 PreconditionFailed`` (or ``409 ConditionalRequestConflict``, or
  ``404`` if the ref vanished), which become ConflictError, changing nothing. An
  ETag is the MD5 of a ref's few bytes, so it stands for the ref's value.
  ``init`` creates ``config`` the same way (``If-None-Match: *``). botocore retries
  a request that failed in transit (at most 3 attempts); if a retried conditional
  PUT is refused but the ref now holds the new id, the first attempt was the one
  that wrote it (only its answer was lost), and the update counts as done.

- Compare-and-delete of refs (``git ml push --delete``): S3 conditional deletes.
  :meth:`S3Backend.delete_ref` GETs the ref, checks its id, then sends DeleteObject
  with ``If-Match: <ETag read>`` (AWS S3 general purpose buckets since 2025, Ceph
  RGW, moto; botocore knows ``IfMatch`` on DeleteObject since late 2024). A
  refused condition (412, or 404: the ref vanished) is a ConflictError. Since a
  service that ignored the header would delete unconditionally, the first deletion
  of a session checks it first on a scratch object under ``tmp/`` (a delete with a
  wrong ETag must be refused); a service that fails the check is refused with a
  UsageError, deleting nothing. The check cannot rule out a service that honours the
  header on that request and not on the next; nothing can, short of trusting it.

Limits of that choice:

- It needs a service that honours ``If-Match``/``If-None-Match`` on PutObject:
  AWS S3 (since Nov 2024), MinIO, Cloudflare R2, recent Ceph RGW, and moto (the
  test double: it checks the condition but not atomically with the write, so two
  racing PUTs can both pass; the tests' fixture serializes moto's requests to give
  it S3's atomicity). A service that ignores
  the headers would silently turn the CAS into "last writer wins"; to catch that,
  ``init`` re-sends its conditional create when it has just made a store and
  refuses (UsageError) if the service accepts it. A service that rejects the
  headers (501 NotImplemented) is reported as such.
- It needs a boto3/botocore that knows PutObject's ``IfMatch`` parameter (from
  late 2024; 1.36 and later certainly); an older one is refused with a UsageError
  naming the fix.
- No locking of packs: two clients may upload the same pack at once; that is
  harmless (a pack's name is the hash of its index, so same name, same bytes; the
  last complete upload wins and the index is created only once).

Bounds: a GET of a ref, the config or an index checks the object's
``ContentLength`` against the limit of its kind (``MAX_REF_LEN``,
``MAX_CONFIG_LEN``, ``MAX_INDEX_LEN``) before reading, and reads at most one byte
more than the limit, so an object of any size costs at most that much memory; a
ranged read of a pack reads at most the length asked for, plus one byte to detect
a service that ignored the range. A listing stops (FormatError) past
``MAX_REMOTE_LIST`` names.

Errors: every botocore/boto3 exception is turned into a one-line MlgitError (a
remote failure of :mod:`mlgit.errors`: RemoteUnreachableError for a network failure
or a timeout, RemoteAuthError for missing or rejected credentials and denied access,
RemoteRefusedError for an S3 error status or a service that lacks what git-ml needs;
a UsageError for a bucket that does not exist or a request boto3 refuses) that
names the remote URL, the bucket or the endpoint, and never the keys, a signature
or a presigned URL (service error messages are not copied, only their codes);
they are raised ``from None``. Requests are retried at most 3 times (botocore's
"standard" mode), never forever.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from mlgit.errors import (
    ConflictError,
    FormatError,
    MlgitError,
    RemoteAuthError,
    RemoteProtocolError,
    RemoteRefusedError,
    RemoteUnreachableError,
    UsageError,
)
from mlgit.format.ids import ObjectID, parse_object_id
from mlgit.format.limits import MAX_CONFIG_LEN, MAX_INDEX_LEN, MAX_REF_LEN, MAX_REMOTE_LIST
from mlgit.sync.backend import Backend, OnBadRef
from mlgit.sync.layout import (
    CONFIG,
    PACKS,
    REFS,
    TMP,
    check_pack_name,
    check_ref_path,
    complete_packs,
    index_file,
    pack_file,
    ref_file,
    refs_in,
)
from mlgit.sync.remote import config_hint

if TYPE_CHECKING:
    from mlgit.sync.remote import RemoteSpec

__all__ = ["S3Backend"]

_INSTALL_HINT = "pip install 'mlgit[s3]'"
_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}\Z")
_CODE_RE = re.compile(r"[A-Za-z0-9.]{1,64}\Z")
_MULTIPART_THRESHOLD = 16 << 20
_MULTIPART_CHUNK = 8 << 20
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"})
_BAD_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
    "TokenRefreshRequired", "InvalidSecurity", "InvalidClientTokenId",
})
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class _Lib:
    """The parts of boto3 and botocore used here, imported on first use."""

    def __init__(self) -> None:
        try:
            import boto3  # type: ignore[import-untyped,unused-ignore]
            from boto3 import exceptions as boto3_exceptions  # type: ignore[import-untyped,unused-ignore]
            from boto3.s3 import transfer  # type: ignore[import-untyped,unused-ignore]
            from botocore import config, exceptions  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise UsageError(f"s3:// remotes need boto3: {_INSTALL_HINT}") from None
        self.boto3: Any = boto3
        self.Config: Any = config.Config
        self.TransferConfig: Any = transfer.TransferConfig
        self.bx: Any = exceptions  # botocore.exceptions
        self.S3UploadFailedError: Any = boto3_exceptions.S3UploadFailedError
        self.errors: tuple[type[BaseException], ...] = (
            exceptions.ClientError, exceptions.BotoCoreError, boto3_exceptions.Boto3Error)


@functools.cache
def _lib() -> _Lib:
    """boto3 and botocore (cached), or UsageError saying how to install them."""
    return _Lib()


def _safe_endpoint(endpoint: str) -> str:
    """``endpoint`` reduced to scheme://host[:port][/path], for messages."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(an invalid endpoint URL)"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "(an invalid endpoint URL)"


def _error_code(exc: Any) -> tuple[str, int]:
    """A ClientError's error code (sanitized: letters and digits only) and HTTP status."""
    response = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code", ""))
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
    if not _CODE_RE.match(code):
        code = str(status) if status else "unknown"
    return code, int(status)


class S3Backend(Backend):
    """A store under ``s3://bucket/prefix``; see the module docstring for the design."""

    #: Keys per ListObjectsV2 page (S3's maximum; tests lower it to exercise paging).
    page_size = 1000

    def __init__(self, spec: RemoteSpec, client: Any | None = None) -> None:
        self.name = spec.name
        bucket, _, prefix = spec.path.partition("/")
        if "@" in bucket or ":" in bucket:  # do not echo: it may hold a key
            raise UsageError(f"remote {spec.name!r}: an s3:// URL cannot carry credentials or a "
                             "port; use s3://bucket/prefix and the AWS credential chain")
        if not _BUCKET_RE.match(bucket):
            raise UsageError(f"remote {spec.name!r}: bad S3 bucket name {bucket[:80]!r} "
                             "(expected s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint = spec.endpoint
        self.timeout = spec.timeout
        # What messages call the service: the endpoint URL botocore sends requests to
        # (for AWS, the region's endpoint it resolved), set once the client exists.
        self._where = _safe_endpoint(spec.endpoint) if spec.endpoint else "AWS S3"
        if spec.endpoint is not None:
            parts = urlsplit(spec.endpoint)
            if "@" in parts.netloc:
                raise UsageError(f"remote {spec.name!r}: the S3 endpoint must not contain "
                                 "credentials; use the AWS credential chain")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UsageError(f"remote {spec.name!r}: bad S3 endpoint {self._where}; set "
                                 f"{config_hint(spec.name, 'endpoint', 'https://host[:port]')}")
        lib = _lib()
        self._transfer = lib.TransferConfig(
            multipart_threshold=_MULTIPART_THRESHOLD, multipart_chunksize=_MULTIPART_CHUNK,
            max_concurrency=4, use_threads=True, preferred_transfer_client="classic")
        self._owns_client = client is None
        self._delete_checked = False
        self._s3: Any = client if client is not None else self._make_client()
        self._where = self._endpoint_used()
        members = self._s3.meta.service_model.operation_model("PutObject").input_shape.members
        if "IfMatch" not in members:
            self.close()
            raise UsageError("this boto3 is too old for S3 conditional writes, which git-ml "
                             "needs for safe ref updates: pip install -U 'boto3>=1.36'")

    def _endpoint_used(self) -> str:
        """The endpoint the client sends requests to, for messages (never credentials).

        For AWS (no ``endpoint`` set) it is the region's endpoint botocore resolved,
        with the region: ``https://s3.eu-west-1.amazonaws.com (region eu-west-1)``.
        """
        meta = getattr(self._s3, "meta", None)
        url = getattr(meta, "endpoint_url", None)
        region = getattr(meta, "region_name", None)
        if not isinstance(url, str) or not url:
            return self._where
        where = _safe_endpoint(url)
        if self.endpoint is None and isinstance(region, str) and region:
            where += f" (region {region})"
        return where

    def _fix_endpoint(self) -> str:
        """How to point this remote at another endpoint (or region), for messages."""
        hint = config_hint(self.name, "endpoint", "https://host[:port]")
        if self.endpoint is not None:
            return f"check {hint}"
        return ("check the AWS region (AWS_REGION, or region in ~/.aws/config), or for an "
                f"S3-compatible service set {hint}")

    def _make_client(self) -> Any:
        lib = _lib()
        options: dict[str, Any] = {
            "retries": {"max_attempts": 3, "mode": "standard"},
            "connect_timeout": 10,
            "read_timeout": self.timeout if self.timeout is not None else 120,
            "max_pool_connections": 16,
        }
        if self.endpoint is not None:
            # S3-compatible services: path-style addressing, and checksums only where the
            # API requires them (several services reject botocore's default CRC32 trailers).
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        try:
            session = lib.boto3.session.Session()
            return session.client("s3", endpoint_url=self.endpoint,
                                  config=lib.Config(**options))
        except (lib.bx.BotoCoreError, ValueError) as exc:
            kind = type(exc).__name__
            raise UsageError(f"{self.url}: cannot set up an S3 client for {self._where} "
                             f"({kind}); check the AWS configuration, or "
                             f"{self._fix_endpoint().removeprefix('check ')}") from None

    # ----------------------------------------------------------------- helpers

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, exc: BaseException, what: str) -> NoReturn:
        """Raise the MlgitError for a boto3/botocore exception ``exc`` (``from None``)."""
        raise self._translate(exc, what) from None

    def _translate(self, exc: BaseException, what: str) -> MlgitError:
        lib = _lib()
        bx = lib.bx
        # boto3's upload_file wraps a ClientError in S3UploadFailedError (as its context).
        while isinstance(exc, lib.S3UploadFailedError) and exc.__context__ is not None:
            exc = exc.__context__
        if isinstance(exc, bx.ClientError):
            code, status = _error_code(exc)
            if code == "NoSuchBucket":
                return UsageError(f"{self.url}: bucket {self.bucket!r} does not exist at "
                                  f"{self._where}; create it, or set the remote's URL with "
                                  f"{config_hint(self.name, 'url', 's3://BUCKET/PREFIX')}")
            if code in _DENIED_CODES or (status == 403 and code not in _BAD_CREDENTIAL_CODES):
                return RemoteAuthError(f"{self.url}: access denied to bucket {self.bucket!r} "
                                       f"while {what}; check that the AWS credentials may use "
                                       "it")
            if code in _BAD_CREDENTIAL_CODES:
                return RemoteAuthError(f"{self.url}: the S3 service at {self._where} rejected "
                                       f"the AWS credentials ({code}) while {what}; check the "
                                       "access key and secret")
            if code == "NotImplemented" or status == 501:
                return RemoteRefusedError(f"{self.url}: the S3 service at {self._where} does "
                                          f"not implement a request git-ml needs (while "
                                          f"{what}); git-ml needs conditional writes "
                                          "(If-Match/If-None-Match)")
            return RemoteRefusedError(f"{self.url}: S3 error {code} (HTTP {status}) while "
                                      f"{what}")
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return RemoteAuthError(f"{self.url}: no usable AWS credentials found; configure "
                                   "them (AWS_PROFILE, ~/.aws/credentials, AWS_ACCESS_KEY_ID/"
                              "AWS_SECRET_ACCESS_KEY, or an instance role)")
        if isinstance(exc, bx.CredentialRetrievalError | bx.ProfileNotFound
                      | bx.TokenRetrievalError | bx.ConfigParseError):
            return RemoteAuthError(f"{self.url}: cannot load the AWS credentials "
                                   f"({type(exc).__name__}); check the AWS configuration")
        if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
            return RemoteUnreachableError(
                f"{self.url}: the S3 endpoint {self._where} timed out while {what}; check the "
                f"network, and {self._fix_endpoint()} (or wait longer: `git config ml.timeout "
                "SECONDS`)")
        if isinstance(exc, bx.SSLError):
            return RemoteUnreachableError(f"{self.url}: TLS failed with the S3 endpoint "
                                          f"{self._where} while {what}")
        if isinstance(exc, bx.EndpointConnectionError | bx.ProxyConnectionError
                      | bx.ConnectionError):
            return RemoteUnreachableError(f"{self.url}: cannot reach the S3 endpoint "
                                          f"{self._where} while {what}; check the network, "
                                          f"and {self._fix_endpoint()}")
        if isinstance(exc, bx.HTTPClientError | bx.IncompleteReadError):
            return RemoteUnreachableError(f"{self.url}: the connection to {self._where} failed "
                                          f"while {what} ({type(exc).__name__})")
        if isinstance(exc, bx.ParamValidationError):
            return UsageError(f"{self.url}: boto3 refused the request while {what} "
                              "(check the bucket name and the remote's URL)")
        return RemoteRefusedError(f"{self.url}: S3 request failed while {what} "
                                  f"({type(exc).__name__})")

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Translate any boto3/botocore exception raised inside into an MlgitError."""
        try:
            yield
        except _lib().errors as exc:
            self._fail(exc, what)

    def _get(self, name: str, what: str, limit: int) -> tuple[bytes, str] | None:
        """The whole file ``name`` and its ETag, or None when it does not exist.

        A file larger than ``limit`` bytes is a FormatError, found from its
        ``ContentLength`` before reading, or after reading ``limit + 1`` bytes.
        """
        with self._calling(what):
            try:
                resp = self._s3.get_object(Bucket=self.bucket, Key=self._key(name))
            except _lib().bx.ClientError as exc:
                if _error_code(exc)[0] == "NoSuchKey":
                    return None
                raise
            with contextlib.closing(resp["Body"]) as body:
                size = resp.get("ContentLength")
                if isinstance(size, int) and size > limit:
                    raise FormatError(f"{self.url}: {name} is {size} bytes, more than the "
                                      f"{limit} allowed")
                data: bytes = body.read(limit + 1)
        if len(data) > limit:
            raise FormatError(f"{self.url}: {name} is more than the {limit} bytes allowed")
        return data, str(resp.get("ETag", ""))

    def _size(self, name: str, what: str) -> int | None:
        """The size of file ``name``, or None when it does not exist (HEAD)."""
        with self._calling(what):
            try:
                resp = self._s3.head_object(Bucket=self.bucket, Key=self._key(name))
            except _lib().bx.ClientError as exc:
                if _error_code(exc)[0] in _MISSING_KEY_CODES:
                    return None
                raise
        return int(resp["ContentLength"])

    def _put_new(self, name: str, data: bytes, what: str) -> bool:
        """Create file ``name`` if absent (``If-None-Match: *``); False if it already existed."""
        with self._calling(what):
            try:
                self._s3.put_object(Bucket=self.bucket, Key=self._key(name), Body=data,
                                    IfNoneMatch="*")
            except _lib().bx.ClientError as exc:
                if _error_code(exc)[0] in _CONFLICT_CODES:
                    return False
                raise
        return True

    def _list(self, sub: str, what: str) -> list[str]:
        """Names (relative to the prefix) of every file under ``sub``, all pages."""
        base = self._key(sub)
        strip = len(self._key(""))
        out: list[str] = []
        with self._calling(what):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, PaginationConfig={"PageSize": self.page_size})
            for page in pages:
                out.extend(str(item["Key"])[strip:] for item in page.get("Contents", ()))
                if len(out) > MAX_REMOTE_LIST:
                    raise FormatError(f"{self.url}: {sub} lists more than the "
                                      f"{MAX_REMOTE_LIST} files allowed")
        return out

    # -------------------------------------------------------------- interface

    def read_config(self) -> bytes | None:
        """See :meth:`Backend.read_config`."""
        got = self._get(CONFIG, "reading config", MAX_CONFIG_LEN)
        return None if got is None else got[0]

    def init(self, config: bytes) -> None:
        """See :meth:`Backend.init`: a conditional create of ``config``."""
        if self.read_config() is not None:
            return
        if not self._put_new(CONFIG, config, "creating config"):
            return  # another client created the store meanwhile
        # A service that ignores If-None-Match would accept this second create: refuse it,
        # as it would also turn every ref update into "last writer wins".
        if self._put_new(CONFIG, config, "checking conditional writes"):
            raise RemoteRefusedError(f"{self.url}: the S3 service at {self._where} ignores "
                                     "conditional writes (If-None-Match), which git-ml needs "
                                     "for safe ref updates")

    def list_packs(self) -> list[str]:
        """See :meth:`Backend.list_packs`."""
        return complete_packs(n[len(PACKS) + 1:] for n in self._list(f"{PACKS}/", "listing packs"))

    def read_index(self, stem: str) -> bytes:
        """See :meth:`Backend.read_index`."""
        got = self._get(index_file(stem), f"reading {stem}.idx",
                        MAX_INDEX_LEN)
        if got is None:
            raise FormatError(f"{self.url}: {stem}.idx is missing")
        return got[0]

    def read_pack(self, stem: str, offset: int, length: int) -> bytes:
        """See :meth:`Backend.read_pack`: one ranged GET, its length checked."""
        check_pack_name(stem)
        if offset < 0 or length < 0:
            raise FormatError(f"{self.url}: bad range {offset}+{length} of {stem}.pack")
        if length == 0:
            return b""
        what = f"reading {stem}.pack"
        with self._calling(what):
            try:
                resp = self._s3.get_object(Bucket=self.bucket,
                                           Key=self._key(pack_file(stem)),
                                           Range=f"bytes={offset}-{offset + length - 1}")
            except _lib().bx.ClientError as exc:
                code = _error_code(exc)[0]
                if code == "NoSuchKey":
                    raise FormatError(f"{self.url}: {stem}.pack is missing") from None
                if code in ("InvalidRange", "416"):
                    raise FormatError(f"{self.url}: {stem}.pack is shorter than its index "
                                      "says") from None
                raise
            with contextlib.closing(resp["Body"]) as body:
                data: bytes = body.read(length + 1)
        status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if len(data) > length or (status != 206 and offset != 0):
            raise RemoteProtocolError(f"{self.url}: the S3 service at {self._where} ignored a "
                                      f"ranged read of {stem}.pack")
        if len(data) != length:
            raise FormatError(f"{self.url}: {stem}.pack is shorter than its index says")
        return data

    def put_pack(self, stem: str, pack: Path, index: bytes) -> None:
        """See :meth:`Backend.put_pack`: the pack (multipart if large), then its index."""
        name = pack_file(stem)
        size = pack.stat().st_size
        have = self._size(name, f"checking {stem}.pack")
        if have is None:
            with self._calling(f"uploading {stem}.pack"):
                self._s3.upload_file(str(pack), self.bucket, self._key(name),
                                     Config=self._transfer)
        elif have != size:
            raise FormatError(f"{self.url}: {stem}.pack already exists with {have} bytes, "
                              f"not {size}")
        self._put_new(index_file(stem), index, f"uploading {stem}.idx")

    def list_refs(self, on_bad: OnBadRef | None = None) -> dict[str, ObjectID]:
        """See :meth:`Backend.list_refs`."""
        found = self._list(f"{REFS}/", "listing refs")
        out: dict[str, ObjectID] = {}
        for ref in refs_in(n[len(REFS) + 1:] for n in found):
            try:
                oid, _ = self._read_ref(ref)
            except FormatError as e:
                if on_bad is None:
                    raise
                on_bad(ref, e)
                continue
            if oid is not None:
                out[ref] = oid
        return out

    def _read_ref(self, ref: str) -> tuple[ObjectID | None, str | None]:
        got = self._get(ref_file(ref), f"reading {ref}", MAX_REF_LEN)
        if got is None:
            return None, None
        data, etag = got
        try:
            return parse_object_id(data.decode("ascii").strip()), etag
        except (UnicodeDecodeError, FormatError):
            raise FormatError(f"{self.url}: ref {ref} is corrupt") from None

    def update_ref(self, ref: str, new: ObjectID, expect: ObjectID | None) -> None:
        """See :meth:`Backend.update_ref`: a conditional PUT (If-None-Match / If-Match)."""
        check_ref_path(ref)
        new = parse_object_id(new)
        current, etag = self._read_ref(ref)
        if current != expect:
            raise ConflictError(f"{self.url}: {ref} is at {current}, not {expect}")
        if etag == "":
            raise RemoteRefusedError(f"{self.url}: the S3 service at {self._where} sent no "
                                     f"ETag for {ref}; git-ml needs ETags for safe ref updates")
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        with self._calling(f"updating {ref}"):
            try:
                self._s3.put_object(Bucket=self.bucket, Key=self._key(ref_file(ref)),
                                    Body=(new + "\n").encode(), **condition)
            except _lib().bx.ClientError as exc:
                code = _error_code(exc)[0]
                if code in _CONFLICT_CODES or (etag is not None and code == "NoSuchKey"):
                    retried = ((exc.response.get("ResponseMetadata") or {})
                               .get("RetryAttempts") or 0)
                    if retried and self._read_ref(ref)[0] == new:
                        return  # the first attempt was written; only its answer was lost
                    raise ConflictError(f"{self.url}: {ref} moved while it was being updated "
                                        f"(from {expect})") from None
                raise

    def delete_ref(self, ref: str, expect: ObjectID) -> None:
        """See :meth:`Backend.delete_ref`: a conditional DeleteObject (``If-Match``).

        The ref is read (its id and ETag), its id checked against ``expect``, then
        deleted with ``If-Match: <ETag read>``, which S3 evaluates atomically with
        the delete. The first deletion of a session first checks that the service
        honours the condition at all (:meth:`_check_conditional_delete`).
        """
        check_ref_path(ref)
        expect = parse_object_id(expect)
        current, etag = self._read_ref(ref)
        if current != expect:
            state = "is gone" if current is None else f"is at {current}"
            raise ConflictError(f"{self.url}: {ref} {state}, not {expect}")
        if not etag:
            raise RemoteRefusedError(f"{self.url}: the S3 service at {self._where} sent no "
                                     f"ETag for {ref}; git-ml needs ETags for safe ref deletion")
        self._check_conditional_delete()
        with self._calling(f"deleting {ref}"):
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=self._key(ref_file(ref)),
                                       IfMatch=etag)
            except _lib().bx.ClientError as exc:
                code = _error_code(exc)[0]
                if code in _CONFLICT_CODES or code in _MISSING_KEY_CODES:
                    retried = ((exc.response.get("ResponseMetadata") or {})
                               .get("RetryAttempts") or 0)
                    if retried and self._read_ref(ref)[0] is None:
                        return  # the first attempt deleted it; only its answer was lost
                    raise ConflictError(f"{self.url}: {ref} moved while it was being deleted "
                                        f"(from {expect})") from None
                raise

    def _check_conditional_delete(self) -> None:
        """UsageError unless the service refuses a DeleteObject whose ``If-Match`` fails.

        A service that ignored the header would turn a compare-and-delete into an
        unconditional delete, losing a teammate's push that raced ours. So, once per
        backend: a scratch object ``tmp/delete-check-<random>`` is written, deleted
        with an ETag it does not have (which must be refused with 412), then deleted.
        """
        if self._delete_checked:
            return
        members = self._s3.meta.service_model.operation_model("DeleteObject").input_shape.members
        if "IfMatch" not in members:
            raise UsageError("this boto3 is too old for S3 conditional deletes, which git-ml "
                             "needs to delete refs safely: pip install -U 'boto3>=1.36'")
        key = self._key(f"{TMP}/delete-check-{os.urandom(8).hex()}")
        honoured = False
        with self._calling("checking conditional deletes"):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=b"git-ml\n")
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=f'"{"0" * 32}"')
            except _lib().bx.ClientError as exc:
                if _error_code(exc)[0] not in _CONFLICT_CODES:
                    raise
                honoured = True
            finally:
                with contextlib.suppress(*_lib().errors):
                    self._s3.delete_object(Bucket=self.bucket, Key=key)
        if not honoured:
            raise RemoteRefusedError(f"{self.url}: the S3 service at {self._where} ignores "
                                     "conditional deletes (If-Match on DeleteObject), so git-ml "
                                     "cannot delete a ref there without risking a teammate's "
                                     "push; nothing was deleted")
        self._delete_checked = True

    def close(self) -> None:
        """Close the client's connections (only a client this backend made)."""
        if self._owns_client:
            with contextlib.suppress(Exception):
                self._s3.close()

