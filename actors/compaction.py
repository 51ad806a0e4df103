"""Shrinking a conversation that no longer fits the model's context window.

Compaction is deterministic (no extra model call, so it works when the model is the thing
that is overloaded): keep the system prompt and the task brief, keep the latest turns whole,
and replace everything between with a summary listing what was done: tool calls with a short
note of their results and the assistant's own remarks.  A kept tail never starts with a tool
result whose call was dropped, because providers reject orphaned tool results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ocactors.events.catalogue import ChatMessage

HEAD = 2  # system prompt and task brief
NOTE_LIMIT = 160


@dataclass(frozen=True, slots=True)
class Compaction:
    """The outcome: the new conversation, how many messages went, and their summary."""

    kept: list[ChatMessage]
    dropped: int
    summary: str


def compact(messages: Sequence[ChatMessage], keep_recent: int) -> Compaction | None:
    """Summarise all but the head and the last ``keep_recent`` messages; None if too short."""
    start = _tail_start(messages, keep_recent)
    if start <= HEAD:
        return None
    dropped = messages[HEAD:start]
    summary = summarise(dropped)
    note = ChatMessage(
        role="user",
        content="[Earlier turns were removed to fit the context window. Summary:]\n" + summary,
    )
    return Compaction([*messages[:HEAD], note, *messages[start:]], len(dropped), summary)


def _tail_start(messages: Sequence[ChatMessage], keep_recent: int) -> int:
    start = max(HEAD, len(messages) - max(keep_recent, 1))
    while start < len(messages) and messages[start].role == "tool":
        start -= 1  # keep the assistant message that made these calls
    return max(start, HEAD)


def summarise(messages: Sequence[ChatMessage]) -> str:
    """One line per dropped step, so the model still knows what it did."""
    lines: list[str] = []
    for message in messages:
        if message.role == "assistant":
            lines.extend(_assistant_lines(message))
        elif message.role == "tool":
            lines.append(f"  -> {message.name}: {_short(message.content)}")
        elif message.content:
            lines.append(f"- {message.role}: {_short(message.content)}")
    return "\n".join(lines) or "(nothing of note)"


def _assistant_lines(message: ChatMessage) -> list[str]:
    lines = [f"- you said: {_short(message.content)}"] if message.content.strip() else []
    lines.extend(f"- you called {c.name}({_short(c.arguments, 80)})" for c in message.tool_calls)
    return lines


def _short(text: str, limit: int = NOTE_LIMIT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
