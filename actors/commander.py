"""The Commander: deterministic code that owns the mission, its schedule and its loop.

Its state is the fold of its own events (``actor == "commander"``) through
:func:`ocactors.actors.state.apply`; every message it handles appends events first and then
reads the new state, and :meth:`Commander._advance` decides the next step from that state
alone.  That is why a Commander built from the log after a crash or ``ocactors resume`` picks
up exactly where the log says: whatever is in flight per the log but not in this process
(``_inflight``) is started again, continuing recorded sessions rather than redoing them.

All hooks run on the Commander's own actor thread; it never blocks on a worker: sessions and
the verify command run in their own actors and report back by message.
"""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pykka

from ocactors.actors.context import MissionContext
from ocactors.actors.messages import (
    ActorDied,
    Begin,
    ControlCommand,
    Kind,
    RunSession,
    RunVerify,
    SessionEnded,
    Tick,
    VerifyEnded,
)
from ocactors.actors.scheduler import RESUMABLE, blocked, ready_tasks, work_left, worker_slots
from ocactors.actors.state import MissionState, TaskState, apply
from ocactors.actors.team import ROLE_ACTORS, VerifierActor
from ocactors.actors.verify import detect_verify_command
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, Finding, Record, TaskSpec

MAX_PLAN_ATTEMPTS = 3
MAX_REVIEW_ATTEMPTS = 3
MAX_TASK_ATTEMPTS = 3
MAX_SESSION_RESTARTS = 3


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
        self._inflight: dict[str, pykka.ActorRef[Any]] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._started_at: dict[str, float] = {}

    # --- messages (all on the Commander's thread) -------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message, then take every step the new state allows."""
        if self.state.final:
            return None
        match message:
            case Begin():
                pass
            case SessionEnded():
                self._on_session_ended(message)
            case VerifyEnded():
                self._on_verify(message)
            case ActorDied():
                self._on_actor_died(message)
            case ControlCommand():
                self._on_control(message)
            case Tick():
                self._expire_sessions()
            case _:
                return None
        self._advance()
        return None

    def _emit(self, event: Event) -> Event:
        stamped = self.ctx.journal.append(event, actor="commander").event
        self.state = apply(self.state, stamped)
        if self.state.final:
            self._finish()
        return stamped

    def _finish(self) -> None:
        self.ctx.stopping.set()
        for cancel in self._cancels.values():
            cancel.set()
        self.ctx.journal.flush()
        self.finished.set()

    # --- the loop ---------------------------------------------------------------------

    def _advance(self) -> None:
        if self.state.final:
            return
        phase = self.state.phase
        if phase == "new":
            self._emit(ev.IterationStarted(iteration=self.state.iteration + 1))
            self._advance()
        elif phase == "planning":
            self._plan()
        elif phase == "building":
            self._build()
        elif phase == "reviewing":
            self._review()
        elif phase == "verifying":
            self._verify()

    def _plan(self) -> None:
        if self.state.plan_attempts == 0:
            self._emit(ev.PlanRequested(iteration=self.state.iteration, findings=self._findings()))
        self._ensure_session("plan", "plan", f"planner#{self._attempt_tag('plan')}", "planner")

    def _findings(self) -> list[Finding]:
        findings = list(self.state.findings)
        verify = self.state.verify
        if verify is not None and not verify.passed:
            tail = verify.output[-1500:]
            findings.append(Finding(file="(checks)", problem=f"`{verify.command}` failed:\n{tail}"))
        return findings

    def _attempt_tag(self, kind: str) -> str:
        attempts = self.state.plan_attempts if kind == "plan" else self.state.review_attempts
        return f"{self.state.iteration}.{attempts}"

    def _build(self) -> None:
        busy = frozenset(k.removeprefix("task:") for k in self._inflight if k.startswith("task:"))
        slots = worker_slots(self.state, len(busy))
        for task in ready_tasks(self.state, slots, busy):
            self._start_task(task)
        if any(key.startswith("task:") for key in self._inflight):
            return
        stuck = blocked(self.state) or self.state.tasks_in("failed")
        if stuck:
            names = ", ".join(t.spec.id for t in stuck)
            self._emit(ev.MissionFailed(reason="blocked", detail=f"tasks cannot finish: {names}"))
        elif not work_left(self.state):
            self._review()

    def _start_task(self, task: TaskState) -> None:
        resuming = task.status in RESUMABLE and task.session is not None
        attempt = task.attempts if resuming else task.attempts + 1
        session = task.session if resuming and task.session else f"worker:{task.spec.id}#{attempt}"
        missing = [f for f in task.spec.files if self.state.leases.get(f) != task.spec.id]
        if missing:
            self._emit(ev.LeaseGranted(task_id=task.spec.id, files=list(task.spec.files)))
        if task.status != "running":
            self._emit(ev.TaskStarted(task_id=task.spec.id, attempt=attempt, session=session))
        self._dispatch("task", task.spec.id, session, f"worker:{task.spec.id}")

    def _review(self) -> None:
        """After the build: ask for a verdict, then (verdict in) run the checks."""
        if self.state.phase == "building":
            self._emit(ev.ReviewRequested(iteration=self.state.iteration))
        if self.state.approved is None:
            tag = self._attempt_tag("review")
            self._ensure_session("review", "review", f"reviewer#{tag}", "reviewer")
            return
        command = self.state.settings.verify_command or detect_verify_command(self.ctx.workspace)
        self._emit(ev.VerifyStarted(iteration=self.state.iteration, command=command or ""))
        self._verify()

    def _verify(self) -> None:
        verify = self.state.verify
        if verify is not None and verify.iteration == self.state.iteration:
            self._conclude()
            return
        if "verify" in self._inflight:
            return
        ref = VerifierActor.start(self.ctx, self.actor_ref)
        self._inflight["verify"] = ref
        ref.tell(RunVerify(self.state.iteration, self.state.verify_command or None))

    def _conclude(self) -> None:
        state = self.state
        verify = state.verify
        if state.approved and verify is not None and verify.passed and not work_left(state):
            summary = f"{len(state.tasks)} tasks, {state.iteration} iteration(s), checks passed"
            self._emit(ev.MissionSealed(iterations=state.iteration, summary=summary))
        elif len(state.complaints) >= 2 and state.complaints[-1] == state.complaints[-2]:
            detail = "the review findings repeat the previous iteration's"
            self._emit(ev.MissionStopped(reason="no-progress", detail=detail))
        elif state.iteration >= state.settings.max_iterations:
            detail = f"not sealed after {state.iteration} iterations"
            self._emit(ev.MissionFailed(reason="max-iterations", detail=detail))
        else:
            self._emit(ev.IterationStarted(iteration=state.iteration + 1))
            self._plan()

    # --- sessions ---------------------------------------------------------------------

    def _ensure_session(self, kind: Kind, key: str, session: str, actor: str) -> None:
        if kind not in self._inflight:
            self._dispatch(kind, key, session, actor)

    def _dispatch(self, kind: Kind, key: str, session: str, actor: str) -> None:
        """Start a fresh role actor for ``session``, continuing its recorded turns if any."""
        slot = kind if kind != "task" else f"task:{key}"
        prior = self._prior.pop(session, None)
        if prior is None and self._recovering(session):
            prior = self.ctx.session_events(session, actor)
        ref = ROLE_ACTORS[kind].start(self.ctx, self.actor_ref)
        cancel = threading.Event()
        self._inflight[slot] = ref
        self._cancels[slot] = cancel
        self._started_at[slot] = self.ctx.clock()
        ref.tell(RunSession(kind, key, session, self.state, prior or (), cancel))

    def _recovering(self, session: str) -> bool:
        """A crashed session's events are read back from the log (it ran in this process)."""
        return session in self.state.crashes

    def _on_session_ended(self, message: SessionEnded) -> None:
        slot = message.kind if message.kind != "task" else f"task:{message.key}"
        self._forget(slot)
        if message.interrupted:
            self._on_interrupted(message)
        elif message.kind == "plan":
            self._on_plan(message)
        elif message.kind == "task":
            self._on_task(message)
        else:
            self._on_review(message)

    def _forget(self, slot: str) -> None:
        self._inflight.pop(slot, None)
        self._cancels.pop(slot, None)
        self._started_at.pop(slot, None)

    def _on_interrupted(self, message: SessionEnded) -> None:
        reason = message.interrupted or "stopped"
        if reason == "budget":
            detail = self.ctx.meter.exceeded(self.state.settings) or "budget reached"
            self._stop_mission("budget", detail)
        elif reason == "ttl" and message.kind == "task":
            self._task_failed(message.key, "the session ran past its time limit (TTL)")
        elif reason == "ttl":
            self._on_plan_or_review_failed(message.kind, "the session ran past its time limit")

    def _on_plan(self, message: SessionEnded) -> None:
        if message.result is None:
            self._on_plan_or_review_failed("plan", message.failure or "no plan")
            return
        tasks = msgspec.convert(message.result.get("tasks", []), list[TaskSpec])
        self._emit(ev.PlanAccepted(iteration=self.state.iteration, tasks=tasks))

    def _on_task(self, message: SessionEnded) -> None:
        task_id = message.key
        if message.result is None:
            self._task_failed(task_id, message.failure or "the session ended without a result")
            return
        self._release(task_id)
        self._emit(ev.TaskFinished(task_id=task_id, summary=str(message.result.get("summary", ""))))

    def _task_failed(self, task_id: str, reason: str) -> None:
        task = self.state.tasks[task_id]
        self._release(task_id)
        repeated = reason in task.failures
        retryable = task.attempts < MAX_TASK_ATTEMPTS and not repeated
        self._emit(ev.TaskFailed(task_id=task_id, reason=reason, retryable=retryable))
        if repeated:
            self._stop_mission("no-progress", f"task {task_id} failed the same way twice: {reason}")
        elif not retryable:
            self._emit(ev.MissionFailed(reason="task-failed", detail=f"task {task_id}: {reason}"))

    def _release(self, task_id: str) -> None:
        files = [f for f, owner in self.state.leases.items() if owner == task_id]
        if files:
            self._emit(ev.LeaseReleased(task_id=task_id, files=files))

    def _on_review(self, message: SessionEnded) -> None:
        if message.result is None:
            self._on_plan_or_review_failed("review", message.failure or "no verdict")
            return
        findings = msgspec.convert(message.result.get("findings", []), list[Finding])
        approved = bool(message.result.get("approved"))
        self._emit(
            ev.ReviewSubmitted(iteration=self.state.iteration, approved=approved, findings=findings)
        )

    def _on_plan_or_review_failed(self, kind: Kind, reason: str) -> None:
        iteration = self.state.iteration
        if kind == "plan":
            self._emit(ev.PlanFailed(iteration=iteration, reason=reason))
            if self.state.plan_attempts >= MAX_PLAN_ATTEMPTS:
                self._emit(ev.MissionFailed(reason="plan", detail=reason))
            else:
                self._emit(ev.PlanRequested(iteration=iteration, findings=self._findings()))
        else:
            self._emit(ev.ReviewFailed(iteration=iteration, reason=reason))
            if self.state.review_attempts >= MAX_REVIEW_ATTEMPTS:
                self._emit(ev.MissionFailed(reason="review", detail=reason))
            else:
                self._emit(ev.ReviewRequested(iteration=iteration))

    def _on_verify(self, message: VerifyEnded) -> None:
        self._inflight.pop("verify", None)
        self._emit(
            ev.VerifyFinished(
                iteration=message.iteration,
                command=message.command,
                exit_code=message.exit_code,
                passed=message.exit_code == 0,
                output=message.output,
                duration_s=message.duration_s,
            )
        )

    # --- faults and control -----------------------------------------------------------

    def _on_actor_died(self, message: ActorDied) -> None:
        self._forget(message.kind if message.kind != "task" else f"task:{message.key}")
        restarts = self.state.crashes.get(message.session, 0) + 1
        target = {"plan": "planner", "task": "worker", "review": "reviewer"}[message.kind]
        self._emit(
            ev.ActorCrashed(
                target=target, error=message.error, session=message.session, restarts=restarts
            )
        )
        if restarts <= MAX_SESSION_RESTARTS:
            return  # _advance starts a fresh actor that continues the session from the log
        reason = f"the session crashed {restarts} times: {message.error}"
        if message.kind == "task":
            self._task_failed(message.key, reason)
        else:
            self._on_plan_or_review_failed(message.kind, reason)

    def _on_control(self, message: ControlCommand) -> None:
        self._emit(
            ev.ControlReceived(command=message.command, args=message.args, source_pid=message.pid)
        )
        if message.command == "stop":
            who = f"pid {message.pid}" if message.pid else "another process"
            reason = str(message.args.get("reason", "user"))
            self._stop_mission(reason, str(message.args.get("detail", f"ocactors stop from {who}")))

    def _stop_mission(self, reason: str, detail: str) -> None:
        self.ctx.stopping.set()
        for task in self.state.tasks_in("running"):
            self._release(task.spec.id)
        self._emit(ev.MissionStopped(reason=reason, detail=detail))

    def _expire_sessions(self) -> None:
        ttl = self.state.settings.session_ttl_s
        now = self.ctx.clock()
        for slot, started in list(self._started_at.items()):
            if now - started > ttl and slot in self._cancels:
                self._cancels[slot].set()
                self._started_at.pop(slot, None)
