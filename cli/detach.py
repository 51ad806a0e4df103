"""``ocactors task --detach``: the mission in its own background process, its id at once.

The parent does not choose the mission id: it starts the child, which runs ``task`` exactly as
in the foreground (same checks, same claim, same :func:`open_new_mission`), and learns the id
the way anyone refused by a busy workspace does: the claim file
``.opencode/missions/.lock`` names the mission and the pid holding it (:mod:`ocactors.claim`).
So no second path creates missions, and bad input (an empty goal, no model, a workspace where
a mission already runs) is the child's own one-line error, which the parent prints with the
child's exit code (2) before returning.

The child gets its own session (``start_new_session``: no controlling terminal, no SIGHUP when
the terminal or OpenCode that started it goes away), stdin from ``/dev/null`` and its arguments
as JSON on an inherited pipe (never through a shell or argv).  Its stdout and stderr go to a
file that the parent renames to ``<mission>/output.log`` once the id is known; the child keeps
writing to the same inode.

Run as ``python -m ocactors.detach FD`` the module is that child.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ocactors.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, workspace_of
from ocactors.events import EventLogError, MissionPaths, missions_dir
from ocactors.opencode_commands import goal_from_block

START_WAIT_S = 60.0  # resolving the models probes Ollama for 0.5 s at most; imports ~1 s
POLL_S = 0.02
OUTPUT = "output.log"
LOCK = ".lock"


def run_detached(args: argparse.Namespace) -> int:
    """Start the mission in the background; print its id and log path; exit at once."""
    workspace = workspace_of(args)
    goal = goal_from_block(_read(sys.stdin)) if args.goal == "-" else args.goal
    if not goal.strip():
        raise UsageError("the goal is empty; say what the mission should achieve")
    folder = missions_dir(workspace)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot use {folder}: {error.strerror}") from None
    spec = _child_args(args, workspace, goal)
    log = folder / f".detached-{secrets.token_hex(4)}.log"
    earlier = {p.name for p in folder.iterdir()}  # a reused pid must not name an old mission
    child = _spawn(spec, workspace, log)
    return _await_mission(child, folder, log, earlier)


def _read(stream: IO[str]) -> str:
    if stream is None or stream.isatty():
        raise UsageError("`-` reads the goal from stdin, but stdin is a terminal")
    return stream.read()


def _child_args(args: argparse.Namespace, workspace: Path, goal: str) -> str:
    """The parsed arguments as JSON, for a child that runs ``task`` in the foreground."""
    values = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    values.update(goal=goal, workspace=str(workspace))
    return json.dumps(values, default=str)


def _spawn(spec: str, workspace: Path, log: Path) -> subprocess.Popen[bytes]:
    """The child, in its own session, reading its arguments from an inherited pipe."""
    read_end, write_end = os.pipe()
    try:
        with open(log, "wb") as out, open(os.devnull, "rb") as null:
            child = subprocess.Popen(
                [sys.executable, "-P", "-u", "-m", "ocactors.detach", str(read_end)],
                stdin=null,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workspace,
                pass_fds=(read_end,),
                start_new_session=True,
            )
    finally:
        os.close(read_end)
    with contextlib.suppress(BrokenPipeError), os.fdopen(write_end, "wb") as pipe:
        pipe.write(spec.encode())  # a child that died first has said why in its log
    return child


def _await_mission(
    child: subprocess.Popen[bytes], folder: Path, log: Path, earlier: set[str]
) -> int:
    """Until the claim names the child (started: exit 0) or the child ends (its error)."""
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        paths = _claimed_by(folder, child.pid, earlier)
        if paths is not None:
            return _started(child, paths, log)
        code = child.poll()
        if code is not None:
            paths = _claimed_by(folder, child.pid, earlier)  # it may have just ended
            return _started(child, paths, log) if paths else _failed(code, log)
        time.sleep(POLL_S)
    child.terminate()
    child.wait(timeout=10)
    output = _drain(log)
    print(output, end="", file=sys.stderr)
    print(f"ocactors: error: the mission did not start within {START_WAIT_S:.0f}s", file=sys.stderr)
    return EXIT_FAILED


def _claimed_by(folder: Path, pid: int, earlier: set[str]) -> MissionPaths | None:
    """The new mission the claim file says ``pid`` runs, once its folder exists."""
    try:
        words = (folder / LOCK).read_text("utf-8", errors="replace").split()
    except OSError:
        return None
    if len(words) != 2 or words[1] != str(pid) or words[0] in earlier:
        return None
    if not (folder / words[0]).is_dir():
        return None
    return MissionPaths(folder / words[0])


def _started(child: subprocess.Popen[bytes], paths: MissionPaths, log: Path) -> int:
    """The mission runs: move its output into its folder, say where to watch it."""
    output = paths.root / OUTPUT
    os.replace(log, output)
    for line in output.read_text("utf-8", errors="replace").splitlines():
        if line.startswith("model "):  # which model each role uses, and from where
            print(line)
    print(f"mission {paths.id} started in the background (pid {child.pid})")
    print(f"output: {output}")
    print(f"log: {paths.events}")
    print("watch: ocactors monitor   or   ocactors tail -f   (stop: ocactors stop)")
    return EXIT_OK


def _failed(code: int, log: Path) -> int:
    """The child ended before a mission began: its error lines, its exit code."""
    lines = _drain(log).splitlines()
    errors = [line for line in lines if line.startswith("ocactors:")]
    for line in errors or lines:
        print(line, file=sys.stderr)
    return code or EXIT_FAILED


def _drain(log: Path) -> str:
    try:
        text = log.read_text("utf-8", errors="replace")
        log.unlink()
    except OSError:
        return ""
    return text


# --- the child ---------------------------------------------------------------------------


def child_main(fd: int) -> int:
    """Run ``task`` in the foreground with the arguments the parent sent on ``fd``."""
    with os.fdopen(fd, encoding="utf-8") as pipe:
        args = argparse.Namespace(**json.loads(pipe.read()))
    # Imported here: ocactors.commands.task imports this module for --detach.
    from ocactors.commands.task import run_task

    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    try:
        return int(run_task(args))
    except (UsageError, EventLogError) as error:
        print(f"ocactors: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover - run by run_detached in the child
    sys.exit(child_main(int(sys.argv[1])))
