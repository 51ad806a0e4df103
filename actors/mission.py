"""Running a mission in this process: open its log, start the Commander, supervise, finish.

The runner is the only code that owns the journal's lifetime.  It feeds the Commander the two
things that come from outside the actor system (commands from the control file, and a
periodic tick for TTLs) and supervises the Commander itself: a Commander that dies is
recorded as ``actor.crashed`` and replaced by one folded from the log.  Starting and resuming
are the same path: fold the log, then let the Commander decide.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pykka

from ocactors.actors.commander import Commander
from ocactors.actors.context import MissionContext
from ocactors.actors.history import start_history
from ocactors.actors.messages import Begin, ControlCommand, Tick
from ocactors.actors.project import project_environment
from ocactors.actors.state import MissionState, apply, fold_mission
from ocactors.events import (
    ControlInbox,
    Journal,
    MissionPaths,
    create_mission_dir,
    new_mission_id,
    read_events,
)
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import FORMAT_VERSION, MissionSettings, Record
from ocactors.tools import LeaseGuard

MAX_COMMANDER_RESTARTS = 3
ENDED = (ev.SessionFinished, ev.SessionFailed)


@dataclass(frozen=True)
class LoadedLog:
    """A log read once: the Commander's state and what its sessions need to continue.

    ``commander_restarts`` counts the supervisor's replacements of the Commander since this
    mission was last resumed, so the restart limit is read from the log, not from memory.
    """

    commander: MissionState
    open_sessions: dict[str, tuple[Record, ...]] = field(default_factory=dict)
    commander_restarts: int = 0


def load_log(path: Path, observers: Iterable[Callable[[Record], None]] = ()) -> LoadedLog:
    """Fold the log in one pass; keep the events of open sessions, the outcome of ended ones.

    An ended session whose outcome the Commander had not yet recorded (a crash in between)
    then reports that outcome again instead of being run a second time.  ``observers`` (a
    token meter, a view) see every event of the same pass.
    """
    commander = MissionState()
    sessions: dict[str, list[Record]] = {}
    restarts = 0
    watchers = list(observers)
    for event in read_events(path):
        for watch in watchers:
            watch(event)
        if event.actor == "commander":
            commander = apply(commander, event)
        restarts = _count_restarts(restarts, event)
        session = getattr(event, "session", None)
        if isinstance(session, str) and not isinstance(event, ev.ActorCrashed):
            if isinstance(event, ENDED):
                sessions[session] = [event]  # the outcome alone: enough to not redo it
            else:
                sessions.setdefault(session, []).append(event)
    return LoadedLog(commander, {k: tuple(v) for k, v in sessions.items()}, restarts)


def _count_restarts(count: int, event: Record) -> int:
    if isinstance(event, ev.MissionResumed):
        return 0
    if isinstance(event, ev.ActorCrashed) and event.actor == "supervisor":
        return count + 1
    return count


class BaselineRecorder:
    """Keeps each file's content from before the mission first wrote it (for replay --rerun)."""

    def __init__(self, workspace: Path, baseline: Path) -> None:
        self.workspace = workspace
        self.baseline = baseline
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, rel: str) -> None:
        """Called by the tools before any write; cheap after the first call per file."""
        with self._lock:
            if rel in self._seen:
                return
            self._seen.add(rel)
            copy = self.baseline / "files" / rel
            if copy.exists() or (self.baseline / "created" / rel).exists():
                return
            source = self.workspace / rel
            target = copy if source.is_file() else self.baseline / "created" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_file():
                shutil.copy2(source, target)
            else:
                target.touch()


@dataclass(frozen=True)
class LeaseHolder:
    """Keeps the lease guard told of every lease the log grants and releases.

    A command's guard then leaves alone the files other running tasks hold (and the sandbox
    keeps them read-only for it), instead of taking their writes for the command's.
    """

    guard: LeaseGuard | None

    def observe(self, event: Record) -> None:
        """Journal subscriber (and log replayer)."""
        if self.guard is None:
            return
        if isinstance(event, ev.LeaseGranted):
            self.guard.hold(f"worker:{event.task_id}", event.files)
        elif isinstance(event, ev.LeaseReleased):
            self.guard.release(f"worker:{event.task_id}")


@dataclass
class MissionRun:
    """One process's run of a mission, from an open journal to a final event."""

    ctx: MissionContext
    paths: MissionPaths
    loaded: LoadedLog
    finished: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def prepare(
        cls,
        ctx: MissionContext,
        paths: MissionPaths,
        observers: Iterable[Callable[[Record], None]] = (),
    ) -> MissionRun:
        """Read the log once (the Commander's state, the meter, any view), then follow it."""
        ctx.journal.flush()  # what was just appended (started, resumed) must be read back
        if ctx.shell.guard is None:
            guard = LeaseGuard(ctx.workspace, paths.root / "shadow")
            ctx.shell = dataclasses.replace(ctx.shell, guard=guard)
        if ctx.shell.project_env is None:
            project = functools.partial(project_command_env, ctx.workspace)
            ctx.shell = dataclasses.replace(ctx.shell, project_env=project)
        leases = LeaseHolder(ctx.shell.guard)
        watchers = [ctx.meter.observe, ctx.sessions.observe, leases.observe, *observers]
        loaded = load_log(ctx.journal.path, watchers)
        ctx.settings = loaded.commander.settings  # a resume may have raised a cap
        for watch in watchers:
            ctx.journal.subscribe(watch)
        return cls(ctx, paths, loaded)

    def run(self, interrupted: Callable[[], str] = lambda: "") -> MissionState:
        """Supervise until the mission records a final event; returns the Commander's state.

        ``interrupted`` says why this process was asked to stop (``interrupted (SIGTERM)``),
        or ``""``; the first answer becomes the stop's recorded detail.
        """
        if self.loaded.commander.final:
            return self.loaded.commander  # nothing to run (a resume must record first)
        self._begin_history()
        inbox = ControlInbox(self.paths.control)
        inbox.skip_existing()
        commander = self._start_commander(self.loaded.commander, self.loaded.open_sessions)
        stop_sent = False
        while not self.finished.wait(self.ctx.tick_s):
            messages: list[Any] = list(inbox.poll())
            stop = None if stop_sent else self._reason_to_stop(interrupted)
            if stop is not None:
                stop_sent = True
                messages.append(ControlCommand(command="stop", args=stop, pid=os.getpid()))
            if not self._deliver(commander, [*messages, Tick()]) and not self.finished.is_set():
                commander = self._replace_commander()
        return self._shutdown(commander)

    @staticmethod
    def _deliver(commander: pykka.ActorRef[Any], messages: list[Any]) -> bool:
        """Tell the Commander; False when it has died (a tell to a dead actor raises)."""
        try:
            for message in messages:
                commander.tell(message)
        except pykka.ActorDeadError:
            return False
        return commander.is_alive()

    def _reason_to_stop(self, interrupted: Callable[[], str]) -> dict[str, str] | None:
        """A signal (its name in the detail), or a log someone else changed: stop at once."""
        tampered = self.ctx.journal.check()
        if tampered is not None:
            detail = f"the log was changed by someone else ({tampered.how}): {tampered}"
            return {"reason": tampered.REASON, "detail": detail}
        why = interrupted()
        return {"reason": "interrupted", "detail": why} if why else None

    def _begin_history(self) -> None:
        """Baseline (or carry on) the mission's history before any session can write."""
        if self.ctx.history is None:
            self.ctx.history = start_history(self.ctx.workspace, self.paths.root, self.paths.id)
        history = self.ctx.history
        began = ev.HistoryBegan(
            kind=history.kind, commit=history.baseline(), ref=history.ref, reason=history.reason
        )
        stamped = self.ctx.journal.append(began, actor="commander").event
        self.loaded = replace(self.loaded, commander=apply(self.loaded.commander, stamped))

    def _start_commander(
        self, state: MissionState, prior: dict[str, tuple[Record, ...]]
    ) -> pykka.ActorRef[Any]:
        ref = Commander.start(self.ctx, state, finished=self.finished, prior=prior)
        ref.tell(Begin())
        return ref

    def _replace_commander(self) -> pykka.ActorRef[Any]:
        """Record the crash, then a Commander folded from the log (or fail past the limit).

        The dead Commander's role actors belong to the old generation: from now on their
        writes are refused and their gates stop them, so the new Commander's actors are the
        only ones continuing those sessions from the log.  A crash after the final event
        writes nothing more.
        """
        self.ctx.retire_generation()
        self.ctx.journal.flush()
        loaded = load_log(self.ctx.journal.path)
        if loaded.commander.final:
            self.finished.set()
            return self._start_commander(loaded.commander, {})
        self.ctx.stopping.clear()  # a crash between the door closing and the final event
        restarts = loaded.commander_restarts + 1
        self.ctx.journal.append(
            ev.ActorCrashed(target="commander", error="the commander stopped", restarts=restarts),
            actor="supervisor",
        )
        if restarts > MAX_COMMANDER_RESTARTS:
            self._fail_crashed(loaded.commander, restarts)
        self.ctx.journal.flush()
        loaded = load_log(self.ctx.journal.path)
        return self._start_commander(loaded.commander, loaded.open_sessions)

    def _fail_crashed(self, state: MissionState, restarts: int) -> None:
        """Past the restart limit: end the sessions, give the leases back, fail."""
        self.ctx.close_sessions("failed")
        for task_id in dict.fromkeys(state.leases.values()):
            files = [f for f, owner in state.leases.items() if owner == task_id]
            self.ctx.journal.append(
                ev.LeaseReleased(task_id=task_id, files=files), actor="commander"
            )
        detail = f"the commander crashed {restarts} times"
        self.ctx.journal.append(
            ev.MissionFailed(reason="crashed", detail=detail), actor="commander"
        )
        self.finished.set()

    def _shutdown(self, commander: pykka.ActorRef[Any]) -> MissionState:
        """The Commander's own final state (asked, with a timeout), then stop it.

        If it died at the very end, the state is folded from the log instead, which is the
        same thing by construction (and tested to be).
        """
        self.ctx.stopping.set()
        self.ctx.shell.groups.close()  # commands a stopped session left running, the reaper
        try:
            state: MissionState = commander.proxy().state.get(timeout=5.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            self.ctx.journal.flush()
            events = read_events(self.ctx.journal.path)
            state = fold_mission(e for e in events if e.actor == "commander")
        if commander.is_alive():
            commander.stop(block=True, timeout=5.0)
        return state


@dataclass(frozen=True)
class Conditions:
    """How this run confines its commands and runs the project; recorded at start and resume.

    ``sandbox``: "bwrap", "landlock" or "off"; ``environment``: the project's environment
    in one line (its virtualenv, its package manager).
    """

    sandbox: str = "off"
    command_network: bool = False
    environment: str = ""


def project_command_env(workspace: Path, base: dict[str, str]) -> dict[str, str]:
    """The project's own environment over ``base``, looked up per command (a mission may
    create the project's virtualenv as it goes)."""
    return project_environment(workspace, os.environ).apply(base)


def open_new_mission(
    workspace: Path,
    goal: str,
    settings: MissionSettings,
    journal_factory: Callable[..., Journal],
    conditions: Conditions | None = None,
) -> tuple[MissionPaths, Journal]:
    """Create the mission folder and its log, and record ``mission.started``."""
    paths = create_mission_dir(workspace, new_mission_id())
    journal = journal_factory(paths.events, mission=paths.id)
    how = conditions or Conditions()
    journal.append(
        ev.MissionStarted(
            version=FORMAT_VERSION,
            goal=goal,
            workspace=str(workspace),
            settings=settings,
            sandbox=how.sandbox,
            command_network=how.command_network,
            environment=how.environment,
        ),
        actor="commander",
    )
    return paths, journal


def record_resume(
    journal: Journal,
    reason: str,
    settings: MissionSettings | None,
    conditions: Conditions | None = None,
) -> None:
    """Mark that this process carries the mission on (new settings if caps were raised)."""
    how = conditions or Conditions()
    journal.append(
        ev.MissionResumed(
            pid=os.getpid(),
            reason=reason,
            settings=settings,
            sandbox=how.sandbox,
            command_network=how.command_network,
            environment=how.environment,
        ),
        actor="commander",
    )
