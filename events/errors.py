"""What can go wrong with a mission log, each with a one-line message a person can act on.

::

    EventLogError
    ├── LogLockedError          another process is the log's writer (names its pid)
    ├── CorruptLogError         a complete line in the middle is not a valid event
    ├── LogUnavailableError     missing or unreadable folder, read-only disk
    │   └── LogTamperedError    the log was changed by another process than its writer
    ├── MissionNotFoundError    no mission matches the id or prefix
    └── AmbiguousMissionError   a prefix matches several missions
"""

from __future__ import annotations

from pathlib import Path


class EventLogError(Exception):
    """Base of every error of the events library."""


class LogLockedError(EventLogError):
    """The log already has a writer; there is only ever one."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is being written by {holder}; only one writer is allowed")
        self.path = path
        self.pid = pid


class CorruptLogError(EventLogError):
    """A complete line that is not a valid event, reported with its line number."""

    def __init__(self, path: Path, line_no: int, reason: str) -> None:
        super().__init__(f"{path}:{line_no}: corrupt event line ({reason})")
        self.path = path
        self.line_no = line_no
        self.reason = reason


class LogUnavailableError(EventLogError):
    """The log or its folder cannot be read or written."""


class MissionNotFoundError(EventLogError):
    """No mission matches what was asked for."""


class AmbiguousMissionError(EventLogError):
    """A prefix matches more than one mission."""


class LogTamperedError(LogUnavailableError):
    """Someone else than the writer truncated, replaced or wrote into the log.

    The writer can no longer vouch for the file, so it refuses every append but a final event
    (which says why the mission ended).  ``how`` is one of ``truncated``, ``appended``,
    ``replaced`` or ``deleted``; :data:`REASON` is the reason a mission stops with.
    """

    REASON = "log-tampered"

    def __init__(self, path: Path, how: str, detail: str) -> None:
        super().__init__(
            f"{path} was changed by another process: {detail}; only its writer may change it"
        )
        self.path = path
        self.how = how
        self.detail = detail
