"""``diff``: what a mission (or one task) changed, against the work tree it started from."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ocactors.common import EXIT_OK, UsageError, add_workspace, workspace_of

if TYPE_CHECKING:  # imported when the command runs (see ocactors.cli)
    from ocactors.actors.history import History


def register(sub: Any) -> None:
    """Add diff to the command line."""
    p = sub.add_parser(
        "diff",
        help="the mission's changes as a unified diff (git apply accepts it)",
        description="The changes a mission made against its baseline (the work tree as it "
        "found it, your uncommitted edits included), or one task's changes with --task. "
        "Paths are relative to the workspace. In git the history is refs/ocactors/<mission>.",
        epilog="example: ocactors diff --stat; ocactors diff --task T2 > t2.patch",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--stat", action="store_true", help="files with +/- lines instead")
    p.add_argument("--task", metavar="ID", help="only this task's changes")
    p.set_defaults(func=run_diff)


def history_of(args: argparse.Namespace) -> History:
    """The chosen mission's history; says on stderr when it is not git's."""
    from ocactors.actors.history import open_history
    from ocactors.missions import pick

    workspace = workspace_of(args)
    paths = pick(workspace, args.mission)
    history = open_history(workspace, paths.root, paths.id)
    if history.reason is not None:
        print(f"ocactors: note: file history ({history.reason})", file=sys.stderr)
    return history


def run_diff(args: argparse.Namespace) -> int:
    """Print the diff (raw bytes, so ``git apply`` gets exactly what git wrote)."""
    from ocactors.actors.history import HistoryError

    history = history_of(args)
    try:
        text = history.diff(task=args.task, stat=args.stat)
    except HistoryError as error:
        raise UsageError(str(error)) from None
    sys.stdout.buffer.write(text.encode(errors="surrogateescape"))
    sys.stdout.flush()
    return EXIT_OK
