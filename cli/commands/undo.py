"""``undo``: put back what a mission (or one task) changed, the user's own edits included."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ocactors.commands.diff import history_of
from ocactors.common import EXIT_FAILED, EXIT_OK, UsageError, add_workspace

if TYPE_CHECKING:  # imported when the command runs (see ocactors.cli)
    from ocactors.actors.history import UndoReport


def register(sub: Any) -> None:
    """Add undo to the command line."""
    p = sub.add_parser(
        "undo",
        help="restore the files a mission (or task) changed; remove the files it created",
        description="Every file the mission changed goes back to its content at the "
        "baseline (your uncommitted edits included); files it created are removed. A file "
        "changed since the mission wrote it is left alone and named, unless --force. "
        "Exit 0 when everything was restored, 1 when something was left.",
        epilog="example: ocactors undo --task T3",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--task", metavar="ID", help="only this task's changes")
    p.add_argument("--force", action="store_true", help="restore files changed since, too")
    p.set_defaults(func=run_undo)


def run_undo(args: argparse.Namespace) -> int:
    """Restore, then say what was done and what was left."""
    from ocactors.actors.history import HistoryError

    history = history_of(args)
    try:
        report = history.undo(task=args.task, force=args.force)
    except HistoryError as error:
        raise UsageError(str(error)) from None
    print("\n".join(report_lines(report)))
    return EXIT_OK if report.complete else EXIT_FAILED


def report_lines(report: UndoReport) -> list[str]:
    """What undo did, one line per file, then a count."""
    lines = [f"restored {path}" for path in report.restored]
    lines += [f"removed  {path}" for path in report.removed]
    lines += [f"left     {path}: {why}" for path, why in report.kept]
    done = len(report.restored) + len(report.removed)
    summary = f"{done} file(s) put back, {len(report.unchanged)} already as before"
    if report.kept:
        summary += f", {len(report.kept)} left alone"
    return [*lines, summary]
