"""Every ending is an event: after a TTL, a stop, crashes or a kill, nothing is left running.

Each mission here ends in a different way; afterwards the log folds to no running session and
no held lease, every ``session.started`` has an ending event, ``ocactors status`` says the same,
and (for a SIGKILL) no process the mission started is alive.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ocactors.actors.models import ScriptedModelServer, Turn
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.actors.session import AgentSession, Recorder
from ocactors.actors.state import fold_mission
from ocactors.cli import main
from ocactors.events import catalogue as ev
from ocactors.events import list_missions, read_events, send_control
from ocactors.events.catalogue import Event, MissionSettings, Record
from tests._mission_helpers import MissionHarness, textstats_playbook

OCACTORS = [sys.executable, "-m", "ocactors.cli"]
ENDS = (ev.SessionFinished, ev.SessionFailed, ev.SessionInterrupted)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def assert_nothing_left_running(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> list[Record]:
    """The log's fold and `ocactors status --json` show no session running and no lease."""
    (paths,) = list_missions(workspace)
    events = list(read_events(paths.events))
    state = fold_mission(events)
    assert dict(state.sessions) == {} and dict(state.leases) == {}
    started = {e.session for e in events if isinstance(e, ev.SessionStarted)}
    ended = {e.session for e in events if isinstance(e, ENDS)}
    assert started and started <= ended, started - ended
    capsys.readouterr()
    assert main(["status", "--json", "-C", str(workspace)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["sessions"] == {} and status["leases"] == {}
    return events


class Misbehaving:
    """A session factory: the target session crashes ``crashes`` times, then maybe stops.

    To stop, once the session has recorded two events, it writes ``stop`` to the control file
    as the mission's user would and holds the session until the Commander has shut the door
    (the gate then raises), bounded.
    """

    def __init__(self, harness: MissionHarness, session: str, crashes: int, stop: bool) -> None:
        self.harness, self.session = harness, session
        self.crashes, self.stop = crashes, stop
        self.recorded = 0
        self.lock = threading.Lock()

    def __call__(self, brief: Any, **kwargs: Any) -> AgentSession:
        if brief.session == self.session:
            kwargs["record"] = self._wrap(kwargs["record"], kwargs["gate"])
        return AgentSession(brief, **kwargs)

    def _wrap(self, record: Recorder, gate: Any) -> Recorder:
        def wrapped(event: Event, actor: str) -> Event:
            with self.lock:
                crash, self.crashes = self.crashes > 0, max(self.crashes - 1, 0)
                self.recorded += 0 if crash else 1
            if crash:
                raise RuntimeError("injected crash")
            if self.stop and self.recorded > 2:
                self._stop_and_wait(gate)
            return record(event, actor)

        return wrapped

    def _stop_and_wait(self, gate: Any) -> None:
        assert self.harness.paths is not None
        send_control(self.harness.paths, "stop", {"reason": "user"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            gate()  # raises SessionInterrupted once the mission is stopping
            time.sleep(0.01)
        raise AssertionError("the mission never stopped")


def test_a_session_past_its_ttl_ends_with_an_event(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = [TaskPlay("T1", {"a.txt": "a\n"}, worker_delay_s=0.6)]
    playbook = Playbook(plans=[plan], verdicts=[Verdict(True)])
    settings = MissionSettings(verify_command="true", session_ttl_s=0.2)
    with ScriptedModelServer(playbook.script()) as server:
        MissionHarness(workspace, server, settings).start()
    events = assert_nothing_left_running(workspace, capsys)
    reasons = [e.reason for e in events if isinstance(e, ev.SessionInterrupted)]
    assert reasons[:2] == ["ttl", "ttl"]


def test_a_stop_mid_build_ends_every_open_session(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server)
        harness.extra = {"session_factory": Misbehaving(harness, "worker:T1#1", 0, stop=True)}
        state = harness.start()
    assert (state.phase, state.outcome) == ("stopped", "user")
    events = assert_nothing_left_running(workspace, capsys)
    interrupted = {e.session: e.reason for e in events if isinstance(e, ev.SessionInterrupted)}
    assert interrupted.get("worker:T1#1") == "user"
    final = next(i for i, e in enumerate(events) if isinstance(e, ev.MissionStopped))
    assert final == len(events) - 1  # nothing written after the final event


def test_a_session_crashing_past_its_limit_fails_with_an_event(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server)
        harness.extra = {"session_factory": Misbehaving(harness, "worker:T1#1", 4, stop=False)}
        state = harness.start()
    assert state.phase == "sealed", state.detail
    events = assert_nothing_left_running(workspace, capsys)
    failed = [e for e in events if isinstance(e, ev.SessionFailed)]
    assert [(e.session, e.actor) for e in failed] == [("worker:T1#1", "worker:T1")]


def test_the_restart_limit_holds_across_two_resumes(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Crash twice and stop; resume, crash once and stop; resume, crash once: that is 4."""
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(workspace, server)
        for crashes, stop in ((2, True), (1, True), (1, False)):
            harness.extra = {
                "session_factory": Misbehaving(harness, "worker:T1#1", crashes, stop=stop)
            }
            state = harness.resume() if harness.paths else harness.start()
        assert state.phase == "sealed", state.detail
    events = assert_nothing_left_running(workspace, capsys)
    crashed = [e.restarts for e in events if isinstance(e, ev.ActorCrashed)]
    assert crashed == [1, 2, 3, 4]
    assert sum(isinstance(e, ev.MissionResumed) for e in events) == 2
    sessions = [e.session for e in events if isinstance(e, ev.TaskStarted) and e.task_id == "T1"]
    assert sessions == ["worker:T1#1"] * 3 + ["worker:T1#2"]  # started, resumed twice, fresh


# --- SIGKILL: no process of the mission survives it -------------------------------------


def linger(token: int) -> str:
    """A command leaving a background child and a ``setsid`` escape; each a unique sleep."""
    return f"sleep 300.{token}1 & setsid sleep 300.{token}2 & sleep 300.{token}3"


def _marked(token: int) -> list[int]:
    """Host pids of live processes running one of ``token``'s sleeps (in a namespace too)."""
    needle = f"300.{token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() and _alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _lingering_script(token: int, where: str) -> dict[str, Any]:
    plan = [TaskPlay("T1", {"a.txt": "a\n"})]
    script: dict[str, Any] = dict(Playbook(plans=[plan], verdicts=[Verdict(True)]).script())
    if where == "worker":
        command = {"command": linger(token), "timeout": 300}
        script["worker:*"] = [Turn(tool_calls=[("run_command", command)])]
    return script


@pytest.mark.parametrize("sandbox", ["auto", "off"])
@pytest.mark.parametrize("where", ["worker", "verify"])
def test_sigkill_of_a_mission_leaves_none_of_its_processes(
    workspace: Path, where: str, sandbox: str
) -> None:
    """In the sandbox its PID namespace ends them; with --sandbox off, the reaper does."""
    token = secrets.randbelow(10**8)
    with ScriptedModelServer(_lingering_script(token, where)) as server:
        env = {
            **os.environ,
            "OCACTORS_MODEL": "scripted",
            "OCACTORS_BASE_URL": server.base_url,
            "OCACTORS_API_KEY": "sk-test-secret-key-123456",
        }
        proc = subprocess.Popen(
            [*OCACTORS, "task", "g", "--verify", linger(token), "--sandbox", sandbox],
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert _wait_for(lambda: len(_marked(token)) >= 3, 30), _marked(token)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    assert _wait_for(lambda: not _marked(token), 10), _marked(token)


def test_a_stop_ends_what_a_command_left_running(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Commands of a stopped session die with the mission (the group and the marker)."""
    token = secrets.randbelow(10**8)
    with ScriptedModelServer(_lingering_script(token, "worker")) as server:
        harness = MissionHarness(workspace, server)
        stopper = threading.Thread(target=_stop_when_running, args=(harness, token))
        stopper.start()
        state = harness.start()
        stopper.join(timeout=30)
    assert state.phase == "stopped"
    assert not _marked(token)
    assert_nothing_left_running(workspace, capsys)


def _stop_when_running(harness: MissionHarness, token: int) -> None:
    _wait_for(lambda: len(_marked(token)) >= 3, 20)
    assert harness.paths is not None
    send_control(harness.paths, "stop", {"reason": "user"})


def test_interruption_is_not_an_end_for_the_session_fold(workspace: Path) -> None:
    """A session stopped by `ocactors stop` continues on resume (it is paused, not ended)."""
    from ocactors.actors.session_state import fold_session

    opening = ev.SessionStarted(session="s", role="worker", model="m")
    paused = fold_session([opening, ev.SessionInterrupted(session="s", reason="user")])
    assert paused.started and not paused.ended


class CommitCrashesOnce:
    """A real file history whose first commit raises what the Commander does not expect."""

    def __init__(self, real: Any) -> None:
        self.real, self.crashed = real, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def commit_task(self, task_id: str, title: str, files: Any) -> str:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("injected: the Commander's thread dies here")
        return str(self.real.commit_task(task_id, title, files))


def test_a_crashed_commander_is_replaced_and_no_session_runs_twice(workspace: Path) -> None:
    from ocactors.actors.history import start_history
    from ocactors.events import create_mission_dir

    delays = {1: 0.0, 2: 1.0, 3: 1.0}  # T2 and T3 still wait on the model when T1 commits
    plan = [TaskPlay(f"T{n}", {f"f{n}.txt": f"{n}\n"}, worker_delay_s=d) for n, d in delays.items()]
    playbook = Playbook(plans=[plan], verdicts=[Verdict(True)])
    scratch = create_mission_dir(workspace.parent / "scratch", "history")
    history = CommitCrashesOnce(start_history(workspace, scratch.root, "history"))
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(workspace, server, MissionSettings(verify_command="true"))
        harness.extra = {"history": history}
        state = harness.start()
    assert state.phase == "sealed", state.detail
    assert harness.paths is not None
    events = list(read_events(harness.paths.events))
    crashed = [e for e in events if isinstance(e, ev.ActorCrashed) and e.actor == "supervisor"]
    assert [c.restarts for c in crashed] == [1]
    started = Counter(e.session for e in events if isinstance(e, ev.SessionStarted))
    assert started and set(started.values()) == {1}, started  # no session ran twice
    finished = Counter(e.session for e in events if isinstance(e, ev.SessionFinished))
    assert set(finished.values()) == {1}, finished
    answers = Counter((e.session, e.turn) for e in events if isinstance(e, ev.ModelResponded))
    assert set(answers.values()) == {1}, answers  # the retired actors wrote nothing more
