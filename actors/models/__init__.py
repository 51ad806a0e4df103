"""Model clients over plain HTTP (httpx), their self-healing, and a scripted model server.

- :class:`OpenAIChatClient` speaks OpenAI-compatible ``/chat/completions``,
  :class:`AnthropicClient` the Anthropic Messages API;
- :class:`RetryingClient` wraps a client with retries, backoff and an AIMD
  :class:`Limiter` shared per (endpoint, model) through a :class:`LimiterRegistry`;
- :class:`ScriptedModelServer` plays scripted turns over real sockets for tests and demos.

Errors are drawn in :mod:`ocactors.actors.models.errors`.
"""

from ocactors.actors.models.anthropic_client import AnthropicClient
from ocactors.actors.models.errors import (
    AuthError,
    BadRequest,
    BadResponse,
    ContextOverflow,
    ModelError,
    RateLimited,
    ServerError,
    TransportError,
)
from ocactors.actors.models.limiter import Limiter, LimiterRegistry, default_concurrency
from ocactors.actors.models.openai_client import OpenAIChatClient
from ocactors.actors.models.retrying import RetryingClient
from ocactors.actors.models.scripted import (
    Fault,
    RecordedRequest,
    Script,
    ScriptedModelServer,
    ScriptedRequest,
    ScriptError,
    Turn,
    load_script,
)
from ocactors.actors.models.types import (
    ModelClient,
    ModelReply,
    OnRetry,
    RetryInfo,
    estimate_tokens,
)

__all__ = [
    "AnthropicClient",
    "AuthError",
    "BadRequest",
    "BadResponse",
    "ContextOverflow",
    "Fault",
    "Limiter",
    "LimiterRegistry",
    "ModelClient",
    "ModelError",
    "ModelReply",
    "OnRetry",
    "OpenAIChatClient",
    "RateLimited",
    "RecordedRequest",
    "RetryInfo",
    "RetryingClient",
    "Script",
    "ScriptError",
    "ScriptedModelServer",
    "ScriptedRequest",
    "ServerError",
    "TransportError",
    "Turn",
    "default_concurrency",
    "estimate_tokens",
    "load_script",
]
