"""The single writer of a mission log.

One process owns a log for its lifetime: :meth:`Journal.open` takes an exclusive ``flock`` on
``events.jsonl`` (and writes its pid beside it so a second writer's error can name it).  Every
event goes through :meth:`Journal.append`, which stamps the envelope (``seq``, ``ts``,
``mission``, ``actor``, ``cause``), redacts secrets and writes one line.

Durability is a setting:

- ``always``: write and ``fdatasync`` inside ``append``;
- ``batch`` (default): group commit; appends queue and a flusher thread writes everything queued
  with one ``write`` and one ``fdatasync``; :meth:`Receipt.wait` returns once that happened;
- ``never``: write inside ``append``, leave syncing to the OS.

An event whose receipt said durable survives a kill -9 of the writer.  A crash can leave a torn
last line; opening the log again moves the torn bytes to ``events.jsonl.torn-<n>``, keeps every
complete event and says so once on stderr.  A corrupt complete line in the middle is never
skipped: opening such a log raises :class:`CorruptLogError` with the line number.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from ocactors.events.catalogue import Event
from ocactors.events.codec import LineError, decode, encode
from ocactors.events.errors import CorruptLogError, LogLockedError, LogUnavailableError
from ocactors.events.layout import PID_FILE, read_pid
from ocactors.events.reader import iter_lines
from ocactors.events.redact import Redactor

Durability = Literal["always", "batch", "never"]
Subscriber = Callable[[Event], None]
LOCK_RETRY_S = 0.2


def utc_now() -> str:
    """The event timestamp format: ISO 8601 UTC with microseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"  # strftime: 1.5x slower


class Receipt:
    """What ``append`` gives back: the stamped event, and a way to wait until it is durable."""

    __slots__ = ("_journal", "event", "seq")

    def __init__(self, journal: Journal, event: Event) -> None:
        self._journal = journal
        self.event = event
        self.seq = event.seq

    def wait(self, timeout: float | None = None) -> bool:
        """True once the event is on disk (fsynced unless durability is ``never``)."""
        return self._journal.wait_durable(self.seq, timeout)


class Journal:
    """Appends events to one log; thread-safe; the only writer of that file."""

    def __init__(
        self, path: Path, fd: int, mission: str, durability: Durability, redactor: Redactor
    ) -> None:
        self.path = path
        self.mission = mission
        self.durability = durability
        self._fd = fd
        self._redactor = redactor
        self._lock = threading.Lock()
        self._durable = threading.Condition()
        self._queue: list[bytes] = []
        self._subscribers: list[Subscriber] = []
        self._error: OSError | None = None
        self._closed = False
        self.last_seq = 0
        self.durable_seq = 0
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
    ) -> Journal:
        """Lock, repair and open the log for appending."""
        path = Path(path)
        if durability not in ("always", "batch", "never"):
            raise ValueError(f"durability must be always, batch or never, not {durability!r}")
        fd = _open_for_append(path)
        try:
            _lock(fd, path)
            last_seq = _repair(path, fd)
            _write_pid(path)
        except BaseException:
            os.close(fd)
            raise
        journal = cls(path, fd, mission, durability, redactor or Redactor())
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
            if self._closed:
                raise LogUnavailableError(f"{self.path} is closed")
            self._raise_pending_error()
            stamped = msgspec.structs.replace(
                event,
                seq=self.last_seq + 1,
                ts=utc_now(),
                mission=self.mission,
                actor=actor,
                cause=cause,
            )
            line, stamped = self._redacted(stamped)
            self._write(line)
            self.last_seq = stamped.seq
            if self.durability != "batch":
                self._mark_durable(stamped.seq)
            for subscriber in list(self._subscribers):
                subscriber(stamped)
        return Receipt(self, stamped)

    def _redacted(self, event: Event) -> tuple[bytes, Event]:
        raw = encode(event)
        text = raw.decode("utf-8")
        clean = self._redactor.text(text)
        if clean == text:
            return raw + b"\n", event
        data = clean.encode("utf-8")
        redacted = decode(data)
        return data + b"\n", redacted if isinstance(redacted, Event) else event

    def _write(self, line: bytes) -> None:
        if self.durability == "batch":
            with self._durable:
                self._queue.append(line)
                self._durable.notify_all()
            return
        try:
            _write_all(self._fd, line)
            if self.durability == "always":
                os.fdatasync(self._fd)
        except OSError as error:
            # A failed write may have left part of a line: nothing more may follow it.  The
            # next Journal.open moves that torn tail aside.
            self._error = error
            raise _unavailable(self.path, error) from None

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every appended event (in the appending thread, in order).

        It runs under the journal's lock, which is what keeps seq order: it must be quick, must
        not append (that would deadlock) and should not raise (the appender would see the
        error for an event already written).  Hand work to an actor with ``tell`` instead.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # --- durability ---------------------------------------------------------------------

    def _start_flusher(self) -> None:
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"journal-flusher-{self.mission}", daemon=True
        )
        self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            with self._durable:
                while not self._queue and not self._closed:
                    self._durable.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
                upto = self.durable_seq + len(batch)
            try:
                _write_all(self._fd, b"".join(batch))
                os.fdatasync(self._fd)
            except OSError as error:
                with self._durable:
                    self._error = error
                    self._durable.notify_all()
                return
            self._mark_durable(upto)

    def _mark_durable(self, seq: int) -> None:
        with self._durable:
            self.durable_seq = max(self.durable_seq, seq)
            self._durable.notify_all()

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise _unavailable(self.path, self._error)

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until event ``seq`` is durable; False on timeout; raises if writing failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._durable:
            while self.durable_seq < seq:
                self._raise_pending_error()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._durable.wait(remaining)
        return True

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything appended so far is durable."""
        return self.wait_durable(self.last_seq, timeout)

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued, release the lock, close the file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            with self._durable:
                self._closed = True
                self._durable.notify_all()
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        with contextlib.suppress(OSError):
            (self.path.parent / PID_FILE).unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _open_for_append(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except FileNotFoundError:
        folder = path.parent
        raise LogUnavailableError(
            f"cannot open {path}: its folder {folder} does not exist"
        ) from None
    except OSError as error:
        raise _unavailable(path, error) from None


def _lock(fd: int, path: Path) -> None:
    deadline = time.monotonic() + LOCK_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LogLockedError(path, read_pid(path.parent / PID_FILE)) from None
            time.sleep(0.02)


def _write_pid(path: Path) -> None:
    try:
        (path.parent / PID_FILE).write_text(f"{os.getpid()}\n")
    except OSError as error:
        raise _unavailable(path.parent / PID_FILE, error) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _unavailable(path: Path, error: OSError) -> LogUnavailableError:
    return LogUnavailableError(f"cannot write {path}: {error.strerror or error}")


def _repair(path: Path, fd: int) -> int:
    """Check every line; cut a torn tail off into ``.torn-<n>``; return the last seq."""
    last_seq, good_end, last_line_no, bad = 0, 0, 0, None
    for line_no, (end, line) in enumerate(iter_lines(path), start=1):
        if not line.strip():  # readers skip blank lines too
            good_end = end if bad is None else good_end
            continue
        if bad is not None:
            raise CorruptLogError(path, bad[0], bad[1])
        try:
            event = decode(line)
        except LineError as error:
            bad = (line_no, str(error))
            continue
        last_seq, good_end, last_line_no = event.seq, end, line_no
    size = os.fstat(fd).st_size
    if size > good_end:
        _move_torn_tail(path, fd, good_end, size, last_line_no)
    return last_seq


def _move_torn_tail(path: Path, fd: int, good_end: int, size: int, last_line_no: int) -> None:
    n = 1
    while path.with_name(f"{path.name}.torn-{n}").exists():
        n += 1
    torn = path.with_name(f"{path.name}.torn-{n}")
    with open(path, "rb") as source:
        source.seek(good_end)
        torn.write_bytes(source.read(size - good_end))
    os.ftruncate(fd, good_end)
    os.fsync(fd)
    print(
        f"ocactors: {path}: repaired a torn tail after line {last_line_no} "
        f"({size - good_end} bytes moved to {torn.name})",
        file=sys.stderr,
    )
