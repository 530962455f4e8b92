"""Progress bars: drawn on a terminal, silent when stderr is not one."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from conftest import make_tree, run_gitml


def _dataset(root: Path) -> None:
    make_tree(root, {f"data/f{i}.bin": os.urandom(20_000) for i in range(200)})


def test_quiet_when_not_on_a_terminal(repo_dir: Path) -> None:
    _dataset(repo_dir)
    p = run_gitml(repo_dir, "add", "data")
    assert p.stderr == ""


def test_progress_bar_on_a_terminal(repo_dir: Path) -> None:
    _dataset(repo_dir)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(["git", "ml", "add", "data"], cwd=repo_dir, stdin=slave,
                              stdout=subprocess.PIPE, stderr=slave, timeout=120)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    text = out.decode(errors="replace")
    assert "adding data" in text
    assert "files" in text
    assert "MiB" in text
    assert "/200 files" in text
