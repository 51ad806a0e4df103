"""Provider caches: cached and cache-write tokens reach the log, and requests keep a stable prefix.

A loopback server answers in each provider's usage shape (OpenAI, DeepSeek, OpenRouter,
Moonshot; Anthropic streamed and not), and a real session records the turn.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocactors.actors.models import (
    LimiterRegistry,
    RoleConfig,
    ScriptedModelServer,
    Turn,
    build_client,
)
from ocactors.actors.roles import finish_tool, system_prompt, worker_brief
from ocactors.actors.session import AgentSession, SessionBrief, SessionLimits
from ocactors.actors.state import MissionState, TaskState
from ocactors.events import Journal, create_mission_dir, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, TaskSpec
from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, worker_tools

FINISH = {"summary": "done"}
SHAPES: dict[str, tuple[str, dict[str, Any], tuple[int, int, int]]] = {
    # name: (protocol, usage as the provider sends it, (prompt, cached, cache write))
    "openai": (
        "openai",
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        },
        (2006, 1920, 0),
    ),
    "deepseek": (
        "openai",
        {
            "prompt_tokens": 875,
            "completion_tokens": 79,
            "prompt_cache_hit_tokens": 768,
            "prompt_cache_miss_tokens": 107,
        },
        (875, 768, 0),
    ),
    "openrouter": (
        "openai",
        {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100},
        },
        (194, 0, 100),
    ),
    "moonshot": (
        "openai",
        {"prompt_tokens": 300, "completion_tokens": 20, "cached_tokens": 256},
        (300, 256, 0),
    ),
    "anthropic": (
        "anthropic",
        {
            "input_tokens": 50,
            "cache_creation_input_tokens": 248,
            "cache_read_input_tokens": 1800,
            "output_tokens": 120,
        },
        (2098, 1800, 248),
    ),
}


# --- a server answering in each shape ----------------------------------------------------


def openai_body(usage: dict[str, Any]) -> dict[str, Any]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "finish_task", "arguments": json.dumps(FINISH)},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": usage,
    }


def openai_stream(usage: dict[str, Any]) -> list[dict[str, Any]]:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "finish_task", "arguments": json.dumps(FINISH)},
    }
    return [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": usage},
    ]


def anthropic_body(usage: dict[str, Any]) -> dict[str, Any]:
    block = {"type": "tool_use", "id": "toolu_1", "name": "finish_task", "input": FINISH}
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [block],
        "stop_reason": "tool_use",
        "usage": usage,
    }


def anthropic_stream(usage: dict[str, Any]) -> list[dict[str, Any]]:
    start = {**usage, "output_tokens": 1}
    block = {"type": "tool_use", "id": "toolu_1", "name": "finish_task", "input": {}}
    delta = {"type": "input_json_delta", "partial_json": json.dumps(FINISH)}
    return [
        {"type": "message_start", "message": {"id": "msg_1", "content": [], "usage": start}},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
        {"type": "message_stop"},
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        protocol, usage, _ = SHAPES[self.path.strip("/").split("/")[0]]
        if body["stream"]:
            events = (anthropic_stream if protocol == "anthropic" else openai_stream)(usage)
            lines = [f"data: {json.dumps(e)}\n\n" for e in events]
            if protocol == "openai":
                lines.append("data: [DONE]\n\n")
            self._send("text/event-stream", "".join(lines).encode())
        else:
            answer = (anthropic_body if protocol == "anthropic" else openai_body)(usage)
            self._send("application/json", json.dumps(answer).encode())

    def _send(self, kind: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def session_log(tmp_path: Path, config: RoleConfig) -> list[Any]:
    """Run one worker session (it finishes on its first turn); its recorded events."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "out.txt").write_text("done\n")
    paths = create_mission_dir(tmp_path, "20261125-000000-0001")
    brief = SessionBrief(
        session="worker:T1#1",
        actor="worker:T1",
        role="worker",
        system=system_prompt("worker"),
        brief="Finish.",
        final=finish_tool(workspace, ["out.txt"]),
        task_id="T1",
    )
    with httpx.Client(timeout=5.0) as http, Journal.open(paths.events, mission=paths.id) as log:

        def record(event: Event, actor: str) -> Event:
            return log.append(event, actor=actor).event

        AgentSession(
            brief,
            client=build_client(config, http, LimiterRegistry()),
            toolbox=Toolbox(worker_tools(WebConfig()), ToolContext(Workspace(workspace))),
            record=record,
            mission=paths.id,
        ).run()
    return list(read_events(paths.events))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_cached_and_cache_write_tokens_reach_the_log(
    tmp_path: Path, server: str, shape: str, stream: bool
) -> None:
    protocol, _, (prompt, cached, written) = SHAPES[shape]
    config = RoleConfig(
        role="worker",
        provider=protocol,  # type: ignore[arg-type]
        model="claude-sonnet-4-5" if protocol == "anthropic" else "gpt-4.1-mini",
        base_url=f"{server}/{shape}/v1",
        api_key="k",
        stream=stream,
    )
    (responded,) = [e for e in session_log(tmp_path, config) if isinstance(e, ev.ModelResponded)]
    usage = responded.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        prompt,
        cached,
        written,
    )
    assert not usage.estimated and usage.cost_usd is not None and usage.cost_usd > 0


# --- what goes out: a stable prefix, and Anthropic's breakpoints on it -------------------


def bodies(tmp_path: Path, provider: str, brief: SessionBrief | None = None) -> list[bytes]:
    """The raw bodies of a 4-turn session against the scripted model."""
    sent: list[bytes] = []
    workspace = tmp_path / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "out.txt").write_text("x" * 3000)
    read = ("read_file", {"path": "out.txt"})
    turns = [
        Turn(tool_calls=[read]),
        Turn(tool_calls=[read]),
        Turn(tool_calls=[read]),
        Turn(tool_calls=[("finish_task", FINISH)]),
    ]
    brief = brief or SessionBrief(
        session="worker:T1#1",
        actor="worker:T1",
        role="worker",
        system=system_prompt("worker"),
        brief="Read out.txt thrice.",
        final=finish_tool(workspace, ["out.txt"]),
        task_id="T1",
    )
    hook = {"request": [lambda request: sent.append(request.content)]}
    with (
        ScriptedModelServer({"*": turns}) as model,
        httpx.Client(timeout=5.0, event_hooks=hook) as http,
    ):
        config = RoleConfig(
            role="worker",
            provider=provider,  # type: ignore[arg-type]
            model="m",
            base_url=model.base_url,
            api_key="k",
        )
        AgentSession(
            brief,
            client=build_client(config, http, LimiterRegistry()),
            toolbox=Toolbox(worker_tools(WebConfig()), ToolContext(Workspace(workspace))),
            record=lambda event, actor: event,
            mission="m",
            limits=SessionLimits(observation_turns=0),
        ).run()
    return sent


def test_each_openai_request_begins_with_the_previous_one(tmp_path: Path) -> None:
    sent = bodies(tmp_path, "openai")
    assert len(sent) == 4
    for before, after in itertools.pairwise(sent):
        assert after.startswith(before[: -len(b"]}")])
    assert json.loads(sent[0]).keys() == {"model", "stream", "stream_options", "tools", "messages"}
    assert list(json.loads(sent[0]))[-1] == "messages"


def test_anthropic_requests_carry_breakpoints_on_the_prefix(tmp_path: Path) -> None:
    sent = [json.loads(body) for body in bodies(tmp_path, "anthropic")]
    marker = {"type": "ephemeral"}
    for body in sent:
        assert list(body)[-3:] == ["tools", "system", "messages"]
        assert body["system"][-1]["cache_control"] == marker
        users = [turn for turn in body["messages"] if turn["role"] == "user"]
        assert users[0]["content"][-1]["cache_control"] == marker  # the brief
        assert users[-1]["content"][-1]["cache_control"] == marker  # the conversation so far
        assert json.dumps(body).count("cache_control") <= 4  # Anthropic's limit
    assert sent[1]["tools"] == sent[0]["tools"] and sent[1]["system"] == sent[0]["system"]
    first, second = (json.dumps(b["messages"][0]["content"][0]["text"]) for b in sent[:2])
    assert first == second


def test_workers_of_a_mission_share_the_prefix_up_to_their_task(tmp_path: Path) -> None:
    """Two workers of one mission send the same bytes up to the first word about their task."""
    state = MissionState(goal="Build calc: add and sub, with tests")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sent = []
    for task_id in ("T1", "T2"):
        spec = TaskSpec(id=task_id, title=f"write {task_id}.py", files=[f"{task_id}.py"])
        brief = worker_brief(
            state, TaskState(spec=spec, iteration=1), f"worker:{task_id}#1", workspace
        )
        sent.append(bodies(tmp_path / task_id, "openai", brief)[0])
    common = len(_common_prefix(sent[0], sent[1]))
    goal_end = sent[0].index(b"with tests") + len(b"with tests")
    assert common > goal_end and sent[0][:common].count(b'"tools"') == 1


def _common_prefix(a: bytes, b: bytes) -> bytes:
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return a[:n]
