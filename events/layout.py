"""Where a mission lives on disk: ``<workspace>/.opencode/missions/<mission-id>/``.

Mission ids sort by creation time (``20261123-153012-a1b2``: UTC date and time, then four
random hex digits against collisions), so listing the folder sorted is listing missions in the
order they began.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ocactors.events.errors import (
    AmbiguousMissionError,
    LogUnavailableError,
    MissionNotFoundError,
)

OPENCODE = ".opencode"
MISSIONS = "missions"
PID_FILE = "writer.pid"


@dataclass(frozen=True)
class MissionPaths:
    """The files of one mission."""

    root: Path

    @property
    def id(self) -> str:
        """The mission id (the folder's name)."""
        return self.root.name

    @property
    def events(self) -> Path:
        """The event log."""
        return self.root / "events.jsonl"

    @property
    def control(self) -> Path:
        """The control inbox other processes append commands to."""
        return self.root / "control.jsonl"

    @property
    def baseline(self) -> Path:
        """Files as they were before the mission first wrote them."""
        return self.root / "baseline"


def missions_dir(workspace: Path) -> Path:
    """``<workspace>/.opencode/missions``."""
    return Path(workspace) / OPENCODE / MISSIONS


def new_mission_id(now: datetime | None = None) -> str:
    """A fresh id that sorts by creation time."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_mission_dir(workspace: Path, mission_id: str) -> MissionPaths:
    """Make the mission's folder; a read-only or missing workspace is a one-line error."""
    root = missions_dir(workspace) / mission_id
    try:
        root.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise LogUnavailableError(f"mission folder {root} already exists") from None
    except OSError as error:
        raise LogUnavailableError(f"cannot create {root}: {error.strerror}") from None
    return MissionPaths(root)


def list_missions(workspace: Path) -> list[MissionPaths]:
    """Every mission folder of the workspace, newest first (empty if there are none)."""
    folder = missions_dir(workspace)
    try:
        entries = [p for p in folder.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []
    except OSError as error:
        raise LogUnavailableError(f"cannot read {folder}: {error.strerror}") from None
    return [MissionPaths(p) for p in sorted(entries, key=lambda p: p.name, reverse=True)]


def resolve_mission(workspace: Path, ref: str | None) -> MissionPaths:
    """An id, a unique prefix of one, or None for the newest mission."""
    missions = list_missions(workspace)
    if not missions:
        raise MissionNotFoundError(
            f'no missions in {missions_dir(workspace)}; start one with `ocactors task "GOAL"`'
        )
    if ref is None:
        return missions[0]
    exact = [m for m in missions if m.id == ref]
    matches = exact or [m for m in missions if m.id.startswith(ref)]
    if not matches:
        raise MissionNotFoundError(f"no mission matches {ref!r}; `ocactors ls` lists them")
    if len(matches) > 1:
        names = ", ".join(m.id for m in matches[:4])
        raise AmbiguousMissionError(f"{ref!r} matches {len(matches)} missions ({names}); say more")
    return matches[0]


def writer_pid(events_path: Path) -> int | None:
    """The pid of the process holding the log's writer lock, or None if nobody writes it.

    Probes with a shared non-blocking lock, which fails only while a writer holds its
    exclusive lock; the probe is released at once and never blocks the writer.
    """
    try:
        fd = os.open(events_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return read_pid(events_path.parent / PID_FILE) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, if there is a readable one."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
