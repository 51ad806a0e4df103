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

WAKE_S = 0.25  # how often the watch thread checks whether it should end
RESCAN_S = 0.1  # a stat now and then even when watching, in case a notification was missed
STOP_CHECK_S = 0.05


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
    """Byte offset, last seq yielded and last seq read; starts over when the file changed.

    A restarted writer may have cut a garbage last line this cursor had already read past, and
    appended since.  The offset then no longer follows a line end, or the next event's seq does
    not follow the last one read: either way read again from the start, skipping what was
    yielded, so nothing is lost and nothing comes twice.
    """

    def __init__(self, path: Path, since: int) -> None:
        self.path = path
        self.offset = 0
        self.seq = since
        self.read_seq = 0
        self.seen: tuple[int, int, int] = (-1, -1, -1)

    def read(self) -> Iterator[Record]:
        """New events since the last call (nothing, cheaply, when the file did not change)."""
        try:
            stat = self.path.stat()
        except OSError:
            return
        seen, self.seen = self.seen, (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self.seen == seen:
            return
        if stat.st_ino != seen[0] or stat.st_size < self.offset or not self._at_line_start():
            self.offset, self.read_seq = 0, 0
        yield from self._scan(check=self.offset > 0)

    def _scan(self, check: bool) -> Iterator[Record]:
        for end, line in iter_lines(self.path, self.offset):
            try:
                event = decode(line)
            except LineError:
                self.offset = end
                continue
            if check and event.seq != self.read_seq + 1:
                self.offset, self.read_seq = 0, 0
                yield from self._scan(check=False)
                return
            check = False
            self.offset, self.read_seq = end, event.seq
            if event.seq > self.seq:
                self.seq = event.seq
                yield event

    def _at_line_start(self) -> bool:
        if self.offset == 0:
            return True
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset - 1)
                return handle.read(1) == b"\n"
        except OSError:
            return False


class _Waiter:
    """Sleeps until the log changes (watchfiles), a poll interval passes or stop is set."""

    def __init__(
        self, path: Path, stop: threading.Event, force_polling: bool, poll_interval: float
    ) -> None:
        self.stop = stop
        self.poll_interval = poll_interval
        self.changed = threading.Event()
        self._quit = threading.Event()
        self._watching = not force_polling
        if self._watching:
            threading.Thread(target=self._watch, args=(path,), daemon=True).start()

    def _watch(self, path: Path) -> None:
        """Runs on its own thread: turns change notifications into ``changed``."""
        while not path.parent.is_dir():
            if self._quit.wait(self.poll_interval) or self.stop.is_set():
                return
        try:
            from watchfiles import watch  # here: a missing or broken watchfiles means polling

            for changes in watch(
                path.parent,
                watch_filter=lambda _change, changed: Path(changed).name == path.name,
                stop_event=self._quit,
                debounce=20,
                step=10,
                rust_timeout=int(WAKE_S * 1000),
                yield_on_timeout=True,
                raise_interrupt=False,
                recursive=False,
            ):
                if changes:
                    self.changed.set()
                if self._quit.is_set() or self.stop.is_set():
                    return
        except Exception:  # no notification here (e.g. inotify limits): poll instead
            self._watching = False

    def wait(self) -> None:
        """Returns early on a change; notices ``stop`` within ``STOP_CHECK_S``."""
        deadline = time.monotonic() + (RESCAN_S if self._watching else self.poll_interval)
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.changed.wait(min(remaining, STOP_CHECK_S)):
                break
        self.changed.clear()

    def close(self) -> None:
        self._quit.set()
