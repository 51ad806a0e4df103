"""Self-healing around a provider client: the only place in ocactors that retries.

Retried, with exponential backoff and jitter (at most ``max_delay``): RateLimited,
ServerError, TransportError (also an answer cut at the turn deadline or the size cap), and
BadResponse once. A RateLimited that says when to come back (Retry-After,
x-ratelimit-reset-*) waits exactly that long, up to ``max_wait``; a provider asking for more
gets no retry, and the error says which setting to raise. Not retried, raised to the
session at once: ContextOverflow (the session compacts), QuotaExhausted, AuthError,
BadRequest. After ``attempts`` attempts the last error is raised. Each retry is announced
through ``on_retry`` before the sleep, so the log shows the wait while it happens.

Each attempt runs under ``limits`` (:func:`stream_limits`), which bound the answer's time
and size in the HTTP seam that both provider clients share.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ocactors.actors.models._http import StreamLimits, stream_limits
from ocactors.actors.models.errors import (
    BadResponse,
    ModelError,
    RateLimited,
    ServerError,
    TransportError,
)
from ocactors.actors.models.limiter import Limiter
from ocactors.actors.models.types import ModelClient, ModelReply, OnRetry, RetryInfo
from ocactors.events.catalogue import ChatMessage

RETRYABLE = (RateLimited, ServerError, TransportError, BadResponse)
DEFAULT_MAX_WAIT_S = 300.0


class RetryingClient:
    """A ModelClient that heals transient failures of ``inner``. Thread-safe."""

    def __init__(
        self,
        inner: ModelClient,
        *,
        attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        max_wait: float = DEFAULT_MAX_WAIT_S,
        limits: StreamLimits | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_wait = max_wait
        self.limits = limits or StreamLimits()
        self.limiter = limiter
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def __repr__(self) -> str:
        return f"RetryingClient({self.inner!r}, attempts={self.attempts})"

    def complete(
        self,
        messages: list[ChatMessage],
        tools: list[dict[str, Any]],
        *,
        headers: Mapping[str, str],
        on_retry: OnRetry | None = None,
    ) -> ModelReply:
        """Ask ``inner``, retrying what can heal; raises the last ModelError otherwise."""
        bad_responses = 0
        for attempt in range(1, self.attempts + 1):
            try:
                with self._slot(), stream_limits(self.limits):
                    return self.inner.complete(messages, tools, headers=headers)
            except RETRYABLE as error:
                bad_responses += isinstance(error, BadResponse)
                if attempt == self.attempts or bad_responses > 1:
                    raise
                self._refuse_long_waits(error)
                self._pause(attempt, error, on_retry)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _slot(self) -> AbstractContextManager[None]:
        return self.limiter.slot() if self.limiter is not None else nullcontext()

    def _pause(self, attempt: int, error: ModelError, on_retry: OnRetry | None) -> None:
        delay = self.delay(attempt, error)
        if on_retry is not None:
            on_retry(
                RetryInfo(attempt=attempt, error=str(error), status=error.status, delay_s=delay)
            )
        self._sleep(delay)

    def _refuse_long_waits(self, error: ModelError) -> None:
        """A provider asking for a wait beyond ``max_wait`` is not retried: say so."""
        if isinstance(error, RateLimited) and (error.retry_after or 0.0) > self.max_wait:
            raise RateLimited(
                f"{error} (the provider asks to wait {error.retry_after:g} s, more than "
                f"max_retry_wait_s = {self.max_wait:g} under [models]: not retried)",
                retry_after=error.retry_after,
            ) from error

    def delay(self, attempt: int, error: ModelError) -> float:
        """The provider's wait when it stated one (at most ``max_wait``), else
        ``base * 2^(attempt-1)`` with jitter in [50%, 100%] so that fanned-out sessions do
        not retry in lockstep."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.max_wait)
        backoff: float = self.base_delay * 2.0 ** (attempt - 1)
        return min(backoff * (0.5 + self._rng.random() / 2), self.max_delay)
