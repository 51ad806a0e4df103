"""What a tool is (name, description, arguments Struct, function) and the box that runs them.

The JSON schema a model sees is derived from the arguments Struct alone, so the schema and
the parser can never disagree.  :meth:`Toolbox.call` never raises: an unknown tool, arguments
that are not JSON or have the wrong types, a :class:`ToolError` and any other exception all
come back as an error result with a reason the model can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.lease_guard import LeaseGuard, LeaseReport
from ocactors.tools.processes import ProcessGroups
from ocactors.tools.workspace import Workspace

RESULT_LIMIT = 40_000
NARROW = "ask for less: a narrower path, pattern or range"


ProjectEnv = Callable[[dict[str, str]], dict[str, str]]
"""The project's own environment laid over a (secret-free) base environment."""


@dataclass(frozen=True)
class ShellConfig:
    """How the mission runs commands.

    Limits (timeouts, captured output, allowed command prefixes, ``result_limit``: the
    characters any tool result may have before it is cut); ``sandbox``: the backend that
    confines every command ("bwrap", "landlock", or None when the user said ``--sandbox
    off``); ``network``: whether commands may use the network; ``guard``: puts back what a
    command changed outside its lease; ``project_env``: the project's virtualenv and tools
    first on PATH.
    """

    timeout_s: float = 120.0
    max_timeout_s: float = 600.0
    output_limit: int = 16_000
    allow_prefixes: tuple[str, ...] = ()
    env_strip: tuple[str, ...] = ()
    groups: ProcessGroups = field(default_factory=ProcessGroups, compare=False)
    result_limit: int = RESULT_LIMIT
    sandbox: str | None = None
    network: bool = False
    guard: LeaseGuard | None = field(default=None, compare=False)
    project_env: ProjectEnv | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WebConfig:
    """The web tools; both off unless configured."""

    fetch: bool = False
    search_url: str | None = None
    cache_dir: Path | None = None
    max_bytes: int = 2_000_000


@dataclass
class ToolContext:
    """What a tool may use: the workspace and the settings, never anything global."""

    workspace: Workspace
    shell: ShellConfig = field(default_factory=ShellConfig)
    web: WebConfig = field(default_factory=WebConfig)
    http: httpx.Client | None = None
    owner: str = ""
    """Who runs the tools (``worker:T1``): the lease guard tells owners apart."""
    on_violation: Callable[[str, LeaseReport], None] | None = None
    """Told (command, report) when a command changed files outside the lease."""


@dataclass(frozen=True)
class ToolResult:
    """What the model sees."""

    output: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolSpec:
    """One tool: the function and the Struct its arguments decode into.

    ``narrow`` tells the model how to get the rest when a result is cut at the size cap.
    """

    name: str
    description: str
    args_type: type[msgspec.Struct]
    run: Callable[[ToolContext, Any], str]
    narrow: str = NARROW

    def schema(self) -> dict[str, Any]:
        """OpenAI function format, parameters inlined (no $ref)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters_schema(self.args_type),
            },
        }

    def parse(self, arguments_json: str) -> Any:
        """The arguments Struct, or ToolError saying what is wrong with them."""
        raw = arguments_json.strip() or "{}"
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError as error:
            raise ToolError(f"arguments are not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ToolError("arguments must be a JSON object")
        try:
            return msgspec.convert(data, self.args_type)
        except msgspec.ValidationError as error:
            raise ToolError(f"invalid arguments for {self.name}: {error}") from None


def parameters_schema(args_type: type[msgspec.Struct]) -> dict[str, Any]:
    """msgspec's schema for the Struct with every $ref inlined, and always a ``required`` list."""
    schema = msgspec.json.schema(args_type)
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    inlined.setdefault("properties", {})
    inlined.setdefault("required", [])
    return inlined


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with $refs replaced by their definitions, and no titles or $defs left."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {
            key: _inline_properties(value, defs) if key == "properties" else _inline(value, defs)
            for key, value in node.items()
            if key not in ("$defs", "title")
        }
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def _inline_properties(properties: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Field names are not keywords: a field called ``title`` stays."""
    return {name: _inline(schema, defs) for name, schema in properties.items()}


class Toolbox:
    """A role's tools over one context."""

    def __init__(self, specs: Sequence[ToolSpec], ctx: ToolContext) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.ctx = ctx

    @property
    def names(self) -> list[str]:
        """Tool names in offer order."""
        return list(self.specs)

    def schemas(self) -> list[dict[str, Any]]:
        """What the model is offered."""
        return [spec.schema() for spec in self.specs.values()]

    def call(self, name: str, arguments_json: str) -> ToolResult:
        """Run a tool; every failure is an error result, never an exception; never too big."""
        spec = self.specs.get(name)
        if spec is None:
            return ToolResult(f"unknown tool {name!r}; available: {', '.join(self.names)}", True)
        result = self._run(spec, arguments_json)
        limit = self.ctx.shell.result_limit
        return ToolResult(cap_result(result.output, limit, spec.narrow), result.is_error)

    def _run(self, spec: ToolSpec, arguments_json: str) -> ToolResult:
        try:
            return ToolResult(spec.run(self.ctx, spec.parse(arguments_json)))
        except ToolError as error:
            return ToolResult(f"error: {error}", True)
        except Exception as error:
            return ToolResult(f"error: {spec.name} failed: {type(error).__name__}: {error}", True)


def cap_result(text: str, limit: int, narrow: str = NARROW) -> str:
    """``text`` within ``limit`` characters, cut at a line end, saying what was left and how to
    get it (a model that sees only a cut result cannot know it was cut)."""
    if len(text) <= limit:
        return text
    room = max(limit - 200 - len(narrow), 1)  # the note fits in what is left
    cut = text.rfind("\n", 0, room + 1)
    kept, rest = (text[:cut], text[cut + 1 :]) if cut > 0 else (text[:room], text[room:])
    lines = rest.count("\n") + (not rest.endswith("\n"))
    return (
        f"{kept}\n[result cut at {limit:,} characters: {len(rest):,} more characters "
        f"({lines:,} lines) not shown; {narrow}]"
    )
