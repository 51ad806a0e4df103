"""From command-line flags and ``.opencode/ocactors.toml`` to a ready :class:`Launch`.

Model settings are resolved by :func:`ocactors.actors.models.resolve_models`; this module adds
the tables the models layer leaves to others::

    [limits]
    max_sessions = 50          # model sessions at once, all roles together
    max_per_role = 10          # workers at once unless --parallel says otherwise
    session_ttl_s = 3600       # a model session running longer is stopped (--session-ttl)
    [tools]
    allow_commands = ["python", "pytest", "npm"]   # run_command prefixes (empty: any)
    command_timeout_s = 120
    web_fetch = false
    search_url = "http://127.0.0.1:8888/search"   # SearXNG-compatible JSON endpoint
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import httpx
import msgspec

from ocactors.actors.models import (
    ConfigError,
    LimiterRegistry,
    ModelFlags,
    ModelsConfig,
    build_clients,
    make_http_client,
    preflight,
    resolve_models,
)
from ocactors.common import UsageError
from ocactors.launch import Launch
from ocactors.tools import ShellConfig, WebConfig
from ocactors.view import View

CONFIG = Path(".opencode") / "ocactors.toml"


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[limits]``: sessions at once (in all, of one role) and how long one may run."""

    max_sessions: int = 50
    max_per_role: int = 10
    session_ttl_s: float = 3600.0


class ToolSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[tools]``: what run_command and the web tools may do."""

    allow_commands: list[str] = []
    command_timeout_s: float = 120.0
    web_fetch: bool = False
    search_url: str | None = None


class Extras(msgspec.Struct, frozen=True, kw_only=True):
    """The tables of the config file that belong to the command line."""

    limits: Limits = Limits()
    tools: ToolSettings = ToolSettings()


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--base-url``, ``--api-key``, ``--provider`` (over env and file)."""
    group = parser.add_argument_group("model (over OCACTORS_* and .opencode/ocactors.toml)")
    group.add_argument("--model", help="model name for every role, e.g. deepseek-chat")
    group.add_argument("--base-url", help="OpenAI-compatible or Anthropic endpoint")
    group.add_argument("--api-key", help="API key (prefer OCACTORS_API_KEY in the environment)")
    group.add_argument("--provider", choices=["openai", "anthropic"])


def read_extras(workspace: Path) -> Extras:
    """The [limits] and [tools] tables; a malformed file is a one-line usage error."""
    path = workspace / CONFIG
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return Extras()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: {error}") from None
    try:
        return msgspec.convert({k: v for k, v in data.items() if k in ("limits", "tools")}, Extras)
    except msgspec.ValidationError as error:
        raise UsageError(f"{path}: {error}") from None


def session_limits(workspace: Path) -> Limits:
    """``[limits]``: sessions at once in all (default 50) and of one role (default 10)."""
    limits = read_extras(workspace).limits
    if limits.max_sessions < 1 or limits.max_per_role < 1 or not limits.session_ttl_s > 0:
        raise UsageError(f"{workspace / CONFIG}: [limits] values must be positive")
    return limits


def _preflight(config: ModelsConfig, http: httpx.Client, args: argparse.Namespace) -> None:
    """Commands that offer ``--no-preflight`` (``task``) check every endpoint first."""
    if getattr(args, "no_preflight", True):
        return
    try:
        preflight(config, http)
    except ConfigError as error:
        http.close()
        raise UsageError(str(error)) from None


def launch_for(workspace: Path, args: argparse.Namespace, view: View) -> Launch:
    """Resolve the models (ConfigError becomes a usage error) and the tool settings."""
    flags = ModelFlags(
        model=args.model, base_url=args.base_url, api_key=args.api_key, provider=args.provider
    )
    try:
        config = resolve_models(workspace, flags)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    http = make_http_client()
    _preflight(config, http, args)
    clients = build_clients(config, http, LimiterRegistry())
    for role in config.roles.values():
        print(f"model {role.describe()}", file=sys.stderr)
    extras = read_extras(workspace)
    return Launch(
        workspace=workspace,
        clients=clients,
        http=http,
        shell=ShellConfig(
            timeout_s=extras.tools.command_timeout_s,
            allow_prefixes=tuple(extras.tools.allow_commands),
        ),
        web=WebConfig(
            fetch=extras.tools.web_fetch,
            search_url=extras.tools.search_url,
            cache_dir=workspace / ".opencode" / "docs",
        ),
        prices=config.price_table(),
        view=view,
    )
