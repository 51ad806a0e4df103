"""`ocactors task --backend opencode`: every worker runs as a real OpenCode session.

A real ``opencode serve`` (started by ocactors) against a loopback scripted model: the
mission seals with each worker linked to an OpenCode session, and a worker that writes
outside its lease gets that file put back and its task failed (then retried, and sealed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer, Turn
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.events import catalogue as ev
from ocactors.events import list_missions, read_events
from tests.test_opencode_session import Model, opencode_env, write, write_config

pytestmark = [
    pytest.mark.skipif(
        shutil.which("opencode") is None,
        reason="OpenCode not found on PATH: `npm install -g opencode-ai@1.18.33` to run these",
    ),
    pytest.mark.timeout(120),
]
CALC = "def add(a, b):\n    return a + b\n"


class Trespasser:
    """M2's first session also writes README.md (outside its lease); its second behaves."""

    def __init__(self, root: Path) -> None:
        self.root, self.sessions, self.lock = root, Counter[str](), threading.Lock()

    def __call__(self, step: int) -> Turn:
        with self.lock:
            self.sessions["M2"] += step == 0
            first = self.sessions["M2"] == 1
        notes = Turn(tool_calls=[write(self.root, "notes.txt", "ok\n")])
        readme = Turn(tool_calls=[write(self.root, "README.md", "not yours\n")])
        turns = [notes, readme, Turn("Wrote notes.txt.")] if first else [notes, Turn("Done.")]
        return turns[min(step, len(turns) - 1)]


def test_task_backend_opencode_seals_and_restores_a_write_outside_the_lease(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    model = Model()
    plan = [TaskPlay("M1", {"calc.py": CALC}), TaskPlay("M2", {"notes.txt": "ok\n"})]
    model.ocactors = Playbook([plan, plan], [Verdict(True), Verdict(True)]).script()
    model.scripts["M1"] = lambda step: [
        Turn(tool_calls=[write(root, "calc.py", CALC)]),
        Turn("Wrote calc.py."),
    ][min(step, 1)]
    model.scripts["M2"] = Trespasser(root)
    with ScriptedModelServer({"*": model}) as scripted:
        write_config(root, scripted.base_url)
        env = {
            **os.environ,
            **opencode_env(tmp_path / "home"),
            "OCACTORS_BASE_URL": scripted.base_url,
            "OCACTORS_API_KEY": "sk-test-secret-key-123456",
        }
        done = subprocess.run(
            [sys.executable, "-m", "ocactors.cli", "task", "build calc", "--backend", "opencode",
             "--model", "scripted/scripted", "--no-preflight", "--verify", "true",
             "--parallel", "1", "-C", str(root)],
            env=env, capture_output=True, text=True, timeout=110,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "workers: OpenCode sessions via http://127.0.0.1:" in done.stderr
    assert (root / "calc.py").read_text() == CALC
    assert not (root / "README.md").exists()  # put back: it did not exist before
    (paths,) = list_missions(root)
    events = list(read_events(paths.events))
    linked = {e.actor for e in events if isinstance(e, ev.SessionLinked)}
    assert linked == {"worker:M1", "worker:M2"}
    failed = [e for e in events if isinstance(e, ev.TaskFailed)]
    assert [f.task_id for f in failed] == ["M2"] and "README.md" in failed[0].reason
    assert isinstance(events[-1], ev.MissionSealed)
