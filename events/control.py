"""The control inbox: how other processes talk to a running mission without writing its log.

``ocactors stop`` (and later commands) append one JSON line to ``control.jsonl`` with a single
``O_APPEND`` write, which the mission's runner polls.  The owner records what it takes in as a
``control.received`` event, so the log still tells the whole story.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import msgspec

from ocactors.events.errors import LogUnavailableError
from ocactors.events.layout import MissionPaths
from ocactors.events.reader import iter_lines


class ControlCommand(msgspec.Struct, frozen=True, kw_only=True):
    """One command for a running mission."""

    command: str
    args: dict[str, Any] = {}
    pid: int | None = None
    ts: str = ""
    id: str = ""


def send_control(paths: MissionPaths, command: str, args: dict[str, Any] | None = None) -> None:
    """Append one command to the mission's control file (atomic for a small line)."""
    from ocactors.events.journal import utc_now

    line = msgspec.json.encode(
        ControlCommand(
            command=command,
            args=args or {},
            pid=os.getpid(),
            ts=utc_now(),
            id=secrets.token_hex(4),
        )
    )
    try:
        fd = os.open(paths.control, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as error:
        raise LogUnavailableError(f"cannot write {paths.control}: {error.strerror}") from None
    try:
        os.write(fd, line + b"\n")
    finally:
        os.close(fd)


class ControlInbox:
    """The owner's side: new complete command lines since the last poll."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def skip_existing(self) -> None:
        """Ignore commands written before this process took over."""
        for end, _ in iter_lines(self.path):
            self.offset = end

    def poll(self) -> list[ControlCommand]:
        """Commands appended since the last poll (garbage lines are skipped)."""
        commands = []
        for end, line in iter_lines(self.path, self.offset):
            self.offset = end
            try:
                commands.append(msgspec.json.decode(line, type=ControlCommand))
            except msgspec.DecodeError:
                continue
        return commands
