"""Following a log as it grows, from another thread or another process.

The follower keeps its own byte offset and decodes only complete lines, so a line being
written is picked up when its newline lands.  It is woken by watchfiles (change notification
on the mission folder, with a short, tunable debounce for live tailing; no periodic re-check
while notification works) and falls back to polling when notification is unavailable or
``force_polling`` is set (e.g. network file systems).  It
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

DEBOUNCE_S = 0.005  # gather a burst of writes this long at most (watchfiles' debounce)
STOP_CHECK_S = 0.05  # polling: how soon a stop is noticed


def follow(
    path: Path,
    *,
    since: int = 0,
    stop_event: threading.Event | None = None,
    force_polling: bool = False,
    poll_interval: float = 0.05,
    idle_timeout: float | None = None,
    debounce: float = DEBOUNCE_S,
) -> Iterator[Record]:
    """Yield events with ``seq > since`` as they are appended, until stopped or idle.

    ``debounce`` (seconds) is how long a burst of writes may be gathered before the follower
    reads; the watch looks for changes every quarter of it (at least every millisecond), so an
    append is usually seen within ~1.5 steps.  ``poll_interval`` applies with
    ``force_polling`` (network file systems) or where notification is unavailable.
    """
    path = Path(path)
    stop = stop_event or threading.Event()
    cursor = _Cursor(path, since)
    waiter = _Waiter(path, stop, force_polling, poll_interval, debounce)
    last_news = time.monotonic()
    try:
        while not stop.is_set():
            got = False
            for event in cursor.read():
                got = True
                yield event
            now = time.monotonic()
            if got:
                last_news = now
            if idle_timeout is None:
                waiter.wait(None)
            elif now - last_news >= idle_timeout:
                return
            else:
                waiter.wait(idle_timeout - (now - last_news))
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


class _Either:
    """``is_set`` of either event: how the watch thread hears of a stop within one step."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        self.first = first
        self.second = second

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


class _Waiter:
    """Sleeps until the log changes (watchfiles), a poll interval passes or stop is set.

    While watching there is no periodic re-check: the watch thread (which sees ``stop`` within
    one step, ~1 ms) wakes the follower for a change of the log or a stop, and falls back to
    polling by itself if notification fails.
    """

    def __init__(
        self,
        path: Path,
        stop: threading.Event,
        force_polling: bool,
        poll_interval: float,
        debounce: float,
    ) -> None:
        self.stop = stop
        self.poll_interval = poll_interval
        self.debounce_ms = max(1, round(debounce * 1000))
        self.changed = threading.Event()
        self._quit = threading.Event()
        self._watching = not force_polling
        if self._watching:
            threading.Thread(target=self._watch, args=(path,), daemon=True).start()

    def _watch(self, path: Path) -> None:
        """Runs on its own thread: turns change notifications into ``changed``."""
        try:
            if self._wait_for_folder(path.parent):
                self._notify(path)
        except Exception:  # no notification here (e.g. inotify limits): poll instead
            self._watching = False
        finally:
            self.changed.set()  # the follower looks again: a stop, a change or polling from now

    def _wait_for_folder(self, folder: Path) -> bool:
        while not folder.is_dir():
            if self._quit.wait(self.poll_interval) or self.stop.is_set():
                return False
        return True

    def _notify(self, path: Path) -> None:
        from watchfiles._rust_notify import RustNotify  # here: missing watchfiles means polling

        ended = _Either(self._quit, self.stop)
        step_ms = max(1, self.debounce_ms // 4)
        with RustNotify([str(path.parent)], False, False, 0, False, False) as notify:
            self.changed.set()  # the watch is up: read once more, nothing slipped between
            while not ended.is_set():
                changes = notify.watch(self.debounce_ms, step_ms, 0, ended)
                if isinstance(changes, set) and any(
                    Path(changed).name == path.name for _, changed in changes
                ):
                    self.changed.set()

    def wait(self, timeout: float | None) -> None:
        """Returns on a change or a stop (at most ``timeout`` seconds, None: no limit)."""
        if self._watching:
            self.changed.wait(timeout)
        else:
            self._poll(self.poll_interval if timeout is None else min(timeout, self.poll_interval))
        self.changed.clear()

    def _poll(self, interval: float) -> None:
        """Polling: sleep ``interval`` but notice ``stop`` within ``STOP_CHECK_S``."""
        deadline = time.monotonic() + interval
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.changed.wait(min(remaining, STOP_CHECK_S)):
                return

    def close(self) -> None:
        self._quit.set()
