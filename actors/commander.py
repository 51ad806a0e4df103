"""The Commander: a thin pykka shell around the pure rules of :mod:`ocactors.actors.decide`.

For every message it (1) asks ``decide(state, message, runtime)`` for the steps, (2) appends
the events through the journal and folds them into its state, and (3) performs the effects:
starting role actors, cancelling a session, running the checks, closing the door on session
writes.  Its state is the fold of its own events (``actor == "commander"``), which is why a
Commander built from the log after a crash or ``ocactors resume`` picks up exactly where the
log says: whatever is in flight per the log but not in this process is started again,
continuing recorded sessions rather than redoing them.

What the shell holds beyond the fold is only this process's runtime: the actors it started,
their cancel flags and when they started (for the TTL).  None of it changes a decision after a
replay, because every outcome it leads to is an event.

All hooks run on the Commander's own actor thread; it never blocks on a worker: sessions and
the checks run in their own actors and report back by message.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pykka

from ocactors.actors.context import MissionContext
from ocactors.actors.decide import (
    VERIFIER,
    CancelSession,
    CloseSessions,
    CommitTask,
    Emit,
    Flight,
    Message,
    ResolveChecks,
    Runtime,
    StartChecks,
    StartSession,
    Step,
    decide,
)
from ocactors.actors.history import HistoryError
from ocactors.actors.messages import (
    ActorDied,
    Begin,
    ChecksEnded,
    ChecksResolved,
    Committed,
    ControlCommand,
    RunChecks,
    RunSession,
    SessionEnded,
    Tick,
    role_of,
)
from ocactors.actors.state import MissionState, apply
from ocactors.actors.team import ROLE_ACTORS, VerifierActor
from ocactors.actors.verify import project_checks
from ocactors.events.catalogue import Record

MESSAGES = (
    Begin,
    SessionEnded,
    Committed,
    ChecksResolved,
    ChecksEnded,
    ActorDied,
    ControlCommand,
    Tick,
)
REPORTS = (SessionEnded, ChecksEnded, ActorDied)


class Commander(pykka.ThreadingActor):
    """Owns the mission state machine; talks to the role actors only by messages."""

    use_daemon_thread = True

    def __init__(
        self,
        ctx: MissionContext,
        state: MissionState,
        *,
        finished: threading.Event,
        prior: dict[str, tuple[Record, ...]] | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.state = state
        self.finished = finished
        self._prior = dict(prior or {})
        self._flights: dict[str, Flight] = {}
        self._cancels: dict[str, threading.Event] = {}
        self.generation = ctx.generation

    def on_receive(self, message: Any) -> Any:
        """Runs on the Commander's thread: decide, append, fold, perform."""
        if isinstance(message, MESSAGES) and not self._stale(message):
            self._handle(message)
        return None

    def _stale(self, message: Message) -> bool:
        """A report from an actor this Commander no longer has in flight (or never started)."""
        if not isinstance(message, REPORTS):
            return False
        actor = VERIFIER if isinstance(message, ChecksEnded) else message.actor
        flight = self._flights.get(actor)
        session = getattr(message, "session", None)
        if flight is None or (session is not None and session != flight.session):
            return True
        del self._flights[actor]
        self._cancels.pop(actor, None)
        return False

    def _handle(self, message: Message) -> None:
        followups: list[Message] = []
        runtime = Runtime(dict(self._flights), self.ctx.clock())
        for step in decide(self.state, message, runtime):
            followup = self._perform(step)
            if followup is not None:
                followups.append(followup)
        for followup in followups:
            self._handle(followup)

    def _perform(self, step: Step) -> Message | None:
        match step:
            case Emit():
                self._append(step)
            case StartSession():
                self._start_session(step)
            case CancelSession():
                self._cancel(step.actor)
            case CommitTask():
                return self._commit(step)
            case ResolveChecks():
                return ChecksResolved(step.iteration, project_checks(self.ctx.workspace))
            case StartChecks():
                self._start_checks(step)
            case CloseSessions():
                self.ctx.close_sessions(step.reason)
        return None

    def _append(self, step: Emit) -> None:
        stamped = self.ctx.journal.append(step.event, actor=step.actor).event
        if step.actor != "commander":
            return
        self.state = apply(self.state, stamped)
        if self.state.final:
            self._finish()

    def _finish(self) -> None:
        self.ctx.stopping.set()
        for cancel in self._cancels.values():
            cancel.set()
        self.ctx.journal.flush()
        self.finished.set()

    # --- effects ----------------------------------------------------------------------

    def _start_session(self, step: StartSession) -> None:
        """A fresh role actor for the session, continuing its recorded turns if any."""
        prior = self._prior.pop(step.session, None)
        if prior is None and step.from_log:
            prior = self.ctx.session_events(step.session, step.actor)
        ref = ROLE_ACTORS[role_of(step.actor)].start(self.ctx, self.actor_ref)
        cancel = threading.Event()
        self._flights[step.actor] = Flight(step.session, self.ctx.clock())
        self._cancels[step.actor] = cancel
        job = RunSession(step.actor, step.session, self.state, prior or (), cancel, self.generation)
        ref.tell(job)

    def _commit(self, step: CommitTask) -> Committed:
        """Commit on the mission's history, here on the Commander's thread (serialised)."""
        history = self.ctx.history
        if history is None:
            return Committed(step.task_id, step.summary)
        try:
            commit = history.commit_task(step.task_id, step.title, step.files)
        except HistoryError as error:
            return Committed(step.task_id, step.summary, error=str(error) or "commit failed")
        return Committed(step.task_id, step.summary, commit=commit)

    def _cancel(self, actor: str) -> None:
        if actor in self._cancels:
            self._cancels[actor].set()
        if actor in self._flights:
            self._flights[actor] = replace(self._flights[actor], cancelled=True)

    def _start_checks(self, step: StartChecks) -> None:
        ref = VerifierActor.start(self.ctx, self.actor_ref)
        self._flights[VERIFIER] = Flight(f"verify#{step.iteration}", self.ctx.clock())
        ref.tell(RunChecks(step.iteration, step.checks))
