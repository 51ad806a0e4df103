"""Missions in real tiny projects: the project's own checks, its own virtualenv, no checks.

- a worker that writes the same wrong fix every time stops with no-progress within three
  iterations, with pytest (whose output changes from run to run) as the check;
- a project with no checks does not seal (the next plan is asked to add them), and seals
  "unverified" with ``--verify none``;
- a project whose tests import a package installed only in its own ``.venv`` seals while
  ocactors runs from another environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.events import catalogue as ev
from ocactors.events import read_events
from ocactors.events.catalogue import MissionSettings
from tests._mission_helpers import MissionHarness

FAILING_TEST = """from calc import add


def test_add():
    assert add(2, 2) == 4
"""


def test_the_same_wrong_fix_stops_with_no_progress_under_pytest(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_calc.py").write_text(FAILING_TEST)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    wrong = {"calc.py": "def add(a, b):\n    return a - b\n"}
    plans = [[TaskPlay(f"T{n}", wrong)] for n in range(1, 6)]
    verdicts = [Verdict(True)] * 5  # the reviewer is fooled; the checks are not
    playbook = Playbook(plans=plans, verdicts=verdicts)
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(root, server, MissionSettings(max_iterations=10))
        state = harness.start()
    assert (state.phase, state.outcome) == ("stopped", "no-progress"), state.detail
    assert state.iteration <= 3
    assert "the checks' failure" in state.detail
    assert harness.paths is not None
    checks = [e for e in read_events(harness.paths.events) if isinstance(e, ev.VerifyFinished)]
    assert checks and all("pytest" in c.command for c in checks)
    assert checks[0].output != checks[-1].output or len(checks) == 2  # timings differed


def test_no_checks_is_not_a_pass_and_verify_none_seals_unverified(tmp_path: Path) -> None:
    plan = [TaskPlay("T1", {"notes.txt": "hello\n"})]
    playbook = Playbook(plans=[plan, plan], verdicts=[Verdict(True), Verdict(True)])
    strict, lenient = tmp_path / "strict", tmp_path / "lenient"
    for root in (strict, lenient):
        root.mkdir()
    with ScriptedModelServer(playbook.script()) as server:
        unsealed = MissionHarness(strict, server, MissionSettings(max_iterations=2)).start()
        harness = MissionHarness(lenient, server, MissionSettings(verify_command="none"))
        sealed = harness.start()
    assert unsealed.phase != "sealed"
    assert unsealed.verify is not None and not unsealed.verify.passed
    assert "no automated checks" in unsealed.verify.output
    assert sealed.phase == "sealed" and "unverified" in sealed.detail
    assert harness.paths is not None
    final = list(read_events(harness.paths.events))[-1]
    assert isinstance(final, ev.MissionSealed) and final.unverified


def test_a_package_only_in_the_projects_venv_passes_its_checks(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True, timeout=60
    )
    (site,) = (root / ".venv" / "lib").glob("python*/site-packages")
    (site / "onlyhere.py").write_text("VALUE = 42\n")
    (root / "tests" / "test_value.py").write_text(
        "import unittest\n\nfrom onlyhere import VALUE\nfrom value import double\n\n\n"
        "class T(unittest.TestCase):\n    def test(self):\n"
        "        self.assertEqual(double(), 84)\n"
    )
    (root / "tests" / "__init__.py").write_text("")
    plan = [
        TaskPlay(
            "T1",
            {"value.py": "from onlyhere import VALUE\n\n\ndef double():\n    return 2 * VALUE\n"},
        )
    ]
    playbook = Playbook(plans=[plan], verdicts=[Verdict(True)])
    with ScriptedModelServer(playbook.script()) as server:
        harness = MissionHarness(root, server, MissionSettings())
        state = harness.start()
    assert state.phase == "sealed", (state.detail, state.verify)
    assert state.verify is not None and ".venv" not in sys.executable


def test_verify_none_in_the_config_file_seals_unverified(tmp_path: Path) -> None:
    import os

    root = tmp_path / "ws"
    (root / ".opencode").mkdir(parents=True)
    (root / ".opencode" / "ocactors.toml").write_text('[verify]\ncommand = "none"\n')
    playbook = Playbook(plans=[[TaskPlay("T1", {"notes.txt": "hi\n"})]], verdicts=[Verdict(True)])
    with ScriptedModelServer(playbook.script()) as server:
        env = {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}
        done = subprocess.run(
            [sys.executable, "-m", "ocactors.cli", "task", "g", "-C", str(root)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "unverified" in done.stderr
