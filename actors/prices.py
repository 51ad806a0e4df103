"""What a model turn costs in dollars, from a maintained price table with local overrides.

Prices come from ``genai-prices`` (pydantic's table of model prices, bundled with the package
and read offline; ocactors never asks it to download updates), under the ``[prices]`` table of
``.opencode/ocactors.toml``, which wins for the models it names::

    [prices."qwen2.5-coder:7b"]    # a local model: free
    input_per_mtok = 0
    output_per_mtok = 0

A turn's cost is computed once, when the turn is recorded (``Usage.cost_usd`` on
``model.responded``), with cached prompt tokens priced as cached and cache writes as
writes.  Everything else (the budget meter, the mission fold, ``status``, ``ls``, the live
view) adds up recorded figures, so a replay or a resume shows the same dollars the live run
did, even after the table changed.  A model nobody prices has ``cost_usd`` None: its turns
are counted as unpriced and the totals say so instead of pretending they were free.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from ocactors.actors.state import MissionState, Tokens, add_usage
from ocactors.events.catalogue import ModelResponded, Record, Usage

if TYPE_CHECKING:  # the model configuration imports httpx: ls, status and tail need neither
    from ocactors.actors.models.config import ModelsConfig, Price

CATALOGUE = "genai-prices"


@dataclass(frozen=True)
class PriceBook:
    """Prices by model name: ``overrides`` first, then the bundled genai-prices table.

    ``endpoints`` (model -> base URL) lets the table tell providers apart where one model
    name has several prices (OpenRouter, a cloud host); an unknown URL (a local server) falls
    back to the model name alone.  ``catalogue=False`` uses the overrides only (tests).
    """

    overrides: Mapping[str, Price] = field(default_factory=dict)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    catalogue: bool = True

    @classmethod
    def from_config(cls, config: ModelsConfig) -> PriceBook:
        """The book for a resolved configuration: its ``[prices]`` and each role's endpoint."""
        endpoints = {role.model: role.base_url for role in config.roles.values()}
        return cls(overrides=dict(config.prices), endpoints=endpoints)

    def cost(self, model: str, usage: Usage) -> float | None:
        """Dollars for ``usage`` at ``model``'s prices, or None when no price is known."""
        if model in self.overrides:
            return round(self.overrides[model].cost(usage), 10)
        if not self.catalogue:
            return None
        return catalogue_cost(model, self.endpoints.get(model), usage)

    def priced(self, model: str, usage: Usage) -> Usage:
        """``usage`` with its ``cost_usd`` filled in (None stays None for unknown models)."""
        return msgspec.structs.replace(usage, cost_usd=self.cost(model, usage))

    def knows(self, model: str) -> bool:
        """Is there a price for ``model``?"""
        return self.cost(model, Usage(prompt_tokens=1, completion_tokens=1)) is not None

    def source(self, model: str) -> str:
        """Where ``model``'s price comes from, for people: the config file or the table."""
        from ocactors.actors.models.config import CONFIG_FILE

        if model in self.overrides:
            return f"[prices] in {CONFIG_FILE}"
        return catalogue_name() if self.knows(model) else "no price known"


def catalogue_name() -> str:
    """``genai-prices <version>``: which table priced the turns."""
    from importlib import metadata

    try:
        return f"{CATALOGUE} {metadata.version(CATALOGUE)}"
    except metadata.PackageNotFoundError:
        return CATALOGUE


def catalogue_cost(model: str, base_url: str | None, usage: Usage) -> float | None:
    """The table's price for one turn (None: the table does not know the model)."""
    ref = _catalogue_ref(model, base_url)
    if ref is None:
        return None
    from genai_prices import Usage as TableUsage
    from genai_prices import calc_price

    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), prompt)
    written = min(max(usage.cache_write_tokens, 0), prompt - cached)
    table_usage = TableUsage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=max(usage.completion_tokens, 0),
    )
    price = calc_price(table_usage, model_ref=ref[0], provider_api_url=ref[1])
    return round(float(price.total_price), 10)


@functools.lru_cache(maxsize=256)
def _catalogue_ref(model: str, base_url: str | None) -> tuple[str, str | None] | None:
    """The (model_ref, provider URL) the table answers for: with the endpoint first, then
    the bare name, then the name without an ``owner/`` prefix; None if none is known."""
    from genai_prices import Usage as TableUsage
    from genai_prices import calc_price

    tries: list[tuple[str, str | None]] = [(model, base_url)] if base_url else []
    tries.append((model, None))
    if "/" in model:
        tries.append((model.split("/", 1)[1], None))
    probe = TableUsage(input_tokens=1, output_tokens=1)
    for ref, url in tries:
        try:
            calc_price(probe, model_ref=ref, provider_api_url=url)
        except LookupError:
            continue
        return ref, url
    return None


# --- sums over a mission, for the command line ---------------------------------------------

Spend = MissionState | Mapping[str, Tokens]


def tokens_by_role(events: Iterable[Record]) -> dict[str, Tokens]:
    """Tokens and dollars per role from a mission's events (``worker`` covers every worker).

    For the end-of-mission summary: the state a run returns is the Commander's, which does
    not fold the sessions' turns; this reads them from the log as ``status`` does.
    """
    spent: dict[str, Tokens] = {}
    for event in events:
        if isinstance(event, ModelResponded):
            role = event.actor.split(":", 1)[0] or "unknown"
            spent[role] = add_usage(spent.get(role, Tokens()), event.usage)
    return spent


def _roles(spend: Spend) -> Mapping[str, Tokens]:
    return spend.tokens if isinstance(spend, MissionState) else spend


def role_costs(spend: Spend) -> dict[str, float | None]:
    """Dollars per role (a folded state, or :func:`tokens_by_role`); None where a role had
    a turn no price was known for, since its total would be a guess."""
    return {role: tokens_cost(tokens) for role, tokens in _roles(spend).items()}


def tokens_cost(tokens: Tokens) -> float | None:
    """One role's dollars, or None when any of its turns was unpriced."""
    return None if tokens.unpriced else round(tokens.cost_usd, 6)


def mission_cost(spend: Spend) -> float | None:
    """The mission's dollars so far; None when any turn of any role was unpriced."""
    costs = role_costs(spend).values()
    return None if None in costs else round(sum(c for c in costs if c is not None), 6)


def known_cost(spend: Spend) -> float:
    """Dollars of the priced turns alone (a lower bound when some were unpriced)."""
    return round(sum(t.cost_usd for t in _roles(spend).values()), 6)


def usd(amount: float | None) -> str:
    """``$0.0123`` (four decimals under a dollar, two above); ``$?`` when unknown."""
    if amount is None:
        return "$?"
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def cost_text(spend: Spend) -> str:
    """The mission's cost for people: ``$0.0123``, or what is known and what is not."""
    total = mission_cost(spend)
    if total is not None:
        return usd(total)
    unpriced = [role for role, t in _roles(spend).items() if t.unpriced]
    known = known_cost(spend)
    prefix = f">= {usd(known)}, " if known else ""
    return f"{prefix}no price for {', '.join(unpriced)}"


def cost_short(spend: Spend) -> str:
    """A few characters for a crowded line: ``$0.0123``, ``>=$0.0123`` or ``$?``."""
    total = mission_cost(spend)
    if total is not None:
        return usd(total)
    known = known_cost(spend)
    return f">={usd(known)}" if known else "$?"


def cached_share(tokens: Iterable[Tokens]) -> float:
    """The share of prompt tokens read from a provider's cache (0.0 to 1.0)."""
    prompt = cached = 0
    for t in tokens:
        prompt, cached = prompt + t.prompt, cached + t.cached
    return cached / prompt if prompt else 0.0


def describe_cost_cap(
    models: Mapping[str, str] | Iterable[str],
    max_cost: float | None,
    book: PriceBook | None = None,
) -> str | None:
    """For the start banner: None when ``--max-cost`` applies (or is not set), else one
    line saying which models have no price and how to give them one.

    ``models`` is role -> model name (or just model names).
    """
    if max_cost is None:
        return None
    book = book or PriceBook()
    pairs = models.items() if isinstance(models, Mapping) else ((m, m) for m in models)
    unknown: dict[str, list[str]] = {}
    for role, model in pairs:
        if not book.knows(model):
            unknown.setdefault(model, []).append(role)
    if not unknown:
        return None
    names = ", ".join(
        f"{m} ({', '.join(r)})" if r != [m] else m for m, r in sorted(unknown.items())
    )
    from ocactors.actors.models.config import CONFIG_FILE

    first = next(iter(sorted(unknown)))
    return (
        f"max-cost {max_cost:g} cannot apply to {names}: no price known; add "
        f'[prices."{first}"] input_per_mtok/output_per_mtok to {CONFIG_FILE}'
    )
