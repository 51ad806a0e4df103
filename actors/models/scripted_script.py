"""The scripts the scripted model server plays: turns, faults, and how a turn is chosen.

Kept apart from the HTTP side (:mod:`ocactors.actors.models.scripted`) so a script can be
built, loaded from JSON and checked without a server.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from ocactors.actors.models import scripted_protocol as wire
from ocactors.events.catalogue import ChatMessage

FaultKind = Literal[
    "429", "500", "401", "stall", "malformed", "bad_body", "context_length", "disconnect"
]
Protocol = Literal["openai", "anthropic"]


class Fault(msgspec.Struct, frozen=True):
    """What goes wrong with a turn's first ``times`` attempts.

    kinds: ``429`` (with ``Retry-After: retry_after`` when set), ``500``, ``401``, ``stall`` (sleep
    ``stall_s`` before answering normally: past a client's read timeout), ``malformed``
    (tool-call arguments that are not JSON), ``bad_body`` (a 200 whose body is not the
    protocol), ``context_length`` (the provider's prompt-too-long 400), ``disconnect``
    (the connection is dropped before the answer completes).
    """

    kind: FaultKind
    times: int = 1
    retry_after: float | None = None
    stall_s: float = 1.0


ToolCallScript = tuple[str, Mapping[str, Any] | str]


@dataclass(frozen=True)
class Turn:
    """One scripted assistant reply; ``tool_calls`` are (name, arguments dict or raw JSON).

    ``usage=False`` leaves usage out of the answer (clients must estimate it).
    ``call_ids`` are the tool calls' ids, in order (a replayed log gives the recorded ones;
    missing ids are made up as ``call_<turn>_<index>``); ``finish_reason`` overrides the
    one implied by the answer (``tool_calls`` or ``stop``), in OpenAI's words. The rest is
    what a provider sends beside the text, played as given (see ChatMessage):
    ``reasoning_field`` (OpenAI-compatible: the field the reasoning goes in, default
    ``reasoning_content``), ``reasoning_details`` (OpenRouter), ``refusal`` (OpenAI),
    ``thinking_blocks`` (Anthropic: played instead of one block made from ``reasoning``).
    """

    content: str = ""
    tool_calls: Sequence[ToolCallScript] = ()
    reasoning: str | None = None
    delay_s: float = 0.0
    fault: Fault | None = None
    usage: bool = True
    call_ids: Sequence[str] = ()
    finish_reason: str | None = None
    reasoning_field: str | None = None
    reasoning_details: Sequence[Mapping[str, Any]] = ()
    refusal: str | None = None
    thinking_blocks: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class ScriptedRequest:
    """What a callable script is given to choose its Turn."""

    actor: str
    turn: int
    headers: dict[str, str]
    body: dict[str, Any]
    messages: list[ChatMessage]
    protocol: Protocol = "openai"


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server answered; header names are lower-case; ``ended`` is when the
    answer started to be written (so it is recorded before the client can see it)."""

    path: str
    headers: dict[str, str]
    body: Any
    actor: str
    turn: int
    started: float
    ended: float
    status: int = 200


ScriptEntry = Sequence[Turn] | Callable[[ScriptedRequest], Turn]
Script = Mapping[str, ScriptEntry]


class ScriptError(Exception):
    """The script has no answer for a request (unknown actor, ran out of turns)."""


def choose_turn(script: Script, request: ScriptedRequest) -> Turn:
    """The Turn to play: exact actor name first, then patterns in insertion order."""
    entry = script_entry(script, request.actor)
    if callable(entry):
        return entry(request)
    if not 1 <= request.turn <= len(entry):
        raise ScriptError(
            f"the script for actor {request.actor!r} ran out: it has {len(entry)} turns, "
            f"turn {request.turn} was requested"
        )
    return entry[request.turn - 1]


def script_entry(script: Script, actor: str) -> ScriptEntry:
    if actor in script:
        return script[actor]
    for pattern, entry in script.items():
        if fnmatch.fnmatchcase(actor, pattern):
            return entry
    raise ScriptError(f"no script for actor {actor!r} (patterns: {list(script)})")


def scripted_request(protocol: Protocol, headers: dict[str, str], body: Any) -> ScriptedRequest:
    body = body if isinstance(body, dict) else {}
    messages = (
        wire.anthropic_messages(body) if protocol == "anthropic" else wire.openai_messages(body)
    )
    actor = headers.get("x-ocactors-actor", "default")
    turn_header = headers.get("x-ocactors-turn", "")
    if turn_header.isdigit():
        turn = int(turn_header)
    else:
        turn = sum(m.role == "assistant" for m in messages) + 1
    return ScriptedRequest(actor, turn, headers, body, messages, protocol)


# --- scripts as JSON files -----------------------------------------------------------


class _CallSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arguments: dict[str, Any] | str = {}
    id: str | None = None


class _TurnSpec(msgspec.Struct, forbid_unknown_fields=True):
    content: str = ""
    tool_calls: list[_CallSpec] = []
    reasoning: str | None = None
    delay_s: float = 0.0
    fault: Fault | None = None
    usage: bool = True
    finish_reason: str | None = None
    reasoning_field: str | None = None
    reasoning_details: list[dict[str, Any]] = []
    refusal: str | None = None
    thinking_blocks: list[dict[str, Any]] = []


def load_script(path: str | Path) -> dict[str, list[Turn]]:
    """Read ``{"actor-or-pattern": [{"content", "tool_calls": [{"name", "arguments", "id"}],
    "reasoning", "delay_s", "fault": {"kind", "times", "retry_after", "stall_s"},
    "finish_reason", "reasoning_field", "reasoning_details", "refusal", "thinking_blocks"}]}``."""
    try:
        specs = msgspec.json.decode(Path(path).read_bytes(), type=dict[str, list[_TurnSpec]])
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ScriptError(f"{path}: {error}") from None
    return {actor: [_turn(spec) for spec in turns] for actor, turns in specs.items()}


def _turn(spec: _TurnSpec) -> Turn:
    calls = [(c.name, c.arguments) for c in spec.tool_calls]
    ids = [c.id for c in spec.tool_calls if c.id is not None]
    if ids and len(ids) != len(calls):
        raise ScriptError("give every tool call of a turn an id, or none")
    return Turn(
        spec.content,
        calls,
        spec.reasoning,
        spec.delay_s,
        spec.fault,
        spec.usage,
        call_ids=ids,
        finish_reason=spec.finish_reason,
        reasoning_field=spec.reasoning_field,
        reasoning_details=spec.reasoning_details,
        refusal=spec.refusal,
        thinking_blocks=spec.thinking_blocks,
    )
