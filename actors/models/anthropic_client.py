"""Anthropic Messages (``POST {base_url}/v1/messages``) over httpx, streamed or not.

Converts the provider-neutral conversation: system messages go to ``system``; assistant
tool calls become ``tool_use`` blocks and tool results ``tool_result`` blocks in a user
message (consecutive results, and a user text after them, merged into one user message,
since Anthropic wants roles to alternate). Every ``thinking`` and ``redacted_thinking``
block of a reply is kept in ``ChatMessage.thinking_blocks``, in order, each with its own
``signature`` or ``data``, and sent back exactly so (Anthropic checks the signatures and
wants the thinking of a tool-use turn back); unsigned reasoning from another provider is
never sent (Anthropic rejects it). A ``refusal`` stop keeps its explanation in
``ChatMessage.refusal``. Tools arrive in OpenAI function format and are converted.
Retries are not done here: see RetryingClient.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from ocactors.actors.models._http import is_overflow, open_response, sse_data, timeout_for
from ocactors.actors.models.errors import (
    BadResponse,
    ContextOverflow,
    ModelError,
    RateLimited,
    ServerError,
    TransportError,
    scrub,
)
from ocactors.actors.models.openai_client import new_call_id
from ocactors.actors.models.types import ModelReply, OnRetry, estimate_tokens
from ocactors.events.catalogue import ChatMessage, ToolCall, Usage

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_CONTEXT_WINDOW = 200_000
DEFAULT_MAX_TOKENS = 8192
DEFAULT_TIMEOUT_S = 300.0
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}
EPHEMERAL = {"type": "ephemeral"}
THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})
STREAM_ERRORS: dict[str, tuple[type[ModelError], int | None]] = {
    "rate_limit_error": (RateLimited, 429),
    "overloaded_error": (ServerError, 529),
    "api_error": (ServerError, 500),
}


# --- the wire format we read ---------------------------------------------------------


class _Block(msgspec.Struct):
    type: str = ""
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct):
    content: list[_Block] = []
    stop_reason: str | None = None
    stop_details: dict[str, Any] | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_details: dict[str, Any] | None = None


class _Event(msgspec.Struct):
    type: str = ""
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


_MESSAGE = msgspec.json.Decoder(_Message)
# What a reply is read into: message, stop reason, usage, stop details.
_Read = tuple[ChatMessage, str | None, _Usage | None, dict[str, Any] | None]
_EVENT = msgspec.json.Decoder(_Event)


# --- what we send --------------------------------------------------------------------


def tool_input(arguments: str) -> dict[str, Any]:
    """Arguments as the object Anthropic insists on; broken JSON is kept, visibly."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def thinking_sent(message: ChatMessage) -> list[dict[str, Any]]:
    """The thinking blocks to send back: as received, or (a message recorded before
    ``thinking_blocks`` existed) one block from the reasoning, only if it was signed."""
    if message.thinking_blocks:
        return [dict(b) for b in message.thinking_blocks if signed(b)]
    if message.reasoning and message.reasoning_signature:
        signature = message.reasoning_signature
        return [{"type": "thinking", "thinking": message.reasoning, "signature": signature}]
    return []


def signed(block: dict[str, Any]) -> bool:
    """Can this block go back? Redacted thinking always; thinking only with a signature."""
    if block.get("type") == "redacted_thinking":
        return bool(block.get("data"))
    return block.get("type") == "thinking" and bool(block.get("signature"))


def assistant_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    """Thinking blocks (exactly as received), text, then tool_use blocks."""
    blocks = thinking_sent(message)
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c.arguments)}
        for c in message.tool_calls
    ]
    return blocks


def to_anthropic_turn(message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
    """The role and content blocks one ChatMessage becomes."""
    if message.role == "tool":
        result = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
            "content": message.content,
        }
        return "user", [result]
    if message.role == "assistant":
        blocks = assistant_blocks(message)
        return "assistant", blocks or [{"type": "text", "text": "(no content)"}]
    return "user", [{"type": "text", "text": message.content or "(empty)"}]


def to_anthropic(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """The ``system`` text and the alternating ``messages`` of a request."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role, blocks = to_anthropic_turn(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def with_breakpoints(
    system: str, turns: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``cache_control`` breakpoints on the prefix that repeats: the end of the system prompt
    (which caches the tools before it), the end of the first user turn (the brief), and the
    end of the last user turn (so the next request reads the conversation so far from the
    cache). Three of Anthropic's four; the blocks marked are copies, the inputs are kept."""
    blocks = [{"type": "text", "text": system, "cache_control": EPHEMERAL}] if system else []
    if not system and tools:
        tools = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
    users = [i for i, turn in enumerate(turns) if turn["role"] == "user"]
    marked = list(turns)
    for index in sorted({users[0], users[-1]} if users else set()):
        content = list(marked[index]["content"])
        content[-1] = {**content[-1], "cache_control": EPHEMERAL}
        marked[index] = {**marked[index], "content": content}
    return blocks, marked, tools


def to_anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool as an Anthropic tool (Anthropic-shaped tools pass through)."""
    if "input_schema" in tool:
        return tool
    function = tool.get("function", tool)
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    converted = {"name": function["name"], "input_schema": schema}
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


# --- what we read --------------------------------------------------------------------


def prompt_tokens(usage: _Usage) -> int:
    """All input tokens, cached or not (Anthropic counts cache reads separately)."""
    parts = (usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens)
    return sum(p or 0 for p in parts)


def reply_usage(usage: _Usage | None, messages: list[ChatMessage], reply: ChatMessage) -> Usage:
    """The provider's counts, or an estimate flagged ``estimated=True``."""
    if usage is None or usage.input_tokens is None:
        return Usage(
            prompt_tokens=estimate_tokens(messages),
            completion_tokens=estimate_tokens([reply]),
            estimated=True,
        )
    return Usage(
        prompt_tokens=prompt_tokens(usage),
        completion_tokens=usage.output_tokens or 0,
        cached_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )


def thinking_block(block: _Block) -> dict[str, Any]:
    """A thinking or redacted_thinking block as Anthropic wants it back."""
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data or ""}
    return {"type": "thinking", "thinking": block.thinking or "", "signature": block.signature}


def message_of(blocks: list[_Block]) -> ChatMessage:
    """The neutral assistant message for a list of content blocks."""
    texts = [b.text or "" for b in blocks if b.type == "text"]
    thinking = [b for b in blocks if b.type == "thinking"]
    calls = [
        ToolCall(
            id=b.id or new_call_id(),
            name=b.name or "",
            arguments=b.input if isinstance(b.input, str) else json.dumps(b.input or {}),
        )
        for b in blocks
        if b.type == "tool_use"
    ]
    signatures = [b.signature for b in thinking if b.signature]
    return ChatMessage(
        role="assistant",
        content="".join(texts),
        tool_calls=calls,
        reasoning="".join(b.thinking or "" for b in thinking) or None,
        reasoning_signature=signatures[-1] if signatures else None,
        thinking_blocks=[thinking_block(b) for b in blocks if b.type in THINKING_TYPES],
    )


def refused(message: ChatMessage, details: dict[str, Any] | None) -> ChatMessage:
    """A ``refusal`` stop, kept visible: its explanation in ``refusal`` and, when the
    model said nothing else, in ``content``."""
    explanation = (details or {}).get("explanation")
    text = explanation if isinstance(explanation, str) and explanation else "(refused)"
    content = message.content or text
    return msgspec.structs.replace(message, content=content, refusal=text)


def finish_reason(stop_reason: str | None, message: ChatMessage) -> str:
    """Anthropic's stop reason in the OpenAI vocabulary the rest of ocactors uses."""
    if stop_reason is None:
        return "tool_calls" if message.tool_calls else "stop"
    return FINISH_REASONS.get(stop_reason, stop_reason)


def stream_error(error: dict[str, Any], url: str, secret: str | None) -> ModelError:
    """An ``error`` event sent inside a 200 stream."""
    kind = str(error.get("type", ""))
    message = scrub(f"{kind} from {url}: {error.get('message', '')}", secret)
    if is_overflow(message):
        return ContextOverflow(message)
    cls, status = STREAM_ERRORS.get(kind, (BadResponse, None))
    if cls is RateLimited:
        return RateLimited(message)
    if cls is ServerError and status is not None:
        return ServerError(message, status=status)
    return BadResponse(message)


class _PendingBlock:
    """A content block whose deltas are still arriving."""

    def __init__(self, start: _Block) -> None:
        self.start = start
        self.parts: list[str] = []
        self.signature = start.signature

    def add(self, delta: _Delta) -> None:
        part = delta.text or delta.partial_json or delta.thinking
        if part:
            self.parts.append(part)
        self.signature = delta.signature or self.signature

    def block(self) -> _Block:
        text = "".join(self.parts)
        start = self.start
        match start.type:
            case "text":
                return _Block(type="text", text=(start.text or "") + text)
            case "thinking":
                return _Block(
                    type="thinking",
                    thinking=(start.thinking or "") + text,
                    signature=self.signature,
                )
            case "tool_use":
                arguments = text if text.strip() else json.dumps(start.input or {})
                return _Block(type="tool_use", id=start.id, name=start.name, input=arguments)
            case _:
                return start


class StreamAssembler:
    """Folds Messages stream events into content blocks, usage and a stop reason."""

    def __init__(self, url: str, secret: str | None) -> None:
        self.url = url
        self.secret = secret
        self.blocks: dict[int, _PendingBlock] = {}
        self.usage: _Usage | None = None
        self.stop_reason: str | None = None
        self.stop_details: dict[str, Any] | None = None
        self.done = False

    def feed(self, event: _Event) -> None:
        match event.type:
            case "message_start" if event.message is not None:
                self.usage = event.message.usage
            case "content_block_start" if event.content_block is not None:
                self.blocks[event.index] = _PendingBlock(event.content_block)
            case "content_block_delta" if event.delta is not None:
                self._block(event.index).add(event.delta)
            case "message_delta":
                self._message_delta(event)
            case "message_stop":
                self.done = True
            case "error":
                raise stream_error(event.error or {}, self.url, self.secret)

    def _block(self, index: int) -> _PendingBlock:
        if index not in self.blocks:
            raise BadResponse(f"a delta for block {index} before its start from {self.url}")
        return self.blocks[index]

    def _message_delta(self, event: _Event) -> None:
        if event.delta is not None:
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.stop_details = event.delta.stop_details or self.stop_details
        if event.usage is not None and event.usage.output_tokens is not None:
            usage = self.usage or _Usage(input_tokens=None)
            self.usage = msgspec.structs.replace(usage, output_tokens=event.usage.output_tokens)

    def message(self) -> ChatMessage:
        return message_of([self.blocks[i].block() for i in sorted(self.blocks)])


class AnthropicClient:
    """A ModelClient for the Anthropic Messages API. Thread-safe."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None,
        model: str,
        stream: bool = True,
        context_window: int = DEFAULT_CONTEXT_WINDOW,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        thinking_budget: int | None = None,
        cache_breakpoints: bool = True,
    ) -> None:
        self._http = http
        root = base_url.rstrip("/")
        self.base_url = root.removesuffix("/v1")
        self.url = f"{self.base_url}/v1/messages"
        self._api_key = api_key
        self._model = model
        self.stream = stream
        self._context_window = context_window
        self._timeout = timeout_for(timeout)
        self.max_tokens = max_tokens
        self.thinking_budget = thinking_budget
        self.cache_breakpoints = cache_breakpoints

    @property
    def model(self) -> str:
        return self._model

    @property
    def context_window(self) -> int:
        return self._context_window

    def __repr__(self) -> str:
        return f"AnthropicClient(model={self._model!r}, base_url={self.base_url!r})"

    def request_body(
        self, messages: list[ChatMessage], tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The JSON body of a Messages request: what stays the same from turn to turn first
        (options, tools, system), the conversation last, with cache breakpoints."""
        system, turns = to_anthropic(messages)
        converted = [to_anthropic_tool(t) for t in tools]
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": self.max_tokens,
            "stream": self.stream,
        }
        if self.thinking_budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        if self.cache_breakpoints:
            blocks, turns, converted = with_breakpoints(system, turns, converted)
        if converted:
            body["tools"] = converted
        if system:
            body["system"] = blocks if self.cache_breakpoints else system
        body["messages"] = turns
        return body

    def complete(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        *,
        headers: Mapping[str, str],
        on_retry: OnRetry | None = None,
    ) -> ModelReply:
        """One request, no retries (``on_retry`` is accepted for the protocol, never called)."""
        started = time.perf_counter()
        with open_response(
            self._http,
            self.url,
            self.request_body(messages, tools),
            headers=self._headers(headers),
            timeout=self._timeout,
            secret=self._api_key,
        ) as response:
            if self.stream and "text/event-stream" in response.headers.get("content-type", ""):
                message, stop, usage, details = self._read_stream(response)
            else:
                message, stop, usage, details = self._read_body(response.read())
        if stop == "refusal":
            message = refused(message, details)
        return ModelReply(
            message=message,
            usage=reply_usage(usage, messages, message),
            finish_reason=finish_reason(stop, message),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION, **extra}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def _read_body(self, data: bytes) -> _Read:
        try:
            reply = _MESSAGE.decode(data)
        except msgspec.DecodeError as error:
            raise BadResponse(f"malformed message from {self.url}: {error}") from None
        return message_of(reply.content), reply.stop_reason, reply.usage, reply.stop_details

    def _read_stream(self, response: httpx.Response) -> _Read:
        assembler = StreamAssembler(self.url, self._api_key)
        for data in sse_data(response):
            try:
                assembler.feed(_EVENT.decode(data))
            except msgspec.DecodeError as error:
                raise BadResponse(f"malformed event from {self.url}: {error}") from None
            if assembler.done:
                break
        if not assembler.done:
            raise TransportError(f"the stream from {self.url} ended before message_stop")
        message, stop = assembler.message(), assembler.stop_reason
        return message, stop, assembler.usage, assembler.stop_details
