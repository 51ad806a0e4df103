"""Schemas, argument parsing, Toolbox.call (never raises) and the tool sets per role."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ocactors.tools import (
    Toolbox,
    ToolContext,
    ToolError,
    ToolResult,
    ToolSpec,
    WebConfig,
    Workspace,
    planner_tools,
    reviewer_tools,
    worker_tools,
)

WEB = WebConfig(fetch=True, search_url="http://127.0.0.1:1/search")
ALL = {
    spec.name: spec for role in (planner_tools, worker_tools, reviewer_tools) for spec in role(WEB)
}


def _keys(node: Any) -> Any:
    """Every dict key anywhere in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("read_file", ["path"]),
        ("write_file", ["path", "content"]),
        ("edit_file", ["path", "old", "new"]),
        ("list_files", []),
        ("grep", ["pattern"]),
        ("run_command", ["command"]),
        ("web_fetch", ["url"]),
        ("web_search", ["query"]),
    ],
)
def test_every_schema_is_an_openai_function_with_plain_json_schema(
    name: str, required: list[str]
) -> None:
    schema = json.loads(json.dumps(ALL[name].schema()))
    assert schema["type"] == "function"
    assert set(schema["function"]) == {"name", "description", "parameters"}
    assert schema["function"]["name"] == name and schema["function"]["description"]
    params = schema["function"]["parameters"]
    assert params["type"] == "object" and isinstance(params["properties"], dict)
    assert params["required"] == required and set(required) <= set(params["properties"])
    assert not {"$ref", "$defs", "title"} & set(_keys(schema))


def test_the_schema_covers_every_tool() -> None:
    assert len(ALL) == 8


class Span(msgspec.Struct):
    start: int
    end: int = 0


class Nested(msgspec.Struct, kw_only=True):
    title: str
    spans: list[Span]
    main: Span | None = None


def _echo(ctx: ToolContext, args: Any) -> str:
    return repr(args)


def test_nested_arguments_are_inlined_and_fields_named_like_keywords_stay() -> None:
    params = ToolSpec("nested", "d", Nested, _echo).schema()["function"]["parameters"]
    assert "$ref" not in json.dumps(params)
    assert list(params["properties"]) == ["title", "spans", "main"]
    assert params["required"] == ["title", "spans"]
    span = params["properties"]["spans"]["items"]
    assert span["properties"]["start"] == {"type": "integer"} and span["required"] == ["start"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{oops", "arguments are not valid JSON"),
        ("[]", "arguments must be a JSON object"),
        ('"path"', "arguments must be a JSON object"),
        ("{}", "missing required field `path`"),
        ("", "missing required field `path`"),
        ('{"path": 3}', "Expected `str`, got `int` - at `$.path`"),
        ('{"path": "a", "start_line": "x"}', "at `$.start_line`"),
        ('{"path": "a", "max_lines": 1.5}', "at `$.max_lines`"),
    ],
)
def test_bad_arguments_name_the_problem(arguments: str, message: str) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        ALL["read_file"].parse(arguments)


def test_good_arguments_decode_with_defaults() -> None:
    parsed = ALL["read_file"].parse(' {"path": "a.py", "start_line": 3} ')
    assert (parsed.path, parsed.start_line, parsed.max_lines) == ("a.py", 3, 400)


@pytest.fixture
def calls() -> list[Any]:
    return []


@pytest.fixture
def toolbox(tmp_path: Path, calls: list[Any]) -> Toolbox:
    def boom(ctx: ToolContext, args: Any) -> str:
        calls.append(args)
        raise RuntimeError("boom")

    def refuse(ctx: ToolContext, args: Any) -> str:
        raise ToolError("not like that")

    specs = [
        ToolSpec("boom", "raises", Nested, boom),
        ToolSpec("refuse", "refuses", Nested, refuse),
        ToolSpec("echo", "echoes", Nested, _echo),
    ]
    return Toolbox(specs, ToolContext(Workspace(tmp_path)))


ARGS = '{"title": "t", "spans": [{"start": 1}]}'


def test_a_raising_tool_becomes_an_error_result(toolbox: Toolbox) -> None:
    result = toolbox.call("boom", ARGS)
    assert result.is_error and result.output == "error: boom failed: RuntimeError: boom"


def test_a_tool_error_is_an_error_result_with_its_message(toolbox: Toolbox) -> None:
    assert toolbox.call("refuse", ARGS) == ToolResult("error: not like that", is_error=True)


def test_bad_arguments_never_reach_the_tool(toolbox: Toolbox, calls: list[Any]) -> None:
    result = toolbox.call("boom", '{"title": "t", "spans": [{"start": "one"}]}')
    assert result.is_error and "at `$.spans[0].start`" in result.output
    assert calls == []


def test_an_unknown_tool_lists_what_is_available(toolbox: Toolbox) -> None:
    result = toolbox.call("fly", "{}")
    assert result.is_error
    assert result.output == "unknown tool 'fly'; available: boom, refuse, echo"


def test_call_never_raises_even_on_garbage(toolbox: Toolbox) -> None:
    assert toolbox.call("echo", None).is_error  # type: ignore[arg-type]
    assert toolbox.call("echo", "\x00").is_error
    ok = toolbox.call("echo", ARGS)
    assert not ok.is_error and "Span(start=1, end=0)" in ok.output


def test_the_toolbox_offers_its_tools_in_order(toolbox: Toolbox) -> None:
    assert toolbox.names == ["boom", "refuse", "echo"]
    assert [s["function"]["name"] for s in toolbox.schemas()] == toolbox.names


READ = ["read_file", "list_files", "grep"]


@pytest.mark.parametrize(
    ("web", "extra"),
    [
        (WebConfig(), []),
        (WebConfig(fetch=True), ["web_fetch"]),
        (WebConfig(search_url="http://127.0.0.1:1/s"), ["web_search"]),
        (WEB, ["web_fetch", "web_search"]),
    ],
)
def test_each_role_gets_its_tools_and_web_tools_only_when_configured(
    web: WebConfig, extra: list[str]
) -> None:
    assert [s.name for s in planner_tools(web)] == [*READ, *extra]
    assert [s.name for s in reviewer_tools(web)] == [*READ, "run_command", *extra]
    assert [s.name for s in worker_tools(web)] == [
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
        "grep",
        "run_command",
        *extra,
    ]
