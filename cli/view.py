"""Progress a person can see while a mission runs in this terminal.

Three shapes of the same stream of events: a live rich dashboard when attached to a terminal,
plain lines for notable events when not (CI, pipes), and raw JSON lines with ``--json``.  Each
view is a journal subscriber; it folds the events it sees, so it shows what the log says.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import IO, Protocol

import msgspec
from rich.console import Console, RenderableType
from rich.live import Live

from ocactors.actors.state import MissionState, apply
from ocactors.dashboard import render
from ocactors.describe import NOTABLE, line
from ocactors.events.catalogue import Record, event_type

RECENT = 40  # notable lines kept for the events panel (the screen decides how many show)


class View(Protocol):
    """A journal subscriber with a lifetime."""

    def __call__(self, event: Record) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


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


class QuietConsole(Console):
    """A rich console that goes quiet when its reader leaves, instead of exiting the process.

    rich's default answer to BrokenPipeError is ``SystemExit(1)``, which in a view would end
    the mission's process from whatever thread happened to draw.
    """

    def on_broken_pipe(self) -> None:
        """Stop drawing; send what stdout still holds to /dev/null."""
        self.quiet = True
        silence_stdout()


class PlainView:
    """One line per notable event, flushed at once (readable in CI logs).

    It is called on the Commander's thread, inside ``Journal.append``: it must never raise,
    so a reader that goes away (``| head -1``) only ends the output, never the mission.
    """

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.closed = False

    def __call__(self, event: Record) -> None:
        """Journal subscriber: print notable events."""
        if event_type(event) in NOTABLE:
            self._write(line(event))

    def _write(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):  # EPIPE, EIO of a hung-up terminal, a closed file
            self.closed = True
            if self.out is sys.stdout:
                silence_stdout()

    def start(self) -> None:
        """Nothing to set up."""

    def close(self) -> None:
        """Nothing to tear down."""


class JsonView(PlainView):
    """Every event as the JSON line the log holds."""

    def __call__(self, event: Record) -> None:
        """Journal subscriber: print the event's JSON."""
        self._write(msgspec.json.encode(event).decode())


class LiveView:
    """A rich dashboard redrawn a few times a second from the folded state.

    Drawing happens on rich's refresh thread; a terminal that goes away (EPIPE, EIO) only
    silences the view, so the mission runs on to its end.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or QuietConsole()
        self.state = MissionState()
        self.recent: deque[str] = deque(maxlen=RECENT)
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __call__(self, event: Record) -> None:
        """Journal subscriber: fold the event and remember notable ones."""
        with self._lock:
            self.state = apply(self.state, event)
            if event_type(event) in NOTABLE:
                self.recent.append(line(event))

    def _renderable(self) -> RenderableType:
        with self._lock:
            return render(self.state, list(self.recent))

    def start(self) -> None:
        """Start redrawing."""
        self._live = Live(
            get_renderable=self._renderable,
            console=self.console,
            refresh_per_second=4,
        )
        try:
            self._live.start()
        except OSError:
            self._gone()

    def close(self) -> None:
        """Draw the final state once more and leave it on screen."""
        if self._live is None:
            return
        try:
            self._live.refresh()
            self._live.stop()
        except OSError:
            self._gone()

    def _gone(self) -> None:
        self.console.quiet = True
        silence_stdout()


def make_view(json_lines: bool) -> View:
    """JSON lines if asked, the live dashboard on a terminal, plain lines otherwise."""
    if json_lines:
        return JsonView()
    if sys.stdout.isatty():
        return LiveView()
    return PlainView()
