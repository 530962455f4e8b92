"""``git-ml serve-store PATH``: the command ``ssh`` runs on a remote host (hidden).

Like ``git-upload-pack``, it is not for people: :class:`mlgit.sync.ssh.SSHBackend`
starts it over ssh and speaks the protocol of :mod:`mlgit.sync.serve` on its
standard input and output. Nothing else may reach standard output, so before
serving, file descriptor 1 is pointed at standard error (anything printed by
accident, by Python or by a library, goes there) and the protocol is written to a
private duplicate of the original descriptor.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlgit.sync.serve import serve

__all__ = ["serve_store"]


@click.command(name="serve-store", hidden=True)
@click.argument("path")
def serve_store(path: str) -> None:
    """Serve the git-ml store of the repository at PATH on stdin/stdout (for ssh)."""
    if path.startswith("~"):  # ~/repo and ~user/repo, as git-upload-pack allows
        path = os.path.expanduser(path)
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    with os.fdopen(proto_fd, "wb") as out:
        rc = serve(Path(path), sys.stdin.buffer, out)
    if rc:
        sys.exit(rc)
