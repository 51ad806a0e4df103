"""Before a mission starts: is each role's endpoint there, speaking the API, and willing?

One free request per distinct endpoint (``GET {base_url}/models`` for OpenAI-compatible
servers, ``GET /v1/models/{model}`` for Anthropic, which also resolves aliases) catches the
configuration mistakes that would otherwise surface as a failed mission:

- an ``api_key_env`` naming a variable that is not set;
- a base URL without ``http://`` or ``https://``;
- a host nobody answers on (or a proxy that does not reach it);
- an HTML page instead of the API (a web UI, a missing ``/v1``);
- 401 / 403: no key, or a key the server refuses;
- a model the server does not serve.

Each is a :class:`PreflightError` (a :class:`ConfigError`): one line naming the setting to
change, as it was given (``OCACTORS_BASE_URL``, ``--model``, ``base_url under [models] in
.opencode/ocactors.toml``...). Anything else (a server without a models list, a 5xx, a 429)
passes quietly: the run itself retries or reports it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from ocactors.actors.models._http import provider_message
from ocactors.actors.models.config import ROLES, ConfigError, ModelsConfig, RoleConfig
from ocactors.actors.models.errors import scrub

PREFLIGHT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
ANTHROPIC_VERSION = "2023-06-01"
SHOWN_MODELS = 5
SKIP = "(--no-preflight skips this check)"


class PreflightError(ConfigError):
    """An endpoint cannot serve a mission as configured; the message says what to change."""


def preflight(
    config: ModelsConfig, http: httpx.Client, *, timeout: httpx.Timeout = PREFLIGHT_TIMEOUT
) -> None:
    """Check every role's endpoint, each distinct one once; raises PreflightError."""
    seen: set[tuple[str, str, str, str | None]] = set()
    for role in ROLES:
        role_config = config.for_role(role)
        key = (role_config.provider, role_config.base_url, role_config.model, role_config.api_key)
        if key not in seen:
            seen.add(key)
            check_role(role_config, http, timeout)


def check_role(config: RoleConfig, http: httpx.Client, timeout: httpx.Timeout) -> None:
    """The checks for one endpoint, cheapest first."""
    if config.missing_key_env:
        name = config.missing_key_env
        raise PreflightError(
            f"{name} is not set, but {config.origin('api_key_env')} names it: "
            f"export {name}=<your key>, or change api_key_env"
        )
    parts = urlsplit(config.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PreflightError(
            f"the base URL {config.base_url!r} does not start with http:// or https:// "
            f"(set {config.origin('base_url')} to e.g. https://{config.base_url.split('://')[-1]})"
        )
    if config.provider == "anthropic":
        check_anthropic(config, http, timeout)
    else:
        check_openai(config, http, timeout)


# --- OpenAI-compatible -------------------------------------------------------------------


def check_openai(config: RoleConfig, http: httpx.Client, timeout: httpx.Timeout) -> None:
    """``GET /models``: reachable, JSON, key accepted, model listed (or known by id)."""
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    response = fetch(http, f"{config.base_url}/models", headers, config, timeout)
    refuse_html(response, config)
    refuse_auth(response, config)
    if response.status_code == 404:
        suggest_v1(http, headers, config, timeout)
        return
    listed = model_ids(response)
    if listed and not knows(listed, config.model) and not served(http, headers, config, timeout):
        names = ", ".join(listed[:SHOWN_MODELS]) + (", ..." if len(listed) > SHOWN_MODELS else "")
        raise PreflightError(
            f"the server at {config.base_url} does not serve model {config.model!r} "
            f"(it lists {names}): set {config.origin('model')} {SKIP}"
        )


def served(
    http: httpx.Client, headers: dict[str, str], config: RoleConfig, timeout: httpx.Timeout
) -> bool:
    """A second opinion for a model missing from the list: ``GET /models/{model}``
    (OpenAI and others resolve names there that their lists leave out)."""
    url = f"{config.base_url}/models/{quote(config.model, safe='')}"
    response = fetch(http, url, headers, config, timeout)
    found = json_of(response)
    return response.status_code == 200 and isinstance(found, dict) and "id" in found


def suggest_v1(
    http: httpx.Client, headers: dict[str, str], config: RoleConfig, timeout: httpx.Timeout
) -> None:
    """A 404 on /models is fine, unless the API is one ``/v1`` further down."""
    if config.base_url.endswith("/v1"):
        return
    url = f"{config.base_url}/v1"
    try:
        below = http.get(f"{url}/models", headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return
    if below.status_code == 200 and model_ids(below) is not None:
        raise PreflightError(
            f"the server at {config.base_url} has its API under {url}: "
            f"set {config.origin('base_url')} to {url}"
        )


def model_ids(response: httpx.Response) -> list[str] | None:
    """The ids of an OpenAI model list, None when the answer is not one. A llama.cpp
    server answers any model name, so its list counts as empty."""
    data = json_of(response)
    entries = data.get("data") if isinstance(data, dict) and response.status_code == 200 else None
    if not isinstance(entries, list):
        return None
    if any(isinstance(e, dict) and e.get("owned_by") == "llamacpp" for e in entries):
        return []
    return [str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e]


def knows(listed: list[str], model: str) -> bool:
    """Is ``model`` in the list, also as Ollama's implicit ``:latest``?"""
    return model in listed or f"{model}:latest" in listed


# --- Anthropic ---------------------------------------------------------------------------


def check_anthropic(config: RoleConfig, http: httpx.Client, timeout: httpx.Timeout) -> None:
    """``GET /v1/models/{model}``: reachable, JSON, key accepted, model (or alias) known."""
    root = config.base_url.removesuffix("/v1")
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if config.api_key:
        headers["x-api-key"] = config.api_key
    url = f"{root}/v1/models/{quote(config.model, safe='')}"
    response = fetch(http, url, headers, config, timeout)
    refuse_html(response, config)
    refuse_auth(response, config)
    body = json_of(response)
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    if response.status_code == 404 and kind == "not_found_error":
        raise PreflightError(
            f"the server at {root} does not know model {config.model!r} "
            f"({provider_message(response.content)}): set {config.origin('model')} {SKIP}"
        )


# --- shared ------------------------------------------------------------------------------


def fetch(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    config: RoleConfig,
    timeout: httpx.Timeout,
) -> httpx.Response:
    """GET ``url``; a failure to get any answer is a PreflightError naming the base URL."""
    try:
        return http.get(url, headers=headers, timeout=timeout)
    except httpx.UnsupportedProtocol as error:
        raise PreflightError(scrub(f"cannot send to {config.base_url}: {error}", None)) from None
    except httpx.TimeoutException as error:
        reason = f"no answer within {timeout.read:g} s ({type(error).__name__})"
        raise unreachable(config, reason) from None
    except httpx.HTTPError as error:
        raise unreachable(config, f"{type(error).__name__}: {error}") from None


def unreachable(config: RoleConfig, reason: str) -> PreflightError:
    question = (
        "is that proxy running, or should NO_PROXY list this host?"
        if "via the proxy" in reason
        else f"is the server running, and is {config.origin('base_url')} right?"
    )
    return PreflightError(
        scrub(f"cannot reach {config.base_url} ({reason}): {question}", config.api_key)
    )


def refuse_html(response: httpx.Response, config: RoleConfig) -> None:
    """A web page where the API should be: a UI, a docs site, a missing path."""
    kind = response.headers.get("content-type", "").lower()
    start = response.content[:200].lstrip().lower()
    if "text/html" not in kind and not start.startswith((b"<!doctype html", b"<html")):
        return
    where = config.origin("base_url")
    if config.provider == "anthropic":
        question = f"does {where} point at the API root, like https://api.anthropic.com?"
    else:
        question = f"does {where} end in /v1?"
    raise PreflightError(f"the server at {config.base_url} answered with an HTML page; {question}")


def refuse_auth(response: httpx.Response, config: RoleConfig) -> None:
    """401 / 403: say whether a key was sent at all, and where it came from."""
    status = response.status_code
    if status not in (401, 403):
        return
    words = scrub(provider_message(response.content), config.api_key)
    if not config.api_key:
        raise PreflightError(
            f"the server at {config.base_url} wants an API key (HTTP {status}: {words}): "
            f"set {config.origin('api_key')}"
        )
    raise PreflightError(
        f"the server at {config.base_url} refused the API key from "
        f"{config.origin('api_key')} (HTTP {status}: {words}): check that key"
    )


def json_of(response: httpx.Response) -> Any:
    """The body as JSON, or None."""
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
