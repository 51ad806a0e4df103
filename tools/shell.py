"""run_command: a shell command in the workspace, bounded in time and in output.

The command runs in its own session (process group), so a timeout kills everything it
started, grandchildren included, and whatever it leaves running in the background dies when it
ends.  Output keeps its head and its tail (where errors usually are) and elides the middle with
a count; the middle is never held in memory, so ``yes`` cannot fill it.  Secrets are removed
from the environment, and the interpreter running ocactors comes first on PATH so ``python``
means that Python.  An allow-list admits one command whose first words are an allowed prefix:
``python`` allows ``python -m pytest 2>&1`` but not ``python3``, ``python x; rm y`` or
``python $(rm y)``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.spec import ShellConfig, ToolContext, ToolSpec

DRAIN_S = 0.5
POLL_S = 0.05
READ_CHUNK = 65536
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
    """Exit code, stdout and stderr of the command, each capped."""
    config = ctx.shell
    _check_allowed(args.command, config)
    timeout = config.timeout_s if args.timeout is None else args.timeout
    if not timeout > 0:
        raise ToolError("timeout must be positive (seconds)")
    timeout = min(timeout, config.max_timeout_s)
    code, out, err, timed_out = execute(args.command, ctx.workspace.root, timeout, config)
    status = f"timed out after {timeout:g}s (process group killed)" if timed_out else f"{code}"
    return f"exit code: {status}\nstdout:\n{out}\nstderr:\n{err}"


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
    try:
        return list(lexer)
    except ValueError as error:
        raise ToolError(f"command could not be parsed: {error}") from None


def _chains(command: str, words: list[str]) -> bool:
    """Whether the shell would run anything besides the first command."""
    if any(mark in command for mark in ("\n", "\r", "`", "$(")):
        return True
    return any(word and set(word) <= CHAINING and word not in REDIRECTS for word in words)


def execute(
    command: str, cwd: Path, timeout: float, config: ShellConfig
) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr, timed out); output capped, the process group killed at the end.

    Whatever the command left running in its group (``server &``) dies with it.
    """
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
        run = _Run(proc, timeout, config.output_limit)
        try:
            run.collect()
        finally:
            _kill_group(proc.pid)
            config.groups.discard(proc.pid)
        code = proc.wait(timeout=DRAIN_S)
    return code, run.out.render(), run.err.render(), run.timed_out


class _Capture:
    """A stream's first and last ``limit`` bytes and its length: the middle is never held."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = max(self.limit - len(self.head), 0)
        self.head += data[:room]
        if len(data) > room:
            self.tail += data[room:]
            del self.tail[: -self.limit]

    def render(self) -> str:
        """All of it, or the head and tail halves with the bytes between them counted."""
        if self.total <= self.limit:
            return _text(self.head)
        half = self.limit // 2
        last = (self.head + self.tail)[-half:]
        elided = self.total - 2 * half
        return f"{_text(self.head[:half])}\n[... {elided} bytes elided ...]\n{_text(last)}"


class _Run:
    """One command's two pipes, read until it ends or its time is up."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float, limit: int) -> None:
        self.proc = proc
        self.out, self.err = _Capture(limit), _Capture(limit)
        self.deadline = time.monotonic() + timeout
        self.timed_out = False
        self.exited = False

    def collect(self) -> None:
        """Read both pipes until the shell has exited and they are closed, or time is up."""
        with selectors.DefaultSelector() as selector:
            for pipe, capture in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
                if pipe is not None:
                    selector.register(pipe, selectors.EVENT_READ, capture)
            while not self._done(bool(selector.get_map())):
                wait = max(0.0, min(self.deadline - time.monotonic(), POLL_S))
                if selector.get_map():
                    _read_ready(selector, wait)
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=wait)

    def _done(self, pipes_open: bool) -> bool:
        """Past the deadline the group is killed; after exit or kill, pipes get DRAIN_S more."""
        now = time.monotonic()
        if not self.exited and self.proc.poll() is not None:
            self.exited = True
            self.deadline = min(self.deadline, now + DRAIN_S)
        if self.exited and not pipes_open:
            return True
        if now < self.deadline:
            return False
        if self.exited or self.timed_out:
            return True  # a process outside the group keeps the pipes open: stop reading
        self.timed_out = True
        _kill_group(self.proc.pid)
        self.deadline = now + DRAIN_S
        return False


def _read_ready(selector: selectors.BaseSelector, wait: float) -> None:
    for key, _ in selector.select(wait):
        data = os.read(key.fd, READ_CHUNK)
        if data:
            key.data.add(data)
        else:
            selector.unregister(key.fileobj)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


RUN_COMMAND = ToolSpec(
    "run_command",
    "Run a shell command in the workspace (tests, builds); returns exit code and output.",
    RunCommand,
    run_command,
)
