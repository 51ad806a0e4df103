"""OpenAI-compatible Chat Completions (``POST {base_url}/chat/completions``) over httpx.

One client serves OpenAI, OpenRouter, DeepSeek, Groq, Together, Ollama, vLLM, llama.cpp
and LM Studio, so it is lenient about what comes back: missing tool-call ids are made up,
empty arguments become ``"{}"``, absent usage is estimated (``Usage(estimated=True)``),
``reasoning_content`` / ``reasoning`` are read into ``ChatMessage.reasoning`` (and never
sent back: providers reject or bill them). Retries are not done here: see RetryingClient.
"""

from __future__ import annotations

import time
import uuid
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
from ocactors.actors.models.types import ModelReply, OnRetry, estimate_tokens
from ocactors.events.catalogue import ChatMessage, ToolCall, Usage

DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_TIMEOUT_S = 300.0


# --- the wire format we read (unknown fields ignored, everything optional) ---------------


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class _ToolCallPart(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | list[Any] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCallPart] | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Groq(msgspec.Struct):
    usage: _Usage | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    x_groq: _Groq | None = None
    error: dict[str, Any] | str | None = None


_DECODER = msgspec.json.Decoder(_Completion)


# --- what we send --------------------------------------------------------------------


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """One ChatMessage as an OpenAI message; reasoning is deliberately left out."""
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    if message.role != "assistant" or not message.tool_calls:
        return {"role": message.role, "content": message.content}
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in message.tool_calls
    ]
    return {"role": "assistant", "content": message.content or None, "tool_calls": calls}


def request_body(
    model: str, messages: list[ChatMessage], tools: list[dict[str, Any]], *, stream: bool
) -> dict[str, Any]:
    """The JSON body of a chat completion request."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [to_openai_message(m) for m in messages],
        "stream": stream,
    }
    if tools:
        body["tools"] = tools
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


# --- what we read --------------------------------------------------------------------


def new_call_id() -> str:
    """An id for a tool call the server sent without one."""
    return f"call_{uuid.uuid4().hex[:24]}"


def arguments_text(arguments: str | dict[str, Any] | None) -> str:
    """Arguments as JSON text; some servers send an object, some send nothing."""
    if isinstance(arguments, dict):
        return msgspec.json.encode(arguments).decode()
    return arguments if arguments and arguments.strip() else "{}"


def content_text(content: str | list[Any] | None) -> str:
    """Message content as text, also when a server sends a list of parts."""
    if isinstance(content, list):
        parts = (p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        return "".join(str(p) for p in parts)
    return content or ""


def usage_of(usage: _Usage | None, messages: list[ChatMessage], reply: ChatMessage) -> Usage:
    """The provider's token counts, or an estimate flagged ``estimated=True``."""
    if usage is None or usage.prompt_tokens is None:
        return Usage(
            prompt_tokens=estimate_tokens(messages),
            completion_tokens=estimate_tokens([reply]),
            estimated=True,
        )
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens or 0)


def stream_error(error: dict[str, Any] | str, url: str, secret: str | None) -> ModelError:
    """An error object sent inside a 200 response (OpenRouter does this mid-stream)."""
    detail = error if isinstance(error, str) else error.get("message", error)
    code = None if isinstance(error, str) else error.get("code")
    message = scrub(f"error from {url}: {detail}", secret)
    if code == 429:
        return RateLimited(message)
    if is_overflow(message) or code == "context_length_exceeded":
        return ContextOverflow(message)
    if isinstance(code, int) and code >= 500:
        return ServerError(message, status=code)
    return BadResponse(message)


def parse_completion(
    data: bytes, url: str, secret: str | None
) -> tuple[ChatMessage, str, _Usage | None]:
    """A whole (non-streamed) completion: message, finish reason, usage."""
    completion = decode_completion(data, url, secret)
    if not completion.choices or completion.choices[0].message is None:
        raise BadResponse(f"no choices[0].message in the response from {url}")
    choice = completion.choices[0]
    assert choice.message is not None
    message = assistant_message(choice.message)
    return message, finish_reason(choice.finish_reason, message), usage_field(completion)


def decode_completion(data: bytes | str, url: str, secret: str | None) -> _Completion:
    """Decode one completion or chunk; errors sent in a 200 are raised."""
    try:
        completion = _DECODER.decode(data)
    except msgspec.DecodeError as error:
        raise BadResponse(f"malformed completion from {url}: {error}") from None
    if completion.error is not None:
        raise stream_error(completion.error, url, secret)
    return completion


def usage_field(completion: _Completion) -> _Usage | None:
    """``usage``, or Groq's ``x_groq.usage``."""
    if completion.usage is not None:
        return completion.usage
    return completion.x_groq.usage if completion.x_groq is not None else None


def assistant_message(message: _Message) -> ChatMessage:
    """The neutral ChatMessage for an OpenAI assistant message."""
    calls = [
        ToolCall(
            id=part.id or new_call_id(),
            name=(part.function.name if part.function else None) or "",
            arguments=arguments_text(part.function.arguments if part.function else None),
        )
        for part in message.tool_calls or []
    ]
    return ChatMessage(
        role="assistant",
        content=content_text(message.content),
        tool_calls=calls,
        reasoning=message.reasoning_content or message.reasoning or None,
    )


def finish_reason(reason: str | None, message: ChatMessage) -> str:
    """The server's finish reason, or what it must have been."""
    return reason or ("tool_calls" if message.tool_calls else "stop")


class _PendingCall:
    """A tool call whose parts are still arriving."""

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name = ""
        self.arguments: list[str] = []

    def add(self, part: _ToolCallPart) -> None:
        self.id = self.id or part.id
        function = part.function or _Function()
        self.name = self.name or function.name or ""
        if isinstance(function.arguments, dict):
            self.arguments = [arguments_text(function.arguments)]
        elif function.arguments:
            self.arguments.append(function.arguments)

    def call(self) -> ToolCall:
        return ToolCall(
            id=self.id or new_call_id(),
            name=self.name,
            arguments=arguments_text("".join(self.arguments)),
        )


class StreamAssembler:
    """Folds ``chat.completion.chunk`` deltas into one assistant message."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, _PendingCall] = {}
        self.finish: str | None = None
        self.usage: _Usage | None = None
        self.done = False

    def feed(self, chunk: _Completion) -> None:
        self.usage = usage_field(chunk) or self.usage
        for choice in chunk.choices[:1]:
            self.finish = choice.finish_reason or self.finish
            delta = choice.delta or choice.message or _Message()
            self.content.append(content_text(delta.content))
            self.reasoning.append(delta.reasoning_content or delta.reasoning or "")
            for part in delta.tool_calls or []:
                self._pending(part).add(part)

    def _pending(self, part: _ToolCallPart) -> _PendingCall:
        """The call a delta belongs to: by ``index``, else a new id starts a new call."""
        index = part.index
        if index is None:
            last = max(self.calls, default=-1)
            fresh = last < 0 or (part.id is not None and part.id != self.calls[last].id)
            index = last + 1 if fresh else last
        return self.calls.setdefault(index, _PendingCall(part.id))

    def message(self) -> ChatMessage:
        return ChatMessage(
            role="assistant",
            content="".join(self.content),
            tool_calls=[self.calls[i].call() for i in sorted(self.calls)],
            reasoning="".join(self.reasoning) or None,
        )


class OpenAIChatClient:
    """A ModelClient for any OpenAI-compatible ``/chat/completions`` endpoint. Thread-safe."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        stream: bool = True,
        context_window: int = DEFAULT_CONTEXT_WINDOW,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._model = model
        self.stream = stream
        self._context_window = context_window
        self._timeout = timeout_for(timeout)
        self.url = f"{self.base_url}/chat/completions"

    @property
    def model(self) -> str:
        return self._model

    @property
    def context_window(self) -> int:
        return self._context_window

    def __repr__(self) -> str:
        return f"OpenAIChatClient(model={self._model!r}, base_url={self.base_url!r})"

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
        body = request_body(self._model, messages, tools, stream=self.stream)
        with open_response(
            self._http,
            self.url,
            body,
            headers=self._headers(headers),
            timeout=self._timeout,
            secret=self._api_key,
        ) as response:
            if self.stream and _is_event_stream(response):
                message, reason, usage = self._read_stream(response)
            else:
                message, reason, usage = parse_completion(response.read(), self.url, self._api_key)
        return ModelReply(
            message=message,
            usage=usage_of(usage, messages, message),
            finish_reason=reason,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **extra}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _read_stream(self, response: httpx.Response) -> tuple[ChatMessage, str, _Usage | None]:
        assembler = StreamAssembler()
        for data in sse_data(response):
            if data == "[DONE]":
                assembler.done = True
                continue  # drain to the end, so the connection goes back to the pool
            assembler.feed(decode_completion(data, self.url, self._api_key))
        if not assembler.done and assembler.finish is None:
            raise TransportError(f"the stream from {self.url} ended before the answer did")
        message = assembler.message()
        return message, finish_reason(assembler.finish, message), assembler.usage


def _is_event_stream(response: httpx.Response) -> bool:
    """Some servers answer a stream request with plain JSON; read that as such."""
    return "text/event-stream" in response.headers.get("content-type", "")
