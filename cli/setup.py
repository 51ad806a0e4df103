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
    sandbox = "auto"           # bwrap, landlock or off (--sandbox)
    command_network = false    # commands may use the network (--command-network)
    result_limit = 40000       # characters of any tool result before it is cut
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tomllib
from pathlib import Path

import httpx
import msgspec

from ocactors.actors.masking import MaskingTable
from ocactors.actors.mission import Conditions, project_command_env
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
from ocactors.actors.opencode_server import OpenCodeError, OpenCodeServer
from ocactors.actors.opencode_session import OpenCodeOptions
from ocactors.actors.prices import PriceBook, describe_cost_cap
from ocactors.actors.project import project_environment
from ocactors.actors.session import SessionLimits
from ocactors.common import UsageError
from ocactors.launch import Launch, OpenCode
from ocactors.tools import (
    SandboxUnavailable,
    ShellConfig,
    WebConfig,
    detect_backend,
    require_backend,
)
from ocactors.tools.sandbox import PREFERENCES as SANDBOX_CHOICES
from ocactors.tools.sandbox import banner as sandbox_banner
from ocactors.tools.spec import RESULT_LIMIT
from ocactors.view import View

CONFIG = Path(".opencode") / "ocactors.toml"
BACKENDS = ("ocactors", "opencode")


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
    sandbox: str = "auto"
    command_network: bool = False
    result_limit: int = RESULT_LIMIT


class SessionsTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[sessions]``: who runs the workers' sessions (``ocactors`` itself, or ``opencode``)."""

    backend: str = "ocactors"
    opencode_url: str | None = None


class VerifyTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[verify]``: the project's checks when ``--verify`` is not given ("none": unverified)."""

    command: str | None = None


class Extras(msgspec.Struct, frozen=True, kw_only=True):
    """The tables of the config file that belong to the command line."""

    limits: Limits = Limits()
    tools: ToolSettings = ToolSettings()
    masking: MaskingTable = MaskingTable()
    sessions: SessionsTable = SessionsTable()
    verify: VerifyTable = VerifyTable()


def add_command_flags(parser: argparse.ArgumentParser) -> None:
    """``--sandbox`` and ``--command-network`` (over ``[tools]``)."""
    group = parser.add_argument_group("commands the models run (over [tools])")
    group.add_argument(
        "--sandbox",
        choices=SANDBOX_CHOICES,
        help="confine commands: auto (bwrap, else Landlock), bwrap, landlock, or off",
    )
    group.add_argument(
        "--command-network",
        action="store_true",
        default=None,
        help="let commands use the network (off by default)",
    )


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--opencode-url`` (over ``[sessions]``)."""
    group = parser.add_argument_group("worker sessions (over [sessions])")
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        help="ocactors (default) runs workers itself; opencode runs each as an OpenCode session",
    )
    group.add_argument(
        "--opencode-url",
        metavar="URL",
        help="use this running `opencode serve` instead of starting one (with --backend opencode)",
    )


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--base-url``, ``--api-key``, ``--provider`` (over env and file)."""
    group = parser.add_argument_group("model (over OCACTORS_* and .opencode/ocactors.toml)")
    group.add_argument("--model", help="model name for every role, e.g. deepseek-chat")
    group.add_argument("--base-url", help="OpenAI-compatible or Anthropic endpoint")
    group.add_argument("--api-key", help="API key (prefer OCACTORS_API_KEY in the environment)")
    group.add_argument("--provider", choices=["openai", "anthropic"])


def read_extras(workspace: Path) -> Extras:
    """The [limits], [tools], [masking] and [sessions] tables; a malformed file is a one-line
    usage error."""
    path = workspace / CONFIG
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return Extras()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: {error}") from None
    try:
        names = ("limits", "tools", "masking", "sessions", "verify")
        return msgspec.convert({k: v for k, v in data.items() if k in names}, Extras)
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
    extras = read_extras(workspace)
    shell, conditions = command_settings(workspace, args, extras.tools)  # before any model call
    http = make_http_client()
    _preflight(config, http, args)
    clients = build_clients(config, http, LimiterRegistry())
    for role in config.roles.values():
        print(f"model {role.describe()}", file=sys.stderr)
    print(sandbox_banner(shell.sandbox, shell.network), file=sys.stderr)
    print(f"project: {conditions.environment}", file=sys.stderr)
    book = PriceBook.from_config(config)
    models = {name: role.model for name, role in config.roles.items()}
    cap = describe_cost_cap(models, getattr(args, "max_cost", None), book)
    if cap is not None:
        print(cap, file=sys.stderr)
    shell = dataclasses.replace(shell, env_strip=_key_variables(config))
    opencode = _opencode(workspace, args, extras.sessions)  # last: nothing after it may fail
    return Launch(
        workspace=workspace,
        clients=clients,
        http=http,
        shell=shell,
        conditions=conditions,
        secrets=model_keys(config),
        web=WebConfig(
            fetch=extras.tools.web_fetch,
            search_url=extras.tools.search_url,
            cache_dir=workspace / ".opencode" / "docs",
        ),
        prices=config.price_table(),
        view=view,
        opencode=opencode,
        limits=SessionLimits(
            observation_turns=extras.masking.keep_turns,
            observation_turns_by_role=dict(extras.masking.roles),
            prices=book,
        ),
    )


def command_settings(
    workspace: Path, args: argparse.Namespace, tools: ToolSettings
) -> tuple[ShellConfig, Conditions]:
    """The sandbox (refused in one line when none works), the network, the project's env."""
    preference = getattr(args, "sandbox", None) or tools.sandbox
    if preference not in SANDBOX_CHOICES:
        raise UsageError(f"[tools] sandbox must be one of {', '.join(SANDBOX_CHOICES)}")
    try:
        backend = require_backend(preference)
    except SandboxUnavailable as error:
        raise UsageError(str(error)) from None
    flag = getattr(args, "command_network", None)
    network = tools.command_network if flag is None else bool(flag)
    project = project_environment(workspace, os.environ)
    shell = ShellConfig(
        timeout_s=tools.command_timeout_s,
        allow_prefixes=tuple(tools.allow_commands),
        result_limit=tools.result_limit,
        sandbox=backend,
        network=network,
        project_env=functools.partial(project_command_env, workspace),
    )
    return shell, Conditions(backend or "off", network, project.description)


def model_keys(config: ModelsConfig) -> tuple[str, ...]:
    """Every key the mission sends to a provider, whatever its source or shape."""
    return tuple(sorted({role.api_key for role in config.roles.values() if role.api_key}))


def _key_variables(config: ModelsConfig) -> tuple[str, ...]:
    """Variables holding a key in use, removed from commands whatever their names."""
    keys = set(model_keys(config))
    return tuple(sorted(name for name, value in os.environ.items() if value in keys))


def replay_command_settings(workspace: Path) -> tuple[ShellConfig, Conditions]:
    """For the demo and reruns: the best sandbox this machine has, or none; no network.

    They replay recorded commands offline, so a machine without a sandbox still runs them
    (the banner of a real mission refuses instead).
    """
    backend = detect_backend("auto")
    project = project_environment(workspace, os.environ)
    shell = ShellConfig(
        sandbox=backend, project_env=functools.partial(project_command_env, workspace)
    )
    return shell, Conditions(backend or "off", False, project.description)


def _opencode(workspace: Path, args: argparse.Namespace, table: SessionsTable) -> OpenCode | None:
    """With ``--backend opencode``: the running server and the model for workers, or None."""
    backend = getattr(args, "backend", None) or table.backend
    if backend not in BACKENDS:
        raise UsageError(f"[sessions] backend must be one of {', '.join(BACKENDS)}")
    if backend != "opencode":
        return None
    url = getattr(args, "opencode_url", None) or table.opencode_url
    model = getattr(args, "model", None) or ""
    provider, _, name = model.partition("/")
    options = OpenCodeOptions(
        provider_id=(provider or None) if name else None, model_id=name or None
    )
    try:
        server = OpenCodeServer(workspace, url=url).start()
    except OpenCodeError as error:
        raise UsageError(str(error)) from None
    print(
        f"workers: OpenCode sessions via {server.url} (opencode {server.version})", file=sys.stderr
    )
    return OpenCode(server, options)
