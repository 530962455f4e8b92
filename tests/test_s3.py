"""The S3 backend against moto's server: failures (missing bucket, denied access,
unreachable endpoint, rejected keys) and their messages, a large multipart pack,
paging, and the conditional writes behind the refs' compare-and-swap.
(The shared contracts are in test_backends.py.)"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from fixtures_s3 import S3Env, _isolate_aws_env

from mlgit.errors import (
    ConflictError,
    FormatError,
    RemoteAuthError,
    RemoteRefusedError,
    RemoteUnreachableError,
    UsageError,
)
from mlgit.format.config import StoreConfig, encode_config
from mlgit.format.ids import ObjectID
from mlgit.sync import s3 as s3_module
from mlgit.sync.remote import parse_url
from mlgit.sync.s3 import S3Backend

OID_A = ObjectID("a" * 32)
OID_B = ObjectID("b" * 32)
OID_C = ObjectID("c" * 32)


def _backend(url: str, endpoint: str | None, tmp_path: Path, client: Any = None) -> S3Backend:
    return S3Backend(parse_url("origin", url, tmp_path, endpoint), client)


def _assert_clean(exc: BaseException, *secrets: str) -> None:
    """No secret in the message, the repr or the printed traceback; one line; no cause."""
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    context = exc.__context__
    while context is not None:  # even the suppressed botocore exceptions
        shown += [str(context), repr(context)]
        context = context.__context__
    for secret in secrets:
        for text in shown:
            assert secret not in text
    assert "\n" not in str(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__  # raised `from None`
    for text in shown:
        assert "Signature=" not in text
        assert "X-Amz-Credential" not in text


def _pack(tmp_path: Path, data: bytes) -> tuple[str, Path]:
    p = tmp_path / f"up-{uuid.uuid4().hex[:8]}.pack"
    p.write_bytes(data)
    return "pack-" + uuid.uuid4().hex, p


# ---------------------------------------------------------------- configuration


def test_url_and_prefix(s3_env: S3Env, tmp_path: Path) -> None:
    b = _backend(f"s3://{s3_env.bucket}/a/b/", s3_env.endpoint, tmp_path)
    assert b.url == f"s3://{s3_env.bucket}/a/b"
    b.init(encode_config(StoreConfig()))
    b.update_ref("datasets/d", OID_A, None)
    keys = {o["Key"] for o in s3_env.client.list_objects_v2(Bucket=s3_env.bucket)["Contents"]}
    assert keys == {"a/b/config", "a/b/refs/datasets/d"}
    assert s3_env.client.get_object(Bucket=s3_env.bucket, Key="a/b/refs/datasets/d")[
        "Body"].read() == OID_A.encode() + b"\n"
    b.close()
    root = _backend(f"s3://{s3_env.bucket}", s3_env.endpoint, tmp_path)
    assert root.url == f"s3://{s3_env.bucket}"
    assert root.read_config() is None  # the store is at a/b, not at the root
    root.close()


def test_credentials_in_url_or_endpoint_are_refused_without_echo(tmp_path: Path) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex  # not in this file's source, which tracebacks show
    with pytest.raises(UsageError) as e1:
        _backend(f"s3://AKIAXX:{secret}@bucket/p", None, tmp_path)
    _assert_clean(e1.value, secret)
    with pytest.raises(UsageError) as e2:
        _backend("s3://bucket/p", f"http://AKIAXX:{secret}@127.0.0.1:9000", tmp_path)
    _assert_clean(e2.value, secret)
    with pytest.raises(UsageError, match="bucket"):
        _backend("s3:///p", None, tmp_path)
    with pytest.raises(UsageError, match="endpoint"):
        _backend("s3://bucket/p", "127.0.0.1:9000", tmp_path)


def test_missing_boto3_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    s3_module._lib.cache_clear()
    with pytest.raises(UsageError, match=r"pip install 'mlgit\[s3\]'"):
        _backend("s3://bucket/p", None, tmp_path)
    s3_module._lib.cache_clear()


# ---------------------------------------------------------------------- failures


def test_bucket_that_does_not_exist(s3_env: S3Env, tmp_path: Path) -> None:
    b = _backend("s3://no-such-bucket-mlgit/store", s3_env.endpoint, tmp_path)
    stem, path = _pack(tmp_path, b"MLGPACK\x01data")
    calls: list[Callable[[], object]] = [
        b.read_config,
        lambda: b.init(b"config"),
        b.list_packs,
        b.list_refs,
        lambda: b.put_pack(stem, path, b"idx"),
        lambda: b.update_ref("datasets/d", OID_A, None),
    ]
    for call in calls:
        with pytest.raises(UsageError) as exc:
            call()
        assert "bucket 'no-such-bucket-mlgit' does not exist" in str(exc.value)
        _assert_clean(exc.value, s3_env.secret_key)
    b.close()


def test_unreachable_endpoint(s3_env: S3Env, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    b = _backend(f"s3://{s3_env.bucket}/p", endpoint, tmp_path)
    start = time.monotonic()
    with pytest.raises(RemoteUnreachableError) as exc:
        b.read_config()
    assert time.monotonic() - start < 20  # a few bounded retries, not forever
    assert f"cannot reach the S3 endpoint {endpoint}" in str(exc.value)
    _assert_clean(exc.value, s3_env.secret_key)
    stem, path = _pack(tmp_path, b"MLGPACK\x01" + os.urandom(100))
    with pytest.raises(RemoteUnreachableError, match="cannot reach") as exc2:
        b.put_pack(stem, path, b"idx")
    _assert_clean(exc2.value, s3_env.secret_key)
    b.close()


def _set_moto_auth(endpoint: str, count: str) -> None:
    """Turn moto's IAM authentication on ("0") or off ("inf"), server-wide."""
    req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                 headers={"Content-Type": "text/plain"}, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        assert json.load(resp)["status"] == "ok"


@pytest.fixture
def moto_iam_auth(s3_env: S3Env) -> Iterator[dict[str, str]]:
    """An IAM user with no permissions; moto checks signatures and IAM while this lasts."""
    import boto3  # type: ignore[import-untyped,unused-ignore]

    iam = boto3.session.Session().client(
        "iam", endpoint_url=s3_env.endpoint, region_name="us-east-1",
        aws_access_key_id=s3_env.access_key, aws_secret_access_key=s3_env.secret_key)
    user = f"nobody-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    iam.close()
    _set_moto_auth(s3_env.endpoint, "0")
    try:
        yield {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        _set_moto_auth(s3_env.endpoint, "inf")


def test_access_denied_and_rejected_keys(s3_env: S3Env, moto_iam_auth: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    url = f"s3://{s3_env.bucket}/p"
    # A known user without any permission: AccessDenied.
    _isolate_aws_env(monkeypatch, moto_iam_auth["id"], moto_iam_auth["secret"])
    b = _backend(url, s3_env.endpoint, tmp_path)
    stem, path = _pack(tmp_path, b"MLGPACK\x01data")
    for call in (b.read_config, b.list_packs,
                 lambda: b.put_pack(stem, path, b"idx"),
                 lambda: b.update_ref("datasets/d", OID_A, None)):
        with pytest.raises(RemoteAuthError) as exc:
            call()
        assert f"access denied to bucket {s3_env.bucket!r}" in str(exc.value)
        _assert_clean(exc.value, moto_iam_auth["secret"], moto_iam_auth["id"])
    b.close()
    # The right key id with a wrong secret: SignatureDoesNotMatch, and the secret stays out.
    wrong_secret = "WRONG-secret-" + uuid.uuid4().hex
    _isolate_aws_env(monkeypatch, moto_iam_auth["id"], wrong_secret)
    b = _backend(url, s3_env.endpoint, tmp_path)
    with pytest.raises(RemoteAuthError, match="rejected the AWS credentials") as exc2:
        b.read_config()
    assert "SignatureDoesNotMatch" in str(exc2.value)
    _assert_clean(exc2.value, wrong_secret, moto_iam_auth["secret"], moto_iam_auth["id"])
    b.close()
    # A key id the service does not know.
    _isolate_aws_env(monkeypatch, "AKIAUNKNOWNKEY000000", s3_env.secret_key)
    b = _backend(url, s3_env.endpoint, tmp_path)
    with pytest.raises(RemoteAuthError, match="InvalidAccessKeyId") as exc3:
        b.list_refs()
    _assert_clean(exc3.value, s3_env.secret_key, "AKIAUNKNOWNKEY000000")
    b.close()


def test_no_credentials_at_all(s3_env: S3Env, monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    b = _backend(f"s3://{s3_env.bucket}/p", s3_env.endpoint, tmp_path)
    with pytest.raises(RemoteAuthError, match="no usable AWS credentials"):
        b.read_config()
    b.close()


# ------------------------------------------------------------------------- packs


def test_large_pack_multipart_and_ranged_reads(s3_env: S3Env,
                                               s3_backend_factory: Callable[[], S3Backend],
                                               tmp_path: Path) -> None:
    b = s3_backend_factory()
    b.init(encode_config(StoreConfig()))
    data = b"MLGPACK\x01" + os.urandom((40 << 20) - 8)  # 40 MiB
    stem, path = _pack(tmp_path, data)
    b.put_pack(stem, path, b"the index")
    head = s3_env.client.head_object(Bucket=s3_env.bucket, Key=f"{b.prefix}/packs/{stem}.pack")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-5")  # 5 parts of 8 MiB: a multipart upload
    assert b.list_packs() == [stem]
    assert b.read_index(stem) == b"the index"
    part = 8 << 20
    for offset, length in [(0, 8), (part - 3, 7), (3 * part - 100, 2 * part), (len(data) - 1, 1),
                           (12_345_678, 1 << 20)]:
        assert b.read_pack(stem, offset, length) == data[offset:offset + length]
    with pytest.raises(FormatError, match="shorter"):
        b.read_pack(stem, len(data) - 10, 11)
    with pytest.raises(FormatError, match="shorter"):
        b.read_pack(stem, len(data) + 5, 1)
    b.put_pack(stem, path, b"the index")  # idempotent: nothing is uploaded again
    assert b.read_index(stem) == b"the index"


def test_a_pack_without_its_index_is_not_listed(s3_env: S3Env,
                                                s3_backend_factory: Callable[[], S3Backend],
                                                tmp_path: Path) -> None:
    b = s3_backend_factory()
    stem, path = _pack(tmp_path, b"MLGPACK\x01data")
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=f"{b.prefix}/packs/{stem}.pack",
                             Body=b"MLGPACK\x01data")
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=f"{b.prefix}/packs/pack-x.idx", Body=b"")
    assert b.list_packs() == []
    b.put_pack(stem, path, b"idx")  # completes it
    assert b.list_packs() == [stem]
    with pytest.raises(FormatError, match="missing"):
        b.read_pack("pack-" + "0" * 32, 0, 1)


def test_an_existing_pack_of_another_size_is_not_overwritten(
        s3_env: S3Env, s3_backend_factory: Callable[[], S3Backend], tmp_path: Path) -> None:
    b = s3_backend_factory()
    stem, path = _pack(tmp_path, b"MLGPACK\x01data")
    key = f"{b.prefix}/packs/{stem}.pack"
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"other")
    with pytest.raises(FormatError, match="already exists"):
        b.put_pack(stem, path, b"idx")
    assert s3_env.client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read() == b"other"


def test_listing_is_paginated(s3_backend_factory: Callable[[], S3Backend],
                              tmp_path: Path) -> None:
    b = s3_backend_factory()
    b.page_size = 3
    stems = []
    for _ in range(5):
        stem, path = _pack(tmp_path, b"MLGPACK\x01" + os.urandom(10))
        b.put_pack(stem, path, b"idx")
        stems.append(stem)
    for n in range(7):
        b.update_ref(f"checkpoints/run-{n}", OID_A, None)
    assert b.list_packs() == sorted(stems)
    assert len(b.list_refs()) == 7


# -------------------------------------------------------------------------- refs


class _RaceClient:
    """A client whose next ref PUT is preceded by another writer's update."""

    def __init__(self, real: Any, before_put: Callable[[], None]) -> None:
        self._real = real
        self._before_put = before_put

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_object(self, **kwargs: Any) -> Any:
        if "/refs/" in kwargs["Key"]:
            hook, self._before_put = self._before_put, lambda: None
            hook()
        return self._real.put_object(**kwargs)


def _raced(s3_env: S3Env, b: S3Backend, tmp_path: Path, other: Callable[[], None]) -> S3Backend:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    real = boto3.session.Session().client("s3", endpoint_url=s3_env.endpoint)
    return _backend(b.url, s3_env.endpoint, tmp_path, _RaceClient(real, other))


def test_the_write_itself_is_conditional(s3_env: S3Env,
                                         s3_backend_factory: Callable[[], S3Backend],
                                         tmp_path: Path) -> None:
    """The other writer moves the ref between our read and our write: the PUT must fail."""
    other = s3_backend_factory()
    # Create: both saw no ref; the other writer creates it first.
    racer = _raced(s3_env, other, tmp_path, lambda: other.update_ref("datasets/d", OID_B, None))
    with pytest.raises(ConflictError):
        racer.update_ref("datasets/d", OID_A, None)
    assert other.list_refs() == {"datasets/d": OID_B}
    # Replace: both saw B; the other writer moves it to C first.
    racer = _raced(s3_env, other, tmp_path, lambda: other.update_ref("datasets/d", OID_C, OID_B))
    with pytest.raises(ConflictError):
        racer.update_ref("datasets/d", OID_A, OID_B)
    assert other.list_refs() == {"datasets/d": OID_C}
    # Replace after a deletion.
    key = f"{other.prefix}/refs/datasets/d"
    racer = _raced(s3_env, other, tmp_path,
                   lambda: s3_env.client.delete_object(Bucket=s3_env.bucket, Key=key))
    with pytest.raises(ConflictError):
        racer.update_ref("datasets/d", OID_A, OID_C)
    assert other.list_refs() == {}


class _IgnoresConditions:
    """An S3-compatible service that drops If-Match / If-None-Match."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_object(self, **kwargs: Any) -> Any:
        kwargs.pop("IfMatch", None)
        kwargs.pop("IfNoneMatch", None)
        return self._real.put_object(**kwargs)


def test_init_refuses_a_service_without_conditional_writes(
        s3_env: S3Env, s3_backend_factory: Callable[[], S3Backend], tmp_path: Path) -> None:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    url = s3_backend_factory().url
    real = boto3.session.Session().client("s3", endpoint_url=s3_env.endpoint)
    b = _backend(url, s3_env.endpoint, tmp_path, _IgnoresConditions(real))
    with pytest.raises(RemoteRefusedError, match="ignores conditional writes"):
        b.init(encode_config(StoreConfig()))
    real.close()


def test_corrupt_ref(s3_env: S3Env, s3_backend_factory: Callable[[], S3Backend]) -> None:
    b = s3_backend_factory()
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=f"{b.prefix}/refs/datasets/d",
                             Body=b"not an id\n")
    with pytest.raises(FormatError, match="corrupt"):
        b.list_refs()
    with pytest.raises(FormatError, match="corrupt"):
        b.update_ref("datasets/d", OID_A, None)


class _AnswerLost:
    """The ref PUT is written, but its answer is lost and botocore's retry gets a 412."""

    def __init__(self, real: Any, then: Callable[[], None] = lambda: None) -> None:
        self._real = real
        self._then = then

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def put_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

        self._real.put_object(**kwargs)
        if "/refs/" not in kwargs["Key"]:
            return None
        self._then()
        raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one of "
                                     "the pre-conditions you specified did not hold"},
                           "ResponseMetadata": {"HTTPStatusCode": 412, "RetryAttempts": 1}},
                          "PutObject")


def test_a_retried_update_whose_first_attempt_won(
        s3_env: S3Env, s3_backend_factory: Callable[[], S3Backend], tmp_path: Path) -> None:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    other = s3_backend_factory()
    real = boto3.session.Session().client("s3", endpoint_url=s3_env.endpoint)
    b = _backend(other.url, s3_env.endpoint, tmp_path, _AnswerLost(real))
    b.update_ref("datasets/d", OID_A, None)  # no ConflictError: the ref holds our id
    b.update_ref("datasets/d", OID_B, OID_A)
    assert other.list_refs() == {"datasets/d": OID_B}
    # But if someone else moved the ref after our write, it is a conflict after all.
    b = _backend(other.url, s3_env.endpoint, tmp_path,
                 _AnswerLost(real, lambda: other.update_ref("datasets/d", OID_C, OID_A)))
    with pytest.raises(ConflictError):
        b.update_ref("datasets/d", OID_A, OID_B)
    assert other.list_refs() == {"datasets/d": OID_C}
    real.close()


# -------------------------------------------------------------------- end to end


def test_push_and_pull_through_s3(s3_env: S3Env, tmp_path: Path) -> None:
    """`git ml push`/`pull` with `ml.origin.url s3://...` and `ml.origin.endpoint`."""
    from conftest import git, make_tree, read_tree, run_gitml

    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    url = f"s3://{s3_env.bucket}/team/store"

    def use_s3(repo: Path) -> None:
        git(repo, "config", "ml.origin.url", url)
        git(repo, "config", "ml.origin.endpoint", s3_env.endpoint)

    alice = tmp_path / "alice"
    alice.mkdir()
    git(alice, "init", "-q")
    run_gitml(alice, "init", "--pack-size", "65536", "--chunk-size", "4096")
    make_tree(alice, {f"data/part{i % 3}/f{i}.bin": os.urandom(2000) for i in range(30)})
    run_gitml(alice, "add", "data")
    git(alice, "add", "-A")
    git(alice, "commit", "-qm", "v1")
    git(alice, "remote", "add", "origin", str(origin))
    use_s3(alice)
    run_gitml(alice, "push")
    git(alice, "push", "-q", "-u", "origin", "main")
    keys = [o["Key"] for o in s3_env.client.list_objects_v2(
        Bucket=s3_env.bucket, Prefix="team/store/")["Contents"]]
    assert "team/store/config" in keys
    assert "team/store/refs/datasets/data" in keys
    assert any(k.endswith(".pack") for k in keys)

    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    use_s3(bob)
    run_gitml(bob, "pull")
    assert read_tree(bob / "data") == read_tree(alice / "data")
    listing = json.loads(run_gitml(bob, "ls", "origin", "--json").stdout)
    assert ("dataset", "data") in {(e["kind"], e["name"]) for e in listing}


def test_cli_errors_are_one_line_and_keep_the_secret(s3_env: S3Env, tmp_path: Path) -> None:
    from conftest import git, run_gitml

    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    run_gitml(repo, "init")
    git(repo, "config", "ml.origin.url", "s3://no-such-bucket-mlgit/x")
    git(repo, "config", "ml.origin.endpoint", s3_env.endpoint)
    p = run_gitml(repo, "push", check=False)
    assert p.returncode == UsageError.exit_code, p.stderr
    assert "bucket 'no-such-bucket-mlgit' does not exist" in p.stderr
    assert "Traceback" not in p.stderr
    assert s3_env.secret_key not in p.stdout + p.stderr
