"""run_command: a shell command in the workspace, through the mission's one process runner.

:func:`ocactors.tools.processes.run_process` bounds it in time and output and ends what it
leaves running.  Secrets are removed from the environment, and the interpreter running
ocactors comes first on PATH so ``python`` means that Python.  An allow-list admits one
command whose first words are an allowed prefix:
``python`` allows ``python -m pytest 2>&1`` but not ``python3``, ``python x; rm y`` or
``python $(rm y)``.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.lease_guard import LeaseReport
from ocactors.tools.processes import ProcessResult, run_process, shell_argv
from ocactors.tools.sandbox import prepare
from ocactors.tools.spec import ShellConfig, ToolContext, ToolSpec

SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASSWD", "_CREDENTIALS")
SECRET_WORDS = ("API_KEY", "SECRET", "PASSWORD")
CHAINING = frozenset("();<>|&")
REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", "&>", "&>>", ">|"})


class RunCommand(msgspec.Struct, kw_only=True):
    """run_command arguments."""

    command: str
    timeout: float | None = None


def command_env(strip: Iterable[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for project commands: secrets removed, our interpreter first on PATH.

    Removed are the names in ``strip`` and anything named like a credential (``*_KEY``,
    ``*_TOKEN``, ``*SECRET*``...), so a key named by ``api_key_env`` never reaches a command.
    """
    source = os.environ if base is None else base
    named = {name.upper() for name in strip}
    env = {k: v for k, v in source.items() if not is_secret(k, named)}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    return env


def is_secret(name: str, named: Iterable[str] = ()) -> bool:
    """Whether an environment variable looks like a credential (or is one of ``named``)."""
    upper = name.upper()
    return (
        upper in set(named)
        or upper.endswith(SECRET_SUFFIXES)
        or any(word in upper for word in SECRET_WORDS)
    )


def cap_output(text: str, limit: int) -> str:
    """Head and tail of ``text`` within ``limit`` characters, the middle counted."""
    if len(text) <= limit:
        return text
    half = limit // 2
    elided = len(text) - 2 * half
    return f"{text[:half]}\n[... {elided} characters elided ...]\n{text[-half:]}"


def run_command(ctx: ToolContext, args: RunCommand) -> str:
    """Exit code, stdout and stderr of the command, each capped; what the guard put back."""
    config = ctx.shell
    _check_allowed(args.command, config)
    timeout = config.timeout_s if args.timeout is None else args.timeout
    if not timeout > 0:
        raise ToolError("timeout must be positive (seconds)")
    timeout = min(timeout, config.max_timeout_s)
    lease = ctx.workspace.writable or frozenset()
    done = execute(args.command, ctx.workspace.root, timeout, config, lease=lease, owner=ctx.owner)
    result, report = done.result, done.report
    if report is not None and report.violated and ctx.on_violation is not None:
        ctx.on_violation(args.command, report)
    status = f"{result.exit_code}"
    if result.timed_out:
        status = f"timed out after {timeout:g}s (process group killed)"
    note = f"\n{report.message}" if report is not None and report.violated else ""
    return f"exit code: {status}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}{note}"


@dataclass(frozen=True, slots=True)
class Executed:
    """A project command's result, and what it changed outside its lease (None: unguarded)."""

    result: ProcessResult
    report: LeaseReport | None


def execute(
    command: str,
    cwd: Path,
    timeout: float,
    config: ShellConfig,
    *,
    lease: Iterable[str] = (),
    owner: str = "",
    merge_stderr: bool = False,
) -> Executed:
    """Run a project command (a model's or the checks') under the mission's rules.

    The environment is ours without secrets, with the project's own tools first; the command
    runs in the sandbox (``config.sandbox``); the lease guard, when there is one, puts back
    whatever the command changed outside ``lease``.
    """
    env = command_env(config.env_strip)
    if config.project_env is not None:
        env = config.project_env(env)
    guard = config.guard
    snapshot = guard.before(lease, owner=owner) if guard is not None else None
    protect = snapshot.protect if snapshot is not None else ()
    try:
        result = _confined(command, cwd, timeout, config, env, protect, merge_stderr)
    finally:
        report = guard.after(snapshot) if guard is not None and snapshot is not None else None
    return Executed(result, report)


def _confined(
    command: str,
    cwd: Path,
    timeout: float,
    config: ShellConfig,
    env: dict[str, str],
    protect: Iterable[str],
    merge_stderr: bool,
) -> ProcessResult:
    """The command in the sandbox, or as a plain shell command with ``--sandbox off``."""
    run = functools.partial(
        run_process,
        cwd=cwd,
        timeout_s=timeout,
        output_limit=config.output_limit,
        groups=config.groups,
        merge_stderr=merge_stderr,
    )
    if config.sandbox is None:
        return run(shell_argv(command), env=env)
    with prepare(
        command,
        workspace=cwd,
        writable=True,
        backend=config.sandbox,
        network=config.network,
        env=env,
        protect=protect,
    ) as prepared:
        return run(prepared.argv, env=prepared.env)


def _check_allowed(command: str, config: ShellConfig) -> None:
    """With an allow-list, one command whose first words are an allowed prefix, nothing chained."""
    if not command.strip():
        raise ToolError("command is empty")
    if not config.allow_prefixes:
        return
    words = _words(command)
    if not any(words[: len(p)] == p for p in map(shlex.split, config.allow_prefixes)):
        allowed = ", ".join(config.allow_prefixes)
        raise ToolError(f"command not allowed; it must start with one of: {allowed}")
    if _chains(command, words):
        raise ToolError(
            "command not allowed: with an allow-list, run one command; no ;, &&, ||, |, &, "
            "$(...), `...` or newlines (redirections such as 2>&1 are fine)"
        )


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # bash starts a comment only at a word's start: `x#;rm y` chains
    try:
        return list(lexer)
    except ValueError as error:
        raise ToolError(f"command could not be parsed: {error}") from None


def _chains(command: str, words: list[str]) -> bool:
    """Whether the shell would run anything besides the first command."""
    if any(mark in command for mark in ("\n", "\r", "`", "$(")):
        return True
    return any(word and set(word) <= CHAINING and word not in REDIRECTS for word in words)


RUN_COMMAND = ToolSpec(
    "run_command",
    "Run a shell command in the workspace (tests, builds); returns exit code and output.",
    RunCommand,
    run_command,
)
