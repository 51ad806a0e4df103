"""``PROVIDER/MODEL`` resolved the way OpenCode would, from OpenCode's own configuration.

An OpenCode user has already said where their models live; ocactors reads that instead of
asking for a second configuration.  The files, most specific first (a key in a nearer file
wins, tables merge key by key as OpenCode merges them)::

    <dir>/.opencode/opencode.json[c], <dir>/opencode.json[c]   from the workspace up to its
                                                                git root (nearest first)
    $OPENCODE_CONFIG                                            a file OpenCode was pointed at
    $XDG_CONFIG_HOME/opencode/opencode.json[c], config.json     else ~/.config/opencode/...

From ``provider.<id>``: ``npm`` (which protocol: OpenAI-compatible or Anthropic),
``options.baseURL``, ``options.apiKey`` and ``models.<name>`` (``id``, ``limit.context``,
``limit.output``).  String values may say ``{env:VAR}`` (empty when unset, as in OpenCode) and
``{file:path}`` (relative to the file that says it, ``~/`` for home; trimmed).  Providers
OpenCode knows without configuration (``openai``, ``anthropic``, ``openrouter``, ``deepseek``,
``groq``, ...) come with their public URL and key variable, and ``ollama`` is the local one.

The key is only ever put in the returned :class:`Endpoint` (whose repr hides it); where it came
from is said by name (``OPENROUTER_API_KEY``, ``options.apiKey in <file>``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["openai", "anthropic"]
FILE_NAMES = ("config.json", "opencode.json", "opencode.jsonc")
PROJECT_NAMES = ("opencode.json", "opencode.jsonc")


class OpenCodeConfigError(ValueError):
    """A model reference or an OpenCode config file that cannot be used; one line, what to do."""


@dataclass(frozen=True)
class Builtin:
    """A provider OpenCode knows without configuration."""

    protocol: Protocol
    base_url: str
    key_env: tuple[str, ...] = ()


BUILTINS: Mapping[str, Builtin] = {
    "openai": Builtin("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
    "anthropic": Builtin("anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",)),
    "openrouter": Builtin("openai", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
    "deepseek": Builtin("openai", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",)),
    "groq": Builtin("openai", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "mistral": Builtin("openai", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",)),
    "xai": Builtin("openai", "https://api.x.ai/v1", ("XAI_API_KEY",)),
    "togetherai": Builtin("openai", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",)),
    "fireworks-ai": Builtin(
        "openai", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",)
    ),
    "cerebras": Builtin("openai", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",)),
    "moonshotai": Builtin("openai", "https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY",)),
    "ollama": Builtin("openai", "http://127.0.0.1:11434/v1"),
}

ANTHROPIC_PACKAGES = ("@ai-sdk/anthropic",)
OPENAI_PACKAGES = (
    "@ai-sdk/openai-compatible",
    "@ai-sdk/openai",
    "@openrouter/ai-sdk-provider",
    "@ai-sdk/groq",
    "@ai-sdk/deepseek",
    "@ai-sdk/mistral",
    "@ai-sdk/xai",
    "@ai-sdk/togetherai",
    "@ai-sdk/cerebras",
    "@ai-sdk/fireworks",
)


@dataclass(frozen=True)
class Endpoint:
    """Where ``PROVIDER/MODEL`` is served; ``api_key`` never shows in repr."""

    provider: str
    model: str
    protocol: Protocol
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    key_from: str | None = None
    source: str = ""
    context_window: int | None = None
    max_tokens: int | None = None


# --- reading the files -------------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """JSON from JSONC: ``//`` and ``/* */`` comments and trailing commas removed."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        two = text[i : i + 2]
        if text[i] == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif two == "//":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        elif two == "/*":
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
        else:
            out.append(text[i])
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def _string_end(text: str, start: int) -> int:
    """Index just after the JSON string that opens at ``start``."""
    i = start + 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def read_config_file(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """One file, parsed and substituted; OpenCodeConfigError names the file and fault."""
    try:
        data = json.loads(strip_jsonc(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OpenCodeConfigError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise OpenCodeConfigError(f"{path}: expected a JSON object")
    return dict(_substitute(data, path, env))


def _substitute(value: Any, path: Path, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _substitute_text(value, path, env)
    if isinstance(value, dict):
        return {k: _substitute(v, path, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, path, env) for v in value]
    return value


def _substitute_text(text: str, path: Path, env: Mapping[str, str]) -> str:
    text = re.sub(r"\{env:([^}]+)\}", lambda m: env.get(m.group(1).strip(), ""), text)
    return re.sub(r"\{file:([^}]+)\}", lambda m: _file_value(m.group(1), path, env), text)


def _file_value(reference: str, config: Path, env: Mapping[str, str]) -> str:
    name = reference.strip()
    if name.startswith("~/"):
        target = Path(env.get("HOME", "~")).expanduser() / name[2:]
    else:
        target = config.parent / name
    try:
        return target.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise OpenCodeConfigError(
            f"{config}: {{file:{name}}} cannot be read ({getattr(error, 'strerror', error)})"
        ) from None


# --- which files -------------------------------------------------------------------------


def config_files(workspace: Path, env: Mapping[str, str]) -> list[Path]:
    """The existing OpenCode config files, most specific first."""
    return [p for p in _candidates(workspace, env) if p.is_file()]


def _candidates(workspace: Path, env: Mapping[str, str]) -> Iterator[Path]:
    for folder in _project_dirs(workspace):
        for name in reversed(PROJECT_NAMES):
            yield folder / ".opencode" / name
        for name in reversed(PROJECT_NAMES):
            yield folder / name
    if env.get("OPENCODE_CONFIG"):
        yield Path(env["OPENCODE_CONFIG"]).expanduser()
    home = global_dir(env)
    if home is not None:
        for name in reversed(FILE_NAMES):
            yield home / name


def _project_dirs(workspace: Path) -> list[Path]:
    """The workspace and its parents up to the git root (just the workspace outside git)."""
    folders = [workspace.resolve()]
    while not (folders[-1] / ".git").exists() and folders[-1].parent != folders[-1]:
        folders.append(folders[-1].parent)
    return folders if (folders[-1] / ".git").exists() else folders[:1]


def global_dir(env: Mapping[str, str]) -> Path | None:
    """``$XDG_CONFIG_HOME/opencode``, else ``$HOME/.config/opencode`` (None without either)."""
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "opencode"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".config" / "opencode"
    return None


def merge_deep(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``, tables merged key by key."""
    merged = dict(low)
    for key, value in high.items():
        below = merged.get(key)
        both = isinstance(below, dict) and isinstance(value, dict)
        merged[key] = merge_deep(below, value) if both else value  # type: ignore[arg-type]
    return merged


# --- resolving ---------------------------------------------------------------------------


class OpenCodeConfig:
    """OpenCode's merged configuration as seen from a workspace (files read once, lazily)."""

    def __init__(self, workspace: Path, env: Mapping[str, str] | None = None) -> None:
        self.workspace = workspace
        self.env = os.environ if env is None else env
        self._data: dict[str, Any] | None = None
        self._origin: dict[str, Path] = {}

    @property
    def data(self) -> dict[str, Any]:
        """The merged configuration."""
        if self._data is None:
            self._data = {}
            for path in reversed(config_files(self.workspace, self.env)):
                layer = read_config_file(path, self.env)
                for provider in _table(layer.get("provider")):
                    self._origin[provider] = path
                self._data = merge_deep(self._data, layer)
        return self._data

    def default_model(self) -> str | None:
        """OpenCode's own ``model`` (``provider/model``), if it has one."""
        model = self.data.get("model")
        return model if isinstance(model, str) and "/" in model else None

    def provider_entry(self, provider: str) -> tuple[dict[str, Any], Path | None]:
        """``provider.<id>`` and the most specific file that declares it (empty if none)."""
        entry = _table(_table(self.data.get("provider")).get(provider))
        return entry, self._origin.get(provider)

    def resolve(self, ref: str) -> Endpoint:
        """``PROVIDER/MODEL`` -> Endpoint; OpenCodeConfigError says what to do otherwise."""
        provider, _, name = ref.partition("/")
        if not provider or not name:
            raise OpenCodeConfigError(f"model {ref!r}: expected PROVIDER/MODEL")
        entry, origin = self.provider_entry(provider)
        builtin = BUILTINS.get(provider)
        if not entry and builtin is None:
            raise OpenCodeConfigError(_unknown(provider, ref))
        return _endpoint(provider, name, entry, origin, builtin, self.env)


def _unknown(provider: str, ref: str) -> str:
    return (
        f"unknown provider {provider!r} in model {ref!r}: neither ocactors nor OpenCode knows "
        f'it; declare it in opencode.json (provider.{provider} with "npm": '
        '"@ai-sdk/openai-compatible", options.baseURL and models), or give --base-url to send '
        f"{ref!r} as the model name"
    )


def _endpoint(
    provider: str,
    name: str,
    entry: Mapping[str, Any],
    origin: Path | None,
    builtin: Builtin | None,
    env: Mapping[str, str],
) -> Endpoint:
    options = _table(entry.get("options"))
    protocol = _protocol(provider, entry, builtin)
    base_url = options.get("baseURL") or (builtin.base_url if builtin else None)
    if not base_url:
        raise OpenCodeConfigError(
            f"provider {provider!r} in {origin} has no options.baseURL: add the URL of its "
            "OpenAI-compatible endpoint"
        )
    key, key_from = _key(provider, options, origin, builtin, env)
    model = _table(_table(entry.get("models")).get(name))
    limit = _table(model.get("limit"))
    return Endpoint(
        provider=provider,
        model=str(model.get("id") or name),
        protocol=protocol,
        base_url=str(base_url).rstrip("/"),
        api_key=key,
        key_from=key_from,
        source=_source(provider, origin, key_from),
        context_window=_positive(limit.get("context")),
        max_tokens=_positive(limit.get("output")),
    )


def _protocol(provider: str, entry: Mapping[str, Any], builtin: Builtin | None) -> Protocol:
    npm = entry.get("npm")
    if npm is None:
        return builtin.protocol if builtin else "openai"
    if npm in ANTHROPIC_PACKAGES:
        return "anthropic"
    if npm in OPENAI_PACKAGES:
        return "openai"
    raise OpenCodeConfigError(
        f"provider {provider!r} uses {npm}, which ocactors cannot speak: use a provider with "
        '"npm": "@ai-sdk/openai-compatible" or "@ai-sdk/anthropic"'
    )


def _key(
    provider: str,
    options: Mapping[str, Any],
    origin: Path | None,
    builtin: Builtin | None,
    env: Mapping[str, str],
) -> tuple[str | None, str | None]:
    """The key and, by name, where it came from; a cloud provider without one is an error."""
    if options.get("apiKey"):
        return str(options["apiKey"]), f"options.apiKey in {origin}"
    names = builtin.key_env if builtin else ()
    for name in names:
        if env.get(name):
            return env[name], name
    if names and not options.get("baseURL"):
        raise OpenCodeConfigError(
            f"no API key for {provider}: set {names[0]} (or options.apiKey under "
            f"provider.{provider} in opencode.json)"
        )
    return None, None


def _source(provider: str, origin: Path | None, key_from: str | None) -> str:
    where = f"OpenCode config {origin}" if origin else "OpenCode's built-in providers"
    key = f", key from {key_from.split(' in ')[0]}" if key_from else ""
    return f"{where}: provider {provider}{key}"


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None
