"""`ocactors demo` as a new user runs it: offline, to SEALED, with a working project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ocactors.events import list_missions, read_events
from ocactors.events.catalogue import event_type


def test_the_demo_runs_offline_to_sealed_and_its_project_tests_pass(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_PROXY": "*"}
    done = subprocess.run(
        [sys.executable, "-m", "ocactors.cli", "demo", "--dir", str(workspace), "--fast"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "SEALED" in done.stderr
    assert "ocactors tail" in done.stderr  # what to try next
    log = list_missions(workspace)[0].events
    assert event_type(list(read_events(log))[-1]) == "mission.sealed"
    checks = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-q"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checks.returncode == 0, checks.stderr


def test_the_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "ocactors.cli", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not empty" in done.stderr
