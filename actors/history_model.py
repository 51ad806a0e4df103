"""What both history backends share: the result types, and the one undo loop.

A backend (git or files) knows where contents come from; deciding what to restore is the
same for both: for each file, the content to go back to (``target``), the content the mission
left (``expected``, so a later edit by someone else is noticed), and anything that forbids
the restore (``blocker``).  :func:`restore` applies such a plan to the work tree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final, Literal, Protocol

Kind = Literal["created", "modified", "deleted"]
REGULAR: Final = 0o100644
EXECUTABLE: Final = 0o100755
SYMLINK: Final = 0o120000


class HistoryError(Exception):
    """A history operation that cannot be done; the message is one line a person can act on."""


@dataclass(frozen=True)
class FileChange:
    """One file the mission (or a task) changed, for end-of-mission summaries."""

    path: str
    kind: Kind
    added: int
    removed: int


@dataclass(frozen=True)
class Content:
    """A file's bytes and git-style mode (regular, executable or symlink)."""

    data: bytes
    mode: int = REGULAR

    def same_as(self, other: Content | None) -> bool:
        """Equal bytes and the same kind of file (an exec bit alone is not a difference)."""
        return other is not None and other.data == self.data and _link(other) == _link(self)


class Unknown:
    """The content the mission left is not recorded: any current content is accepted."""


ANY: Final = Unknown()


@dataclass(frozen=True)
class Step:
    """What undo should do with one file."""

    path: str
    target: Content | None  # None: the file did not exist before
    expected: Content | Unknown | None = ANY  # what the mission left there
    blocker: str | None = None  # why it must not be restored, even with force
    later: str | None = None  # a later commit changed it again (left alone unless force)


@dataclass
class UndoReport:
    """What undo did: files written back, files removed, files left alone (and why)."""

    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Everything was restored (exit 0); otherwise something was left and named."""
        return not self.kept


@dataclass(frozen=True)
class TaskCommit:
    """One finished task as recorded in the history."""

    task_id: str
    commit: str
    title: str


class History(Protocol):
    """A mission's history; ``reason`` says why a file history stands in for git."""

    kind: str  # "git" or "files"
    reason: str | None  # why the file history stands in for git (None: git)

    @property
    def ref(self) -> str | None:
        """``refs/ocactors/<mission-id>``, None for a file history."""

    def begin(self) -> str | None:
        """Take (or find) the baseline; its commit id, None for a file history."""

    def baseline(self) -> str | None:
        """The baseline commit, None for a file history (or before ``begin``)."""

    def commit_task(self, task_id: str, title: str, files: Iterable[str]) -> str:
        """Record the task's files as they are now; idempotent for a resume."""

    def task_commits(self) -> list[TaskCommit]:
        """The recorded tasks, oldest first."""

    def diff(self, task: str | None = None, stat: bool = False) -> str:
        """The mission's (or a task's) changes as a unified diff, or a stat."""

    def changes(self, task: str | None = None) -> list[FileChange]:
        """Per-file kind and +/- counts."""

    def undo(self, task: str | None = None, force: bool = False) -> UndoReport:
        """Put back what the mission (or task) changed."""

    def user_changed(self, files: Iterable[str]) -> list[str]:
        """Which of ``files`` held the user's uncommitted changes at the baseline."""


def clean_rel(rel: str) -> str:
    """A workspace-relative POSIX path; absolute paths and ``..`` are refused."""
    path = PurePosixPath(os.path.normpath(rel.replace("\\", "/")))
    if path.is_absolute() or not path.parts or path.parts[0] == ".." or str(path) == ".":
        raise HistoryError(f"{rel!r} is not a path inside the workspace")
    return path.as_posix()


def read_current(path: Path) -> Content | None:
    """The work tree's content at ``path`` (None if absent or not a file)."""
    try:
        if path.is_symlink():
            return Content(os.fsencode(os.readlink(path)), SYMLINK)
        if not path.is_file():
            return None
        mode = EXECUTABLE if path.stat().st_mode & stat.S_IXUSR else REGULAR
        return Content(path.read_bytes(), mode)
    except OSError:
        return None


def write_content(path: Path, content: Content) -> None:
    """Write ``content`` at ``path``, replacing whatever is there (file, link or empty dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.rmdir()  # only an empty one; a full folder raises and the file is kept
    if content.mode == SYMLINK:
        os.symlink(os.fsdecode(content.data), path)
        return
    path.write_bytes(content.data)
    if content.mode == EXECUTABLE:
        path.chmod(path.stat().st_mode | (path.stat().st_mode & 0o444) >> 2)


def remove_file(path: Path, root: Path) -> None:
    """Delete a file the mission created, then the folders it leaves empty (up to ``root``)."""
    path.unlink()
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def restore(root: Path, steps: Iterable[Step], force: bool) -> UndoReport:
    """Apply an undo plan to the work tree under ``root``; nothing is touched that is blocked."""
    report = UndoReport()
    for step in steps:
        where = root / step.path
        current = read_current(where)
        if _already(current, step.target, where):
            report.unchanged.append(step.path)
        elif (why := _why_keep(step, current, force)) is not None:
            report.kept.append((step.path, why))
        else:
            _put_back(where, step.target, root, report, step.path)
    return report


def _already(current: Content | None, target: Content | None, where: Path) -> bool:
    if target is None:
        return current is None and not where.is_symlink() and not where.exists()
    return target.same_as(current)


def _why_keep(step: Step, current: Content | None, force: bool) -> str | None:
    if step.blocker is not None:
        return step.blocker
    expected = step.expected
    if force or isinstance(expected, Unknown):
        return None
    if (expected is None and current is None) or (expected and expected.same_as(current)):
        return None
    if step.later is not None:
        return f"changed again later by {step.later} (undo that first, or use --force)"
    return "changed since the mission wrote it (use --force to restore anyway)"


def _put_back(
    where: Path, target: Content | None, root: Path, report: UndoReport, rel: str
) -> None:
    try:
        if target is None:
            remove_file(where, root)
            report.removed.append(rel)
        else:
            write_content(where, target)
            report.restored.append(rel)
    except OSError as error:
        report.kept.append((rel, f"cannot be restored: {error.strerror or error}"))


def format_stat(changes: list[FileChange]) -> str:
    """One line per file with its kind and +/- lines, then a total."""
    if not changes:
        return "no changes\n"
    width = max(len(c.path) for c in changes)
    lines = [f" {c.path:<{width}} | +{c.added} -{c.removed} ({c.kind})" for c in changes]
    added = sum(c.added for c in changes)
    removed = sum(c.removed for c in changes)
    lines.append(f" {len(changes)} file(s) changed, +{added} -{removed}")
    return "\n".join(lines) + "\n"


def _link(content: Content) -> bool:
    return content.mode == SYMLINK


def recorded_writes(mission_dir: Path) -> dict[str, bool]:
    """Files the mission's tools wrote, from the file baseline: path -> existed before."""
    found: dict[str, bool] = {}
    for part, existed in (("created", False), ("files", True)):
        folder = mission_dir / "baseline" / part
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file() or path.is_symlink():
                found.setdefault(path.relative_to(folder).as_posix(), existed)
    return found


def baseline_copy(mission_dir: Path, rel: str) -> Content | None:
    """The file baseline's copy of ``rel`` (taken before the mission first wrote it)."""
    return read_current(mission_dir / "baseline" / "files" / rel)
