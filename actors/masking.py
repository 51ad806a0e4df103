"""Observation masking: old tool results leave the request, not the log.

Every turn used to resend the whole conversation, so a worker reading a 4 KB file per turn
sent 414 KB in its 80th request.  Most of that is tool output the model read many turns ago
and has acted on since.  Masking replaces those results in the *request* with a one-line stub
(the tool, its arguments, the size, and how to see it again), while the log keeps every byte.
"The Complexity Trap" (Lindenbauer et al., 2025) found this halves an SWE agent's cost at the
solve rate of LLM summarisation; it needs no model call, so it is also deterministic.

The mask is a pure function of the session's messages (themselves a fold of its events), so
a resumed session and ``replay --rerun`` send exactly the bytes the first run sent.

Where the line falls: the results of the latest ``keep_turns`` assistant turns are always
whole, and the line moves only every ``keep_turns`` turns (between ``keep_turns`` and
``2 * keep_turns - 1`` turns are whole).  Between two moves each request is the previous
one plus the new turn, which is what providers' prompt caches reward; a mask that slid by
one turn every turn would rewrite the middle of every request.  Compaction
(:mod:`ocactors.actors.compaction`) stays the last resort, judged on the masked request.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ocactors.actors.models.config import ROLES
from ocactors.events.catalogue import ChatMessage, ToolCall

DEFAULT_KEEP_TURNS = 6
MIN_MASKED_CHARS = 400  # a shorter result is cheaper whole than as a stub
ARGUMENTS_LIMIT = 160
STUB = (
    "[result hidden to save context: {call} returned {size}. "
    "Call {name} again with these arguments if you need it.]"
)


class MaskingTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[masking]`` in ``.opencode/ocactors.toml``::

        [masking]
        keep_turns = 6          # tool results of the latest 6 to 11 turns go whole; 0: all
        [masking.roles]
        reviewer = 10           # per role, over keep_turns

    Becomes ``SessionLimits(observation_turns=keep_turns, observation_turns_by_role=roles)``.
    """

    keep_turns: int = DEFAULT_KEEP_TURNS
    roles: dict[str, int] = {}

    def __post_init__(self) -> None:
        unknown = sorted(set(self.roles) - set(ROLES))
        if unknown:
            raise ValueError(f"[masking.roles] {unknown[0]}: use {', '.join(ROLES)}")
        if self.keep_turns < 0 or any(n < 0 for n in self.roles.values()):
            raise ValueError("[masking] turns must be 0 (off) or more")


def mask_observations(messages: Sequence[ChatMessage], keep_turns: int) -> list[ChatMessage]:
    """The conversation to send: tool results of turns before the line become stubs.

    ``keep_turns`` <= 0 turns masking off.  Messages are never changed in place.
    """
    if keep_turns <= 0:
        return list(messages)
    turns = [i for i, message in enumerate(messages) if message.role == "assistant"]
    hidden = masked_turns(len(turns), keep_turns)
    if hidden == 0:
        return list(messages)
    line = turns[hidden]
    calls = {c.id: c for m in messages[:line] if m.role == "assistant" for c in m.tool_calls}
    return [
        stub(m, calls.get(m.tool_call_id or "")) if i < line and maskable(m) else m
        for i, m in enumerate(messages)
    ]


def masked_turns(turns: int, keep_turns: int) -> int:
    """How many of the oldest turns have their results masked: a multiple of
    ``keep_turns`` that leaves between ``keep_turns`` and ``2 * keep_turns - 1`` whole."""
    if keep_turns <= 0 or turns < 2 * keep_turns:
        return 0
    return (turns - keep_turns) // keep_turns * keep_turns


def maskable(message: ChatMessage) -> bool:
    """A tool result long enough that a stub saves something."""
    return message.role == "tool" and len(message.content) >= MIN_MASKED_CHARS


def stub(message: ChatMessage, call: ToolCall | None) -> ChatMessage:
    """The one-line stand-in for a tool result: what was called, how big, how to get it."""
    name = (call.name if call else message.name) or "the tool"
    arguments = _flat(call.arguments) if call else ""
    text = STUB.format(call=f"{name}({arguments})", size=size_of(message.content), name=name)
    return msgspec.structs.replace(message, content=text)


def size_of(content: str) -> str:
    """``4,213 chars in 120 lines``."""
    lines = content.count("\n") + (not content.endswith("\n"))
    return f"{len(content):,} chars in {lines:,} line{'s' if lines != 1 else ''}"


def _flat(arguments: str) -> str:
    flat = " ".join(arguments.split())
    return flat if len(flat) <= ARGUMENTS_LIMIT else flat[: ARGUMENTS_LIMIT - 3] + "..."
