"""Observation masking: old tool results leave the request (never the log), deterministically."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocactors.actors.masking import (
    DEFAULT_KEEP_TURNS,
    MaskingTable,
    mask_observations,
    masked_turns,
)
from ocactors.actors.models import (
    LimiterRegistry,
    RoleConfig,
    ScriptedModelServer,
    Turn,
    build_client,
)
from ocactors.actors.models.playbook import script_from_log
from ocactors.actors.models.scripted import Script
from ocactors.actors.roles import finish_tool, system_prompt
from ocactors.actors.session import AgentSession, SessionBrief, SessionLimits
from ocactors.events import Journal, create_mission_dir, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import ChatMessage, Event, Record, ToolCall
from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, worker_tools

ACTOR = "worker:T1"
READ = ("read_file", {"path": "data.txt"})
FINISH = ("finish_task", {"summary": "read it all"})
TURNS = 14
MASK_3 = SessionLimits(observation_turns=3)


def conversation(turns: int, size: int = 2000) -> list[ChatMessage]:
    """System, brief, then ``turns`` of (assistant calling read_file, its result)."""
    messages = [ChatMessage(role="system", content="sys"), ChatMessage(role="user", content="go")]
    for n in range(turns):
        call = ToolCall(id=f"c{n}", name="read_file", arguments=json.dumps({"path": f"f{n}.py"}))
        messages.append(ChatMessage(role="assistant", tool_calls=[call]))
        body = f"line {n}\n" * (size // 7)
        messages.append(
            ChatMessage(role="tool", content=body, tool_call_id=f"c{n}", name="read_file")
        )
    return messages


def stubbed(messages: Sequence[ChatMessage]) -> list[int]:
    """Indices of the tool results that went out as stubs."""
    return [i for i, m in enumerate(messages) if m.role == "tool" and "hidden" in m.content]


# --- the pure function ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "keep", "hidden"),
    [
        (0, 6, 0),
        (6, 6, 0),
        (11, 6, 0),
        (12, 6, 6),
        (17, 6, 6),
        (18, 6, 12),
        (60, 6, 54),
        (5, 1, 4),
        (3, 0, 0),
    ],
)
def test_the_line_moves_every_keep_turns(turns: int, keep: int, hidden: int) -> None:
    assert masked_turns(turns, keep) == hidden


def test_older_results_become_stubs_and_the_latest_stay_whole() -> None:
    messages = conversation(13)
    sent = mask_observations(messages, 6)
    tool_indices = [i for i, m in enumerate(messages) if m.role == "tool"]
    assert stubbed(sent) == tool_indices[:6]
    assert sent[2:][1::2][6:] == messages[2:][1::2][6:]  # the last 7 results whole
    assert [m for m in sent if m.role != "tool"] == [m for m in messages if m.role != "tool"]
    assert messages == conversation(13)  # the input is untouched


def test_a_stub_names_the_tool_its_arguments_the_size_and_how_to_get_it_back() -> None:
    sent = mask_observations(conversation(12), 6)
    stub = sent[3].content
    assert stub == (
        '[result hidden to save context: read_file({"path": "f0.py"}) returned 1,995 chars '
        "in 285 lines. Call read_file again with these arguments if you need it.]"
    )
    assert "\n" not in stub and sent[3].tool_call_id == "c0" and sent[3].name == "read_file"


def test_short_results_and_masking_off_send_everything() -> None:
    short = conversation(12, size=300)
    assert mask_observations(short, 6) == short
    assert mask_observations(conversation(30), 0) == conversation(30)


@given(st.integers(min_value=1, max_value=8), st.integers(min_value=0, max_value=40))
def test_between_two_moves_each_request_extends_the_last(keep: int, turns: int) -> None:
    """Same input, same output; and while the line stays, the request only grows at the end."""
    messages = conversation(turns + 1, size=500)
    before = mask_observations(messages[: 2 + 2 * turns], keep)
    after = mask_observations(messages, keep)
    assert before == mask_observations(messages[: 2 + 2 * turns], keep)
    if masked_turns(turns, keep) == masked_turns(turns + 1, keep):
        assert after[: len(before)] == before


# --- in a session: the request is masked, the log is not, resume and rerun agree ---------


@dataclass
class Sent:
    """Raw request bodies by turn, as the HTTP client put them on the wire."""

    bodies: dict[int, bytes]

    def hook(self, request: httpx.Request) -> None:
        self.bodies[int(request.headers["x-ocactors-turn"])] = request.content


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "data.txt").write_text("".join(f"row {n:04d} of the data file\n" for n in range(80)))
    (root / "out.txt").write_text("done\n")
    return root


def run(
    tmp_path: Path,
    workspace: Path,
    script: Script,
    *,
    limits: SessionLimits = MASK_3,
    prior: Sequence[Record] = (),
    context_window: int = 128_000,
) -> tuple[list[Record], Sent]:
    """One worker session against ``script``; its log and the bytes it sent."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = create_mission_dir(tmp_path, "20261125-000000-0001")
    sent = Sent({})
    with (
        ScriptedModelServer(script) as server,
        httpx.Client(timeout=5.0, event_hooks={"request": [sent.hook]}) as http,
        Journal.open(paths.events, mission=paths.id) as log,
    ):
        config = RoleConfig(
            role="worker",
            provider="openai",
            model="scripted",
            base_url=server.base_url,
            context_window=context_window,
        )
        for event in prior:
            log.append(_unstamped(event), actor=event.actor)

        def record(event: Event, actor: str) -> Event:
            return log.append(event, actor=actor).event

        session = AgentSession(
            brief(workspace),
            client=build_client(config, http, LimiterRegistry()),
            toolbox=Toolbox(worker_tools(WebConfig()), ToolContext(Workspace(workspace))),
            record=record,
            mission=paths.id,
            limits=limits,
            prior=prior,
        )
        session.run()
    return list(read_events(paths.events)), sent


def _unstamped(event: Record) -> Event:
    assert isinstance(event, Event)
    return event


def brief(workspace: Path) -> SessionBrief:
    return SessionBrief(
        session=f"{ACTOR}#1",
        actor=ACTOR,
        role="worker",
        system=system_prompt("worker"),
        brief="Read data.txt until you know it, then finish.",
        final=finish_tool(workspace, ["out.txt"]),
        task_id="T1",
    )


def reading(turns: int = TURNS) -> Script:
    return {ACTOR: [*(Turn(tool_calls=[READ]) for _ in range(turns)), Turn(tool_calls=[FINISH])]}


@pytest.fixture
def first(tmp_path: Path, workspace: Path) -> Iterator[tuple[list[Record], Sent]]:
    yield run(tmp_path / "first", workspace, reading())


def test_requests_carry_stubs_while_the_log_keeps_every_byte(
    first: tuple[list[Record], Sent],
) -> None:
    events, sent = first
    returned = [e for e in events if isinstance(e, ev.ToolReturned)]
    assert len(returned) == TURNS and all(len(e.output) > 2000 for e in returned)
    last = json.loads(sent.bodies[TURNS + 1])["messages"]
    tools = [m["content"] for m in last if m["role"] == "tool"]
    assert sum("hidden" in t for t in tools) == 9 and all("row 0079" in t for t in tools[9:])


def test_a_resumed_session_sends_the_same_bytes(
    tmp_path: Path, workspace: Path, first: tuple[list[Record], Sent]
) -> None:
    events, sent = first
    cut = next(i for i, e in enumerate(events) if isinstance(e, ev.ModelRequested) and e.turn == 9)
    _, resumed = run(tmp_path / "resumed", workspace, reading(), prior=events[: cut + 1])
    assert sorted(resumed.bodies) == list(range(9, TURNS + 2))
    assert all(resumed.bodies[turn] == sent.bodies[turn] for turn in resumed.bodies)


def test_a_rerun_from_the_log_sends_the_same_bytes(
    tmp_path: Path, workspace: Path, first: tuple[list[Record], Sent]
) -> None:
    events, sent = first
    _, rerun = run(tmp_path / "rerun", workspace, script_from_log(events))
    assert rerun.bodies == sent.bodies


def test_compaction_is_judged_on_the_masked_request(tmp_path: Path, workspace: Path) -> None:
    """A window the whole conversation overflows but the masked one fits: no compaction."""
    window = 7_000

    def compactions(keep: int) -> int:
        limits = SessionLimits(observation_turns=keep)
        events, _ = run(
            tmp_path / f"k{keep}", workspace, reading(), limits=limits, context_window=window
        )
        return sum(isinstance(e, ev.SessionCompacted) for e in events)

    assert compactions(3) == 0
    assert compactions(0) >= 1


def test_the_masking_table_reads_turns_per_role_and_refuses_nonsense() -> None:
    table = msgspec.convert({"keep_turns": 4, "roles": {"reviewer": 10}}, MaskingTable)
    limits = SessionLimits(
        observation_turns=table.keep_turns, observation_turns_by_role=table.roles
    )
    assert (limits.observation_window("worker"), limits.observation_window("reviewer")) == (4, 10)
    assert SessionLimits().observation_window("worker") == DEFAULT_KEEP_TURNS
    for bad, words in [({"roles": {"critic": 3}}, "critic"), ({"keep_turns": -1}, "0 (off)")]:
        with pytest.raises(msgspec.ValidationError, match=re.escape(words)):
            msgspec.convert(bad, MaskingTable)
