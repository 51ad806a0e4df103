"""The Commander's rules as tables of (state, message, runtime) -> steps: no threads, no files.

Each state is the fold of the Commander's own events up to a point of a mission; each row says
what one message decides there, written as short lines (``emit task.failed T1``,
``start worker:T1 worker:T1#2``) so a table reads like the mission it describes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocactors.actors.decide import (
    MAX_PLAN_ATTEMPTS,
    MAX_REVIEW_ATTEMPTS,
    MAX_SESSION_RESTARTS,
    MAX_TASK_ATTEMPTS,
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
)
from ocactors.actors.state import MissionState, apply, fold_mission
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import CheckSpec, Event, Finding, MissionSettings, TaskSpec

MAKE = CheckSpec(name="make", command="make test")
NPM = CheckSpec(name="npm", command="npm test")
T1 = TaskSpec(id="T1", title="one", files=["a.py"])
T2 = TaskSpec(id="T2", title="two", files=["b.py"], depends_on=["T1"])
T3 = TaskSpec(id="T3", title="three", files=["a.py"])


def state_of(*events: Event, settings: MissionSettings | None = None) -> MissionState:
    """The Commander's state after mission.started (with ``settings``) and ``events``."""
    started = ev.MissionStarted(
        version=1, goal="g", workspace="/w", settings=settings or MissionSettings(parallel=4)
    )
    return fold_mission([started, *events])


def lines(steps: Sequence[Step]) -> list[str]:
    """Each step as one short line."""
    return [_line(step) for step in steps]


def _line(step: Step) -> str:
    match step:
        case Emit(event=event, actor=actor):
            who = "" if actor == "commander" else f" as {actor}"
            return f"emit {ev.event_type(event)}{_subject(event)}{who}"
        case StartSession(actor=actor, session=session, from_log=from_log):
            return f"start {actor} {session}" + (" from log" if from_log else "")
        case CancelSession(actor=actor):
            return f"cancel {actor}"
        case CommitTask(task_id=task_id, files=files):
            return f"commit {task_id} {' '.join(files)}"
        case ResolveChecks(iteration=iteration):
            return f"resolve checks {iteration}"
        case StartChecks(iteration=iteration, checks=checks):
            return f"run checks {iteration} `{'; '.join(c.command for c in checks)}`"
        case CloseSessions(reason=reason):
            return f"close sessions ({reason})"
    raise AssertionError(step)


def _subject(event: Event) -> str:
    """The task, a mission ending's reason, or the iteration: what tells two rows apart."""
    if hasattr(event, "task_id"):
        return f" {event.task_id}"
    if ev.event_type(event).startswith("mission."):
        return f" {getattr(event, 'reason', '')}".rstrip()
    if hasattr(event, "iteration"):
        return f" {event.iteration}"
    return ""


def flying(*pairs: tuple[str, str], at: float = 0.0) -> dict[str, Flight]:
    return {actor: Flight(session, at) for actor, session in pairs}


PLANNING = (ev.IterationStarted(iteration=1), ev.PlanRequested(iteration=1))
PLANNED = (*PLANNING, ev.PlanAccepted(iteration=1, tasks=[T1, T2, T3]))
T1_RUNNING = (
    *PLANNED,
    ev.LeaseGranted(task_id="T1", files=["a.py"]),
    ev.TaskStarted(task_id="T1", attempt=1, session="worker:T1#1"),
)
T1_DONE = (
    *T1_RUNNING,
    ev.LeaseReleased(task_id="T1", files=["a.py"]),
    ev.TaskFinished(task_id="T1", summary="a"),
)
ALL_DONE = (
    *T1_DONE,
    ev.LeaseGranted(task_id="T2", files=["b.py"]),
    ev.TaskStarted(task_id="T2", attempt=1, session="worker:T2#1"),
    ev.LeaseReleased(task_id="T2", files=["b.py"]),
    ev.TaskFinished(task_id="T2"),
    ev.LeaseGranted(task_id="T3", files=["a.py"]),
    ev.TaskStarted(task_id="T3", attempt=1, session="worker:T3#1"),
    ev.LeaseReleased(task_id="T3", files=["a.py"]),
    ev.TaskFinished(task_id="T3"),
)
REVIEWING = (*ALL_DONE, ev.ReviewRequested(iteration=1))
APPROVED = (*REVIEWING, ev.ReviewSubmitted(iteration=1, approved=True))
REJECTED = (
    *REVIEWING,
    ev.ReviewSubmitted(iteration=1, approved=False, findings=[Finding(file="a.py", problem="p")]),
)
VERIFYING = (*APPROVED, ev.VerifyStarted(iteration=1, command="make test"))
FINDING = Finding(file="a.py", problem="p")


def passed(iteration: int) -> ev.VerifyFinished:
    return ev.VerifyFinished(iteration=iteration, command="make test", exit_code=0, passed=True)


def failed(iteration: int, output: str = "E boom") -> ev.VerifyFinished:
    return ev.VerifyFinished(
        iteration=iteration, command="make test", exit_code=1, passed=False, output=output
    )


WORKER_T1 = flying(("worker:T1", "worker:T1#1"))

# (name, events so far, message, in flight, expected steps)
ROWS: list[tuple[str, tuple[Event, ...], Message, dict[str, Flight], list[str]]] = [
    (
        "a new mission starts its first iteration and asks for a plan",
        (),
        Begin(),
        {},
        ["emit iteration.started 1", "emit plan.requested 1", "start planner planner#1.1"],
    ),
    (
        "planning with the planner in flight waits",
        PLANNING,
        Begin(),
        flying(("planner", "planner#1.1")),
        [],
    ),
    (
        "resumed while planning: the planner's session is started again",
        PLANNING,
        Begin(),
        {},
        ["start planner planner#1.1"],
    ),
    (
        "an accepted plan starts every ready task whose files are free",
        PLANNING,
        SessionEnded("planner", "planner#1.1", result=PlanResult(tasks=[T1, T2, T3])),
        {},
        [
            "emit plan.accepted 1",
            "emit lease.granted T1",
            "emit task.started T1",
            "start worker:T1 worker:T1#1",
        ],
    ),
    (
        "a plan that failed is asked for again",
        PLANNING,
        SessionEnded("planner", "planner#1.1", failure="bad plan"),
        {},
        ["emit plan.failed 1", "emit plan.requested 1", "start planner planner#1.2"],
    ),
    (
        "a worker's result is committed first; nothing else starts meanwhile",
        T1_RUNNING,
        SessionEnded("worker:T1", "worker:T1#1", result=TaskResult(summary="ok")),
        {},
        ["commit T1 a.py"],
    ),
    (
        "a committed task gives its lease back and frees the tasks waiting on it",
        T1_RUNNING,
        Committed("T1", "ok", commit="abc123"),
        {},
        [
            "emit task.committed T1",
            "emit lease.released T1",
            "emit task.finished T1",
            "emit lease.granted T2",
            "emit task.started T2",
            "start worker:T2 worker:T2#1",
            "emit lease.granted T3",
            "emit task.started T3",
            "start worker:T3 worker:T3#1",
        ],
    ),
    (
        "a failed task is retried in a fresh session",
        T1_RUNNING,
        SessionEnded("worker:T1", "worker:T1#1", failure="syntax error"),
        {},
        [
            "emit lease.released T1",
            "emit task.failed T1",
            "emit lease.granted T1",
            "emit task.started T1",
            "start worker:T1 worker:T1#2",
        ],
    ),
    (
        "a task that failed the same way twice stops the mission with no-progress",
        (
            *T1_RUNNING,
            ev.TaskFailed(task_id="T1", reason="syntax error"),
            ev.TaskStarted(task_id="T1", attempt=2, session="worker:T1#2"),
        ),
        SessionEnded("worker:T1", "worker:T1#2", failure="syntax error"),
        {},
        [
            "emit lease.released T1",
            "emit task.failed T1",
            "close sessions (no-progress)",
            "emit mission.stopped no-progress",
        ],
    ),
    (
        "a task out of attempts fails the mission",
        (
            *T1_RUNNING,
            ev.TaskFailed(task_id="T1", reason="r1"),
            ev.TaskFailed(task_id="T1", reason="r2"),
            ev.TaskStarted(task_id="T1", attempt=MAX_TASK_ATTEMPTS, session="worker:T1#3"),
        ),
        SessionEnded("worker:T1", "worker:T1#3", failure="r3"),
        {},
        [
            "emit lease.released T1",
            "emit task.failed T1",
            "close sessions (task-failed)",
            "emit mission.failed task-failed",
        ],
    ),
    (
        "a task whose dependency failed for good blocks the mission",
        (*PLANNED, ev.TaskFailed(task_id="T1", reason="r", retryable=False)),
        Begin(),
        {},
        ["emit lease.granted T3", "emit task.started T3", "start worker:T3 worker:T3#1"],
    ),
    (
        "with nothing left to run and a failed task, the mission is blocked",
        (
            *PLANNED,
            ev.TaskFailed(task_id="T1", reason="r", retryable=False),
            ev.TaskFinished(task_id="T3"),
        ),
        Begin(),
        {},
        ["close sessions (blocked)", "emit mission.failed blocked"],
    ),
    (
        "a commit that failed is recorded and the task still finishes",
        T1_RUNNING,
        Committed("T1", "ok", error="disk full"),
        flying(("worker:T2", "worker:T2#1")),
        [
            "emit task.committed T1",
            "emit lease.released T1",
            "emit task.finished T1",
            "emit lease.granted T3",
            "emit task.started T3",
            "start worker:T3 worker:T3#1",
        ],
    ),
    (
        "a commit for a task no longer running (a stale answer) changes nothing",
        T1_DONE,
        Committed("T1", "ok", commit="abc123"),
        flying(("worker:T2", "worker:T2#1"), ("worker:T3", "worker:T3#1")),
        [],
    ),
    (
        "the last task done: the review is asked for",
        ALL_DONE[:-2],
        Committed("T3", ""),
        {},
        [
            "emit lease.released T3",
            "emit task.finished T3",
            "emit review.requested 1",
            "start reviewer reviewer#1.1",
        ],
    ),
    (
        "a reviewer without a verdict is asked again",
        REVIEWING,
        SessionEnded("reviewer", "reviewer#1.1", failure="no verdict"),
        {},
        ["emit review.failed 1", "emit review.requested 1", "start reviewer reviewer#1.2"],
    ),
    (
        "a verdict with no verify command configured asks for the checks to be found",
        REVIEWING,
        SessionEnded("reviewer", "reviewer#1.1", result=ReviewResult(approved=True)),
        {},
        ["emit review.submitted 1", "resolve checks 1"],
    ),
    (
        "the checks found start running, all of them",
        APPROVED,
        ChecksResolved(1, (MAKE, NPM)),
        {},
        ["emit verify.started 1", "run checks 1 `make test; npm test`"],
    ),
    (
        "no checks found is not a pass: the next iteration is asked to add them",
        APPROVED,
        ChecksResolved(1, ()),
        {},
        [
            "emit verify.started 1",
            "emit verify.finished 1",
            "emit iteration.started 2",
            "emit plan.requested 2",
            "start planner planner#2.1",
        ],
    ),
    (
        "a stale answer about the checks is ignored",
        APPROVED,
        ChecksResolved(0, (MAKE,)),
        {},
        ["resolve checks 1"],
    ),
    (
        "approved, tasks done and checks passed: sealed",
        VERIFYING,
        ChecksEnded(1, "make test", 0, "ok", 0.1),
        flying(("verifier", "verify#1")),
        ["emit verify.finished 1", "close sessions (sealed)", "emit mission.sealed"],
    ),
    (
        "checks that fail start the next iteration with their output as a finding",
        VERIFYING,
        ChecksEnded(1, "make test", 1, "E boom", 0.1),
        flying(("verifier", "verify#1")),
        [
            "emit verify.finished 1",
            "emit iteration.started 2",
            "emit plan.requested 2",
            "start planner planner#2.1",
        ],
    ),
    (
        "resumed while verifying: the checks run again",
        VERIFYING,
        Begin(),
        {},
        ["run checks 1 `make test`"],
    ),
    (
        "resumed while verifying with the checks in flight: wait",
        VERIFYING,
        Begin(),
        flying(("verifier", "verify#1")),
        [],
    ),
    (
        "the same complaint two iterations running stops with no-progress",
        (
            *REJECTED,
            ev.VerifyStarted(iteration=1, command="make test"),
            failed(1),
            ev.IterationStarted(iteration=2),
            ev.PlanRequested(iteration=2),
            ev.PlanAccepted(iteration=2, tasks=[]),
            ev.ReviewRequested(iteration=2),
            ev.ReviewSubmitted(iteration=2, approved=False, findings=[FINDING]),
            ev.VerifyStarted(iteration=2, command="make test"),
        ),
        ChecksEnded(2, "make test", 1, "E boom", 0.1),
        flying(("verifier", "verify#2")),
        [
            "emit verify.finished 2",
            "close sessions (no-progress)",
            "emit mission.stopped no-progress",
        ],
    ),
    (
        "a worker that crashed is restarted from its recorded turns",
        T1_RUNNING,
        ActorDied("worker:T1", "worker:T1#1", "RuntimeError: x"),
        {},
        ["emit actor.crashed", "start worker:T1 worker:T1#1 from log"],
    ),
    (
        "a session past its restart limit fails, and its task is retried fresh",
        (
            *T1_RUNNING,
            *[
                ev.ActorCrashed(target="worker", error="x", session="worker:T1#1", restarts=n)
                for n in range(1, MAX_SESSION_RESTARTS + 1)
            ],
        ),
        ActorDied("worker:T1", "worker:T1#1", "RuntimeError: x"),
        {},
        [
            "emit actor.crashed",
            "emit session.failed as worker:T1",
            "emit lease.released T1",
            "emit task.failed T1",
            "emit lease.granted T1",
            "emit task.started T1",
            "start worker:T1 worker:T1#2",
        ],
    ),
    (
        "a stop closes the sessions, gives the leases back and records why",
        T1_RUNNING,
        ControlCommand(command="stop", args={}, pid=42),
        WORKER_T1,
        [
            "emit control.received",
            "close sessions (user)",
            "emit lease.released T1",
            "emit mission.stopped user",
        ],
    ),
    (
        "an unknown control command is recorded and changes nothing",
        T1_RUNNING,
        ControlCommand(command="dance"),
        WORKER_T1,
        ["emit control.received"],
    ),
    (
        "the budget reached by a session stops the mission",
        T1_RUNNING,
        SessionEnded("worker:T1", "worker:T1#1", interrupted="budget", detail="max tokens 10"),
        {},
        ["close sessions (budget)", "emit lease.released T1", "emit mission.stopped budget"],
    ),
    (
        "a worker stopped by its TTL fails its task, which is retried",
        T1_RUNNING,
        SessionEnded("worker:T1", "worker:T1#1", interrupted="ttl"),
        {},
        [
            "emit lease.released T1",
            "emit task.failed T1",
            "emit lease.granted T1",
            "emit task.started T1",
            "start worker:T1 worker:T1#2",
        ],
    ),
    (
        "a planner stopped by its TTL is asked again",
        PLANNING,
        SessionEnded("planner", "planner#1.1", interrupted="ttl"),
        {},
        [
            "emit plan.failed 1",
            "emit plan.requested 1",
            "start planner planner#1.2",
        ],
    ),
    (
        "a tick within the TTL does nothing",
        T1_RUNNING,
        Tick(),
        WORKER_T1,
        [],
    ),
]


@pytest.mark.parametrize(
    ("events", "message", "inflight", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_decision_table(
    events: tuple[Event, ...], message: Message, inflight: dict[str, Flight], expected: list[str]
) -> None:
    assert lines(decide(state_of(*events), message, Runtime(inflight, now=1.0))) == expected


def test_a_tick_past_the_ttl_cancels_the_session_once() -> None:
    state = state_of(*T1_RUNNING, settings=MissionSettings(session_ttl_s=60))
    late = Runtime(WORKER_T1, now=61.0)
    assert lines(decide(state, Tick(), late)) == ["cancel worker:T1"]
    cancelled = {"worker:T1": Flight("worker:T1#1", 0.0, cancelled=True)}
    assert decide(state, Tick(), Runtime(cancelled, now=120.0)) == []


def test_the_checks_are_never_cancelled_by_the_session_ttl() -> None:
    state = state_of(*VERIFYING, settings=MissionSettings(session_ttl_s=1))
    assert decide(state, Tick(), Runtime(flying(("verifier", "verify#1")), now=99.0)) == []


@pytest.mark.parametrize("limit", [MAX_PLAN_ATTEMPTS])
def test_the_planner_gets_a_limited_number_of_attempts(limit: int) -> None:
    events: list[Event] = [ev.IterationStarted(iteration=1)]
    events += [ev.PlanRequested(iteration=1)] * limit
    ended = SessionEnded("planner", f"planner#1.{limit}", failure="no plan")
    assert lines(decide(state_of(*events), ended)) == [
        "emit plan.failed 1",
        "close sessions (plan)",
        "emit mission.failed plan",
    ]


def test_the_reviewer_gets_a_limited_number_of_attempts() -> None:
    events = [*ALL_DONE, *[ev.ReviewRequested(iteration=1)] * MAX_REVIEW_ATTEMPTS]
    ended = SessionEnded("reviewer", f"reviewer#1.{MAX_REVIEW_ATTEMPTS}", failure="no verdict")
    assert lines(decide(state_of(*events), ended))[-1] == "emit mission.failed review"


def test_no_checks_found_asks_the_planner_to_add_them() -> None:
    steps = decide(state_of(*APPROVED), ChecksResolved(1, ()))
    planned = next(
        s.event for s in steps if isinstance(s, Emit) and ev.event_type(s.event) == "plan.requested"
    )
    assert isinstance(planned, ev.PlanRequested)
    assert any("no automated checks" in f.problem for f in planned.findings)


def test_verify_none_seals_on_the_verdict_alone_and_says_unverified() -> None:
    state = state_of(*REVIEWING, settings=MissionSettings(verify_command="none"))
    steps = decide(
        state, SessionEnded("reviewer", "reviewer#1.1", result=ReviewResult(approved=True))
    )
    sealed = [
        s.event for s in steps if isinstance(s, Emit) and isinstance(s.event, ev.MissionSealed)
    ]
    assert len(sealed) == 1 and sealed[0].unverified and "unverified" in sealed[0].summary
    assert not any(isinstance(s, (StartChecks, ResolveChecks)) for s in steps)


def test_a_given_verify_command_runs_without_a_lookup() -> None:
    state = state_of(*REVIEWING, settings=MissionSettings(verify_command="make check"))
    steps = decide(
        state, SessionEnded("reviewer", "reviewer#1.1", result=ReviewResult(approved=True))
    )
    assert lines(steps) == [
        "emit review.submitted 1",
        "emit verify.started 1",
        "run checks 1 `make check`",
    ]


def test_no_progress_names_what_repeated() -> None:
    events = [*REVIEWING]
    for iteration in (1, 2):
        events += [
            ev.ReviewSubmitted(iteration=iteration, approved=True),
            ev.VerifyStarted(iteration=iteration, command="pytest"),
            failed(iteration, output=f"E boom\n1 failed in 0.{iteration}3s"),
            ev.IterationStarted(iteration=iteration + 1),
        ]
    state = state_of(*events[:-1], settings=MissionSettings(max_iterations=5))
    assert state.complaints[-1] == state.complaints[-2]  # the timing is masked
    steps = decide(state, Begin())
    stop = steps[-1]
    assert isinstance(stop, Emit) and isinstance(stop.event, ev.MissionStopped)
    assert stop.event.detail == "same as the previous iteration: the checks' failure"


def test_the_iteration_cap_fails_the_mission() -> None:
    state = state_of(*VERIFYING, settings=MissionSettings(max_iterations=1))
    steps = decide(state, ChecksEnded(1, "make test", 1, "E", 0.1), Runtime())
    assert lines(steps)[-1] == "emit mission.failed max-iterations"


def test_parallel_caps_the_workers_started_at_once() -> None:
    many = [TaskSpec(id=f"T{n}", title="t", files=[f"f{n}.py"]) for n in range(10)]
    state = state_of(*PLANNING, settings=MissionSettings(parallel=3))
    steps = decide(state, SessionEnded("planner", "planner#1.1", result=PlanResult(tasks=many)))
    assert sum(isinstance(s, StartSession) for s in steps) == 3


def test_nothing_is_decided_once_the_mission_is_final() -> None:
    sealed = state_of(*VERIFYING, passed(1), ev.MissionSealed(iterations=1))
    assert decide(sealed, Begin()) == []
    assert decide(sealed, ControlCommand(command="stop")) == []


def test_an_unknown_message_is_refused() -> None:
    with pytest.raises(TypeError, match="no rule"):
        decide(state_of(), "hello")  # type: ignore[arg-type]


def test_the_door_closes_before_every_final_event() -> None:
    """In every table row, a final event comes right after CloseSessions, never without it."""
    for _name, events, message, inflight, _ in ROWS:
        steps = decide(state_of(*events), message, Runtime(inflight, now=1.0))
        for index, step in enumerate(steps):
            if isinstance(step, Emit) and ev.event_type(step.event) in ev.FINAL_TYPES:
                assert any(isinstance(s, CloseSessions) for s in steps[:index])


MESSAGES = st.sampled_from(
    [
        Begin(),
        Tick(),
        SessionEnded("worker:T1", "worker:T1#1", result=TaskResult(summary="s")),
        SessionEnded("worker:T1", "worker:T1#1", failure="f"),
        SessionEnded("planner", "planner#1.1", result=PlanResult(tasks=[T1, T2, T3])),
        SessionEnded("reviewer", "reviewer#1.1", result=ReviewResult(approved=True)),
        ChecksEnded(1, "make test", 0, "", 0.0),
        ActorDied("worker:T1", "worker:T1#1", "x"),
        ControlCommand(command="stop"),
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(MESSAGES, max_size=12))
def test_applying_a_decisions_events_gives_the_state_the_rules_saw(
    messages: list[Message],
) -> None:
    """Whatever arrives, folding the emitted Commander events one by one is consistent.

    The rules fold their own events as they decide; the shell folds the stamped copies.  A
    final event is always last, and no decision emits anything after the mission is final.
    """
    state = state_of()
    for message in messages:
        steps = decide(state, message, Runtime())
        finals = [
            i
            for i, s in enumerate(steps)
            if isinstance(s, Emit) and ev.event_type(s.event) in ev.FINAL_TYPES
        ]
        assert finals in ([], [len(steps) - 1])
        was_final = state.final
        for step in steps:
            if isinstance(step, Emit) and step.actor == "commander":
                state = apply(state, step.event)
        assert not (was_final and steps)
