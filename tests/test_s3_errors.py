"""S3 errors name the endpoint actually used and a config key that fixes them; a ref is
deleted from S3 only by a conditional delete, on a service that honours it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, run_gitml
from fixtures_s3 import S3Env

from mlgit.errors import (
    ConflictError,
    MlgitError,
    RemoteRefusedError,
    RemoteUnreachableError,
)
from mlgit.format.config import StoreConfig, encode_config
from mlgit.format.ids import ObjectID
from mlgit.sync.remote import parse_url
from mlgit.sync.s3 import S3Backend

OID_A = ObjectID("a" * 32)
OID_B = ObjectID("b" * 32)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_endpoint_botocore_resolved_is_named(s3_env: S3Env, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No ml.<remote>.endpoint: the message names what botocore sent the requests to."""
    port = _closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    b = S3Backend(parse_url("origin", f"s3://{s3_env.bucket}/p", tmp_path))
    with pytest.raises(MlgitError) as exc:
        b.read_config()
    b.close()
    message = str(exc.value)
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in message, message
    assert "the AWS S3 endpoint" not in message


@pytest.mark.usefixtures("s3_env")
def test_aws_names_the_regions_endpoint(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    for var in ("HTTPS_PROXY", "https_proxy"):  # so that nothing leaves this machine
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    b = S3Backend(parse_url("origin", "s3://some-team-bucket/p", tmp_path))
    with pytest.raises(MlgitError) as exc:
        b.read_config()
    b.close()
    message = str(exc.value)
    assert "https://s3.eu-west-3.amazonaws.com (region eu-west-3)" in message, message
    assert "AWS region" in message
    assert "`git config ml.origin.endpoint https://host[:port]`" \
        in message


def test_a_remote_given_as_a_url_gets_a_key_that_works(s3_env: S3Env, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    run_gitml(repo, "init")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env.endpoint)
    p = run_gitml(repo, "ls", "s3://no-such-bucket-mlgit/p", check=False)
    assert p.returncode == 2, p.stderr
    assert "ml.s3:" not in p.stderr
    assert "`git config ml.NAME.url s3://no-such-bucket-mlgit/p`" in p.stderr, p.stderr
    git(repo, "config", "ml.origin.url", "s3://no-such-bucket-mlgit/p")
    p = run_gitml(repo, "ls", "origin", check=False)
    assert p.returncode == 2, p.stderr
    assert "`git config ml.origin.url s3://BUCKET/PREFIX`" in p.stderr, p.stderr
    port = _closed_port()
    git(repo, "config", "ml.origin.endpoint", f"http://127.0.0.1:{port}")
    p = run_gitml(repo, "ls", "origin", check=False)
    assert p.returncode == RemoteUnreachableError.exit_code, p.stderr
    assert f"http://127.0.0.1:{port}" in p.stderr
    assert "`git config ml.origin.endpoint https://host[:port]`" in p.stderr, p.stderr


# ------------------------------------------------------------- conditional deletes


class _Wrapped:
    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _RacedDelete(_Wrapped):
    """Another writer moves the ref between our read and our DeleteObject."""

    def __init__(self, real: Any, before: Callable[[], None]) -> None:
        super().__init__(real)
        self._before = before

    def delete_object(self, **kwargs: Any) -> Any:
        if "/refs/" in kwargs["Key"]:
            hook, self._before = self._before, lambda: None
            hook()
        return self._real.delete_object(**kwargs)


class _IgnoresDeleteConditions(_Wrapped):
    """A service that drops If-Match on DeleteObject (but honours it on PutObject)."""

    def delete_object(self, **kwargs: Any) -> Any:
        kwargs.pop("IfMatch", None)
        return self._real.delete_object(**kwargs)


class _DeleteAnswerLost(_Wrapped):
    """The delete happens, its answer is lost, and botocore's retry gets a 404."""

    def delete_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

        self._real.delete_object(**kwargs)
        if "/refs/" not in kwargs["Key"]:
            return None
        raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"},
                           "ResponseMetadata": {"HTTPStatusCode": 404, "RetryAttempts": 1}},
                          "DeleteObject")


def _with(s3_env: S3Env, url: str, tmp_path: Path, wrap: Callable[[Any], Any]) -> S3Backend:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    real = boto3.session.Session().client("s3", endpoint_url=s3_env.endpoint)
    return S3Backend(parse_url("origin", url, tmp_path, s3_env.endpoint), wrap(real))


def test_the_delete_itself_is_conditional(s3_env: S3Env,
                                          s3_backend_factory: Callable[[], S3Backend],
                                          tmp_path: Path) -> None:
    other = s3_backend_factory()
    other.init(encode_config(StoreConfig()))
    other.update_ref("datasets/d", OID_A, None)
    racer = _with(s3_env, other.url, tmp_path, lambda real: _RacedDelete(
        real, lambda: other.update_ref("datasets/d", OID_B, OID_A)))
    with pytest.raises(ConflictError, match="moved while it was being deleted"):
        racer.delete_ref("datasets/d", OID_A)
    assert other.list_refs() == {"datasets/d": OID_B}
    racer.close()


def test_a_service_that_ignores_conditional_deletes_is_refused(
        s3_env: S3Env, s3_backend_factory: Callable[[], S3Backend], tmp_path: Path) -> None:
    other = s3_backend_factory()
    other.init(encode_config(StoreConfig()))
    other.update_ref("datasets/d", OID_A, None)
    b = _with(s3_env, other.url, tmp_path, _IgnoresDeleteConditions)
    with pytest.raises(RemoteRefusedError, match="ignores conditional deletes"):
        b.delete_ref("datasets/d", OID_A)
    assert other.list_refs() == {"datasets/d": OID_A}
    keys = [o["Key"] for o in s3_env.client.list_objects_v2(
        Bucket=s3_env.bucket, Prefix=f"{other.prefix}/").get("Contents", [])]
    assert not [k for k in keys if "/tmp/" in k]  # the scratch object is gone
    b.close()


def test_a_retried_delete_whose_first_attempt_won(
        s3_env: S3Env, s3_backend_factory: Callable[[], S3Backend], tmp_path: Path) -> None:
    other = s3_backend_factory()
    other.init(encode_config(StoreConfig()))
    other.update_ref("datasets/d", OID_A, None)
    b = _with(s3_env, other.url, tmp_path, _DeleteAnswerLost)
    b.delete_ref("datasets/d", OID_A)  # no ConflictError: the ref is gone, as asked
    assert other.list_refs() == {}
    b.close()
