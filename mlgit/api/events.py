"""How long operations report to their caller: warnings and progress.

The API never prints; the CLI passes an :class:`Events` that draws progress
bars on a terminal and prints warnings to stderr.
"""

from __future__ import annotations

__all__ = ["Events"]


class Events:
    """Callbacks for warnings and progress. The defaults do nothing."""

    def warn(self, message: str) -> None:
        """A one-line warning (a skipped file, a bad note line...)."""

    def start(self, label: str, files: int, nbytes: int) -> None:
        """A phase begins that will process ``files`` files and ``nbytes`` bytes."""

    def advance(self, files: int, nbytes: int) -> None:
        """Progress within the current phase (may be called from worker threads)."""

    def finish(self) -> None:
        """The current phase is done."""
