"""The log defends itself, and any key in use stays out of it.

A mission whose ``events.jsonl`` is truncated or written into by someone else stops at once
with reason ``log-tampered`` instead of sealing; a key given with ``--api-key`` that looks
like no known key shape never reaches the mission folder or the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.events import catalogue as ev
from ocactors.events import read_events
from tests._mission_helpers import MissionHarness


def slow_playbook() -> Playbook:
    plan = [TaskPlay("T1", {"a.txt": "a\n"}, worker_delay_s=2.0)]
    return Playbook(plans=[plan], verdicts=[Verdict(True)])


def tamper_when_building(harness: MissionHarness, how: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        path = harness.paths.events if harness.paths else None
        if path is not None and b'"task.started"' in path.read_bytes():
            break
        time.sleep(0.02)
    assert harness.paths is not None
    with open(harness.paths.events, "ab" if how == "appended" else "r+b") as log:
        if how == "appended":
            log.write(b'{"type":"mission.sealed","seq":999,"iterations":1}\n')
        else:
            log.truncate(100)


@pytest.mark.parametrize("how", ["appended", "truncated"])
def test_a_log_changed_by_someone_else_stops_the_mission(tmp_path: Path, how: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with ScriptedModelServer(slow_playbook().script()) as server:
        harness = MissionHarness(workspace, server)
        vandal = threading.Thread(target=tamper_when_building, args=(harness, how))
        vandal.start()
        state = harness.start()
        vandal.join(timeout=30)
    assert (state.phase, state.outcome) == ("stopped", "log-tampered"), state.detail
    assert how in state.detail
    assert harness.paths is not None
    last = list(read_events(harness.paths.events, strict=False))[-1]
    assert isinstance(last, ev.MissionStopped) and last.reason == "log-tampered"


def test_a_key_of_any_shape_never_reaches_the_log_or_the_terminal(tmp_path: Path) -> None:
    key = "plainword-key-without-any-known-shape-42"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = [TaskPlay("T1", {"a.txt": "a\n"})]
    playbook = Playbook(plans=[plan], verdicts=[Verdict(True)], check_command="env")
    with ScriptedModelServer(playbook.script()) as server:
        env = {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}
        env["MY_LLM"] = key  # a variable named like nothing secret, holding the key
        done = subprocess.run(
            [sys.executable, "-m", "ocactors.cli", "task", "g", "--verify", "true",
             "--api-key", key, "--json", "-C", str(workspace)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert key not in done.stdout and key not in done.stderr
    for path in workspace.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
