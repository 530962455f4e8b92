"""Git notes under ``refs/notes/ml``: read a commit's records, append records (pygit2).

Appends from git-ml processes are serialized by a lock file in the store
directory, so concurrent ``commit-ckpt`` runs on one repository never lose a
line. Merging notes with other clones (``cat_sort_uniq``) is the remotes' job.
"""

from __future__ import annotations

from typing import Any

from mlgit.errors import GitCommandError
from mlgit.gitlink.repo import GitRepo
from mlgit.store.lock import lock_file

__all__ = ["NOTES_REF", "append_note_lines", "read_note"]

NOTES_REF = "refs/notes/ml"


def read_note(repo: GitRepo, commit: str) -> str | None:
    """The text of ``commit``'s note (full hex id), or None."""
    try:
        note = repo.git.lookup_note(commit, NOTES_REF)
    except KeyError:
        return None
    return str(note.message)


def _signature(repo: GitRepo) -> Any:
    import pygit2  # start-up time

    try:
        return repo.git.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature("git-ml", "git-ml@localhost")


def append_note_lines(repo: GitRepo, commit: str, lines: list[str]) -> None:
    """Append lines to ``commit``'s note, creating it if needed."""
    if not lines:
        return
    with lock_file(repo.ml_dir / "notes"):
        current = read_note(repo, commit) or ""
        if current and not current.endswith("\n"):
            current += "\n"
        text = current + "".join(line + "\n" for line in lines)
        sig = _signature(repo)
        try:
            repo.git.create_note(text, sig, sig, commit, NOTES_REF, True)
        except Exception as e:  # pygit2.GitError
            raise GitCommandError(f"cannot write the note on {commit[:12]}: {e}") from None
