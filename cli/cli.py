"""The ``ocactors`` command line: parse, dispatch, turn user mistakes into one-line errors.

Start-up is kept to what the command in hand uses (``ocactors --help`` under 100 ms):
every command module is light to import and imports its implementation (the actors, the
model clients, rich, the event log) inside the function that runs it, and a command whose
options come from a heavy module adds them only when that command is chosen (see
:class:`Subcommands`).  ``tests/test_cli_imports.py`` holds this in place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

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
from ocactors.common import EXIT_OK, EXIT_USAGE, UsageError, silence_stdout

COMMANDS = (task, inspect, tail, replay, monitor, diff, undo, demo, init, completion)


class _Parser(argparse.ArgumentParser):
    """argparse that says what to do in one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"ocactors: error: {message} (see `{self.prog} --help`)\n")


class Subcommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommands, some of whose options are added only when that command is chosen.

    ``add_parser(name, arguments=fill, ...)`` registers the command (its name and help, all
    that ``ocactors --help`` shows) and calls ``fill(parser)`` the first time the command is
    parsed, so that ``ocactors ls`` never imports what ``task``'s options are made of.
    Completion walks every option, so it calls :meth:`fill_all` first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfilled: dict[str, Callable[[argparse.ArgumentParser], None]] = {}

    def add_parser(
        self,
        name: str,
        arguments: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ) -> argparse.ArgumentParser:
        """argparse's ``add_parser``, plus ``arguments``: what adds the options, later."""
        parser: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        if arguments is not None:
            self._unfilled[name] = arguments
        return parser

    def fill(self, name: str) -> None:
        """Add the command's options now, if they were left for later."""
        arguments = self._unfilled.pop(name, None)
        if arguments is not None:
            arguments(self._name_parser_map[name])

    def fill_all(self) -> None:
        """Every command's options (for completion, which looks at them all)."""
        for name in list(self._unfilled):
            self.fill(name)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """The command word was parsed: fill its parser in, then parse the rest with it."""
        self.fill(values[0])
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command registered (options left for later: see Subcommands)."""
    parser = _Parser(
        prog="ocactors",
        description="Run a team of language-model agents on your repository until the work "
        "is verified; watch, stop, resume and replay missions from their event log.",
        epilog='example: ocactors task "Build a REST API with authentication" --parallel 20',
    )
    parser.add_argument("--version", action="version", version=f"ocactors {__version__}")
    parser.register("action", "parsers", Subcommands)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    if completion.asked():
        _commands(parser).fill_all()
        completion.complete(parser)  # answers the shell's TAB and exits
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    _quiet_pykka()
    try:
        code = int(args.func(args))
    except KeyboardInterrupt:
        print("ocactors: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ocactors status | head -1`: the reader had enough
        silence_stdout()
        return EXIT_OK
    except Exception as error:
        if not _said_in_one_line(error):
            raise
        print(f"ocactors: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return _flushed(code)


def _quiet_pykka() -> None:
    """No pykka log lines on the terminal (logging is imported here: ``--help`` needs none)."""
    import logging

    logging.getLogger("pykka").setLevel(logging.CRITICAL)


def _commands(parser: argparse.ArgumentParser) -> Subcommands:
    """The parser's subcommands action."""
    return next(a for a in parser._actions if isinstance(a, Subcommands))


def _said_in_one_line(error: Exception) -> bool:
    """A user's mistake or a log that cannot be read: one line, exit 2, no traceback.

    The event log's errors are looked up only if the log's package was imported (a command
    that never touched a log cannot have raised one), so the CLI itself does not import it.
    """
    if isinstance(error, UsageError):
        return True
    errors = sys.modules.get("ocactors.events.errors")
    return errors is not None and isinstance(error, errors.EventLogError)


def _flushed(code: int) -> int:
    """Flush stdout now, so a reader that went away is not a traceback at interpreter exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
