"""`ocactors task` as a user runs it: output shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocactors.actors.models import ScriptedModelServer
from tests._mission_helpers import CHECK, textstats_playbook


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(textstats_playbook().script()) as running:
        yield running


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocactors.cli", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
    )


def model_env(server: ScriptedModelServer) -> dict[str, str]:
    return {
        **os.environ,
        "OCACTORS_MODEL": "scripted",
        "OCACTORS_BASE_URL": server.base_url,
    }


def test_json_prints_one_event_per_line_and_exits_0_when_sealed(
    tmp_path: Path, server: ScriptedModelServer
) -> None:
    done = run(
        "task",
        "build textstats",
        "-C",
        str(tmp_path),
        "--verify",
        CHECK,
        "--json",
        env=model_env(server),
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["type"] == "mission.started"
    assert events[-1]["type"] == "mission.sealed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "max-iterations 20" in done.stderr  # the defaults are printed at start


def test_plain_lines_when_not_a_terminal(tmp_path: Path, server: ScriptedModelServer) -> None:
    done = run(
        "task", "build textstats", "-C", str(tmp_path), "--verify", CHECK, env=model_env(server)
    )
    assert done.returncode == 0, done.stderr
    assert "plan.accepted" in done.stdout and "mission.sealed" in done.stdout
    assert "\x1b[" not in done.stdout  # no terminal control codes in a pipe


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task", ""], "goal is empty"),
        (["task", "x", "--parallel", "99"], "--parallel must be between 1 and 50"),
        (["task", "x", "-C", "/nonexistent/dir"], "is not a directory"),
        (["resume", "nope"], "no missions"),
        (["stop"], "no missions"),
        (["task"], "required"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    tmp_path: Path, server: ScriptedModelServer, args: list[str], message: str
) -> None:
    done = run(*args, env=model_env(server), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_no_model_configured_exits_2_saying_what_to_set(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OCACTORS_", "OPENAI_", "ANTHROPIC_"))
    }
    done = run("task", "x", "-C", str(tmp_path), env=env)
    if "Ollama" not in done.stderr and done.returncode != 2:
        pytest.skip("a local Ollama answered on 127.0.0.1:11434")
    assert done.returncode == 2
    assert "OCACTORS_MODEL" in done.stderr and "Ollama" in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / ".opencode").exists()  # nothing was started


def test_help_of_every_command_has_an_example() -> None:
    for command in ("task", "resume", "stop", "demo"):
        done = run(command, "--help")
        assert done.returncode == 0
        assert "example:" in done.stdout, command


def test_limits_come_from_the_config_file(tmp_path: Path, server: ScriptedModelServer) -> None:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(
        "[limits]\nmax_sessions = 4\nmax_per_role = 3\n"
    )
    refused = run("task", "x", "-C", str(tmp_path), "--parallel", "5", env=model_env(server))
    assert refused.returncode == 2 and "between 1 and 4" in refused.stderr
    done = run(
        "task", "build textstats", "-C", str(tmp_path), "--verify", CHECK, env=model_env(server)
    )
    assert done.returncode == 0, done.stderr
    assert "parallel 3, max-sessions 4" in done.stderr
