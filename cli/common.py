"""What every command shares: exit codes, the workspace option, one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 130


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2, no traceback."""


def add_workspace(parser: argparse.ArgumentParser) -> None:
    """``-C DIR``: the workspace (default: the current directory)."""
    parser.add_argument(
        "-C",
        "--workspace",
        dest="workspace",
        default=".",
        metavar="DIR",
        help="workspace directory (default: the current directory)",
    )


def workspace_of(args: argparse.Namespace) -> Path:
    """The workspace as an absolute path; it must be an existing directory."""
    path = Path(args.workspace).expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"workspace {args.workspace} is not a directory")
    return path


def exit_code_for(outcome_phase: str) -> int:
    """sealed 0, failed 1, stopped 130."""
    return {"sealed": EXIT_OK, "failed": EXIT_FAILED, "stopped": EXIT_STOPPED}.get(
        outcome_phase, EXIT_FAILED
    )


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null: the reader (``head``, ``less``) went away.

    The Python way (see "Note on SIGPIPE" in the ``signal`` docs): later writes, and the
    flush at interpreter exit, then succeed quietly instead of raising BrokenPipeError.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    finally:
        os.close(devnull)
