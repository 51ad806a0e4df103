"""Reading missions for people: what the log says, never what a running process holds.

Shared by ``ls``, ``status``, ``tail``, ``replay`` and ``monitor``.  Reads take no lock, and a
damaged log is shown with what can be read plus a one-line note on stderr, never a crash.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ocactors.events import (
    FORMAT_VERSION,
    CorruptLine,
    MissionPaths,
    read_events,
    resolve_mission,
    writer_pid,
)

if TYPE_CHECKING:  # the fold is imported by what folds (``tail --json`` never does)
    from ocactors.actors.state import MissionState
    from ocactors.events.catalogue import Record


@dataclass
class Notes:
    """Problems met while reading, said once each on stderr."""

    corrupt: int = 0
    first: CorruptLine | None = None

    def __call__(self, bad: CorruptLine) -> None:
        """``on_corrupt`` callback of the reader."""
        self.corrupt += 1
        self.first = self.first or bad

    def say(self, paths: MissionPaths, state: MissionState | None = None) -> None:
        """One line per kind of problem."""
        if self.first is not None:
            print(
                f"ocactors: note: {paths.events.name} line {self.first.line_no} and "
                f"{self.corrupt - 1} more are not events ({self.first.reason}); skipped",
                file=sys.stderr,
            )
        if state is not None and state.version > FORMAT_VERSION:
            print(
                f"ocactors: note: log format {state.version} is newer than this ocactors "
                f"({FORMAT_VERSION}); unknown events are shown raw",
                file=sys.stderr,
            )


def events(paths: MissionPaths, notes: Notes, **filters: object) -> Iterator[Record]:
    """The mission's events, lenient: corrupt lines go to ``notes``."""
    if not paths.events.exists():
        return iter(())
    return read_events(paths.events, strict=False, on_corrupt=notes, **filters)  # type: ignore[arg-type]


def fold_all(paths: MissionPaths, until: int | None = None) -> tuple[MissionState, Notes]:
    """The whole mission's state (every actor's events) just after ``until``."""
    from ocactors.actors.state import fold_mission
    from ocactors.snapshots import fold_with_snapshot

    notes = Notes()
    if until is None:
        damaged: list[int] = []
        state = fold_with_snapshot(paths, lambda line_no, reason: damaged.append(line_no))
        if not damaged:
            return state, notes
    return fold_mission(events(paths, notes, until=until)), notes  # says what it skipped


def status_word(paths: MissionPaths, state: MissionState) -> str:
    """running / sealed / failed / stopped / crashed (no final event, no writer)."""
    if writer_pid(paths.events) is not None:
        return "running"
    if state.final:
        return state.phase
    return "crashed" if state.mission or paths.events.exists() else "empty"


def wall_time(state: MissionState) -> str:
    """The mission's own running time, up to its last event (see :func:`active_seconds`)."""
    return clock(active_seconds(state, _timestamp(state.last_ts)))


def active_seconds(state: MissionState, now: float | None = None) -> float:
    """Seconds the mission ran: its ended segments, plus the open one up to ``now``.

    A stopped and resumed mission does not count the pause; a fork counts from its own
    start, not the original's; a finished mission's clock stands still.
    """
    start = _timestamp(state.segment_ts)
    if start is None or state.final:
        return state.active_s
    return state.active_s + max((now if now is not None else time.time()) - start, 0.0)


def clock(seconds: float) -> str:
    """``3m07s``: minutes and seconds."""
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"


def _timestamp(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if ts else None
    except ValueError:
        return None


def pick(workspace: Path, ref: str | None) -> MissionPaths:
    """A mission by id, unique prefix, or the newest."""
    return resolve_mission(workspace, ref)


def shorten(text: str, limit: int) -> str:
    """One line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
