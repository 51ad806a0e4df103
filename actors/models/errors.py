"""Errors raised by the model clients.

The tree (``ModelError`` is what a session catches; the leaves decide who heals)::

    ModelError                      base; ``status`` is the HTTP status when there was one
    ├── RateLimited(retry_after)    429: retried with backoff, honouring Retry-After and
    │                               x-ratelimit-reset-* up to a cap
    ├── QuotaExhausted              out of quota or credit (429 insufficient_quota, 402, a
    │                               billing error): not retried, waiting cannot help
    ├── ServerError(status)         5xx (and 408/409/529): retried with backoff
    ├── TransportError              connection refused/reset, timeouts, a cut stream, an
    │                               answer past the turn deadline or the size cap: retried
    ├── BadResponse                 a body that is not the protocol (bad JSON, missing fields):
    │                               retried once
    ├── ContextOverflow(limit)      the prompt does not fit (also a 413 "request too large"):
    │                               not retried, the session compacts; the message ends with
    │                               the ``context_window`` setting to change
    ├── AuthError                   401/403: not retried, the key or its rights are wrong
    └── BadRequest                  any other 4xx: not retried, the request itself is wrong

Messages are one line and never contain the API key: the clients build them through
:func:`scrub`, which replaces the key wherever a provider or a transport echoed it.
"""

from __future__ import annotations

import re

from ocactors.events.redact import REDACTED  # the one marker, in the log and in errors


class ModelError(Exception):
    """A model request failed; ``str(error)`` is one line meant for a person."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ModelError):
    """The provider said 429; ``retry_after`` is its hint in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class ServerError(ModelError):
    """The provider failed on its side (5xx) or asked to be retried (408, 409)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, status=status)


class TransportError(ModelError):
    """No complete answer arrived: refused, reset, timed out, or the stream was cut."""


class BadResponse(ModelError):
    """An answer arrived but it is not what the protocol promises."""


class QuotaExhausted(ModelError):
    """The account is out of quota or credit: no retry can succeed until someone pays."""


class ContextOverflow(ModelError):
    """The prompt is longer than the model's context window.

    The provider's words are kept and a hint is added naming the setting that makes ocactors
    compact before the provider refuses: ``limit`` is the window the provider stated (tokens),
    when its message says.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.limit = stated_limit(message)
        super().__init__(f"{message} {overflow_hint(self.limit)}", status=status)


class AuthError(ModelError):
    """The API key is missing, wrong, or lacks the rights for this model."""


class BadRequest(ModelError):
    """The provider refused the request as malformed (unknown model, bad tool schema, ...)."""


CONFIG_FILE = ".opencode/ocactors.toml"

# How providers state the window in an overflow message: OpenAI, vLLM and DeepSeek
# ("maximum context length is 8192 tokens"), LM Studio ("context length of only 4096"),
# llama.cpp ("available context size (4096 tokens)"), Anthropic ("250000 tokens > 200000
# maximum"), Groq's 413 ("Limit 6000, Requested 7000"), and the generic "context window of".
LIMIT_PATTERNS = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"context length of (?:only )?(\d+)", re.IGNORECASE),
    re.compile(r"context size \((\d+)", re.IGNORECASE),
    re.compile(r"> (\d+) maximum", re.IGNORECASE),
    re.compile(r"\bLimit (\d+), Requested", re.IGNORECASE),
    re.compile(r"context window (?:of|is) (\d+)", re.IGNORECASE),
)


def stated_limit(message: str) -> int | None:
    """The token limit an overflow message states, if it states one."""
    for pattern in LIMIT_PATTERNS:
        match = pattern.search(message)
        if match:
            return int(match.group(1))
    return None


def overflow_hint(limit: int | None) -> str:
    """What to set so that ocactors compacts before the provider refuses."""
    if limit is None:
        return f"(set context_window under [models] in {CONFIG_FILE} to the model's window)"
    return f"(set context_window = {limit} under [models] in {CONFIG_FILE})"


def scrub(text: str, secret: str | None) -> str:
    """``text`` on one line, with ``secret`` replaced wherever it appears."""
    if secret:
        text = text.replace(secret, REDACTED)
    return " ".join(text.split())
