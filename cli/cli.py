"""The ``ocactors`` command line: parse, dispatch, turn user mistakes into one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ocactors import __version__
from ocactors.commands import (
    completion,
    demo,
    diff,
    init,
    inspect,
    monitor,
    replay,
    tail,
    task,
    undo,
)
from ocactors.common import EXIT_OK, EXIT_USAGE, UsageError
from ocactors.events import EventLogError
from ocactors.view import silence_stdout

COMMANDS = (task, inspect, tail, replay, monitor, diff, undo, demo, init, completion)


class _Parser(argparse.ArgumentParser):
    """argparse that says what to do in one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"ocactors: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command registered."""
    parser = _Parser(
        prog="ocactors",
        description="Run a team of language-model agents on your repository until the work "
        "is verified; watch, stop, resume and replay missions from their event log.",
        epilog='example: ocactors task "Build a REST API with authentication" --parallel 20',
    )
    parser.add_argument("--version", action="version", version=f"ocactors {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    parser = build_parser()
    if completion.asked():
        completion.complete(parser)  # answers the shell's TAB and exits
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(args.func(args))
    except (UsageError, EventLogError) as error:
        print(f"ocactors: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ocactors: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ocactors status | head -1`: the reader had enough
        silence_stdout()
        return EXIT_OK
    return _flushed(code)


def _flushed(code: int) -> int:
    """Flush stdout now, so a reader that went away is not a traceback at interpreter exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
