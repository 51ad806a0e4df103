"""Self-healing: every failure path of a real request, healed or raised as the right error."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from ocactors.actors.models import (
    AuthError,
    BadResponse,
    ContextOverflow,
    Fault,
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
from ocactors.actors.models._http import retry_after
from tests._models_helpers import CONVERSATION, SECRET, closed_port, headers, http_client


def turn_with(fault: Fault) -> list[Turn]:
    return [Turn("healed", fault=fault)]


SCRIPT = {
    "rate": turn_with(Fault("429", times=1, retry_after=0.1)),
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


def test_retry_after_is_capped(http: httpx.Client) -> None:
    client = RetryingClient(
        OpenAIChatClient(http, base_url="http://x/v1", api_key=None, model="m"), max_delay=2.0
    )
    assert client.delay(1, RateLimited("slow down", retry_after=600)) == 2.0
    assert client.delay(1, RateLimited("slow down", retry_after=0.3)) == 0.3
    assert client.delay(9, ServerError("boom", status=502)) == 2.0


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


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after({"retry-after": later}, now=now.timestamp()) == 30.0
