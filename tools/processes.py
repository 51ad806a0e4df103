"""The one process runner: every command a mission starts goes through :func:`run_process`.

Model commands (``run_command``) and the project's checks (verify) share it, so they share
its behaviour:

- the command runs in its own session (process group); when the shell exits, whatever it left
  running in its group dies, and a background child still holding the pipes does not make the
  call wait for its timeout (the pipes get :data:`DRAIN_S` more, then reading stops);
- a timeout kills the whole group, grandchildren included;
- output keeps its head and its tail (where errors usually are) and counts the middle, which
  is never held in memory, so ``yes`` cannot fill it.

:class:`ProcessGroups` knows every group a mission has running, so a stopping, failing or
sealing mission ends them.  A mission that is killed outright (SIGKILL) cannot clean up, so a
small reaper process holds a pipe from the mission: when the pipe closes, the reaper kills the
groups it was told about and every process that still carries the mission's marker variable
(:data:`MARKER_ENV`), which also finds what escaped its group with ``setsid``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRAIN_S = 0.5
POLL_S = 0.05
READ_CHUNK = 65536
MARKER_ENV = "OCACTORS_RUN"

_REAPER = r"""
import os, signal, sys
if os.fork():
    os._exit(0)
marker = ("%s=" % sys.argv[1]).encode() + sys.argv[2].encode() + b"\0"
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for pid in groups:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != os.getpid():
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if marker in f.read() + b"\0":
                    os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
"""


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a command ended: its exit code (negative: killed by that signal) and its output."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float


class ProcessGroups:
    """The process groups a mission has running, so a stopping mission can end them.

    Each command's environment carries :attr:`marker`; :meth:`kill_all` and the reaper also
    end any process that still has it (a ``setsid`` child left behind).
    """

    def __init__(self) -> None:
        self._pids: set[int] = set()
        self._lock = threading.Lock()
        self.marker = secrets.token_hex(8)
        self._reaper: int | None = None  # the write end of the reaper's pipe
        self._close_reaper: weakref.finalize[Any, Any] | None = None

    def add(self, pid: int) -> None:
        """A command started (its pid is its process group id)."""
        with self._lock:
            self._pids.add(pid)
            self._tell_reaper(f"+{pid}\n")

    def discard(self, pid: int) -> None:
        """A command ended."""
        with self._lock:
            self._pids.discard(pid)
            self._tell_reaper(f"-{pid}\n")

    @property
    def running(self) -> int:
        """How many commands are running now."""
        with self._lock:
            return len(self._pids)

    def kill_all(self) -> int:
        """SIGKILL every group still running and every marked process; how many groups."""
        with self._lock:
            pids, self._pids = self._pids, set()
        for pid in pids:
            _kill_group(pid)
        kill_marked(self.marker)
        return len(pids)

    def close(self) -> None:
        """End everything, and the reaper with it (a normal end of the mission)."""
        self.kill_all()
        with self._lock:
            closer, self._reaper, self._close_reaper = self._close_reaper, None, None
        if closer is not None:
            closer()  # closes the pipe once, here or at collection, never twice

    def start_reaper(self) -> None:
        """Start the process that cleans up if this one is killed (idempotent).

        The reaper detaches (it forks and its first process exits at once), so it is nobody's
        child to wait for; it reads its pipe until the pipe closes: when :meth:`close` is
        called, when this object is collected, or when this process dies.
        """
        with self._lock:
            if self._reaper is not None:
                return
            read_end, write_end = os.pipe()
            try:
                subprocess.run(
                    [sys.executable, "-I", "-S", "-c", _REAPER, MARKER_ENV, self.marker],
                    stdin=read_end,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    check=False,
                    timeout=30,
                )
            finally:
                os.close(read_end)
            os.set_inheritable(write_end, False)
            self._reaper = write_end
            self._close_reaper = weakref.finalize(self, _close, write_end)
            self._tell_reaper("".join(f"+{pid}\n" for pid in self._pids))

    def _tell_reaper(self, lines: str) -> None:
        if self._reaper is None or not lines:
            return
        with contextlib.suppress(OSError):
            os.write(self._reaper, lines.encode())


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment carries ``OCACTORS_RUN=marker``; how many."""
    needle = f"{MARKER_ENV}={marker}\0".encode()
    killed = 0
    for entry in _proc_entries():
        try:
            environ = (Path("/proc") / entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if needle in environ:
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
    return killed


def _proc_entries() -> list[str]:
    try:
        return [name for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]
    except OSError:
        return []


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_limit: int,
    groups: ProcessGroups | None = None,
    merge_stderr: bool = False,
) -> ProcessResult:
    """Run ``argv`` (a shell, or a sandbox around one); bounded; its group dies at the end."""
    started = time.monotonic()
    run_env = dict(env)
    if groups is not None:
        groups.start_reaper()
        run_env[MARKER_ENV] = groups.marker
    with subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=run_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        if groups is not None:
            groups.add(proc.pid)
        run = _Run(proc, timeout_s, output_limit)
        try:
            run.collect()
        finally:
            _kill_group(proc.pid)
            if groups is not None:
                groups.discard(proc.pid)
        code = proc.wait(timeout=DRAIN_S)
    duration = round(time.monotonic() - started, 3)
    return ProcessResult(code, run.out.render(), run.err.render(), run.timed_out, duration)


def shell_argv(command: str) -> list[str]:
    """``command`` as bash (or sh, where there is no bash) runs it."""
    shell = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
    return [shell, "-c", command]


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
    """One command's pipes, read until it ends or its time is up."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float, limit: int) -> None:
        self.proc = proc
        self.out, self.err = _Capture(limit), _Capture(limit)
        self.deadline = time.monotonic() + timeout
        self.timed_out = False
        self.exited = False

    def collect(self) -> None:
        """Read the pipes until the shell has exited and they are closed, or time is up."""
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
