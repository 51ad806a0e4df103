"""Progress a person can see while a mission runs in this terminal.

Three shapes of the same stream of events: a live rich dashboard when attached to a terminal,
plain lines for notable events when not (CI, pipes), and raw JSON lines with ``--json``.  Each
view is a journal subscriber; it folds the events it sees, so it shows what the log says.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections import deque
from typing import IO, TYPE_CHECKING, Protocol

import msgspec
from rich.console import Console

from ocactors.actors.state import MissionState, apply
from ocactors.common import silence_stdout as silence_stdout  # its home before; the CLI's now
from ocactors.describe import NOTABLE, line
from ocactors.events.catalogue import Record, event_type

if TYPE_CHECKING:  # the dashboard is imported when one is drawn (``ls`` needs only a console)
    from rich.console import RenderableType
    from rich.live import Live

RECENT = 40  # notable lines kept for the events panel (the screen decides how many show)


class View(Protocol):
    """A journal subscriber with a lifetime."""

    def __call__(self, event: Record) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


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

    It is called on the Commander's thread, inside ``Journal.append``, so it only queues the
    line: a writer thread does the writing.  A reader that stops reading (``| less`` on its
    first page, a full pipe) then never holds the mission up, and one that goes away
    (``| head -1``) only ends the output.  ``close`` waits until every line is written, as any
    Unix writer does; the mission has ended by then.
    """

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.closed = False
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    def __call__(self, event: Record) -> None:
        """Journal subscriber: queue notable events."""
        if event_type(event) in NOTABLE:
            self._lines.put(line(event))

    def start(self) -> None:
        """Start the writer thread."""
        self._writer = threading.Thread(target=self._drain, daemon=True, name="view-writer")
        self._writer.start()

    def close(self) -> None:
        """Wait (Ctrl-C still ends the wait) until every queued line is written."""
        self._lines.put(None)
        if self._writer is None:
            self._drain()
            return
        while self._writer.is_alive():
            self._writer.join(timeout=0.2)

    def _drain(self) -> None:
        while (text := self._lines.get()) is not None:
            self._write(text)

    def _write(self, text: str) -> None:
        if self.closed:
            return
        try:
            _write_line(self.out, text)
        except (OSError, ValueError):  # EPIPE, EIO of a hung-up terminal, a closed file
            self.closed = True
            if self.out is sys.stdout:
                silence_stdout()


def _write_line(out: IO[str], text: str) -> None:
    """Straight to the file descriptor when there is one, so a write blocked on a full pipe
    holds no lock of ``sys.stdout`` (which the interpreter needs at exit)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # io.StringIO and friends
        out.write(text + "\n")
        out.flush()
        return
    out.flush()
    data = (text + "\n").encode(getattr(out, "encoding", None) or "utf-8", "replace")
    while data:
        data = data[os.write(fd, data) :]


class JsonView(PlainView):
    """Every event as the JSON line the log holds."""

    def __call__(self, event: Record) -> None:
        """Journal subscriber: queue the event's JSON."""
        self._lines.put(msgspec.json.encode(event).decode())


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
        from ocactors.dashboard import render

        with self._lock:
            return render(self.state, list(self.recent))

    def start(self) -> None:
        """Start redrawing."""
        from rich.live import Live

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
