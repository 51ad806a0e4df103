"""The AIMD limiter: arithmetic without threads, then real concurrency against the server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from ocactors.actors.models import (
    Fault,
    Limiter,
    LimiterRegistry,
    ModelError,
    OpenAIChatClient,
    QuotaExhausted,
    RateLimited,
    RetryingClient,
    ScriptedModelServer,
    ServerError,
    Turn,
    default_concurrency,
)
from ocactors.actors.models.limiter import is_local
from tests._models_helpers import CONVERSATION, headers, http_client


def settle(limiter: Limiter, outcome: str, times: int = 1) -> None:
    for _ in range(times):
        limiter.release(limiter.acquire(), outcome)  # type: ignore[arg-type]


def test_each_429_halves_the_cap_down_to_one() -> None:
    limiter = Limiter(8)
    caps = []
    for _ in range(5):
        settle(limiter, "rate_limited")
        caps.append(limiter.cap)
    assert caps == [4, 2, 1, 1, 1] and limiter.cuts == 5


def test_successes_raise_the_cap_slowly_back_to_the_max() -> None:
    limiter = Limiter(4)
    settle(limiter, "rate_limited", 3)
    assert limiter.cap == 1
    caps = []
    for _ in range(8):
        settle(limiter, "success")
        caps.append(limiter.cap)
    assert caps == [2, 2, 2, 3, 3, 3, 4, 4]  # +1/cap per success (2, 2.5, 2.9, ...), then max
    settle(limiter, "other", 3)
    assert limiter.cap == 4 and limiter.in_flight == 0


def test_a_burst_of_429s_from_one_overload_halves_once() -> None:
    limiter = Limiter(8)
    tickets = [limiter.acquire() for _ in range(5)]
    for ticket in tickets:
        limiter.release(ticket, "rate_limited")
    assert limiter.cap == 4
    settle(limiter, "rate_limited")  # admitted after the cut: counts
    assert limiter.cap == 2


def test_no_slot_beyond_the_cap() -> None:
    limiter = Limiter(2)
    first, _ = limiter.acquire(), limiter.acquire()
    with pytest.raises(TimeoutError):
        limiter.acquire(timeout=0.01)
    limiter.release(first, "other")
    limiter.release(limiter.acquire(timeout=0.01), "other")


def test_slot_reads_the_outcome_from_the_exception() -> None:
    limiter = Limiter(8)
    with pytest.raises(RateLimited), limiter.slot():
        raise RateLimited("slow down")
    assert limiter.cap == 4
    with pytest.raises(ValueError), limiter.slot():
        raise ValueError("neutral")
    assert limiter.cap == 4
    with limiter.slot():
        assert limiter.in_flight == 1
    assert limiter.cap == 4 and limiter.in_flight == 0  # 4.25: not a whole slot yet


@pytest.mark.parametrize(
    "error",
    [
        QuotaExhausted("out of quota", status=429),
        RateLimited("limit reported inside a stream"),
    ],
)
def test_every_429_halves_the_cap_whatever_error_it_became(error: ModelError) -> None:
    limiter = Limiter(8)
    with pytest.raises(ModelError), limiter.slot():
        raise error
    assert limiter.cap == 4
    with pytest.raises(ModelError), limiter.slot():
        raise ServerError("not a 429", status=503)
    assert limiter.cap == 4


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:11434/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8080/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),
    ],
)
def test_local_endpoints_get_a_higher_default(url: str, local: bool) -> None:
    assert is_local(url) is local
    assert default_concurrency(url) == (50 if local else 8)


def test_the_registry_shares_one_limiter_per_endpoint_and_model() -> None:
    registry = LimiterRegistry()
    found: list[Limiter] = []
    threads = [
        threading.Thread(target=lambda: found.append(registry.get("https://a/v1/", "m")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len({id(limiter) for limiter in found}) == 1
    assert found[0] is registry.get("https://a/v1", "m")
    assert registry.get("https://a/v1", "other") is not found[0]
    assert registry.get("https://b/v1", "m", max_concurrency=3).max_concurrency == 3


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def fan_out(client: RetryingClient, actors: list[str]) -> None:
    def one(actor: str) -> None:
        client.complete(CONVERSATION, [], headers=headers(actor, 1))

    threads = [threading.Thread(target=one, args=(a,)) for a in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


def test_fan_out_is_held_to_the_cap_and_429s_lower_it(http: httpx.Client) -> None:
    script = {"calm-*": [Turn("ok")], "hot-*": [Turn("ok", fault=Fault("429", retry_after=0))]}
    with ScriptedModelServer(script, latency_s=0.03) as server:
        limiter = Limiter(4)
        inner = OpenAIChatClient(http, base_url=server.base_url, api_key=None, model="m")
        client = RetryingClient(inner, limiter=limiter)
        fan_out(client, [f"calm-{i}" for i in range(12)])
        assert len(server.requests) == 12 and server.peak_concurrency == 4
        server.reset_stats()
        fan_out(client, [f"hot-{i}" for i in range(8)])
        assert len(server.requests) == 16  # every request healed after one 429
        assert server.peak_concurrency <= 4
        assert limiter.cuts >= 1 and limiter.in_flight == 0  # halved, maybe regrown since
