"""``tail``: a mission's events as readable lines; ``-f`` follows a running mission live."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.text import Text

from ocactors.common import EXIT_OK, add_workspace, workspace_of
from ocactors.describe import line
from ocactors.events import encode, follow, writer_pid
from ocactors.events.catalogue import FINAL_TYPES, Record, event_type
from ocactors.missions import Notes, events, pick

GRACE_S = 1.0
STYLE = {"mission.sealed": "bold green", "mission.failed": "bold red", "mission.stopped": "yellow"}


def register(sub: Any) -> None:
    """Add tail to the command line."""
    p = sub.add_parser(
        "tail",
        help="print a mission's events; -f follows a running mission",
        description="The mission's events as readable lines (time, seq, actor, type, what "
        "happened). With -f, follow the log live; it ends by itself when the mission ends.",
        epilog="example: ocactors tail -f --actor 'worker:*' --type task.finished",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--actor", action="append", help="only this actor (patterns: 'worker:*')")
    p.add_argument("--type", action="append", dest="types", help="only this event type")
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="events after SEQ")
    p.add_argument("--json", action="store_true", help="raw event lines, for jq")
    p.set_defaults(func=run_tail)


class Printer:
    """Prints events that pass the filters, as text (coloured on a terminal) or JSON."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = args.json
        self.actors = args.actor
        self.types = set(args.types) if args.types else None
        self.console = Console(highlight=False) if sys.stdout.isatty() else None

    def __call__(self, event: Record) -> None:
        """Print one event if it passes the filters."""
        if not self._wanted(event):
            return
        if self.json:
            print(encode(event).decode(), flush=True)
        elif self.console is not None:
            self.console.print(Text(line(event), style=STYLE.get(event_type(event), "")))
        else:
            print(line(event), flush=True)

    def _wanted(self, event: Record) -> bool:
        from fnmatch import fnmatchcase

        if self.types is not None and event_type(event) not in self.types:
            return False
        return self.actors is None or any(fnmatchcase(event.actor, a) for a in self.actors)


def run_tail(args: argparse.Namespace) -> int:
    """Print what is there; with -f, go on until the mission ends."""
    paths = pick(workspace_of(args), args.mission)
    printer = Printer(args)
    notes = Notes()
    last, final = args.since, False
    for event in events(paths, notes, since=args.since):
        printer(event)
        last, final = event.seq, event_type(event) in FINAL_TYPES
    notes.say(paths)
    if args.follow:
        _follow(paths.events, last, printer, ended=final)
    return EXIT_OK


def _follow(path: Any, since: int, printer: Printer, ended: bool) -> None:
    """Follow until a final event is followed by the writer letting go (or no writer)."""
    stop = threading.Event()
    watchdog = threading.Thread(target=_watch_writer, args=(path, stop, ended), daemon=True)
    watchdog.start()
    try:
        for event in follow(path, since=since, stop_event=stop):
            printer(event)
    except KeyboardInterrupt:
        stop.set()


def _watch_writer(path: Any, stop: threading.Event, ended: bool) -> None:
    """Stop following once nobody writes the log and nothing new came for a moment."""
    quiet_since: float | None = None
    while not stop.is_set():
        if writer_pid(path) is None:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= (GRACE_S if ended else 2 * GRACE_S):
                stop.set()
        else:
            quiet_since = None
        time.sleep(0.1)
