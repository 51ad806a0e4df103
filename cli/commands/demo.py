"""``demo``: a whole mission on a fresh machine with no model and no network.

It re-runs a mission recorded with ocactors (shipped in the package: its log and the project's
starting files) in a scratch workspace.  The recorded model responses are served by the
scripted model server on 127.0.0.1 and reach the mission through the same HTTP client, session
code and actors as a real model would; the tools really write the files and the project's
checks really run at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocactors.common import EXIT_STOPPED, UsageError

if TYPE_CHECKING:  # the rest is imported when the command runs (see ocactors.cli)
    import httpx

    from ocactors.actors.models import ScriptedModelServer
    from ocactors.events import Journal, MissionPaths
    from ocactors.events.catalogue import Record
    from ocactors.launch import Launch

DEMO = "demo"
PACE_S = 3.0  # per model turn: about 40 s in all, time to attach `ocactors monitor`


def register(sub: Any) -> None:
    """Add ``demo`` to the command line."""
    p = sub.add_parser(
        "demo",
        help="watch a whole recorded mission run offline (no model, no network)",
        description="Re-run a recorded mission (plan, parallel workers, a rejecting review, "
        "a fix, SEALED) in a scratch workspace with the recorded model responses.",
        epilog="example: ocactors demo --dir /tmp/ocactors-demo    # then, after Ctrl-C: "
        "ocactors demo --resume --dir /tmp/ocactors-demo",
    )
    p.add_argument("--dir", metavar="DIR", help="scratch workspace (default: a new temp dir)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="MISSION",
        help="carry a stopped demo on, offline (--dir: its workspace; default: newest mission)",
    )
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--pace",
        type=_pace,
        default=PACE_S,
        metavar="SECONDS",
        help=f"pause before each model answer (default {PACE_S:g}: about 40 s in all)",
    )
    speed.add_argument("--fast", action="store_true", help="no pause (same as --pace 0)")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Prepare the workspace (or find the stopped demo), serve the recording, run, say what next."""
    from importlib import resources

    from ocactors.actors.models import ScriptedModelServer, make_http_client
    from ocactors.actors.models.playbook import script_from_log
    from ocactors.events import read_events
    from ocactors.launch import run_logged_mission
    from ocactors.view import make_view

    with resources.as_file(resources.files("ocactors").joinpath(DEMO)) as demo:
        events = list(read_events(demo / "mission.jsonl"))
        if args.resume is None:
            workspace = _prepare(args.dir, demo / "project")
    pace = 0.0 if args.fast else args.pace
    with ScriptedModelServer(script_from_log(events, pace)) as server, make_http_client() as http:
        if args.resume is not None:
            workspace = _stopped_demo(args.dir)
            paths, journal = _reopen(workspace, args.resume)
        else:
            paths, journal = _open(workspace, events)
        if pace:
            print(
                f"watch from another terminal: ocactors monitor {paths.id[:15]} -C {workspace}",
                file=sys.stderr,
            )
        launch = _launch(workspace, server, http, make_view(args.json))
        code = run_logged_mission(launch, paths, journal)
    _next_steps(workspace, paths.id, stopped=code == EXIT_STOPPED)
    return code


def _open(workspace: Path, events: list[Record]) -> tuple[MissionPaths, Journal]:
    """A new mission with the recorded goal and settings."""
    from ocactors.actors.mission import open_new_mission
    from ocactors.events.catalogue import MissionStarted
    from ocactors.launch import describe_settings, open_journal
    from ocactors.setup import replay_command_settings

    started = next(e for e in events if isinstance(e, MissionStarted))
    paths, journal = open_new_mission(
        workspace,
        started.goal,
        started.settings,
        lambda p, mission: open_journal(p, mission, "batch"),
        replay_command_settings(workspace)[1],
    )
    print(f"demo mission {paths.id} in {workspace}", file=sys.stderr)
    print(f"settings: {describe_settings(started.settings)}", file=sys.stderr)
    return paths, journal


def _stopped_demo(target: str | None) -> Path:
    """The workspace of the demo to resume: ``--dir`` is required and must exist."""
    if target is None:
        raise UsageError("--resume needs --dir, the stopped demo's workspace")
    workspace = Path(target).expanduser().resolve()
    if not workspace.is_dir():
        raise UsageError(f"--dir {target} is not a directory")
    return workspace


def _reopen(workspace: Path, ref: str) -> tuple[MissionPaths, Journal]:
    """A stopped (or killed) demo mission, carried on with the recording as its model."""
    from ocactors.actors.mission import load_log, record_resume
    from ocactors.events import resolve_mission, writer_pid
    from ocactors.launch import open_journal

    paths = resolve_mission(workspace, ref or None)
    if writer_pid(paths.events) is not None:
        raise UsageError(f"mission {paths.id} is running; stop it first")
    journal = open_journal(paths.events, paths.id, "batch")
    if load_log(paths.events).commander.phase == "sealed":
        journal.close()
        raise UsageError(f"mission {paths.id} is already SEALED; nothing to resume")
    record_resume(journal, "demo resume", None)
    print(f"demo mission {paths.id} resumed in {workspace}", file=sys.stderr)
    return paths, journal


def _pace(text: str) -> float:
    """``--pace``: a number of seconds, 0 to 60."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= seconds <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60 seconds, not {text}")
    return seconds


def _prepare(target: str | None, project: Path) -> Path:
    """A scratch workspace holding the demo project; a bad ``--dir`` is a one-line error."""
    import tempfile

    if target is None:
        workspace = Path(tempfile.mkdtemp(prefix="ocactors-demo-"))
    else:
        workspace = Path(target).expanduser().resolve()
        if workspace.exists() and not workspace.is_dir():
            raise UsageError(f"--dir {target} is a file; give a new or empty directory")
        if workspace.is_dir() and any(workspace.iterdir()):
            raise UsageError(f"{workspace} is not empty; give --dir a new or empty directory")
    try:
        shutil.copytree(project, workspace, dirs_exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"cannot create the demo workspace {workspace}: {reason}") from None
    return workspace


def _launch(workspace: Path, server: ScriptedModelServer, http: httpx.Client, view: Any) -> Launch:
    from ocactors.launch import Launch, recorded_clients
    from ocactors.setup import replay_command_settings
    from ocactors.tools import WebConfig

    clients = recorded_clients(server.base_url, http)
    shell, conditions = replay_command_settings(workspace)
    return Launch(
        workspace=workspace,
        clients=clients,
        http=http,
        shell=shell,
        conditions=conditions,
        web=WebConfig(),
        prices={},
        view=view,
    )


def _next_steps(workspace: Path, mission: str, stopped: bool) -> None:
    """What to try next (the log's path was just printed with the outcome)."""
    short = mission[:15]  # the summary above already said how to resume a stopped demo
    text = (
        f"\nworkspace: {workspace}\n\ntry next:\n"
        f"  ocactors tail {short} -C {workspace}\n"
        f"  ocactors status {short} -C {workspace}\n"
        f"  ocactors replay {short} --until 40 -C {workspace}\n"
        f"  ocactors monitor {short} -C {workspace}   (live, while a mission runs)\n"
    )
    with contextlib.suppress(OSError):  # the terminal may be gone (a hang-up)
        print(text, file=sys.stderr)
