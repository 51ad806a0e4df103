"""The messages actors send each other (in memory; the log records what they caused).

Messages are frozen dataclasses: actors share no mutable state, and a ``MissionState`` passed
along is itself immutable, so a role actor can build its brief without asking anyone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from ocactors.actors.state import MissionState
from ocactors.events.catalogue import Record

Kind = Literal["plan", "task", "review"]


# --- to the Commander -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """Start or resume: decide the next step from the folded state."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A role actor's session ended: a result, a failure, or an interruption."""

    kind: Kind
    key: str
    session: str
    result: dict[str, Any] | None = None
    failure: str | None = None
    interrupted: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyEnded:
    """The verify command finished."""

    iteration: int
    command: str
    exit_code: int
    output: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class ActorDied:
    """A role actor crashed; the Commander decides what replaces it."""

    kind: Kind
    key: str
    session: str
    error: str


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """A command from another process, read from the control file."""

    command: str
    args: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic: check session TTLs."""


# --- to the role actors ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunSession:
    """Run (or continue, given its prior events) one session for ``key``."""

    kind: Kind
    key: str
    session: str
    state: MissionState
    prior: tuple[Record, ...] = ()
    cancel: threading.Event | None = None


@dataclass(frozen=True, slots=True)
class RunVerify:
    """Run the project's checks for ``iteration``."""

    iteration: int
    command: str | None
