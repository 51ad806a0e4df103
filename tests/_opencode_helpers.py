"""Detached missions and real OpenCode in tests: isolated homes, bounded waits, no leftovers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocactors.actors.models.playbook import Playbook, TaskPlay
from ocactors.events import read_events, writer_pid
from ocactors.events.catalogue import FINAL_TYPES, Record, event_type

OCACTORS = [sys.executable, "-m", "ocactors"]
OPENCODE = shutil.which("opencode")
needs_opencode = pytest.mark.skipif(
    OPENCODE is None,
    reason="opencode is not installed: .ci/run installs opencode-ai@1.18.33 with npm, "
    "and npm was not available here",
)
AMBIENT = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST")
STARTED = re.compile(r"^mission (\S+) started in the background \(pid (\d+)\)$", re.M)
WAIT_S = 60.0


def isolated_env(home: Path, workspace: Path, **extra: str) -> dict[str, str]:
    """This environment with a private HOME and XDG dirs, no ambient model settings, and
    ``ocactors`` on PATH (OpenCode's shell must find it)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("OCACTORS_") and k not in AMBIENT
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_MODELS_FETCH="1",  # no network: do not wait for models.dev
        PWD=str(workspace),  # opencode takes its directory from PWD, not from its cwd
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        OLLAMA_HOST="127.0.0.1:9",  # nothing answers there: no local Ollama is ever used
    )
    env.update(extra)
    return env


def scripted_provider(workspace: Path, base_url: str, **provider: object) -> None:
    """A project opencode.json declaring the loopback model as provider ``scripted``."""
    entry = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Scripted",
        "options": {"baseURL": base_url},
        "models": {"m": {"name": "m"}},
        **provider,
    }
    config = {"$schema": "https://opencode.ai/config.json", "provider": {"scripted": entry}}
    (workspace / "opencode.json").write_text(json.dumps({**config, "model": "scripted/m"}))


def slow(book: Playbook, delay: float) -> Playbook:
    """The same mission with workers that take ``delay`` seconds per first turn."""
    plans = [
        [TaskPlay(t.id, t.files, t.depends_on, t.title, worker_delay_s=delay) for t in plan]
        for plan in book.plans
    ]
    return Playbook(plans=plans, verdicts=book.verdicts, check_command=book.check_command)


def started(stdout: str) -> tuple[str, int]:
    """(mission id, pid) from what ``task --detach`` printed."""
    match = STARTED.search(stdout)
    assert match, stdout
    return match.group(1), int(match.group(2))


def wait_until_over(events: Path, timeout: float = WAIT_S) -> list[Record]:
    """The log once nobody writes it any more (bounded); its events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists() and writer_pid(events) is None:
            return list(read_events(events))
        time.sleep(0.05)
    raise AssertionError(f"{events} is still being written after {timeout:.0f}s")


def wait_for_event(events: Path, kind: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists() and any(
            event_type(e) == kind for e in read_events(events, strict=False)
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} in {events} after {timeout:.0f}s")


def final_type(events: list[Record]) -> str:
    finals = [event_type(e) for e in events if event_type(e) in FINAL_TYPES]
    return finals[-1] if finals else "none"


class Detached:
    """Remembers the detached missions a test started and kills the ones still running."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def add(self, stdout: str) -> str:
        mission, pid = started(stdout)
        self.pids.append(pid)
        return mission

    def cleanup(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # its own session: the group is its own


@pytest.fixture
def detached() -> Iterator[Detached]:
    tracker = Detached()
    yield tracker
    tracker.cleanup()


def run(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``ocactors ARGS`` in ``cwd``."""
    return subprocess.run(
        [*OCACTORS, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
