"""Commands run in an operating-system sandbox: the machine, the log and the keys stay out of reach.

:func:`prepare` turns a shell command into what the runner starts (``argv``, ``env``); the
sandbox is chosen once per mission by :func:`require_backend` and recorded.  Inside it:

- everything outside the workspace is read-only, and key stores (``~/.ssh``, ``~/.aws``,
  ``.opencode/ocactors.toml`` ...) are hidden; a private ``HOME`` and temp dir per command;
- the workspace is writable for writers (``writable=True``) except every ``.git`` and
  ``.opencode`` at any depth and the ``protect``-ed files; for ``writable=False`` nothing in it;
- the command cannot see or touch ocactors: ``bwrap`` gives it its own PID namespace (the parent
  is not even visible, and everything dies with the namespace); Landlock forbids ptracing or
  signalling anything outside its domain, and a reaper kills whatever it leaves running;
- no network unless ``network=True`` (``bwrap``: a network namespace with only its own loopback;
  Landlock ABI >= 4: TCP connect and bind refused);
- an environment built from an allow-list, never a credential.

Backends: ``bwrap`` (bubblewrap) where it is installed and works; otherwise ``landlock`` (Linux
>= 5.13, unprivileged, no binary) through the launcher ``_sandbox_exec.py``.  Each is tried once
per process by running ``true`` in it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ocactors.tools import landlock
from ocactors.tools.listing import skipped_dir

BACKENDS = ("bwrap", "landlock")
PREFERENCES = ("auto", *BACKENDS, "off")
PRIVATE_NAMES = frozenset({".git", ".opencode"})
HOME_SECRETS = (
    ".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".git-credentials",
    ".pypirc", ".npmrc", ".yarnrc", ".password-store", ".config/gcloud", ".config/gh",
    ".config/hub", ".config/ocactors", ".cargo/credentials", ".cargo/credentials.toml",
    ".local/share/keyrings",
)  # fmt: skip
HOST_SOCKETS = ("/run/user", "/run/docker.sock", "/var/run/docker.sock", "/run/dbus")
ENV_ALLOW = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TERM", "TZ", "USER", "LOGNAME", "COLUMNS", "LINES", "CI"}
    | {"NO_COLOR", "FORCE_COLOR", "CLICOLOR", "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "PYTHONPATH"}
    | {"CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONHASHSEED"}
    | {"PYTHONDONTWRITEBYTECODE", "PYENV_ROOT", "PYENV_VERSION", "CARGO_HOME", "RUSTUP_HOME"}
    | {"RUSTUP_TOOLCHAIN", "GOPATH", "GOROOT", "GOFLAGS", "GOMODCACHE", "JAVA_HOME", "NVM_DIR"}
    | {"NVM_BIN", "NODE_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"}
)
ENV_PREFIXES = ("LC_",)
NETWORK_ENV = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"})
TOOL_HOMES = {"PYENV_ROOT": ".pyenv", "CARGO_HOME": ".cargo", "RUSTUP_HOME": ".rustup"} | {
    "NVM_DIR": ".nvm",
    "GOPATH": "go",
}
SECRET_MARKS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
DEV_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
BWRAP_HOME = "/tmp/.ocactors-home"
LAUNCHER = Path(__file__).with_name("_sandbox_exec.py")
PROBE_TIMEOUT_S = 20.0
UNAVAILABLE = (
    "no command sandbox works on this machine: install bubblewrap (apt-get install bubblewrap, "
    "dnf install bubblewrap) or use Linux >= 5.13 with Landlock enabled; or run with "
    '--sandbox off ([tools] sandbox = "off") to run commands unconfined'
)


class SandboxUnavailable(Exception):
    """The sandbox asked for cannot run here; the message says what to install."""


@dataclass(frozen=True)
class Prepared:
    """What the runner starts: ``Popen(argv, env=env, cwd=<workspace>, pass_fds=pass_fds)``.

    Use it as a context manager (or call :meth:`cleanup` after the command): the Landlock
    backend's private ``HOME``/temp dir is removed then.
    """

    argv: list[str]
    env: dict[str, str]
    backend: str | None
    private: Path | None = None
    pass_fds: tuple[int, ...] = ()

    def cleanup(self) -> None:
        """Remove the command's private dir (Landlock); bwrap's lived in its own tmpfs."""
        if self.private is not None:
            shutil.rmtree(self.private, ignore_errors=True)

    def __enter__(self) -> Prepared:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


# --- choosing a backend -------------------------------------------------------------------


def detect_backend(preference: str = "auto") -> str | None:
    """The backend to use for ``preference`` ("auto", "bwrap", "landlock"), or None if none works.

    "off" gives None.  Each backend is tried once per process (running ``true`` in it), so a
    kernel without user namespaces or Landlock is found out before any model is called.
    """
    _check_preference(preference)
    if preference == "off":
        return None
    candidates = BACKENDS if preference == "auto" else (preference,)
    return next((backend for backend in candidates if backend_works(backend)), None)


def require_backend(preference: str) -> str | None:
    """:func:`detect_backend`, or SandboxUnavailable saying what to install; None for "off"."""
    backend = detect_backend(preference)
    if backend is None and preference != "off":
        if preference == "auto":
            raise SandboxUnavailable(UNAVAILABLE)
        raise SandboxUnavailable(f"sandbox {preference!r} does not work here; {UNAVAILABLE}")
    return backend


def banner(backend: str | None, network: bool) -> str:
    """One line for the start banner and the log."""
    if backend is None:
        return "commands: NOT sandboxed (--sandbox off): they can change anything you can"
    return f"commands: sandboxed ({backend}), network {'allowed' if network else 'off'}"


def _check_preference(preference: str) -> None:
    if preference not in PREFERENCES:
        raise ValueError(f"sandbox must be one of {', '.join(PREFERENCES)}, not {preference!r}")


@functools.cache
def backend_works(backend: str) -> bool:
    """Whether ``true`` runs in ``backend`` here (cached: asked once per process)."""
    if backend == "bwrap" and shutil.which("bwrap") is None:
        return False
    if backend == "landlock" and landlock.abi_version() < 1:
        return False
    with tempfile.TemporaryDirectory(prefix="ocactors-probe-") as folder:
        root = Path(folder).resolve()
        with prepare("true", workspace=root, writable=True, backend=backend) as prepared:
            try:
                done = subprocess.run(
                    prepared.argv, env=prepared.env, cwd=root, capture_output=True,
                    timeout=PROBE_TIMEOUT_S, check=False,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired):
                return False
    return done.returncode == 0


# --- preparing a command ------------------------------------------------------------------


def prepare(
    command: str,
    *,
    workspace: Path,
    writable: bool,
    backend: str | None,
    network: bool = False,
    env: Mapping[str, str] | None = None,
    protect: Iterable[str] = (),
) -> Prepared:
    """How to start ``command`` (a shell command line) confined to ``workspace``, run in it.

    ``writable``: the workspace is writable (minus ``.git``/``.opencode`` and ``protect``, paths
    relative to it); ``backend``: "bwrap", "landlock" or None (no sandbox, the environment is
    still filtered); ``env``: the environment to filter (default ``os.environ``).
    """
    root = Path(workspace).resolve()
    if backend not in (*BACKENDS, None):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} or None, not {backend!r}")
    shell = ["/bin/bash" if Path("/bin/bash").exists() else "/bin/sh", "-c", command]
    base = os.environ if env is None else env
    if backend is None:
        return Prepared(shell, allowed_env(base, network=network, home=None), None)
    private = None if backend == "bwrap" else _private_dir()
    environment = _sandbox_env(base, private, writable, network)
    private_dirs, key_files = find_private(root)
    fixed = sorted({*private_dirs, *_inside(root, protect)})
    hidden = [*_host_hidden(base), *key_files]
    if private is None:
        argv = _bwrap(shell, root, writable, network, fixed, hidden, environment)
    else:
        argv = _landlock_argv(shell, root, writable, network, fixed, hidden, private)
    return Prepared(argv, environment, backend, private)


def _sandbox_env(
    base: Mapping[str, str], private: Path | None, writable: bool, network: bool
) -> dict[str, str]:
    """bwrap's HOME and temp dir live in its own /tmp; Landlock's in ``private`` on the host."""
    home, tmp = (BWRAP_HOME, "/tmp") if private is None else (f"{private}/home", f"{private}/tmp")
    env = allowed_env(base, network=network, home=home, tmp=tmp)
    if not writable or private is not None:  # the workspace root takes no new folder
        env["PYTEST_ADDOPTS"] = f"-o cache_dir={tmp}/.pytest_cache"
    return env


def _private_dir() -> Path:
    """A fresh folder on the host holding the command's HOME and temp dir (Landlock)."""
    private = Path(tempfile.mkdtemp(prefix="ocactors-cmd-"))
    (private / "home").mkdir()
    (private / "tmp").mkdir()
    return private


def allowed_env(
    base: Mapping[str, str], *, network: bool, home: str | None, tmp: str | None = None
) -> dict[str, str]:
    """The allow-listed variables of ``base``; HOME/TMPDIR pointing at the private dirs.

    Never a credential: a name that looks like one (``*KEY*``, ``*TOKEN*``, ``*SECRET*`` ...) is
    dropped even if allowed.  Tool homes under the real ``HOME`` (pyenv, cargo, rustup, nvm, go)
    are named explicitly, so shims keep working with the private ``HOME``.
    """
    allowed = ENV_ALLOW | (NETWORK_ENV if network else frozenset())
    env = {
        name: value
        for name, value in base.items()
        if (name.upper() in allowed or name.startswith(ENV_PREFIXES)) and not _secret_name(name)
    }
    if home is not None:
        env.update(_tool_homes(base, env))
        env["HOME"] = home
    if tmp is not None:
        env.update(TMPDIR=tmp, TMP=tmp, TEMP=tmp)
    return env


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return any(mark in upper for mark in SECRET_MARKS)


def _tool_homes(base: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    real_home = base.get("HOME") or str(Path.home())
    found = {name: str(Path(real_home) / rel) for name, rel in TOOL_HOMES.items()}
    return {name: path for name, path in found.items() if name not in env and Path(path).is_dir()}


def find_private(root: Path) -> tuple[list[str], list[str]]:
    """Every ``.git``/``.opencode`` under ``root`` (any depth), and the key files to hide.

    Walks folders only, skipping caches and virtualenvs, never following symlinks: cheap
    enough to do before each command (a new nested repository is found the next time).
    """
    found: list[str] = []
    todo = [str(root)]
    while todo:
        folder = todo.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.name in PRIVATE_NAMES:
                    found.append(entry.path)
                elif not skipped_dir(entry.name) and entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
    hidden = [str(Path(p) / "ocactors.toml") for p in found if p.endswith(".opencode")]
    return sorted(found), [p for p in hidden if os.path.lexists(p)]


def _inside(root: Path, paths: Iterable[str]) -> list[str]:
    """The existing ``paths`` (relative to ``root``) that really lie inside it."""
    out = []
    for rel in paths:
        path = (root / rel).resolve()
        if path != root and root in path.parents and path.exists():
            out.append(str(path))
    return out


def _host_hidden(env: Mapping[str, str]) -> list[str]:
    """Key stores under the real HOME and host service sockets, where they exist."""
    home = Path(env.get("HOME") or Path.home())
    paths = [home / rel for rel in HOME_SECRETS] + [Path(p) for p in HOST_SOCKETS]
    return [str(p) for p in paths if os.path.lexists(p) and not p.is_symlink()]


# --- bubblewrap ---------------------------------------------------------------------------


def _bwrap(
    shell: list[str],
    root: Path,
    writable: bool,
    network: bool,
    fixed: list[str],
    hidden: list[str],
    env: Mapping[str, str],
) -> list[str]:
    """bwrap's argv: read-only machine, private /tmp, the workspace, then what stays fixed."""
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]
    argv += [] if network else ["--unshare-net"]
    argv += ["--cap-drop", "ALL"] if os.geteuid() == 0 else []
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/dev/shm", "--proc", "/proc"]
    argv += ["--tmpfs", "/tmp", *_rebind_under_tmp(env), "--dir", BWRAP_HOME]
    argv += ["--bind" if writable else "--ro-bind", str(root), str(root)]
    for path in fixed:
        argv += ["--ro-bind", path, path]
    for path in hidden:
        argv += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    return [*argv, "--chdir", str(root), "--", *shell]


def _rebind_under_tmp(env: Mapping[str, str]) -> list[str]:
    """Interpreters and virtualenvs living under /tmp stay visible (read-only) over its tmpfs."""
    roots = {sys.prefix, sys.base_prefix, env.get("VIRTUAL_ENV", "")}
    roots |= set(env.get("PATH", "").split(os.pathsep))
    keep = sorted({top for path in roots if path and (top := _top_under_tmp(path))})
    return [arg for path in keep for arg in ("--ro-bind", path, path)]


def _top_under_tmp(path: str) -> str | None:
    """``/tmp/<first>`` for a path under /tmp, else None."""
    parts = Path(os.path.realpath(path)).parts
    if len(parts) > 2 and parts[1] == "tmp" and os.path.isdir(os.path.join("/tmp", parts[2])):
        return os.path.join("/tmp", parts[2])
    return None


# --- Landlock -----------------------------------------------------------------------------


def _landlock_argv(
    shell: list[str],
    root: Path,
    writable: bool,
    network: bool,
    fixed: list[str],
    hidden: list[str],
    private: Path,
) -> list[str]:
    """The launcher's argv: the handled rights, then the rules, then the command."""
    abi = landlock.abi_version()
    rules = _landlock_rules(root, writable, private, fixed, hidden)
    net = 0 if network or abi < 4 else landlock.NET_BIND_TCP | landlock.NET_CONNECT_TCP
    scoped = landlock.SCOPE_ABSTRACT_UNIX_SOCKET | landlock.SCOPE_SIGNAL if abi >= 6 else 0
    head = [_base_python(), "-I", "-S", str(LAUNCHER), str(os.getpid())]
    head += [str(landlock.supported(abi)), str(net), str(scoped), str(len(rules))]
    return [*head, *(f"{rights}:{path}" for rights, path in rules), *shell]


def _landlock_rules(
    root: Path, writable: bool, private: Path, fixed: list[str], hidden: list[str]
) -> list[tuple[int, str]]:
    """Read everything but the hidden; write the private dir, devices and (maybe) the workspace."""
    rules = landlock.grant_except("/", landlock.READ, set(hidden))
    rules.append((landlock.WRITE, str(private)))
    rules += [(landlock.WRITE_FILE | landlock.TRUNCATE, p) for p in DEV_FILES]
    rules += [(landlock.WRITE_FILE | landlock.TRUNCATE, "/dev/pts"), (landlock.WRITE, "/dev/shm")]
    if writable:
        rules += landlock.grant_except(str(root), landlock.WRITE, set(fixed))
    return rules


def _base_python() -> str:
    """The real interpreter behind a virtualenv: its pyvenv.cfg may lie in the workspace."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
