"""One mission per workspace: a second `task` (or a `resume` of another mission) exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.events import list_missions, writer_pid


def ocactors(workspace: Path, server: ScriptedModelServer, *args: str) -> subprocess.Popen[str]:
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


def running_mission(workspace: Path) -> tuple[str, int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for paths in list_missions(workspace):
            pid = writer_pid(paths.events)
            if pid:
                return paths.id, pid
        time.sleep(0.05)
    raise AssertionError("no mission started")


def test_a_second_mission_in_a_busy_workspace_is_refused(tmp_path: Path) -> None:
    plan = [TaskPlay("T1", {"a.txt": "a\n"}, worker_delay_s=3.0)]
    playbook = Playbook(plans=[plan], verdicts=[Verdict(True)])
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with ScriptedModelServer(playbook.script()) as server:
        first = ocactors(workspace, server, "task", "one", "--verify", "true")
        try:
            mission, pid = running_mission(workspace)
            second = ocactors(workspace, server, "task", "two", "--verify", "true")
            _, err = second.communicate(timeout=30)
            assert second.returncode == 2
            assert f"mission {mission} is running in this workspace (pid {pid})" in err
            assert "Traceback" not in err
            assert [p.id for p in list_missions(workspace)] == [mission]  # no second folder
        finally:
            first.communicate(timeout=60)
    assert first.returncode == 0
    again = ocactors(workspace, server, "resume", mission)
    again.communicate(timeout=30)
    assert again.returncode == 0  # the claim went with the process
