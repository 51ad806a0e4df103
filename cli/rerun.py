"""``replay --rerun``: drive the actors again with the recorded model responses, and compare.

The scratch workspace is rebuilt as it was before the mission (today's files, with every file
the mission wrote put back from ``baseline/`` and every file it created removed).  The
recorded responses are served by the scripted model server on loopback, so the same HTTP
client, sessions and actors run with no model and no network.  Parallel workers interleave
differently from run to run, so each actor's events are compared in order per actor (the
Commander's as a whole, since its order follows the workers' timing).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from ocactors.actors.mission import open_new_mission
from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import script_from_log
from ocactors.events import MissionPaths, encode, read_events
from ocactors.events.catalogue import MissionStarted, Record, SessionStarted, event_type
from ocactors.launch import Launch, open_journal, recorded_clients, run_logged_mission
from ocactors.setup import replay_command_settings
from ocactors.tools import WebConfig

VOLATILE_TYPES = frozenset(
    {"mission.resumed", "control.received", "model.retried", "actor.crashed", "model.requested"}
    | {"history.began"}  # where the history lives (git or files) depends on the place
)
VOLATILE_FIELDS = (
    "seq",
    "ts",
    "mission",
    "cause",
    "latency_ms",
    "duration_s",
    "pid",
    "workspace",
    "usage",
    "commit",  # commit ids depend on time and place; that a task was committed does not
    "sandbox",  # how commands were confined and the project ran depend on the machine
    "command_network",
    "environment",
)
TIMING = re.compile(r"\d+(\.\d+)?\s?(s|ms|sec|seconds)\b")
SKIP = {".opencode", "__pycache__", ".pytest_cache"}  # not copied to a rerun: state, caches


@dataclass(frozen=True)
class Difference:
    """The first place the rerun left the recording."""

    actor: str
    original_seq: int | None
    rerun_seq: int | None
    kind: str
    detail: str


class QuietView:
    """The rerun prints only its verdict."""

    def __call__(self, event: Record) -> None:
        """Nothing to show."""

    def start(self) -> None:
        """Nothing to set up."""

    def close(self) -> None:
        """Nothing to tear down."""


def prepare_scratch(original: Path, baseline: Path, scratch: Path) -> None:
    """Today's workspace with the mission's writes undone, copied into ``scratch``."""
    shutil.copytree(original, scratch, ignore=shutil.ignore_patterns(*SKIP), dirs_exist_ok=True)
    created = baseline / "created"
    for path in created.rglob("*") if created.is_dir() else []:
        if path.is_file():
            (scratch / path.relative_to(created)).unlink(missing_ok=True)
    files = baseline / "files"
    if files.is_dir():
        shutil.copytree(files, scratch, dirs_exist_ok=True)


def rerun(paths: MissionPaths, workspace: Path, scratch: Path) -> MissionPaths:
    """Run the recorded mission again in ``scratch``; the new mission's paths."""
    recorded = list(read_events(paths.events, strict=False))
    started = next(e for e in recorded if isinstance(e, MissionStarted))
    prepare_scratch(workspace, paths.baseline, scratch)
    models: dict[str, str] = {}
    for event in recorded:
        if isinstance(event, SessionStarted):
            models.setdefault(event.role, event.model)
    with ScriptedModelServer(script_from_log(recorded)) as server, httpx.Client() as http:
        clients = recorded_clients(server.base_url, http, models)
        shell, conditions = replay_command_settings(scratch)
        launch = Launch(scratch, clients, http, shell, WebConfig(), {}, QuietView(), conditions)
        new_paths, journal = open_new_mission(
            scratch,
            started.goal,
            started.settings,
            lambda p, mission: open_journal(p, mission, "batch"),
            conditions,
        )
        run_logged_mission(launch, new_paths, journal, announce=False)
    return new_paths


def normalise(event: Record, roots: Iterable[str]) -> dict[str, Any]:
    """The event without what legitimately changes between runs."""
    data: dict[str, Any] = msgspec.json.decode(encode(event))
    for name in VOLATILE_FIELDS:
        data.pop(name, None)
    text = msgspec.json.encode(data).decode()
    for root in roots:
        text = text.replace(root, "<workspace>")
    return msgspec.json.decode(TIMING.sub("<t>", text))  # type: ignore[no-any-return]


def compare_events(
    original: list[Record], again: list[Record], roots: Iterable[str]
) -> Difference | None:
    """The earliest event that differs, per actor in order (the Commander's as a multiset)."""
    roots = list(roots)
    mine = _by_actor(original)
    theirs = _by_actor(again)
    found = [
        difference
        for actor in set(mine) | set(theirs)
        if (difference := _compare_actor(actor, mine.get(actor, []), theirs.get(actor, []), roots))
    ]
    return min(found, key=_position, default=None)


def _position(difference: Difference) -> int:
    """Where a difference starts in the recording (the earliest is reported)."""
    seq = difference.original_seq or difference.rerun_seq
    return seq if seq is not None else 1 << 60


def _by_actor(events: list[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = {}
    for event in events:
        if event_type(event) not in VOLATILE_TYPES and event.actor != "supervisor":
            grouped.setdefault(event.actor, []).append(event)
    return grouped


def _compare_actor(
    actor: str, left: list[Record], right: list[Record], roots: list[str]
) -> Difference | None:
    if actor == "commander":
        counts = Counter(_key(e, roots) for e in left)
        counts.subtract(_key(e, roots) for e in right)
        for event in left + right:
            if counts[_key(event, roots)] != 0:
                side = event in left
                return Difference(
                    actor,
                    event.seq if side else None,
                    None if side else event.seq,
                    event_type(event),
                    "only in the " + ("recording" if side else "rerun"),
                )
        return None
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else None
        b = right[index] if index < len(right) else None
        if a is None or b is None or normalise(a, roots) != normalise(b, roots):
            return _difference(actor, a, b, roots)
    return None


def _key(event: Record, roots: list[str]) -> str:
    return msgspec.json.encode(normalise(event, roots)).decode()


def _difference(actor: str, a: Record | None, b: Record | None, roots: list[str]) -> Difference:
    kind = event_type(a) if a is not None else event_type(b) if b is not None else "?"
    if a is None or b is None:
        seqs = (a.seq if a is not None else None, b.seq if b is not None else None)
        return Difference(actor, *seqs, kind, "missing in one of the runs")
    left, right = normalise(a, roots), normalise(b, roots)
    fields = sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))
    name = fields[0] if fields else "?"
    detail = f"{name}: recorded {_short(left.get(name))} / rerun {_short(right.get(name))}"
    return Difference(actor, a.seq, b.seq, kind, detail)


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def compare_files(left: Path, right: Path) -> list[str]:
    """Workspace-relative paths whose content differs or exists on one side only."""

    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and not SKIP & set(p.relative_to(root).parts)
        }

    a, b = files(left), files(right)
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
