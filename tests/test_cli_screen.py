"""The dashboard as a person sees it: real terminals (tmux) of fixed sizes during a real demo.

Each screen is read with ``tmux capture-pane -J``, which joins wrapped lines, so a line that
wrapped shows up longer than the terminal is wide.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from ocactors.actors.state import MissionState, apply
from ocactors.dashboard import render
from ocactors.describe import line
from ocactors.events import Journal, create_mission_dir, list_missions, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import TaskSpec

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

STATES = "pending|running|interrupted|done|failed"
ROW = re.compile(rf"^\s*(\S+)\s+({STATES})(\s|$)")
HEADER = re.compile(r"^\s*task\s+state\b")
Screen = list[str]
# The terminal's size must come from the terminal: a COLUMNS in the environment (the test
# process's C environment can hold COLUMNS=80 that os.environ does not show) overrides it.
TERMINAL_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


class Tmux:
    """A private tmux server (its own socket, no user config) for this test's terminals."""

    def __init__(self, socket: Path) -> None:
        self.socket = str(socket)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            env=TERMINAL_ENV,
        )
        return done.stdout

    def open(self, name: str, size: tuple[int, int], command: list[str]) -> None:
        """A detached terminal of ``size`` (columns, lines) running ``command``."""
        width, height = size
        self.tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height))
        self.tmux("set-option", "-t", name, "remain-on-exit", "on")
        self.tmux("respawn-pane", "-k", "-t", name, shlex.join(command))

    def screen(self, name: str) -> Screen:
        """What the terminal shows now, wrapped lines joined."""
        return [
            row.rstrip() for row in self.tmux("capture-pane", "-p", "-J", "-t", name).split("\n")
        ]

    def wait_for(self, name: str, wanted: Callable[[Screen], bool], timeout: float) -> Screen:
        """Poll the screen (bounded) until ``wanted`` holds; the last screen in the error."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(name)
            if wanted(screen) or time.monotonic() > deadline:
                assert wanted(screen), "\n".join(screen)
                return screen
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10, check=False
        )


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(tmp_path / "tmux.sock")
    yield server
    server.close()


def task_rows(screen: Screen) -> list[tuple[str, str]]:
    """(id, state) of each task row under the table's header line."""
    start = next((i for i, row in enumerate(screen) if HEADER.match(row)), None)
    rows = []
    for row in screen[start + 1 :] if start is not None else []:
        match = ROW.match(row)
        if match is None:
            break
        rows.append((match[1], match[2]))
    return rows


def building(screen: Screen) -> bool:
    return any("BUILDING" in row for row in screen) and any(
        state == "running" for _, state in task_rows(screen)
    )


@needs_tmux
@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50)])
def test_the_demo_dashboard_fits_the_terminal(
    tmp_path: Path, tmux: Tmux, size: tuple[int, int]
) -> None:
    workspace = tmp_path / "demo"
    demo = [sys.executable, "-m", "ocactors", "demo", "--dir", str(workspace), "--pace", "0.4"]
    tmux.open("demo", size, demo)
    screen = tmux.wait_for("demo", building, timeout=30)
    frame = screen[next(i for i, row in enumerate(screen) if row.startswith("╭")) :]
    assert all(cell_len(row) <= size[0] for row in frame), "\n".join(screen)  # nothing wrapped
    assert cell_len(frame[0]) == size[0]  # the header spans the terminal's width
    mission = list_missions(workspace)[0].id
    header = next(row for row in frame if mission in row)  # the top of the frame is on screen
    assert "BUILDING" in header
    assert any("tokens" in row for row in screen) and any("elapsed" in row for row in screen)
    rows = dict(task_rows(screen))
    assert {"T1", "T2", "T3"} <= set(rows), "\n".join(screen)  # ids of iteration 1, each with
    assert set(rows.values()) <= set(STATES.split("|"))  # its state


@needs_tmux
def test_monitor_attached_from_a_second_terminal_fits_80x24(tmp_path: Path, tmux: Tmux) -> None:
    workspace = tmp_path / "demo"
    demo = [sys.executable, "-m", "ocactors", "demo", "--dir", str(workspace), "--pace", "0.4"]
    tmux.open("demo", (120, 40), demo)
    tmux.wait_for("demo", building, timeout=30)
    monitor = [sys.executable, "-m", "ocactors", "monitor", "-C", str(workspace)]
    tmux.open("monitor", (80, 24), monitor)
    screen = tmux.wait_for("monitor", lambda s: any("SEALED" in r for r in s), timeout=30)
    assert all(cell_len(row) <= 80 for row in screen), "\n".join(screen)
    assert [state for _, state in task_rows(screen)] == ["done"] * 4
    assert screen[0].startswith("╭"), "\n".join(screen)  # the header's top border is on screen


# --- many tasks, sessions and events: the frame is cut to the screen -----------------------


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> tuple[MissionState, list[str]]:
    """40 tasks (3 running, 1 failed, 20 done), 12 sessions, 30 notable lines."""
    workspace = tmp_path_factory.mktemp("crowded")
    paths = create_mission_dir(workspace, "20260101-000000-abcd")
    specs = [
        TaskSpec(id=f"T{i}", title=f"task {i} " * 8, files=[f"src/module_{i}.py", "README.md"])
        for i in range(1, 41)
    ]
    with Journal.open(paths.events, mission=paths.id) as journal:
        journal.append(
            ev.MissionStarted(version=1, goal="g " * 80, workspace="/w"), actor="commander"
        )
        journal.append(ev.IterationStarted(iteration=1), actor="commander")
        journal.append(ev.PlanAccepted(iteration=1, tasks=specs), actor="commander")
        for i in range(1, 25):
            journal.append(
                ev.TaskStarted(task_id=f"T{i}", attempt=1, session=f"worker:T{i}#1"),
                actor="commander",
            )
        for i in range(1, 21):
            journal.append(ev.TaskFinished(task_id=f"T{i}", summary="ok"), actor="commander")
        journal.append(
            ev.TaskFailed(task_id="T21", reason="broke", retryable=False), actor="commander"
        )
        for i in range(1, 13):
            journal.append(
                ev.SessionStarted(
                    role="worker", session=f"worker:T{i}#1", model="m", task_id=f"T{i}"
                ),
                actor=f"worker:T{i}",
            )
    state, recent = MissionState(), []
    for event in read_events(paths.events):
        state = apply(state, event)
        recent.append(line(event))
    return state, recent[-30:]


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50)])
def test_a_crowded_frame_keeps_running_tasks_and_says_how_many_more(
    crowded: tuple[MissionState, list[str]], size: tuple[int, int]
) -> None:
    state, recent = crowded
    width, height = size
    console = Console(width=width, height=height, record=True, file=io.StringIO())
    console.print(render(state, recent))
    frame = console.export_text().splitlines()
    assert len(frame) <= height - 1  # a frame as tall as the screen scrolls its top away
    assert all(cell_len(row) <= width for row in frame)
    rows = dict(task_rows(frame))
    assert {"T22", "T23", "T24", "T21"} <= set(rows)  # running and failed stay on screen
    assert rows["T22"] == "running" and rows["T21"] == "failed"
    more = next(row for row in frame if row.startswith("+"))
    assert f"+{40 - len(rows)} more" in more
    assert "RUNNING" not in frame[1] and "BUILDING" in frame[1]


@pytest.mark.parametrize("size", [(40, 12), (60, 16), (30, 10)])
def test_a_small_terminal_still_gets_a_frame_that_fits(
    crowded: tuple[MissionState, list[str]], size: tuple[int, int]
) -> None:
    state, recent = crowded
    width, height = size
    console = Console(width=width, height=height, record=True, file=io.StringIO())
    console.print(render(state, recent))
    frame = console.export_text().splitlines()
    assert len(frame) <= height - 1 and all(cell_len(row) <= width for row in frame)
    assert any(row.startswith("+") and "more" in row for row in frame)


def test_every_size_from_40x10_to_220x60_fits(crowded: tuple[MissionState, list[str]]) -> None:
    state, recent = crowded
    for width in (40, 57, 80, 99, 133, 220):
        for height in (10, 13, 24, 31, 60):
            console = Console(width=width, height=height, record=True, file=io.StringIO())
            console.print(render(state, recent))
            frame = console.export_text().splitlines()
            assert len(frame) <= height - 1, (width, height)
            assert all(cell_len(row) <= width for row in frame), (width, height)
            if width >= 80 and height >= 24:
                assert "BUILDING" in frame[1] and any(HEADER.match(row) for row in frame)
