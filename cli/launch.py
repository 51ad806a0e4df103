"""Running a mission from the command line: clients, context, view, signals, exit code.

Shared by ``task``, ``resume``, ``demo`` and ``replay --fork-at``: they differ only in how the
log is opened (new, existing, copied) and where the model comes from.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from ocactors.actors.context import Meter, MissionContext
from ocactors.actors.mission import BaselineRecorder, Conditions, MissionRun
from ocactors.actors.models import ROLES, LimiterRegistry, ModelClient, RoleConfig, build_client
from ocactors.actors.opencode_server import OpenCodeServer
from ocactors.actors.opencode_session import OpenCodeOptions, opencode_session_factory
from ocactors.actors.session import SessionLimits
from ocactors.actors.state import MissionState
from ocactors.common import exit_code_for
from ocactors.events import DEFAULT_SECRET_ENV_VARS, Journal, MissionPaths, Redactor
from ocactors.events.catalogue import MissionSettings
from ocactors.missions import fold_all
from ocactors.snapshots import LiveFold
from ocactors.summary import build, lines
from ocactors.tools import ShellConfig, WebConfig
from ocactors.tools.shell import is_secret
from ocactors.view import View


@dataclass(frozen=True)
class OpenCode:
    """``--backend opencode``: the server the workers' sessions run on, and their model."""

    server: OpenCodeServer
    options: OpenCodeOptions


@dataclass
class Launch:
    """Everything a run needs besides the log itself."""

    workspace: Path
    clients: Mapping[str, ModelClient]
    http: httpx.Client | None
    shell: ShellConfig
    web: WebConfig
    prices: Mapping[str, tuple[float, float]]
    view: View
    conditions: Conditions = field(default_factory=Conditions)
    limits: SessionLimits = field(default_factory=SessionLimits)
    opencode: OpenCode | None = None
    secrets: tuple[str, ...] = ()
    """The keys sent to providers: the journal redacts them whatever their shape."""


def run_logged_mission(
    launch: Launch, paths: MissionPaths, journal: Journal, *, announce: bool = True
) -> int:
    """Fold the log, run the mission to a final event with the view on; the exit code."""
    for key in launch.secrets:  # whatever their shape or source, keys never reach the log
        journal.redactor.add_secret(key)
    ctx = MissionContext(
        mission=paths.id,
        workspace=launch.workspace,
        journal=journal,
        clients=launch.clients,
        settings=MissionSettings(),  # filled from the log by MissionRun.prepare
        shell=launch.shell,
        web=launch.web,
        http=launch.http,
        meter=Meter(prices=dict(launch.prices)),
        limits=launch.limits,
        on_before_write=BaselineRecorder(launch.workspace, paths.baseline),
    )
    fold = LiveFold()
    with _signals() as interrupted:  # before prepare: an early Ctrl-C is a stop, not a crash
        try:
            run = MissionRun.prepare(ctx, paths, [launch.view, fold.observe])
            stop_when = _on_opencode(ctx, launch.opencode, interrupted)
            launch.view.start()
            state = run.run(stop_when)
        finally:
            launch.view.close()
            journal.close()
            fold.save(paths)
            if launch.opencode is not None:
                launch.opencode.server.stop()
    if announce:
        _print_summary(state, paths, launch)
    return exit_code_for(state.phase)


def _on_opencode(
    ctx: MissionContext, opencode: OpenCode | None, interrupted: Callable[[], str]
) -> Callable[[], str]:
    """Workers as OpenCode sessions; a server that dies stops the mission (resumable)."""
    if opencode is None:
        return interrupted
    server = opencode.server
    if ctx.shell.guard is not None:  # OpenCode rewrites its own config (adds its $schema)
        ctx.shell.guard.hold("opencode serve", OPENCODE_CONFIGS)
    ctx.session_factory = opencode_session_factory(server, ctx.shell.guard, opencode.options)

    def stop_when() -> str:
        return interrupted() or ("" if server.alive() else "the opencode server stopped")

    return stop_when


OPENCODE_CONFIGS = ("opencode.json", "opencode.jsonc")
RESUME = "ocactors resume {id}"
DEMO_RESUME = "ocactors demo --resume {id} --dir {workspace}"
SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


@contextmanager
def _signals() -> Iterator[Callable[[], str]]:
    """Ctrl-C, SIGTERM and SIGHUP ask the mission to stop (recorded, resumable), not die.

    Yields what :meth:`MissionRun.run` polls: ``interrupted (SIGTERM)`` once the first such
    signal came (later ones change nothing: the stop is on its way), else ``""``.
    """
    said: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not said:
            said.append(f"interrupted ({SIGNALS.get(signal.Signals(signum), str(signum))})")

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield lambda: said[0] if said else ""
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_summary(state: MissionState, paths: MissionPaths, launch: Launch) -> None:
    """The end summary on stderr (stdout may carry events); a hung-up terminal is no error."""
    whole, _ = fold_all(paths)  # every actor's events: tokens per role, as `status` shows
    recorded = isinstance(launch.clients, RecordedClients)
    resume = DEMO_RESUME if recorded else RESUME
    summary = build(whole, state.phase, paths, launch.workspace, resume=resume)
    with suppress(OSError):  # the terminal went away (SIGHUP): the log says it all
        print("\n".join(lines(summary)), file=sys.stderr, flush=True)


class RecordedClients(dict[str, ModelClient]):
    """Clients that play a recording (the demo, a rerun).

    A mission run on them carries on offline with ``ocactors demo --resume``: ``ocactors
    resume`` would look for a real model and find none.
    """


def recorded_clients(
    base_url: str, http: httpx.Client, models: Mapping[str, str] | None = None
) -> RecordedClients:
    """Every role pointed at a local scripted server that plays a recorded mission."""
    registry = LimiterRegistry()
    names = models or {}
    clients = RecordedClients()
    for role in ROLES:
        config = RoleConfig(
            role=role, provider="openai", model=names.get(role, "recorded"), base_url=base_url
        )
        clients[role] = build_client(config, http, registry)
    return clients


def describe_settings(settings: MissionSettings) -> str:
    """The caps a mission runs with, printed at start so nobody is surprised later."""
    tokens = settings.max_tokens if settings.max_tokens is not None else "none"
    cost = f"{settings.max_cost:g}" if settings.max_cost is not None else "none"
    verify = settings.verify_command or "auto-detect"
    return (
        f"max-iterations {settings.max_iterations}, parallel {settings.parallel}, "
        f"max-sessions {settings.max_sessions}, max-tokens {tokens}, max-cost {cost}, "
        f"session-ttl {settings.session_ttl_s:g}s, verify {verify}"
    )


def open_journal(
    path: Path, mission: str, durability: str, secrets: tuple[str, ...] = ()
) -> Journal:
    """The mission's single writer, with the one redaction point every event goes through.

    ``secrets`` are the keys in use (from flags, files or any variable), redacted literally.
    """
    return Journal.open(
        path,
        mission=mission,
        durability=durability,  # type: ignore[arg-type]
        redactor=Redactor(secrets=secrets, env_vars=_secret_env_names()),
    )


def _secret_env_names() -> list[str]:
    """The key variables, and every variable named like a credential (the tools' one rule)."""
    names = set(DEFAULT_SECRET_ENV_VARS)
    names.update(name for name in os.environ if is_secret(name))
    return sorted(names)
