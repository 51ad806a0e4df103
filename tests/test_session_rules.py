"""A session's next step as a table of (folded state, limits) -> step: no model, no threads."""

from __future__ import annotations

import dataclasses

import pytest

from ocactors.actors.session import (
    AskModel,
    Fail,
    Nudge,
    RunTool,
    SessionLimits,
    SessionStep,
    next_step,
)
from ocactors.actors.session_state import SessionState
from ocactors.events.catalogue import ChatMessage, ToolCall

CALL = ToolCall(id="c1", name="read_file", arguments="{}")
OPENING = (ChatMessage(role="system", content="s"), ChatMessage(role="user", content="u"))
TEXT = ChatMessage(role="assistant", content="I would write the file like this...")
LIMITS = SessionLimits(max_turns=5, max_nudges=2, max_errors_in_row=3)


def state(**changes: object) -> SessionState:
    return dataclasses.replace(SessionState(session="s", messages=OPENING), **changes)  # type: ignore[arg-type]


ROWS: list[tuple[str, SessionState, SessionStep]] = [
    ("a fresh session asks the model", state(), AskModel()),
    ("a tool call without its result runs", state(pending=(CALL,), turn=1), RunTool(CALL)),
    (
        "a pending call runs even past the turn limit (its result was asked for)",
        state(pending=(CALL,), turn=5),
        RunTool(CALL),
    ),
    (
        "too many failed calls in a row end the session",
        state(turn=2, errors_in_row=3),
        Fail("3 failed tool calls in a row"),
    ),
    ("a plain-text answer is nudged", state(messages=(*OPENING, TEXT), turn=1), Nudge()),
    (
        "plain text past the nudge limit ends the session",
        state(messages=(*OPENING, TEXT), turn=3, nudges=2),
        Fail("the model answered in plain text 3 times"),
    ),
    (
        "the turn limit ends the session",
        state(turn=5),
        Fail("no final answer after 5 turns"),
    ),
    (
        "a request in flight at a crash is asked again, even at the turn limit",
        state(turn=5, awaiting_model=True),
        AskModel(),
    ),
]


@pytest.mark.parametrize(("folded", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_next_step(folded: SessionState, expected: SessionStep) -> None:
    assert next_step(folded, LIMITS) == expected
