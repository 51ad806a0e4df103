"""Self-healing: every failure path of a real request, healed or raised as the right error."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ocactors.actors.models import (
    AuthError,
    BadResponse,
    ContextOverflow,
    Fault,
    ModelError,
    OpenAIChatClient,
    QuotaExhausted,
    RateLimited,
    RetryInfo,
    RetryingClient,
    ScriptedModelServer,
    ServerError,
    TransportError,
    Turn,
)
from ocactors.actors.models._http import StreamLimits, retry_after
from ocactors.actors.models.anthropic_client import AnthropicClient
from tests._models_helpers import CONVERSATION, SECRET, closed_port, headers, http_client


def turn_with(fault: Fault) -> list[Turn]:
    return [Turn("healed", fault=fault)]


SCRIPT = {
    "rate": turn_with(Fault("429", times=1, retry_after=0.1)),
    "rate-120": turn_with(Fault("429", times=1, retry_after=120)),
    "rate-hour": turn_with(Fault("429", times=1, retry_after=3600)),
    "rate-forever": turn_with(Fault("429", times=9)),
    "flaky-*": turn_with(Fault("500", times=1)),
    "down": turn_with(Fault("500", times=9)),
    "stall": turn_with(Fault("stall", times=1, stall_s=2.0)),
    "cut": turn_with(Fault("disconnect", times=1)),
    "garbled": turn_with(Fault("bad_body", times=1)),
    "garbled-forever": turn_with(Fault("bad_body", times=9)),
    "long": turn_with(Fault("context_length", times=9)),
    "denied": turn_with(Fault("401", times=9)),
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


class Recorder:
    """Collects on_retry calls and the sleeps that follow them (without sleeping)."""

    def __init__(self) -> None:
        self.infos: list[RetryInfo] = []
        self.sleeps: list[float] = []

    def retrying(
        self, http: httpx.Client, base_url: str, *, stream: bool = True, timeout: float = 5.0
    ) -> RetryingClient:
        inner = OpenAIChatClient(
            http, base_url=base_url, api_key=SECRET, model="m", stream=stream, timeout=timeout
        )
        return RetryingClient(inner, sleep=self.sleeps.append, rng=random.Random(1))


def ask(client: RetryingClient, actor: str, recorder: Recorder | None = None) -> str:
    on_retry = recorder.infos.append if recorder else None
    reply = client.complete(CONVERSATION, [], headers=headers(actor, 1), on_retry=on_retry)
    return reply.message.content


def test_429_waits_as_long_as_retry_after_says(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    recorder = Recorder()
    inner = OpenAIChatClient(http, base_url=server.base_url, api_key=SECRET, model="m")
    client = RetryingClient(inner)  # really sleeps
    started = time.monotonic()
    assert ask(client, "rate", recorder) == "healed"
    assert time.monotonic() - started >= 0.1
    (info,) = recorder.infos
    assert (info.attempt, info.status, info.delay_s) == (1, 429, 0.1)
    assert "429" in info.error and SECRET not in info.error


@pytest.mark.parametrize("stream", [True, False])
def test_500_then_success(http: httpx.Client, server: ScriptedModelServer, stream: bool) -> None:
    recorder = Recorder()
    client = recorder.retrying(http, server.base_url, stream=stream)
    assert ask(client, f"flaky-{stream}", recorder) == "healed"
    assert [i.status for i in recorder.infos] == [500]


def test_backoff_doubles_with_jitter_then_the_last_error_is_raised(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    recorder = Recorder()
    client = recorder.retrying(http, server.base_url)
    server.reset_stats()
    with pytest.raises(ServerError, match="HTTP 500") as caught:
        ask(client, "down", recorder)
    assert caught.value.status == 500
    assert len(server.calls_for("down")) == 3
    assert [i.attempt for i in recorder.infos] == [1, 2]
    assert recorder.sleeps == [i.delay_s for i in recorder.infos]
    first, second = recorder.sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


def test_stall_past_the_read_timeout_is_retried(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    recorder = Recorder()
    client = recorder.retrying(http, server.base_url, timeout=0.2)
    assert ask(client, "stall", recorder) == "healed"
    (info,) = recorder.infos
    assert info.status is None and "ReadTimeout" in info.error


def test_cut_stream_is_retried(http: httpx.Client, server: ScriptedModelServer) -> None:
    recorder = Recorder()
    assert ask(recorder.retrying(http, server.base_url), "cut", recorder) == "healed"
    assert "cannot reach" in recorder.infos[0].error


def test_connection_refused_is_retried_then_raised(http: httpx.Client) -> None:
    recorder = Recorder()
    client = recorder.retrying(http, f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(TransportError, match="ConnectError"):
        ask(client, "any", recorder)
    assert len(recorder.infos) == 2


def test_malformed_body_is_retried_once(http: httpx.Client, server: ScriptedModelServer) -> None:
    recorder = Recorder()
    assert ask(recorder.retrying(http, server.base_url), "garbled", recorder) == "healed"
    with pytest.raises(BadResponse, match="malformed"):
        ask(recorder.retrying(http, server.base_url, stream=False), "garbled-forever")
    assert len(server.calls_for("garbled-forever")) == 2


@pytest.mark.parametrize(("actor", "error"), [("long", ContextOverflow), ("denied", AuthError)])
def test_overflow_and_auth_are_not_retried(
    http: httpx.Client, server: ScriptedModelServer, actor: str, error: type[ModelError]
) -> None:
    recorder = Recorder()
    server.reset_stats()
    with pytest.raises(error) as caught:
        ask(recorder.retrying(http, server.base_url), actor, recorder)
    assert recorder.infos == [] and len(server.calls_for(actor)) == 1
    assert SECRET not in str(caught.value)


def test_the_key_is_scrubbed_even_where_the_url_carries_it(http: httpx.Client) -> None:
    recorder = Recorder()
    client = recorder.retrying(http, f"http://127.0.0.1:{closed_port()}/{SECRET}/v1")
    with pytest.raises(TransportError) as caught:
        ask(client, "any", recorder)
    texts = [str(caught.value), *(i.error for i in recorder.infos)]
    assert all(SECRET not in t and "[REDACTED]" in t for t in texts)


def test_a_stated_wait_is_honoured_up_to_max_wait_and_backoff_up_to_max_delay(
    http: httpx.Client,
) -> None:
    client = RetryingClient(
        OpenAIChatClient(http, base_url="http://x/v1", api_key=None, model="m"), max_delay=2.0
    )
    assert client.max_wait == 300.0  # five minutes unless max_retry_wait_s says otherwise
    assert client.delay(1, RateLimited("slow down", retry_after=120)) == 120.0
    assert client.delay(1, RateLimited("slow down", retry_after=0.3)) == 0.3
    assert client.delay(9, ServerError("boom", status=502)) == 2.0


def test_retry_after_120_is_slept_whole(http: httpx.Client, server: ScriptedModelServer) -> None:
    recorder = Recorder()
    assert ask(recorder.retrying(http, server.base_url), "rate-120", recorder) == "healed"
    assert recorder.sleeps == [120.0]


def test_a_wait_beyond_max_wait_is_not_retried_and_says_which_setting(
    http: httpx.Client, server: ScriptedModelServer
) -> None:
    recorder = Recorder()
    server.reset_stats()
    with pytest.raises(RateLimited, match=r"asks to wait 3600 s, more than max_retry_wait_s = 300"):
        ask(recorder.retrying(http, server.base_url), "rate-hour", recorder)
    assert recorder.sleeps == [] and len(server.calls_for("rate-hour")) == 1


def test_rate_limit_exhausts_attempts(http: httpx.Client, server: ScriptedModelServer) -> None:
    recorder = Recorder()
    with pytest.raises(RateLimited):
        ask(recorder.retrying(http, server.base_url), "rate-forever", recorder)
    assert [i.status for i in recorder.infos] == [429, 429]


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(given: dict[str, str], seconds: float | None) -> None:
    assert retry_after(given) == seconds


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "1.5s"}, 1.5),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"x-ratelimit-reset-requests": "1h2m3.5s"}, 3723.5),
        ({"x-ratelimit-reset-requests": "2"}, 2.0),
        ({"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "7.66s"}, 360.0),
        (
            {
                "x-ratelimit-reset-requests": "6m0s",
                "x-ratelimit-remaining-requests": "12",
                "x-ratelimit-reset-tokens": "7.66s",
                "x-ratelimit-remaining-tokens": "0",
            },
            7.66,
        ),
        ({"retry-after": "3", "x-ratelimit-reset-requests": "6m0s"}, 3.0),
        ({"x-ratelimit-reset-requests": "soon"}, None),
        ({"x-ratelimit-reset-requests": "6x"}, None),
    ],
)
def test_openai_reset_headers(given: dict[str, str], seconds: float | None) -> None:
    found = retry_after(given)
    assert found == pytest.approx(seconds) if seconds is not None else found is None


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after({"retry-after": later}, now=now.timestamp()) == 30.0


# --- providers' own answers, from a loopback server that plays them byte for byte ---------

Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@contextmanager
def loopback(*answers: Answer) -> Iterator[tuple[str, list[str]]]:
    """A server playing ``answers`` in order (the last one repeats): (base URL, paths asked)."""
    stop = threading.Event()
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked.append(self.path)
            with contextlib.suppress(OSError):
                answers[min(len(asked), len(answers)) - 1](self, stop)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", asked
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def status(code: int, body: dict[str, Any], **extra: str) -> Answer:
    """A JSON answer with ``code`` and extra headers (``retry_after="3"``)."""

    def answer(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(data)

    return answer


OK = status(200, {"choices": [{"message": {"content": "healed"}, "finish_reason": "stop"}]})


def openai_error(
    message: str, kind: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


QUOTA = [
    pytest.param(
        429,
        openai_error(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        id="openai-insufficient-quota",
    ),
    pytest.param(402, {"error": {"message": "Insufficient Balance"}}, id="deepseek-402"),
    pytest.param(
        402, {"error": {"message": "Insufficient credits", "code": 402}}, id="openrouter-402"
    ),
    pytest.param(
        400,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        },
        id="anthropic-credit",
    ),
]


def plain(http: httpx.Client, base_url: str, recorder: Recorder, **kwargs: Any) -> RetryingClient:
    inner = OpenAIChatClient(http, base_url=base_url, api_key=SECRET, model="m", stream=False)
    return RetryingClient(inner, sleep=recorder.sleeps.append, rng=random.Random(1), **kwargs)


@pytest.mark.parametrize(("code", "body"), QUOTA)
def test_quota_exhaustion_is_not_retried_and_says_so(
    http: httpx.Client, code: int, body: dict[str, Any]
) -> None:
    recorder = Recorder()
    with (
        loopback(status(code, body), OK) as (url, asked),
        pytest.raises(QuotaExhausted, match="out of quota or credit: not retried") as caught,
    ):
        ask(plain(http, url, recorder), "any", recorder)
    assert len(asked) == 1 and recorder.infos == []
    assert body["error"]["message"] in str(caught.value)  # the provider's own words


def test_quota_wording_with_a_retry_hint_is_a_passing_limit(http: httpx.Client) -> None:
    body = openai_error("You exceeded your current quota, please check your plan.", "rate")
    recorder = Recorder()
    with loopback(status(429, body, retry_after="2"), OK) as (url, asked):
        assert ask(plain(http, url, recorder), "any", recorder) == "healed"
    assert recorder.sleeps == [2.0] and len(asked) == 2


def test_openai_reset_header_on_a_429_is_waited_for(http: httpx.Client) -> None:
    limited = status(
        429,
        openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        x_ratelimit_reset_requests="1m30s",
        x_ratelimit_remaining_requests="0",
    )
    recorder = Recorder()
    with loopback(limited, OK) as (url, _):
        assert ask(plain(http, url, recorder), "any", recorder) == "healed"
    assert recorder.sleeps == [90.0]


GROQ_413 = openai_error(
    "Request too large for model `llama3-70b-8192` in organization `org_01` service tier "
    "`on_demand` on tokens per minute (TPM): Limit 6000, Requested 7254, please reduce your "
    "message size and try again.",
    "tokens",
    "rate_limit_exceeded",
)
VLLM_400 = openai_error(
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
    "(8000 in the messages, 1000 in the completion). Please reduce the length of the messages."
)


ANTHROPIC_413 = {
    "type": "error",
    "error": {
        "type": "request_too_large",
        "message": "Request exceeds the maximum allowed number of bytes.",
    },
}


@pytest.mark.parametrize(
    ("code", "body", "words", "limit"),
    [
        (413, GROQ_413, "Limit 6000, Requested 7254", 6000),
        (400, VLLM_400, "maximum context length is 8192 tokens", 8192),
        (413, ANTHROPIC_413, "Request exceeds the maximum allowed number of bytes.", None),
    ],
)
def test_overflow_keeps_the_providers_words_and_names_context_window(
    http: httpx.Client, code: int, body: dict[str, Any], words: str, limit: int | None
) -> None:
    recorder = Recorder()
    with loopback(status(code, body)) as (url, asked), pytest.raises(ContextOverflow) as caught:
        ask(plain(http, url, recorder), "any", recorder)
    assert len(asked) == 1 and caught.value.limit == limit
    assert words in str(caught.value)
    setting = "context_window" if limit is None else f"context_window = {limit}"
    assert f"(set {setting} under [models] in .opencode/ocactors.toml" in str(caught.value)


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        ("prompt is too long: 250000 tokens > 200000 maximum", 200000),
        ("the request exceeds the available context size (4096 tokens), try increasing it", 4096),
        ("the model is loaded with context length of only 4096 tokens", 4096),
        ("input exceeds the context window of 32768 tokens", 32768),
        ("context_length_exceeded", None),
    ],
)
def test_the_stated_window_of_other_providers(message: str, limit: int | None) -> None:
    error = ContextOverflow(message)
    assert error.limit == limit and str(error).startswith(message)
    assert "context_window" in str(error)


# --- bounded answers -------------------------------------------------------------------


def endless_openai(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """A stream that never ends: a chunk every 10 ms until the test is over."""
    start_stream(handler)
    chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
    for _ in range(60_000):
        if stop.wait(0.01):
            return
        send_event(handler, b"data: " + json.dumps(chunk).encode() + b"\n\n")


def endless_anthropic(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    start_stream(handler)
    send_event(handler, b'data: {"type":"message_start","message":{"content":[]}}\n\n')
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
    send_event(handler, b"data: " + json.dumps(block).encode() + b"\n\n")
    delta = {"type": "content_block_delta", "index": 0, "delta": {"text": "x"}}
    for _ in range(60_000):
        if stop.wait(0.01):
            return
        send_event(handler, b"data: " + json.dumps(delta).encode() + b"\n\n")


def silent(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """Headers, one empty event, then nothing until the test is over."""
    start_stream(handler)
    send_event(handler, b": keep-alive\n\n")
    stop.wait(30)


def flood(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """64 KiB events as fast as the client reads them."""
    start_stream(handler)
    chunk = {"choices": [{"index": 0, "delta": {"content": "y" * 65_536}}]}
    event = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    for _ in range(10_000):
        if stop.is_set():
            return
        send_event(handler, event)


def huge_body(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    reply = {"choices": [{"message": {"content": "z" * 3_000_000}, "finish_reason": "stop"}]}
    status(200, reply)(handler, stop)


def start_stream(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def send_event(handler: BaseHTTPRequestHandler, event: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
    handler.wfile.flush()


def bounded(
    http: httpx.Client, url: str, recorder: Recorder, limits: StreamLimits, *, kind: str = "openai"
) -> RetryingClient:
    inner: OpenAIChatClient | AnthropicClient
    if kind == "anthropic":
        inner = AnthropicClient(http, base_url=url, api_key=SECRET, model="m", timeout=5.0)
    else:
        inner = OpenAIChatClient(
            http, base_url=url, api_key=SECRET, model="m", stream=kind == "openai", timeout=5.0
        )
    return RetryingClient(
        inner, attempts=2, limits=limits, sleep=recorder.sleeps.append, rng=random.Random(1)
    )


@pytest.mark.parametrize(
    ("kind", "answer"),
    [("openai", endless_openai), ("anthropic", endless_anthropic), ("openai", silent)],
)
def test_an_endless_or_silent_stream_ends_at_the_turn_deadline_and_is_retried(
    http: httpx.Client, kind: str, answer: Answer
) -> None:
    recorder = Recorder()
    limits = StreamLimits(deadline_s=0.5)
    with loopback(answer) as (url, asked):
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"took longer than 0.5 s .*turn_deadline_s"):
            ask(bounded(http, url, recorder, limits, kind=kind), "any", recorder)
        took = time.monotonic() - started
    assert len(asked) == 2 and len(recorder.infos) == 1  # retryable, and retried
    assert "turn_deadline_s" in recorder.infos[0].error
    assert 1.0 <= took < 3.0  # two attempts of 0.5 s, not the 5 s read timeout


@pytest.mark.parametrize(("kind", "answer"), [("openai", flood), ("plain", huge_body)])
def test_an_oversized_answer_ends_at_the_size_cap(
    http: httpx.Client, kind: str, answer: Answer
) -> None:
    recorder = Recorder()
    limits = StreamLimits(max_bytes=1_000_000)
    with (
        loopback(answer) as (url, asked),
        pytest.raises(TransportError, match=r"passed 1000000 bytes .*max_response_bytes"),
    ):
        ask(bounded(http, url, recorder, limits, kind=kind), "any", recorder)
    assert len(asked) == 2 and "max_response_bytes" in recorder.infos[0].error
