"""Small defects of issue 18, one test each (each failed before its fix)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocactors.cli import build_parser
from ocactors.events import Journal, create_mission_dir, list_missions, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import event_type

OCACTORS = [sys.executable, "-m", "ocactors"]
BIN = Path(sys.executable).parent


def ocactors(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCACTORS, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished fast demo: its workspace and what it printed on stderr."""
    workspace = tmp_path_factory.mktemp("demo") / "ws"
    done = ocactors("demo", "--fast", "--dir", str(workspace))
    assert done.returncode == 0, done.stderr
    return workspace, done.stderr


# --- demo -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["file", "/proc/nope/x"])
def test_demo_dir_that_cannot_be_a_workspace_is_a_one_line_error(
    tmp_path: Path, target: str
) -> None:
    if target == "file":
        target = str(tmp_path / "file")
        Path(target).write_text("x")
    done = ocactors("demo", "--fast", "--dir", target)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert target in done.stderr


def test_demo_pace_spreads_the_turns_and_the_default_gives_time_to_attach(tmp_path: Path) -> None:
    pace = 0.25
    done = ocactors("demo", "--pace", str(pace), "--dir", str(tmp_path / "ws"))
    assert done.returncode == 0, done.stderr
    events = list(read_events(list_missions(tmp_path / "ws")[0].events))
    wall = _seconds(events[-1].ts) - _seconds(events[0].ts)
    assert wall >= 10 * pace  # at least ten answers one after another
    default = build_parser().parse_args(["demo"]).pace
    assert 30 <= wall * default / pace <= 60  # the default demo lasts about 30 to 60 s
    assert "ocactors monitor" in done.stderr.split("SEALED")[0]  # said while it runs


def test_demo_pace_is_checked() -> None:
    for bad in ("x", "-1", "99"):
        done = ocactors("demo", "--pace", bad)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_demo_prints_the_log_path_once(demo: tuple[Path, str]) -> None:
    workspace, stderr = demo
    assert stderr.count(str(list_missions(workspace)[0].events)) == 1, stderr


def _seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# --- what the lines say -------------------------------------------------------------------


def test_the_sealed_line_counts_iterations_once(demo: tuple[Path, str]) -> None:
    workspace, _ = demo
    done = ocactors("tail", "-C", str(workspace), "--type", "mission.sealed")
    assert done.stdout.count("iteration") == 1, done.stdout
    assert "SEALED" in done.stdout and "4 tasks" in done.stdout


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A paced demo stopped with Ctrl-C once its Commander runs: workspace and stderr."""
    workspace = tmp_path_factory.mktemp("interrupted") / "ws"
    with subprocess.Popen(
        [*OCACTORS, "demo", "--pace", "2", "--dir", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert "mission.started" in process.stdout.readline()
        assert "iteration.started" in process.stdout.readline()  # the Commander runs
        process.send_signal(signal.SIGINT)
        process.stdout.read()
        stderr = process.stderr.read()
        assert process.wait(timeout=30) == 130, stderr
    return workspace, stderr


def test_ctrl_c_is_not_logged_as_ocactors_stop(interrupted: tuple[Path, str]) -> None:
    workspace, _ = interrupted
    done = ocactors("tail", "-C", str(workspace), "--type", "control.received")
    assert "interrupted" in done.stdout and "ocactors stop" not in done.stdout, done.stdout


def test_a_stopped_demo_resumes_offline_as_it_suggests(interrupted: tuple[Path, str]) -> None:
    workspace, stderr = interrupted
    suggested = next(line for line in stderr.splitlines() if "--resume" in line).split()
    assert suggested[:3] == ["ocactors", "demo", "--resume"]
    done = ocactors(*suggested[1:], "--fast", timeout=60)
    assert done.returncode == 0, done.stderr
    assert event_type(list(read_events(list_missions(workspace)[0].events))[-1]) == (
        "mission.sealed"
    )
    again = ocactors(*suggested[1:], "--fast")
    assert again.returncode == 2 and "already SEALED" in again.stderr


# --- elapsed time ---------------------------------------------------------------------------


def finished_log(workspace: Path, started: datetime, seconds: float, final: bool) -> None:
    """A mission whose events were written ``seconds`` apart from ``started``."""
    paths = create_mission_dir(workspace, "20260101-000000-abcd")
    with Journal.open(paths.events, mission=paths.id) as journal:
        journal.append(ev.MissionStarted(version=1, goal="g", workspace="w"), actor="commander")
        journal.append(ev.IterationStarted(iteration=1), actor="commander")
        if final:
            journal.append(ev.MissionSealed(iterations=1, summary="s"), actor="commander")
    lines = [json.loads(line) for line in paths.events.read_text().splitlines()]
    for index, event in enumerate(lines):
        at = started + timedelta(seconds=seconds * index / (len(lines) - 1))
        event["ts"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    paths.events.write_text("".join(json.dumps(e) + "\n" for e in lines))


def test_monitor_once_of_a_finished_mission_shows_its_own_duration(tmp_path: Path) -> None:
    finished_log(tmp_path, datetime.now(UTC) - timedelta(minutes=3), 4.0, final=True)
    done = ocactors("monitor", "--once", "-C", str(tmp_path))
    assert "elapsed 0m04s" in done.stdout, done.stdout


def test_monitor_once_of_an_unfinished_mission_counts_on(tmp_path: Path) -> None:
    finished_log(tmp_path, datetime.now(UTC) - timedelta(minutes=3), 4.0, final=False)
    done = ocactors("monitor", "--once", "-C", str(tmp_path))
    assert "elapsed 3m0" in done.stdout, done.stdout


# --- python -m and completion -------------------------------------------------------------


def test_python_m_ocactors_is_the_command() -> None:
    done = ocactors("--version")
    assert done.returncode == 0 and done.stdout.startswith("ocactors ")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    done = ocactors("completion", shell)
    assert done.returncode == 0 and "ocactors" in done.stdout and "_ARGCOMPLETE" in done.stdout


BASH = """
eval "$(ocactors completion bash)"
complete -p ocactors
ask() {
    COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$1 "
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - ($2) )); COMPREPLY=()
    _python_argcomplete ocactors; echo "${COMPREPLY[*]}"
}
ask "ocactors mon" 1
ask "ocactors status -C $WS " 0
"""


@pytest.mark.skipif(not (BIN / "ocactors").exists(), reason="the ocactors script is not installed")
def test_bash_completion_is_registered_and_completes(demo: tuple[Path, str]) -> None:
    workspace, _ = demo
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "WS": str(workspace)}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "--norc", "-c", BASH], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    registered, command, mission = done.stdout.splitlines()
    assert registered.startswith("complete ") and registered.endswith(" ocactors")
    assert command.split() == ["monitor"]
    assert mission.split() == [list_missions(workspace)[0].id]
    assert time.monotonic() - started < 20


def test_the_mission_completer_offers_the_missions_of_the_workspace_given_with_c(
    demo: tuple[Path, str],
) -> None:
    from ocactors.commands.completion import mission_ids

    workspace, _ = demo
    namespace = build_parser().parse_args(["status", "-C", str(workspace)])
    assert mission_ids("2", namespace) == [m.id for m in list_missions(workspace)]
    assert mission_ids("x", namespace) == []
