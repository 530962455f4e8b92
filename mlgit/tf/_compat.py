"""TensorFlow and Keras, imported once for :mod:`mlgit.tf`, with an install hint if missing.

Both are typed ``Any``: TensorFlow ships no type information.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["INSTALL_HINT", "keras", "tf"]

INSTALL_HINT = "pip install 'mlgit[tensorflow]'"


def _require(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(f"mlgit.tf needs TensorFlow, and {name} could not be imported ({e}); "
                          f"install it with: {INSTALL_HINT}") from e


tf: Any = _require("tensorflow")
# tf.keras is the Keras TensorFlow uses (Keras 3 from TF 2.16 on, or tf_keras when
# TF_USE_LEGACY_KERAS is set), so callbacks and models match the user's own.
keras: Any = tf.keras
