"""Commands in the sandbox, as an attacker would write them, against every backend this machine
has (bubblewrap and Landlock; a backend is skipped only when the machine lacks it, and the skip
says why).  Real processes, a real git repository, a TCP server on loopback."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocactors.tools import landlock, sandbox
from ocactors.tools.lease_guard import LeaseGuard, LeaseReport

KEY = "sk-sandbox-test-key-0123456789"
WHY_SKIPPED = {
    "bwrap": "bubblewrap is not installed or cannot create namespaces on this machine",
    "landlock": "this kernel has no Landlock (Linux >= 5.13 with landlock in lsm=)",
}


@pytest.fixture(params=sandbox.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if not sandbox.backend_works(name):
        pytest.skip(f"{name}: {WHY_SKIPPED[name]}")
    return name


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with two commits, a mission log and a config file holding a key."""
    monkeypatch.setenv("OCACTORS_API_KEY", KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", KEY)
    ws = tmp_path / "ws"
    (ws / "calc").mkdir(parents=True)
    (ws / "calc" / "add.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "calc" / "sub.py").write_text("def sub(a, b):\n    return a - b\n")
    (ws / "README.md").write_text("# calc, first version\n")
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "one")
    (ws / "README.md").write_text("# calc\n")
    git(ws, "commit", "-qam", "two")
    log = ws / ".opencode" / "missions" / "x" / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"seq": 1, "type": "mission.started"}\n')
    (ws / ".opencode" / "ocactors.toml").write_text(f'[models]\napi_key = "{KEY}"\n')
    return ws


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "HOME": str(cwd)}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout


def run(
    root: Path, command: str, backend: str | None, *, writable: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    """The command as the runner starts it: prepared, in its own session, bounded in time."""
    with sandbox.prepare(
        command,
        workspace=root,
        writable=writable,
        backend=backend,
        **kw,  # type: ignore[arg-type]
    ) as prepared:
        return subprocess.run(
            prepared.argv, env=prepared.env, cwd=root, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True, timeout=60, check=False,
        )  # fmt: skip


def guarded(
    root: Path, command: str, backend: str, lease: list[str], *, writable: bool = True
) -> tuple[subprocess.CompletedProcess[str], LeaseReport]:
    """The command between the lease guard's before() and after(), as the runner will do it."""
    guard = LeaseGuard(root, root / ".opencode" / "shadow")
    snap = guard.before(lease)
    done = run(root, command, backend, writable=writable, protect=snap.protect)
    return done, guard.after(snap)


def tree(root: Path) -> dict[str, bytes]:
    """Every file of the workspace, .git and .opencode included, with its bytes."""
    skip = root / ".opencode" / "shadow"
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and skip not in path.parents
    }


# --- the escapes of issue 11 ----------------------------------------------------------------


def test_a_worker_overwriting_files_outside_its_lease_is_undone(root: Path, backend: str) -> None:
    before = tree(root)
    command = (
        "echo 'def add(a, b): return b + a' > calc/add.py; echo hacked > calc/sub.py; "
        "echo hacked > README.md; rm calc/sub.py; echo new > calc/extra.py"
    )
    done, report = guarded(root, command, backend, ["calc/add.py"])
    assert done.returncode == 0, done.stderr
    after = tree(root)
    assert after.pop("calc/add.py") == b"def add(a, b): return b + a\n"
    before.pop("calc/add.py")
    assert after == before
    assert report.paths == ("README.md", "calc/extra.py", "calc/sub.py")
    assert "put back" in report.message


def test_writing_outside_the_workspace_reaches_nothing(
    root: Path, backend: str, tmp_path: Path
) -> None:
    tag = secrets.token_hex(4)
    outside = tmp_path / "outside.txt"
    home_file = Path.home() / f"ocactors-sandbox-test-{tag}"
    tmp_file = Path(f"/tmp/ocactors-sandbox-test-{tag}")
    etc_file = Path(f"/etc/ocactors-sandbox-test-{tag}")
    py = sys.executable
    command = (
        f"{py} -c \"open('{tmp_file}', 'w').write('x')\"; sh -c 'echo x > {outside}'; "
        f"echo x > {home_file}; echo x > {etc_file}; echo x >> ~/.bashrc; true"
    )
    try:
        assert run(root, command, backend).returncode == 0
        for path in (outside, home_file, tmp_file, etc_file):
            assert not path.exists(), f"{path} was written by a sandboxed command"
    finally:
        for path in (home_file, tmp_file, etc_file):
            path.unlink(missing_ok=True)


def test_the_log_git_and_config_cannot_be_changed_at_any_depth(root: Path, backend: str) -> None:
    (root / "vendor" / "lib").mkdir(parents=True)
    (root / "vendor" / "lib" / "x.py").write_text("x = 1\n")
    git(root / "vendor" / "lib", "init", "-q")
    before = tree(root)
    command = (
        "ls > .opencode/missions/x/events.jsonl; : > .opencode/missions/x/events.jsonl; "
        "rm -rf .opencode .git; echo ref > .git/HEAD; mv .git gone; "
        "echo evil > .git/hooks/pre-commit; echo evil > vendor/lib/.git/hooks/pre-commit; "
        "rm -rf vendor/lib/.git; echo x > .opencode/new; true"
    )
    done = run(root, command, backend)
    assert done.returncode == 0
    assert tree(root) == before


PARENT = """
import os, subprocess, sys
from pathlib import Path
from ocactors.tools import sandbox
root, backend = Path(sys.argv[1]), sys.argv[2] if sys.argv[2] != "off" else None
me = os.getpid()
command = (
    f"env; cat /proc/{me}/environ; cat /proc/$PPID/environ; cat /proc/1/environ; "
    f"cat /proc/{me}/environ > calc/leak.txt; cat .opencode/ocactors.toml; grep -r sk- .opencode"
)
with sandbox.prepare(command, workspace=root, writable=True, backend=backend) as prepared:
    done = subprocess.run(prepared.argv, env=prepared.env, cwd=root, capture_output=True)
sys.stdout.buffer.write(done.stdout + done.stderr)
"""


def leaked(root: Path, backend: str) -> str:
    """What a command could read of a parent started with the key in its environment.

    The parent must be a fresh process: /proc/<pid>/environ shows the environment a process
    was started with, not what it set later (so this test process itself would prove nothing).
    """
    env = {**os.environ, "OCACTORS_API_KEY": KEY, "MY_SERVICE_TOKEN": KEY}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, str(root), backend], env=env, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    leak = root / "calc" / "leak.txt"
    return done.stdout + (leak.read_text(errors="replace") if leak.exists() else "")


def test_the_key_is_out_of_reach(root: Path, backend: str) -> None:
    """Not in its environment, not in the parent's /proc/<pid>/environ, not in the config."""
    assert KEY in leaked(root, "off")  # what the sandbox is for: unconfined, the key leaks
    output = leaked(root, backend)
    assert KEY not in output
    assert "OCACTORS_API_KEY" not in output and "MY_SERVICE_TOKEN" not in output


def marked(marker: str) -> list[int]:
    """Processes whose command line holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline.split(b"\0") and int(name) != os.getpid():
                found.append(int(name))
    return found


def gone(marker: str, within_s: float = 10.0) -> bool:
    """Whether no process carries ``marker`` (killed processes take a moment to be reaped)."""
    return _poll(lambda: not marked(marker), within_s)


def _poll(condition: Callable[[], bool], within_s: float) -> bool:
    """``condition()`` checked until true or ``within_s`` is up: another process's state."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def unique_seconds() -> str:
    """A sleep duration no other process has: its command line marks it."""
    return f"{secrets.randbelow(900) + 100}.{secrets.randbelow(10**6):06d}"


def test_nothing_it_starts_outlives_it(root: Path, backend: str) -> None:
    a, b = unique_seconds(), unique_seconds()
    command = (
        f"setsid nohup sleep {a} > /dev/null 2>&1 & "
        f"(setsid sh -c 'sleep {b}' > /dev/null 2>&1 &); echo started"
    )
    done = run(root, command, backend)
    assert done.stdout.strip() == "started"
    assert gone(a) and gone(b)


def test_killing_its_group_on_a_timeout_kills_what_escaped_the_group(
    root: Path, backend: str
) -> None:
    marker = unique_seconds()
    command = f"setsid nohup sleep {marker} > /dev/null 2>&1 & echo started; sleep 60"
    with sandbox.prepare(command, workspace=root, writable=True, backend=backend) as prepared:
        proc = subprocess.Popen(
            prepared.argv, env=prepared.env, cwd=root, stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        assert _poll(lambda: bool(marked(marker)), 10.0)
        os.killpg(proc.pid, signal.SIGKILL)  # what the runner does on a timeout
        proc.wait(timeout=10)
        proc.stdout.close()
    assert gone(marker)


@pytest.mark.parametrize("mode", ["read-only", "undone"])
def test_a_reviewer_changes_nothing(root: Path, backend: str, mode: str) -> None:
    before = tree(root)
    command = (
        "git checkout -q HEAD~1; git reset -q --hard HEAD~1; git show HEAD~1:README.md > README.md;"
        " rm -f calc/add.py; echo x > new.txt; echo x > calc/new.py; true"
    )
    done, report = guarded(root, command, backend, [], writable=mode == "undone")
    assert done.returncode == 0
    assert tree(root) == before
    assert git(root, "log", "--format=%s") == "two\none\n"
    assert not (report.violated and mode == "read-only")


def test_a_hard_link_to_an_outside_file_cannot_be_written_through(
    root: Path, backend: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    run(root, f"ln {outside} calc/link.py; echo hacked > calc/link.py; true", backend)
    assert outside.read_text() == "outside\n"


# --- network ------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server on 127.0.0.1 in this process; the event is set when someone connects."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    connected, stop = threading.Event(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connected.set()
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], connected
    stop.set()
    thread.join(timeout=5)
    listener.close()


def connect_command(port: int) -> str:
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('ok')"
    return f'{sys.executable} -c "{code}"'


def test_the_network_is_off_by_default(
    root: Path, backend: str, server: tuple[int, threading.Event]
) -> None:
    if backend == "landlock" and landlock.abi_version() < 4:
        pytest.skip("landlock: this kernel's Landlock (ABI < 4) cannot refuse TCP")
    port, connected = server
    done = run(root, connect_command(port), backend)
    assert done.returncode != 0 and "ok" not in done.stdout
    assert not connected.is_set()


def test_the_network_can_be_allowed(
    root: Path, backend: str, server: tuple[int, threading.Event]
) -> None:
    port, connected = server
    done = run(root, connect_command(port), backend, network=True)
    assert done.stdout.strip() == "ok", done.stderr
    assert connected.wait(timeout=5)


# --- what still works ---------------------------------------------------------------------


def test_a_worker_builds_and_tests_as_usual(root: Path, backend: str) -> None:
    (root / "tests").mkdir()
    (root / "tests" / "test_add.py").write_text(
        "from calc.add import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\npythonpath = ["."]\n'
    )
    done = run(root, f"{sys.executable} -m pytest -q -p no:randomly tests", backend)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_pytest_passes_in_a_read_only_workspace(root: Path, backend: str) -> None:
    (root / "test_x.py").write_text("def test_x():\n    assert True\n")
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n')
    done = run(root, f"{sys.executable} -m pytest -q test_x.py", backend, writable=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_command_has_a_private_home_and_temp_dir(root: Path, backend: str) -> None:
    first = run(root, 'echo one > "$HOME/a" && echo two > "$TMPDIR/b" && cat "$HOME/a"', backend)
    assert first.returncode == 0 and first.stdout == "one\n", first.stderr
    second = run(root, 'ls -A "$HOME" "$TMPDIR"', backend)
    assert "a" not in second.stdout.split() and "b" not in second.stdout.split()


def test_exit_codes_and_output_pass_through(root: Path, backend: str) -> None:
    done = run(root, "echo out; echo err >&2; exit 3", backend)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert run(root, "kill -9 $$", backend).returncode in (137, -9)
    assert "Broken pipe" not in run(root, "yes | head -n 1", backend).stderr


def test_protected_files_stay_as_they_are(root: Path, backend: str) -> None:
    done = run(root, "echo x > calc/sub.py; echo y > calc/add.py", backend, protect=["calc/sub.py"])
    assert "Read-only" in done.stderr or "Permission denied" in done.stderr
    assert (root / "calc" / "sub.py").read_text() == "def sub(a, b):\n    return a - b\n"
    assert (root / "calc" / "add.py").read_text() == "y\n"


# --- choosing, and no sandbox -------------------------------------------------------------


def test_sandbox_off_still_filters_the_environment(root: Path) -> None:
    done = run(root, "env", None)
    assert done.returncode == 0 and "PATH=" in done.stdout
    assert KEY not in done.stdout


def test_the_environment_comes_from_an_allow_list() -> None:
    base = {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "VIRTUAL_ENV": "/v", "TERM": "xterm",
        "OPENAI_API_KEY": KEY, "GITHUB_TOKEN": KEY, "LC_SECRET": KEY, "AWS_PROFILE": "x",
        "HTTPS_PROXY": "http://proxy:3128", "HOME": "/nonexistent",
    }  # fmt: skip
    env = sandbox.allowed_env(base, network=False, home="/h", tmp="/t")
    assert env == {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "VIRTUAL_ENV": "/v",
        "TERM": "xterm", "HOME": "/h", "TMPDIR": "/t", "TMP": "/t", "TEMP": "/t",
    }  # fmt: skip
    assert sandbox.allowed_env(base, network=True, home=None)["HTTPS_PROXY"] == base["HTTPS_PROXY"]


def test_choosing_a_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert sandbox.detect_backend("off") is None and sandbox.require_backend("off") is None
    with pytest.raises(ValueError, match="sandbox must be one of auto, bwrap, landlock, off"):
        sandbox.detect_backend("docker")
    found = sandbox.detect_backend("auto")
    assert found is None or sandbox.backend_works(found)
    sandbox.backend_works.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    try:
        assert sandbox.detect_backend("bwrap") is None
        with pytest.raises(sandbox.SandboxUnavailable, match="install bubblewrap"):
            sandbox.require_backend("bwrap")
    finally:
        sandbox.backend_works.cache_clear()
    assert "NOT sandboxed" in sandbox.banner(None, False)
    assert sandbox.banner("bwrap", True) == "commands: sandboxed (bwrap), network allowed"


def test_private_folders_are_found_at_any_depth(root: Path) -> None:
    (root / "a" / "b" / ".git").mkdir(parents=True)
    (root / "node_modules" / "x" / ".git").mkdir(parents=True)  # not walked: a cache
    (root / "wt").mkdir()
    (root / "wt" / ".git").write_text("gitdir: /elsewhere\n")  # a worktree's .git file
    found, hidden = sandbox.find_private(root)
    rel = sorted(Path(p).relative_to(root).as_posix() for p in found)
    assert rel == [".git", ".opencode", "a/b/.git", "wt/.git"]
    assert hidden == [str(root / ".opencode" / "ocactors.toml")]


def test_a_file_another_running_task_holds_is_read_only(root: Path, backend: str) -> None:
    """Parallel workers: the guard leaves B's file to B, so the sandbox must keep A off it."""
    guard = LeaseGuard(root, root / ".opencode" / "shadow")
    guard.hold("worker:B", ["calc/sub.py"])
    snap = guard.before(["calc/add.py"], owner="worker:A")
    done = run(root, "echo A > calc/add.py; echo A > calc/sub.py", backend, protect=snap.protect)
    report = guard.after(snap)
    assert done.returncode != 0 and not report.violated
    assert (root / "calc" / "add.py").read_text() == "A\n"
    assert (root / "calc" / "sub.py").read_text() == "def sub(a, b):\n    return a - b\n"
