"""``scripts/demo.sh`` walks the whole loop and keeps working.

Datasets (add, status, diff, checkout, ``mlgit.checkout``/``mlgit.open``), then the
ML loop on the CPU: train with the Keras callback, the board (the real TensorBoard
served and asked over HTTP), evaluate and note results, promote, verify, export and
verify the export, the results table. The demo runs as a user would run it, with this
test's interpreter's venv (no setup step) and its own temporary HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tensorboard")

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.sh"


def test_the_demo_walks_the_whole_loop(tmp_path: Path) -> None:
    # The demo sets its own identity in git's config: the suite's GIT_AUTHOR_* would win.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    env.update(MLGIT_DEMO_NO_SETUP="1", MLGIT_VENV=sys.prefix, TMPDIR=str(tmp_path))
    p = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True,
                       timeout=1200, check=False)
    out = p.stdout
    assert p.returncode == 0, (out[-3000:], p.stderr[-3000:])
    for step in ("git ml add data", "git ml checkout", "git ml lineage blobs",
                 "TensorBoard at http://127.0.0.1:", "'demo-user/blobs/train'",
                 "git ml promote", "ok: blobs", "git ml export", "git ml verify --export",
                 "git ml results --sort accuracy", "testset@", "demo finished"):
        assert step in out, step
    # train.py reads its data through mlgit.tf.dataset: the checkpoints record that version
    # alone (not every dataset HEAD pins, such as the test set).
    lineage = out.split("git ml lineage blobs", 1)[1].split("\x1b[1m$ ", 1)[0]
    assert "points@" in lineage
    assert "testset@" not in lineage
    assert os.listdir(tmp_path) == []  # the demo removes its directory
