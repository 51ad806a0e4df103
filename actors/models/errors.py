"""Errors raised by the model clients.

The tree (``ModelError`` is what a session catches; the leaves decide who heals)::

    ModelError                      base; ``status`` is the HTTP status when there was one
    ├── RateLimited(retry_after)    429: retried with backoff, honouring Retry-After
    ├── ServerError(status)         5xx (and 408/409/529): retried with backoff
    ├── TransportError              connection refused/reset, timeouts, a cut stream: retried
    ├── BadResponse                 a body that is not the protocol (bad JSON, missing fields):
    │                               retried once
    ├── ContextOverflow             the prompt does not fit: not retried, the session compacts
    ├── AuthError                   401/403: not retried, the key or its rights are wrong
    └── BadRequest                  any other 4xx: not retried, the request itself is wrong

Messages are one line and never contain the API key: the clients build them through
:func:`scrub`, which replaces the key wherever a provider or a transport echoed it.
"""

from __future__ import annotations


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


class ContextOverflow(ModelError):
    """The prompt is longer than the model's context window."""


class AuthError(ModelError):
    """The API key is missing, wrong, or lacks the rights for this model."""


class BadRequest(ModelError):
    """The provider refused the request as malformed (unknown model, bad tool schema, ...)."""


REDACTED = "[REDACTED]"


def scrub(text: str, secret: str | None) -> str:
    """``text`` on one line, with ``secret`` replaced wherever it appears."""
    if secret:
        text = text.replace(secret, REDACTED)
    return " ".join(text.split())
