"""The project's own checks: which command verifies a workspace, and running it.

The verify command is found at verify time, not at mission start, because a mission that
starts in an empty folder creates its tests as it goes.  It runs through the same process
runner as the models' commands (:func:`ocactors.tools.shell.execute`), so it is bounded,
registered with the mission's process groups and ended with the mission.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ocactors.tools import ShellConfig
from ocactors.tools.shell import execute

OUTPUT_TAIL = 4000
DEFAULT_TIMEOUT_S = 900.0
SKIP_DIRS = {".git", ".opencode", "node_modules", ".venv", "venv", "__pycache__"}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What the checks said: exit code, a tail of the output, and how long they took."""

    command: str
    exit_code: int
    output: str
    duration_s: float

    @property
    def passed(self) -> bool:
        """Exit code zero."""
        return self.exit_code == 0


def detect_verify_command(workspace: Path) -> str | None:
    """pytest, npm test, cargo test, go test or make test, from the files the project has."""
    if (workspace / "package.json").is_file() and _npm_has_test(workspace / "package.json"):
        return "npm test"
    if (workspace / "Cargo.toml").is_file():
        return "cargo test"
    if (workspace / "go.mod").is_file():
        return "go test ./..."
    if _has_python_tests(workspace):
        return "python -m pytest -q" if _pytest_available() else "python -m unittest discover -q"
    if (workspace / "Makefile").is_file() and "\ntest:" in "\n" + _read(workspace / "Makefile"):
        return "make test"
    return None


def _npm_has_test(package_json: Path) -> bool:
    try:
        scripts = json.loads(_read(package_json)).get("scripts", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(scripts, dict) and "test" in scripts


def _has_python_tests(workspace: Path) -> bool:
    for path in workspace.rglob("test*.py"):
        parts = set(path.relative_to(workspace).parts)
        if not parts & SKIP_DIRS and (path.name.startswith("test_") or path.name == "tests.py"):
            return True
    return False


def _pytest_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytest") is not None


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="replace")
    except OSError:
        return ""


def run_verify(
    workspace: Path, command: str, shell: ShellConfig, timeout_s: float = DEFAULT_TIMEOUT_S
) -> VerifyResult:
    """Run ``command`` in ``workspace`` through the mission's one process runner.

    Output is stdout and stderr interleaved, as a person sees it; a timeout is exit code 124
    (as ``timeout(1)`` says it), with a note at the end of the output.
    """
    done = execute(command, workspace, timeout_s, shell, owner="verifier", merge_stderr=True)
    result = done.result
    output, code = result.stdout, result.exit_code
    if done.report is not None and done.report.violated:
        output = f"{output}\n{done.report.message}"
    if result.timed_out:
        output, code = f"{output}\n[timed out after {timeout_s:.0f} s]", 124
    return VerifyResult(command, code, output[-OUTPUT_TAIL:], result.duration_s)
