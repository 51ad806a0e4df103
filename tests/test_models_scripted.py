"""The scripted model server itself: turn selection, faults, latency overlap, JSON scripts."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocactors.actors.models import (
    Fault,
    OpenAIChatClient,
    RateLimited,
    ScriptedModelServer,
    ScriptedRequest,
    ScriptError,
    Turn,
    load_script,
)
from ocactors.actors.models.anthropic_client import AnthropicClient
from ocactors.actors.models.playbook import script_from_log
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import ChatMessage, ToolCall
from tests._models_helpers import CONVERSATION, headers, http_client


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def ask(http: httpx.Client, server: ScriptedModelServer, actor: str, turn: int | None) -> str:
    client = OpenAIChatClient(http, base_url=server.base_url, api_key=None, model="m")
    return client.complete(CONVERSATION, [], headers=headers(actor, turn)).message.content


def test_exact_names_win_then_patterns_in_order(http: httpx.Client) -> None:
    script = {
        "worker:*": [Turn("pattern one")],
        "worker:t*": [Turn("pattern two")],
        "worker:t2": [Turn("exact")],
    }
    with ScriptedModelServer(script) as server:
        assert ask(http, server, "worker:t2", 1) == "exact"
        assert ask(http, server, "worker:t3", 1) == "pattern one"


def test_turn_comes_from_the_header_or_the_assistant_count(http: httpx.Client) -> None:
    with ScriptedModelServer({"default": [Turn("one"), Turn("two")]}) as server:
        client = OpenAIChatClient(http, base_url=server.base_url, api_key=None, model="m")
        assert client.complete(CONVERSATION, [], headers={}).message.content == "one"
        history = [*CONVERSATION, ChatMessage(role="assistant", content="one")]
        assert client.complete(history, [], headers={}).message.content == "two"
        assert ask(http, server, "default", 2) == "two"
        assert [r.turn for r in server.requests] == [1, 2, 2]


def test_callable_scripts_see_the_request(http: httpx.Client) -> None:
    seen: list[ScriptedRequest] = []

    def echo(request: ScriptedRequest) -> Turn:
        seen.append(request)
        return Turn(f"{request.actor} turn {request.turn}: {request.messages[-1].content}")

    with ScriptedModelServer({"planner": echo}) as server:
        assert ask(http, server, "planner", 4) == "planner turn 4: Fix the bug in a.py."
    assert seen[0].headers["x-ocactors-mission"] == "m-1"
    assert seen[0].body["model"] == "m"


def test_a_fault_hits_the_first_attempts_of_its_own_turn_only(http: httpx.Client) -> None:
    script = {"w*": [Turn("ok", fault=Fault("429", times=2))]}
    with ScriptedModelServer(script) as server:
        for actor in ("w1", "w2"):
            for _ in range(2):
                with pytest.raises(RateLimited):
                    ask(http, server, actor, 1)
            assert ask(http, server, actor, 1) == "ok"
        assert [r.status for r in server.requests] == [429, 429, 200] * 2


def test_concurrent_requests_overlap_their_latency(http: httpx.Client) -> None:
    count, latency = 20, 0.2
    with ScriptedModelServer({"*": [Turn("hi")]}, latency_s=latency) as server:
        threads = [
            threading.Thread(target=ask, args=(http, server, f"w{i}", 1)) for i in range(count)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        wall = time.monotonic() - started
        assert len(server.requests) == count
        assert server.peak_concurrency >= count // 2
        assert wall < count * latency / 2  # serial would take 4 s; overlapped about 0.3 s
        server.reset_stats()
        assert server.requests == [] and server.peak_concurrency == 0


def test_model_lists_for_probes(http: httpx.Client) -> None:
    with ScriptedModelServer({}) as server:
        tags = http.get(f"{server.root_url}/api/tags").json()
        models = http.get(f"{server.base_url}/models").json()
        one = http.get(f"{server.base_url}/models/recorded-model")
    assert tags["models"][0]["name"] == "scripted"
    assert models["data"][0]["id"] == "scripted"
    assert one.status_code == 200 and one.json()["id"] == "recorded-model"  # any model is known


RECORDED = Turn(
    "writing",
    tool_calls=[("write_file", '{"path":"é.txt","content":"x"}'), ("finish_task", "{}")],
    call_ids=["call_8fK2xQ", "toolu_01A09q90qw90lq917835lq9"],
    finish_reason="length",
)


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_recorded_ids_arguments_and_finish_reason_are_played_as_given(
    http: httpx.Client, stream: bool, provider: str
) -> None:
    with ScriptedModelServer({"*": [RECORDED]}) as server:
        client: OpenAIChatClient | AnthropicClient
        if provider == "anthropic":
            client = AnthropicClient(
                http, base_url=server.root_url, api_key=None, model="m", stream=stream
            )
        else:
            client = OpenAIChatClient(
                http, base_url=server.base_url, api_key=None, model="m", stream=stream
            )
        reply = client.complete(CONVERSATION, [], headers=headers("w", 1))
    calls = reply.message.tool_calls
    assert [c.id for c in calls] == list(RECORDED.call_ids)
    assert reply.finish_reason == "length"
    if provider == "openai":  # Anthropic sends arguments as an object: only OpenAI keeps text
        assert [c.arguments for c in calls] == [a for _, a in RECORDED.tool_calls]


def test_missing_ids_are_made_up_per_turn(http: httpx.Client) -> None:
    with ScriptedModelServer({"*": [Turn(tool_calls=[("a", {}), ("b", {})])]}) as server:
        client = OpenAIChatClient(http, base_url=server.base_url, api_key=None, model="m")
        reply = client.complete(CONVERSATION, [], headers=headers("w", 1))
    assert [c.id for c in reply.message.tool_calls] == ["call_1_0", "call_1_1"]
    assert reply.finish_reason == "tool_calls"


def test_close_leaves_nothing_open(http: httpx.Client) -> None:
    server = ScriptedModelServer({"*": [Turn("x", fault=Fault("stall", stall_s=30))]})
    client = OpenAIChatClient(http, base_url=server.base_url, api_key=None, model="m", timeout=0.1)
    with pytest.raises(Exception, match="ReadTimeout"):
        client.complete(CONVERSATION, [], headers={})
    started = time.monotonic()
    server.close()
    server.close()  # idempotent
    assert time.monotonic() - started < 2
    gc.collect()  # a leaked socket would raise ResourceWarning here (filterwarnings=error)


def test_load_script_from_json(tmp_path: Path, http: httpx.Client) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "worker:*": [
                    {
                        "content": "reading",
                        "tool_calls": [
                            {"name": "read_file", "arguments": {"path": "a.py"}, "id": "c_1"}
                        ],
                        "fault": {"kind": "429", "times": 1, "retry_after": 0.1},
                    },
                    {"content": "done", "delay_s": 0.01, "finish_reason": "length"},
                ]
            }
        )
    )
    script = load_script(path)
    first, second = script["worker:*"]
    assert first.tool_calls == [("read_file", {"path": "a.py"})]
    assert first.fault == Fault("429", times=1, retry_after=0.1)
    assert list(first.call_ids) == ["c_1"]
    assert second.content == "done" and second.finish_reason == "length"
    with ScriptedModelServer(script) as server:
        assert ask(http, server, "worker:t1", 2) == "done"


def test_load_script_rejects_unknown_fault_kinds(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text('{"a": [{"fault": {"kind": "teapot"}}]}')
    with pytest.raises(ScriptError, match=r"script\.json"):
        load_script(path)


def test_load_script_wants_an_id_for_every_call_or_none(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    calls = [{"name": "a", "id": "c_1"}, {"name": "b"}]
    path.write_text(json.dumps({"a": [{"tool_calls": calls}]}))
    with pytest.raises(ScriptError, match="every tool call"):
        load_script(path)


OPENROUTER_REPLY = ChatMessage(
    role="assistant",
    tool_calls=[ToolCall(id="call_8fK2xQ", name="read_file", arguments='{"path":"a.py"}')],
    reasoning="Let me read it.",
    reasoning_field="reasoning",
    reasoning_details=[
        {"type": "reasoning.text", "text": "Let me read it.", "format": "unknown", "index": 0}
    ],
)
REFUSAL_REPLY = ChatMessage(
    role="assistant", content="I can't help with that.", refusal="I can't help with that."
)
ANTHROPIC_REPLY = ChatMessage(
    role="assistant",
    content="Reading.",
    tool_calls=[ToolCall(id="toolu_01A09q", name="read_file", arguments='{"path": "a.py"}')],
    reasoning="ab",
    reasoning_signature="sig-2",
    thinking_blocks=[
        {"type": "thinking", "thinking": "a", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        {"type": "thinking", "thinking": "b", "signature": "sig-2"},
    ],
)


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("provider", "recorded", "finish"),
    [
        ("openai", OPENROUTER_REPLY, "tool_calls"),
        ("openai", REFUSAL_REPLY, "stop"),
        ("anthropic", ANTHROPIC_REPLY, "tool_calls"),
    ],
)
def test_a_recorded_message_is_played_back_exactly(
    http: httpx.Client, stream: bool, provider: str, recorded: ChatMessage, finish: str
) -> None:
    log = [ev.ModelResponded(session="s#1", turn=1, message=recorded, finish_reason=finish)]
    with ScriptedModelServer(script_from_log(log)) as server:
        client: OpenAIChatClient | AnthropicClient
        if provider == "anthropic":
            client = AnthropicClient(
                http, base_url=server.root_url, api_key=None, model="m", stream=stream
            )
        else:
            client = OpenAIChatClient(
                http, base_url=server.base_url, api_key=None, model="m", stream=stream
            )
        session = {**headers("w", 1), "X-Ocactors-Session": "s#1"}
        reply = client.complete(CONVERSATION, [], headers=session)
    assert reply.message == recorded
    assert reply.finish_reason == finish
