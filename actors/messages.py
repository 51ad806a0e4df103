"""The messages actors send each other (in memory; the log records what they caused).

Messages are frozen: actors share no mutable state, and a ``MissionState`` passed along is
itself immutable, so a role actor can build its brief without asking anyone.

One word per concept: an **actor** is named as in the log's ``actor`` field (``planner``,
``reviewer``, ``worker:T1``, ``verifier``), and that name is also the key of the work the
Commander has in flight; its **role** is the part before the colon.  Results that cross actor
boundaries are typed Structs (:data:`SessionResult`), decoded from the session's recorded
``session.finished`` result, so a malformed result fails where it is read, not deep inside
the Commander.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import msgspec

from ocactors.actors.state import MissionState
from ocactors.events.catalogue import CheckSpec, Finding, Record, TaskSpec
from ocactors.events.control import ControlCommand

__all__ = [
    "ActorDied",
    "Begin",
    "ChecksEnded",
    "ChecksResolved",
    "Committed",
    "ControlCommand",
    "PlanResult",
    "ReviewResult",
    "Role",
    "RunChecks",
    "RunSession",
    "SessionEnded",
    "SessionResult",
    "TaskResult",
    "Tick",
    "result_for",
    "role_of",
    "task_of",
]

Role = Literal["planner", "worker", "reviewer"]


def role_of(actor: str) -> str:
    """``worker:T1`` -> ``worker``; ``planner`` -> ``planner``."""
    return actor.split(":", 1)[0]


def task_of(actor: str) -> str:
    """``worker:T1`` -> ``T1``; empty for actors that are not a task's."""
    return actor.split(":", 1)[1] if ":" in actor else ""


# --- typed session results --------------------------------------------------------------


class PlanResult(msgspec.Struct, frozen=True, kw_only=True):
    """The planner's accepted plan."""

    tasks: list[TaskSpec]


class TaskResult(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's account of its finished task."""

    summary: str = ""


class ReviewResult(msgspec.Struct, frozen=True, kw_only=True):
    """The reviewer's verdict."""

    approved: bool
    findings: list[Finding] = []


SessionResult = PlanResult | TaskResult | ReviewResult

_RESULT_TYPES: dict[str, type[SessionResult]] = {
    "planner": PlanResult,
    "worker": TaskResult,
    "reviewer": ReviewResult,
}


def result_for(role: str, raw: dict[str, object]) -> SessionResult:
    """Decode a recorded ``session.finished`` result as ``role``'s typed result.

    Raises ``msgspec.ValidationError`` when the result does not have the role's shape.
    """
    return msgspec.convert(raw, _RESULT_TYPES[role])


# --- to the Commander -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """Start or resume: decide the next step from the folded state."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A role actor's session ended: a result, a failure, or an interruption.

    ``interrupted`` is the gate's reason (``stopped``, ``ttl``, ``budget``); ``detail`` says
    more where the actor knows more (the budget that was reached).
    """

    actor: str
    session: str
    result: SessionResult | None = None
    failure: str | None = None
    interrupted: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ChecksResolved:
    """The project's checks for ``iteration`` were looked up (empty: none found)."""

    iteration: int
    checks: tuple[CheckSpec, ...]


@dataclass(frozen=True, slots=True)
class Committed:
    """A finished task's files were committed (``commit``), or could not be (``error``).

    Both empty: the mission keeps no history (a test's bare context).  ``summary`` is the
    worker's, carried through so the task can finish with it.
    """

    task_id: str
    summary: str
    commit: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class ChecksEnded:
    """The project's checks finished."""

    iteration: int
    command: str
    exit_code: int
    output: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class ActorDied:
    """A role actor crashed; the Commander decides what replaces it."""

    actor: str
    session: str
    error: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic: lets the Commander look at the clock (session TTLs)."""


# --- to the role actors -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunSession:
    """Run (or continue, given its prior events) one session as ``actor``."""

    actor: str
    session: str
    state: MissionState
    prior: tuple[Record, ...] = ()
    cancel: threading.Event | None = None
    generation: int = 0
    """The Commander's generation: a replaced Commander's actors are retired."""


@dataclass(frozen=True, slots=True)
class RunChecks:
    """Run the project's checks for ``iteration``: every one must pass."""

    iteration: int
    checks: tuple[CheckSpec, ...]
