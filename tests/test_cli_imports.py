"""Start-up loads only what the command uses (issue 16): real processes, their ``sys.modules``.

Each case runs the console script's entry point, ``ocactors.cli.main``, in a fresh
interpreter on a copy of a small recorded mission, then lists the modules it imported.
No timings here (``tests/benchmarks/bench_startup.py`` measures them); what is checked is
what makes them: ``--help`` loads no command's implementation, and reading a mission never
loads the actors, the tools, pykka or (for plain text) rich.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocactors.cli import build_parser

MISSION = Path(__file__).parent / "data" / "failed-mission"
BIN = Path(sys.executable).parent

PROBE = """
import json, sys
from ocactors.cli import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
"""

RUNNING_A_MISSION = (
    "pykka",
    "watchfiles",
    "ocactors.actors.commander",
    "ocactors.actors.mission",
    "ocactors.actors.session",
    "ocactors.tools",
    "ocactors.tools.sandbox",
    "ocactors.launch",
    "ocactors.setup",
)
"""Modules that only starting, resuming or following a mission needs."""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a small finished mission (86 events)."""
    target = tmp_path_factory.mktemp("imports") / "ws"
    shutil.copytree(MISSION, target)
    return target


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules ``ocactors ARGS`` imported, its stdout a pipe (not a terminal)."""
    listing = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0 and listing.exists(), done.stderr
    return set(json.loads(listing.read_text()))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in modules)


def test_help_loads_no_command_implementation(tmp_path: Path) -> None:
    modules = imported(tmp_path, "--help")
    heavy = (*RUNNING_A_MISSION, "httpx", "rich", "argcomplete", "ocactors.actors")
    assert loaded(modules, heavy) == []
    assert loaded(modules, ("ocactors.events", "ocactors.missions", "ocactors.view")) == []
    assert "ocactors.commands.task" in modules  # the commands are there, only lighter


@pytest.mark.parametrize(
    ("args", "also_not"),
    [
        (["ls"], ()),
        (["ls", "--json"], ("rich",)),
        (["status"], ("rich",)),
        (["status", "--json"], ("rich",)),
        (["tail"], ("rich",)),
        (["tail", "--json"], ("rich", "ocactors.actors")),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_reading_a_mission_loads_no_actors_tools_or_pykka(
    tmp_path: Path, workspace: Path, args: list[str], also_not: tuple[str, ...]
) -> None:
    modules = imported(tmp_path, *args, "-C", str(workspace))
    assert "ocactors.events" in modules  # it did read the log
    assert loaded(modules, (*RUNNING_A_MISSION, *also_not)) == []


@pytest.mark.parametrize("command", ["ls", "status", "tail"])
def test_reading_a_mission_loads_no_model_clients(
    tmp_path: Path, workspace: Path, command: str
) -> None:
    modules = imported(tmp_path, command, "-C", str(workspace))
    assert loaded(modules, ("httpx", "ocactors.actors.models")) == []


def test_options_from_a_heavy_module_are_there_once_the_command_is_chosen() -> None:
    task = build_parser().parse_args(["task", "goal", "--sandbox", "off", "--model", "m"])
    assert (task.sandbox, task.model, task.func.__name__) == ("off", "m", "run_task")
    detached = build_parser().parse_args(["task", "goal", "--detach"])
    assert detached.func.__name__ == "run_detached"
    replay = build_parser().parse_args(["replay", "--sandbox", "bwrap", "--until", "3"])
    assert (replay.sandbox, replay.until, replay.func.__name__) == ("bwrap", 3, "run_replay")
    resume = build_parser().parse_args(["resume", "--command-network"])
    assert resume.command_network is True and resume.func.__name__ == "run_resume"


@pytest.mark.parametrize("command", ["task", "resume", "replay"])
def test_help_of_a_command_shows_the_options_added_when_it_is_chosen(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ocactors", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--sandbox" in done.stdout and "--model" in done.stdout


COMPLETE = """
eval "$(ocactors completion bash)"
COMP_LINE="ocactors $1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"
COMP_CWORD=$(( ${#COMP_WORDS[@]} - $2 )); COMPREPLY=()
_python_argcomplete ocactors; echo "${COMPREPLY[*]}"
"""


@pytest.mark.skipif(not (BIN / "ocactors").exists(), reason="the ocactors script is not installed")
@pytest.mark.parametrize(
    ("line", "offered"),
    [
        ("task --sandb", "--sandbox"),
        ("replay --command-net", "--command-network"),
        ("resume -C WS ", "20261125-043656-b9d9"),  # the completer of a mission id
        ("replay -C WS 2026", "20261125-043656-b9d9"),
    ],
)
def test_completion_offers_what_is_added_when_the_command_is_chosen(
    workspace: Path, line: str, offered: str
) -> None:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    new_word = "0" if line.endswith(" ") else "1"
    done = subprocess.run(
        [
            "bash",
            "--norc",
            "-c",
            COMPLETE,
            "complete",
            line.replace("WS", str(workspace)),
            new_word,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [offered]
