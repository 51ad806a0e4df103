"""The model-client contract, run against every client (issue 10 item 7, issue 14).

Part one replays real provider responses (``tests/data/wire``, each naming its source) byte
for byte from a loopback server: every client reads every fixture of its protocol as
recorded. Part two checks that reasoning a provider requires back goes back exactly as it
came. Part three is the fault and streaming suite, parametrised over every client, streamed
and not, against the scripted server: a new client is done when it passes this file.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from ocactors.actors.models import (
    AnthropicClient,
    AuthError,
    BadRequest,
    BadResponse,
    ContextOverflow,
    Fault,
    ModelClient,
    ModelError,
    OpenAIChatClient,
    RateLimited,
    RetryInfo,
    RetryingClient,
    ScriptedModelServer,
    ServerError,
    TransportError,
    Turn,
)
from ocactors.actors.models.openai_client import request_body
from ocactors.events.catalogue import ChatMessage
from tests._models_helpers import CONVERSATION, SECRET, TOOLS, closed_port, headers, http_client
from tests._wire_server import Fixture, WireServer, all_fixtures, load

PROVIDERS = {
    "openai",
    "anthropic",
    "openrouter",
    "deepseek",
    "groq",
    "ollama",
    "together",
    "vllm",
    "llama.cpp",
    "lmstudio",
}
ERRORS: dict[str, type[ModelError]] = {
    cls.__name__: cls
    for cls in (
        RateLimited,
        ServerError,
        TransportError,
        BadResponse,
        ContextOverflow,
        AuthError,
        BadRequest,
    )
}
Make = Callable[..., ModelClient]


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def client_for(http: httpx.Client, protocol: str, base_url: str, stream: bool) -> ModelClient:
    cls = OpenAIChatClient if protocol == "openai" else AnthropicClient
    return cls(http, base_url=base_url, api_key=SECRET, model="m", stream=stream)


def replay(http: httpx.Client, wire: WireServer, fixture: Fixture) -> Any:
    client = client_for(http, fixture.protocol, wire.url(fixture.name), fixture.stream)
    return client.complete(CONVERSATION, TOOLS, headers=headers())


# --- part one: real wire formats ---------------------------------------------------------


def test_the_fixtures_cover_the_providers_and_name_their_sources() -> None:
    fixtures = all_fixtures()
    assert len(fixtures) >= 25
    assert {f.meta["provider"] for f in fixtures} == PROVIDERS
    assert all(f.meta["source"].startswith("https://") and f.meta["how"] for f in fixtures)
    assert {f.protocol for f in fixtures} == {"openai", "anthropic"}


@pytest.mark.parametrize("fixture", all_fixtures(), ids=lambda f: f.name)
def test_every_recorded_response_is_read_as_recorded(
    http: httpx.Client, wire: WireServer, fixture: Fixture
) -> None:
    expect = fixture.expect
    if "error" in expect:
        with pytest.raises(ERRORS[expect["error"]]) as caught:
            replay(http, wire, fixture)
        assert type(caught.value) is ERRORS[expect["error"]]
        assert expect["error_says"] in str(caught.value) and SECRET not in str(caught.value)
        return
    reply = replay(http, wire, fixture)
    message = reply.message
    if "content" in expect:
        assert message.content == expect["content"]
    else:
        assert message.content.startswith(expect["content_starts"])
    calls = [[c.id, c.name, json.loads(c.arguments)] for c in message.tool_calls]
    assert calls == expect["tool_calls"]
    assert reply.finish_reason == expect["finish_reason"]
    assert [reply.usage.prompt_tokens, reply.usage.completion_tokens] == expect["usage"]
    assert not reply.usage.estimated
    assert message.reasoning_field == expect.get("reasoning_field")
    assert (message.reasoning or "").startswith(expect.get("reasoning_starts", ""))
    assert bool(message.reasoning) == ("reasoning_starts" in expect)
    assert message.reasoning_details == expect.get("reasoning_details", [])
    assert [b["type"] for b in message.thinking_blocks] == expect.get("thinking_blocks", [])
    assert message.refusal == expect.get("refusal")


# --- part two: reasoning goes back as the provider wants it -------------------------------


def second_request(
    http: httpx.Client, wire: WireServer, first: str, then: str = "openai-stream-text"
) -> tuple[ChatMessage, dict[str, Any]]:
    """Ask ``first``, send its reply back in the history, return what the second request
    said about that assistant message."""
    fixture = load(first)
    message = replay(http, wire, fixture).message
    history = [*CONVERSATION, message, *tool_results(message)]
    client_for(http, "openai", wire.url(then), True).complete(history, TOOLS, headers={})
    return message, wire.requests(then)[-1]["messages"][2]


def tool_results(message: ChatMessage) -> list[ChatMessage]:
    return [
        ChatMessage(role="tool", content="ok", tool_call_id=call.id) for call in message.tool_calls
    ]


def test_deepseek_gets_its_reasoning_content_back_on_a_tool_call_turn(
    http: httpx.Client, wire: WireServer
) -> None:
    message, sent = second_request(
        http, wire, "deepseek-thinking-tool-calls", "deepseek-stream-thinking"
    )
    assert sent["reasoning_content"] == message.reasoning
    assert sent["reasoning_content"].startswith("Great, now I have access")
    assert [c["id"] for c in sent["tool_calls"]] == [c.id for c in message.tool_calls]
    assert "reasoning" not in sent


@pytest.mark.parametrize("first", ["ollama-reasoning-tool-call", "groq-stream-reasoning-tool-call"])
def test_reasoning_goes_back_under_the_field_it_came_in(
    http: httpx.Client, wire: WireServer, first: str
) -> None:
    message, sent = second_request(http, wire, first)
    assert sent["reasoning"] == message.reasoning and "reasoning_content" not in sent


def test_openrouter_gets_its_reasoning_details_back_verbatim(
    http: httpx.Client, wire: WireServer
) -> None:
    message, sent = second_request(http, wire, "openrouter-stream-reasoning-details")
    assert (
        sent["reasoning_details"]
        == load("openrouter-stream-reasoning-details").expect["reasoning_details"]
    )
    assert sent["reasoning"] == message.reasoning


def test_openai_is_sent_no_reasoning_field(http: httpx.Client, wire: WireServer) -> None:
    _, sent = second_request(http, wire, "openai-stream-parallel-tools")
    assert set(sent) == {"role", "content", "tool_calls"}


def test_a_server_refusing_the_field_gets_the_request_again_without_it(
    http: httpx.Client, wire: WireServer
) -> None:
    message = replay(http, wire, load("groq-reasoning-tool-call")).message
    route = ("groq-400-reasoning-unsupported", "openai-tool-call")
    client = OpenAIChatClient(
        http, base_url=wire.url(*route), api_key=SECRET, model="m", stream=False
    )
    history = [*CONVERSATION, message, *tool_results(message)]
    reply = client.complete(history, TOOLS, headers={})
    assert reply.message.tool_calls[0].name == "get_weather"
    first, second = (r["messages"][2] for r in wire.requests(*route))
    assert "reasoning" in first and "reasoning" not in second
    assert not client.echo_reasoning


def test_deepseeks_must_be_passed_back_is_not_taken_for_an_unknown_field(
    http: httpx.Client, wire: WireServer
) -> None:
    message = replay(http, wire, load("deepseek-thinking-tool-calls")).message
    route = "deepseek-400-reasoning-not-passed-back"
    client = client_for(http, "openai", wire.url(route), False)
    before = len(wire.requests(route))
    with pytest.raises(BadRequest, match="must be passed back"):
        client.complete([*CONVERSATION, message, *tool_results(message)], TOOLS, headers={})
    assert len(wire.requests(route)) == before + 1


def test_groq_is_known_not_to_take_reasoning_back(http: httpx.Client) -> None:
    groq = OpenAIChatClient(
        http, base_url="https://api.groq.com/openai/v1", api_key=None, model="m"
    )
    local = OpenAIChatClient(http, base_url="http://127.0.0.1:11434/v1", api_key=None, model="m")
    assert (groq.echo_reasoning, local.echo_reasoning) == (False, True)


@pytest.mark.parametrize(
    "first",
    [
        "anthropic-stream-redacted-thinking",
        "anthropic-redacted-thinking",
        "anthropic-stream-thinking-signed",
    ],
)
def test_anthropic_gets_every_thinking_block_back_exactly(
    http: httpx.Client, wire: WireServer, first: str
) -> None:
    message = replay(http, wire, load(first)).message
    then = "anthropic-stream-text"
    client = client_for(http, "anthropic", wire.url(then), True)
    client.complete(
        [*CONVERSATION, message, ChatMessage(role="user", content="go on")], [], headers={}
    )
    blocks = wire.requests(then)[-1]["messages"][1]["content"]
    thinking = [b for b in blocks if b["type"] in ("thinking", "redacted_thinking")]
    assert thinking == recorded_thinking(load(first))


def recorded_thinking(fixture: Fixture) -> list[dict[str, Any]]:
    """The thinking blocks of a recorded Anthropic reply, read straight from its bytes."""
    if not fixture.stream:
        content = json.loads(fixture.body)["content"]
        return [b for b in content if b["type"] in ("thinking", "redacted_thinking")]
    blocks: dict[int, dict[str, Any]] = {}
    for line in fixture.body.decode().splitlines():
        if line.startswith("data:"):
            fold_event(blocks, json.loads(line[5:]))
    return [blocks[i] for i in sorted(blocks) if blocks[i]["type"] != "text"]


def fold_event(blocks: dict[int, dict[str, Any]], event: dict[str, Any]) -> None:
    if event["type"] == "content_block_start":
        blocks[event["index"]] = dict(event["content_block"])
    elif event["type"] == "content_block_delta":
        block, delta = blocks[event["index"]], event["delta"]
        for key in ("thinking", "signature"):
            if key in delta:
                block[key] = block.get(key, "") + delta[key] if key == "thinking" else delta[key]


@pytest.mark.parametrize(
    "first",
    [
        "deepseek-thinking-tool-calls",
        "openrouter-stream-reasoning-details",
        "anthropic-stream-redacted-thinking",
    ],
)
def test_a_message_read_back_from_the_log_sends_the_same_bytes(
    http: httpx.Client, wire: WireServer, first: str
) -> None:
    fixture = load(first)
    message = replay(http, wire, fixture).message
    logged = msgspec.json.decode(msgspec.json.encode(message), type=ChatMessage)
    assert logged == message
    bodies = []
    for each in (message, logged):
        client = client_for(http, fixture.protocol, wire.url("openai-stream-text"), True)
        if fixture.protocol == "anthropic":
            assert isinstance(client, AnthropicClient)
            bodies.append(msgspec.json.encode(client.request_body([*CONVERSATION, each], [])))
        else:
            history = [*CONVERSATION, each]
            bodies.append(msgspec.json.encode(request_body("m", history, [], stream=True)))
    assert bodies[0] == bodies[1]


# --- part three: the fault and streaming suite, for every client ---------------------------


SCRIPT = {
    "worker:*": [
        Turn(
            "Reading both files.",
            [("read_file", {"path": "a.py"}), ("grep", {"pattern": "def main", "path": "."})],
            reasoning="Two files are involved.",
        ),
        Turn("Done."),
    ],
    "quiet": [Turn("no usage here", [("read_file", {"path": "b.py"})], usage=False)],
    "slow-down-*": [Turn("healed", fault=Fault("429", times=1, retry_after=0.05))],
    "always-429-*": [Turn("never", fault=Fault("429", times=9))],
    "flaky-*": [Turn("healed", fault=Fault("500", times=1))],
    "stall-*": [Turn("healed", fault=Fault("stall", times=1, stall_s=2.0))],
    "cut-*": [Turn("healed", fault=Fault("disconnect", times=1))],
    "garbled-*": [Turn("healed", fault=Fault("bad_body", times=1))],
    "broken-*": [Turn("never", fault=Fault("bad_body", times=9))],
    "long-*": [Turn("never", fault=Fault("context_length", times=9))],
    "denied-*": [Turn("never", fault=Fault("401", times=9))],
}
CLIENTS = [("openai", True), ("openai", False), ("anthropic", True), ("anthropic", False)]
IDS = [f"{protocol}-{'stream' if stream else 'whole'}" for protocol, stream in CLIENTS]


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture(params=CLIENTS, ids=IDS)
def make(request: pytest.FixtureRequest, http: httpx.Client) -> Make:
    protocol, stream = request.param

    def build(base_url: str, *, timeout: float = 5.0) -> ModelClient:
        cls = OpenAIChatClient if protocol == "openai" else AnthropicClient
        return cls(
            http, base_url=base_url, api_key=SECRET, model="m", stream=stream, timeout=timeout
        )

    return build


class Healing:
    """A RetryingClient around ``inner`` that records retries instead of sleeping."""

    def __init__(self, inner: ModelClient) -> None:
        self.infos: list[RetryInfo] = []
        self.sleeps: list[float] = []
        self.client = RetryingClient(inner, sleep=self.sleeps.append, rng=random.Random(1))

    def ask(self, actor: str) -> str:
        reply = self.client.complete(
            CONVERSATION, [], headers=headers(actor, 1), on_retry=self.infos.append
        )
        return reply.message.content


NAMES = itertools.count()


def unique(actor: str) -> str:
    """A fresh actor name, so the fault counters of one test do not heal another."""
    return f"{actor}-{next(NAMES)}"


def test_a_turn_with_tool_calls_reasoning_and_usage(
    make: Make, scripted: ScriptedModelServer
) -> None:
    reply = make(scripted.base_url).complete(CONVERSATION, TOOLS, headers=headers(turn=1))
    message = reply.message
    assert (message.content, message.reasoning) == (
        "Reading both files.",
        "Two files are involved.",
    )
    assert [(c.id, c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("call_1_0", "read_file", {"path": "a.py"}),
        ("call_1_1", "grep", {"pattern": "def main", "path": "."}),
    ]
    assert reply.finish_reason == "tool_calls"
    assert reply.usage.prompt_tokens > 0 and not reply.usage.estimated and reply.latency_ms > 0


def test_the_history_goes_back_and_the_next_turn_is_read(
    make: Make, scripted: ScriptedModelServer
) -> None:
    client = make(scripted.base_url)
    first = client.complete(CONVERSATION, TOOLS, headers=headers(turn=1)).message
    history = [*CONVERSATION, first, *tool_results(first)]
    reply = client.complete(history, TOOLS, headers=headers())
    assert reply.message.content == "Done." and reply.finish_reason == "stop"


def test_usage_is_estimated_when_the_server_sends_none(
    make: Make, scripted: ScriptedModelServer
) -> None:
    reply = make(scripted.base_url).complete(CONVERSATION, [], headers=headers("quiet", 1))
    assert reply.usage.estimated and reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


def test_429_is_retried_after_the_wait_the_provider_asked_for(
    make: Make, scripted: ScriptedModelServer
) -> None:
    healing = Healing(make(scripted.base_url))
    assert healing.ask(unique("slow-down")) == "healed"
    (info,) = healing.infos
    assert (info.status, info.delay_s) == (429, 0.05) and SECRET not in info.error


def test_429_every_time_exhausts_the_attempts(make: Make, scripted: ScriptedModelServer) -> None:
    healing = Healing(make(scripted.base_url))
    with pytest.raises(RateLimited):
        healing.ask(unique("always-429"))
    assert [i.status for i in healing.infos] == [429, 429]


@pytest.mark.parametrize(
    ("actor", "says"), [("flaky", "500"), ("stall", "ReadTimeout"), ("cut", "cannot reach")]
)
def test_transient_failures_heal(
    make: Make, scripted: ScriptedModelServer, actor: str, says: str
) -> None:
    healing = Healing(make(scripted.base_url, timeout=0.3))
    assert healing.ask(unique(actor)) == "healed"
    (info,) = healing.infos
    assert says in info.error


def test_a_malformed_body_is_retried_once(make: Make, scripted: ScriptedModelServer) -> None:
    assert Healing(make(scripted.base_url)).ask(unique("garbled")) == "healed"
    actor = unique("broken")
    with pytest.raises(BadResponse, match="malformed"):
        Healing(make(scripted.base_url)).ask(actor)
    assert len(scripted.calls_for(actor)) == 2


@pytest.mark.parametrize(("actor", "error"), [("long", ContextOverflow), ("denied", AuthError)])
def test_overflow_and_a_wrong_key_are_not_retried(
    make: Make, scripted: ScriptedModelServer, actor: str, error: type[ModelError]
) -> None:
    healing = Healing(make(scripted.base_url))
    name = unique(actor)
    with pytest.raises(error) as caught:
        healing.ask(name)
    assert healing.infos == [] and len(scripted.calls_for(name)) == 1
    assert SECRET not in str(caught.value)


def test_a_refused_connection_is_retried_then_raised_without_the_key(make: Make) -> None:
    healing = Healing(make(f"http://127.0.0.1:{closed_port()}/{SECRET}/v1"))
    with pytest.raises(TransportError, match="ConnectError") as caught:
        healing.ask("any")
    texts = [str(caught.value), *(i.error for i in healing.infos)]
    assert len(healing.infos) == 2
    assert all(SECRET not in t and "[REDACTED]" in t for t in texts)


def test_a_base_url_without_scheme_is_a_bad_request(make: Make) -> None:
    with pytest.raises(BadRequest) as caught:
        make("127.0.0.1:9/v1").complete(CONVERSATION, [], headers={})
    assert SECRET not in str(caught.value)
