"""How long operations report to their caller: warnings, skipped bad input, progress.

The API never prints; the CLI passes an :class:`Events` that draws progress
bars on a terminal and prints warnings and problems to stderr.

Bad input that does not stop the rest (one hostile pointer file among good ones,
one malformed note line) is a *problem*: the verb reports it with
:meth:`Events.problem` and goes on with everything else, as ``git fsck`` does.
A caller that passed its own Events decides what to do with them (the CLI prints
each as an error line and exits with the first one's code); a verb called
without one raises the first problem once the rest is done
(:meth:`Events.raise_problems`), so a Python caller never misses one.
"""

from __future__ import annotations

from mlgit.errors import MlgitError

__all__ = ["Events"]


class Events:
    """Callbacks for warnings, problems and progress.

    The defaults do nothing but collect problems in :attr:`problems`.
    """

    problems: list[MlgitError]

    def warn(self, message: str) -> None:
        """A one-line warning (a skipped file, a bad note line...)."""

    def problem(self, error: MlgitError) -> None:
        """Bad input that was skipped so that the rest could go on; kept in ``problems``."""
        if not hasattr(self, "problems"):
            self.problems = []
        self.problems.append(error)

    def raise_problems(self) -> None:
        """Raise the first problem recorded (naming how many more there were), if any."""
        found = getattr(self, "problems", [])
        if not found:
            return
        first = found[0]
        if len(found) == 1:
            raise first
        more = len(found) - 1
        raise type(first)(f"{first} (and {more} more problem{'s' if more > 1 else ''})")

    def start(self, label: str, files: int, nbytes: int) -> None:
        """A phase begins that will process ``files`` files and ``nbytes`` bytes."""

    def advance(self, files: int, nbytes: int) -> None:
        """Progress within the current phase (may be called from worker threads)."""

    def finish(self) -> None:
        """The current phase is done."""
