"""S3 fixtures: moto's standalone server as a real HTTP endpoint on 127.0.0.1.

``moto_server`` (session) runs moto's server (``moto.server.main``, what the
``moto_server`` script runs) in its own process group on a free loopback port and
kills the group at the end; ``s3_env`` gives a test fake AWS credentials (through
the environment, as a user would) and a fresh bucket; ``s3_backend_factory`` makes
S3Backends on fresh prefixes of that bucket. Everything is skipped when boto3 or
moto[server] is not installed.

One adjustment: the server handles one request at a time. moto evaluates S3's
conditional writes (``If-Match``/``If-None-Match``) but does not hold a lock
between the check and the write, so two racing PUTs can both pass (seen about
once in 150 rounds of 8 racers); real S3 makes the pair atomic. Serializing
requests gives the test double S3's atomicity, so the compare-and-swap race test
checks git-ml, not moto's thread scheduling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["S3Env", "moto_s3_admin", "moto_server", "s3_backend_factory", "s3_env"]

ACCESS_KEY = "AKIAMLGITTESTKEY0000"
SECRET_KEY = "mlgit-test-secret-5f2b9c1e8d7a4b63"


@dataclass
class S3Env:
    """A fresh bucket on the moto server, with the fake credentials in the environment."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    client: Any  # a boto3 S3 client for the test's own setup and checks


# moto.server.main, with its WSGI app wrapped to handle one request at a time, and a
# watchdog that ends the server if pytest dies without running the fixture's teardown.
_SERIALIZED_MOTO = """
import os, sys, threading, time
import moto.server as server
def watchdog(parent=os.getppid()):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watchdog, daemon=True).start()
run, lock = server.run_simple, threading.Lock()
def serialized(app):
    def handle(environ, start_response):
        with lock:
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                getattr(body, "close", lambda: None)()
    return handle
server.run_simple = lambda host, port, app, **kw: run(host, port, serialized(app), **kw)
server.main(sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    """True once moto's API answers at ``endpoint`` (directly: no proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{endpoint}/moto-api/data.json", timeout=1) as resp:
            json.load(resp)
            return True
    except (OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server (its own process group), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1, up for the whole session."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    last_error = "did not start"
    for _attempt in range(3):  # the free port might be taken between probe and bind
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", _SERIALIZED_MOTO, "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if _answers(endpoint):
                    break
                time.sleep(0.1)
            else:
                last_error = Path(log_path).read_text(errors="replace")[-2000:]
                _stop(proc)
                continue
            yield endpoint
            return
        finally:
            _stop(proc)
    pytest.fail(f"moto server did not start:\n{last_error}")


def _isolate_aws_env(monkeypatch: pytest.MonkeyPatch, access_key: str, secret_key: str) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def moto_s3_admin(moto_server: str) -> Iterator[Any]:
    """One S3 client for the fixtures' own setup (explicit keys: no environment needed)."""
    import boto3  # type: ignore[import-untyped,unused-ignore]

    client = boto3.session.Session().client(
        "s3", endpoint_url=moto_server, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    yield client
    client.close()


@pytest.fixture
def s3_env(moto_server: str, moto_s3_admin: Any, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """Fake AWS credentials in the environment and a fresh, empty bucket."""
    _isolate_aws_env(monkeypatch, ACCESS_KEY, SECRET_KEY)
    bucket = f"mlgit-{uuid.uuid4().hex[:20]}"
    moto_s3_admin.create_bucket(Bucket=bucket)
    return S3Env(moto_server, bucket, ACCESS_KEY, SECRET_KEY, moto_s3_admin)


@pytest.fixture
def s3_backend_factory(s3_env: S3Env, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Make S3Backends, each on a fresh, empty ``s3://bucket/<random prefix>``."""
    from mlgit.sync.remote import parse_url
    from mlgit.sync.s3 import S3Backend

    made: list[S3Backend] = []

    def factory() -> S3Backend:
        url = f"s3://{s3_env.bucket}/store-{uuid.uuid4().hex[:12]}"
        backend = S3Backend(parse_url("origin", url, tmp_path, s3_env.endpoint))
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()
