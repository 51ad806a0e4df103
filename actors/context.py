"""Everything a mission's actors need from the outside world, passed in, never global.

The journal, the model clients, the tool settings, the clock and the stop flag are collected
in one :class:`MissionContext` built by the runner (or by a test with loopback servers and a
tmp dir).  ``record`` is the one door to the log for sessions: once the mission is stopping it
refuses to write, so a session still in flight ends at its next step instead of writing past
the mission's final event.  :meth:`MissionContext.close_sessions` shuts that door and, under
the same lock, ends every session the log still shows open with ``session.interrupted``, so
after any ending no session is left running in the log.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ocactors.actors.history import History
from ocactors.actors.models import ModelClient
from ocactors.actors.session import AgentSession, RunsSession, SessionInterrupted, SessionLimits
from ocactors.events import Journal, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, MissionSettings, Record
from ocactors.tools import ShellConfig, WebConfig


@dataclass
class Meter:
    """Tokens and dollars so far, shared by the sessions (thread-safe), checked before each turn.

    Dollars are the ones recorded on each turn (``Usage.cost_usd``, priced by the session's
    :class:`~ocactors.actors.prices.PriceBook`), so ``--max-cost`` works for every model the
    price table knows without any configuration, and a resumed mission counts what the
    first run spent.  ``prices`` (model -> dollars per million input, output tokens) prices
    turns recorded without a figure, e.g. by an older version; turns still unpriced are
    counted in ``unpriced``.
    """

    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    _models: dict[str, str] = field(default_factory=dict, repr=False)

    def observe(self, event: Record) -> None:
        """Journal subscriber (and log replayer): count every model response's usage."""
        if isinstance(event, ev.SessionStarted):
            self._models[event.session] = event.model
        elif isinstance(event, ev.ModelResponded):
            self.add_usage(event.usage, self._models.get(event.session, ""))

    def add_usage(self, usage: ev.Usage, model: str) -> None:
        """Count one turn: its recorded cost, else ``model``'s price in ``prices``."""
        cost = usage.cost_usd
        if cost is None and model in self.prices:
            price_in, price_out = self.prices[model]
            cost = (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1e6
        with self._lock:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.cached_tokens += usage.cached_tokens
            self.cost += cost or 0.0
            self.unpriced += cost is None

    def add(self, prompt: int, completion: int, model: str) -> None:
        """Count one turn's tokens at ``model``'s price in ``prices`` (per million tokens)."""
        self.add_usage(ev.Usage(prompt_tokens=prompt, completion_tokens=completion), model)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def exceeded(self, settings: MissionSettings) -> str | None:
        """Why the budget is spent, or None while there is room."""
        if settings.max_tokens is not None and self.tokens >= settings.max_tokens:
            return f"max tokens {settings.max_tokens} reached ({self.tokens} used)"
        if settings.max_cost is not None and self.cost >= settings.max_cost:
            return f"max cost ${settings.max_cost:g} reached (${self.cost:.4f} spent)"
        return None


SessionFactory = Callable[..., RunsSession]
RETIRED = "retired"
"""Why a crashed Commander's role actor stops: its session continues in a new actor."""
SESSION_ENDS = (ev.SessionFinished, ev.SessionFailed, ev.SessionInterrupted)


class OpenSessions:
    """Sessions the log shows started and not ended, with their actors (a journal subscriber)."""

    def __init__(self) -> None:
        self._open: dict[str, str] = {}

    def observe(self, event: Record) -> None:
        """Journal subscriber (and log replayer): follow session starts and ends."""
        if isinstance(event, ev.SessionStarted):
            self._open[event.session] = event.actor
        elif isinstance(event, SESSION_ENDS):
            self._open.pop(event.session, None)

    def snapshot(self) -> list[tuple[str, str]]:
        """(session, actor) of every open session, in the order they started."""
        return list(self._open.items())


@dataclass
class MissionContext:
    """The mission's side effects behind small interfaces."""

    mission: str
    workspace: Path
    journal: Journal
    clients: Mapping[str, ModelClient]
    settings: MissionSettings
    shell: ShellConfig = field(default_factory=ShellConfig)
    web: WebConfig = field(default_factory=WebConfig)
    http: httpx.Client | None = None
    limits: SessionLimits = field(default_factory=SessionLimits)
    meter: Meter = field(default_factory=Meter)
    stopping: threading.Event = field(default_factory=threading.Event)
    session_factory: SessionFactory = AgentSession
    on_before_write: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.monotonic
    tick_s: float = 0.5
    sessions: OpenSessions = field(default_factory=OpenSessions)
    history: History | None = None
    generation: int = 0
    """Bumped when a crashed Commander is replaced: the old one's role actors are retired."""
    _door: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, event: Event, actor: str) -> Event:
        """Append a session's event; refuse once the mission is stopping."""
        return self.recorder(self.generation)(event, actor)

    def recorder(self, generation: int) -> Callable[[Event, str], Event]:
        """``record`` for a role actor of ``generation``: refused once that one is retired."""

        def record(event: Event, actor: str) -> Event:
            with self._door:
                if generation != self.generation:
                    raise SessionInterrupted(RETIRED)
                if self.stopping.is_set():
                    raise SessionInterrupted("stopped")
                return self.journal.append(event, actor=actor).event

        return record

    def retire_generation(self) -> None:
        """The Commander died: its role actors may write nothing more."""
        with self._door:
            self.generation += 1

    def close_sessions(self, reason: str) -> None:
        """Refuse session writes from now on; end each open session with ``reason``."""
        with self._door:
            self.stopping.set()
            for session, actor in self.sessions.snapshot():
                self.journal.append(
                    ev.SessionInterrupted(session=session, reason=reason), actor=actor
                )

    def interrupted(self, session: str, actor: str, reason: str) -> str:
        """Record that the gate stopped ``session`` (unless the door is shut); the detail.

        A retired actor records nothing: its session goes on in the new Commander's actor.
        """
        if reason == RETIRED:
            return ""
        detail = (self.meter.exceeded(self.settings) or "") if reason == "budget" else ""
        event = ev.SessionInterrupted(session=session, reason=reason, detail=detail)
        with contextlib.suppress(SessionInterrupted):
            self.record(event, actor)
        return detail

    def gate(
        self, cancel: threading.Event | None = None, generation: int | None = None
    ) -> Callable[[], None]:
        """The Commander's check before every model turn: retired, stop, TTL and budget."""
        mine = self.generation if generation is None else generation

        def check() -> None:
            if mine != self.generation:
                raise SessionInterrupted(RETIRED)
            if self.stopping.is_set():
                raise SessionInterrupted("stopped")
            if cancel is not None and cancel.is_set():
                raise SessionInterrupted("ttl")
            if self.meter.exceeded(self.settings):
                raise SessionInterrupted("budget")

        return check

    def session_events(self, session: str, actor: str) -> tuple[Record, ...]:
        """One session's recorded events, for continuing it after a crash or a resume."""
        self.journal.flush()
        return tuple(
            event
            for event in read_events(self.journal.path, actors=[actor])
            if getattr(event, "session", None) == session
        )
