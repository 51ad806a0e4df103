"""The single writer of a mission log.

One process owns a log for its lifetime: :meth:`Journal.open` takes an exclusive ``flock`` on
``events.jsonl`` (and writes its pid beside it so a second writer's error can name it).  Every
event goes through :meth:`Journal.append`, which stamps the envelope (``seq``, ``ts``,
``mission``, ``actor``, ``cause``), redacts secrets and writes one line.

Durability is a setting:

- ``always``: write and ``fdatasync`` inside ``append``;
- ``batch`` (default): group commit; appends join the open batch and a flusher thread writes
  each batch with one ``write`` and one ``fdatasync``; :meth:`Receipt.wait` returns once its
  batch is on disk.  Each batch has its own ``threading.Event``, so a finished batch wakes
  exactly the producers waiting for one of its events, and producers wake the flusher only
  when they open a batch;
- ``never``: write inside ``append``, leave syncing to the OS.

An event whose receipt said durable survives a kill -9 of the writer (see :mod:`.repair` for
what opening the log again does with a torn last line).

The log defends itself: before each write (each batch) the writer checks that the file is
still the one it holds open and exactly as long as it made it (:mod:`.guard`).  If not, it
keeps :class:`LogTamperedError` in :attr:`Journal.tampered` and hands it once to ``on_tamper``
(on a thread of its own).  It does not raise it to appenders: every actor appends through the
journal, so an exception would crash whichever actor happened to append next, mid-work, and
could not even record why; the one place that decides how a mission ends is told instead and
stops it in order, and the final event (reason ``log-tampered``) is still written after the
file's last byte (or, if the file was replaced, into the one the writer holds open).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from ocactors.events.catalogue import Event
from ocactors.events.clock import Clock
from ocactors.events.clock import utc_now as utc_now  # control.py takes it from here
from ocactors.events.codec import decode, encode
from ocactors.events.errors import LogTamperedError, LogUnavailableError
from ocactors.events.guard import FileGuard
from ocactors.events.layout import PID_FILE
from ocactors.events.logfile import lock, open_for_append, unavailable, write_all, write_pid
from ocactors.events.redact import Redactor
from ocactors.events.repair import repair

Durability = Literal["always", "batch", "never"]
Subscriber = Callable[[Event], None]
TamperCallback = Callable[[LogTamperedError], None]
NEVER_CHECK_S = 0.001  # durability "never": check the file at most this often (and at flush)


class _Batch:
    """Lines that go to disk together, and the producers waiting for them.

    Each waiter sleeps on a lock of its own that the flusher releases: a finished batch wakes
    exactly its waiters, and they do not then queue for a shared condition's lock (50 woken
    producers convoying on one lock was the p99).
    """

    __slots__ = ("done", "last_seq", "lines", "waiters")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.last_seq = 0
        self.done = False
        self.waiters: list[threading.Lock] = []

    def wait(self, timeout: float | None) -> bool:
        """Until the batch was written or failed (True), or ``timeout`` passed (False)."""
        waiter = threading.Lock()
        waiter.acquire()
        self.waiters.append(waiter)
        if self.done:  # finished before or while we registered: it may not have seen us
            return True
        return waiter.acquire(timeout=-1 if timeout is None else max(timeout, 0))

    def finish(self) -> None:
        """Runs on the flusher: mark done first, then wake every waiter registered so far."""
        self.done = True
        for waiter in self.waiters:
            waiter.release()


class Receipt:
    """What ``append`` gives back: the stamped event, and a way to wait until it is durable."""

    __slots__ = ("_batch", "_journal", "event", "seq")

    def __init__(self, journal: Journal, event: Event, batch: _Batch | None) -> None:
        self._journal = journal
        self._batch = batch
        self.event = event
        self.seq = event.seq

    def wait(self, timeout: float | None = None) -> bool:
        """True once the event is on disk (fsynced unless durability is ``never``)."""
        return self._journal._wait_batch(self.seq, self._batch, timeout)


class Journal:
    """Appends events to one log; thread-safe; the only writer of that file."""

    def __init__(
        self,
        path: Path,
        fd: int,
        mission: str,
        durability: Durability,
        redactor: Redactor,
        on_tamper: TamperCallback | None = None,
    ) -> None:
        self.path = path
        self.mission = mission
        self.durability = durability
        self.redactor = redactor
        self.on_tamper = on_tamper
        self.tampered: LogTamperedError | None = None
        self.last_seq = 0
        self.durable_seq = 0
        self._fd = fd
        self._guard = FileGuard(path, fd)
        self._clock = Clock()
        self._lock = threading.Lock()  # seq order, the open batch, subscribers
        self._io = threading.Lock()  # a write and the guard's idea of the size move together
        self._open = _Batch()
        self._inflight: _Batch | None = None
        self._has_work = threading.Event()
        self._subscribers: tuple[Subscriber, ...] = ()  # replaced whole: no copy per append
        self._error: LogUnavailableError | None = None
        self._closed = False
        self._checked_at = 0.0
        self._flusher: threading.Thread | None = None

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        mission: str,
        durability: Durability = "batch",
        redactor: Redactor | None = None,
        on_tamper: TamperCallback | None = None,
    ) -> Journal:
        """Lock, repair and open the log for appending.

        ``on_tamper`` is called once, on a thread of its own, if anyone else changes the file
        (see the module docstring); :attr:`tampered` keeps the error for whoever polls.
        """
        path = Path(path)
        if durability not in ("always", "batch", "never"):
            raise ValueError(f"durability must be always, batch or never, not {durability!r}")
        fd = open_for_append(path)
        try:
            lock(fd, path)
            last_seq = repair(path, fd)
            write_pid(path)
        except BaseException:
            os.close(fd)
            raise
        journal = cls(path, fd, mission, durability, redactor or Redactor(), on_tamper)
        journal.last_seq = journal.durable_seq = last_seq
        if durability == "batch":
            journal._start_flusher()
        return journal

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- appending ----------------------------------------------------------------------

    def append(self, event: Event, *, actor: str, cause: int | None = None) -> Receipt:
        """Stamp, redact and write (or queue) one event; subscribers see it in seq order."""
        with self._lock:
            if self._closed or self._error is not None:
                raise self._error or LogUnavailableError(f"{self.path} is closed")
            stamped = msgspec.structs.replace(
                event,
                seq=self.last_seq + 1,
                ts=self._clock(),
                mission=self.mission,
                actor=actor,
                cause=cause,
            )
            line, stamped = self._redacted(stamped)
            batch: _Batch | None = None
            if self.durability == "batch":
                batch = self._open
                batch.lines.append(line)
                batch.last_seq = stamped.seq
                if len(batch.lines) == 1:
                    self._has_work.set()  # only the first line of a batch wakes the flusher
            else:
                self._write_now(line + b"\n")
                self.durable_seq = stamped.seq
            self.last_seq = stamped.seq
            for subscriber in self._subscribers:
                subscriber(stamped)
        return Receipt(self, stamped, batch)

    def _redacted(self, event: Event) -> tuple[bytes, Event]:
        """The line to write (without its newline) and the event as written."""
        raw = encode(event)
        clean = self.redactor.line(raw)
        if clean is raw:
            return raw, event
        redacted = decode(clean)
        return clean, redacted if isinstance(redacted, Event) else event

    def _write_now(self, line: bytes) -> None:
        """``always`` and ``never``: write in the appending thread (under the journal lock)."""
        try:
            with self._io:
                self._check_before_write()
                write_all(self._fd, line)
                self._guard.wrote(len(line))
                if self.durability == "always":
                    os.fdatasync(self._fd)
        except OSError as error:
            # A failed write may have left part of a line: nothing more may follow it.  The
            # next Journal.open moves that torn tail aside.
            self._error = unavailable(self.path, error)
            raise self._error from None

    def _check_before_write(self) -> None:
        """Notice whether someone else changed the file (the caller holds ``_io``)."""
        if self.tampered is not None:
            return  # said once; the supervisor is stopping the mission
        if self.durability == "never":
            now = time.monotonic()
            if now - self._checked_at < NEVER_CHECK_S:
                return
            self._checked_at = now
        problem = self._guard.check()
        if problem is not None:
            self.tampered = problem
            if self.on_tamper is not None:
                threading.Thread(target=self.on_tamper, args=(problem,), daemon=True).start()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every appended event (in the appending thread, in order).

        It runs under the journal's lock, which is what keeps seq order: it must be quick, must
        not append (that would deadlock) and should not raise (the appender would see the
        error for an event already written).  Hand work to an actor with ``tell`` instead.
        """
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                remaining = list(self._subscribers)
                if callback in remaining:
                    remaining.remove(callback)
                self._subscribers = tuple(remaining)

        return unsubscribe

    def check(self) -> LogTamperedError | None:
        """Check now that nobody else changed the file (e.g. on a supervisor's tick)."""
        with self._io:
            if self._fd >= 0 and self._error is None:
                self._checked_at = 0.0
                self._check_before_write()
        return self.tampered

    # --- durability ---------------------------------------------------------------------

    def _start_flusher(self) -> None:
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"journal-flusher-{self.mission}", daemon=True
        )
        self._flusher.start()

    def _flush_loop(self) -> None:
        """Runs on the flusher thread: one write and one fdatasync per batch, in order."""
        while True:
            self._has_work.wait()
            batch = self._take_batch()
            if batch is None:
                return
            if batch.lines:
                self._flush(batch)

    def _take_batch(self) -> _Batch | None:
        """The open batch (a new one opens); None once closed and everything is written."""
        with self._lock:
            batch = self._open
            if not batch.lines and (self._closed or self._error is not None):
                return None
            if not self._closed:  # once closed, go round until nothing is left
                self._has_work.clear()
            if batch.lines:
                self._open = _Batch()
                self._inflight = batch
            return batch

    def _flush(self, batch: _Batch) -> None:
        data = b"\n".join(batch.lines) + b"\n"
        try:
            with self._io:
                self._check_before_write()
                write_all(self._fd, data)
                self._guard.wrote(len(data))
                os.fdatasync(self._fd)
        except OSError as error:
            self._fail(batch, unavailable(self.path, error))
            return
        with self._lock:
            self.durable_seq = batch.last_seq
            self._inflight = None
        batch.finish()

    def _fail(self, batch: _Batch, error: LogUnavailableError) -> None:
        """The batch did not reach the disk: its waiters and every later appender hear why."""
        with self._lock:
            self._error = error
            self._inflight = None
            pending, self._open = self._open, _Batch()
        batch.finish()
        pending.finish()

    def _wait_batch(self, seq: int, batch: _Batch | None, timeout: float | None) -> bool:
        if seq <= self.durable_seq:
            return True
        if batch is not None and batch.wait(timeout) and seq <= self.durable_seq:
            return True
        if self._error is not None:
            raise self._error
        return False

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until event ``seq`` is durable; False on timeout; raises if writing failed."""
        with self._lock:
            if seq <= self.durable_seq:
                return True
            inflight = self._inflight
            in_flight = inflight is not None and seq <= inflight.last_seq
            batch = inflight if in_flight else self._open
        return self._wait_batch(seq, batch, timeout)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything appended so far is durable."""
        if self.durability == "never":
            self.check()
        return self.wait_durable(self.last_seq, timeout)

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued, check the file a last time, release the lock. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._has_work.set()
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        self.check()
        with contextlib.suppress(OSError):
            (self.path.parent / PID_FILE).unlink(missing_ok=True)
        with self._io:
            fd, self._fd = self._fd, -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
