"""OpenAI-compatible Chat Completions (``POST {base_url}/chat/completions``) over httpx.

One client serves OpenAI, OpenRouter, DeepSeek, Groq, Together, Ollama, vLLM, llama.cpp
and LM Studio, so it is lenient about what comes back: missing tool-call ids are made up,
empty arguments become ``"{}"``, absent usage is estimated (``Usage(estimated=True)``),
and tool calls that reuse one ``index`` (Ollama sends every call at ``index: 0``) are told
apart by their ``id``.

Reasoning is kept as the provider sent it and sent back the same way: the text under the
field it came in (``reasoning_content`` or ``reasoning``; DeepSeek answers 400 when a
tool-call turn comes back without it), and OpenRouter's ``reasoning_details`` verbatim.
OpenAI itself never sends reasoning, so nothing is echoed to it. A server that refuses
the echoed field as unknown (Groq does) gets the request once more without it, and this
client stops echoing. A refusal is kept in ``ChatMessage.refusal`` (and in ``content``
when there is no other content); a stream that ends with ``finish_reason: "error"``
(OpenRouter) is a TransportError, never a reply. Transient failures are not retried here:
see RetryingClient.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from ocactors.actors.models._http import (
    RETRY_STATUSES,
    is_overflow,
    open_response,
    sse_data,
    timeout_for,
)
from ocactors.actors.models.errors import (
    AuthError,
    BadRequest,
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
REASONING_FIELDS = ("reasoning_content", "reasoning")
DETAIL_TEXTS = frozenset({"text", "summary", "data"})
# Hosts known to refuse reasoning fields in assistant messages (HTTP 400 "property
# 'reasoning_content' is unsupported"); others learn it from the first such answer.
NO_ECHO_HOSTS = frozenset({"api.groq.com"})
UNKNOWN_FIELD_WORDS = ("unsupported", "unknown", "unrecognized", "not allowed", "unexpected")


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
    reasoning_details: list[dict[str, Any]] | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCallPart] | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None  # OpenRouter


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek
    cached_tokens: int | None = None  # Moonshot


class _Groq(msgspec.Struct):
    usage: _Usage | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    x_groq: _Groq | None = None
    error: dict[str, Any] | str | None = None


_DECODER = msgspec.json.Decoder(_Completion)


# --- what we send --------------------------------------------------------------------


def to_openai_message(message: ChatMessage, *, echo_reasoning: bool = True) -> dict[str, Any]:
    """One ChatMessage as an OpenAI message; an assistant's reasoning goes back under the
    field it came in (none for OpenAI), unless ``echo_reasoning`` is off."""
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    if message.role != "assistant":
        return {"role": message.role, "content": message.content}
    sent: dict[str, Any] = {"role": "assistant", "content": message.content}
    if echo_reasoning:
        sent |= reasoning_echo(message)
    if message.tool_calls:
        sent["content"] = message.content or None
        sent["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return sent


def reasoning_echo(message: ChatMessage) -> dict[str, Any]:
    """The reasoning fields an assistant message carries back, exactly as received."""
    echo: dict[str, Any] = {}
    if message.reasoning_field in REASONING_FIELDS:
        echo[message.reasoning_field] = message.reasoning or ""
    if message.reasoning_details:
        echo["reasoning_details"] = message.reasoning_details
    return echo


def request_body(
    model: str,
    messages: list[ChatMessage],
    tools: list[dict[str, Any]],
    *,
    stream: bool,
    echo_reasoning: bool = True,
) -> dict[str, Any]:
    """The JSON body of a chat completion request.

    What stays the same from turn to turn comes first (model, options, tools) and the
    conversation last, so each request's bytes begin with the previous request's bytes:
    the shape providers' automatic prefix caches (OpenAI, DeepSeek) reward.
    """
    body: dict[str, Any] = {"model": model, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = tools
    body["messages"] = [to_openai_message(m, echo_reasoning=echo_reasoning) for m in messages]
    return body


def echoes_reasoning(messages: list[ChatMessage]) -> bool:
    """Would a request for ``messages`` carry any reasoning field back?"""
    return any(m.role == "assistant" and reasoning_echo(m) for m in messages)


def refuses_reasoning(error: BadRequest) -> bool:
    """Did the server refuse a reasoning field it does not know (Groq: "property
    'reasoning_content' is unsupported")? DeepSeek's "must be passed back" is not that."""
    text = str(error).lower()
    named = any(field in text for field in (*REASONING_FIELDS, "reasoning_details"))
    return named and any(word in text for word in UNKNOWN_FIELD_WORDS)


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


def reasoning_of(message: _Message) -> tuple[str | None, str | None]:
    """The reasoning text and the field it came in (``reasoning_content`` first)."""
    if message.reasoning_content is not None:
        return message.reasoning_content, "reasoning_content"
    if message.reasoning is not None:
        return message.reasoning, "reasoning"
    return None, None


def usage_of(usage: _Usage | None, messages: list[ChatMessage], reply: ChatMessage) -> Usage:
    """The provider's token counts, or an estimate flagged ``estimated=True``."""
    if usage is None or usage.prompt_tokens is None:
        return Usage(
            prompt_tokens=estimate_tokens(messages),
            completion_tokens=estimate_tokens([reply]),
            estimated=True,
        )
    details = usage.prompt_tokens_details or _PromptDetails()
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens or 0,
        cached_tokens=cached_of(usage, details),
        cache_write_tokens=details.cache_write_tokens or 0,
    )


def cached_of(usage: _Usage, details: _PromptDetails) -> int:
    """Prompt tokens read from the provider's cache, under whichever name it uses:
    ``prompt_tokens_details.cached_tokens`` (OpenAI, OpenRouter, xAI, DeepSeek),
    ``prompt_cache_hit_tokens`` (DeepSeek), ``cached_tokens`` (Moonshot)."""
    found = (details.cached_tokens, usage.prompt_cache_hit_tokens, usage.cached_tokens)
    return next((n for n in found if n), 0)


def stream_error(
    error: dict[str, Any] | str, url: str, secret: str | None, finish: str | None = None
) -> ModelError:
    """An error object sent inside a 200 response (OpenRouter does this mid-stream); its
    numeric ``code`` is read as an HTTP status, a ``finish_reason: "error"`` as a cut."""
    detail = error if isinstance(error, str) else error.get("message", error)
    code = None if isinstance(error, str) else error.get("code")
    if not isinstance(code, int) and isinstance(error, dict):  # Groq: "status_code": 400
        code = error.get("status_code", code)
    ending = " (finish_reason 'error')" if finish == "error" else ""
    message = scrub(f"error from {url}: {detail}{ending}", secret)
    if is_overflow(message) or code == "context_length_exceeded":
        return ContextOverflow(message)
    if code in (429, "rate_limit_exceeded"):
        return RateLimited(message)
    if code in (401, 403):
        return AuthError(message, status=code)
    if isinstance(code, int) and (code >= 500 or code in RETRY_STATUSES):
        return ServerError(message, status=code)
    if finish == "error":
        return TransportError(message)
    if isinstance(code, int) and 400 <= code < 500:
        return BadRequest(message, status=code)
    return BadResponse(message)


def ended_in_error(url: str) -> TransportError:
    """``finish_reason: "error"`` without an error object: the provider broke off."""
    return TransportError(f"the answer from {url} ended with finish_reason 'error'")


def parse_completion(
    data: bytes, url: str, secret: str | None
) -> tuple[ChatMessage, str, _Usage | None]:
    """A whole (non-streamed) completion: message, finish reason, usage."""
    completion = decode_completion(data, url, secret)
    if not completion.choices or completion.choices[0].message is None:
        raise BadResponse(f"no choices[0].message in the response from {url}")
    choice = completion.choices[0]
    assert choice.message is not None
    if choice.finish_reason == "error":
        raise ended_in_error(url)
    message = assistant_message(choice.message)
    return message, finish_reason(choice.finish_reason, message), usage_field(completion)


def decode_completion(data: bytes | str, url: str, secret: str | None) -> _Completion:
    """Decode one completion or chunk; errors sent in a 200 are raised."""
    try:
        completion = _DECODER.decode(data)
    except msgspec.DecodeError as error:
        raise BadResponse(f"malformed completion from {url}: {error}") from None
    if completion.error is not None:
        finish = completion.choices[0].finish_reason if completion.choices else None
        raise stream_error(completion.error, url, secret, finish)
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
    reasoning, field = reasoning_of(message)
    content = content_text(message.content)
    return ChatMessage(
        role="assistant",
        content=content or message.refusal or "",
        tool_calls=calls,
        reasoning=reasoning or None,
        reasoning_field=field,
        reasoning_details=message.reasoning_details or [],
        refusal=message.refusal or None,
    )


def finish_reason(reason: str | None, message: ChatMessage) -> str:
    """The server's finish reason, or what it must have been."""
    return reason or ("tool_calls" if message.tool_calls else "stop")


def merge_detail(details: dict[int, dict[str, Any]], part: dict[str, Any]) -> None:
    """Fold one streamed ``reasoning_details`` item into the item with its ``index``:
    text pieces are joined, other keys (type, format, signature, id) take the last value."""
    index = part.get("index")
    key = index if isinstance(index, int) else -1 - len(details)
    merged = details.setdefault(key, {})
    for name, value in part.items():
        if name in DETAIL_TEXTS and isinstance(value, str):
            merged[name] = merged.get(name, "") + value
        elif value is not None or name not in merged:
            merged[name] = value


class _PendingCall:
    """A tool call whose parts are still arriving."""

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name = ""
        self.arguments: list[str] = []

    def add(self, part: _ToolCallPart) -> None:
        self.id = self.id or part.id or None
        function = part.function or _Function()
        self.name = self.name or function.name or ""
        if isinstance(function.arguments, dict):
            self.arguments = [arguments_text(function.arguments)]
        elif function.arguments:
            self.arguments.append(function.arguments)

    def starts_another(self, part: _ToolCallPart, *, indexed: bool) -> bool:
        """Does ``part`` begin another call? A part carrying a different id does, whatever
        its index says; without an index, so does any id after an id-less call."""
        if not part.id or part.id == self.id:  # vLLM sends id "" on continuation parts
            return False
        return self.id is not None or not indexed

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
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_field: str | None = None
        self.details: dict[int, dict[str, Any]] = {}
        self.calls: list[_PendingCall] = []
        self.slots: dict[int, int] = {}
        self.finish: str | None = None
        self.usage: _Usage | None = None
        self.done = False

    def feed(self, chunk: _Completion) -> None:
        self.usage = usage_field(chunk) or self.usage
        for choice in chunk.choices[:1]:
            self.finish = choice.finish_reason or self.finish
            delta = choice.delta or choice.message or _Message()
            self.content.append(content_text(delta.content))
            self.refusal.append(delta.refusal or "")
            self._reasoning(delta)
            for part in delta.tool_calls or []:
                self._pending(part).add(part)

    def _reasoning(self, delta: _Message) -> None:
        text, field = reasoning_of(delta)
        if field is not None:
            self.reasoning_field = self.reasoning_field or field
            self.reasoning.append(text or "")
        for part in delta.reasoning_details or []:
            merge_detail(self.details, part)

    def _pending(self, part: _ToolCallPart) -> _PendingCall:
        """The call a delta belongs to: by ``index`` unless its id says it is another
        call (Ollama repeats ``index: 0``); without an index, a new id starts a call."""
        if part.index is None:
            fresh = not self.calls or self.calls[-1].starts_another(part, indexed=False)
            return self._start(part) if fresh else self.calls[-1]
        slot = self.slots.get(part.index)
        if slot is None or self.calls[slot].starts_another(part, indexed=True):
            self.slots[part.index] = len(self.calls)
            return self._start(part)
        return self.calls[slot]

    def _start(self, part: _ToolCallPart) -> _PendingCall:
        self.calls.append(_PendingCall(part.id))
        return self.calls[-1]

    def message(self) -> ChatMessage:
        content, refusal = "".join(self.content), "".join(self.refusal)
        return ChatMessage(
            role="assistant",
            content=content or refusal,
            tool_calls=[pending.call() for pending in self.calls],
            reasoning="".join(self.reasoning) or None,
            reasoning_field=self.reasoning_field,
            reasoning_details=list(self.details.values()),
            refusal=refusal or None,
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
        echo_reasoning: bool | None = None,
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._model = model
        self.stream = stream
        self._context_window = context_window
        self._timeout = timeout_for(timeout)
        self.url = f"{self.base_url}/chat/completions"
        self.echo_reasoning = echo_default(self.base_url, echo_reasoning)

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
        """One request (``on_retry`` is accepted for the protocol, never called). If the
        server refuses the echoed reasoning as an unknown field, it is sent once more
        without it, and reasoning is not echoed to this server again."""
        echo = self.echo_reasoning
        try:
            return self._complete(messages, tools, headers, echo=echo)
        except BadRequest as error:
            if not (echo and echoes_reasoning(messages) and refuses_reasoning(error)):
                raise
        self.echo_reasoning = False  # a plain bool store: safe to race, all agree
        return self._complete(messages, tools, headers, echo=False)

    def _complete(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        headers: Mapping[str, str],
        *,
        echo: bool,
    ) -> ModelReply:
        started = time.perf_counter()
        body = request_body(self._model, messages, tools, stream=self.stream, echo_reasoning=echo)
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
        if assembler.finish == "error":
            raise ended_in_error(self.url)
        if not assembler.done and assembler.finish is None:
            raise TransportError(f"the stream from {self.url} ended before the answer did")
        message = assembler.message()
        return message, finish_reason(assembler.finish, message), assembler.usage


def echo_default(base_url: str, asked: bool | None) -> bool:
    """Echo reasoning unless told not to, or the host is known to refuse it."""
    if asked is not None:
        return asked
    return httpx.URL(base_url).host not in NO_ECHO_HOSTS if "://" in base_url else True


def _is_event_stream(response: httpx.Response) -> bool:
    """Some servers answer a stream request with plain JSON; read that as such."""
    return "text/event-stream" in response.headers.get("content-type", "")
