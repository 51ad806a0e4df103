"""Dollars: the price table's figures per turn, [prices] overrides, sums, and --max-cost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from genai_prices import Usage as TableUsage
from genai_prices import calc_price

from ocactors.actors.context import Meter
from ocactors.actors.models import (
    LimiterRegistry,
    ModelClient,
    Price,
    RoleConfig,
    ScriptedModelServer,
    build_client,
    resolve_models,
)
from ocactors.actors.prices import (
    PriceBook,
    cost_text,
    describe_cost_cap,
    mission_cost,
    role_costs,
    tokens_by_role,
    usd,
)
from ocactors.actors.state import fold_mission
from ocactors.events import catalogue as ev
from ocactors.events import read_events
from ocactors.events.catalogue import ChatMessage, MissionSettings, Usage
from tests._mission_helpers import CHECK, MissionHarness, textstats_playbook

MILLION = 1_000_000


@pytest.mark.parametrize(
    ("model", "usage", "by_hand"),
    [
        # gpt-4.1-mini: $0.40 input, $0.10 cached input, $1.60 output per million
        ("gpt-4.1-mini", Usage(prompt_tokens=MILLION, completion_tokens=MILLION), 2.00),
        (
            "gpt-4.1-mini",
            Usage(prompt_tokens=MILLION, completion_tokens=MILLION, cached_tokens=MILLION // 2),
            1.85,
        ),
        # claude-sonnet-4-5: $3 input, $3.75 cache write, $0.30 cache read, $15 output
        (
            "claude-sonnet-4-5",
            Usage(
                prompt_tokens=100_000,
                completion_tokens=10_000,
                cached_tokens=60_000,
                cache_write_tokens=20_000,
            ),
            0.06 + 0.075 + 0.018 + 0.15,
        ),
    ],
)
def test_a_turn_costs_what_the_price_table_says(model: str, usage: Usage, by_hand: float) -> None:
    table = calc_price(
        TableUsage(
            input_tokens=usage.prompt_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.completion_tokens,
        ),
        model_ref=model,
    )
    cost = PriceBook().cost(model, usage)
    assert cost == pytest.approx(float(table.total_price), abs=1e-9)
    assert cost == pytest.approx(by_hand, abs=1e-9)
    assert PriceBook().priced(model, usage).cost_usd == cost


def test_overrides_win_and_price_cached_tokens_as_cached() -> None:
    price = Price(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.25)
    book = PriceBook(overrides={"gpt-4.1-mini": price, "local": Price()})
    usage = Usage(prompt_tokens=MILLION, completion_tokens=MILLION, cached_tokens=400_000)
    assert book.cost("gpt-4.1-mini", usage) == pytest.approx(0.6 + 0.1 + 2.0)
    assert book.cost("local", usage) == 0.0 and book.knows("local")
    assert "[prices]" in book.source("gpt-4.1-mini")
    assert PriceBook().source("gpt-4.1-mini").startswith("genai-prices ")


def test_an_unknown_model_has_no_price_not_a_free_one() -> None:
    book = PriceBook()
    assert book.cost("qwen2.5-coder:7b", Usage(prompt_tokens=10)) is None
    assert not book.knows("scripted") and book.source("scripted") == "no price known"
    assert PriceBook(catalogue=False).cost("gpt-4.1-mini", Usage(prompt_tokens=10)) is None


def test_a_provider_url_the_table_does_not_know_falls_back_to_the_model_name() -> None:
    usage = Usage(prompt_tokens=MILLION)
    local = PriceBook(endpoints={"deepseek-chat": "http://127.0.0.1:9/v1"})
    hosted = PriceBook(endpoints={"deepseek-chat": "https://api.deepseek.com/v1"})
    assert local.cost("deepseek-chat", usage) == hosted.cost("deepseek-chat", usage) is not None
    assert PriceBook().cost("openai/gpt-4.1-mini", usage) == pytest.approx(0.4)


def test_prices_in_the_config_file_carry_cache_rates(tmp_path: Path) -> None:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(
        '[models]\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "[prices.m]\ninput_per_mtok = 2.0\noutput_per_mtok = 8.0\n"
        "cached_input_per_mtok = 0.5\ncache_write_per_mtok = 2.5\n"
    )
    config = resolve_models(tmp_path, env={})
    usage = Usage(prompt_tokens=4, completion_tokens=1, cached_tokens=2, cache_write_tokens=1)
    expected = (1 * 2.0 + 2 * 0.5 + 1 * 2.5 + 1 * 8.0) / MILLION
    book = PriceBook.from_config(config)
    assert book.cost("m", usage) == pytest.approx(expected)
    assert book.endpoints == {"m": "http://127.0.0.1:9/v1"}


# --- sums: the meter, the fold, the words -------------------------------------------------


def responded(session: str, actor: str, usage: Usage, seq: int) -> ev.ModelResponded:
    message = ChatMessage(role="assistant", content="ok")
    return ev.ModelResponded(
        session=session, turn=1, message=message, usage=usage, seq=seq, actor=actor
    )


def started(session: str, actor: str, model: str, seq: int) -> ev.SessionStarted:
    return ev.SessionStarted(
        session=session, role=actor.split(":")[0], model=model, seq=seq, actor=actor
    )


LOG = [
    started("p#1", "planner", "gpt-4.1-mini", 1),
    responded("p#1", "planner", Usage(prompt_tokens=100, cost_usd=0.25), 2),
    started("w#1", "worker:T1", "gpt-4.1-mini", 3),
    responded("w#1", "worker:T1", Usage(prompt_tokens=50, cached_tokens=40, cost_usd=0.5), 4),
    started("r#1", "reviewer", "local", 5),
    responded("r#1", "reviewer", Usage(prompt_tokens=10, completion_tokens=5), 6),
]


def test_the_meter_adds_recorded_dollars_and_counts_unpriced_turns() -> None:
    meter = Meter()
    for event in LOG:
        meter.observe(event)
    assert (meter.cost, meter.unpriced, meter.cached_tokens, meter.tokens) == (0.75, 1, 40, 165)
    legacy = Meter(prices={"local": (1_000_000.0, 0.0)})
    for event in LOG:
        legacy.observe(event)
    assert (legacy.cost, legacy.unpriced) == (0.75 + 10.0, 0)
    settings = MissionSettings(max_cost=0.7)
    assert meter.exceeded(settings) == "max cost $0.7 reached ($0.7500 spent)"


def test_the_fold_keeps_dollars_per_role_and_says_when_a_total_is_unknown() -> None:
    state = fold_mission(LOG)
    assert role_costs(state) == {"planner": 0.25, "worker": 0.5, "reviewer": None}
    assert mission_cost(state) is None
    assert cost_text(state) == ">= $0.7500, no price for reviewer"
    assert state.tokens["worker"].cached == 40
    priced = fold_mission(LOG[:4])
    assert mission_cost(priced) == 0.75 and cost_text(priced) == "$0.7500"
    assert tokens_by_role(LOG) == dict(state.tokens)  # what the end summary reads
    assert role_costs(tokens_by_role(LOG)) == role_costs(state)
    assert (usd(None), usd(0.01234), usd(12.5)) == ("$?", "$0.0123", "$12.50")


def test_the_banner_says_when_the_cap_cannot_apply() -> None:
    known = {"planner": "gpt-4.1-mini", "worker": "gpt-4.1-mini", "reviewer": "gpt-4.1-mini"}
    assert describe_cost_cap(known, 2.0) is None
    assert describe_cost_cap({**known, "worker": "qwen"}, None) is None
    line = describe_cost_cap({**known, "worker": "qwen", "reviewer": "qwen"}, 2.0)
    assert line == (
        "max-cost 2 cannot apply to qwen (worker, reviewer): no price known; add "
        '[prices."qwen"] input_per_mtok/output_per_mtok to .opencode/ocactors.toml'
    )
    free = PriceBook(overrides={"qwen": Price()})
    assert describe_cost_cap(["qwen"], 2.0, free) is None


# --- --max-cost out of the box --------------------------------------------------------------


class KnownModelHarness(MissionHarness):
    """The textstats mission, its model named like one the price table knows; no [prices]."""

    def clients(self, http: httpx.Client) -> dict[str, ModelClient]:
        registry = LimiterRegistry()
        return {
            role: build_client(
                RoleConfig(
                    role=role,
                    provider="openai",
                    model="gpt-4.1-mini",
                    base_url=self.server.base_url,
                    timeout_s=10.0,
                ),
                http,
                registry,
            )
            for role in ("planner", "worker", "reviewer")
        }


def test_max_cost_stops_a_mission_with_a_known_model_and_no_prices(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    settings = MissionSettings(verify_command=CHECK, max_cost=0.001)
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = KnownModelHarness(workspace, server, settings)
        state = harness.start()
    assert (state.phase, state.outcome) == ("stopped", "budget"), state.detail
    assert state.detail.startswith("max cost $0.001 reached")
    assert harness.paths is not None
    log = list(read_events(harness.paths.events))
    turns = [e for e in log if isinstance(e, ev.ModelResponded)]
    spent = sum(t.usage.cost_usd or 0.0 for t in turns)
    assert all(t.usage.cost_usd is not None for t in turns) and spent >= 0.001
    assert mission_cost(fold_mission(log)) == pytest.approx(spent, abs=1e-6)


# --- shown: status, ls, monitor, tail ---------------------------------------------------------


def ocactors(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ocactors.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A sealed textstats mission on a model the table knows; its recorded dollars."""
    workspace = tmp_path_factory.mktemp("priced")
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = KnownModelHarness(workspace, server, MissionSettings(verify_command=CHECK))
        assert harness.start().phase == "sealed"
    assert harness.paths is not None
    turns = [e for e in read_events(harness.paths.events) if isinstance(e, ev.ModelResponded)]
    return workspace, sum(t.usage.cost_usd or 0.0 for t in turns)


def test_status_and_ls_give_dollars_and_null_when_unknown(priced: tuple[Path, float]) -> None:
    workspace, spent = priced
    status = json.loads(ocactors("status", "--json", "-C", str(workspace)))
    assert status["cost_usd"] == pytest.approx(spent, abs=1e-6) and spent > 0
    roles = status["tokens"]
    assert sum(r["cost_usd"] for r in roles.values()) == pytest.approx(spent, abs=1e-6)
    (row,) = [
        json.loads(line) for line in ocactors("ls", "--json", "-C", str(workspace)).splitlines()
    ]
    assert row["cost_usd"] == status["cost_usd"]
    assert f"cost: {usd(status['cost_usd'])} (planner $" in ocactors("status", "-C", str(workspace))
    unknown = Path(__file__).parent / "data" / "failed-mission"
    assert json.loads(ocactors("status", "--json", "-C", str(unknown)))["cost_usd"] is None


def test_monitor_and_tail_show_dollars(priced: tuple[Path, float]) -> None:
    workspace, spent = priced
    assert f"cost {usd(round(spent, 6))}" in ocactors("monitor", "--once", "-C", str(workspace))
    tail = ocactors("tail", "-C", str(workspace), "--type", "model.responded")
    assert re.search(r"turn 1: submit_plan \(\d+ tok, \$0\.\d{4}, \d+ ms\)", tail), tail
