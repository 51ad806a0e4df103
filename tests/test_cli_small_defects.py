"""Small defects of the command line, each with a test that failed before its fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocactors.events import list_missions

CLI = [sys.executable, "-m", "ocactors.cli"]
FAILED = Path(__file__).parent / "data" / "failed-mission"


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the shipped failed mission's workspace."""
    copy = tmp_path / "example"
    shutil.copytree(FAILED, copy)
    return copy


def test_a_fork_with_no_model_configured_leaves_no_mission_behind(
    example: Path, tmp_path: Path
) -> None:
    keys = ("OCACTORS_", "OPENAI_", "ANTHROPIC_", "OLLAMA_", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keys)}
    env["HOME"] = str(tmp_path / "home")  # no OpenCode config either
    before = [p.id for p in list_missions(example)]
    done = run("replay", "--fork-at", "20", "-C", str(example), env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [p.id for p in list_missions(example)] == before


def test_rerun_and_fork_at_together_are_refused(example: Path) -> None:
    done = run("replay", "--rerun", "--fork-at", "20", "-C", str(example))
    assert done.returncode == 2 and "do not go together" in done.stderr


def test_tail_refuses_an_unknown_event_type(example: Path) -> None:
    done = run("tail", "--type", "nonsense", "-C", str(example))
    assert done.returncode == 2
    assert "unknown event type nonsense" in done.stderr and "task.finished" in done.stderr


def test_the_example_of_tail_help_prints_events(example: Path) -> None:
    help_text = run("tail", "--help").stdout
    example_line = next(line for line in help_text.splitlines() if "example:" in line)
    args = example_line.split("ocactors ", 1)[1].replace("'", "").split()
    args = [a for a in args if a != "-f"]
    done = run(*args, "-C", str(example))
    assert done.returncode == 0 and done.stdout.strip(), (args, done.stderr)


@pytest.mark.parametrize("table", ["limits", "tools"])
def test_a_typo_in_limits_or_tools_is_refused(tmp_path: Path, table: str) -> None:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(f"[{table}]\nmax_sesions = 3\n")
    env = {**os.environ, "OCACTORS_MODEL": "m", "OCACTORS_BASE_URL": "http://127.0.0.1:9/v1"}
    done = run("task", "g", "--no-preflight", "-C", str(tmp_path), env=env)
    assert done.returncode == 2
    assert "max_sesions" in done.stderr and "Traceback" not in done.stderr
