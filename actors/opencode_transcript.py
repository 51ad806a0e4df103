"""An OpenCode session's messages as ocactors events: pure functions, no I/O.

``GET /session/{id}/message`` is the truth about an OpenCode session: a list of ``{info,
parts}``, where each assistant message is one model step (its text, reasoning and tool parts,
its tokens, its finish reason or error).  :func:`transcript` turns that list into the events an
ocactors session would have recorded (``model.requested``/``model.responded`` per assistant
message, ``tool.called``/``tool.returned`` per finished tool part, ``model.failed`` for an
error), each under a key.  The session records only the events whose key the log does not
already hold (:func:`recorded_keys`), so looking at the truth again, after a wake-up or after a
resume, never records anything twice.

Turn numbers: the Nth assistant message of the linked OpenCode session is turn
``link.turns + N`` (``session.linked`` says where a replacement session starts counting).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ocactors.events import catalogue as ev
from ocactors.events.catalogue import ChatMessage, Event, Record, ToolCall, Usage
from ocactors.tools import LeaseReport

ABORTED = "MessageAbortedError"
FINAL_TOOL_STATES = ("completed", "error")
MISSING_FILES = "files missing"
RESUMED = "resumed"
Key = tuple[str, int, str]


# --- OpenCode's wire shapes (only the fields we read; the rest is ignored) -------------


class OcTime(msgspec.Struct, kw_only=True):
    created: int = 0
    completed: int | None = None


class OcCache(msgspec.Struct, kw_only=True):
    read: int = 0
    write: int = 0


class OcTokens(msgspec.Struct, kw_only=True):
    input: int = 0
    output: int = 0
    reasoning: int = 0
    cache: OcCache = msgspec.field(default_factory=OcCache)


class OcError(msgspec.Struct, kw_only=True):
    name: str = "Error"
    data: dict[str, Any] = {}

    @property
    def text(self) -> str:
        """``Name: message`` in one line."""
        message = self.data.get("message") if isinstance(self.data, dict) else None
        return f"{self.name}: {message}" if message else self.name


class OcInfo(msgspec.Struct, kw_only=True):
    id: str
    role: str
    time: OcTime = msgspec.field(default_factory=OcTime)
    finish: str | None = None
    error: OcError | None = None
    tokens: OcTokens = msgspec.field(default_factory=OcTokens)
    providerID: str = ""
    modelID: str = ""

    @property
    def done(self) -> bool:
        """The step is over: completed, or ended by an error."""
        return self.time.completed is not None or self.error is not None


class OcToolState(msgspec.Struct, kw_only=True):
    status: str = "pending"
    input: dict[str, Any] = {}
    output: str = ""
    error: str = ""


class OcPart(msgspec.Struct, kw_only=True):
    type: str
    text: str = ""
    tool: str = ""
    callID: str = ""
    state: OcToolState | None = None


class OcMessage(msgspec.Struct, kw_only=True):
    info: OcInfo
    parts: list[OcPart] = []


MESSAGES = msgspec.json.Decoder(list[OcMessage])


@dataclass(frozen=True, slots=True)
class Reply:
    """How the OpenCode session's latest answer stands."""

    user_messages: int
    last: OcMessage | None
    """The last message if it is an assistant's, else None."""

    @property
    def final(self) -> bool:
        """The model stopped on its own (or failed): no further step will follow."""
        info = self.last.info if self.last else None
        return bool(info and info.done and (info.error or info.finish != "tool-calls"))


def reply_of(messages: Sequence[OcMessage]) -> Reply:
    """The number of user messages and the last message when it is an assistant's."""
    users = sum(m.info.role == "user" for m in messages)
    last = messages[-1] if messages and messages[-1].info.role == "assistant" else None
    return Reply(users, last)


# --- the events an OpenCode transcript implies ------------------------------------------


def transcript(
    session: str, messages: Sequence[OcMessage], offset: int, limit: int
) -> list[tuple[Key, Event]]:
    """Every event the messages imply, keyed; ``limit`` caps a tool result's characters."""
    out: list[tuple[Key, Event]] = []
    assistants = [m for m in messages if m.info.role == "assistant"]
    for index, message in enumerate(assistants, start=1):
        out += _turn(session, offset + index, message, limit)
    return out


def _turn(session: str, turn: int, message: OcMessage, limit: int) -> list[tuple[Key, Event]]:
    info = message.info
    model = f"{info.providerID}/{info.modelID}".strip("/") or "opencode"
    out: list[tuple[Key, Event]] = [
        (("requested", turn, ""), ev.ModelRequested(session=session, turn=turn, model=model))
    ]
    if not info.done:
        return out
    out.append((("responded", turn, ""), _responded(session, turn, message)))
    for part in message.parts:
        if part.type == "tool" and part.state and part.state.status in FINAL_TOOL_STATES:
            out += _tool(session, turn, part, part.state, limit)
    if info.error is not None and info.error.name != ABORTED:
        failed = ev.ModelFailed(session=session, turn=turn, error=info.error.text)
        out.append((("failed", turn, ""), failed))
    return out


def _responded(session: str, turn: int, message: OcMessage) -> ev.ModelResponded:
    info = message.info
    latency = (info.time.completed or info.time.created) - info.time.created
    return ev.ModelResponded(
        session=session,
        turn=turn,
        message=assistant_message(message),
        usage=usage_of(info.tokens),
        finish_reason=info.finish or ("error" if info.error else ""),
        latency_ms=float(max(latency, 0)),
    )


def _tool(
    session: str, turn: int, part: OcPart, state: OcToolState, limit: int
) -> list[tuple[Key, Event]]:
    failed = state.status == "error"
    output = cap(state.error if failed else state.output, limit)
    called = ev.ToolCalled(
        session=session,
        turn=turn,
        call_id=part.callID,
        name=part.tool,
        arguments=json.dumps(state.input, ensure_ascii=False),
    )
    returned = ev.ToolReturned(
        session=session, call_id=part.callID, name=part.tool, output=output, is_error=failed
    )
    return [(("called", turn, part.callID), called), (("returned", turn, part.callID), returned)]


def assistant_message(message: OcMessage) -> ChatMessage:
    """One assistant step as a provider-neutral message: text, reasoning and tool calls."""
    texts = [p.text for p in message.parts if p.type == "text" and p.text]
    thoughts = [p.text for p in message.parts if p.type == "reasoning" and p.text]
    calls = [
        ToolCall(
            id=p.callID,
            name=p.tool,
            arguments=json.dumps(p.state.input if p.state else {}, ensure_ascii=False),
        )
        for p in message.parts
        if p.type == "tool"
    ]
    return ChatMessage(
        role="assistant",
        content="\n".join(texts),
        tool_calls=calls,
        reasoning="\n".join(thoughts) or None,
    )


def usage_of(tokens: OcTokens) -> Usage:
    """OpenCode counts cached input apart; ocactors' meter counts all input as prompt."""
    prompt = tokens.input + tokens.cache.read + tokens.cache.write
    return Usage(prompt_tokens=prompt, completion_tokens=tokens.output + tokens.reasoning)


def summary_of(message: OcMessage | None) -> str:
    """The final answer's text, which is the worker's summary."""
    if message is None:
        return ""
    return assistant_message(message).content.strip()


def cap(text: str, limit: int) -> str:
    """At most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut: {len(text) - limit:,} more characters]"


# --- how a session ends ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """The model stopped with an answer: the summary."""

    summary: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The session cannot succeed: why."""

    reason: str


Ending = Done | Failed


def answered(reply: Reply) -> bool:
    """The final answer is a real one (not an abort), so a resume can finish with it."""
    info = reply.last.info if reply.last else None
    return bool(info and info.error is None)


def ending_of(reply: Reply) -> Ending:
    """How the session ends, from its last (final) reply."""
    info = reply.last.info if reply.last else None
    if info is None:
        return Failed("OpenCode ended without an answer")
    if info.error is not None and info.error.name == ABORTED:
        return Failed("the OpenCode session was aborted from outside ocactors")
    if info.error is not None:
        return Failed(f"OpenCode failed: {info.error.text}")
    return Done(summary_of(reply.last))


def violation(report: LeaseReport) -> str:
    """The session's failure when it changed files outside its lease."""
    shown = ", ".join(f"{c.path} ({c.kind}, {c.outcome})" for c in report.changes[:20])
    more = len(report.changes) - 20
    listed = shown + (f" and {more} more" if more > 0 else "")
    return f"the OpenCode session changed files outside its lease, put back: {listed}"


# --- what the log already holds ---------------------------------------------------------


def recorded_keys(events: Iterable[Record]) -> set[Key]:
    """The keys of the transcript events already in the log (see :func:`transcript`).

    A ``tool.returned`` belongs to the turn of the ``tool.called`` it answers.
    """
    keys: set[Key] = set()
    turns: dict[str, int] = {}
    for event in events:
        match event:
            case ev.ModelRequested(turn=turn):
                keys.add(("requested", turn, ""))
            case ev.ModelResponded(turn=turn):
                keys.add(("responded", turn, ""))
            case ev.ModelFailed(turn=turn):
                keys.add(("failed", turn, ""))
            case ev.ToolCalled(turn=turn, call_id=call_id):
                turns[call_id] = turn
                keys.add(("called", turn, call_id))
            case ev.ToolReturned(call_id=call_id) if call_id in turns:
                keys.add(("returned", turns[call_id], call_id))
    return keys


def last_link(events: Iterable[Record]) -> ev.SessionLinked | None:
    """The OpenCode session this session last ran as (None before it was linked)."""
    link = None
    for event in events:
        if isinstance(event, ev.SessionLinked):
            link = event
    return link


def nudges_for_files(events: Iterable[Record]) -> int:
    """How many times the session was told its files were missing."""
    return sum(isinstance(e, ev.SessionNudged) and e.reason == MISSING_FILES for e in events)


# --- prompts ----------------------------------------------------------------------------

SYSTEM = (
    "You are a worker in an ocactors mission, run unattended: nobody will answer a question "
    "or approve a permission request, so do not ask; decide and carry on. Work only inside "
    "the workspace. Write only the files of your lease. When your files are written and "
    "work, stop calling tools and answer with one or two sentences that summarise what you "
    "built: that answer is your task's summary."
)


def first_prompt(brief: str, lease: Sequence[str]) -> str:
    """The task's brief and its lease, as OpenCode's user message."""
    return f"{brief}\n\n{lease_text(lease)}"


def lease_text(lease: Sequence[str]) -> str:
    """What the worker may write, and that everything else is off limits."""
    files = ", ".join(lease) if lease else "(none)"
    return (
        f"Your lease: you may create or change only these files: {files}. Do not create, "
        "change, move or delete any other file: other workers own them, and ocactors puts "
        "back every change outside your lease and fails your task. Reading any file is fine."
    )


def missing_prompt(missing: Sequence[str]) -> str:
    """The nudge when the model stopped before writing all of its files."""
    return (
        f"You stopped, but you own {', '.join(missing)} and it does not exist yet. "
        "Write it now, then answer with your summary."
    )


CONTINUE = (
    "ocactors was stopped while you worked and has now resumed this task. Look at the files "
    "of your lease as they are, finish the task, then answer with your summary."
)


def title_of(brief: str, task_id: str | None, actor: str) -> str:
    """``worker T1: <task title>`` from the worker's brief (its ``Your task T1: ...`` line)."""
    match = re.search(r"^Your task (\S+): (.+)$", brief, re.MULTILINE)
    if match:
        return f"worker {match.group(1)}: {match.group(2).strip()}"[:200]
    return f"worker {task_id}" if task_id else actor
