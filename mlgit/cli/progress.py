"""Progress bars on a terminal (files and bytes), silence elsewhere; warnings to stderr."""

from __future__ import annotations

import sys
import threading
import time

import click

from mlgit.api.events import Events
from mlgit.errors import MlgitError

__all__ = ["TerminalEvents"]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class TerminalEvents(Events):
    """Draws one updating status line on stderr when it is a terminal."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._lock = threading.Lock()
        self._label = ""
        self._total = (0, 0)
        self._done = [0, 0]
        self._last = 0.0
        self._drawn = False
        self._started = time.monotonic()

    def warn(self, message: str) -> None:
        """Print a warning line (above the bar)."""
        with self._lock:
            self._clear()
            click.echo(f"git-ml: warning: {message}", err=True)

    def problem(self, error: MlgitError) -> None:
        """Print the error line at once (above the bar) and keep it for the exit code."""
        super().problem(error)
        with self._lock:
            self._clear()
            click.echo(f"git-ml: error: {error}", err=True)

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Begin (or re-size) a phase."""
        with self._lock:
            self._label, self._total = label, (files, nbytes)
            self._done = [0, 0]
            self._started = time.monotonic()
            self._draw(force=True)

    def advance(self, files: int, nbytes: int) -> None:
        """Count progress; redraws at most ten times a second."""
        with self._lock:
            self._done[0] += files
            self._done[1] += nbytes
            self._draw()

    def finish(self) -> None:
        """End the phase and clear the bar."""
        with self._lock:
            self._clear()

    def _draw(self, force: bool = False) -> None:
        if not self.tty or not self._total[0]:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        files, nbytes = self._total
        pct = 100 * self._done[1] // nbytes if nbytes else 100
        elapsed = now - self._started
        rate = f", {_mib(int(self._done[1] / elapsed))}/s" if elapsed > 0.5 else ""
        noun = "objects" if self._label.startswith(("pushing", "fetching")) else "files"
        sys.stderr.write(f"\r\x1b[K{self._label}: {pct:3d}% {self._done[0]}/{files} {noun}, "
                         f"{_mib(self._done[1])}/{_mib(nbytes)}{rate}")
        sys.stderr.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._drawn = False
