"""Building clients from a resolved configuration: one shared httpx pool, shared limiters."""

from __future__ import annotations

import httpx

from ocactors.actors.models._http import CONNECT_TIMEOUT_S, POOL_TIMEOUT_S, WRITE_TIMEOUT_S
from ocactors.actors.models.anthropic_client import AnthropicClient
from ocactors.actors.models.config import DEFAULT_TIMEOUT_S, ROLES, ModelsConfig, RoleConfig
from ocactors.actors.models.limiter import LimiterRegistry
from ocactors.actors.models.openai_client import OpenAIChatClient
from ocactors.actors.models.retrying import RetryingClient
from ocactors.actors.models.types import ModelClient

MAX_CONNECTIONS = 100
MAX_KEEPALIVE = 50


def make_http_client(*, read_timeout: float = DEFAULT_TIMEOUT_S) -> httpx.Client:
    """One pool for all sessions: 100 connections (50 kept alive), connect within 10 s.

    Each model client passes its role's read timeout per request; ``read_timeout`` is
    only the default for other uses of this client.
    """
    return httpx.Client(
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE
        ),
        timeout=httpx.Timeout(
            connect=CONNECT_TIMEOUT_S, read=read_timeout, write=WRITE_TIMEOUT_S, pool=POOL_TIMEOUT_S
        ),
    )


def provider_client(config: RoleConfig, http: httpx.Client) -> ModelClient:
    """The bare provider client for a role, without retries."""
    if config.provider == "anthropic":
        return AnthropicClient(
            http,
            base_url=config.base_url,
            api_key=config.api_key,
            model=config.model,
            stream=config.stream,
            context_window=config.context_window,
            timeout=config.timeout_s,
            max_tokens=config.max_tokens,
        )
    return OpenAIChatClient(
        http,
        base_url=config.base_url,
        api_key=config.api_key,
        model=config.model,
        stream=config.stream,
        context_window=config.context_window,
        timeout=config.timeout_s,
    )


def build_client(
    role_config: RoleConfig, http: httpx.Client, limiter_registry: LimiterRegistry
) -> ModelClient:
    """A RetryingClient around the role's provider client, sharing the endpoint's limiter."""
    limiter = limiter_registry.get(
        role_config.base_url, role_config.model, role_config.max_concurrency
    )
    inner = provider_client(role_config, http)
    return RetryingClient(inner, attempts=role_config.attempts, limiter=limiter)


def build_clients(
    config: ModelsConfig, http: httpx.Client, limiter_registry: LimiterRegistry
) -> dict[str, ModelClient]:
    """``{"planner": ..., "worker": ..., "reviewer": ...}``."""
    return {role: build_client(config.for_role(role), http, limiter_registry) for role in ROLES}
