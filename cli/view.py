"""Progress a person can see while a mission runs in this terminal.

Three shapes of the same stream of events: a live rich dashboard when attached to a terminal,
plain lines for notable events when not (CI, pipes), and raw JSON lines with ``--json``.  Each
view is a journal subscriber; it folds the events it sees, so it shows what the log says.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from typing import IO, Protocol

import msgspec
from rich.console import Console
from rich.live import Live

from ocactors.actors.state import MissionState, apply
from ocactors.dashboard import render
from ocactors.describe import NOTABLE, line
from ocactors.events.catalogue import Record, event_type


class View(Protocol):
    """A journal subscriber with a lifetime."""

    def __call__(self, event: Record) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class PlainView:
    """One line per notable event, flushed at once (readable in CI logs)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: Record) -> None:
        """Journal subscriber: print notable events."""
        if event_type(event) in NOTABLE:
            print(line(event), file=self.out, flush=True)

    def start(self) -> None:
        """Nothing to set up."""

    def close(self) -> None:
        """Nothing to tear down."""


class JsonView(PlainView):
    """Every event as the JSON line the log holds."""

    def __call__(self, event: Record) -> None:
        """Journal subscriber: print the event's JSON."""
        print(msgspec.json.encode(event).decode(), file=self.out, flush=True)


class LiveView:
    """A rich dashboard redrawn a few times a second from the folded state."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.state = MissionState()
        self.recent: deque[str] = deque(maxlen=8)
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __call__(self, event: Record) -> None:
        """Journal subscriber: fold the event and remember notable ones."""
        with self._lock:
            self.state = apply(self.state, event)
            if event_type(event) in NOTABLE:
                self.recent.append(line(event))

    def _renderable(self) -> object:
        with self._lock:
            return render(self.state, list(self.recent))

    def start(self) -> None:
        """Start redrawing."""
        self._live = Live(
            get_renderable=self._renderable,  # type: ignore[arg-type]
            console=self.console,
            refresh_per_second=4,
        )
        self._live.start()

    def close(self) -> None:
        """Draw the final state once more and leave it on screen."""
        if self._live is not None:
            self._live.refresh()
            self._live.stop()


def make_view(json_lines: bool) -> View:
    """JSON lines if asked, the live dashboard on a terminal, plain lines otherwise."""
    if json_lines:
        return JsonView()
    if sys.stdout.isatty():
        return LiveView()
    return PlainView()
