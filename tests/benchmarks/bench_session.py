"""Session overhead per model turn, and 50 concurrent sessions against a slow model.

    python tests/benchmarks/bench_session.py

(a) A zero-latency scripted model; each turn is one read_file call.  What ocactors adds per
    turn = wall time per turn - the model request's own time (``latency_ms``, which includes
    HTTP and the client's parsing).  Baseline in the same run: the same request posted with
    plain httpx, no session, no journal.
(b) 50 sessions of 4 turns each against a model answering in 200 ms, run at once, beside one
    session alone: the ratio of wall times (ideal 1.0).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ocactors.actors.models import (
    LimiterRegistry,
    RoleConfig,
    build_client,
)
from ocactors.actors.roles import finish_tool, system_prompt
from ocactors.actors.session import AgentSession, SessionBrief, SessionLimits
from ocactors.events import Journal, create_mission_dir, read_events
from ocactors.events import catalogue as ev
from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, worker_tools

READ = ("read_file", {"path": "out.txt"})
TURNS = 60
FINISH = ("finish_task", {"summary": "done"})


def session(
    root: Path,
    server_url: str,
    http: httpx.Client,
    journal: Journal,
    actor: str,
    registry: LimiterRegistry,
) -> AgentSession:
    client = build_client(
        RoleConfig(
            role="worker", provider="openai", model="m", base_url=server_url, max_concurrency=64
        ),
        http,
        registry,
    )
    ctx = ToolContext(Workspace(root, writable=["out.txt"]))
    brief = SessionBrief(
        session=f"{actor}#1",
        actor=actor,
        role="worker",
        system=system_prompt("worker"),
        brief="read out.txt, then finish",
        final=finish_tool(root, ["out.txt"]),
        task_id=actor,
    )
    return AgentSession(
        brief,
        client=client,
        toolbox=Toolbox(worker_tools(WebConfig()), ctx),
        record=lambda event, who: journal.append(event, actor=who).event,
        mission="bench",
        limits=SessionLimits(max_turns=1000),
    )


SERVER = """
import sys, time
from ocactors.actors.models import ScriptedModelServer, load_script
with ScriptedModelServer(load_script(sys.argv[1]), latency_s=float(sys.argv[2])) as server:
    print(server.base_url, flush=True)
    sys.stdin.readline()
"""


def model_process(root: Path, turns: int, latency: float = 0.0) -> subprocess.Popen[str]:
    """The scripted model in its own process, so it does not compete with ocactors' GIL."""
    calls = [{"tool_calls": [{"name": READ[0], "arguments": READ[1]}]}] * (turns - 1)
    calls.append({"tool_calls": [{"name": FINISH[0], "arguments": FINISH[1]}]})
    script = root / "script.json"
    script.write_text(json.dumps({"*": calls}))
    return subprocess.Popen(
        [sys.executable, "-c", SERVER, str(script), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def overhead(turns: int, durability: str) -> tuple[float, float, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-session-"))
    (root / "out.txt").write_text("hello\n")
    paths = create_mission_dir(root, f"20260101-000000-{durability}")
    with (
        model_process(root, turns) as model,
        httpx.Client() as http,
        Journal.open(
            paths.events,
            mission="m",
            durability=durability,  # type: ignore[arg-type]
        ) as journal,
    ):
        assert model.stdout is not None and model.stdin is not None
        url = model.stdout.readline().strip()
        run = session(root, url, http, journal, "worker:B", LimiterRegistry())
        started = time.perf_counter()
        run.run()
        wall = (time.perf_counter() - started) * 1000 / turns
        journal.flush()
        raw = []
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(50):
            t = time.perf_counter()
            http.post(
                f"{url}/chat/completions",
                json=body,
                headers={"X-Ocactors-Actor": "worker:B", "X-Ocactors-Turn": "1"},
            )
            raw.append((time.perf_counter() - t) * 1000)
        model.stdin.write("\n")
        model.stdin.close()
    latencies = [
        e.latency_ms for e in read_events(paths.events) if isinstance(e, ev.ModelResponded)
    ]
    return wall, statistics.median(latencies), statistics.median(raw)


def concurrent(sessions: int, turns: int, latency: float) -> float:
    root = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    (root / "out.txt").write_text("hello\n")
    paths = create_mission_dir(root, f"20260101-000000-{sessions}")
    registry = LimiterRegistry()
    with (
        model_process(root, turns, latency) as model,
        httpx.Client(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=60)
        ) as http,
        Journal.open(paths.events, mission="m") as journal,
    ):
        assert model.stdout is not None and model.stdin is not None
        url = model.stdout.readline().strip()
        runs = [
            session(root, url, http, journal, f"worker:S{i}", registry) for i in range(sessions)
        ]
        threads = [threading.Thread(target=r.run) for r in runs]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        model.stdin.write("\n")
        model.stdin.close()
        return elapsed


def bare_fanout(sessions: int, turns: int, latency: float) -> float:
    """Baseline: the same fan-out of streamed requests with plain httpx, no ocactors."""
    root = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    from ocactors.actors.models.openai_client import request_body
    from ocactors.events.catalogue import ChatMessage

    tools = [spec.schema() for spec in worker_tools(WebConfig())]
    messages = [
        ChatMessage(role="system", content=system_prompt("worker")),
        ChatMessage(role="user", content="read out.txt, then finish"),
    ]
    body = request_body("m", messages, tools, stream=True)
    with (
        model_process(root, turns, latency) as model,
        httpx.Client(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=60)
        ) as http,
    ):
        assert model.stdout is not None and model.stdin is not None
        url = model.stdout.readline().strip()

        def one(i: int) -> None:
            for turn in range(1, turns + 1):
                headers = {"X-Ocactors-Actor": f"worker:S{i}", "X-Ocactors-Turn": str(turn)}
                with http.stream(
                    "POST", f"{url}/chat/completions", json=body, headers=headers
                ) as r:
                    for _ in r.iter_lines():
                        pass

        threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        model.stdin.write("\n")
        model.stdin.close()
        return elapsed


def main() -> None:
    print(f"(a) per-turn cost with a zero-latency model (own process), {TURNS}-turn session")
    print(
        "| durability | wall per turn ms | model request ms | ocactors adds ms | bare request ms |"
    )
    print("|---|---|---|---|---|")
    for durability in ("batch", "always", "never"):
        wall, model, raw = overhead(TURNS, durability)
        print(f"| {durability} | {wall:.2f} | {model:.2f} | {wall - model:.2f} | {raw:.2f} |")
    single = concurrent(1, 4, 0.2)
    fifty = concurrent(50, 4, 0.2)
    bare_single = bare_fanout(1, 4, 0.2)
    bare_fifty = bare_fanout(50, 4, 0.2)
    print("\n(b) 4-turn sessions against a model with 200 ms latency per turn")
    print("| sessions | wall s | ratio to one session |")
    print("|---|---|---|")
    print(f"| 1 | {single:.2f} | 1.00 |")
    print(f"| 50 at once | {fifty:.2f} | {fifty / single:.2f} |")
    print(f"| baseline: plain httpx, 1 | {bare_single:.2f} | 1.00 |")
    print(
        f"| baseline: plain httpx, 50 at once | {bare_fifty:.2f} | {bare_fifty / bare_single:.2f} |"
    )


if __name__ == "__main__":
    main()
