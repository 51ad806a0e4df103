"""The one HTTP seam of the model clients: send a JSON POST, map every failure to ModelError.

Both provider clients go through :func:`open_response`, so the status-to-error mapping,
rate-limit hints (Retry-After, x-ratelimit-reset-*), the bounds on an answer (a deadline and
a size cap) and the scrubbing of the API key from messages live in one place.

The bounds are policy, set per role by :class:`RetryingClient` around each attempt through
:func:`stream_limits` (a context variable, so the wire-format clients need not carry them);
a bare client gets the defaults.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

from ocactors.actors.models.errors import (
    AuthError,
    BadRequest,
    BadResponse,
    ContextOverflow,
    ModelError,
    QuotaExhausted,
    RateLimited,
    ServerError,
    TransportError,
    scrub,
)

CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 60.0
EXCERPT_CHARS = 300
DEFAULT_TURN_DEADLINE_S = 1200.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

# Phrases providers use when the prompt does not fit (OpenAI, vLLM, DeepSeek, OpenRouter,
# LM Studio, llama.cpp, Anthropic); matched case-insensitively on 400/413/422 bodies.
OVERFLOW_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context size",
    "context window",
    "context limit",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "request too large",
    "reduce your message size",
    "reduce the length of the messages",
    "exceeds the available context",
)
# Phrases of an account out of money or quota (OpenAI's insufficient_quota 429, DeepSeek's
# and OpenRouter's 402, Anthropic's 400 "credit balance is too low"): never retried.
QUOTA_PHRASES = (
    "insufficient_quota",
    "exceeded your current quota",
    "check your plan and billing",
    "credit balance is too low",
    "insufficient balance",
    "insufficient credits",
    "billing_hard_limit",
    "billing_not_active",
)
RETRY_STATUSES = frozenset({408, 409, 529})
RESET_HEADERS = (
    ("x-ratelimit-reset-requests", "x-ratelimit-remaining-requests"),
    ("x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"),
)
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How long one attempt at a model turn may take, and how many bytes its answer may be."""

    deadline_s: float = DEFAULT_TURN_DEADLINE_S
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


_LIMITS: ContextVar[StreamLimits | None] = ContextVar("ocactors_stream_limits", default=None)


def current_limits() -> StreamLimits:
    """The bounds set by :func:`stream_limits` around this call, else the defaults."""
    return _LIMITS.get() or StreamLimits()


@contextmanager
def stream_limits(limits: StreamLimits) -> Iterator[None]:
    """Bound every response opened in this thread (context) while the block runs."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


class BoundedStream(httpx.SyncByteStream):
    """A response body that stops at the deadline or the size cap with a retryable error.

    Both ``iter_lines`` (streams) and ``read`` (whole bodies) pull through it, so both
    clients and both shapes of answer are bounded by the same code.
    """

    def __init__(
        self, inner: httpx.SyncByteStream, url: str, limits: StreamLimits, started: float
    ) -> None:
        self._inner = inner
        self._url = url
        self._limits = limits
        self._started = started

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._inner:
            size += len(chunk)
            if size > self._limits.max_bytes:
                raise TransportError(too_big(self._url, self._limits))
            if time.monotonic() - self._started > self._limits.deadline_s:
                raise TransportError(too_late(self._url, self._limits))
            yield chunk

    def close(self) -> None:
        self._inner.close()


def too_big(url: str, limits: StreamLimits) -> str:
    return (
        f"the answer from {url} passed {limits.max_bytes} bytes and was cut "
        "(max_response_bytes under [models])"
    )


def too_late(url: str, limits: StreamLimits) -> str:
    return (
        f"the answer from {url} took longer than {limits.deadline_s:g} s and was cut "
        "(turn_deadline_s under [models])"
    )


def timeout_for(read_s: float) -> httpx.Timeout:
    """Connect quickly, but let a slow model take ``read_s`` between two bytes."""
    return httpx.Timeout(
        connect=CONNECT_TIMEOUT_S, read=read_s, write=WRITE_TIMEOUT_S, pool=POOL_TIMEOUT_S
    )


@contextmanager
def open_response(
    http: httpx.Client,
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
    secret: str | None,
) -> Iterator[httpx.Response]:
    """POST ``body`` and yield the streaming response once its status says success.

    httpx errors raised while the caller reads the response are mapped too, so a stream
    cut halfway surfaces as TransportError like a refused connection does. The body is
    bounded by the current :class:`StreamLimits`: a trickle ends at its first chunk past
    the deadline, a silence at the read timeout (itself never longer than the deadline).
    """
    limits = current_limits()
    started = time.monotonic()
    request = http.build_request(
        "POST",
        url,
        content=msgspec.json.encode(body),
        headers=headers,
        timeout=within(timeout, limits.deadline_s),
    )
    try:
        response = http.send(request, stream=True)
        if isinstance(response.stream, httpx.SyncByteStream):
            response.stream = BoundedStream(response.stream, url, limits, started)
        try:
            if response.status_code >= 400:
                response.read()
                raise status_error(response, url, secret)
            yield response
        finally:
            response.close()
    except httpx.TimeoutException as error:
        if time.monotonic() - started >= limits.deadline_s:
            raise TransportError(too_late(url, limits)) from None
        raise transport_error(error, url, secret) from None
    except httpx.HTTPError as error:
        raise transport_error(error, url, secret) from None


def within(timeout: httpx.Timeout, deadline_s: float) -> httpx.Timeout:
    """``timeout`` with no single wait longer than the whole deadline."""
    read = deadline_s if timeout.read is None else min(timeout.read, deadline_s)
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


def transport_error(error: httpx.HTTPError, url: str, secret: str | None) -> ModelError:
    """Map an httpx failure: config mistakes are BadRequest, the rest retryable."""
    kind = type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return TransportError(scrub(f"{kind} talking to {url}: {error}", secret))
    if isinstance(error, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return BadRequest(scrub(f"cannot send to {url}: {kind}: {error}", secret))
    if isinstance(error, httpx.DecodingError):
        return BadResponse(scrub(f"undecodable body from {url}: {error}", secret))
    return TransportError(scrub(f"cannot reach {url}: {kind}: {error}", secret))


def status_error(response: httpx.Response, url: str, secret: str | None) -> ModelError:
    """The ModelError for an HTTP error status, with the provider's own words in it."""
    status = response.status_code
    text = provider_message(response.content)
    message = scrub(f"HTTP {status} from {url}: {text}", secret)
    if is_quota(status, response):
        return QuotaExhausted(f"{message} (out of quota or credit: not retried)", status=status)
    if status == 429:
        return RateLimited(message, retry_after=retry_after(response.headers))
    if status in (401, 403):
        return AuthError(message, status=status)
    if status == 413 or (status in (400, 422) and is_overflow(response.text)):
        return ContextOverflow(message, status=status)
    if status >= 500 or status in RETRY_STATUSES:
        return ServerError(message, status=status)
    return BadRequest(message, status=status)


def is_overflow(body: str) -> bool:
    """Does an error body say the prompt is longer than the context window?"""
    lowered = body.lower()
    return any(phrase in lowered for phrase in OVERFLOW_PHRASES)


def is_quota(status: int, response: httpx.Response) -> bool:
    """Is this the account being out of money or quota, rather than a passing limit?

    402 always is; a 429 or 400 is when its body says so, unless the provider also says
    when to retry (some per-minute limits borrow the quota wording).
    """
    if status == 402:
        return True
    if status not in (400, 403, 429):
        return False
    lowered = response.text.lower()
    if not any(phrase in lowered for phrase in QUOTA_PHRASES):
        return False
    return retry_after(response.headers) is None and "retry in" not in lowered


def provider_message(content: bytes) -> str:
    """``error.message`` from an OpenAI/Anthropic error body, else the start of the body."""
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:EXCERPT_CHARS]
        if isinstance(error, str):
            return error[:EXCERPT_CHARS]
    text = content.decode("utf-8", "replace").strip()
    return text[:EXCERPT_CHARS] or "(empty body)"


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, ``retry-after`` (seconds or
    an HTTP date), else OpenAI's and Groq's ``x-ratelimit-reset-*``. None when absent or
    unreadable; never negative."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is not None:
        seconds = http_seconds(value, time.time() if now is None else now)
        if seconds is not None:
            return seconds
    return ratelimit_reset(headers)


def http_seconds(value: str, now: float) -> float | None:
    """A Retry-After value, seconds or an HTTP date, as seconds from ``now``."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def ratelimit_reset(headers: Mapping[str, str]) -> float | None:
    """When the exhausted limit resets: the reset of a limit whose remaining count is 0,
    else the longest reset given (the 429 does not say which limit it hit)."""
    resets = {
        remaining: seconds
        for reset, remaining in RESET_HEADERS
        if (seconds := duration_seconds(headers.get(reset, ""))) is not None
    }
    exhausted = [s for name, s in resets.items() if headers.get(name, "").strip() == "0"]
    return max(exhausted or resets.values(), default=None)


def duration_seconds(text: str) -> float | None:
    """OpenAI's duration syntax (``6m0s``, ``1.5s``, ``20ms``, ``1h2m``) or plain seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    if not text or DURATION_PART.sub("", text):
        return None
    parts = DURATION_PART.findall(text)
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def sse_data(response: httpx.Response) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream, one per line.

    Both providers put one JSON document on one line, so each ``data:`` line is handled on
    its own; comments (``: keep-alive``), ``event:`` and blank lines are skipped.
    """
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


def decode_json(content: bytes | str, url: str) -> Any:
    """Parse JSON or raise BadResponse naming where it came from."""
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError as error:
        raise BadResponse(f"malformed JSON from {url}: {error}") from None
