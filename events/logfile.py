"""The log file itself: opened for appending, locked for one writer, written whole."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ocactors.events.errors import LogLockedError, LogUnavailableError
from ocactors.events.layout import PID_FILE, read_pid

LOCK_RETRY_S = 0.2


def open_for_append(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except FileNotFoundError:
        folder = path.parent
        raise LogUnavailableError(
            f"cannot open {path}: its folder {folder} does not exist"
        ) from None
    except OSError as error:
        raise unavailable(path, error) from None


def lock(fd: int, path: Path) -> None:
    deadline = time.monotonic() + LOCK_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LogLockedError(path, read_pid(path.parent / PID_FILE)) from None
            time.sleep(0.02)


def write_pid(path: Path) -> None:
    try:
        (path.parent / PID_FILE).write_text(f"{os.getpid()}\n")
    except OSError as error:
        raise unavailable(path.parent / PID_FILE, error) from None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def unavailable(path: Path, error: OSError) -> LogUnavailableError:
    return LogUnavailableError(f"cannot write {path}: {error.strerror or error}")
