"""Tokens and dollars per mission: masking, stable prefixes, the reviewer's first prompt.

    python tests/benchmarks/bench_economy.py

(a) A scripted 60-turn worker session reading a different 4 KB file each turn, with masking
    off and on (the default, 6 turns): request bytes and prompt tokens over the session
    (target: masked <= 50 % of unmasked), and what it costs on two priced models.
(b) For each request after the first, the share of its bytes that repeat the previous
    request's beginning (the part a provider's prefix cache can serve; target >= 90 %).
(c) The reviewer's first prompt at 50, 200 and 1,000 tasks, beside the brief it replaced
    (target <= 16 KB at 1,000).
(d) The scripted textstats mission (plan, 3 workers, a rejecting review, a fix, approval) on a
    model the price table knows: prompt tokens and dollars before (masking off, no cache)
    and after (masking on, and the prompt cache a provider would give these bytes).

"Prompt tokens" are what the scripted model reports (message characters / 4 + 4 per message;
the tool schemas not counted).  Dollars are priced by genai-prices on the whole request body
at 4 bytes per token (tools included), 30 completion tokens per turn.  The prompt cache is
simulated as OpenAI documents its automatic one: the longest beginning a request shares with
an earlier request of the mission, if >= 1,024 tokens, in steps of 128, is read from the
cache and priced as cached.

Two prefix figures per request after the first: "new bytes cached" is the share of the
request that repeats the previous request's beginning (what a cache can serve; the turn's new
tool result never can), "previous kept" the share of the previous request that the new one
still begins with (100 % means the prefix was byte-stable: only appended to).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ocactors.actors.context import MissionContext  # noqa: E402
from ocactors.actors.models import (  # noqa: E402
    LimiterRegistry,
    ModelClient,
    RoleConfig,
    ScriptedModelServer,
    Turn,
    build_client,
)
from ocactors.actors.prices import PriceBook, usd  # noqa: E402
from ocactors.actors.roles import finish_tool, reviewer_brief, system_prompt  # noqa: E402
from ocactors.actors.session import AgentSession, SessionBrief, SessionLimits  # noqa: E402
from ocactors.actors.state import MissionState, TaskState  # noqa: E402
from ocactors.events import Journal, MissionPaths, create_mission_dir, read_events  # noqa: E402
from ocactors.events import catalogue as ev  # noqa: E402
from ocactors.events.catalogue import MissionSettings, TaskSpec, Usage  # noqa: E402
from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, worker_tools  # noqa: E402
from tests._mission_helpers import CHECK, MissionHarness, textstats_playbook  # noqa: E402

TURNS = 60
FILE_BYTES = 4096
MODELS = ("gpt-4.1-mini", "deepseek-chat", "claude-sonnet-4-5")
# Prompt caches as documented: OpenAI from 1,024 tokens in steps of 128 and DeepSeek in 64-token
# units, both automatic (so also before this change); Anthropic from 1,024 tokens, only up to a
# cache_control breakpoint (none before this change), the rest of the request written to it
# (reads approximated as the longest beginning shared with an earlier request, TTL ignored).
CACHE_RULES = {
    "gpt-4.1-mini": (1024, 128),
    "deepseek-chat": (64, 64),
    "claude-sonnet-4-5": (1024, 1),
}
AUTOMATIC = frozenset({"gpt-4.1-mini", "deepseek-chat"})


@dataclass
class Request:
    """One request as sent and what the model said it used."""

    body: bytes
    prompt_tokens: int

    @property
    def tokens(self) -> int:
        """The whole body at 4 bytes per token: what the pricing uses."""
        return len(self.body) // 4


class Capture:
    """Raw request bodies by (session, turn), from the HTTP client's request hook."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, int], bytes] = {}

    def hook(self, request: httpx.Request) -> None:
        key = (request.headers["x-ocactors-session"], int(request.headers["x-ocactors-turn"]))
        self.bodies[key] = request.content


def requests_of(events: list[ev.Record], capture: Capture) -> list[Request]:
    """Requests in the order the log answered them, with their reported prompt tokens."""
    return [
        Request(capture.bodies[(e.session, e.turn)], e.usage.prompt_tokens)
        for e in events
        if isinstance(e, ev.ModelResponded)
    ]


# --- (a) and (b): one long worker session ----------------------------------------------------


def worker_session(keep: int) -> list[Request]:
    root = Path(tempfile.mkdtemp(prefix="bench-economy-"))
    workspace = root / "ws"
    workspace.mkdir()
    for n in range(TURNS):
        line = f"def function_{n}(value):  # line %04d of module {n}\n"
        text = "".join(line % i for i in range(FILE_BYTES // len(line % 0) + 1))
        (workspace / f"m{n}.py").write_text(text[:FILE_BYTES])
    (workspace / "out.txt").write_text("done\n")
    reads = [Turn(tool_calls=[("read_file", {"path": f"m{n}.py"})]) for n in range(TURNS - 1)]
    script = {"*": [*reads, Turn(tool_calls=[("finish_task", {"summary": "read"})])]}
    paths = create_mission_dir(root, "20260101-000000-econ")
    capture = Capture()
    brief = SessionBrief(
        session="worker:T1#1",
        actor="worker:T1",
        role="worker",
        system=system_prompt("worker"),
        brief="Read every module m0.py .. m58.py, then finish.",
        final=finish_tool(workspace, ["out.txt"]),
        task_id="T1",
    )
    with (
        ScriptedModelServer(script) as server,
        httpx.Client(timeout=10.0, event_hooks={"request": [capture.hook]}) as http,
        Journal.open(paths.events, mission=paths.id) as journal,
    ):
        config = RoleConfig(role="worker", provider="openai", model="m", base_url=server.base_url)
        AgentSession(
            brief,
            client=build_client(config, http, LimiterRegistry()),
            toolbox=Toolbox(worker_tools(WebConfig()), ToolContext(Workspace(workspace))),
            record=lambda event, actor: journal.append(event, actor=actor).event,
            mission=paths.id,
            limits=SessionLimits(max_turns=TURNS + 5, observation_turns=keep),
        ).run()
    return requests_of(list(read_events(paths.events)), capture)


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common beginning (binary search on slices: fast in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def prefix_shares(requests: list[Request]) -> list[tuple[float, float]]:
    """For each request after the first: (share of it repeating the previous request's
    beginning, share of the previous request it still begins with)."""
    shares = []
    for before, after in itertools.pairwise(requests):
        common = common_prefix(before.body, after.body)
        kept = min(common + 2, len(before.body))  # the closing "]}" is all that changes
        shares.append((common / len(after.body), kept / len(before.body)))
    return shares


def cached_tokens(requests: list[Request], model: str) -> list[int]:
    """Simulated provider prefix cache: per request, the tokens of the longest beginning it
    shares with an earlier request, by ``model``'s provider's rule (CACHE_RULES)."""
    least, step = CACHE_RULES[model]
    cached = []
    for index, request in enumerate(requests):
        shared = max((common_prefix(r.body, request.body) for r in requests[:index]), default=0)
        tokens = shared // 4
        cached.append(tokens // step * step if tokens >= least else 0)
    return cached


def dollars(requests: list[Request], model: str, cache: bool) -> float:
    """The requests' price on ``model``; with ``cache``, its provider's prompt cache."""
    book = PriceBook()
    cached = cached_tokens(requests, model) if cache else [0] * len(requests)
    least = CACHE_RULES[model][0]
    writes = cache and model not in AUTOMATIC  # a prompt under the minimum is not written
    total = 0.0
    for request, hit in zip(requests, cached, strict=True):
        written = request.tokens - hit if writes and request.tokens >= least else 0
        usage = Usage(
            prompt_tokens=request.tokens,
            completion_tokens=30,
            cached_tokens=hit,
            cache_write_tokens=written,
        )
        total += book.cost(model, usage) or 0.0
    return total


def before_after(before: list[Request], after: list[Request]) -> None:
    """Dollars per model: before (no masking, only the automatic caches), after (masking,
    every cache including Anthropic's breakpoints), and with no cache at all."""
    print("| model | no cache, masking off | before | after | after / before |")
    print("|---|---|---|---|---|")
    for model in MODELS:
        raw = dollars(before, model, False)
        old = dollars(before, model, model in AUTOMATIC)
        new = dollars(after, model, True)
        print(f"| {model} | {usd(raw)} | {usd(old)} | {usd(new)} | {new / old:.0%} |")


def report_session() -> None:
    off, on = worker_session(0), worker_session(6)
    print(f"(a) {TURNS}-turn worker session, one different {FILE_BYTES} B file read per turn")
    print("| masking | request bytes | prompt tokens | largest request | vs off |")
    print("|---|---|---|---|---|")
    base_bytes = sum(len(r.body) for r in off)
    for name, run in (("off", off), ("on (6 turns)", on)):
        sent = sum(len(r.body) for r in run)
        tokens = sum(r.prompt_tokens for r in run)
        largest = max(len(r.body) for r in run)
        print(f"| {name} | {sent:,} | {tokens:,} | {largest:,} | {sent / base_bytes:.0%} |")
    print()
    print("(b) each request against the previous one (59 pairs)")
    print("| masking | new bytes cached: median | min | >= 90 % | previous kept: 100 % | min |")
    print("|---|---|---|---|---|---|")
    for name, run in (("off", off), ("on (6 turns)", on)):
        cached, kept = zip(*prefix_shares(run), strict=True)
        print(
            f"| {name} | {statistics.median(cached):.1%} | {min(cached):.1%} | "
            f"{sum(c >= 0.9 for c in cached)}/{len(cached)} | "
            f"{sum(k >= 1.0 for k in kept)}/{len(kept)} | {min(kept):.1%} |"
        )
    print()
    print("(a') the same session in dollars")
    before_after(off, on)
    print()


# --- (c) the reviewer's first prompt ------------------------------------------------------


def mission_of(count: int) -> MissionState:
    tasks = {}
    for n in range(count):
        spec = TaskSpec(
            id=f"T{n}", title=f"write module {n}", files=[f"calc/m{n}.py", f"tests/test_m{n}.py"]
        )
        summary = f"added function_{n} with input checks and its tests"
        tasks[spec.id] = TaskState(spec=spec, iteration=1, status="done", summary=summary)
    return MissionState(goal="Build calc: a command line calculator with tests", tasks=tasks)


def old_reviewer_brief(state: MissionState, check: str) -> str:
    """The brief this change replaced: every task in full."""
    lines = [
        f"- {t.spec.id} [{', '.join(t.spec.files)}] {t.spec.title}"
        + (f": {t.summary}" if t.summary else f" ({t.status})")
        for t in state.tasks.values()
    ]
    tasks = "Tasks and what their developers say they built:\n" + "\n".join(lines)
    return "\n\n".join([f"Goal: {state.goal}", tasks, f"The project's checks: `{check}`"])


def report_reviewer() -> None:
    print("(c) the reviewer's first prompt (brief bytes; diff stat of one line per file)")
    print("| tasks | before | after | tasks listed after |")
    print("|---|---|---|---|")
    for count in (50, 200, 1000):
        state = mission_of(count)
        stat = "\n".join(f" calc/m{n}.py | 40 ++++" for n in range(count))
        after = reviewer_brief(state, "r", "pytest -q", diff_stat=stat).brief
        listed = sum(line.startswith("- T") for line in after.splitlines())
        before = old_reviewer_brief(state, "pytest -q")
        print(f"| {count} | {len(before.encode()):,} | {len(after.encode()):,} | {listed} |")
    print()


# --- (d) the textstats mission ----------------------------------------------------------------


class PricedHarness(MissionHarness):
    """The textstats mission on gpt-4.1-mini (priced by the table), bodies captured."""

    keep: int = 6
    capture: Capture

    def clients(self, http: httpx.Client) -> dict[str, ModelClient]:
        http.event_hooks = {"request": [self.capture.hook]}
        registry = LimiterRegistry()
        return {
            role: build_client(
                RoleConfig(
                    role=role, provider="openai", model=MODELS[0], base_url=self.server.base_url
                ),
                http,
                registry,
            )
            for role in ("planner", "worker", "reviewer")
        }

    def context(self, journal: Journal, paths: MissionPaths, http: httpx.Client) -> MissionContext:
        ctx = super().context(journal, paths, http)
        ctx.limits = SessionLimits(observation_turns=self.keep)
        return ctx


def textstats(keep: int) -> list[Request]:
    workspace = Path(tempfile.mkdtemp(prefix="bench-textstats-"))
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = PricedHarness(workspace, server, MissionSettings(verify_command=CHECK))
        harness.capture, harness.keep = Capture(), keep
        assert harness.start().phase == "sealed"
    assert harness.paths is not None
    return requests_of(list(read_events(harness.paths.events)), harness.capture)


def report_mission() -> None:
    before, after = textstats(0), textstats(6)
    print("(d) the scripted textstats mission (4 tasks, 2 iterations)")
    print("| run | requests | prompt tokens | request tokens | DeepSeek cache (simulated) |")
    print("|---|---|---|---|---|")
    for name, run in (("before", before), ("after", after)):
        tokens = sum(r.prompt_tokens for r in run)
        whole = sum(r.tokens for r in run)
        hits = sum(cached_tokens(run, "deepseek-chat"))
        print(f"| {name} | {len(run)} | {tokens:,} | {whole:,} | {hits:,} |")
    print()
    before_after(before, after)
    print()


def main() -> None:
    report_session()
    report_reviewer()
    report_mission()


if __name__ == "__main__":
    main()
