"""/task, /status and /stop: the goal never reaches a shell as code, and real OpenCode runs them.

OpenCode 1.18 expands a command in two steps (``SessionPrompt.command``): the user's text
replaces ``$ARGUMENTS`` through JavaScript's ``String.prototype.replaceAll`` (so ``$$``, ``$&``,
``$``` and ``$'`` in the text are patterns), then each ``!`...``` span runs as ``$SHELL -c``.
:func:`expand` does the same, so every shell on this machine can be fed the spans OpenCode
would give it; the tests at the end run the real ``opencode`` against a loopback model.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer, Turn
from ocactors.common import UsageError
from ocactors.events import missions_dir, read_events
from ocactors.events.catalogue import MissionStarted
from ocactors.opencode_commands import NAMES, command_text, goal_from_block, unwrap
from tests._mission_helpers import textstats_playbook
from tests._opencode_helpers import (
    OCACTORS,
    OPENCODE,
    Detached,
    detached,
    final_type,
    isolated_env,
    needs_opencode,
    run,
    scripted_provider,
    slow,
    wait_for_event,
    wait_until_over,
)

__all__ = ["detached"]  # the fixture
SHELLS = [s for s in ("sh", "dash", "bash", "zsh", "ksh") if shutil.which(s)]


def js_replace_all(text: str, target: str, replacement: str) -> str:
    """JavaScript's ``text.replaceAll(target, replacement)`` with a string replacement."""
    out, start = [], 0
    while (at := text.find(target, start)) >= 0:
        end = at + len(target)
        out += [text[start:at], _js_pattern(replacement, text, at, end)]
        start = end
    return "".join([*out, text[start:]])


def _js_pattern(replacement: str, text: str, at: int, end: int) -> str:
    special = {"$": "$", "&": text[at:end], "`": text[:at], "'": text[end:]}
    pieces = re.split(r"(\$[$&`'])", replacement)
    return "".join(special[p[1]] if re.fullmatch(r"\$[$&`']", p) else p for p in pieces)


def expand(template: str, arguments: str) -> list[str]:
    """The shell spans OpenCode would run for ``/task arguments``."""
    return re.findall(r"!`([^`]+)`", js_replace_all(template, "$ARGUMENTS", arguments))


def run_quoted(goal: str) -> str:
    """How ``opencode run --command task GOAL`` passes one argument (quoted if it has a space)."""
    return f'"{goal.replace(chr(34), chr(92) + chr(34))}"' if " " in goal else goal


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for ``ocactors`` that saves its stdin next to itself."""
    folder = tmp_path_factory.mktemp("recorder")
    script = folder / "record.py"
    script.write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[1]).write_text(sys.stdin.read())\n"
    )
    return script


def through_shell(shell: str, goal: str, arguments: str, recorder: Path, cwd: Path) -> str:
    """The goal ocactors would read after OpenCode and ``shell`` handled ``/task arguments``."""
    saved = cwd / "stdin.txt"
    prefix = f"{shlex.quote(sys.executable)} {shlex.quote(str(recorder))} {shlex.quote(str(saved))}"
    spans = expand(command_text("task", prefix), arguments)
    for span in spans[:1]:
        subprocess.run([shell, "-c", span], cwd=cwd, capture_output=True, timeout=30)
    return goal_from_block(saved.read_text()) if saved.exists() else "<nothing ran>"


SAFE_GOALS = [
    "Build calc",
    'Build a "calculator" app',
    "don't break it",
    "use $HOME, ${PATH} and $((1+1))",
    "$(touch pwned) and $(rm -rf pwned)",
    "a \\ backslash, a \\n and \\\\ two",
    "line one\nline two\n\nline four",
    "; touch pwned; echo",
    "| touch pwned & touch pwned &",
    "OCACTORS_GOAL_EOF is only a word here",
    "> pwned < /dev/null",
    "{env:HOME} {file:x} ! !! #",
    "tabs\tand unicode: café ✓",
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("goal", SAFE_GOALS)
def test_any_goal_arrives_intact_and_nothing_in_it_runs(
    shell: str, goal: str, recorder: Path, tmp_path: Path
) -> None:
    for arguments in (goal, run_quoted(goal)):
        assert through_shell(shell, goal, arguments, recorder, tmp_path) == goal
        assert not (tmp_path / "pwned").exists()


REFUSED = {
    "a backtick cuts OpenCode's span": ("fix the `parse` function", "was cut short"),
    "a command after a backtick": ("x `touch pwned` y", "was cut short"),
    "the delimiter on a line": ("a\nOCACTORS_GOAL_EOF\ntouch pwned\nb", "was cut short"),
    "OpenCode's $` pattern (a backtick too)": ("left $` right", "was cut short"),
    "a marker line in the goal": (
        "a\nOCACTORS_GOAL_BEGIN\nb",
        "contains a line OCACTORS_GOAL_BEGIN",
    ),
}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", list(REFUSED))
def test_a_goal_the_shell_would_not_pass_whole_is_refused_and_runs_nothing(
    shell: str, case: str, recorder: Path, tmp_path: Path
) -> None:
    goal, error = REFUSED[case]
    with pytest.raises(UsageError, match=error):
        through_shell(shell, goal, goal, recorder, tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_the_one_line_error_reaches_opencode_on_stdout(tmp_path: Path) -> None:
    """OpenCode puts only a span's stdout in the prompt: errors must be there too."""
    (tmp_path / "home").mkdir()
    env = isolated_env(tmp_path / "home", tmp_path)
    (span,) = expand(command_text("task", shlex.join(OCACTORS)), "fix the `parse` function")
    done = subprocess.run(
        ["bash", "-c", span], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stdout.startswith("ocactors: error: the goal was cut short")


def test_the_templates_have_no_positional_placeholders_opencode_would_fill() -> None:
    for name in NAMES:
        text = command_text(name)
        assert not re.search(r"\$\d", text), name
        assert len(re.findall(r"!`([^`]+)`", text)) == 1, name
    assert command_text("task").count("$ARGUMENTS") == 1


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ('"Build calc"', "Build calc"),
        ('"a \\"quoted\\" word"', 'a "quoted" word'),
        ('"two" "args"', '"two" "args"'),
        ("no quotes", "no quotes"),
        ('"', '"'),
        ('""', ""),
    ],
)
def test_unwrap_undoes_opencode_runs_quoting_of_one_argument(text: str, plain: str) -> None:
    assert unwrap(text) == plain


# --- real OpenCode -----------------------------------------------------------------------

GOAL = 'Build calc: a "calculator" that costs $5, keeps $(touch pwned) and \\ literal'


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModelServer]:
    script = {**textstats_playbook().script(), "default": lambda request: Turn("Noted.")}
    with ScriptedModelServer(script) as server:
        yield server


def make_project(tmp_path: Path, server: ScriptedModelServer) -> tuple[Path, dict[str, str]]:
    """A git repository declaring the loopback model for OpenCode, after
    ``ocactors init --opencode``; the environment to run in it."""
    workspace, home = tmp_path / "ws", tmp_path / "home"
    workspace.mkdir()
    home.mkdir()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    scripted_provider(workspace, server.base_url)
    env = isolated_env(home, workspace)
    done = run("init", "--opencode", env=env, cwd=workspace)
    assert done.returncode == 0, done.stderr
    return workspace, env


def opencode(workspace: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert OPENCODE is not None
    return subprocess.run(
        [OPENCODE, "run", "--title", "ocactors test", *args],  # a title: no model call for it
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def prompt_of_last_command(model: ScriptedModelServer) -> str:
    """What the command expanded to: the user message OpenCode sent its model."""
    body = model.calls_for("default")[-1].body
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


@needs_opencode
def test_task_in_opencode_starts_a_detached_mission_that_seals_and_status_reports_it(
    tmp_path: Path, model: ScriptedModelServer, detached: Detached
) -> None:
    workspace, env = make_project(tmp_path, model)
    done = opencode(workspace, env, "--command", "task", GOAL)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = prompt_of_last_command(model)
    mission = detached.add(answer)
    assert "ocactors monitor" in answer and "from OpenCode config" in answer
    events = wait_until_over(missions_dir(workspace) / mission / "events.jsonl")
    assert final_type(events) == "mission.sealed"
    assert isinstance(events[0], MissionStarted) and events[0].goal == GOAL
    assert not (workspace / "pwned").exists()
    status = opencode(workspace, env, "--command", "status")
    assert status.returncode == 0, status.stderr[-2000:]
    summary = prompt_of_last_command(model)
    assert f"mission {mission}: SEALED" in summary and "goal: Build calc" in summary


@needs_opencode
def test_stop_in_opencode_stops_the_running_mission(tmp_path: Path, detached: Detached) -> None:
    script = {**slow(textstats_playbook(), 60).script(), "default": lambda r: Turn("Noted.")}
    with ScriptedModelServer(script) as slow_model:
        workspace, env = make_project(tmp_path, slow_model)
        started = run("task", "build textstats", "--detach", env=env, cwd=workspace)
        mission = detached.add(started.stdout)
        events = missions_dir(workspace) / mission / "events.jsonl"
        wait_for_event(events, "task.started")
        done = opencode(workspace, env, "--command", "stop")
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"mission {mission} stopped" in prompt_of_last_command(slow_model)
        assert final_type(wait_until_over(events, timeout=20)) == "mission.stopped"
        assert [type(e).__name__ for e in read_events(events)][-1] == "MissionStopped"
