"""Building clients from a resolved configuration: one shared httpx pool, shared limiters.

The pool routes each request as curl would, with one exception:

- a model on this machine or on the link (loopback 127.0.0.0/8 and ::1, ``localhost``,
  link-local 169.254.0.0/16 and fe80::/10) is always reached directly: a company proxy
  cannot reach it, and Ollama, vLLM, llama.cpp or the scripted server must keep working
  with ``HTTP_PROXY`` set;
- other hosts go through ``http_proxy`` / ``https_proxy`` (either case), else ``all_proxy``,
  unless ``no_proxy`` lists them: ``*``, a host and its subdomains (``example.com``,
  ``.example.com``), an IP address or a CIDR range;
- ``socks5://`` and ``socks5h://`` proxies work (httpx's socks extra, ``socksio``); a proxy
  URL httpx cannot use fails that request with one line naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Mapping

import httpx

from ocactors.actors.models._http import (
    CONNECT_TIMEOUT_S,
    POOL_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    StreamLimits,
)
from ocactors.actors.models.anthropic_client import AnthropicClient
from ocactors.actors.models.config import DEFAULT_TIMEOUT_S, ROLES, ModelsConfig, RoleConfig
from ocactors.actors.models.limiter import LimiterRegistry
from ocactors.actors.models.openai_client import OpenAIChatClient
from ocactors.actors.models.retrying import RetryingClient
from ocactors.actors.models.types import ModelClient

MAX_CONNECTIONS = 100
MAX_KEEPALIVE = 50
SCHEME_VARIABLES = {"http": "http_proxy", "https": "https_proxy"}


# --- which proxy, if any ---------------------------------------------------------------


def env_value(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, value) of ``name`` in lower case, else upper case, when set."""
    for variable in (name, name.upper()):
        if env.get(variable, "").strip():
            return variable, env[variable].strip()
    return None


def is_direct_host(host: str) -> bool:
    """Loopback and link-local hosts: never through a proxy."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local or address.is_unspecified


def no_proxy_matches(host: str, no_proxy: str) -> bool:
    """Does curl's ``NO_PROXY`` list exempt ``host``?"""
    host = host.strip("[]").lower().rstrip(".")
    entries = [e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")]
    return any(entry_matches(host, entry) for entry in entries if entry)


def entry_matches(host: str, entry: str) -> bool:
    """One ``NO_PROXY`` entry: ``*``, an address or range, or a domain and its subdomains."""
    if entry == "*":
        return True
    try:
        network = ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        domain = entry.lstrip(".").rstrip(".")
        return host == domain or host.endswith("." + domain)
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


def proxy_for(url: httpx.URL, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, proxy URL) for a request to ``url``, or None to go direct."""
    if is_direct_host(url.host):
        return None
    exempt = env_value(env, "no_proxy")
    if exempt is not None and no_proxy_matches(url.host, exempt[1]):
        return None
    name = SCHEME_VARIABLES.get(url.scheme)
    found = (env_value(env, name) if name else None) or env_value(env, "all_proxy")
    if found is None:
        return None
    variable, proxy = found
    return variable, proxy if "://" in proxy else f"http://{proxy}"


def shown(proxy: str) -> str:
    """A proxy URL fit for a message: any user:password in it is left out."""
    url = httpx.URL(proxy)
    return str(url.copy_with(username=None, password=None)) if url.userinfo else proxy


# --- the routing transport -------------------------------------------------------------


class ProxyRouter(httpx.BaseTransport):
    """Sends each request directly or through the proxy :func:`proxy_for` names.

    One connection pool per route, created on first use, so a malformed ``ALL_PROXY`` only
    matters to requests that would use it. Thread-safe.
    """

    def __init__(self, env: Mapping[str, str], limits: httpx.Limits) -> None:
        self._env = dict(env)
        self._limits = limits
        self._direct = httpx.HTTPTransport(limits=limits)
        self._proxied: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route = proxy_for(request.url, self._env)
        if route is None:
            return self._direct.handle_request(request)
        variable, proxy = route
        try:
            return self._through(variable, proxy, request).handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as error:
            note = f"{error} (via the proxy {shown(proxy)} from {variable}; NO_PROXY exempts hosts)"
            raise type(error)(note, request=request) from None

    def _through(self, variable: str, proxy: str, request: httpx.Request) -> httpx.HTTPTransport:
        with self._lock:
            if proxy not in self._proxied:
                self._proxied[proxy] = self._open(variable, proxy, request)
            return self._proxied[proxy]

    def _open(self, variable: str, proxy: str, request: httpx.Request) -> httpx.HTTPTransport:
        try:
            return httpx.HTTPTransport(limits=self._limits, proxy=proxy)
        except (ImportError, ValueError, httpx.InvalidURL) as error:
            reason = " ".join(str(error).split())
            raise httpx.UnsupportedProtocol(
                f"{variable}={shown(proxy)} cannot be used: {reason}", request=request
            ) from None

    def close(self) -> None:
        with self._lock:
            transports = [self._direct, *self._proxied.values()]
            self._proxied.clear()
        for transport in transports:
            transport.close()


def make_http_client(
    *, read_timeout: float = DEFAULT_TIMEOUT_S, env: Mapping[str, str] | None = None
) -> httpx.Client:
    """One pool for all sessions: 100 connections (50 kept alive), connect within 10 s,
    routed by :class:`ProxyRouter` from ``env`` (default: this process's environment).

    Each model client passes its role's read timeout per request; ``read_timeout`` is
    only the default for other uses of this client.
    """
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
    return httpx.Client(
        transport=ProxyRouter(os.environ if env is None else env, limits),
        trust_env=False,
        timeout=httpx.Timeout(
            connect=CONNECT_TIMEOUT_S, read=read_timeout, write=WRITE_TIMEOUT_S, pool=POOL_TIMEOUT_S
        ),
    )


# --- clients ---------------------------------------------------------------------------


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
    return RetryingClient(
        provider_client(role_config, http),
        attempts=role_config.attempts,
        max_wait=role_config.max_retry_wait_s,
        limits=StreamLimits(role_config.turn_deadline_s, role_config.max_response_bytes),
        limiter=limiter,
    )


def build_clients(
    config: ModelsConfig, http: httpx.Client, limiter_registry: LimiterRegistry
) -> dict[str, ModelClient]:
    """``{"planner": ..., "worker": ..., "reviewer": ...}``."""
    return {role: build_client(config.for_role(role), http, limiter_registry) for role in ROLES}
