"""The agent loop: one model, one toolbox, run until the role's final tool is called.

Every step is recorded before and after it happens (``model.requested`` then
``model.responded``; ``tool.called`` then ``tool.returned``), and the session's state is the fold
of those events (:mod:`ocactors.actors.session_state`).  So the loop below never keeps a
private copy of the conversation: it asks the fold what to do next, which is what lets a
session continue after a crash from exactly the recorded point.

Healing lives here where it needs the conversation (nudges for plain-text answers, tool errors
for malformed calls, compaction on context overflow); transport retries live in the model
client.  Every loop is bounded by :class:`SessionLimits`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocactors.actors.compaction import compact
from ocactors.actors.masking import DEFAULT_KEEP_TURNS, mask_observations
from ocactors.actors.models import (
    ContextOverflow,
    ModelClient,
    ModelError,
    RetryInfo,
    estimate_tokens,
)
from ocactors.actors.prices import PriceBook
from ocactors.actors.session_state import SessionState, apply_session, fold_session
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import ChatMessage, Event, Record, ToolCall
from ocactors.tools import Toolbox, ToolError, ToolSpec

NUDGE = (
    "You answered in plain text. Do not explain: call one of your tools now. "
    "When the work is complete, call {final} with its arguments."
)


class Recorder(Protocol):
    """Where a session's events go: the mission's journal, stamped with the actor's name."""

    def __call__(self, event: Event, actor: str) -> Event: ...


class SessionInterrupted(Exception):
    """The Commander asked the session to stop (stop, budget, TTL) between two steps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FinalTool:
    """A role's finishing tool: its schema, and ``accept`` which checks the arguments.

    ``accept`` raises ToolError (or ValueError) with a message for the model when the
    arguments are not acceptable, otherwise returns the session's result.
    """

    spec: ToolSpec
    accept: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SessionBrief:
    """Who the session is and what it is asked to do."""

    session: str
    actor: str
    role: str
    system: str
    brief: str
    final: FinalTool
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Bounds on every healing loop, so a confused model ends instead of spinning, and what
    each request may carry.

    ``observation_turns``: tool results of older turns are masked in the request (see
    :mod:`ocactors.actors.masking`; 0 sends everything), per role in
    ``observation_turns_by_role``.  ``prices`` puts a dollar figure on each recorded turn.
    """

    max_turns: int = 80
    max_nudges: int = 3
    max_errors_in_row: int = 8
    max_compactions: int = 4
    keep_recent: int = 8
    window_fill: float = 0.85
    observation_turns: int = DEFAULT_KEEP_TURNS
    observation_turns_by_role: Mapping[str, int] = field(default_factory=dict)
    prices: PriceBook = field(default_factory=PriceBook)

    def observation_window(self, role: str) -> int:
        """How many recent turns of ``role`` keep their tool results whole."""
        return self.observation_turns_by_role.get(role, self.observation_turns)


class RunsSession(Protocol):
    """What a session factory returns (an AgentSession, an OpenCode session): ``run`` ends it.

    ``run`` returns the outcome or raises SessionInterrupted when the gate says stop.
    """

    def run(self) -> SessionOutcome: ...


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """How the session ended: a result from the final tool, or a failure reason."""

    result: dict[str, Any] | None
    failure: str | None
    state: SessionState


class AgentSession:
    """Drives one conversation; construct with the session's prior events to resume it."""

    def __init__(
        self,
        brief: SessionBrief,
        *,
        client: ModelClient,
        toolbox: Toolbox,
        record: Recorder,
        mission: str,
        gate: Callable[[], None] = lambda: None,
        limits: SessionLimits = SessionLimits(),
        prior: Iterable[Record] = (),
    ) -> None:
        self.brief = brief
        self._client = client
        self._toolbox = toolbox
        self._record = record
        self._gate = gate
        self._limits = limits
        self._mission = mission
        self._tools = [*toolbox.schemas(), brief.final.spec.schema()]
        self.state = fold_session(prior)

    def run(self) -> SessionOutcome:
        """Step until the session ends; raises SessionInterrupted when the gate says stop."""
        if not self.state.started and not self.state.ended:
            self._start()
        while not self.state.ended:
            self._gate()
            self._step()
        return SessionOutcome(self.state.result, self.state.failure, self.state)

    def _emit(self, event: Event) -> None:
        stamped = self._record(event, self.brief.actor)
        self.state = apply_session(self.state, stamped)

    def _start(self) -> None:
        opening = [
            ChatMessage(role="system", content=self.brief.system),
            ChatMessage(role="user", content=self.brief.brief),
        ]
        self._emit(
            ev.SessionStarted(
                session=self.brief.session,
                role=self.brief.role,
                model=self._client.model,
                task_id=self.brief.task_id,
                messages=opening,
            )
        )

    def _step(self) -> None:
        match next_step(self.state, self._limits):
            case RunTool(call=call):
                self._run_call(call)
            case Nudge():
                self._nudge()
            case Fail(reason=reason):
                self._fail(reason)
            case AskModel():
                self._ask_model()

    # --- the model ---------------------------------------------------------------------

    def _ask_model(self) -> None:
        turn = self.state.turn if self.state.awaiting_model else self.state.turn + 1
        if self._too_big() and not self._compact(turn):
            return
        self._emit(ev.ModelRequested(session=self.brief.session, turn=turn, model=self._model))
        started = time.perf_counter()
        try:
            reply = self._client.complete(
                self._request(),
                self._tools,
                headers=self._headers(turn),
                on_retry=lambda info: self._retried(turn, info),
            )
        except ContextOverflow as error:
            self._compact(turn, reason=str(error))
            return
        except ModelError as error:
            self._emit(ev.ModelFailed(session=self.brief.session, turn=turn, error=str(error)))
            self._fail(f"model request failed: {error}")
            return
        self._emit(
            ev.ModelResponded(
                session=self.brief.session,
                turn=turn,
                message=reply.message,
                usage=self._limits.prices.priced(self._model, reply.usage),
                finish_reason=reply.finish_reason,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        )

    @property
    def _model(self) -> str:
        return self._client.model

    def _headers(self, turn: int) -> dict[str, str]:
        headers = {
            "X-Ocactors-Mission": self._mission,
            "X-Ocactors-Actor": self.brief.actor,
            "X-Ocactors-Session": self.brief.session,
            "X-Ocactors-Turn": str(turn),
        }
        if self.brief.task_id is not None:
            headers["X-Ocactors-Task"] = self.brief.task_id
        return headers

    def _retried(self, turn: int, info: RetryInfo) -> None:
        self._emit(
            ev.ModelRetried(
                session=self.brief.session,
                turn=turn,
                attempt=info.attempt,
                error=info.error,
                status=info.status,
                delay_s=round(info.delay_s, 3),
            )
        )

    def _request(self) -> list[ChatMessage]:
        """The conversation as sent: the folded messages with old tool results masked, a
        pure function of the log, so a resumed or rerun session sends the same bytes."""
        keep = self._limits.observation_window(self.brief.role)
        return mask_observations(self.state.messages, keep)

    def _too_big(self) -> bool:
        budget = self._client.context_window * self._limits.window_fill
        return estimate_tokens(self._request()) > budget

    def _compact(self, turn: int, reason: str = "") -> bool:
        """Replace older turns with a summary; False (and the session failed) if impossible.

        ``reason`` is the provider's own words (with the setting to change), kept in the
        failure so a person sees them in the log, not just "does not fit".
        """
        said = f": {reason}" if reason else ""
        if self.state.compactions >= self._limits.max_compactions:
            self._fail(
                f"the conversation does not fit the context window even after compaction{said}"
            )
            return False
        keep = max(2, self._limits.keep_recent >> self.state.compactions)
        result = compact(self.state.messages, keep)
        if result is None:
            self._fail(
                f"the conversation does not fit the context window and cannot be compacted{said}"
            )
            return False
        self._emit(
            ev.SessionCompacted(
                session=self.brief.session,
                turn=turn,
                dropped=result.dropped,
                summary=result.summary,
                kept=result.kept,
            )
        )
        return True

    # --- tools -------------------------------------------------------------------------

    def _run_call(self, call: ToolCall) -> None:
        self._emit(
            ev.ToolCalled(
                session=self.brief.session,
                turn=self.state.turn,
                call_id=call.id,
                name=call.name,
                arguments=call.arguments,
            )
        )
        if call.name == self.brief.final.spec.name:
            self._finish(call)
            return
        result = self._toolbox.call(call.name, call.arguments)
        self._returned(call, result.output, result.is_error)

    def _finish(self, call: ToolCall) -> None:
        try:
            result = self.brief.final.accept(self.brief.final.spec.parse(call.arguments))
        except (ToolError, ValueError) as error:
            self._returned(call, f"error: {error}", True)
            return
        self._emit(ev.SessionFinished(session=self.brief.session, result=result))

    def _returned(self, call: ToolCall, output: str, is_error: bool) -> None:
        self._emit(
            ev.ToolReturned(
                session=self.brief.session,
                call_id=call.id,
                name=call.name,
                output=output,
                is_error=is_error,
            )
        )

    def _nudge(self) -> None:
        text = NUDGE.format(final=self.brief.final.spec.name)
        self._emit(
            ev.SessionNudged(
                session=self.brief.session,
                turn=self.state.turn,
                reason="no tool call",
                message=ChatMessage(role="user", content=text),
            )
        )

    def _fail(self, reason: str) -> None:
        self._emit(ev.SessionFailed(session=self.brief.session, reason=reason))


# --- what the session does next: a pure function of its folded state ---------------------


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run the first tool call the model asked for and has no result yet."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class Nudge:
    """The model answered in plain text: tell it to call a tool."""


@dataclass(frozen=True, slots=True)
class Fail:
    """End the session without a result, for ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class AskModel:
    """Ask the model for the next turn (or ask again, after a crash mid-request)."""


SessionStep = RunTool | Nudge | Fail | AskModel


def next_step(state: SessionState, limits: SessionLimits) -> SessionStep:
    """The session's one rule: what to do next, from its folded state and its limits alone.

    Because it reads nothing else, a session continued from the log after a crash takes
    exactly the step the crashed one would have taken.
    """
    if state.pending:
        return RunTool(state.pending[0])
    if state.errors_in_row >= limits.max_errors_in_row:
        return Fail(f"{state.errors_in_row} failed tool calls in a row")
    if _answered_in_text(state) and state.nudges >= limits.max_nudges:
        return Fail(f"the model answered in plain text {state.nudges + 1} times")
    if _answered_in_text(state):
        return Nudge()
    if state.turn >= limits.max_turns and not state.awaiting_model:
        return Fail(f"no final answer after {state.turn} turns")
    return AskModel()


def _answered_in_text(state: SessionState) -> bool:
    """The last word is the model's and it called nothing: it needs a nudge."""
    if state.awaiting_model or not state.messages:
        return False
    last = state.messages[-1]
    return last.role == "assistant" and not last.tool_calls
