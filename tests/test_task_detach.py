"""`ocactors task --detach`: the id at once, the mission in its own session, errors in the
parent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.detach import _claimed_by
from ocactors.events import missions_dir, read_events
from ocactors.events.catalogue import MissionStarted
from tests._mission_helpers import CHECK, textstats_playbook
from tests._opencode_helpers import (
    OCACTORS,
    Detached,
    detached,
    isolated_env,
    run,
    slow,
    wait_for_event,
    wait_until_over,
)

__all__ = ["detached"]  # the fixture


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(slow(textstats_playbook(), 0.5).script()) as running:
        yield running


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path / "ws"


def model_env(workspace: Path, server: ScriptedModelServer) -> dict[str, str]:
    return isolated_env(
        workspace.parent / "home",
        workspace,
        OCACTORS_MODEL="scripted",
        OCACTORS_BASE_URL=server.base_url,
    )


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_detach_prints_the_id_at_once_and_the_mission_seals_in_its_own_session(
    workspace: Path, server: ScriptedModelServer, detached: Detached
) -> None:
    env = model_env(workspace, server)
    begun = time.monotonic()
    done = run(
        "task",
        "build textstats",
        "--detach",
        "--verify",
        CHECK,
        env=env,
        cwd=workspace,
        stdin="a pipe",
    )
    took = time.monotonic() - begun
    assert done.returncode == 0, done.stderr
    mission = detached.add(done.stdout)
    folder = missions_dir(workspace) / mission
    assert f"output: {folder / 'output.log'}" in done.stdout
    assert "ocactors monitor" in done.stdout and "ocactors tail -f" in done.stdout
    pid = detached.pids[-1]
    assert os.getsid(pid) == pid != os.getsid(0)  # a session of its own
    assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
    assert took < 10
    events = wait_until_over(folder / "events.jsonl")
    assert type(events[-1]).__name__ == "MissionSealed"
    deadline = time.monotonic() + 30  # the summary is written after the final event
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    output = (folder / "output.log").read_text()
    assert "model planner: scripted" in output and f"mission {mission} SEALED" in output
    assert not list(missions_dir(workspace).glob(".detached-*"))  # moved into the folder


def test_the_parent_returns_while_the_mission_still_runs(
    workspace: Path, server: ScriptedModelServer, detached: Detached
) -> None:
    done = run(
        "task", "build textstats", "--detach", env=model_env(workspace, server), cwd=workspace
    )
    mission = detached.add(done.stdout)
    events = list(read_events(missions_dir(workspace) / mission / "events.jsonl"))
    assert not any(type(e).__name__ == "MissionSealed" for e in events)  # workers take 0.5 s each


def test_a_busy_workspace_is_exit_2_with_one_line_in_the_parent(
    workspace: Path, server: ScriptedModelServer, detached: Detached
) -> None:
    env = model_env(workspace, server)
    first = detached.add(run("task", "build textstats", "--detach", env=env, cwd=workspace).stdout)
    second = run("task", "another goal", "--detach", env=env, cwd=workspace)
    assert second.returncode == 2
    assert second.stderr.splitlines() == [
        f"ocactors: error: mission {first} is running in this workspace (pid "
        f"{detached.pids[0]}); stop it with `ocactors stop {first}` or wait for it to end"
    ]
    assert second.stdout == ""
    assert [p.name for p in missions_dir(workspace).iterdir() if p.is_dir()] == [first]
    assert not list(missions_dir(workspace).glob(".detached-*"))


def test_no_model_is_exit_2_with_one_line_and_no_mission(workspace: Path) -> None:
    env = isolated_env(workspace.parent / "home", workspace)
    done = run("task", "build textstats", "--detach", env=env, cwd=workspace)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("ocactors: error: no model configured: set OCACTORS_MODEL")
    assert {p.name for p in missions_dir(workspace).iterdir()} <= {".lock"}


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        ("", "the goal is empty"),
        ("OCACTORS_GOAL_BEGIN\n\n\nOCACTORS_GOAL_END\n", "the goal is empty"),
        ("OCACTORS_GOAL_BEGIN\nfix the ", "the goal was cut short"),
    ],
)
def test_a_bad_goal_on_stdin_is_exit_2_before_anything_starts(
    workspace: Path, server: ScriptedModelServer, stdin: str, error: str
) -> None:
    done = run(
        "task", "--detach", "-", env=model_env(workspace, server), cwd=workspace, stdin=stdin
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith(f"ocactors: error: {error}") and len(done.stderr.splitlines()) == 1
    )
    assert not missions_dir(workspace).exists()


def test_the_goal_on_stdin_arrives_byte_for_byte(
    workspace: Path, server: ScriptedModelServer, detached: Detached
) -> None:
    goal = "Build calc: \"quotes\", 'single', $HOME, $(touch pwned), \\n and\na second line"
    block = f"OCACTORS_GOAL_BEGIN\n{goal}\nOCACTORS_GOAL_END\n"
    env = model_env(workspace, server)
    done = run("task", "--detach", "-", env=env, cwd=workspace, stdin=block)
    mission = detached.add(done.stdout)
    events = missions_dir(workspace) / mission / "events.jsonl"
    wait_for_event(events, "mission.started")
    first = next(iter(read_events(events)))
    assert isinstance(first, MissionStarted) and first.goal == goal
    assert not (workspace / "pwned").exists()


def test_the_mission_survives_the_terminal_that_started_it(
    workspace: Path, server: ScriptedModelServer, detached: Detached
) -> None:
    """A shell in its own session starts the mission, then its whole group gets SIGHUP."""
    script = 'ocactors task "build textstats" --detach --verify "$CHECK"; exec sleep 60'
    env = {**model_env(workspace, server), "CHECK": CHECK}
    env["PATH"] = f"{Path(OCACTORS[0]).parent}{os.pathsep}{env['PATH']}"
    with subprocess.Popen(
        ["bash", "-c", script],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    ) as terminal:
        assert terminal.stdout is not None
        lines: list[str] = []
        for line in terminal.stdout:
            lines.append(line)
            if line.startswith("watch:"):
                break
        mission = detached.add("".join(lines))
        os.killpg(terminal.pid, signal.SIGHUP)
        assert terminal.wait(timeout=10) == -signal.SIGHUP
    events = wait_until_over(missions_dir(workspace) / mission / "events.jsonl")
    assert type(events[-1]).__name__ == "MissionSealed"


def test_a_claim_left_by_an_older_mission_under_a_reused_pid_is_not_taken(
    tmp_path: Path,
) -> None:
    (tmp_path / "20260101-000000-aaaa").mkdir()
    (tmp_path / ".lock").write_text("20260101-000000-aaaa 4242\n")
    assert _claimed_by(tmp_path, 4242, {"20260101-000000-aaaa", ".lock"}) is None
    found = _claimed_by(tmp_path, 4242, set())
    assert found is not None and found.id == "20260101-000000-aaaa"
    assert _claimed_by(tmp_path, 4243, set()) is None
