"""A real OpenSSH server on 127.0.0.1 for the SSH transport's tests (imported by conftest).

``sshd`` starts ``/usr/sbin/sshd -D -e`` once per session with its own host key, a
client key made for the test run, and a throwaway ``authorized_keys``; the "remote"
is this machine, and ``git-ml`` on it is the one of this test environment
(``SetEnv PATH=...``). Clients must pass the key explicitly (``ssh_command``):
the hermetic environment replaces HOME, and no ~/.ssh is read.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlgit.sync.remote import RemoteSpec
from mlgit.sync.ssh import SSHBackend

__all__ = ["SSHServer", "free_port", "ssh_backend_factory", "sshd"]

_SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ssh_options(key: Path, port: int | None = None) -> list[str]:
    """An ssh command that reads no user config, trusts any host key and offers only ``key``.

    ``ssh -F /dev/null -i KEY -p PORT -o StrictHostKeyChecking=no -o
    UserKnownHostsFile=/dev/null -o LogLevel=ERROR``, plus options that keep ssh from
    offering other keys (an agent's, ~/.ssh's) and that make connecting faster.
    """
    cmd = ["ssh", "-F", "/dev/null", "-i", str(key)]
    if port is not None:
        cmd += ["-p", str(port)]
    return [*cmd, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            # Only for speed on slow test machines (the default sntrup761 key exchange
            # costs a few tenths of a second per connection; AES-GCM uses AES-NI).
            "-o", "KexAlgorithms=curve25519-sha256", "-o", "Ciphers=aes128-gcm@openssh.com"]


def keygen(path: Path) -> Path:
    """A new ed25519 key pair without a passphrase at ``path`` (and ``path.pub``)."""
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-C", "git-ml-test",
                    "-f", str(path)], check=True, capture_output=True)
    return path


@dataclass
class SSHServer:
    """A running test sshd, and how to log in to it."""

    host: str
    port: int
    user: str
    key: Path
    ssh_command: list[str]
    dir: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def spec(self, path: Path | str, name: str = "origin", with_port: bool = False) -> RemoteSpec:
        """A RemoteSpec for ``path`` on this server (the port in it, or in ssh_command)."""
        port = f":{self.port}" if with_port else ""
        url = f"ssh://{self.user}@{self.host}{port}{path}"
        return RemoteSpec(name, url, "ssh", str(path), self.host, self.user,
                          self.port if with_port else None)

    def log_text(self) -> str:
        """What sshd logged so far (for failure messages)."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _find(name: str, candidates: tuple[str, ...] = ()) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def _write_config(d: Path, port: int, user_is_root: bool) -> Path:
    bin_dir = Path(sys.executable).parent
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {d / 'host_key'}",
        f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PermitUserEnvironment no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PrintMotd no",
        "MaxStartups 64",
        "LogLevel INFO",
        # The server's git-ml imports the same mlgit as the tests' own git-ml does
        # (PYTHONPATH, when the tests run a work tree's code over an installed one).
        f"SetEnv PATH={bin_dir}:/usr/bin:/bin"
        + (f" PYTHONPATH={os.environ['PYTHONPATH']}" if os.environ.get("PYTHONPATH") else ""),
    ]
    if user_is_root:
        lines.append("PermitRootLogin prohibit-password")
    config = d / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    return config


def _start(sshd_bin: str, d: Path, user_is_root: bool) -> tuple[subprocess.Popen[bytes], int]:
    """Start sshd on a free port; retried when another process took the port meanwhile."""
    log = d / "sshd.log"
    last = ""
    for _ in range(5):
        port = free_port()
        config = _write_config(d, port, user_is_root)
        with open(log, "ab") as err:
            proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.settimeout(0.2)
                s.connect(("127.0.0.1", port))
                return proc, port
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"sshd did not start:\n{last}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A real sshd on 127.0.0.1, for the whole test session; stopped at the end."""
    sshd_bin = _find("sshd", _SSHD_CANDIDATES)
    if sshd_bin is None or _find("ssh") is None or _find("ssh-keygen") is None:
        pytest.skip("OpenSSH is not installed (apt-get install openssh-server openssh-client)")
    d = tmp_path_factory.mktemp("sshd")
    user_is_root = os.geteuid() == 0
    if user_is_root and not Path("/run/sshd").is_dir():
        # sshd run as root insists on its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    keygen(d / "host_key")
    key = keygen(d / "client_key")
    (d / "authorized_keys").write_bytes((d / "client_key.pub").read_bytes())
    proc, port = _start(sshd_bin, d, user_is_root)
    user = pwd.getpwuid(os.geteuid()).pw_name
    server = SSHServer("127.0.0.1", port, user, key, ssh_options(key, port), d,
                       d / "sshd.log", proc)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_counter = itertools.count()


@pytest.fixture
def ssh_backend_factory(sshd: SSHServer, tmp_path: Path) -> Iterator[Callable[[], SSHBackend]]:
    """Make SSHBackends, each on a fresh, empty repository (``git init``) under tmp_path."""
    made: list[SSHBackend] = []

    def make() -> SSHBackend:
        root = tmp_path / f"ssh-remote-{next(_counter)}"
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True, capture_output=True)
        b = SSHBackend(sshd.spec(root), ssh_command=sshd.ssh_command)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
