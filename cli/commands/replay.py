"""``replay``: a mission's state at any event, a rerun with the recorded model, or a fork."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocactors.commands.inspect import status_lines
from ocactors.common import EXIT_FAILED, EXIT_OK, UsageError, add_workspace, workspace_of

if TYPE_CHECKING:  # the rest is imported when the command runs (see ocactors.cli)
    from ocactors.actors.session_state import SessionState
    from ocactors.events import MissionPaths
    from ocactors.events.catalogue import Record


def register(sub: Any) -> None:
    """Add replay to the command line (its options when it is chosen: ocactors.cli.Subcommands)."""
    sub.add_parser(
        "replay",
        arguments=_arguments,
        help="rebuild a mission's state at any event; rerun it offline; fork it",
        description="Fold the log up to --until SEQ and show the mission (or one actor) as it "
        "was just after that event. --rerun drives the actors again with the recorded model "
        "responses and compares; --fork-at starts a new mission from a copy of the log.",
        epilog="example: ocactors replay 20261125 --until 120 --actor 'worker:T3'",
    )


def _arguments(p: argparse.ArgumentParser) -> None:
    from ocactors.setup import add_command_flags, add_model_flags

    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--until", type=int, metavar="SEQ", help="state just after event SEQ")
    p.add_argument("--actor", help="one actor: commander, planner, reviewer, worker:T1")
    p.add_argument("--json", action="store_true", help="the state as JSON")
    p.add_argument("--rerun", action="store_true", help="re-drive with the recorded responses")
    p.add_argument("--dir", metavar="SCRATCH", help="scratch workspace for --rerun")
    p.add_argument("--fork-at", type=int, metavar="SEQ", help="new mission continuing from SEQ")
    p.add_argument("--durability", choices=["always", "batch", "never"], default="batch")
    add_command_flags(p)
    add_model_flags(p)
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    """Dispatch on the mode."""
    import msgspec

    from ocactors.actors.state import MissionState
    from ocactors.missions import Notes, events, pick

    if args.rerun and args.fork_at is not None:
        raise UsageError(
            "--rerun and --fork-at do not go together: rerun the whole mission, or fork it"
        )
    workspace = workspace_of(args)
    paths = pick(workspace, args.mission)
    if args.rerun:
        return _rerun(paths, workspace, args)
    if args.fork_at is not None:
        return _fork(paths, workspace, args)
    notes = Notes()
    state = _state(events(paths, notes, until=args.until), args.actor)
    notes.say(paths)
    if args.json:
        print(json.dumps(msgspec.to_builtins(state)))
    elif isinstance(state, MissionState):
        print("\n".join(status_lines(state, state.phase, paths.id)))
        print(f"(state just after event {state.last_seq})")
    else:
        print("\n".join(_session_lines(state)))
    return EXIT_OK


def _state(stream: Any, actor: str | None) -> Any:
    """The whole mission, the Commander, or one session actor's sessions, folded."""
    from ocactors.actors.session_state import SessionState, apply_session
    from ocactors.actors.state import fold_mission

    if actor is None:
        return fold_mission(stream)
    if actor == "commander":
        return fold_mission(e for e in stream if e.actor == "commander")
    sessions: dict[str, SessionState] = {}
    for event in stream:
        session = getattr(event, "session", None)
        if event.actor == actor and isinstance(session, str):
            sessions[session] = apply_session(sessions.get(session, SessionState()), event)
    if not sessions:
        raise UsageError(f"no sessions of actor {actor!r} up to that point")
    return sessions


def _session_lines(sessions: dict[str, SessionState]) -> list[str]:
    lines = []
    for name, state in sessions.items():
        end = (
            f"finished: {state.result}"
            if state.result is not None
            else f"failed: {state.failure}"
            if state.failure
            else "in progress"
        )
        lines.append(f"{name} ({state.role}, {state.model}): turn {state.turn}, {end}")
        lines.append(f"  {len(state.messages)} messages; pending calls: {len(state.pending)}")
        for message in state.messages[-4:]:
            calls = ", ".join(f"{c.name}({c.arguments[:60]})" for c in message.tool_calls)
            text = " ".join(message.content.split())[:100]
            lines.append(f"  {message.role}: {calls or text}")
    return lines


def _rerun(paths: Any, workspace: Path, args: argparse.Namespace) -> int:
    from ocactors.events import read_events
    from ocactors.events.catalogue import MissionStarted
    from ocactors.rerun import compare_events, compare_files, rerun

    scratch = (
        Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="ocactors-rerun-"))
    )
    if scratch.exists() and any(scratch.iterdir()):
        raise UsageError(f"{scratch} is not empty; give --dir a new or empty directory")
    new = rerun(paths, workspace, scratch)
    original = list(read_events(paths.events, strict=False))
    again = list(read_events(new.events))
    recorded_at = [e.workspace for e in original if isinstance(e, MissionStarted)]
    roots = sorted({str(workspace), str(scratch), *recorded_at}, key=len, reverse=True)
    difference = compare_events(original, again, roots)
    files = compare_files(workspace, scratch)
    print(f"rerun in {scratch} (log {new.events})")
    if difference is None and not files:
        print(f"same events and same files: {len(original)} recorded events reproduced")
        return EXIT_OK
    if difference is not None:
        print(
            f"first differing event: {difference.kind} of {difference.actor} "
            f"(recorded seq {difference.original_seq}, rerun seq {difference.rerun_seq}): "
            f"{difference.detail}"
        )
    if files:
        print(f"files that differ: {', '.join(files[:10])}")
    return EXIT_FAILED


def _fork(paths: Any, workspace: Path, args: argparse.Namespace) -> int:
    import msgspec

    from ocactors.actors.mission import record_resume
    from ocactors.claim import claim_workspace
    from ocactors.events import create_mission_dir, encode, new_mission_id, read_events
    from ocactors.events.catalogue import FINAL_TYPES, event_type
    from ocactors.launch import open_journal, run_logged_mission
    from ocactors.setup import launch_for
    from ocactors.view import make_view

    copied = list(read_events(paths.events, until=args.fork_at))
    if not copied or copied[-1].seq != args.fork_at:
        raise UsageError(f"mission {paths.id} has no event {args.fork_at}")
    if event_type(copied[-1]) in FINAL_TYPES and event_type(copied[-1]) == "mission.sealed":
        raise UsageError(f"the mission is already sealed at event {args.fork_at}")
    with claim_workspace(workspace) as claim:
        launch = launch_for(workspace, args, make_view(False))  # before any folder exists
        fork = create_mission_dir(workspace, new_mission_id())
        claim.name(fork.id)
        with open(fork.events, "wb") as out:
            for event in copied:
                out.write(encode(msgspec.structs.replace(event, mission=fork.id)) + b"\n")
        if paths.baseline.is_dir():
            shutil.copytree(paths.baseline, fork.baseline)
        _fork_history(paths, fork, workspace, copied)
        journal = open_journal(fork.events, fork.id, args.durability, launch.secrets)
        record_resume(journal, f"fork of {paths.id} at {args.fork_at}", None, launch.conditions)
        print(f"mission {fork.id} forked from {paths.id} at event {args.fork_at}", file=sys.stderr)
        return run_logged_mission(launch, fork, journal)


def _fork_history(
    paths: MissionPaths, fork: MissionPaths, workspace: Path, copied: list[Record]
) -> None:
    """The fork's history starts where the original's stood at the fork point."""
    from ocactors.actors.history import fork_history, open_history
    from ocactors.events.catalogue import HistoryBegan, TaskCommitted

    tasks = paths.root / "history" / "tasks"
    if tasks.is_dir():
        shutil.copytree(tasks, fork.root / "history" / "tasks")
    commits = [e.commit for e in copied if isinstance(e, TaskCommitted) and e.commit]
    began = [e.commit for e in copied if isinstance(e, HistoryBegan) and e.commit]
    points = commits or began
    if points:
        fork_history(open_history(workspace, paths.root, paths.id), fork.id, points[-1])
