"""AnthropicClient against the scripted server: conversion both ways, streamed and not."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from ocactors.actors.models import (
    AnthropicClient,
    ContextOverflow,
    Fault,
    RateLimited,
    RetryInfo,
    RetryingClient,
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
    return AnthropicClient(http, base_url=url, api_key=SECRET, model="claude-test", stream=stream)


@pytest.mark.parametrize("stream", [True, False])
def test_round_trip_with_thinking_and_tool_use(
    http: httpx.Client, server: ScriptedModelServer, stream: bool
) -> None:
    reply = client(http, server.root_url, stream).complete(
        CONVERSATION, TOOLS, headers=headers(turn=1)
    )
    message = reply.message
    assert message.content == "Reading both files."
    assert message.reasoning == "Two files are involved."
    assert message.reasoning_signature and message.reasoning_signature.startswith("sig-")
    assert [(c.id, c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("call_1_0", "read_file", {"path": "a.py"}),
        ("call_1_1", "read_file", {"path": "b.py"}),
    ]
    assert reply.finish_reason == "tool_calls"
    assert reply.usage.prompt_tokens > 0 and not reply.usage.estimated


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


@pytest.mark.parametrize("stream", [True, False])
def test_usage_is_estimated_when_absent(
    http: httpx.Client, server: ScriptedModelServer, stream: bool
) -> None:
    reply = client(http, server.root_url, stream).complete(
        CONVERSATION, [], headers=headers("quiet", 1)
    )
    assert reply.message.content == "no usage"
    assert reply.usage.estimated and reply.usage.prompt_tokens > 0


def test_prompt_too_long_is_context_overflow(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    with pytest.raises(ContextOverflow, match="prompt is too long"):
        client(http, server.root_url, True).complete(CONVERSATION, [], headers=headers("long", 1))


def test_rate_limit_is_healed_by_the_retrying_client(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    infos: list[RetryInfo] = []
    retrying = RetryingClient(client(http, server.root_url, True), rng=random.Random(0))
    reply = retrying.complete(CONVERSATION, [], headers=headers("busy", 1), on_retry=infos.append)
    assert reply.message.content == "after the wait"
    assert [(i.status, i.delay_s) for i in infos] == [(429, 0.05)]


def event(payload: dict[str, object]) -> _Event:
    return msgspec.json.decode(json.dumps(payload), type=_Event)


@pytest.mark.parametrize(
    ("kind", "error"), [("overloaded_error", ServerError), ("rate_limit_error", RateLimited)]
)
def test_error_events_inside_a_stream(kind: str, error: type[Exception]) -> None:
    assembler = StreamAssembler("u", SECRET)
    with pytest.raises(error, match=kind):
        assembler.feed(event({"type": "error", "error": {"type": kind, "message": "later"}}))
