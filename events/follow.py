"""Following a log as it grows, from another thread or another process.

The follower keeps its own byte offset and decodes only complete lines, so a line being
written is picked up when its newline lands.  It is woken by watchfiles (change notification
on the mission folder, with a short debounce for live tailing) and falls back to polling when
notification is unavailable or ``force_polling`` is set (e.g. network file systems).  It
handles a log that does not exist yet and a writer that restarted and cut a torn tail (the
file shrank: read again from the start, skipping what was already yielded).  It takes no lock
and never slows the writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ocactors.events.catalogue import Record
from ocactors.events.codec import LineError, decode
from ocactors.events.reader import iter_lines

WAKE_S = 0.25


def follow(
    path: Path,
    *,
    since: int = 0,
    stop_event: threading.Event | None = None,
    force_polling: bool = False,
    poll_interval: float = 0.05,
    idle_timeout: float | None = None,
) -> Iterator[Record]:
    """Yield events with ``seq > since`` as they are appended, until stopped or idle."""
    path = Path(path)
    stop = stop_event or threading.Event()
    cursor = _Cursor(path, since)
    waiter = _Waiter(path, stop, force_polling, poll_interval)
    last_news = time.monotonic()
    try:
        while not stop.is_set():
            got = False
            for event in cursor.read():
                got = True
                yield event
            if got:
                last_news = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_news >= idle_timeout:
                return
            waiter.wait()
    finally:
        waiter.close()


class _Cursor:
    """Byte offset and last seq; re-reads from the start when the file shrank."""

    def __init__(self, path: Path, since: int) -> None:
        self.path = path
        self.offset = 0
        self.seq = since

    def read(self) -> Iterator[Record]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size < self.offset:
            self.offset = 0
        for end, line in iter_lines(self.path, self.offset):
            self.offset = end
            try:
                event = decode(line)
            except LineError:
                continue
            if event.seq > self.seq:
                self.seq = event.seq
                yield event


class _Waiter:
    """Sleeps until the folder changes (watchfiles) or a poll interval passes."""

    def __init__(
        self, path: Path, stop: threading.Event, force_polling: bool, poll_interval: float
    ) -> None:
        self.stop = stop
        self.poll_interval = poll_interval
        self.changed = threading.Event()
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        if not force_polling:
            self._thread = threading.Thread(target=self._watch, args=(path,), daemon=True)
            self._thread.start()

    def _watch(self, path: Path) -> None:
        folder = path.parent
        while not folder.is_dir() and not self._done():
            time.sleep(self.poll_interval)
        try:
            from watchfiles import watch

            for changes in watch(
                folder,
                stop_event=self._quit,
                debounce=20,
                step=10,
                rust_timeout=int(WAKE_S * 1000),
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                if changes:
                    self.changed.set()
                if self._done():
                    return
        except Exception:
            self._thread = None

    def _done(self) -> bool:
        return self._quit.is_set() or self.stop.is_set()

    def wait(self) -> None:
        timeout = 0.1 if self._thread is not None else self.poll_interval
        self.changed.wait(timeout)
        self.changed.clear()

    def close(self) -> None:
        self._quit.set()
