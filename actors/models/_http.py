"""The one HTTP seam of the model clients: send a JSON POST, map every failure to ModelError.

Both provider clients go through :func:`open_response`, so the status-to-error mapping,
Retry-After parsing and the scrubbing of the API key from messages live in one place.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
    RateLimited,
    ServerError,
    TransportError,
    scrub,
)

CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 60.0
EXCERPT_CHARS = 300

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
)
RETRY_STATUSES = frozenset({408, 409, 529})


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
    cut halfway surfaces as TransportError like a refused connection does.
    """
    request = http.build_request(
        "POST", url, content=msgspec.json.encode(body), headers=headers, timeout=timeout
    )
    try:
        response = http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise status_error(response, url, secret)
            yield response
        finally:
            response.close()
    except httpx.HTTPError as error:
        raise transport_error(error, url, secret) from None


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
    if status == 429:
        return RateLimited(message, retry_after=retry_after(response.headers))
    if status in (401, 403):
        return AuthError(message, status=status)
    if status in (400, 413, 422) and is_overflow(response.text):
        return ContextOverflow(message, status=status)
    if status >= 500 or status in RETRY_STATUSES:
        return ServerError(message, status=status)
    return BadRequest(message, status=status)


def is_overflow(body: str) -> bool:
    """Does an error body say the prompt is longer than the context window?"""
    lowered = body.lower()
    return any(phrase in lowered for phrase in OVERFLOW_PHRASES)


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
    """Seconds the provider asked us to wait: ``retry-after-ms``, or ``retry-after`` as
    seconds or an HTTP date. None when absent or unreadable; never negative."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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
