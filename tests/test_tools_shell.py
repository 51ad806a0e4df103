"""run_command with real subprocesses: exit codes, cwd, environment, timeouts, caps, allow-list."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocactors.tools import (
    ShellConfig,
    Toolbox,
    ToolContext,
    WebConfig,
    Workspace,
    cap_output,
    command_env,
    worker_tools,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def box(root: Path, **config: Any) -> Toolbox:
    ctx = ToolContext(workspace=Workspace(root), shell=ShellConfig(**config))
    return Toolbox(worker_tools(WebConfig()), ctx)


def run(root: Path, command: str, **config: Any) -> tuple[str, bool]:
    result = box(root, **config).call("run_command", json.dumps({"command": command}))
    return result.output, result.is_error


def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` has ended (a zombie counts) within ``timeout``, waiting on a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids a test started outside run_command's reach; killed at the end whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_exit_code_stdout_and_stderr_are_reported_apart(root: Path) -> None:
    output, is_error = run(root, "echo out; echo err >&2; exit 3")
    assert not is_error
    assert output == "exit code: 3\nstdout:\nout\n\nstderr:\nerr\n"


def test_the_command_runs_in_the_workspace_with_our_python(root: Path) -> None:
    output, _ = run(root, 'pwd -P; python -c "import sys; print(sys.prefix)"; touch made-here')
    assert output.splitlines()[2:4] == [str(root.resolve()), sys.prefix]
    assert (root / "made-here").exists()


def test_secrets_are_not_in_the_childs_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "OCACTORS_API_KEY": "sk-ocactors",
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-anthropic",
        "DEEPSEEK_API_KEY": "sk-deepseek",  # a key named by api_key_env
        "GITHUB_TOKEN": "ghp-token",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "DB_PASSWORD": "hunter2",
        "PLAIN_NAME": "named-in-config",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OCACTORS_HARMLESS", "visible")
    output, _ = run(root, "env", env_strip=("OCACTORS_API_KEY", "plain_name"))
    assert "OCACTORS_HARMLESS=visible" in output
    for name, value in secrets.items():
        assert value not in output and f"{name}=" not in output


def test_command_env_puts_our_interpreter_first_and_keeps_the_rest() -> None:
    env = command_env(["X_API"], base={"PATH": "/usr/bin", "X_API": "1", "LANG": "C"})
    assert env == {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin", "LANG": "C"}


def test_a_timeout_kills_the_whole_process_group(root: Path, reap: list[int]) -> None:
    started = time.monotonic()
    output, is_error = run(
        root, "echo started; sleep 30 & echo $! > child.pid; wait", timeout_s=0.5
    )
    child = int((root / "child.pid").read_text())
    reap.append(child)
    assert not is_error and time.monotonic() - started < 3
    assert output.startswith("exit code: timed out after 0.5s (process group killed)\n")
    assert "started" in output
    assert gone(child)


def test_the_call_can_ask_for_a_timeout_up_to_the_maximum(root: Path) -> None:
    toolbox = box(root, max_timeout_s=0.3)
    output = toolbox.call("run_command", '{"command": "sleep 10", "timeout": 100}').output
    assert output.startswith("exit code: timed out after 0.3s")
    for bad in (0, -1):
        result = toolbox.call("run_command", json.dumps({"command": "true", "timeout": bad}))
        assert result.is_error and "timeout must be positive" in result.output


def test_the_default_timeout_is_two_minutes() -> None:
    assert ShellConfig().timeout_s == 120.0


def test_what_a_command_leaves_in_the_background_dies_with_it(root: Path, reap: list[int]) -> None:
    started = time.monotonic()
    quiet, _ = run(root, "sleep 30 >/dev/null 2>&1 & echo $! > quiet.pid; echo done")
    holding, _ = run(root, "sleep 30 & echo $! > holding.pid; echo done")
    pids = [int((root / f"{name}.pid").read_text()) for name in ("quiet", "holding")]
    reap.extend(pids)
    assert quiet == holding == "exit code: 0\nstdout:\ndone\n\nstderr:\n"
    assert time.monotonic() - started < 3  # the one holding the pipes is not waited for
    assert all(gone(pid) for pid in pids)


def test_a_process_that_left_the_group_does_not_hold_the_call(root: Path, reap: list[int]) -> None:
    started = time.monotonic()
    output, _ = run(root, "setsid sleep 30 & echo $! > escaped.pid; sleep 30", timeout_s=0.5)
    reap.append(int((root / "escaped.pid").read_text()))
    assert "timed out" in output and time.monotonic() - started < 3


def test_output_keeps_head_and_tail_with_the_elided_count(root: Path) -> None:
    script = (
        "import sys; sys.stdout.write('HEAD' + 'x' * 5000 + 'TAIL'); sys.stderr.write('e' * 10)"
    )
    output, _ = run(root, f'python -c "{script}"', output_limit=1000)
    stdout = output.split("\nstdout:\n")[1].split("\nstderr:\n")[0]
    head, marker, tail = stdout.split("\n")
    assert head == "HEAD" + "x" * 496 and tail == "x" * 496 + "TAIL"
    assert marker == "[... 4008 bytes elided ...]"
    assert output.endswith("\nstderr:\n" + "e" * 10)


def test_a_flood_of_output_is_never_held_in_memory(root: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    output, _ = run(root, "yes | head -c 200000000", output_limit=2000)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert "[... 199998000 bytes elided ...]" in output and len(output) < 2200
    assert grown_kib < 50_000


def test_undecodable_output_and_stdin(root: Path) -> None:
    output, _ = run(root, r"printf 'caf\xe9'; cat")  # cat reads /dev/null: it does not wait
    assert output == "exit code: 0\nstdout:\ncaf\ufffd\nstderr:\n"


@pytest.mark.parametrize(
    "command",
    [
        "ls",
        "python3 -c 1",
        "pythonx",
        "echo hello; python -c 1",
        "python -c 1; touch pwned",
        "python -c 1 && touch pwned",
        "python -c 1 || touch pwned",
        "python -c 1 | sh",
        "python -c 1 & touch pwned",
        "python $(touch pwned)",
        'python "$(touch pwned)"',
        "python `touch pwned`",
        "python -c 1\ntouch pwned",
        "python <(touch pwned)",
        "python x#;touch pwned",
        "python -k a#&&touch pwned",
        "echo hello",
        "echo hello-world",
    ],
)
def test_the_allow_list_admits_one_allowed_command_only(root: Path, command: str) -> None:
    output, is_error = run(root, command, allow_prefixes=("python", "echo hello world"))
    assert is_error and "command not allowed" in output
    assert "python, echo hello world" in output or "run one command" in output
    assert not (root / "pwned").exists()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ('python -c "print(1); print(2)" 2>&1', "1\n2\n"),
        ("python -c 'print(3)' > out.txt; cat out.txt", None),
        ("echo hello world  again", "hello world again\n"),
        ("  python -c 'print(4)' >> log.txt", ""),
    ],
)
def test_the_allow_list_lets_allowed_commands_run(
    root: Path, command: str, expected: str | None
) -> None:
    output, is_error = run(root, command, allow_prefixes=("python", "echo hello world"))
    if expected is None:
        assert is_error and "run one command" in output
    else:
        assert not is_error and output.startswith(f"exit code: 0\nstdout:\n{expected}\n")


def test_an_unparsable_command_under_an_allow_list_is_refused(root: Path) -> None:
    output, is_error = run(root, "python -c 'print(1)", allow_prefixes=("python",))
    assert is_error and "could not be parsed" in output


def test_an_empty_command_is_refused(root: Path) -> None:
    assert run(root, "   ") == ("error: command is empty", True)


def test_a_stopping_mission_ends_commands_still_running(root: Path) -> None:
    config = ShellConfig()
    toolbox = Toolbox(worker_tools(WebConfig()), ToolContext(Workspace(root), shell=config))
    results: list[str] = []
    finished = threading.Event()

    def command() -> None:
        results.append(
            toolbox.call("run_command", '{"command": "echo $$ > sh.pid; sleep 30"}').output
        )
        finished.set()

    started = time.monotonic()
    threading.Thread(target=command, daemon=True).start()
    while not config.groups.running and time.monotonic() - started < 5:
        finished.wait(0.01)
    assert config.groups.kill_all() == 1
    assert finished.wait(timeout=5) and time.monotonic() - started < 5
    assert results[0].startswith("exit code: -9") and config.groups.running == 0


def test_cap_output_keeps_head_and_tail_of_text() -> None:
    assert cap_output("short", 10) == "short"
    assert cap_output("abcdefghijkl", 4) == "ab\n[... 8 characters elided ...]\nkl"
