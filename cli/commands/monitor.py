"""``monitor``: a live dashboard of a running mission, fed by following its log."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ocactors.commands.tail import GRACE_S
from ocactors.common import EXIT_OK, add_workspace, workspace_of

if TYPE_CHECKING:  # the rest is imported when the command runs (see ocactors.cli)
    from rich.console import RenderableType

    from ocactors.events.catalogue import Record


def register(sub: Any) -> None:
    """Add monitor to the command line."""
    p = sub.add_parser(
        "monitor",
        help="live dashboard of a running mission",
        description="Tasks by state, sessions with their role, step and elapsed time, queue, "
        "iteration, tokens, dollars, and each notable event as it happens. Ends with the mission.",
        epilog="example: ocactors monitor            # the newest mission in this directory",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.set_defaults(func=run_monitor)


class Board:
    """The folded state and recent notable lines, fed from the follower thread."""

    def __init__(self) -> None:
        from ocactors.actors.state import MissionState, apply
        from ocactors.describe import NOTABLE, line
        from ocactors.events.catalogue import event_type
        from ocactors.view import RECENT

        self.state = MissionState()
        self.recent: deque[str] = deque(maxlen=RECENT)
        self.lock = threading.Lock()
        # Imported here, once (``feed`` runs per event), not with the module (see ocactors.cli).
        self._apply, self._notable, self._line, self._type = apply, NOTABLE, line, event_type

    def feed(self, event: Record) -> None:
        """Fold one event."""
        with self.lock:
            self.state = self._apply(self.state, event)
            if self._type(event) in self._notable:
                self.recent.append(self._line(event))

    def frame(self, fit: bool = True) -> RenderableType:
        """The renderable now; ``fit`` keeps it within the screen's height."""
        from ocactors.dashboard import render

        with self.lock:
            return render(self.state, list(self.recent), fit=fit)


def run_monitor(args: argparse.Namespace) -> int:
    """Draw until the mission's writer is gone (or once)."""
    from rich.live import Live

    from ocactors.missions import Notes, events, pick
    from ocactors.view import QuietConsole

    paths = pick(workspace_of(args), args.mission)
    board = Board()
    notes = Notes()
    for event in events(paths, notes):
        board.feed(event)
    notes.say(paths)
    console = QuietConsole()
    if args.once:
        console.print(board.frame(fit=False))
        return EXIT_OK
    stop = threading.Event()
    feeder = threading.Thread(
        target=_feed, args=(paths.events, board, stop), daemon=True, name="monitor-follow"
    )
    feeder.start()
    live = Live(get_renderable=board.frame, console=console, refresh_per_second=4)
    with live, contextlib.suppress(KeyboardInterrupt):
        _wait_for_end(paths.events, stop)
    stop.set()
    return EXIT_OK


def _feed(path: Any, board: Board, stop: threading.Event) -> None:
    from ocactors.events import follow

    for event in follow(path, since=board.state.last_seq, stop_event=stop):
        board.feed(event)


def _wait_for_end(path: Any, stop: threading.Event) -> None:
    from ocactors.events import writer_pid

    quiet_since: float | None = None
    while not stop.is_set():
        if writer_pid(path) is None:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= GRACE_S:
                return
        else:
            quiet_since = None
        time.sleep(0.1)
