"""run_command: a shell command in the workspace, bounded in time and in output.

The command runs in its own session (process group), so a timeout kills everything it
started, grandchildren included.  Output keeps its head and its tail (where errors usually
are) and elides the middle with a count.  Secrets are removed from the environment, and the
interpreter running ocactors comes first on PATH so ``python`` means that Python.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.spec import ShellConfig, ToolContext, ToolSpec

DRAIN_S = 5.0


class RunCommand(msgspec.Struct, kw_only=True):
    """run_command arguments."""

    command: str
    timeout: float | None = None


def command_env(strip: Iterable[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for project commands: secrets removed, our interpreter first on PATH."""
    source = os.environ if base is None else base
    secret = {name.upper() for name in strip}
    env = {k: v for k, v in source.items() if k.upper() not in secret}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    return env


def cap_output(text: str, limit: int) -> str:
    """Head and tail of ``text`` within ``limit`` characters, the middle counted."""
    if len(text) <= limit:
        return text
    half = limit // 2
    elided = len(text) - 2 * half
    return f"{text[:half]}\n[... {elided} characters elided ...]\n{text[-half:]}"


def run_command(ctx: ToolContext, args: RunCommand) -> str:
    """Exit code, stdout and stderr of the command, each capped."""
    config = ctx.shell
    _check_allowed(args.command, config)
    timeout = min(args.timeout or config.timeout_s, config.max_timeout_s)
    if timeout <= 0:
        raise ToolError("timeout must be positive (seconds)")
    code, out, err, timed_out = execute(args.command, ctx.workspace.root, timeout, config)
    status = f"timed out after {timeout:g}s (process group killed)" if timed_out else f"{code}"
    limit = config.output_limit
    return (
        f"exit code: {status}\nstdout:\n{cap_output(out, limit)}\nstderr:\n{cap_output(err, limit)}"
    )


def _check_allowed(command: str, config: ShellConfig) -> None:
    if not command.strip():
        raise ToolError("command is empty")
    if config.allow_prefixes and not any(
        command.strip().startswith(prefix) for prefix in config.allow_prefixes
    ):
        allowed = ", ".join(config.allow_prefixes)
        raise ToolError(f"command not allowed; it must start with one of: {allowed}")


def execute(
    command: str, cwd: Path, timeout: float, config: ShellConfig
) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr, timed out); the process group dies on timeout."""
    with subprocess.Popen(
        ["/bin/bash", "-c", command] if Path("/bin/bash").exists() else command,
        shell=not Path("/bin/bash").exists(),
        cwd=cwd,
        env=command_env(config.env_strip),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        config.groups.add(proc.pid)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            out, err = _drain(proc)
        finally:
            config.groups.discard(proc.pid)
        code = proc.returncode if proc.returncode is not None else -9
    return code, _text(out), _text(err), timed_out


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What is left in the pipes, without waiting on an escaped grandchild forever."""
    try:
        return proc.communicate(timeout=DRAIN_S)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait(timeout=DRAIN_S)
        return b"", b"[output lost: a process outside the group kept the pipe open]"


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


RUN_COMMAND = ToolSpec(
    "run_command",
    "Run a shell command in the workspace (tests, builds); returns exit code and output.",
    RunCommand,
    run_command,
)
