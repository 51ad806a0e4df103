"""``init``: a commented ``.opencode/ocactors.toml`` from what this machine already has, and with
``--opencode`` the ``/task``, ``/status`` and ``/stop`` commands for OpenCode.

What it looks for, in the order it proposes them: OpenCode's own ``model`` (so an OpenCode user
keeps one configuration), a running Ollama (``GET /api/tags`` on ``$OLLAMA_HOST`` or
127.0.0.1:11434), then ``OPENAI_API_KEY`` and ``ANTHROPIC_API_KEY`` (named, never written).
It asks which one only when stdin is a terminal; it never replaces a file without ``--force``
and says which files it kept.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ocactors.common import EXIT_OK, UsageError, add_workspace, workspace_of
from ocactors.opencode_commands import NAMES, command_text

# The model configuration (and httpx, for the Ollama probe) is imported where it is used, so
# that ``ocactors --help`` does not load it (see ocactors.cli).

COMMANDS_DIR = Path(".opencode") / "commands"
LEGACY_COMMANDS_DIR = Path(".opencode") / "command"
ASK_TRIES = 3


def register(sub: Any) -> None:
    """Add ``init`` to the command line."""
    p = sub.add_parser(
        "init",
        help="write .opencode/ocactors.toml from what is found (Ollama, keys, OpenCode)",
        description="Look for a running Ollama and its models, OPENAI_API_KEY / "
        "ANTHROPIC_API_KEY and OpenCode's configured model, and write a commented "
        ".opencode/ocactors.toml using one of them (asked on a terminal). With --opencode, "
        "also write the OpenCode commands /task, /status and /stop.",
        epilog="example: ocactors init --opencode    # then, in OpenCode: /task Add a README",
    )
    add_workspace(p)
    p.add_argument("--force", action="store_true", help="replace files that already exist")
    p.add_argument(
        "--opencode",
        action="store_true",
        help="also write .opencode/commands/task.md, status.md and stop.md",
    )
    p.set_defaults(func=run_init)


@dataclass(frozen=True)
class Choice:
    """One way to reach a model: what to call it, and its ``[models]`` lines."""

    label: str
    lines: tuple[str, ...]


def run_init(args: argparse.Namespace) -> int:
    """Discover, ask (on a terminal), write what is missing, say what to run next."""
    from ocactors.actors.models.config import CONFIG_FILE

    workspace = workspace_of(args)
    found, notes = discover(workspace, os.environ)
    chosen = ask(found) if found and sys.stdin.isatty() else (found[0] if found else None)
    text = render(found, chosen, notes)
    report(CONFIG_FILE, write(workspace / CONFIG_FILE, text, args.force))
    if args.opencode:
        write_commands(workspace, args.force)
    print(f"next: {next_command(args.opencode, chosen)}")
    return EXIT_OK


# --- finding models ----------------------------------------------------------------------


def discover(workspace: Path, env: Mapping[str, str]) -> tuple[list[Choice], list[str]]:
    """Every usable model source, best first, and notes on what was looked at."""
    notes: list[str] = []
    choices = [
        *_opencode_choice(workspace, env, notes),
        *_ollama_choice(env, notes),
        *_key_choices(env, notes),
    ]
    return choices, notes


def _opencode_choice(workspace: Path, env: Mapping[str, str], notes: list[str]) -> list[Choice]:
    from ocactors.actors.models.opencode_config import OpenCodeConfig, OpenCodeConfigError

    config = OpenCodeConfig(workspace, env)
    try:
        model = config.default_model()
        if model is None:
            notes.append("OpenCode: no model configured")
            return []
        config.resolve(model)
    except OpenCodeConfigError as error:
        notes.append(f"OpenCode: {error}")
        return []
    notes.append(f"OpenCode: model {model}")
    return [
        Choice(
            f"{model} (OpenCode's model, through OpenCode's configuration)",
            (
                "# OpenCode's model: its provider, URL and key come from OpenCode's config",
                f"model = {_quoted(model)}",
            ),
        )
    ]


def ollama_url(env: Mapping[str, str]) -> str:
    """Where a local Ollama listens: ``$OLLAMA_HOST`` (as Ollama reads it) or the default."""
    from ocactors.actors.models.config import OLLAMA_URL

    host = env.get("OLLAMA_HOST", "").strip()
    if not host:
        return OLLAMA_URL
    parts = urlsplit(host if "://" in host else f"http://{host}")
    name = parts.hostname or "127.0.0.1"
    name = "127.0.0.1" if name in ("0.0.0.0", "::") else name
    return f"{parts.scheme}://{name}:{parts.port or 11434}"


def _ollama_choice(env: Mapping[str, str], notes: list[str]) -> list[Choice]:
    from ocactors.actors.models.config import OllamaProbe

    probe = OllamaProbe(ollama_url(env), timeout=1.0)
    models = probe.models()
    if models is None:
        notes.append(f"Ollama: none answers on {probe.where}")
        return []
    if not models:
        notes.append(f"Ollama on {probe.where}: no models (ollama pull <model>)")
        return []
    notes.append(f"Ollama on {probe.where}: {', '.join(models)}")
    lines = [f"# Ollama on {probe.where}; its models: {', '.join(models)}"]
    lines += [
        'provider = "openai"',
        f'base_url = "{probe.url}/v1"',
        f"model = {_quoted(models[0])}",
    ]
    return [Choice(f"{models[0]} on Ollama ({probe.where})", tuple(lines))]


def _key_choices(env: Mapping[str, str], notes: list[str]) -> list[Choice]:
    choices = []
    for name, provider, model in (
        ("OPENAI_API_KEY", "openai", "gpt-4.1-mini"),
        ("ANTHROPIC_API_KEY", "anthropic", "claude-sonnet-4-5"),
    ):
        if not env.get(name):
            notes.append(f"{name}: not set")
            continue
        notes.append(f"{name}: set")
        lines = (
            f"# {provider.capitalize()}, the key read from {name} (change the model at will)",
            f'provider = "{provider}"',
            f'model = "{model}"',
            f'api_key_env = "{name}"',
        )
        choices.append(Choice(f"{model} on {provider.capitalize()} (key in {name})", lines))
    return choices


def ask(choices: list[Choice]) -> Choice:
    """On a terminal: which one (the first by default)."""
    if len(choices) == 1:
        return choices[0]
    for number, choice in enumerate(choices, 1):
        print(f"  {number}. {choice.label}", file=sys.stderr)
    for _ in range(ASK_TRIES):
        try:
            answer = input(f"model for every role [1-{len(choices)}, default 1]: ").strip()
        except EOFError:
            break
        if not answer:
            break
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        print(f"  answer a number from 1 to {len(choices)}", file=sys.stderr)
    return choices[0]


# --- writing -----------------------------------------------------------------------------


def render(found: list[Choice], chosen: Choice | None, notes: list[str]) -> str:
    """The commented file; every other choice found stays in it, commented out."""
    from datetime import date

    head = [
        f"# ocactors configuration, written by `ocactors init` on {date.today().isoformat()}.",
        "# Flags and OCACTORS_* variables override it; docs/configuration.md lists every key.",
        "# Found:",
        *(f"#   {note}" for note in notes),
        "",
        "[models]",
    ]
    if chosen is None:
        head += _nothing_found()
    else:
        head += list(chosen.lines)
    others = [c for c in found if c is not chosen]
    if others:
        head += ["", "# Other choices found (comment out the lines above, uncomment one block):"]
        for choice in others:
            head += [line if line.startswith("#") else f"# {line}" for line in choice.lines]
    return "\n".join([*head, _TAIL])


def _nothing_found() -> list[str]:
    return [
        "# No model found. Set one here, e.g. an OpenAI-compatible endpoint:",
        '# model = "deepseek-chat"',
        '# base_url = "https://api.deepseek.com/v1"',
        '# api_key_env = "DEEPSEEK_API_KEY"     # the name of the variable, never the key',
        "# or start Ollama (ollama serve; ollama pull qwen2.5-coder) and run",
        "# `ocactors init --force` again.",
    ]


_TAIL = """
# A stronger planner, cheaper workers (also [roles.worker], [roles.reviewer]):
# [roles.planner]
# model = "openrouter/anthropic/claude-sonnet-4"   # PROVIDER/MODEL: through OpenCode's config

[limits]
# max_sessions = 50            # model sessions at once, all roles together
# max_per_role = 10            # workers at once unless --parallel says otherwise
# session_ttl_s = 3600         # a session running longer is stopped (its task retried)

[tools]
# allow_commands = []          # run_command prefixes; empty: any command
# command_timeout_s = 120
# web_fetch = false
"""


def _quoted(text: str) -> str:
    """A TOML basic string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write(path: Path, text: str, force: bool) -> bool:
    """Create ``path`` (replace it only with ``force``); False when it was kept."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w" if force else "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        return False
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None
    return True


def report(relative: Path, written: bool) -> None:
    """Say what happened to one file ."""
    if written:
        print(f"wrote {relative}")
    else:
        print(f"kept {relative}: it exists (--force replaces it)")


def write_commands(workspace: Path, force: bool) -> None:
    """task.md, status.md, stop.md; a user's command of the same name is kept."""
    prefix = ocactors_command()
    for name in NAMES:
        relative = COMMANDS_DIR / f"{name}.md"
        legacy = workspace / LEGACY_COMMANDS_DIR / f"{name}.md"
        if legacy.exists() and not force:
            report(LEGACY_COMMANDS_DIR / f"{name}.md", False)
            continue
        report(relative, write(workspace / relative, command_text(name, prefix), force))


def ocactors_command() -> str:
    """How OpenCode's shell should start us: ``ocactors`` if it is on PATH, else this Python."""
    if shutil.which("ocactors"):
        return "ocactors"
    return f"{shlex.quote(sys.executable)} -m ocactors"


def next_command(opencode: bool, chosen: Choice | None) -> str:
    from ocactors.actors.models.config import CONFIG_FILE

    if chosen is None:
        return f"ocactors demo   (a whole mission offline; then configure a model in {CONFIG_FILE})"
    if opencode:
        return "opencode   (then type: /task Add a README that explains how to run the tests)"
    return 'ocactors task "Add a README that explains how to run the tests"'
