"""Wire formats of the scripted model server: OpenAI and Anthropic, streamed and not.

Pure functions from an :class:`Answer` (what the script says the model replies) to the
JSON bodies and server-sent events a real provider would send, and from a request body
back to provider-neutral ChatMessages (for callable scripts and for assertions).
Streams split text and tool arguments into several deltas so that clients really have
to assemble them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ocactors.events.catalogue import ChatMessage, ToolCall

PIECES = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """One assistant reply, provider-neutral; ``usage`` None means "send no usage";
    ``finish`` None means the finish reason the answer implies. The rest is sent as given
    (see :class:`Turn`)."""

    content: str
    calls: list[ToolCall]
    reasoning: str | None
    usage: tuple[int, int] | None
    finish: str | None = None
    reasoning_field: str | None = None
    reasoning_details: Sequence[Mapping[str, Any]] = ()
    refusal: str | None = None
    thinking_blocks: Sequence[Mapping[str, Any]] = ()

    @property
    def reasoning_name(self) -> str:
        """The OpenAI-compatible field the reasoning goes in."""
        return self.reasoning_field or "reasoning_content"


def pieces(text: str, n: int = PIECES) -> list[str]:
    """``text`` cut into up to ``n`` non-empty parts (one empty part for empty text)."""
    if not text:
        return [""]
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def signature(reasoning: str) -> str:
    """A stable stand-in for Anthropic's opaque thinking signature."""
    return "sig-" + hashlib.sha256(reasoning.encode()).hexdigest()[:16]


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


# --- OpenAI --------------------------------------------------------------------------


ANTHROPIC_STOPS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def openai_finish(answer: Answer) -> str:
    return answer.finish or ("tool_calls" if answer.calls else "stop")


def openai_usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def openai_body(answer: Answer, model: str, ident: str) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content or None}
    if answer.reasoning is not None:
        message[answer.reasoning_name] = answer.reasoning
    if answer.reasoning_details:
        message["reasoning_details"] = [dict(d) for d in answer.reasoning_details]
    if answer.refusal is not None:
        message["refusal"] = answer.refusal
    if answer.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.calls
        ]
    body: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": openai_finish(answer)}],
    }
    if answer.usage is not None:
        body["usage"] = openai_usage(answer.usage)
    return body


def openai_stream(answer: Answer, model: str, ident: str, include_usage: bool) -> list[bytes]:
    """The ``chat.completion.chunk`` events of a streamed answer, ending with ``[DONE]``."""
    head = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse({**head, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": ""})]
    if answer.reasoning:
        events += [chunk({answer.reasoning_name: p}) for p in pieces(answer.reasoning)]
    if answer.reasoning_details:
        events.append(chunk({"reasoning_details": [dict(d) for d in answer.reasoning_details]}))
    if answer.refusal:
        events += [chunk({"refusal": p}) for p in pieces(answer.refusal)]
    if answer.content:
        events += [chunk({"content": p}) for p in pieces(answer.content)]
    for index, call in enumerate(answer.calls):
        first = {"index": index, "id": call.id, "type": "function"}
        events.append(
            chunk({"tool_calls": [{**first, "function": {"name": call.name, "arguments": ""}}]})
        )
        events += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
            for p in pieces(call.arguments)
        ]
    events.append(chunk({}, openai_finish(answer)))
    if include_usage and answer.usage is not None:
        events.append(sse({**head, "choices": [], "usage": openai_usage(answer.usage)}))
    return [*events, sse("[DONE]")]


def openai_error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_messages(body: dict[str, Any]) -> list[ChatMessage]:
    """The request's messages as ChatMessages."""
    return [_openai_message(m) for m in body.get("messages", [])]


def _openai_message(raw: dict[str, Any]) -> ChatMessage:
    calls = [
        ToolCall(
            id=c.get("id", ""), name=c["function"]["name"], arguments=c["function"]["arguments"]
        )
        for c in raw.get("tool_calls") or []
    ]
    content = raw.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ChatMessage(
        role=raw.get("role", "user"),
        content=content,
        tool_calls=calls,
        tool_call_id=raw.get("tool_call_id"),
        reasoning=raw.get("reasoning_content") or raw.get("reasoning"),
    )


# --- Anthropic -----------------------------------------------------------------------


def anthropic_stop(answer: Answer) -> str:
    finish = openai_finish(answer)
    return ANTHROPIC_STOPS.get(finish, finish)


def anthropic_blocks(answer: Answer) -> list[dict[str, Any]]:
    """The content blocks of a reply: thinking, then text, then tool_use."""
    blocks: list[dict[str, Any]] = [dict(b) for b in answer.thinking_blocks]
    if answer.reasoning and not blocks:
        sig = signature(answer.reasoning)
        blocks.append({"type": "thinking", "thinking": answer.reasoning, "signature": sig})
    if answer.content:
        blocks.append({"type": "text", "text": answer.content})
    for call in answer.calls:
        try:
            arguments = json.loads(call.arguments)
        except json.JSONDecodeError:
            arguments = {"_raw": call.arguments}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def anthropic_body(answer: Answer, model: str, ident: str) -> dict[str, Any]:
    """A non-streamed ``message``."""
    body: dict[str, Any] = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": anthropic_blocks(answer),
        "stop_reason": anthropic_stop(answer),
        "stop_sequence": None,
    }
    if answer.usage is not None:
        body["usage"] = {"input_tokens": answer.usage[0], "output_tokens": answer.usage[1]}
    return body


def anthropic_stream(answer: Answer, model: str, ident: str) -> list[bytes]:
    """message_start, a start/delta.../stop triple per block, message_delta, message_stop."""
    usage = answer.usage or (0, 0)
    start = {**anthropic_body(Answer("", [], None, None), model, ident), "stop_reason": None}
    if answer.usage is not None:
        start["usage"] = {"input_tokens": usage[0], "output_tokens": 1}
    events = [sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(anthropic_blocks(answer)):
        events += _anthropic_block(index, block, answer)
    delta: dict[str, Any] = {"type": "message_delta"}
    delta["delta"] = {"stop_reason": anthropic_stop(answer), "stop_sequence": None}
    if answer.usage is not None:
        delta["usage"] = {"output_tokens": usage[1]}
    events.append(sse(delta, "message_delta"))
    return [*events, sse({"type": "message_stop"}, "message_stop")]


def _anthropic_block(index: int, block: dict[str, Any], answer: Answer) -> list[bytes]:
    kind = block["type"]
    empty: dict[str, Any]
    deltas: list[dict[str, Any]]
    if kind == "thinking":
        empty = {"type": "thinking", "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"])]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "redacted_thinking":
        empty, deltas = block, []
    elif kind == "text":
        empty = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
    else:
        empty = {**block, "input": {}}
        raw = next(c.arguments for c in answer.calls if c.id == block["id"])
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(raw)]
    start = {"type": "content_block_start", "index": index, "content_block": empty}
    events = [sse(start, "content_block_start")]
    for delta in deltas:
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        events.append(sse(payload, "content_block_delta"))
    stop = {"type": "content_block_stop", "index": index}
    return [*events, sse(stop, "content_block_stop")]


def anthropic_error(message: str, kind: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_messages(body: dict[str, Any]) -> list[ChatMessage]:
    """The request's system prompt and messages as ChatMessages (tool results split out)."""
    system = body.get("system")
    if isinstance(system, list):
        system = "".join(b.get("text", "") for b in system)
    messages = [ChatMessage(role="system", content=system)] if system else []
    for raw in body.get("messages", []):
        messages += _anthropic_message(raw)
    return messages


def _anthropic_message(raw: dict[str, Any]) -> list[ChatMessage]:
    role = raw.get("role", "user")
    content = raw.get("content", "")
    if isinstance(content, str):
        return [ChatMessage(role=role, content=content)]
    texts = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    thinking = [b for b in content if b.get("type") == "thinking"]
    calls = [
        ToolCall(id=b["id"], name=b["name"], arguments=json.dumps(b.get("input", {})))
        for b in content
        if b.get("type") == "tool_use"
    ]
    results = [_tool_result(b) for b in content if b.get("type") == "tool_result"]
    if role != "assistant":
        return [*results, *([ChatMessage(role=role, content=texts)] if texts else [])]
    reasoning = thinking[0].get("thinking") if thinking else None
    sig = thinking[0].get("signature") if thinking else None
    return [
        ChatMessage(
            role=role, content=texts, tool_calls=calls, reasoning=reasoning, reasoning_signature=sig
        )
    ]


def _tool_result(block: dict[str, Any]) -> ChatMessage:
    content = block.get("content", "")
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ChatMessage(role="tool", content=content, tool_call_id=block.get("tool_use_id"))
