"""TensorBoard itself over a logdir, served from this process (``git ml board``).

:func:`serve_logdir` starts the real TensorBoard (the ``tensorboard`` package)
with its own Python API, ``tensorboard.program.TensorBoard.launch``: the web
server runs on a daemon thread of this process, so it lives until the process
ends (the CLI waits for Ctrl-C), and the URL it bound is returned, whatever port
it found. In-process rather than a ``tensorboard`` subprocess: one process to
start and stop, the bound URL known without parsing output, errors caught as
exceptions.

TensorBoard runs without TensorFlow: unless the process already imported it,
TensorBoard's own switch (a ``tensorboard.compat.notf`` module) makes it use its
TensorFlow stub, so a board starts in about a second instead of importing
TensorFlow for many. Event files are read by TensorBoard's Rust data server
when the package ``tensorboard-data-server`` provides one (``--load_fast``),
else by its Python loader.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

from mlgit.errors import MissingDependencyError, MlgitError
from mlgit.records.tfevents import BOARD_INSTALL_HINT

__all__ = ["WINDOW_TITLE", "serve_logdir"]

WINDOW_TITLE = "git-ml board"
_NOTF = "tensorboard.compat.notf"


def _program() -> Any:
    if "tensorflow" not in sys.modules and _NOTF not in sys.modules:
        sys.modules[_NOTF] = types.ModuleType(_NOTF)  # TensorBoard: use the TF stub
    try:
        return importlib.import_module("tensorboard.program")
    except ImportError:
        raise MissingDependencyError(f"git ml board needs TensorBoard: {BOARD_INSTALL_HINT}"
                                     ) from None


def _load_fast() -> str:
    """``true`` when TensorBoard's Rust data server is installed, else ``false``."""
    try:
        ingester = importlib.import_module("tensorboard.data.server_ingester")
        ingester.get_server_binary()
    except Exception:  # noqa: BLE001 - any failure to find it: the Python loader
        return "false"
    return "true"


def serve_logdir(logdir: Path, host: str = "127.0.0.1", port: int | None = None,
                 reload_interval: float = 5.0) -> str:
    """Start TensorBoard over ``logdir`` on ``host``; return its URL (``http://host:port/``).

    ``port`` None takes TensorBoard's default (6006, or the next free port);
    0 any free port. TensorBoard rereads the logdir every ``reload_interval``
    seconds. MissingDependencyError without TensorBoard; MlgitError (with
    TensorBoard's reason) when it cannot serve, e.g. the port is taken.
    """
    program = _program()
    argv = [None, "--logdir", str(logdir), "--host", host, "--load_fast", _load_fast(),
            "--reload_interval", str(reload_interval), "--window_title", WINDOW_TITLE]
    if port is not None:
        argv += ["--port", str(port)]
    tb = program.TensorBoard()
    try:
        tb.configure(argv=argv)
        return str(tb.launch())
    except program.TensorBoardServerException as e:
        raise MlgitError(f"TensorBoard cannot serve on {host}:{port}: {e.msg}") from None
    except SystemExit as e:  # TensorBoard exits when its data server does not start
        raise MlgitError(f"TensorBoard could not start (exit status {e.code})") from None
