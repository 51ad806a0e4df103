"""One agent session as a pure fold of its events.

The conversation a model sees is rebuilt from the log alone: the opening messages, each
response, each tool result, each nudge, and compactions that replace older turns with a
summary.  A session that was interrupted mid-conversation (stop, crash, kill -9) therefore
continues from its recorded turns: an unanswered ``model.requested`` is asked again and tool
calls without a ``tool.returned`` are run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ocactors.events import catalogue as ev
from ocactors.events.catalogue import ChatMessage, Record, ToolCall
from ocactors.events.fold import fold


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a session has said and done so far."""

    session: str = ""
    role: str = ""
    model: str = ""
    task_id: str | None = None
    started_ts: str = ""
    messages: tuple[ChatMessage, ...] = ()
    turn: int = 0
    awaiting_model: bool = False
    pending: tuple[ToolCall, ...] = ()
    nudges: int = 0
    errors_in_row: int = 0
    compactions: int = 0
    result: dict[str, Any] | None = None
    failure: str | None = None

    @property
    def started(self) -> bool:
        """True once ``session.started`` is in the log."""
        return bool(self.session)

    @property
    def ended(self) -> bool:
        """True once the session finished or failed."""
        return self.result is not None or self.failure is not None


def fold_session(events: Iterable[Record]) -> SessionState:
    """Replay one session's events (already filtered to that session)."""
    return fold(apply_session, SessionState(), events)


def apply_session(state: SessionState, event: Record) -> SessionState:
    """The session's transition function; events of other kinds leave it unchanged."""
    handler = _HANDLERS.get(type(event))
    return handler(state, event) if handler else state


def _started(s: SessionState, e: ev.SessionStarted) -> SessionState:
    return SessionState(
        session=e.session,
        role=e.role,
        model=e.model,
        task_id=e.task_id,
        started_ts=e.ts,
        messages=tuple(e.messages),
    )


def _requested(s: SessionState, e: ev.ModelRequested) -> SessionState:
    return dataclasses.replace(s, turn=e.turn, awaiting_model=True)


def _responded(s: SessionState, e: ev.ModelResponded) -> SessionState:
    return dataclasses.replace(
        s,
        messages=(*s.messages, e.message),
        awaiting_model=False,
        pending=tuple(e.message.tool_calls),
    )


def _returned(s: SessionState, e: ev.ToolReturned) -> SessionState:
    reply = ChatMessage(role="tool", content=e.output, tool_call_id=e.call_id, name=e.name)
    return dataclasses.replace(
        s,
        messages=(*s.messages, reply),
        pending=tuple(call for call in s.pending if call.id != e.call_id),
        errors_in_row=s.errors_in_row + 1 if e.is_error else 0,
    )


def _nudged(s: SessionState, e: ev.SessionNudged) -> SessionState:
    messages = (*s.messages, e.message) if e.message else s.messages
    return dataclasses.replace(s, messages=messages, nudges=s.nudges + 1)


def _compacted(s: SessionState, e: ev.SessionCompacted) -> SessionState:
    return dataclasses.replace(s, messages=tuple(e.kept), compactions=s.compactions + 1)


def _finished(s: SessionState, e: ev.SessionFinished) -> SessionState:
    return dataclasses.replace(s, result=dict(e.result), pending=())


def _failed(s: SessionState, e: ev.SessionFailed) -> SessionState:
    return dataclasses.replace(s, failure=e.reason, pending=())


_HANDLERS: dict[type, Callable[[SessionState, Any], SessionState]] = {
    ev.SessionStarted: _started,
    ev.ModelRequested: _requested,
    ev.ModelResponded: _responded,
    ev.ToolReturned: _returned,
    ev.SessionNudged: _nudged,
    ev.SessionCompacted: _compacted,
    ev.SessionFinished: _finished,
    ev.SessionFailed: _failed,
}
