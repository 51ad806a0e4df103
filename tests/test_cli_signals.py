"""Ctrl-C, SIGTERM and SIGHUP stop a mission as `ocactors stop` does: recorded, resumable, 130.

Real `ocactors task` processes against a scripted model on loopback; the signal is sent while
workers run, and the stop is read back from the log: reason ``interrupted``, the signal's
name in the detail (not "ocactors stop from pid ...", which is what another process asks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay
from ocactors.events import catalogue as ev
from ocactors.events import list_missions, read_events
from ocactors.events.catalogue import Record, event_type
from tests._mission_helpers import CHECK, CORE_FIXED, textstats_playbook

CLI = [sys.executable, "-m", "ocactors"]
SIGNALS = {"Ctrl-C": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}


def slow(playbook: Playbook, delay: float) -> Playbook:
    """Workers that take ``delay`` seconds per first turn: time to signal mid-work."""
    plans = [
        [TaskPlay(t.id, t.files, t.depends_on, t.title, worker_delay_s=delay) for t in plan]
        for plan in playbook.plans
    ]
    return Playbook(plans=plans, verdicts=playbook.verdicts, check_command=playbook.check_command)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(slow(textstats_playbook(), 0.3).script()) as running:
        yield running


def environment(server: ScriptedModelServer) -> dict[str, str]:
    return {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}


def start(server: ScriptedModelServer, workspace: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args, "-C", str(workspace)],
        env=environment(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(workspace: Path, predicate: Callable[[Record], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missions = list_missions(workspace)
        if missions and any(predicate(e) for e in read_events(missions[0].events, strict=False)):
            return
        time.sleep(0.02)
    raise AssertionError("the awaited event never came")


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, stderr


def events(workspace: Path) -> list[Record]:
    return list(read_events(list_missions(workspace)[0].events))


def resumes_to_sealed(server: ScriptedModelServer, workspace: Path) -> None:
    code, stderr = finish(start(server, workspace, "resume"))
    assert code == 0, stderr
    assert event_type(events(workspace)[-1]) == "mission.sealed"
    assert (workspace / "textstats" / "core.py").read_text() == CORE_FIXED


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_stops_the_mission_resumably_and_says_which(
    tmp_path: Path, server: ScriptedModelServer, name: str
) -> None:
    process = start(server, tmp_path, "task", "build textstats", "--verify", CHECK)
    wait_for(tmp_path, lambda e: isinstance(e, ev.TaskStarted))
    process.send_signal(SIGNALS[name])
    code, stderr = finish(process, timeout=20)
    assert code == 130, stderr
    last = events(tmp_path)[-1]
    assert isinstance(last, ev.MissionStopped)
    assert (last.reason, last.detail) == ("interrupted", f"interrupted ({name})")
    mission = list_missions(tmp_path)[0].id
    assert f"STOPPED: interrupted ({name})" in stderr and f"ocactors resume {mission}" in stderr
    assert "ocactors stop" not in stderr and "Traceback" not in stderr, stderr
    resumes_to_sealed(server, tmp_path)


EARLY = """
import os, signal, sys
from pathlib import Path
import httpx
from ocactors.actors.mission import open_new_mission
from ocactors.events.catalogue import MissionSettings
from ocactors.launch import Launch, open_journal, recorded_clients, run_logged_mission
from ocactors.tools import ShellConfig, WebConfig

class SignalWhileReading:
    '''A view: on the first event it sees (MissionRun.prepare reads the log), SIGTERM.'''
    sent = False
    def __call__(self, event):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
    def start(self): pass
    def close(self): pass

workspace, base_url, check = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
paths, journal = open_new_mission(
    workspace, "build textstats", MissionSettings(verify_command=check),
    lambda p, mission: open_journal(p, mission, "batch"))
with httpx.Client() as http:
    launch = Launch(workspace, recorded_clients(base_url, http), http, ShellConfig(),
                    WebConfig(), {}, SignalWhileReading())
    sys.exit(run_logged_mission(launch, paths, journal, announce=False))
"""


def test_a_signal_while_the_log_is_read_is_a_stop_not_a_crash(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EARLY, str(tmp_path), server.base_url, CHECK],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 130, done.stderr
    last = events(tmp_path)[-1]
    assert isinstance(last, ev.MissionStopped) and last.detail == "interrupted (SIGTERM)"
    resumes_to_sealed(server, tmp_path)


def test_a_terminal_that_hangs_up_stops_the_mission_with_exit_130(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    """The real thing: the terminal closes under the live view (SIGHUP, then dead writes)."""
    screen = pexpect.spawn(
        sys.executable,
        ["-m", "ocactors", "task", "build textstats", "--verify", CHECK, "-C", str(tmp_path)],
        env=environment(server),
        dimensions=(24, 80),
        timeout=20,
        encoding="utf-8",
    )
    screen.expect("BUILDING")
    screen.ptyproc.fileobj.close()  # hang up: the kernel sends SIGHUP; writes now fail
    deadline = time.monotonic() + 20
    while screen.isalive() and time.monotonic() < deadline:
        time.sleep(0.05)
    screen.close()
    assert screen.exitstatus == 130
    last = events(tmp_path)[-1]
    assert isinstance(last, ev.MissionStopped) and last.detail == "interrupted (SIGHUP)"
