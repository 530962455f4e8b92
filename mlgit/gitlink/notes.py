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

__all__ = ["NOTES_REF", "append_note_lines", "fetch_notes", "merge_notes", "push_notes",
           "read_note"]

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


def _tracking_ref(remote: str) -> str:
    return f"refs/notes/remotes/{remote}/ml"


def fetch_notes(repo: GitRepo, remote: str) -> bool:
    """Fetch the remote's ``refs/notes/ml`` into a tracking ref; False if it has none."""
    try:
        repo.run_git("fetch", "-q", "--no-write-fetch-head", remote,
                     f"+{NOTES_REF}:{_tracking_ref(remote)}")
    except GitCommandError as e:
        if "couldn't find remote ref" in e.stderr.lower():
            return False
        raise
    return True


def merge_notes(repo: GitRepo, remote: str) -> None:
    """Merge the fetched notes into ours with ``cat_sort_uniq``: both sides' lines survive."""
    with lock_file(repo.ml_dir / "notes"):
        try:
            repo.run_git("rev-parse", "-q", "--verify", NOTES_REF)
            have_local = True
        except GitCommandError:
            have_local = False
        if not have_local:
            repo.run_git("update-ref", NOTES_REF, _tracking_ref(remote))
            return
        repo.run_git("notes", "--ref", NOTES_REF, "merge", "-q", "-s", "cat_sort_uniq",
                     _tracking_ref(remote))


def push_notes(repo: GitRepo, remote: str, tries: int = 3) -> bool:
    """Fetch, merge and push ``refs/notes/ml``; False when there are no local notes.

    A push that loses a race (someone pushed notes meanwhile) fetches, merges and
    tries again. ``--no-verify`` keeps git's pre-push hook from running again.
    """
    try:
        repo.run_git("rev-parse", "-q", "--verify", NOTES_REF)
    except GitCommandError:
        if fetch_notes(repo, remote):
            merge_notes(repo, remote)
        return False
    for attempt in range(tries):
        if fetch_notes(repo, remote):
            merge_notes(repo, remote)
        try:
            repo.run_git("push", "-q", "--no-verify", remote, f"{NOTES_REF}:{NOTES_REF}")
            return True
        except GitCommandError:
            if attempt == tries - 1:
                raise
    return True
