"""The mission fold and the scheduler, without threads: pure functions over events."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from ocactors.actors.scheduler import blocked, ready_tasks, work_left, worker_slots
from ocactors.actors.state import MissionState, apply, fold_mission
from ocactors.events import Journal, create_mission_dir, state_at
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, Finding, MissionSettings, TaskSpec, Usage


def spec(tid: str, files: list[str], deps: list[str] | None = None) -> TaskSpec:
    return TaskSpec(id=tid, title=tid, files=files, depends_on=deps or [])


def stamp(events: list[Event]) -> list[Event]:
    """Give events the envelope a journal would: seq from 1, an actor."""
    out = []
    for seq, event in enumerate(events, start=1):
        actor = "worker:T1" if hasattr(event, "session") else "commander"
        out.append(msgspec.structs.replace(event, seq=seq, actor=actor))
    return out


MISSION = stamp(
    [
        ev.MissionStarted(
            version=1, goal="g", workspace="/w", settings=MissionSettings(parallel=2)
        ),
        ev.IterationStarted(iteration=1),
        ev.PlanRequested(iteration=1),
        ev.PlanAccepted(
            iteration=1,
            tasks=[spec("T1", ["a.py"]), spec("T2", ["b.py"], ["T1"]), spec("T3", ["a.py"])],
        ),
        ev.LeaseGranted(task_id="T1", files=["a.py"]),
        ev.TaskStarted(task_id="T1", attempt=1, session="worker:T1#1"),
        ev.SessionStarted(session="worker:T1#1", role="worker", model="m", task_id="T1"),
        ev.ModelRequested(session="worker:T1#1", turn=1, model="m"),
        ev.ModelResponded(
            session="worker:T1#1",
            turn=1,
            message=ev.ChatMessage(role="assistant", content="hi"),
            usage=Usage(prompt_tokens=10, completion_tokens=5),
        ),
        ev.SessionFinished(session="worker:T1#1", result={"summary": "done"}),
        ev.LeaseReleased(task_id="T1", files=["a.py"]),
        ev.TaskFinished(task_id="T1", summary="built a"),
        ev.ReviewRequested(iteration=1),
        ev.ReviewSubmitted(
            iteration=1, approved=False, findings=[Finding(file="a.py", problem="x")]
        ),
        ev.VerifyStarted(iteration=1, command="pytest"),
        ev.VerifyFinished(iteration=1, command="pytest", exit_code=1, passed=False, output="E"),
        ev.IterationStarted(iteration=2),
        ev.MissionStopped(reason="user"),
        ev.MissionResumed(pid=1),
    ]
)


def test_the_fold_follows_a_mission() -> None:
    state = fold_mission(MISSION[:12])
    assert state.phase == "building"
    assert state.tasks["T1"].status == "done"
    assert state.tasks["T1"].summary == "built a"
    assert state.leases == {}
    assert state.sessions == {}
    assert state.tokens["worker"].total == 15
    final = fold_mission(MISSION)
    assert final.iteration == 2
    assert final.phase == "planning"  # resumed where it stopped
    assert final.findings == (Finding(file="a.py", problem="x"),)
    assert final.complaints[-1].findings and final.complaints[-1].checks  # both complained


def test_a_stop_interrupts_running_tasks_and_drops_leases() -> None:
    state = fold_mission(MISSION[:7])
    assert state.tasks["T1"].status == "running"
    stopped = apply(state, ev.MissionStopped(reason="user", seq=99))
    assert stopped.final and stopped.outcome == "user"
    assert stopped.tasks["T1"].status == "interrupted"
    assert stopped.leases == {}


def test_apply_never_mutates_its_input() -> None:
    states = [MissionState()]
    snapshots = []
    for event in MISSION:
        snapshots.append(copy.deepcopy(states[-1]))
        states.append(apply(states[-1], event))
    assert all(a == b for a, b in zip(snapshots, states[:-1], strict=True))


@given(st.lists(st.sampled_from(MISSION), max_size=30), st.integers(min_value=0, max_value=30))
def test_a_fold_resumed_from_any_prefix_equals_the_whole_fold(
    events: list[Event], cut: int
) -> None:
    """Folding a prefix, then the rest on top, is the whole fold (what a snapshot relies on).

    Fails if ``apply`` depends on anything but its two arguments (a cache, a global, the
    clock) or if ``fold_mission`` skips or reorders events.
    """
    events = [msgspec.structs.replace(e, seq=n) for n, e in enumerate(events, start=1)]
    resumed = functools.reduce(apply, events[cut:], fold_mission(events[:cut]))
    assert resumed == fold_mission(events)
    assert resumed.last_seq == (len(events) or 0)


def test_state_at_a_real_log_equals_the_fold_of_its_prefix(tmp_path: Path) -> None:
    """Written through the journal and read back, the state at any seq is the prefix's fold."""
    paths = create_mission_dir(tmp_path, "m1")
    with Journal.open(paths.events, mission="m1") as journal:
        written = [journal.append(e, actor=e.actor).event for e in MISSION]
    for cut in range(len(written) + 1):
        at = state_at(paths.events, cut, apply, MissionState()) if cut else MissionState()
        assert at == fold_mission(written[:cut]), cut


def test_unknown_events_only_move_the_sequence() -> None:
    state = apply(MissionState(), ev.ControlReceived(command="x", seq=5))
    assert state.last_seq == 5
    assert state.phase == "new"


def test_a_task_waits_for_its_dependency_and_for_a_shared_file() -> None:
    state = fold_mission(MISSION[:4])
    chosen = ready_tasks(state, slots=10)
    assert [t.spec.id for t in chosen] == ["T1"]  # T2 waits for T1, T3 shares a.py with T1


FILES = st.lists(st.sampled_from(["a.py", "b.py", "c.py", "d.py"]), min_size=1, max_size=2)


@given(
    st.lists(FILES, min_size=1, max_size=8),
    st.dictionaries(st.sampled_from(["a.py", "b.py", "c.py", "d.py"]), st.integers(0, 7)),
    st.integers(min_value=1, max_value=8),
)
def test_tasks_sharing_a_file_never_start_together(
    plan: list[list[str]], held: dict[str, int], slots: int
) -> None:
    """Whatever the plan and the leases already held, one round never picks two tasks that
    share a file, nor a task whose file another task holds; and never more than the slots."""
    tasks = [spec(f"T{n}", sorted(set(files))) for n, files in enumerate(plan)]
    events: list[Event] = [ev.PlanAccepted(iteration=1, tasks=tasks)]
    events += [
        ev.LeaseGranted(task_id=f"T{owner}", files=[f])
        for f, owner in held.items()
        if owner < len(tasks)
    ]
    state = fold_mission(events)
    chosen = ready_tasks(state, slots=slots)
    assert len(chosen) <= slots
    claimed: dict[str, str] = {}
    for task in chosen:
        for name in task.spec.files:
            assert claimed.setdefault(name, task.spec.id) == task.spec.id
            assert state.leases.get(name, task.spec.id) == task.spec.id


def test_a_leased_file_blocks_others_but_not_its_holder() -> None:
    state = fold_mission(MISSION[:7])  # T1 running and holding a.py
    assert ready_tasks(state, slots=10, busy=frozenset({"T1"})) == []
    assert [t.spec.id for t in ready_tasks(state, slots=10)] == ["T1"]  # resumed holder


def test_slots_respect_parallel_and_the_session_total() -> None:
    state = fold_mission(MISSION[:1])
    assert worker_slots(state, running=0) == 2
    assert worker_slots(state, running=2) == 0


def test_blocked_and_work_left() -> None:
    state = fold_mission(MISSION[:4])
    failed = apply(state, ev.TaskFailed(task_id="T1", reason="x", retryable=False))
    assert [t.spec.id for t in blocked(failed)] == ["T2"]
    assert work_left(state)
