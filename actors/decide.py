"""The Commander's rules as one pure function: ``decide(state, message, runtime) -> steps``.

Everything the mission loop decides (plan, build, review, verify, retry, no-progress, limits,
TTL) lives here, with no threads, files or clock: the inputs are the Commander's folded
state, the message it received and :class:`Runtime`, the one thing the log cannot know — which
work this process has in flight and what time it is.  The output is an ordered list of
:data:`Step`: events to append (:class:`Emit`) and effects for the shell to perform
(start a session, cancel one, look up or run the checks, close the door on session writes).

Order matters and is part of the decision: the door closes before a final event is written,
so no session event ever follows the mission's end.  A decision may take several steps at
once (a finished iteration starts the next plan); :class:`_Draft` folds each emitted event
into a private copy of the state as it goes, so later rules see earlier events, exactly as the
shell will after appending them.  The shell (:mod:`ocactors.actors.commander`) performs the
steps in order and folds the stamped events into its real state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ocactors.actors.messages import (
    ActorDied,
    Begin,
    ChecksEnded,
    ChecksResolved,
    Committed,
    ControlCommand,
    PlanResult,
    ReviewResult,
    SessionEnded,
    TaskResult,
    Tick,
    role_of,
    task_of,
)
from ocactors.actors.scheduler import RESUMABLE, blocked, ready_tasks, work_left, worker_slots
from ocactors.actors.state import MissionState, TaskState, apply
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import CheckSpec, Event, Finding

MAX_PLAN_ATTEMPTS = 3
MAX_REVIEW_ATTEMPTS = 3
MAX_TASK_ATTEMPTS = 3
MAX_SESSION_RESTARTS = 3
VERIFIER = "verifier"
CHECKS_TAIL = 1500
UNVERIFIED = "none"
"""``--verify none``: seal on the reviewer's verdict alone."""
NO_CHECKS = (
    "the project has no automated checks, so nothing shows the work is right: plan a task "
    "that adds tests for what was built (and a way to run them), or run with --verify CMD "
    "(--verify none seals on the review alone)"
)

Message = (
    Begin
    | SessionEnded
    | Committed
    | ChecksResolved
    | ChecksEnded
    | ActorDied
    | ControlCommand
    | Tick
)


# --- what a decision is made of ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Emit:
    """Append ``event`` as ``actor`` (the Commander's own, or a session's ending)."""

    event: Event
    actor: str = "commander"


@dataclass(frozen=True, slots=True)
class StartSession:
    """Start a role actor for ``session``; ``from_log``: continue it from its recorded events."""

    actor: str
    session: str
    from_log: bool = False


@dataclass(frozen=True, slots=True)
class CancelSession:
    """Ask a running session to stop at its next step (its TTL ran out)."""

    actor: str


@dataclass(frozen=True, slots=True)
class CommitTask:
    """Commit a finished task's files on the mission's history; Committed comes back."""

    task_id: str
    title: str
    files: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class ResolveChecks:
    """Look up the project's check command; the answer comes back as ChecksResolved."""

    iteration: int


@dataclass(frozen=True, slots=True)
class StartChecks:
    """Run the project's checks off the Commander's thread; ChecksEnded comes back."""

    iteration: int
    checks: tuple[CheckSpec, ...]


@dataclass(frozen=True, slots=True)
class CloseSessions:
    """Refuse session writes from now on and end every open session with ``reason``."""

    reason: str


Step = (
    Emit | StartSession | CancelSession | CommitTask | ResolveChecks | StartChecks | CloseSessions
)


@dataclass(frozen=True, slots=True)
class Flight:
    """Work this process has in flight under an actor name."""

    session: str
    started_at: float
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Runtime:
    """What only this process knows: work in flight (by actor name) and the clock."""

    inflight: Mapping[str, Flight] = field(default_factory=dict)
    now: float = 0.0


# --- the decision -----------------------------------------------------------------------


def decide(state: MissionState, message: Message, runtime: Runtime | None = None) -> list[Step]:
    """The steps that ``message`` calls for in ``state``; nothing once the mission is final."""
    draft = _Draft(state, runtime or Runtime())
    if state.final:
        return []
    match message:
        case Begin():
            pass
        case SessionEnded():
            _session_ended(draft, message)
        case Committed():
            _committed(draft, message)
        case ChecksResolved():
            _checks_resolved(draft, message)
        case ChecksEnded():
            _checks_ended(draft, message)
        case ActorDied():
            _actor_died(draft, message)
        case ControlCommand():
            _control(draft, message)
        case Tick():
            _expire_sessions(draft)
        case _:
            raise TypeError(f"the Commander has no rule for {type(message).__name__}")
    _advance(draft)
    return draft.steps


class _Draft:
    """The steps decided so far, and the state and flights as they will be after them."""

    def __init__(self, state: MissionState, runtime: Runtime) -> None:
        self.state = state
        self.now = runtime.now
        self.inflight = dict(runtime.inflight)
        self.steps: list[Step] = []

    def emit(self, event: Event, actor: str = "commander") -> None:
        self.steps.append(Emit(event, actor))
        if actor == "commander":
            self.state = apply(self.state, event)

    def start(self, actor: str, session: str) -> None:
        from_log = session in self.state.crashes
        self.steps.append(StartSession(actor, session, from_log))
        self.inflight[actor] = Flight(session, self.now)

    def end(self, event: ev.MissionSealed | ev.MissionFailed | ev.MissionStopped) -> None:
        """Close the door on sessions, give the leases back, then the final event."""
        reason = getattr(event, "reason", "sealed")
        self.steps.append(CloseSessions(reason))
        for task_id in dict.fromkeys(self.state.leases.values()):
            _release(self, task_id)
        self.emit(event)

    @property
    def workers(self) -> frozenset[str]:
        """Tasks with a worker in flight."""
        return frozenset(task_of(a) for a in self.inflight if role_of(a) == "worker")


# --- the loop ---------------------------------------------------------------------------


def _advance(d: _Draft) -> None:
    """Take every step the state allows now."""
    if d.state.final:
        return
    match d.state.phase:
        case "new":
            d.emit(ev.IterationStarted(iteration=d.state.iteration + 1))
            _advance(d)
        case "planning":
            _plan(d)
        case "building":
            _build(d)
        case "reviewing":
            _review(d)
        case "verifying":
            _verify(d)
        case _:
            pass


def _plan(d: _Draft) -> None:
    if d.state.plan_attempts == 0:
        d.emit(ev.PlanRequested(iteration=d.state.iteration, findings=_findings(d.state)))
    _ensure(d, "planner", f"planner#{d.state.iteration}.{d.state.plan_attempts}")


def _findings(state: MissionState) -> list[Finding]:
    """The review's findings, plus the failing checks' output as one more finding."""
    findings = list(state.findings)
    verify = state.verify
    if verify is not None and not verify.passed and not verify.command:
        findings.append(Finding(file="(checks)", problem=NO_CHECKS))
    elif verify is not None and not verify.passed:
        tail = verify.output[-CHECKS_TAIL:]
        findings.append(Finding(file="(checks)", problem=f"`{verify.command}` failed:\n{tail}"))
    return findings


def _build(d: _Draft) -> None:
    busy = d.workers
    for task in ready_tasks(d.state, worker_slots(d.state, len(busy)), busy):
        _start_task(d, task)
    if d.workers:
        return
    stuck = blocked(d.state) or d.state.tasks_in("failed")
    if stuck:
        names = ", ".join(t.spec.id for t in stuck)
        d.end(ev.MissionFailed(reason="blocked", detail=f"tasks cannot finish: {names}"))
    elif not work_left(d.state):
        _review(d)


def _start_task(d: _Draft, task: TaskState) -> None:
    """Lease the task's files and start (or continue) its worker session."""
    resuming = task.status in RESUMABLE and task.session is not None
    attempt = task.attempts if resuming else task.attempts + 1
    session = task.session if resuming and task.session else f"worker:{task.spec.id}#{attempt}"
    if any(d.state.leases.get(f) != task.spec.id for f in task.spec.files):
        d.emit(ev.LeaseGranted(task_id=task.spec.id, files=list(task.spec.files)))
    if task.status != "running":
        d.emit(ev.TaskStarted(task_id=task.spec.id, attempt=attempt, session=session))
    d.start(f"worker:{task.spec.id}", session)


def _review(d: _Draft) -> None:
    """After the build: ask for a verdict; with the verdict in, start the checks."""
    if d.state.phase == "building":
        d.emit(ev.ReviewRequested(iteration=d.state.iteration))
    command = d.state.settings.verify_command
    if d.state.approved is None:
        _ensure(d, "reviewer", f"reviewer#{d.state.iteration}.{d.state.review_attempts}")
    elif command == UNVERIFIED:
        _unverified(d)
    elif command:
        _start_checks(d, (CheckSpec(name="verify", command=command),))
    else:
        d.steps.append(ResolveChecks(d.state.iteration))


def _unverified(d: _Draft) -> None:
    """``--verify none``: no checks run; the verdict alone decides, and the log says so."""
    iteration = d.state.iteration
    d.emit(ev.VerifyStarted(iteration=iteration, command=UNVERIFIED))
    note = "unverified: no checks run (--verify none)"
    d.emit(
        ev.VerifyFinished(
            iteration=iteration, command=UNVERIFIED, exit_code=0, passed=True, output=note
        )
    )
    _verify(d)


def _start_checks(d: _Draft, checks: tuple[CheckSpec, ...]) -> None:
    """Every check must pass; none at all is a failure the next plan must answer."""
    iteration = d.state.iteration
    if not checks:
        d.emit(ev.VerifyStarted(iteration=iteration, command=""))
        d.emit(
            ev.VerifyFinished(
                iteration=iteration, command="", exit_code=1, passed=False, output=NO_CHECKS
            )
        )
    else:
        line = checks_line(checks)
        d.emit(ev.VerifyStarted(iteration=iteration, command=line, checks=list(checks)))
    _verify(d)


def checks_line(checks: tuple[CheckSpec, ...] | list[CheckSpec]) -> str:
    """The checks in one line: the user's own command as given, found ones by name."""
    if len(checks) == 1 and checks[0].name == "verify":
        return checks[0].command
    return "; ".join(f"{c.name}: {c.command}" for c in checks)


def _verify(d: _Draft) -> None:
    verify = d.state.verify
    if verify is not None and verify.iteration == d.state.iteration:
        _conclude(d)
    elif VERIFIER not in d.inflight:
        d.steps.append(StartChecks(d.state.iteration, _checks_of(d.state)))
        d.inflight[VERIFIER] = Flight(f"verify#{d.state.iteration}", d.now)


def _checks_of(state: MissionState) -> tuple[CheckSpec, ...]:
    """The checks started; a log from before named checks has one command, run as it was."""
    if state.verify_checks or not state.verify_command:
        return state.verify_checks
    return (CheckSpec(name="verify", command=state.verify_command),)


def _conclude(d: _Draft) -> None:
    """An iteration's verdict and checks are in: seal, stop, fail, or go round again."""
    state = d.state
    verify = state.verify
    if state.approved and verify is not None and verify.passed and not work_left(state):
        unverified = verify.command == UNVERIFIED
        checks = "unverified (--verify none)" if unverified else "checks passed"
        summary = f"{len(state.tasks)} tasks, {state.iteration} iteration(s), {checks}"
        d.end(ev.MissionSealed(iterations=state.iteration, summary=summary, unverified=unverified))
    elif _repeated(state):
        d.end(ev.MissionStopped(reason="no-progress", detail=_repeated(state)))
    elif state.iteration >= state.settings.max_iterations:
        detail = f"not sealed after {state.iteration} iterations"
        d.end(ev.MissionFailed(reason="max-iterations", detail=detail))
    else:
        d.emit(ev.IterationStarted(iteration=state.iteration + 1))
        _plan(d)


def _repeated(state: MissionState) -> str:
    """What repeated the previous iteration's complaint, word for word once masked; or ""."""
    if len(state.complaints) < 2 or state.complaints[-1] != state.complaints[-2]:
        return ""
    last = state.complaints[-1]
    parts = [
        name
        for name, part in (
            ("the review's findings", last.findings),
            ("the checks' failure", last.checks),
        )
        if part
    ]
    return f"same as the previous iteration: {' and '.join(parts)}" if parts else ""


def _ensure(d: _Draft, actor: str, session: str) -> None:
    if actor not in d.inflight:
        d.start(actor, session)


# --- sessions ending --------------------------------------------------------------------


def _session_ended(d: _Draft, message: SessionEnded) -> None:
    d.inflight.pop(message.actor, None)
    role, result = role_of(message.actor), message.result
    if message.interrupted:
        _interrupted(d, message)
    elif role == "planner":
        _planned(d, result if isinstance(result, PlanResult) else None, message.failure)
    elif role == "worker":
        _built(d, task_of(message.actor), result, message.failure)
    elif role == "reviewer":
        _reviewed(d, result if isinstance(result, ReviewResult) else None, message.failure)


def _interrupted(d: _Draft, message: SessionEnded) -> None:
    role = role_of(message.actor)
    if message.interrupted == "budget":
        d.end(ev.MissionStopped(reason="budget", detail=message.detail or "budget reached"))
    elif message.interrupted == "ttl" and role == "worker":
        _task_failed(d, task_of(message.actor), "the session ran past its time limit (TTL)")
    elif message.interrupted == "ttl":
        _plan_or_review_failed(d, role, "the session ran past its time limit (TTL)")


def _planned(d: _Draft, result: PlanResult | None, failure: str | None) -> None:
    if result is None:
        _plan_or_review_failed(d, "planner", failure or "no plan")
    else:
        d.emit(ev.PlanAccepted(iteration=d.state.iteration, tasks=result.tasks))


def _built(d: _Draft, task_id: str, result: object, failure: str | None) -> None:
    """A worker's result is committed first; the task finishes when the commit is in.

    Until then the worker stays counted as in flight, so the task is neither started again
    nor taken as done; a kill before ``task.committed`` re-runs the (ended) session, whose
    recorded result asks for the same commit, which the history gives back unchanged.
    """
    task = d.state.tasks.get(task_id)
    if not isinstance(result, TaskResult) or task is None:
        _task_failed(d, task_id, failure or "the session ended without a result")
        return
    d.inflight[f"worker:{task_id}"] = Flight(task.session or "", d.now)
    files = tuple(task.spec.files)
    d.steps.append(CommitTask(task_id, task.spec.title, files, result.summary))


def _committed(d: _Draft, message: Committed) -> None:
    d.inflight.pop(f"worker:{message.task_id}", None)
    task = d.state.tasks.get(message.task_id)
    if task is None or task.status != "running":
        return
    if message.commit or message.error:
        d.emit(
            ev.TaskCommitted(task_id=message.task_id, commit=message.commit, error=message.error)
        )
    _release(d, message.task_id)
    d.emit(ev.TaskFinished(task_id=message.task_id, summary=message.summary))


def _reviewed(d: _Draft, result: ReviewResult | None, failure: str | None) -> None:
    if result is None:
        _plan_or_review_failed(d, "reviewer", failure or "no verdict")
        return
    d.emit(
        ev.ReviewSubmitted(
            iteration=d.state.iteration, approved=result.approved, findings=result.findings
        )
    )


def _task_failed(d: _Draft, task_id: str, reason: str) -> None:
    """Retry a failed task unless it failed this way before or ran out of attempts."""
    task = d.state.tasks.get(task_id)
    if task is None:
        return
    _release(d, task_id)
    repeated = reason in task.failures
    retryable = task.attempts < MAX_TASK_ATTEMPTS and not repeated
    d.emit(ev.TaskFailed(task_id=task_id, reason=reason, retryable=retryable))
    if repeated:
        detail = f"task {task_id} failed the same way twice: {reason}"
        d.end(ev.MissionStopped(reason="no-progress", detail=detail))
    elif not retryable:
        d.end(ev.MissionFailed(reason="task-failed", detail=f"task {task_id}: {reason}"))


def _release(d: _Draft, task_id: str) -> None:
    files = [f for f, owner in d.state.leases.items() if owner == task_id]
    if files:
        d.emit(ev.LeaseReleased(task_id=task_id, files=files))


def _plan_or_review_failed(d: _Draft, role: str, reason: str) -> None:
    iteration = d.state.iteration
    if role == "planner":
        d.emit(ev.PlanFailed(iteration=iteration, reason=reason))
        if d.state.plan_attempts >= MAX_PLAN_ATTEMPTS:
            d.end(ev.MissionFailed(reason="plan", detail=reason))
        else:
            d.emit(ev.PlanRequested(iteration=iteration, findings=_findings(d.state)))
    else:
        d.emit(ev.ReviewFailed(iteration=iteration, reason=reason))
        if d.state.review_attempts >= MAX_REVIEW_ATTEMPTS:
            d.end(ev.MissionFailed(reason="review", detail=reason))
        else:
            d.emit(ev.ReviewRequested(iteration=iteration))


# --- checks -----------------------------------------------------------------------------


def _checks_resolved(d: _Draft, message: ChecksResolved) -> None:
    """The verdict is in and the checks known: they start (a stale answer is ignored)."""
    state = d.state
    current = message.iteration == state.iteration and state.phase == "reviewing"
    if current and state.approved is not None:
        _start_checks(d, message.checks)


def _checks_ended(d: _Draft, message: ChecksEnded) -> None:
    d.inflight.pop(VERIFIER, None)
    d.emit(
        ev.VerifyFinished(
            iteration=message.iteration,
            command=message.command,
            exit_code=message.exit_code,
            passed=message.exit_code == 0,
            output=message.output,
            duration_s=message.duration_s,
        )
    )


# --- faults, control and the clock ------------------------------------------------------


def _actor_died(d: _Draft, message: ActorDied) -> None:
    """Restart a crashed session from the log, up to MAX_SESSION_RESTARTS times in all."""
    d.inflight.pop(message.actor, None)
    role = role_of(message.actor)
    restarts = d.state.crashes.get(message.session, 0) + 1
    d.emit(
        ev.ActorCrashed(
            target=role, error=message.error, session=message.session, restarts=restarts
        )
    )
    if restarts <= MAX_SESSION_RESTARTS:
        return  # _advance starts a fresh actor that continues the session from the log
    reason = f"the session crashed {restarts} times: {message.error}"
    d.emit(ev.SessionFailed(session=message.session, reason=reason), actor=message.actor)
    if role == "worker":
        _task_failed(d, task_of(message.actor), reason)
    else:
        _plan_or_review_failed(d, role, reason)


def _control(d: _Draft, message: ControlCommand) -> None:
    d.emit(ev.ControlReceived(command=message.command, args=message.args, source_pid=message.pid))
    if message.command == "stop":
        who = f"pid {message.pid}" if message.pid else "another process"
        reason = str(message.args.get("reason", "user"))
        detail = str(message.args.get("detail", f"ocactors stop from {who}"))
        d.end(ev.MissionStopped(reason=reason, detail=detail))


def _expire_sessions(d: _Draft) -> None:
    """Cancel sessions that ran past the TTL (the checks have their own timeout)."""
    ttl = d.state.settings.session_ttl_s
    for actor, flight in list(d.inflight.items()):
        expired = d.now - flight.started_at > ttl
        if actor != VERIFIER and expired and not flight.cancelled:
            d.steps.append(CancelSession(actor))
            d.inflight[actor] = replace(flight, cancelled=True)
