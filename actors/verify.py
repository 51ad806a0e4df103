"""The project's own checks: which command verifies a workspace, and running it.

The verify command is found at verify time, not at mission start, because a mission that
starts in an empty folder creates its tests as it goes.  Commands run with the interpreter
that runs ocactors first on PATH, so ``python -m pytest`` means the Python ocactors is
installed in, not whatever else a machine has.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ocactors.tools import command_env
from ocactors.tools.spec import SECRET_ENV

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


def run_verify(workspace: Path, command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> VerifyResult:
    """Run ``command`` in ``workspace`` through the shell; the whole group dies on timeout."""
    started = time.monotonic()
    with subprocess.Popen(
        command,
        shell=True,
        cwd=workspace,
        env=command_env(SECRET_ENV),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout_s)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            code = 124
            output += f"\n[timed out after {timeout_s:.0f} s]".encode()
    text = output.decode("utf-8", errors="replace")
    return VerifyResult(command, code, text[-OUTPUT_TAIL:], round(time.monotonic() - started, 3))
