"""OpenAIChatClient against the scripted server over real sockets, plus its lenient parsing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from ocactors.actors.models import (
    OpenAIChatClient,
    ScriptedModelServer,
    ServerError,
    Turn,
)
from ocactors.actors.models.openai_client import (
    StreamAssembler,
    _Completion,
    parse_completion,
    to_openai_message,
)
from ocactors.events.catalogue import ChatMessage, ToolCall
from tests._models_helpers import CONVERSATION, SECRET, TOOLS, headers, http_client

SCRIPT = {
    "worker:*": [
        Turn(
            "Let me look at the file first.",
            [("read_file", {"path": "a.py"}), ("grep", {"pattern": "def main", "path": "."})],
            reasoning="The bug is probably in main.",
        ),
        Turn("All done."),
    ],
    "quiet": [Turn("no usage here", [("read_file", {"path": "b.py"})], usage=False)],
    "broken": [Turn(tool_calls=[("edit_file", '{"path": "a.py", "old": "x"')])],
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def client(http: httpx.Client, server: ScriptedModelServer, stream: bool) -> OpenAIChatClient:
    return OpenAIChatClient(
        http, base_url=server.base_url, api_key=SECRET, model="gpt-test", stream=stream
    )


@pytest.mark.parametrize("stream", [True, False])
def test_request_carries_tools_headers_key_and_stream_options(
    http: httpx.Client, server: ScriptedModelServer, stream: bool
) -> None:
    server.reset_stats()
    client(http, server, stream).complete(CONVERSATION, TOOLS, headers=headers("worker:t7", 2))
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert (request.actor, request.turn) == ("worker:t7", 2)
    assert request.headers["x-ocactors-mission"] == "m-1"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["tools"] == TOOLS
    assert request.body["model"] == "gpt-test"
    assert request.body["stream"] is stream
    assert ("stream_options" in request.body) is stream


def test_history_sends_reasoning_back_under_the_field_it_came_in(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    first = client(http, server, True).complete(CONVERSATION, TOOLS, headers=headers(turn=1))
    assert first.message.reasoning_field == "reasoning_content"
    results = [
        ChatMessage(role="tool", content=f"result {c.name}", tool_call_id=c.id)
        for c in first.message.tool_calls
    ]
    server.reset_stats()
    history = [*CONVERSATION, first.message, *results]
    reply = client(http, server, True).complete(history, TOOLS, headers=headers())
    assert reply.message.content == "All done."  # turn 2 found by counting assistant messages
    sent = server.requests[0].body["messages"]
    assert sent[2]["reasoning_content"] == "The bug is probably in main."
    assert "reasoning" not in sent[2]
    assert sent[2]["tool_calls"][0]["function"] == {
        "name": "read_file",
        "arguments": '{"path": "a.py"}',
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "call_1_0", "content": "result read_file"}


def test_malformed_tool_arguments_are_passed_through_raw(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    reply = client(http, server, True).complete(CONVERSATION, [], headers=headers("broken", 1))
    assert reply.message.tool_calls[0].arguments == '{"path": "a.py", "old": "x"'


def test_script_running_out_is_a_clear_server_error(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    with pytest.raises(ServerError, match="ran out: it has 2 turns, turn 9 was requested"):
        client(http, server, False).complete(CONVERSATION, [], headers=headers(turn=9))


def test_unknown_actor_names_the_patterns(http: httpx.Client, server: ScriptedModelServer) -> None:
    with pytest.raises(ServerError, match="no script for actor 'planner'"):
        client(http, server, True).complete(CONVERSATION, [], headers=headers("planner", 1))


# --- lenient parsing (servers that are only mostly OpenAI) ----------------------------


def chunk(delta: dict[str, object], **extra: object) -> _Completion:
    raw = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}], **extra}
    return msgspec.json.decode(json.dumps(raw), type=_Completion)


def test_stream_without_indexes_or_ids_is_assembled() -> None:
    assembler = StreamAssembler()
    assembler.feed(chunk({"reasoning": "think "}))
    assembler.feed(chunk({"reasoning": "hard", "content": "ok"}))
    assembler.feed(chunk({"tool_calls": [{"function": {"name": "a", "arguments": '{"x":'}}]}))
    assembler.feed(chunk({"tool_calls": [{"function": {"arguments": " 1}"}}]}))
    assembler.feed(chunk({"tool_calls": [{"id": "c2", "function": {"name": "b"}}]}))
    assembler.feed(
        chunk({"tool_calls": [{"id": "c3", "function": {"name": "c", "arguments": {"k": 2}}}]})
    )
    assembler.feed(chunk({}, x_groq={"usage": {"prompt_tokens": 7, "completion_tokens": 3}}))
    message = assembler.message()
    assert message.reasoning == "think hard"
    assert message.content == "ok"
    first, second, third = message.tool_calls
    assert (first.name, first.arguments) == ("a", '{"x": 1}')
    assert first.id.startswith("call_")
    assert (second.id, second.name, second.arguments) == ("c2", "b", "{}")
    assert (third.id, third.arguments) == ("c3", '{"k":2}')
    assert assembler.usage is not None and assembler.usage.prompt_tokens == 7


def test_non_stream_completion_is_read_leniently() -> None:
    body = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "hi"}],
                    "reasoning_content": "why",
                    "tool_calls": [{"function": {"name": "read_file", "arguments": ""}}],
                }
            }
        ]
    }
    message, reason, usage = parse_completion(json.dumps(body).encode(), "u", None)
    assert message.content == "hi" and message.reasoning == "why"
    assert message.tool_calls[0].arguments == "{}"
    assert message.tool_calls[0].id.startswith("call_")
    assert reason == "tool_calls" and usage is None


def test_assistant_message_without_content_sends_null_content() -> None:
    call = ToolCall(id="c1", name="read_file", arguments="{}")
    sent = to_openai_message(ChatMessage(role="assistant", tool_calls=[call], reasoning="secret"))
    assert sent["content"] is None and "reasoning" not in json.dumps(sent)  # no field: no echo


def test_ollama_calls_that_share_index_0_are_told_apart_by_id() -> None:
    assembler = StreamAssembler()
    for call_id, path in (("call_a", "a.py"), ("call_b", "b.py")):
        part = {"id": call_id, "index": 0, "type": "function"}
        function = {"name": "read_file", "arguments": json.dumps({"path": path})}
        assembler.feed(chunk({"tool_calls": [{**part, "function": function}]}))
    calls = assembler.message().tool_calls
    assert [(c.id, json.loads(c.arguments)) for c in calls] == [
        ("call_a", {"path": "a.py"}),
        ("call_b", {"path": "b.py"}),
    ]


def test_continuation_parts_with_an_empty_id_stay_with_their_call() -> None:
    assembler = StreamAssembler()  # vLLM: later parts of a call carry "id": ""
    first = {"index": 0, "id": "chatcmpl-tool-1", "function": {"name": "grep", "arguments": ""}}
    assembler.feed(chunk({"tool_calls": [first]}))
    assembler.feed(chunk({"tool_calls": [{"index": 0, "id": "", "function": {"arguments": "{}"}}]}))
    (call,) = assembler.message().tool_calls
    assert (call.id, call.name, call.arguments) == ("chatcmpl-tool-1", "grep", "{}")
