"""``demo``: a whole mission on a fresh machine with no model and no network.

It re-runs a mission recorded with ocactors (shipped in the package: its log and the project's
starting files) in a scratch workspace.  The recorded model responses are served by the
scripted model server on 127.0.0.1 and reach the mission through the same HTTP client, session
code and actors as a real model would; the tools really write the files and the project's
checks really run at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from ocactors.actors.mission import open_new_mission
from ocactors.actors.models import ScriptedModelServer, make_http_client
from ocactors.actors.models.playbook import script_from_log
from ocactors.common import UsageError
from ocactors.events import read_events
from ocactors.events.catalogue import MissionStarted
from ocactors.launch import (
    Launch,
    describe_settings,
    open_journal,
    recorded_clients,
    run_logged_mission,
)
from ocactors.tools import ShellConfig, WebConfig
from ocactors.view import make_view

DEMO = "demo"
PACE_S = 0.3  # per model turn, so the live view can be followed


def register(sub: Any) -> None:
    """Add ``demo`` to the command line."""
    p = sub.add_parser(
        "demo",
        help="watch a whole recorded mission run offline (no model, no network)",
        description="Re-run a recorded mission (plan, parallel workers, a rejecting review, "
        "a fix, SEALED) in a scratch workspace with the recorded model responses.",
        epilog="example: ocactors demo --dir /tmp/ocactors-demo",
    )
    p.add_argument("--dir", metavar="DIR", help="scratch workspace (default: a new temp dir)")
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")
    p.add_argument("--fast", action="store_true", help="no pause between model turns")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Prepare the workspace, serve the recording, run the mission, say what to try next."""
    with resources.as_file(resources.files("ocactors").joinpath(DEMO)) as demo:
        events = list(read_events(demo / "mission.jsonl"))
        workspace = _prepare(args.dir, demo / "project")
    started = next(e for e in events if isinstance(e, MissionStarted))
    pace = 0.0 if args.fast else PACE_S
    with ScriptedModelServer(script_from_log(events, pace)) as server, make_http_client() as http:
        launch = _launch(workspace, server, http, make_view(args.json))
        paths, journal = open_new_mission(
            workspace,
            started.goal,
            started.settings,
            lambda p, mission: open_journal(p, mission, "batch"),
        )
        print(f"demo mission {paths.id} in {workspace}", file=sys.stderr)
        print(f"settings: {describe_settings(started.settings)}", file=sys.stderr)
        code = run_logged_mission(launch, paths, journal)
    _next_steps(workspace, paths.id, paths.events)
    return code


def _prepare(target: str | None, project: Path) -> Path:
    if target is None:
        workspace = Path(tempfile.mkdtemp(prefix="ocactors-demo-"))
    else:
        workspace = Path(target).expanduser().resolve()
        if workspace.exists() and any(workspace.iterdir()):
            raise UsageError(f"{workspace} is not empty; give --dir a new or empty directory")
    shutil.copytree(project, workspace, dirs_exist_ok=True)
    return workspace


def _launch(workspace: Path, server: ScriptedModelServer, http: httpx.Client, view: Any) -> Launch:
    clients = recorded_clients(server.base_url, http)
    return Launch(
        workspace=workspace,
        clients=clients,
        http=http,
        shell=ShellConfig(),
        web=WebConfig(),
        prices={},
        view=view,
    )


def _next_steps(workspace: Path, mission: str, log: Path) -> None:
    short = mission[:15]
    print(
        f"\nworkspace: {workspace}\nlog:       {log}\n\ntry next:\n"
        f"  ocactors tail {short} -C {workspace}\n"
        f"  ocactors status {short} -C {workspace}\n"
        f"  ocactors replay {short} --until 40 -C {workspace}\n"
        f"  ocactors monitor {short} -C {workspace}   (live, while a mission runs)\n",
        file=sys.stderr,
    )
