"""What every model client offers, whatever the provider behind it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ocactors.events.catalogue import ChatMessage, Usage

PER_MESSAGE_TOKENS = 4
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class ModelReply:
    """The assistant's message for one turn, with what it cost and how long it took."""

    message: ChatMessage
    usage: Usage
    finish_reason: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class RetryInfo:
    """Told to ``on_retry`` before the client sleeps and tries again.

    ``attempt`` is the attempt that failed (1-based), ``error`` its one-line message,
    ``status`` its HTTP status if any, ``delay_s`` how long the client will now wait.
    """

    attempt: int
    error: str
    status: int | None
    delay_s: float


OnRetry = Callable[[RetryInfo], None]


class ModelClient(Protocol):
    """One model at one endpoint. Thread-safe: many sessions share a client."""

    @property
    def model(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    def complete(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        *,
        headers: Mapping[str, str],
        on_retry: OnRetry | None = None,
    ) -> ModelReply:
        """Ask for the next assistant message; ``tools`` are in OpenAI function format."""
        ...


def message_chars(message: ChatMessage) -> int:
    """Characters a message puts in front of the model (content, reasoning, tool calls)."""
    calls = sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
    return len(message.content) + len(message.reasoning or "") + calls


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    """A provider-free token estimate: characters / 4 plus 4 per message.

    Good to within a factor of about 1.5 for English and code; used for budgets and for
    deciding when to compact, and in ``Usage(estimated=True)`` when a server omits usage.
    """
    chars = sum(message_chars(m) for m in messages)
    return chars // CHARS_PER_TOKEN + PER_MESSAGE_TOKENS * len(messages)
