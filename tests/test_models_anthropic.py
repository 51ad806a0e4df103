"""AnthropicClient against the scripted server: conversion both ways, streamed and not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from ocactors.actors.models import (
    AnthropicClient,
    Fault,
    RateLimited,
    ScriptedModelServer,
    ServerError,
    Turn,
)
from ocactors.actors.models.anthropic_client import StreamAssembler, _Event, to_anthropic
from ocactors.events.catalogue import ChatMessage, ToolCall
from tests._models_helpers import CONVERSATION, SECRET, TOOLS, headers, http_client

SCRIPT = {
    "worker:*": [
        Turn(
            "Reading both files.",
            [("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"})],
            reasoning="Two files are involved.",
        ),
        Turn("Done."),
    ],
    "quiet": [Turn("no usage", usage=False)],
    "long": [Turn("never", fault=Fault("context_length", times=9))],
    "busy": [Turn("after the wait", fault=Fault("429", times=1, retry_after=0.05))],
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def client(http: httpx.Client, url: str, stream: bool) -> AnthropicClient:
    """Without cache breakpoints, so bodies compare plainly (tests/test_cache_usage.py has them)."""
    return AnthropicClient(
        http,
        base_url=url,
        api_key=SECRET,
        model="claude-test",
        stream=stream,
        cache_breakpoints=False,
    )


def test_request_shape(http: httpx.Client, server: ScriptedModelServer) -> None:
    server.reset_stats()
    client(http, server.base_url, True).complete(CONVERSATION, TOOLS, headers=headers(turn=1))
    (request,) = server.requests
    assert request.path == "/v1/messages"  # a base URL ending in /v1 is accepted too
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["x-ocactors-actor"] == "worker:t1"
    body = request.body
    assert body["system"] == "You are a worker."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug in a.py."}]}
    ]
    assert body["tools"] == [
        {
            "name": "read_file",
            "description": "Read a file.",
            "input_schema": TOOLS[0]["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert body["max_tokens"] > 0 and body["stream"] is True


@pytest.mark.parametrize("stream", [True, False])
def test_tool_results_go_back_merged_with_signed_thinking(
    http: httpx.Client, server: ScriptedModelServer, stream: bool
) -> None:
    first = client(http, server.root_url, stream).complete(CONVERSATION, TOOLS, headers=headers())
    results = [
        ChatMessage(role="tool", content=f"contents of {c.id}", tool_call_id=c.id)
        for c in first.message.tool_calls
    ]
    server.reset_stats()
    history = [*CONVERSATION, first.message, *results]
    reply = client(http, server.root_url, stream).complete(history, TOOLS, headers=headers())
    assert reply.message.content == "Done." and reply.finish_reason == "stop"
    _, assistant, tool_results = server.requests[0].body["messages"]
    thinking, text, *uses = assistant["content"]
    assert thinking == {
        "type": "thinking",
        "thinking": "Two files are involved.",
        "signature": first.message.reasoning_signature,
    }
    assert text == {"type": "text", "text": "Reading both files."}
    assert [u["input"] for u in uses] == [{"path": "a.py"}, {"path": "b.py"}]
    assert tool_results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1_0", "content": "contents of call_1_0"},
            {"type": "tool_result", "tool_use_id": "call_1_1", "content": "contents of call_1_1"},
        ],
    }


def test_unsigned_reasoning_is_not_sent_and_user_text_joins_results() -> None:
    call = ToolCall(id="c1", name="grep", arguments="not json")
    system, turns = to_anthropic(
        [
            ChatMessage(role="system", content="one"),
            ChatMessage(role="system", content="two"),
            ChatMessage(role="user", content="go"),
            ChatMessage(role="assistant", tool_calls=[call], reasoning="from another model"),
            ChatMessage(role="tool", content="error: bad JSON", tool_call_id="c1"),
            ChatMessage(role="user", content="please call a tool"),
        ]
    )
    assert system == "one\n\ntwo"
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "grep", "input": {"raw_arguments": "not json"}}
    ]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "text"]


def event(payload: dict[str, object]) -> _Event:
    return msgspec.json.decode(json.dumps(payload), type=_Event)


@pytest.mark.parametrize(
    ("kind", "error"), [("overloaded_error", ServerError), ("rate_limit_error", RateLimited)]
)
def test_error_events_inside_a_stream(kind: str, error: type[Exception]) -> None:
    assembler = StreamAssembler("u", SECRET)
    with pytest.raises(error, match=kind):
        assembler.feed(event({"type": "error", "error": {"type": kind, "message": "later"}}))


def test_two_signed_thinking_blocks_and_a_redacted_one_stay_apart_in_order() -> None:
    assembler = StreamAssembler("u", SECRET)
    starts = [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "thinking", "thinking": "", "signature": ""},
    ]
    for index, block in enumerate(starts):
        assembler.feed(
            event({"type": "content_block_start", "index": index, "content_block": block})
        )
    for index, text in ((0, "first"), (2, "second")):
        for delta in (
            {"type": "thinking_delta", "thinking": text},
            {"type": "signature_delta", "signature": f"sig-{text}"},
        ):
            assembler.feed(event({"type": "content_block_delta", "index": index, "delta": delta}))
    message = assembler.message()
    assert message.thinking_blocks == [
        {"type": "thinking", "thinking": "first", "signature": "sig-first"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "thinking", "thinking": "second", "signature": "sig-second"},
    ]
    _, turns = to_anthropic([ChatMessage(role="user", content="go"), message])
    assert turns[1]["content"] == message.thinking_blocks
