"""Stop, kill -9 and resume, as a user does it: `ocactors` processes, a loopback model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay
from ocactors.events import catalogue as ev
from ocactors.events import list_missions, read_events
from ocactors.events.catalogue import Record, event_type
from tests._mission_helpers import CHECK, CORE_FIXED, textstats_playbook

DEADLINE_S = 60.0


def slow(playbook: Playbook, delay: float) -> Playbook:
    """The same mission with workers that take ``delay`` seconds per first turn."""
    plans = [
        [TaskPlay(t.id, t.files, t.depends_on, t.title, worker_delay_s=delay) for t in plan]
        for plan in playbook.plans
    ]
    return Playbook(plans=plans, verdicts=playbook.verdicts, check_command=playbook.check_command)


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(slow(textstats_playbook(), 0.4).script()) as running:
        yield running


def ocactors(*args: str, server: ScriptedModelServer, workspace: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "OCACTORS_MODEL": "scripted",
        "OCACTORS_BASE_URL": server.base_url,
        "OCACTORS_API_KEY": "sk-test-secret-key-123456",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ocactors.cli", *args, "-C", str(workspace)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def log_path(workspace: Path) -> Path:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        missions = list_missions(workspace)
        if missions and missions[0].events.exists():
            return missions[0].events
        time.sleep(0.02)
    raise AssertionError("no mission log appeared")


def wait_for(path: Path, predicate: Callable[[Record], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(e) for e in read_events(path, strict=False)):
            return
        time.sleep(0.02)
    raise AssertionError("the awaited event never came")


def finish(proc: subprocess.Popen[str], timeout: float = DEADLINE_S) -> int:
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode


KILL_POINTS: dict[str, Callable[[Record], bool]] = {
    "after-planning": lambda e: isinstance(e, ev.PlanAccepted),
    "mid-worker": lambda e: isinstance(e, ev.ToolCalled) and e.actor.startswith("worker:"),
    "mid-review": lambda e: isinstance(e, ev.ModelRequested) and e.actor == "reviewer",
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_resume_seals_with_the_same_files_and_no_task_built_twice(
    tmp_path: Path, server: ScriptedModelServer, point: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    proc = ocactors(
        "task", "build textstats", "--verify", CHECK, server=server, workspace=workspace
    )
    path = log_path(workspace)
    wait_for(path, KILL_POINTS[point])
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    resumed = ocactors("resume", server=server, workspace=workspace)
    assert finish(resumed) == 0, resumed.stderr.read() if resumed.stderr else ""
    events = list(read_events(path))
    assert event_type(events[-1]) == "mission.sealed"
    assert (workspace / "textstats" / "core.py").read_text() == CORE_FIXED
    finished = Counter(e.task_id for e in events if isinstance(e, ev.TaskFinished))
    assert finished == Counter({"T1": 1, "T2": 1, "T3": 1, "F1": 1})
    attempts = {e.attempt for e in events if isinstance(e, ev.TaskStarted)}
    assert attempts == {1}  # interrupted sessions continued; nothing was started afresh


def test_stop_from_a_second_process_then_resume(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    proc = ocactors(
        "task", "build textstats", "--verify", CHECK, server=server, workspace=workspace
    )
    path = log_path(workspace)
    wait_for(path, lambda e: isinstance(e, ev.TaskStarted))
    stopper = ocactors("stop", server=server, workspace=workspace)
    started = time.monotonic()
    assert finish(stopper, timeout=15) == 0
    assert finish(proc, timeout=10) == 130
    assert time.monotonic() - started < 5.0
    events = list(read_events(path))
    assert event_type(events[-1]) == "mission.stopped"
    granted = Counter(e.task_id for e in events if isinstance(e, ev.LeaseGranted))
    released = Counter(e.task_id for e in events if isinstance(e, ev.LeaseReleased))
    assert granted and granted == released  # every lease given back before `stopped`
    resumed = ocactors("resume", server=server, workspace=workspace)
    assert finish(resumed) == 0
    assert event_type(list(read_events(path))[-1]) == "mission.sealed"
    again = ocactors("resume", server=server, workspace=workspace)
    out, _ = again.communicate(timeout=30)
    assert again.returncode == 0
    assert "already SEALED" in out


def test_the_api_key_never_reaches_the_mission_folder(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    proc = ocactors(
        "task", "build textstats", "--verify", CHECK, server=server, workspace=workspace
    )
    assert finish(proc) == 0
    for path in (workspace / ".opencode").rglob("*"):
        if path.is_file():
            assert b"sk-test-secret-key-123456" not in path.read_bytes(), path


def test_ctrl_c_records_a_resumable_stop_and_exits_130(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    proc = ocactors(
        "task", "build textstats", "--verify", CHECK, server=server, workspace=workspace
    )
    path = log_path(workspace)
    wait_for(path, lambda e: isinstance(e, ev.TaskStarted))
    proc.send_signal(signal.SIGINT)
    assert finish(proc, timeout=10) == 130
    last = list(read_events(path))[-1]
    assert isinstance(last, ev.MissionStopped) and last.reason == "interrupted"
