"""Pipes like a good Unix tool: a reader that goes away never touches the mission.

Two ways to lose the reader: our end of the pipe closed before the command writes anything
(every write then fails with EPIPE, deterministically), and ``| head -1`` in a real bash.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.events import list_missions, read_events
from ocactors.events.catalogue import event_type
from tests._mission_helpers import CHECK, textstats_playbook

OCACTORS = [sys.executable, "-m", "ocactors"]


def closed_stdout(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run with a stdout pipe nobody reads (closed at once); the exit code and stderr."""
    with subprocess.Popen(
        [*OCACTORS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or dict(os.environ),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read()
        return process.wait(timeout=90), stderr


def head_1(command: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``command | head -1`` in bash: the command's own exit code, its stderr, head's output."""
    script = 'set -o pipefail; "$@" 2>"$ERR" | head -1; echo "status ${PIPESTATUS[0]}"'
    err = Path(os.environ.get("TMPDIR", "/tmp")) / f"ocactors-head-{os.getpid()}.err"
    done = subprocess.run(
        ["bash", "-c", script, "bash", *command],
        capture_output=True,
        text=True,
        timeout=90,
        env={**(env or os.environ), "ERR": str(err)},
    )
    first, status = done.stdout.splitlines()
    stderr = err.read_text()
    err.unlink()
    return int(status.split()[1]), stderr, first


def last_event(workspace: Path) -> str:
    return event_type(list(read_events(list_missions(workspace)[0].events))[-1])


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_closed_stdout_never_ends_the_demo_mission(tmp_path: Path, json_lines: bool) -> None:
    workspace = tmp_path / "demo"
    flags = ["--json"] if json_lines else []
    code, stderr = closed_stdout("demo", "--fast", "--dir", str(workspace), *flags)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert code == 0, stderr
    assert last_event(workspace) == "mission.sealed"
    assert "SEALED" in stderr  # the outcome still goes to stderr


def test_demo_into_head_1_runs_to_sealed_with_exit_0(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    # paced, so head has gone before most lines are written
    demo = [*OCACTORS, "demo", "--pace", "0.1", "--dir", str(workspace)]
    code, stderr, first = head_1(demo)
    assert "mission.started" in first
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert code == 0, stderr
    assert last_event(workspace) == "mission.sealed"


def test_demo_fast_into_head_1(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    code, stderr, _ = head_1([*OCACTORS, "demo", "--fast", "--dir", str(workspace)])
    assert (code, "Traceback" in stderr) == (0, False), stderr
    assert last_event(workspace) == "mission.sealed"


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(textstats_playbook().script()) as running:
        yield running


def test_task_into_a_closed_pipe_seals_and_exits_with_the_missions_code(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    env = {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}
    task = ["task", "build textstats", "-C", str(tmp_path), "--verify", CHECK]
    code, stderr = closed_stdout(*task, env=env)
    assert "Traceback" not in stderr, stderr
    assert code == 0 and last_event(tmp_path) == "mission.sealed"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("finished") / "demo"
    done = subprocess.run(
        [*OCACTORS, "demo", "--fast", "--dir", str(workspace)], capture_output=True, timeout=90
    )
    assert done.returncode == 0
    return workspace


READS = [
    ["status"],
    ["status", "--json"],
    ["ls"],
    ["ls", "--json"],
    ["monitor", "--once"],
    ["tail"],
    ["tail", "--json"],
]


@pytest.mark.parametrize("command", READS, ids=" ".join)
def test_read_commands_exit_quietly_on_a_closed_pipe(finished: Path, command: list[str]) -> None:
    code, stderr = closed_stdout(*command, "-C", str(finished))
    assert (code, stderr) == (0, "")


@pytest.mark.parametrize("command", [["status"], ["ls"], ["tail"]], ids=" ".join)
def test_read_commands_into_head_1(finished: Path, command: list[str]) -> None:
    code, stderr, first = head_1([*OCACTORS, *command, "-C", str(finished)])
    assert (code, stderr) == (0, "") and first


def sealed(workspace: Path) -> bool:
    missions = list_missions(workspace) if workspace.is_dir() else []
    return bool(missions) and any(
        event_type(e) == "mission.sealed" for e in read_events(missions[0].events, strict=False)
    )


def test_a_reader_that_stops_reading_does_not_hold_the_mission_up(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # full after a few JSON lines
    with subprocess.Popen(
        [*OCACTORS, "demo", "--fast", "--json", "--dir", str(workspace)],
        stdout=write_end,
        stderr=subprocess.DEVNULL,
    ) as process:
        os.close(write_end)
        deadline = time.monotonic() + 20
        while not sealed(workspace) and time.monotonic() < deadline:
            time.sleep(0.05)
        sealed_unread = sealed(workspace)  # nobody has read a byte yet
        with os.fdopen(read_end, "rb") as reader:
            output = reader.read().decode().splitlines()
        assert process.wait(timeout=30) == 0
    assert sealed_unread
    assert json.loads(output[-1])["type"] == "mission.sealed"  # and nothing was lost
    assert [json.loads(line)["seq"] for line in output] == list(range(1, len(output) + 1))
