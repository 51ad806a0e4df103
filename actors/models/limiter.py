"""How many requests may be in flight to one (endpoint, model), adapted as 429s arrive.

AIMD, as TCP does it: every 429 (whichever error it became: a rate limit, a quota, a limit
reported inside a stream) halves the cap (never below 1), every success adds
``1/cap`` (so about one more slot per cap's worth of successes) until ``max_concurrency``
is reached again. A 429 for a request that was admitted before the last cut is not
counted again: a burst of 429s from one overload halves the cap once, not ten times.

All sessions share one :class:`LimiterRegistry`, so fifty workers fanning out at the same
provider see one limiter. Everything here is thread-safe.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ocactors.actors.models.errors import ModelError

HOSTED_CONCURRENCY = 8
LOCAL_CONCURRENCY = 50

Outcome = Literal["success", "rate_limited", "other"]


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request; ``generation`` is the cap's epoch when it was admitted."""

    generation: int


class Limiter:
    """An AIMD concurrency cap for one (endpoint, model)."""

    def __init__(self, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._cap = float(max_concurrency)
        self._in_flight = 0
        self._generation = 0
        self._cond = threading.Condition()

    @property
    def cap(self) -> int:
        """Requests allowed in flight right now."""
        with self._cond:
            return int(self._cap)

    @property
    def cuts(self) -> int:
        """How many times a 429 has halved the cap so far."""
        with self._cond:
            return self._generation

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def acquire(self, timeout: float | None = None) -> Ticket:
        """Wait for a free slot; raises TimeoutError if none frees up within ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._in_flight < int(self._cap), timeout):
                raise TimeoutError(f"no free model slot within {timeout}s")
            self._in_flight += 1
            return Ticket(self._generation)

    def release(self, ticket: Ticket, outcome: Outcome) -> None:
        """Free the slot and adapt the cap to how the request went."""
        with self._cond:
            self._in_flight -= 1
            if outcome == "success":
                self._cap = min(float(self.max_concurrency), self._cap + 1 / self._cap)
            elif outcome == "rate_limited" and ticket.generation == self._generation:
                self._cap = max(1.0, self._cap / 2)
                self._generation += 1
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the body; any 429 escaping it halves the cap."""
        ticket = self.acquire()
        outcome: Outcome = "other"
        try:
            yield
            outcome = "success"
        except ModelError as error:
            outcome = "rate_limited" if error.status == 429 else "other"
            raise
        finally:
            self.release(ticket, outcome)

    def __repr__(self) -> str:
        return f"Limiter(cap={self.cap}, max={self.max_concurrency}, in_flight={self.in_flight})"


def is_local(base_url: str) -> bool:
    """Does ``base_url`` point at this machine (Ollama, vLLM, llama.cpp, the scripted server)?"""
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def default_concurrency(base_url: str) -> int:
    """8 for hosted providers, 50 for a server on this machine."""
    return LOCAL_CONCURRENCY if is_local(base_url) else HOSTED_CONCURRENCY


class LimiterRegistry:
    """One Limiter per (base_url, model), created on first use and shared by all sessions."""

    def __init__(self, default: Callable[[str], int] = default_concurrency) -> None:
        self._default = default
        self._limiters: dict[tuple[str, str], Limiter] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, model: str, max_concurrency: int | None = None) -> Limiter:
        """The shared limiter; ``max_concurrency`` only matters the first time."""
        key = (base_url.rstrip("/"), model)
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = Limiter(max_concurrency or self._default(base_url))
                self._limiters[key] = limiter
            return limiter
