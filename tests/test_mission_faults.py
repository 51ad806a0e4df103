"""The Commander's judgement under faults: crashes, TTL, budget, no progress, iteration cap."""

from __future__ import annotations

import secrets
import threading
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.actors.session import AgentSession
from ocactors.actors.state import apply, fold_mission
from ocactors.events import catalogue as ev
from ocactors.events import read_events
from ocactors.events.catalogue import Event, MissionSettings, TaskSpec
from tests._mission_helpers import CHECK, CORE_FIXED, MissionHarness, textstats_playbook


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


class CrashingSessions:
    """A session factory whose sessions crash after ``after`` events, ``times`` times."""

    def __init__(self, session: str, after: int, times: int) -> None:
        self.session, self.after, self.times = session, after, times
        self.crashes = 0
        self.lock = threading.Lock()

    def __call__(self, brief: Any, **kwargs: Any) -> AgentSession:
        if brief.session != self.session:
            return AgentSession(brief, **kwargs)
        record = kwargs.pop("record")
        seen = [0]

        def crashing_record(event: Event, actor: str) -> Event:
            with self.lock:
                seen[0] += 1
                if seen[0] == self.after and self.crashes < self.times:
                    self.crashes += 1
                    raise RuntimeError("injected crash")
            return record(event, actor)  # type: ignore[no-any-return]

        return AgentSession(brief, record=crashing_record, **kwargs)


def events_of(harness: MissionHarness) -> list[Any]:
    assert harness.paths is not None
    return list(read_events(harness.paths.events))


def test_a_crashed_worker_is_rebuilt_from_the_log_and_carries_on(workspace: Path) -> None:
    crashes = CrashingSessions("worker:T1#1", after=4, times=2)
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server, extra={"session_factory": crashes})
        state = harness.start()
    assert state.phase == "sealed", state.detail
    events = events_of(harness)
    crashed = [e for e in events if isinstance(e, ev.ActorCrashed)]
    assert [(c.session, c.restarts) for c in crashed] == [("worker:T1#1", 1), ("worker:T1#1", 2)]
    assert {e.attempt for e in events if isinstance(e, ev.TaskStarted) and e.task_id == "T1"} == {1}
    assert (workspace / "textstats" / "core.py").read_text() == CORE_FIXED


def test_a_session_that_keeps_crashing_fails_its_task_which_is_retried_fresh(
    workspace: Path,
) -> None:
    crashes = CrashingSessions("worker:T1#1", after=2, times=4)
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server, extra={"session_factory": crashes})
        state = harness.start()
    assert state.phase == "sealed", state.detail
    failed = [e for e in events_of(harness) if isinstance(e, ev.TaskFailed)]
    assert failed[0].task_id == "T1" and "crashed 4 times" in failed[0].reason
    assert state.tasks["T1"].attempts == 2  # a fresh session finished it


def test_a_worker_past_its_ttl_is_stopped_and_retried_once(workspace: Path) -> None:
    plan = [TaskPlay("T1", {"a.txt": "a\n"}, worker_delay_s=0.6)]
    playbook = Playbook(plans=[plan], verdicts=[Verdict(True)])
    settings = MissionSettings(verify_command="true", session_ttl_s=0.2)
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(workspace, server, settings)
        state = harness.start()
    assert state.phase == "stopped" and state.outcome == "no-progress"
    failed = [e for e in events_of(harness) if isinstance(e, ev.TaskFailed)]
    assert [f.task_id for f in failed] == ["T1", "T1"]  # the first TTL was retried once
    assert "TTL" in failed[0].reason


def test_the_budget_stops_the_mission_and_a_raised_cap_resumes_it(workspace: Path) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(
            workspace, server, MissionSettings(verify_command=CHECK, max_tokens=300)
        )
        stopped = harness.start()
        assert stopped.phase == "stopped" and stopped.outcome == "budget", stopped.detail
        assert "max tokens 300" in stopped.detail
        raised = MissionSettings(verify_command=CHECK, max_tokens=10_000_000)
        resumed = harness.resume(raised)
    assert resumed.phase == "sealed", resumed.detail
    assert (workspace / "textstats" / "core.py").read_text() == CORE_FIXED


def test_repeating_findings_stop_with_no_progress(workspace: Path) -> None:
    same = Verdict(False, [("a.txt", "a.txt must say b")])
    plans = [[TaskPlay("T1", {"a.txt": "a\n"})], [TaskPlay("F1", {"a.txt": "a\n"})]]
    playbook = Playbook(plans=plans, verdicts=[same, same])
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(workspace, server, MissionSettings(verify_command="true"))
        state = harness.start()
    assert (state.phase, state.outcome, state.iteration) == ("stopped", "no-progress", 2)


def test_the_iteration_cap_fails_the_mission(workspace: Path) -> None:
    plans = [[TaskPlay("T1", {"a.txt": "a\n"})], [TaskPlay("F1", {"a.txt": "b\n"})]]
    verdicts = [Verdict(False, [("a.txt", "first")]), Verdict(False, [("a.txt", "second")])]
    playbook = Playbook(plans=plans, verdicts=verdicts)
    settings = MissionSettings(verify_command="true", max_iterations=2)
    with ScriptedModelServer(playbook.script()) as server:
        state = MissionHarness(workspace, server, settings).start()
    assert (state.phase, state.outcome) == ("failed", "max-iterations")


def test_a_task_failing_the_same_way_twice_stops_with_no_progress(workspace: Path) -> None:
    from ocactors.actors.models import Turn

    playbook = Playbook(plans=[[TaskPlay("T1", {"a.txt": "a\n"})]], verdicts=[Verdict(True)])
    script = {**playbook.script(), "worker:*": [Turn(content="I will not use tools.")] * 10}
    with ScriptedModelServer(script) as server:
        harness = MissionHarness(workspace, server, MissionSettings(verify_command="true"))
        state = harness.start()
    assert (state.phase, state.outcome) == ("stopped", "no-progress")
    nudges = [e for e in events_of(harness) if isinstance(e, ev.SessionNudged)]
    assert len(nudges) == 6  # 3 per attempt, bounded


def test_memory_stays_bounded_for_a_thousand_finished_tasks() -> None:
    """Documented bound: the Commander keeps a spec and a 500-character summary per task.

    Every event carries its own fresh 20 KB of text (2,000 x 20 KB = 40 MB go by), so a state
    that kept events, outputs or whole summaries would hold tens of MB and fail.
    """
    tasks = [TaskSpec(id=f"T{i}", title=f"task {i}", files=[f"f{i}.py"]) for i in range(1000)]
    events: list[Any] = [ev.PlanAccepted(iteration=1, tasks=tasks, seq=1)]
    tracemalloc.start()
    state = fold_mission(events)
    for task in tasks:
        for event in (
            ev.TaskStarted(task_id=task.id, attempt=1, session=f"worker:{task.id}#1"),
            ev.ToolReturned(
                session=f"worker:{task.id}#1",
                call_id="c",
                name="x",
                output=secrets.token_hex(10_000),
            ),
            ev.TaskFinished(task_id=task.id, summary=secrets.token_hex(10_000)),
        ):
            state = apply(state, event)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert Counter(t.status for t in state.tasks.values()) == Counter({"done": 1000})
    assert all(len(t.summary) <= 500 for t in state.tasks.values())
    assert peak < 8_000_000, peak  # 40 MB of conversation went by; the state kept < 8 MB


def test_a_session_that_ended_just_before_a_crash_is_not_run_again(workspace: Path) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server)
        harness.start()
        assert harness.paths is not None
        lines = harness.paths.events.read_bytes().splitlines(keepends=True)
        end = next(
            i
            for i, line in enumerate(lines)
            if b'"session.finished"' in line and b'"worker:T1#1"' in line
        )
        harness.paths.events.write_bytes(b"".join(lines[: end + 1]))  # as if killed right here
        (workspace / "textstats" / "core.py").unlink()  # what T1 wrote must come back via F1
        state = harness.resume()
    assert state.phase == "sealed", state.detail
    started = [e for e in events_of(harness) if isinstance(e, ev.SessionStarted)]
    assert Counter(s.session for s in started)["worker:T1#1"] == 1


def test_a_resume_after_no_progress_tries_again(workspace: Path) -> None:
    """A person resuming a no-progress stop (after fixing something) gets a new iteration."""
    same = Verdict(False, [("a.txt", "a.txt must say b")])
    plans = [[TaskPlay("T1", {"a.txt": "a\n"})], [TaskPlay("F1", {"a.txt": "a\n"})]]
    plans.append([TaskPlay("F2", {"a.txt": "b\n"})])
    playbook = Playbook(plans=plans, verdicts=[same, same, Verdict(True)])
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(workspace, server, MissionSettings(verify_command="true"))
        stopped = harness.start()
        assert (stopped.phase, stopped.outcome) == ("stopped", "no-progress")
        resumed = harness.resume()
    assert resumed.phase == "sealed", resumed.detail
    assert resumed.iteration == 3
    assert (workspace / "a.txt").read_text() == "b\n"
