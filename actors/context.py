"""Everything a mission's actors need from the outside world, passed in, never global.

The journal, the model clients, the tool settings, the clock and the stop flag are collected
in one :class:`MissionContext` built by the runner (or by a test with loopback servers and a
tmp dir).  ``record`` is the one door to the log for sessions: once the mission is stopping it
refuses to write, so a session still in flight ends at its next step instead of writing past
the mission's final event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ocactors.actors.models import ModelClient
from ocactors.actors.session import AgentSession, SessionInterrupted, SessionLimits
from ocactors.events import Journal, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, MissionSettings, Record
from ocactors.tools import ShellConfig, WebConfig


@dataclass
class Meter:
    """Tokens and cost so far, shared by the sessions (thread-safe), checked before each turn."""

    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    _models: dict[str, str] = field(default_factory=dict, repr=False)

    def observe(self, event: Record) -> None:
        """Journal subscriber (and log replayer): count every model response's usage."""
        if isinstance(event, ev.SessionStarted):
            self._models[event.session] = event.model
        elif isinstance(event, ev.ModelResponded):
            model = self._models.get(event.session, "")
            self.add(event.usage.prompt_tokens, event.usage.completion_tokens, model)

    def add(self, prompt: int, completion: int, model: str) -> None:
        """Count one turn's usage at ``model``'s price (per million tokens)."""
        price_in, price_out = self.prices.get(model, (0.0, 0.0))
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.cost += (prompt * price_in + completion * price_out) / 1_000_000

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def exceeded(self, settings: MissionSettings) -> str | None:
        """Why the budget is spent, or None while there is room."""
        if settings.max_tokens is not None and self.tokens >= settings.max_tokens:
            return f"max tokens {settings.max_tokens} reached ({self.tokens} used)"
        if settings.max_cost is not None and self.cost >= settings.max_cost:
            return f"max cost {settings.max_cost:.4f} reached ({self.cost:.4f} spent)"
        return None


SessionFactory = Callable[..., AgentSession]


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

    def record(self, event: Event, actor: str) -> Event:
        """Append a session's event; refuse once the mission is stopping."""
        if self.stopping.is_set():
            raise SessionInterrupted("stopped")
        return self.journal.append(event, actor=actor).event

    def gate(self, cancel: threading.Event | None = None) -> Callable[[], None]:
        """The Commander's check before every model turn: stop, TTL and budget."""

        def check() -> None:
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
