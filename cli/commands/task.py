"""``task``, ``resume`` and ``stop``: start a mission, carry one on, ask one to stop.

The actors, the model clients and the settings' flags are imported only when ``task`` or
``resume`` is chosen (their options are added then: see :class:`ocactors.cli.Subcommands`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocactors.common import EXIT_FAILED, EXIT_OK, UsageError, add_workspace, workspace_of

if TYPE_CHECKING:
    from ocactors.events import MissionPaths
    from ocactors.events.catalogue import MissionSettings
    from ocactors.setup import Limits

MAX_PARALLEL = 50
STOP_WAIT_S = 10.0


def register(sub: Any) -> None:
    """Add task, resume and stop to the command line."""
    _register_task(sub)
    _register_resume(sub)
    _register_stop(sub)


def _register_task(sub: Any) -> None:
    sub.add_parser(
        "task",
        arguments=_task_arguments,
        help="run a mission: plan, build in parallel, review, until sealed",
        description="Start a mission in the workspace and run it until it is SEALED "
        "(every task done, the reviewer approves, the project's checks pass), fails or stops.",
        epilog='example: ocactors task "Build a REST API with authentication" -C api/ '
        "--parallel 20 --verify 'python -m pytest -q'",
    )


def _task_arguments(p: argparse.ArgumentParser) -> None:
    from ocactors.detach import run_detached
    from ocactors.setup import add_command_flags, add_model_flags, add_session_flags

    p.add_argument("goal", help="what the mission should achieve, in one sentence")
    add_workspace(p)
    p.add_argument(
        "--verify",
        metavar="CMD",
        help="the project's checks (default: [verify] command, else every ecosystem's found); "
        "'none' seals on the review alone, marked unverified",
    )
    p.add_argument(
        "--parallel", type=int, metavar="N", help="workers at once (default: [limits] 10)"
    )
    p.add_argument("--max-iterations", type=int, default=20, metavar="N")
    _add_caps(p)
    p.add_argument("--durability", choices=["always", "batch", "never"], default="batch")
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")
    p.add_argument(
        "--no-preflight", action="store_true", help="do not check the model endpoints first"
    )
    add_command_flags(p)
    add_session_flags(p)
    add_model_flags(p)
    p.add_argument(
        "--detach",
        action="store_const",
        dest="func",
        const=run_detached,
        help="run in the background: print the mission id and log path, exit at once "
        "(GOAL `-`: read it from stdin)",
    )
    p.set_defaults(func=run_task)


def _add_caps(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-tokens", type=int, metavar="N", help="stop (resumable) past N tokens")
    p.add_argument("--max-cost", type=float, metavar="USD", help="stop past this cost")
    p.add_argument(
        "--session-ttl",
        type=float,
        metavar="SECONDS",
        dest="session_ttl_s",
        help="stop a model session running longer (default: [limits] session_ttl_s, 3600)",
    )


def run_task(args: argparse.Namespace) -> int:
    """Start a new mission and run it here."""
    from ocactors.actors.mission import open_new_mission
    from ocactors.claim import claim_workspace, ensure_unclaimed
    from ocactors.launch import describe_settings, open_journal, run_logged_mission
    from ocactors.setup import launch_for, read_extras, session_limits
    from ocactors.view import make_view

    workspace = workspace_of(args)
    if not args.goal.strip():
        raise UsageError("the goal is empty; say what the mission should achieve")
    settings = _settings(args, session_limits(workspace), read_extras(workspace).verify.command)
    ensure_unclaimed(workspace)  # before anything starts (an OpenCode server)
    launch = launch_for(workspace, args, make_view(args.json))
    with claim_workspace(workspace) as claim:
        paths, journal = open_new_mission(
            workspace,
            args.goal.strip(),
            settings,
            lambda p, mission: open_journal(p, mission, args.durability, launch.secrets),
            launch.conditions,
        )
        claim.name(paths.id)
        print(f"mission {paths.id} in {workspace}", file=sys.stderr)
        print(f"settings: {describe_settings(settings)}", file=sys.stderr)
        return run_logged_mission(launch, paths, journal)


def _settings(
    args: argparse.Namespace, limits: Limits, verify: str | None = None
) -> MissionSettings:
    """The mission's knobs: flags over ``[limits]`` and ``[verify] command``."""
    from ocactors.events.catalogue import MissionSettings

    max_sessions = limits.max_sessions
    default = min(limits.max_per_role, max_sessions)
    parallel = args.parallel if args.parallel is not None else default
    if not 1 <= parallel <= min(MAX_PARALLEL, max_sessions):
        raise UsageError(f"--parallel must be between 1 and {min(MAX_PARALLEL, max_sessions)}")
    if args.max_iterations < 1:
        raise UsageError("--max-iterations must be at least 1")
    _check_ttl(args)
    return MissionSettings(
        verify_command=args.verify or verify,
        max_iterations=args.max_iterations,
        parallel=parallel,
        max_sessions=max_sessions,
        max_tokens=args.max_tokens,
        max_cost=args.max_cost,
        session_ttl_s=args.session_ttl_s or limits.session_ttl_s,
    )


def _check_ttl(args: argparse.Namespace) -> None:
    if args.session_ttl_s is not None and not args.session_ttl_s > 0:
        raise UsageError("--session-ttl must be a positive number of seconds")


def _register_resume(sub: Any) -> None:
    sub.add_parser(
        "resume",
        arguments=_resume_arguments,
        help="carry a stopped, crashed or killed mission on from its log",
        description="Continue a mission from its log: finished tasks are not redone and "
        "interrupted sessions continue from their recorded turns.",
        epilog="example: ocactors resume 20261125-101500 --max-tokens 2000000",
    )


def _resume_arguments(p: argparse.ArgumentParser) -> None:
    from ocactors.setup import add_command_flags, add_model_flags, add_session_flags

    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--max-iterations", type=int, metavar="N")
    _add_caps(p)
    p.add_argument("--durability", choices=["always", "batch", "never"], default="batch")
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")
    add_command_flags(p)
    add_session_flags(p)
    add_model_flags(p)
    p.set_defaults(func=run_resume)


def run_resume(args: argparse.Namespace) -> int:
    """Open the log (repairing a torn tail), then run from where it left off."""
    from ocactors.actors.mission import load_log, record_resume
    from ocactors.claim import claim_workspace
    from ocactors.events import resolve_mission
    from ocactors.launch import open_journal, run_logged_mission
    from ocactors.setup import launch_for
    from ocactors.view import make_view

    _check_ttl(args)
    workspace = workspace_of(args)
    paths = resolve_mission(workspace, args.mission)
    with claim_workspace(workspace) as claim:
        journal = open_journal(paths.events, paths.id, args.durability)
        try:
            state = load_log(paths.events).commander
            if state.phase == "sealed":
                print(f"mission {paths.id} is already SEALED; nothing to do")
                return EXIT_OK
            launch = launch_for(workspace, args, make_view(args.json))
        except BaseException:
            journal.close()
            raise
        claim.name(paths.id)
        record_resume(journal, "resume", _raised_caps(state.settings, args), launch.conditions)
        print(f"mission {paths.id} resumed in {workspace}", file=sys.stderr)
        return run_logged_mission(launch, paths, journal)


def _raised_caps(settings: MissionSettings, args: argparse.Namespace) -> MissionSettings | None:
    import msgspec

    changes = {
        name: getattr(args, name)
        for name in ("max_tokens", "max_cost", "max_iterations", "session_ttl_s")
        if getattr(args, name, None) is not None
    }
    return msgspec.structs.replace(settings, **changes) if changes else None


def _register_stop(sub: Any) -> None:
    p = sub.add_parser(
        "stop",
        help="ask a running mission to stop (it stays resumable)",
        description="Write a stop command to the mission's control file and wait until the "
        "mission records that it stopped.",
        epilog="example: ocactors stop            # the running mission in this directory",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--no-wait", action="store_true", help="do not wait for the mission to stop")
    p.set_defaults(func=run_stop)


def run_stop(args: argparse.Namespace) -> int:
    """Send ``stop`` through the control file; wait (bounded) for the final event."""
    from ocactors.events import resolve_mission, send_control, writer_pid

    workspace = workspace_of(args)
    paths = (
        _running(workspace) if args.mission is None else resolve_mission(workspace, args.mission)
    )
    if writer_pid(paths.events) is None:
        raise UsageError(f"mission {paths.id} is not running")
    since = _last_seq(paths.events)
    send_control(paths, "stop", {"reason": "user"})
    if args.no_wait:
        print(f"asked mission {paths.id} to stop")
        return EXIT_OK
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if _final_since(paths.events, since) or writer_pid(paths.events) is None:
            print(f"mission {paths.id} stopped (resume with: ocactors resume {paths.id})")
            return EXIT_OK
        time.sleep(0.1)
    print(f"ocactors: mission {paths.id} did not stop within {STOP_WAIT_S:.0f}s", file=sys.stderr)
    return EXIT_FAILED


def _running(workspace: Path) -> MissionPaths:
    """The newest mission that a process is writing (else the newest, to say it is not)."""
    from ocactors.events import list_missions, resolve_mission, writer_pid

    for paths in list_missions(workspace):
        if writer_pid(paths.events) is not None:
            return paths
    return resolve_mission(workspace, None)


def _last_seq(path: Path) -> int:
    from ocactors.events import read_events

    seq = 0
    for event in read_events(path, strict=False):
        seq = event.seq
    return seq


def _final_since(path: Path, since: int) -> bool:
    from ocactors.events import read_events
    from ocactors.events.catalogue import FINAL_TYPES, event_type

    return any(event_type(e) in FINAL_TYPES for e in read_events(path, since=since, strict=False))
