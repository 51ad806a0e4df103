"""Whole missions against the scripted model server over real HTTP, with real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocactors.actors.mission import load_log
from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.actors.session_state import fold_session
from ocactors.actors.state import fold_mission
from ocactors.events import catalogue as ev
from ocactors.events import read_events
from ocactors.events.catalogue import MissionSettings, event_type
from tests._mission_helpers import CHECK, CORE_FIXED, MissionHarness, textstats_playbook


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def test_a_mission_plans_builds_is_rejected_fixes_and_seals(workspace: Path) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(
            workspace, server, MissionSettings(parallel=4, verify_command=CHECK)
        )
        state = harness.start()
    assert state.phase == "sealed", state.detail
    assert state.iteration == 2
    assert (workspace / "textstats" / "core.py").read_text() == CORE_FIXED
    assert {t.spec.id: t.status for t in state.tasks.values()} == dict.fromkeys(
        ["T1", "T2", "T3", "F1"], "done"
    )
    assert harness.paths is not None
    events = list(read_events(harness.paths.events))
    verifies = [e for e in events if isinstance(e, ev.VerifyFinished)]
    assert [v.passed for v in verifies] == [False, True]  # the checks really ran, twice
    reviews = [e for e in events if isinstance(e, ev.ReviewSubmitted)]
    assert [r.approved for r in reviews] == [False, True]
    assert event_type(events[-1]) == "mission.sealed"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_every_request_names_mission_actor_and_task(workspace: Path) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        MissionHarness(workspace, server).start()
        requests = list(server.requests)
    actors = {r.headers["x-ocactors-actor"] for r in requests}
    assert {"planner", "reviewer", "worker:T1", "worker:F1"} <= actors
    for request in requests:
        assert request.headers["x-ocactors-mission"]
        if request.actor.startswith("worker:"):
            assert request.headers["x-ocactors-task"] == request.actor.split(":", 1)[1]


def test_replaying_the_log_rebuilds_each_actor_state(workspace: Path) -> None:
    """``final`` is the live Commander's in-memory state, asked from the actor at the end."""
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server)
        final = harness.start()
    assert harness.paths is not None
    events = list(read_events(harness.paths.events))
    assert fold_mission(e for e in events if e.actor == "commander") == final
    assert load_log(harness.paths.events).commander == final
    t1 = fold_session(e for e in events if getattr(e, "session", None) == "worker:T1#1")
    assert t1.result == {"summary": "wrote textstats/__init__.py, textstats/core.py"}


def test_independent_tasks_run_in_parallel_and_shared_files_never_overlap(
    workspace: Path,
) -> None:
    tasks = [TaskPlay(f"P{i}", {f"p{i}.txt": f"{i}\n"}, worker_delay_s=0.3) for i in range(6)]
    tasks += [
        TaskPlay("S1", {"shared.txt": "one\n"}, worker_delay_s=0.2),
        TaskPlay("S2", {"shared.txt": "two\n"}, worker_delay_s=0.2),
    ]
    playbook = Playbook(plans=[tasks], verdicts=[Verdict(True)], check_command=None)
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(
            workspace, server, MissionSettings(parallel=8, verify_command="true")
        )
        state = harness.start()
        peak = server.peak_concurrency
    assert state.phase == "sealed", state.detail
    assert peak >= 5  # six independent workers overlapped
    assert harness.paths is not None
    running: set[str] = set()
    for event in read_events(harness.paths.events):
        if isinstance(event, ev.TaskStarted):
            running.add(event.task_id)
            assert not {"S1", "S2"} <= running, "two writers of shared.txt at once"
        elif isinstance(event, ev.TaskFinished | ev.TaskFailed):
            running.discard(event.task_id)
