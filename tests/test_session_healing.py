"""One agent session against the scripted model over loopback: every healing path, recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from ocactors.actors.models import (
    Fault,
    LimiterRegistry,
    RoleConfig,
    ScriptedModelServer,
    Turn,
    build_client,
)
from ocactors.actors.roles import finish_tool, plan_tool, system_prompt
from ocactors.actors.session import (
    AgentSession,
    FinalTool,
    Recorder,
    SessionBrief,
    SessionInterrupted,
    SessionLimits,
    SessionOutcome,
)
from ocactors.events import Journal, Redactor, create_mission_dir, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, Record
from ocactors.tools import Toolbox, ToolContext, ToolSpec, WebConfig, Workspace, worker_tools

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz"
DEFAULT_LIMITS = SessionLimits()
WRITE = ("write_file", {"path": "out.txt", "content": "done\n"})
FINISH = ("finish_task", {"summary": "wrote out.txt"})


@dataclass
class Run:
    """A finished session: its outcome, its recorded events, the requests the model saw."""

    outcome: SessionOutcome
    events: list[Record]
    server: ScriptedModelServer
    workspace: Path

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def run_session(
    tmp_path: Path,
    http: httpx.Client,
    turns: Sequence[Turn],
    *,
    base_url: str | None = None,
    role: str = "worker",
    final: FinalTool | None = None,
    limits: SessionLimits = DEFAULT_LIMITS,
    extra_tools: Sequence[ToolSpec] = (),
    record_wrap: Callable[[Recorder], Recorder] | None = None,
    prior: Sequence[Record] = (),
    provider: str = "openai",
    **config: Any,
) -> Run:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    paths = create_mission_dir(tmp_path, f"20261125-000000-{len(list(tmp_path.iterdir())):04d}")
    actor = "worker:T1" if role == "worker" else role
    with ScriptedModelServer({actor: list(turns)}) as server:
        options = {"timeout_s": 5.0, **config}
        client = build_client(
            RoleConfig(
                role=role,
                provider=provider,  # type: ignore[arg-type]
                model="scripted",
                base_url=base_url or server.base_url,
                api_key=KEY,
                **options,
            ),
            http,
            LimiterRegistry(),
        )
        ctx = ToolContext(Workspace(workspace, writable=["out.txt"]))
        toolbox = Toolbox([*worker_tools(WebConfig()), *extra_tools], ctx)
        brief = SessionBrief(
            session=f"{actor}#1",
            actor=actor,
            role=role,
            system=system_prompt("worker"),
            brief="Write out.txt saying done.",
            final=final or finish_tool(workspace, ["out.txt"]),
            task_id="T1" if role == "worker" else None,
        )
        with Journal.open(paths.events, mission=paths.id, redactor=Redactor(secrets=[KEY])) as log:

            def record(event: Event, actor: str) -> Event:
                return log.append(event, actor=actor).event

            session = AgentSession(
                brief,
                client=client,
                toolbox=toolbox,
                record=record_wrap(record) if record_wrap else record,
                mission=paths.id,
                limits=limits,
                prior=prior,
            )
            try:
                outcome = session.run()
            except SessionInterrupted:
                outcome = SessionOutcome(None, "interrupted", session.state)
        return Run(outcome, list(read_events(paths.events)), server, workspace)


def test_a_clean_session_writes_and_finishes(tmp_path: Path, http: httpx.Client) -> None:
    run = run_session(tmp_path, http, [Turn(tool_calls=[WRITE]), Turn(tool_calls=[FINISH])])
    assert run.outcome.result == {"summary": "wrote out.txt"}
    assert (run.workspace / "out.txt").read_text() == "done\n"
    kinds = [type(e).__name__ for e in run.events]
    assert kinds == [
        "SessionStarted",
        "ModelRequested",
        "ModelResponded",
        "ToolCalled",
        "ToolReturned",
        "ModelRequested",
        "ModelResponded",
        "ToolCalled",
        "SessionFinished",
    ]
    usage = run.of(ev.ModelResponded)[0].usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_every_request_carries_the_attribution_headers(tmp_path: Path, http: httpx.Client) -> None:
    run = run_session(tmp_path, http, [Turn(tool_calls=[WRITE]), Turn(tool_calls=[FINISH])])
    for turn, request in enumerate(run.server.requests, start=1):
        assert request.headers["x-ocactors-actor"] == "worker:T1"
        assert request.headers["x-ocactors-task"] == "T1"
        assert request.headers["x-ocactors-turn"] == str(turn)
        assert request.headers["x-ocactors-mission"].startswith("20261125-")


def test_429_with_retry_after_is_retried_and_recorded(tmp_path: Path, http: httpx.Client) -> None:
    first = Turn(tool_calls=[WRITE], fault=Fault("429", times=1, retry_after=0.2))
    run = run_session(tmp_path, http, [first, Turn(tool_calls=[FINISH])])
    assert run.outcome.result is not None
    (retried,) = run.of(ev.ModelRetried)
    assert retried.status == 429 and retried.delay_s == pytest.approx(0.2, abs=0.05)


@pytest.mark.parametrize(
    ("fault", "config"),
    [(Fault("500", times=2), {}), (Fault("stall", times=1, stall_s=1.5), {"timeout_s": 0.4})],
)
def test_server_errors_and_stalls_are_retried(
    tmp_path: Path, http: httpx.Client, fault: Fault, config: dict[str, Any]
) -> None:
    run = run_session(
        tmp_path, http, [Turn(tool_calls=[WRITE], fault=fault), Turn(tool_calls=[FINISH])], **config
    )
    assert run.outcome.result is not None
    assert len(run.of(ev.ModelRetried)) == fault.times


def test_an_unreachable_model_fails_after_three_attempts(
    tmp_path: Path, http: httpx.Client
) -> None:
    run = run_session(tmp_path, http, [], base_url="http://127.0.0.1:9/v1")
    assert run.outcome.result is None
    assert len(run.of(ev.ModelRetried)) == 2  # 3 attempts in all
    (failed,) = run.of(ev.SessionFailed)
    assert "model request failed" in failed.reason and run.of(ev.ModelFailed)


def read(path: str = "big.txt") -> tuple[str, dict[str, Any]]:
    return ("read_file", {"path": path})


def test_a_context_length_error_compacts_and_retries(tmp_path: Path, http: httpx.Client) -> None:
    turns = [Turn(tool_calls=[read("out.txt")])] * 4
    turns += [Turn(tool_calls=[WRITE], fault=Fault("context_length")), Turn(tool_calls=[FINISH])]
    run = run_session(tmp_path, http, turns, limits=SessionLimits(keep_recent=2))
    assert run.outcome.result is not None
    (compacted,) = run.of(ev.SessionCompacted)
    assert compacted.dropped > 0 and "read_file" in compacted.summary
    kept = compacted.kept
    assert kept[0].role == "system" and kept[1].content == "Write out.txt saying done."
    assert "Earlier turns were removed" in kept[2].content


def test_a_prompt_over_the_window_is_compacted_before_sending(
    tmp_path: Path, http: httpx.Client
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "big.txt").write_text("word " * 400)
    turns = [Turn(tool_calls=[read()])] * 4 + [Turn(tool_calls=[WRITE]), Turn(tool_calls=[FINISH])]
    run = run_session(
        tmp_path, http, turns, context_window=1400, limits=SessionLimits(keep_recent=2)
    )
    assert run.outcome.result is not None
    assert run.of(ev.SessionCompacted)
    assert not [r for r in run.server.requests if r.status != 200]  # never sent too much


def test_compaction_is_bounded(tmp_path: Path, http: httpx.Client) -> None:
    turns = [Turn(tool_calls=[WRITE], fault=Fault("context_length", times=99))]
    run = run_session(tmp_path, http, turns)
    (failed,) = run.of(ev.SessionFailed)
    assert "context window" in failed.reason
    assert "context_window" in failed.reason  # the provider's words and the setting to change


def test_malformed_calls_are_answered_as_tool_errors(tmp_path: Path, http: httpx.Client) -> None:
    turns = [
        Turn(tool_calls=[WRITE], fault=Fault("malformed")),
        Turn(tool_calls=[("teleport", {"to": "mars"})]),
        Turn(tool_calls=[("write_file", {"path": 3, "content": "x"})]),
        Turn(tool_calls=[WRITE]),
        Turn(tool_calls=[FINISH]),
    ]
    run = run_session(tmp_path, http, turns)
    assert run.outcome.result is not None
    errors = [r.output for r in run.of(ev.ToolReturned) if r.is_error]
    assert "not valid JSON" in errors[0]
    assert "unknown tool 'teleport'" in errors[1]
    assert "`$.path`" in errors[2]


def test_bad_calls_in_a_row_end_the_session(tmp_path: Path, http: httpx.Client) -> None:
    run = run_session(tmp_path, http, [Turn(tool_calls=[("nope", {})])] * 10)
    (failed,) = run.of(ev.SessionFailed)
    assert "8 failed tool calls in a row" in failed.reason


def test_a_raising_tool_is_an_error_result_not_a_crash(tmp_path: Path, http: httpx.Client) -> None:
    class NoArgs(msgspec.Struct):
        pass

    def explode(ctx: ToolContext, args: NoArgs) -> str:
        raise RuntimeError("disk on fire")

    spec = ToolSpec("explode", "always fails", NoArgs, explode)
    turns = [
        Turn(tool_calls=[("explode", {})]),
        Turn(tool_calls=[WRITE]),
        Turn(tool_calls=[FINISH]),
    ]
    run = run_session(tmp_path, http, turns, extra_tools=[spec])
    assert run.outcome.result is not None
    assert "RuntimeError: disk on fire" in run.of(ev.ToolReturned)[0].output


def test_plain_text_gets_a_bounded_number_of_nudges(tmp_path: Path, http: httpx.Client) -> None:
    chatty = [Turn(content="Sure, I will do that.")]
    run = run_session(
        tmp_path, http, [*chatty, Turn(tool_calls=[WRITE]), Turn(tool_calls=[FINISH])]
    )
    assert run.outcome.result is not None and len(run.of(ev.SessionNudged)) == 1
    (tmp_path / "b").mkdir()
    stubborn = run_session(tmp_path / "b", http, chatty * 10)
    assert len(stubborn.of(ev.SessionNudged)) == 3
    assert "plain text" in stubborn.of(ev.SessionFailed)[0].reason


def test_reasoning_is_recorded_and_sent_back_under_its_field(
    tmp_path: Path, http: httpx.Client
) -> None:
    """DeepSeek's thinking mode answers 400 unless reasoning_content comes back (issue 14)."""
    turns = [Turn(tool_calls=[WRITE], reasoning="let me think"), Turn(tool_calls=[FINISH])]
    run = run_session(tmp_path, http, turns)
    assert run.of(ev.ModelResponded)[0].message.reasoning == "let me think"
    second = run.server.requests[1].body
    assert second["messages"][2]["reasoning_content"] == "let me think"


def test_an_invalid_plan_goes_back_to_the_model(tmp_path: Path, http: httpx.Client) -> None:
    cycle = [
        {"id": "A", "title": "a", "files": ["a.py"], "depends_on": ["B"]},
        {"id": "B", "title": "b", "files": ["b.py"], "depends_on": ["A"]},
    ]
    good = [{"id": "A", "title": "a", "files": ["a.py"]}]
    turns = [
        Turn(tool_calls=[("submit_plan", {"tasks": cycle})]),
        Turn(tool_calls=[("submit_plan", {"tasks": good})]),
    ]
    run = run_session(tmp_path, http, turns, role="planner", final=plan_tool([]))
    assert "cycle" in run.of(ev.ToolReturned)[0].output
    assert run.outcome.result is not None and run.outcome.result["tasks"][0]["id"] == "A"


def test_a_session_resumes_from_its_recorded_turns(tmp_path: Path, http: httpx.Client) -> None:
    turns = [
        Turn(tool_calls=[read("out.txt")]),
        Turn(tool_calls=[WRITE]),
        Turn(tool_calls=[FINISH]),
    ]
    seen = [0]

    def interrupt_at_ninth(record: Recorder) -> Recorder:
        def wrapped(event: Event, actor: str) -> Event:
            seen[0] += 1
            if seen[0] == 9:  # the write ran, but its result was never recorded
                raise SessionInterrupted("stopped")
            return record(event, actor)

        return wrapped

    first = run_session(tmp_path, http, turns, record_wrap=interrupt_at_ninth)
    assert first.outcome.failure == "interrupted"
    resumed = run_session(tmp_path, http, turns, prior=first.events)
    assert resumed.outcome.result == {"summary": "wrote out.txt"}
    turns_asked = Counter(r.turn for r in resumed.server.requests)
    assert turns_asked == Counter({3: 1})  # only the turn never answered was asked
    assert [e.turn for e in resumed.of(ev.ModelRequested)] == [3]


def test_the_anthropic_protocol_runs_a_whole_session(tmp_path: Path, http: httpx.Client) -> None:
    run = run_session(
        tmp_path,
        http,
        [Turn(tool_calls=[WRITE], reasoning="plan"), Turn(tool_calls=[FINISH])],
        provider="anthropic",
    )
    assert run.outcome.result == {"summary": "wrote out.txt"}
    assert all(r.path.endswith("/messages") for r in run.server.requests)


def test_the_api_key_never_reaches_the_log(tmp_path: Path, http: httpx.Client) -> None:
    turns = [Turn(content=f"my key is {KEY}", tool_calls=[WRITE]), Turn(tool_calls=[FINISH])]
    run = run_session(tmp_path, http, turns)
    assert run.outcome.result is not None
    for path in tmp_path.rglob("*.jsonl"):
        assert KEY not in path.read_text()
