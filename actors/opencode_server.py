"""OpenCode's headless server: started in the workspace for one mission, or attached to by URL.

``opencode serve`` is started on 127.0.0.1 with a random port and a random password (basic
auth, user ``opencode``), in its own process group, and stopped with that group at the end, so
the shell commands its sessions started go too.  On Linux it also gets ``SIGTERM`` when the
thread that started it dies (``PR_SET_PDEATHSIG``): a ``kill -9`` of ocactors leaves no
server behind.  Start it from the thread that lives as long as the mission (the main thread).

Two quirks of OpenCode 1.18 shape the health check: the port opens a few seconds before the
server answers, and a request sent in that window can hang for many seconds, so each probe has
a short timeout and is simply sent again; and the first start in a fresh ``HOME`` tries to
fetch the models.dev catalogue (harmless offline, it just logs an error).

Errors (each one line saying what to do)::

    OpenCodeError            anything about the OpenCode backend
    ├── OpenCodeNotFound     no ``opencode`` executable on PATH
    ├── OpenCodeTooOld       its version is older than MIN_VERSION
    ├── OpenCodeUnavailable  the server does not answer (start timeout, bad URL, bad password)
    └── OpenCodeServerDied   the ``serve`` this process started has exited
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import httpx

MIN_VERSION = (1, 0, 0)
TESTED_VERSION = "1.18.33"
USERNAME = "opencode"
PROBE_TIMEOUT_S = 1.0
STOP_GRACE_S = 5.0
LOG_TAIL = 1500
PR_SET_PDEATHSIG = 1


class OpenCodeError(Exception):
    """Anything about the OpenCode backend; the message is one line saying what to do."""


class OpenCodeNotFound(OpenCodeError):
    """No ``opencode`` executable."""


class OpenCodeTooOld(OpenCodeError):
    """The server's version is older than :data:`MIN_VERSION`."""


class OpenCodeUnavailable(OpenCodeError):
    """The server did not answer, or refused our password."""


class OpenCodeServerDied(OpenCodeError):
    """The ``opencode serve`` this process started exited before it was stopped."""


class OpenCodeServer:
    """One OpenCode server for a mission; a context manager (``start`` on enter, ``stop`` on exit).

    ``url=None`` starts ``opencode serve`` in ``workspace``; a URL attaches to a running server
    (its password from ``password``, the URL's ``user:password@`` part, or the environment's
    ``OPENCODE_SERVER_PASSWORD``).  ``env`` is added to this process's environment for the
    server (tests point ``HOME`` and ``XDG_*`` at tmp dirs).  Thread-safe after ``start``.
    """

    def __init__(
        self,
        workspace: Path,
        *,
        url: str | None = None,
        password: str | None = None,
        executable: str = "opencode",
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        self.workspace = Path(workspace).resolve()
        self.executable = executable
        self.start_timeout_s = start_timeout_s
        self.version = ""
        self._given_url = url
        self._password = password
        self._env = dict(env or {})
        self._log_path = log_path
        self._url = ""
        self._auth: tuple[str, str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # --- lifetime ----------------------------------------------------------------------

    def __enter__(self) -> OpenCodeServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> OpenCodeServer:
        """Start (or attach), wait until it answers, check its version; raises OpenCodeError."""
        try:
            if self._given_url is None:
                self._spawn()
            else:
                self._attach(self._given_url)
            self.version = self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        _check_version(self.version, self.url)
        return self

    def stop(self) -> None:
        """Stop the server this process started (its whole process group); idempotent."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            _end_group(process)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def url(self) -> str:
        """The server's base URL, without credentials."""
        return self._url

    @property
    def started_here(self) -> bool:
        """Whether this process started the server (and stops it)."""
        return self._process is not None

    @property
    def log_path(self) -> Path | None:
        """Where the started server's output goes (None when attached)."""
        return self._log_path

    # --- talking to it -----------------------------------------------------------------

    def client(self, *, timeout: float | httpx.Timeout) -> httpx.Client:
        """A new client for this server, with its base URL and password; close it after use.

        Each session has its own (one client shared by threads leaked connections under load).
        """
        return httpx.Client(base_url=self.url, auth=self._auth, timeout=timeout, trust_env=False)

    def alive(self) -> bool:
        """False once the server this process started has exited (attached: always True)."""
        return self._process is None or self._process.poll() is None

    def check(self) -> None:
        """Raise :class:`OpenCodeServerDied` if the server this process started has exited."""
        if not self.alive():
            raise OpenCodeServerDied(self._death())

    def watch(self, on_exit: Callable[[str], None]) -> None:
        """Call ``on_exit(message)`` (on a daemon thread) if the server dies before ``stop``.

        The runner uses it to stop the mission cleanly (and resumably) at once, instead of
        waiting for each session to notice.
        """
        process = self._process
        if process is None:
            return

        def wait() -> None:
            process.wait()
            if not self._stopping.is_set():
                on_exit(self._death())

        threading.Thread(target=wait, name="opencode-serve-watch", daemon=True).start()

    # --- starting ----------------------------------------------------------------------

    def _spawn(self) -> None:
        path = shutil.which(self.executable)
        if path is None:
            raise OpenCodeNotFound(
                f"`{self.executable}` was not found on PATH: install OpenCode "
                f"(`npm install -g opencode-ai@{TESTED_VERSION}`) or attach with --opencode-url"
            )
        port = free_port()
        password = self._password or secrets.token_urlsafe(24)
        self._auth = (USERNAME, password)
        self._url = f"http://127.0.0.1:{port}"
        command = [path, "serve", "--hostname", "127.0.0.1", "--port", str(port)]
        self._process = _popen(command, self.workspace, self._environment(password), self._log())

    def _environment(self, password: str) -> dict[str, str]:
        env = {**os.environ, "OPENCODE_DISABLE_AUTOUPDATE": "1", **self._env}
        env["OPENCODE_SERVER_PASSWORD"] = password
        env["OPENCODE_SERVER_USERNAME"] = USERNAME
        return env

    def _log(self) -> Path:
        if self._log_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ocactors-opencode-")
            self._log_path = Path(self._tmp.name) / "serve.log"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        return self._log_path

    def _attach(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OpenCodeUnavailable(f"--opencode-url {url!r} is not an http(s) URL")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self._url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        password = parts.password or self._password or os.environ.get("OPENCODE_SERVER_PASSWORD")
        user = parts.username or os.environ.get("OPENCODE_SERVER_USERNAME") or USERNAME
        self._auth = (user, password) if password else None

    def _wait_healthy(self) -> str:
        """Probe ``/global/health`` until it answers; its version."""
        deadline = time.monotonic() + self.start_timeout_s
        with self.client(timeout=PROBE_TIMEOUT_S) as probe:
            while True:
                self.check()
                version = _probe(probe, self.url)
                if version is not None:
                    return version
                if time.monotonic() >= deadline:
                    raise OpenCodeUnavailable(self._not_answering())
                self._stopping.wait(0.1)

    def _not_answering(self) -> str:
        if self.started_here:
            return (
                f"opencode serve did not answer at {self.url} within {self.start_timeout_s:g}s; "
                f"its log: {self._log_path}"
            )
        return f"no OpenCode server answers at {self.url}: start `opencode serve` or fix the URL"

    def _death(self) -> str:
        code = self._process.poll() if self._process is not None else None
        return (
            f"opencode serve ({self.url}) exited with code {code}: "
            f"{_tail(self._log_path)}; `ocactors resume` starts a new one"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.18.33"`` -> ``(1, 18, 33)``; anything unreadable -> ``()``."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    return tuple(int(part) for part in match.groups()) if match else ()


def _check_version(version: str, url: str) -> None:
    parsed = parse_version(version)
    if parsed and parsed < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        raise OpenCodeTooOld(
            f"OpenCode {version} at {url} is too old: ocactors needs {wanted} or newer "
            f"(tested with {TESTED_VERSION}); `npm install -g opencode-ai@{TESTED_VERSION}`"
        )


def _probe(client: httpx.Client, url: str) -> str | None:
    """The version if the server answered, None if not yet; raises if it refused us."""
    try:
        response = client.get("/global/health")
    except httpx.TransportError:
        return None
    if response.status_code == 401:
        raise OpenCodeUnavailable(
            f"the OpenCode server at {url} refused the password: set OPENCODE_SERVER_PASSWORD "
            "(and OPENCODE_SERVER_USERNAME) to its credentials"
        )
    if response.status_code == 404:
        raise OpenCodeTooOld(
            f"the server at {url} has no /global/health: it is not OpenCode, or one older than "
            f"{'.'.join(map(str, MIN_VERSION))}"
        )
    if response.status_code != 200:
        return None
    try:
        return str(response.json().get("version", ""))
    except ValueError:
        return None


def _popen(
    command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a child that gets SIGTERM when the thread that started it dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return arm


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after a grace period; bounded."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # what the server itself left running
        return


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return "no log"
    text = path.read_text("utf-8", "replace").strip()
    lines = [line for line in text.splitlines() if line.strip()][-3:]
    return " | ".join(lines)[-LOG_TAIL:] or "empty log"
