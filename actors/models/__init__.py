"""Model clients over plain HTTP (httpx), their self-healing, and a scripted model server.

- :class:`OpenAIChatClient` speaks OpenAI-compatible ``/chat/completions``,
  :class:`AnthropicClient` the Anthropic Messages API;
- :class:`RetryingClient` wraps a client with retries, backoff and an AIMD
  :class:`Limiter` shared per (endpoint, model) through a :class:`LimiterRegistry`;
- :func:`resolve_models` reads flags, environment and ``.opencode/ocactors.toml`` into a
  :class:`ModelsConfig`; :func:`build_client` turns a :class:`RoleConfig` into a client;
  :func:`make_http_client` is the shared pool (loopback direct, other hosts as curl would);
- :func:`preflight` checks every role's endpoint with one free request before a mission;
- :class:`ScriptedModelServer` plays scripted turns over real sockets for tests and demos.

Errors are drawn in :mod:`ocactors.actors.models.errors`.
"""

from ocactors.actors.models.anthropic_client import AnthropicClient
from ocactors.actors.models.config import (
    ROLES,
    ConfigError,
    ModelFlags,
    ModelsConfig,
    Price,
    RoleConfig,
    resolve_models,
)
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
)
from ocactors.actors.models.factory import build_client, build_clients, make_http_client
from ocactors.actors.models.limiter import Limiter, LimiterRegistry, default_concurrency
from ocactors.actors.models.openai_client import OpenAIChatClient
from ocactors.actors.models.preflight import PreflightError, preflight
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
    "ROLES",
    "AnthropicClient",
    "AuthError",
    "BadRequest",
    "BadResponse",
    "ConfigError",
    "ContextOverflow",
    "Fault",
    "Limiter",
    "LimiterRegistry",
    "ModelClient",
    "ModelError",
    "ModelFlags",
    "ModelReply",
    "ModelsConfig",
    "OnRetry",
    "OpenAIChatClient",
    "PreflightError",
    "Price",
    "QuotaExhausted",
    "RateLimited",
    "RecordedRequest",
    "RetryInfo",
    "RetryingClient",
    "RoleConfig",
    "Script",
    "ScriptError",
    "ScriptedModelServer",
    "ScriptedRequest",
    "ServerError",
    "TransportError",
    "Turn",
    "build_client",
    "build_clients",
    "default_concurrency",
    "estimate_tokens",
    "load_script",
    "make_http_client",
    "preflight",
    "resolve_models",
]
