"""A mission's history: a baseline, a commit per finished task, diff and undo.

In a git work tree the history is a chain of commits under ``refs/ocactors/<mission-id>``
(``history_git``); the user's HEAD, branch, index and stash are never touched.  Where git
cannot be used (a plain folder, git missing or older than 2.20, a bare repository, a merge or
rebase in progress, conflicts in the index) the same API works from the file baseline the
mission keeps anyway (``history_files``), and ``reason`` says in one line why.

When to call what (the Commander serialises every call)::

    start_history(...)        mission start and every resume, before any session runs
    history.commit_task(...)  when the Commander accepts a task's result (fix tasks too)
    history.changes()         at the end of the mission, for the summary
    history.user_changed(fs)  before a task starts: which of its files hold the user's edits
    open_history(...)         read-only uses: ``ocactors diff``, ``undo``, ``status``
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from ocactors.actors.gitrepo import Repo, exclude_missions, find_repo, unusable
from ocactors.actors.history_files import FileHistory
from ocactors.actors.history_git import GitHistory
from ocactors.actors.history_model import (
    FileChange,
    History,
    HistoryError,
    TaskCommit,
    UndoReport,
    recorded_writes,
)

__all__ = [
    "FileChange",
    "FileHistory",
    "GitHistory",
    "History",
    "HistoryError",
    "TaskCommit",
    "UndoReport",
    "fork_history",
    "open_history",
    "start_history",
]


def open_history(workspace: Path, mission_dir: Path, mission_id: str) -> History:
    """The history of an existing mission, for reading and undo; nothing is created.

    Git when the mission's ref exists, otherwise the file history with the reason.
    """
    found = _repo(workspace)
    if isinstance(found, str):
        return FileHistory(workspace, mission_dir, mission_id, found)
    history = GitHistory(found, mission_dir, mission_id)
    if history.tip() is None:
        reason = f"the mission has no git history ({history.ref} does not exist)"
        return FileHistory(workspace, mission_dir, mission_id, reason)
    return history


def start_history(workspace: Path, mission_dir: Path, mission_id: str) -> History:
    """At mission start or resume: the mission's ref continued, a new baseline, or files.

    Call it before any session can write: the baseline is the work tree as it is now.  A
    mission that began with the file history keeps it on resume (its writes are not in git).
    """
    found = _repo(workspace)
    if isinstance(found, str):
        return _files(workspace, mission_dir, mission_id, found)
    history = GitHistory(found, mission_dir, mission_id)
    if history.tip() is None:
        reason = _why_not_new(found, mission_dir)
        if reason is not None:
            return _files(workspace, mission_dir, mission_id, reason)
    try:
        history.begin()
    except HistoryError as error:
        return _files(workspace, mission_dir, mission_id, str(error))
    return history


def fork_history(history: History, new_mission_id: str, commit: str) -> None:
    """``replay --fork-at``: the fork's ref starts at ``commit`` (call before start_history).

    ``commit`` is the last ``task.committed`` commit at the fork point (or the baseline).  A
    file history needs nothing: the fork copies the mission folder.
    """
    if isinstance(history, GitHistory):
        history.fork(new_mission_id, commit)


def _repo(workspace: Path) -> Repo | str:
    found = find_repo(workspace)
    if isinstance(found, Repo):
        with suppress(HistoryError):  # a read-only .git: status merely shows the folder
            exclude_missions(found)
    return found


def _why_not_new(repo: Repo, mission_dir: Path) -> str | None:
    if recorded_writes(mission_dir) or (mission_dir / "history" / "tasks").is_dir():
        return "the mission began without git history; it keeps its file history"
    return unusable(repo)


def _files(workspace: Path, mission_dir: Path, mission_id: str, reason: str) -> FileHistory:
    history = FileHistory(workspace, mission_dir, mission_id, reason)
    history.begin()
    return history
