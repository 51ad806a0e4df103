"""Which model each role talks to, and how: resolved from flags, environment and a file.

Most specific wins, field by field::

    command-line flags        ModelFlags(model, base_url, api_key, provider)
    environment               OCACTORS_MODEL, OCACTORS_BASE_URL, OCACTORS_API_KEY,
                              OCACTORS_PROVIDER; then, for the provider in use,
                              OPENAI_BASE_URL / OPENAI_API_KEY or ANTHROPIC_API_KEY
    .opencode/ocactors.toml   [roles.<role>] over [models]

    defaults                  provider inferred from the base URL (or an Anthropic key),
                              the provider's public URL when a key is set, else a local
                              Ollama on 127.0.0.1:11434 (its first model)

Each RoleConfig remembers where its settings came from (``origins``: ``--base-url``,
``OCACTORS_BASE_URL``, ``base_url under [models] in .opencode/ocactors.toml``, ...), so a
mistake found later (by the preflight) names the one setting to change.

One exception, so that an ambient key never goes to a host it was not meant for: a key the
file names (``api_key`` or ``api_key_env``) beats OPENAI_API_KEY / ANTHROPIC_API_KEY.

A model written ``PROVIDER/MODEL`` with no base URL configured is resolved through OpenCode's
configuration instead (:mod:`ocactors.actors.models.opencode_config`): its provider entry or
built-in provider gives URL, protocol and key (a key given to ocactors still wins).

The file (every key optional; ``api_key_env`` names the variable holding the key, so keys
stay out of files)::

    [models]                       # defaults for every role
    provider = "openai"            # or "anthropic"
    model = "gpt-4.1-mini"
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    stream = true
    context_window = 128000
    timeout_s = 300                # read timeout: the longest silence while answering
    max_concurrency = 8            # in flight per (endpoint, model); AIMD lowers it on 429
    attempts = 3
    max_tokens = 8192              # Anthropic's required output cap
    turn_deadline_s = 1200         # the longest one attempt at a turn may take, in all
    max_response_bytes = 67108864  # the largest answer read (64 MiB of raw stream)
    max_retry_wait_s = 300         # the longest Retry-After / x-ratelimit-reset honoured

    [roles.planner]                # also [roles.worker], [roles.reviewer]
    model = "o3"
    timeout_s = 900

    [prices."gpt-4.1-mini"]        # dollars per million tokens, over the bundled
    input_per_mtok = 0.40          # genai-prices table (see ocactors.actors.prices)
    output_per_mtok = 1.60
    cached_input_per_mtok = 0.10   # optional: cache reads (default: the input rate)
    cache_write_per_mtok = 0.40    # optional: cache writes (default: the input rate)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from ocactors.actors.models.opencode_config import OpenCodeConfig, OpenCodeConfigError
from ocactors.events.catalogue import Usage

ROLES = ("planner", "worker", "reviewer")
CONFIG_FILE = Path(".opencode") / "ocactors.toml"
OLLAMA_URL = "http://127.0.0.1:11434"
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_TURN_DEADLINE_S = 1200.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RETRY_WAIT_S = 300.0
Provider = Literal["openai", "anthropic"]


class ConfigError(Exception):
    """The model configuration is missing or wrong; the message says what to set."""


class Price(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Dollars per million tokens; cached prompt tokens at their own rates when given
    (unset, they cost what other input tokens cost)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def cost(self, usage: Usage) -> float:
        """What a turn with ``usage`` cost; cache reads and writes are parts of the prompt."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        plain = usage.prompt_tokens - cached - written
        read_rate = _or(self.cached_input_per_mtok, self.input_per_mtok)
        write_rate = _or(self.cache_write_per_mtok, self.input_per_mtok)
        spent = plain * self.input_per_mtok + cached * read_rate + written * write_rate
        return (spent + usage.completion_tokens * self.output_per_mtok) / 1_000_000


def _or(rate: float | None, default: float) -> float:
    return default if rate is None else rate


class Layer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One source of settings; None means "this source does not say"."""

    provider: Provider | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    stream: bool | None = None
    context_window: int | None = None
    timeout_s: float | None = None
    max_concurrency: int | None = None
    attempts: int | None = None
    max_tokens: int | None = None
    turn_deadline_s: float | None = None
    max_response_bytes: int | None = None
    max_retry_wait_s: float | None = None


class FileConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``.opencode/ocactors.toml`` (other top-level tables are left to their owners)."""

    models: Layer = Layer()
    roles: dict[str, Layer] = {}
    prices: dict[str, Price] = {}


@dataclass(frozen=True)
class ModelFlags:
    """What the command line said (None: not given)."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    provider: Provider | None = None


@dataclass(frozen=True)
class RoleConfig:
    """Everything needed to build one role's client. ``api_key`` never shows in repr."""

    role: str
    provider: Provider
    model: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    stream: bool = True
    context_window: int = 128_000
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_concurrency: int | None = None
    attempts: int = 3
    max_tokens: int = 8192
    turn_deadline_s: float = DEFAULT_TURN_DEADLINE_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S
    price: Price | None = None
    source: str = ""
    origins: Mapping[str, str] = field(default_factory=dict)
    missing_key_env: str | None = None

    def origin(self, name: str) -> str:
        """The setting that decided ``name`` (``base_url``, ``model``, ``api_key``), or the
        one to set when a default decided it."""
        return self.origins.get(name) or f"OCACTORS_{name.upper()}"

    def describe(self) -> str:
        """One line for people: role, model, where, from which source (never the key)."""
        key = "key set" if self.api_key else "no key"
        where = f"{self.provider} at {self.base_url}"
        return f"{self.role}: {self.model} via {where} ({key}, from {self.source})"


@dataclass(frozen=True)
class ModelsConfig:
    """The resolved configuration of every role, plus the price table."""

    roles: Mapping[str, RoleConfig]
    prices: Mapping[str, Price] = field(default_factory=dict)

    def for_role(self, role: str) -> RoleConfig:
        """The config of ``role`` (``worker:t3`` counts as ``worker``)."""
        name = role.split(":", 1)[0]
        if name not in self.roles:
            raise ConfigError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        return self.roles[name]

    def price_table(self) -> dict[str, tuple[float, float]]:
        """``{model: (input, output) dollars per million tokens}`` for cost meters."""
        return {name: (p.input_per_mtok, p.output_per_mtok) for name, p in self.prices.items()}


# --- reading the sources ---------------------------------------------------------------


def load_file_config(workspace: Path) -> FileConfig:
    """The workspace's config file, or an empty one; ConfigError names the file and fault."""
    path = workspace / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        config = msgspec.convert(data, FileConfig)
    except FileNotFoundError:
        return FileConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, msgspec.ValidationError) as error:
        raise ConfigError(f"{path}: {error}") from None
    unknown = sorted(set(config.roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"{path}: unknown role [roles.{unknown[0]}]: use {', '.join(ROLES)}")
    return config


def flags_layer(flags: ModelFlags | None) -> Layer:
    if flags is None:
        return Layer()
    return Layer(
        provider=flags.provider, model=flags.model, base_url=flags.base_url, api_key=flags.api_key
    )


def env_layer(env: Mapping[str, str]) -> Layer:
    """OCACTORS_* variables; an unknown OCACTORS_PROVIDER is an error, not a guess."""
    provider = env.get("OCACTORS_PROVIDER") or None
    if provider not in (None, "openai", "anthropic"):
        raise ConfigError(f"OCACTORS_PROVIDER={provider!r}: set it to openai or anthropic")
    return Layer(
        provider=provider,  # type: ignore[arg-type]
        model=env.get("OCACTORS_MODEL") or None,
        base_url=env.get("OCACTORS_BASE_URL") or None,
        api_key=env.get("OCACTORS_API_KEY") or None,
    )


def vendor_layer(provider: Provider, env: Mapping[str, str]) -> Layer:
    """The provider's own variables, below OCACTORS_* and above the file."""
    if provider == "anthropic":
        return Layer(api_key=env.get("ANTHROPIC_API_KEY") or None)
    return Layer(
        base_url=env.get("OPENAI_BASE_URL") or None, api_key=env.get("OPENAI_API_KEY") or None
    )


def merge(*layers: Layer) -> Layer:
    """Field by field, the first layer that says something wins."""
    values = {
        name: next((v for v in (getattr(x, name) for x in layers) if v is not None), None)
        for name in Layer.__struct_fields__
    }
    return Layer(**values)


def infer_provider(base_url: str | None, model: str | None, env: Mapping[str, str]) -> Provider:
    """anthropic for an Anthropic URL, or with no URL for a claude model or a lone
    ANTHROPIC_API_KEY; openai (the lingua franca) otherwise."""
    if base_url:
        return "anthropic" if "anthropic" in (urlsplit(base_url).hostname or "") else "openai"
    if (model or "").startswith("claude"):
        return "anthropic"
    if env.get("ANTHROPIC_API_KEY") and not env.get("OPENAI_API_KEY"):
        return "anthropic"
    return "openai"


# --- Ollama auto-detection -------------------------------------------------------------


class OllamaProbe:
    """Asks a local Ollama for its models, once, with a short timeout."""

    def __init__(self, url: str = OLLAMA_URL, timeout: float = 0.5) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._models: list[str] | None = None
        self._asked = False

    @property
    def where(self) -> str:
        return urlsplit(self.url).netloc

    def models(self) -> list[str] | None:
        """Model names (maybe empty), or None when no Ollama answers."""
        if not self._asked:
            self._asked = True
            self._models = self._ask()
        return self._models

    def _ask(self) -> list[str] | None:
        try:
            with httpx.Client(timeout=self.timeout, trust_env=False) as http:
                response = http.get(f"{self.url}/api/tags")
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            return None
        return [str(m.get("name") or m.get("model")) for m in models if isinstance(m, dict)]


# --- resolving -------------------------------------------------------------------------


def resolve_models(
    workspace: Path,
    flags: ModelFlags | None = None,
    env: Mapping[str, str] | None = None,
    *,
    ollama_url: str = OLLAMA_URL,
    probe_timeout: float = 0.5,
) -> ModelsConfig:
    """Every role's RoleConfig; raises ConfigError whose one line says what to set."""
    env = os.environ if env is None else env
    file = load_file_config(workspace)
    top = merge(flags_layer(flags), env_layer(env))
    probe = OllamaProbe(ollama_url, probe_timeout)
    opencode = OpenCodeConfig(workspace, env)
    roles = {
        role: resolve_role(
            role, top, merge(file.roles.get(role, Layer()), file.models), env, file, probe, opencode
        )
        for role in ROLES
    }
    roles = {
        role: replace(
            config, origins=origins_of(role, flags_layer(flags), env, file, config.provider)
        )
        for role, config in roles.items()
    }
    return ModelsConfig(roles=roles, prices=dict(file.prices))


# --- where each setting came from ----------------------------------------------------


def origins_of(
    role: str, flags: Layer, env: Mapping[str, str], file: FileConfig, provider: Provider
) -> dict[str, str]:
    """``{field: the setting that decided it}``, in the order resolve_role merges them."""
    table = file.roles.get(role, Layer())
    key, key_name = file_key(role, table, file.models, env)
    named: list[tuple[Layer, Callable[[str], str]]] = [
        (flags, lambda name: "--" + name.replace("_", "-")),
        (env_layer(env), lambda name: f"OCACTORS_{name.upper()}"),
        (key, lambda name: key_name),
        (vendor_layer(provider, env), lambda name: vendor_variable(provider, name)),
        (table, lambda name: f"{name} under [roles.{role}] in {CONFIG_FILE}"),
        (file.models, lambda name: f"{name} under [models] in {CONFIG_FILE}"),
    ]
    found: dict[str, str] = {}
    for layer, name_of in named:
        for name in Layer.__struct_fields__:
            if name not in found and getattr(layer, name) is not None:
                found[name] = name_of(name)
    return found


def file_key(role: str, table: Layer, models: Layer, env: Mapping[str, str]) -> tuple[Layer, str]:
    """The key the file gives (a literal ``api_key``, else the variable ``api_key_env``
    names) as resolve_role ranks it, and the name of the setting that gave it."""
    where = f"[roles.{role}]" if table.api_key else "[models]"
    literal = table.api_key or models.api_key
    if literal:
        return Layer(api_key=literal), f"api_key under {where} in {CONFIG_FILE}"
    key_env = table.api_key_env or models.api_key_env
    return Layer(api_key=(env.get(key_env) or None) if key_env else None), str(key_env)


def vendor_variable(provider: Provider, name: str) -> str:
    if provider == "anthropic":
        return "ANTHROPIC_API_KEY"
    return "OPENAI_BASE_URL" if name == "base_url" else "OPENAI_API_KEY"


def missing_key_env(top: Layer, bottom: Layer, env: Mapping[str, str]) -> str | None:
    """The variable ``api_key_env`` names when it is unset and nothing above the file
    gives a key: the key then silently falls back to another (or none)."""
    if top.api_key or bottom.api_key or not bottom.api_key_env:
        return None
    return None if env.get(bottom.api_key_env) else bottom.api_key_env


def resolve_role(
    role: str,
    top: Layer,
    bottom: Layer,
    env: Mapping[str, str],
    file: FileConfig,
    probe: OllamaProbe,
    opencode: OpenCodeConfig | None = None,
) -> RoleConfig:
    """One role: merge the layers, then fill the endpoint and model from defaults.

    ``PROVIDER/MODEL`` with no base URL configured is resolved through OpenCode's config.
    """
    model = top.model or bottom.model
    if opencode and model and "/" in model and not (top.base_url or bottom.base_url):
        return opencode_role(role, model, top, bottom, env, file, opencode)
    provider = top.provider or bottom.provider
    provider = provider or infer_provider(top.base_url or bottom.base_url, model, env)
    file_key = bottom.api_key or (env.get(bottom.api_key_env) if bottom.api_key_env else None)
    layer = merge(top, Layer(api_key=file_key or None), vendor_layer(provider, env), bottom)
    source = "flags/environment" if top.model is not None else str(CONFIG_FILE)
    base_url = layer.base_url
    if base_url is None and layer.api_key:
        base_url = ANTHROPIC_URL if provider == "anthropic" else OPENAI_URL
    if base_url is None and provider == "anthropic":
        raise ConfigError(f"no API key for the {role} on Anthropic: set ANTHROPIC_API_KEY")
    if base_url is None:
        base_url, model, source = ollama_endpoint(model, probe)
    if model is None:
        raise ConfigError(
            f"no model configured for the {role}: set OCACTORS_MODEL (or --model, or "
            f"[roles.{role}] model in {CONFIG_FILE})"
        )
    chosen = msgspec.structs.replace(layer, provider=provider, model=model, base_url=base_url)
    config = role_config(role, chosen, file.prices, source)
    return replace(config, missing_key_env=missing_key_env(top, bottom, env))


def opencode_role(
    role: str,
    model: str,
    top: Layer,
    bottom: Layer,
    env: Mapping[str, str],
    file: FileConfig,
    opencode: OpenCodeConfig,
) -> RoleConfig:
    """A role whose model OpenCode's configuration (or its built-in providers) serves.

    The endpoint decides provider, model and URL; a key given to ocactors (flag, OCACTORS_*,
    the file) still wins over OpenCode's; the other settings merge as usual.
    """
    try:
        found = opencode.resolve(model)
    except OpenCodeConfigError as error:
        raise ConfigError(str(error)) from None
    file_key = bottom.api_key or (env.get(bottom.api_key_env) if bottom.api_key_env else None)
    endpoint = Layer(
        provider=found.protocol,
        model=found.model,
        base_url=found.base_url,
        api_key=top.api_key or file_key or found.api_key,
    )
    limits = Layer(context_window=found.context_window, max_tokens=found.max_tokens)
    return role_config(role, merge(endpoint, top, bottom, limits), file.prices, found.source)


def ollama_endpoint(model: str | None, probe: OllamaProbe) -> tuple[str, str, str]:
    """(base URL, model, "ollama") of the local Ollama, or ConfigError saying what to set."""
    models = probe.models()
    if models is None and model is None:
        raise ConfigError(
            "no model configured: set OCACTORS_MODEL and OCACTORS_BASE_URL (and "
            f"OCACTORS_API_KEY), or start Ollama on {probe.where}"
        )
    if models is None:
        raise ConfigError(
            f"no endpoint for model {model!r}: set OCACTORS_BASE_URL (and OCACTORS_API_KEY), "
            f"or OPENAI_API_KEY / ANTHROPIC_API_KEY, or start Ollama on {probe.where}"
        )
    if model is None and not models:
        raise ConfigError(
            f"Ollama on {probe.where} has no models: run `ollama pull <model>`, "
            "or set OCACTORS_MODEL and OCACTORS_BASE_URL"
        )
    return f"{probe.url}/v1", model or models[0], "ollama"


def role_config(role: str, layer: Layer, prices: Mapping[str, Price], source: str) -> RoleConfig:
    """A RoleConfig from a merged layer that has provider, model and base URL."""
    assert layer.provider and layer.model and layer.base_url
    names = {f.name for f in fields(RoleConfig)} & set(Layer.__struct_fields__)
    settings = {n: getattr(layer, n) for n in names if getattr(layer, n) is not None}
    if layer.context_window is None and layer.provider == "anthropic":
        settings["context_window"] = 200_000
    settings["base_url"] = layer.base_url.rstrip("/")
    return RoleConfig(role=role, **settings, price=prices.get(layer.model), source=source)
