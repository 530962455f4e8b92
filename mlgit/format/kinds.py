"""The kinds of snapshot (a pointer file names one too) and of a snapshot's root.

Plain constants, in a module of their own so that reading a pointer file needs
nothing of the snapshot codec (start-up time of ``git ml status``);
:mod:`mlgit.format.snapshot` exports them as well.
"""

from __future__ import annotations

__all__ = ["KIND_CHECKPOINT", "KIND_DATASET", "ROOT_DIR", "ROOT_FILE"]

KIND_DATASET = "dataset"
KIND_CHECKPOINT = "checkpoint"
ROOT_DIR = "dir"
ROOT_FILE = "file"
