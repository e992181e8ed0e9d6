"""``prices list|show|recompute``: the price table llmtally bills with, and re-pricing.

Prices come from genai-prices' bundled data (never fetched at run time) and the
``[custom_pricing]`` table of the config file (``LLMTALLY_CONFIG``), which wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import click

from llmtally.cli.common import CliGroup, db_option, opened_store, progress_bar, settings
from llmtally.cli.output import columns, console, output_options, render, render_pairs
from llmtally.query.registry import Unit

PRICE_KEYS: Final = (
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
)
_MTOK_ATTRS: Final = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
_PRICES: Final[tuple[tuple[str, Unit], ...]] = tuple((key, "usd_per_mtok") for key in PRICE_KEYS)
_LIST_COLUMNS: Final = columns("provider", "model", "name", *_PRICES, "source")


def custom_pricing() -> Mapping[str, Any] | None:
    """The config file's ``[custom_pricing]`` table, if any."""
    value: Mapping[str, Any] | None = settings().get("custom_pricing")
    return value  # validated by PriceBook / parse_custom_pricing, naming the bad key


def _per_mtok(value: Any) -> float | None:
    base = getattr(value, "base", value)  # tiered prices: the price below the first tier
    return float(base) if isinstance(base, Decimal | int | float) else None


def _genai_rows(now: datetime) -> list[dict[str, Any]]:
    from genai_prices.data_snapshot import get_snapshot

    rows = []
    for provider in get_snapshot().providers:
        for model in provider.models:
            price = model.get_prices(now)
            row: dict[str, Any] = {"provider": provider.id, "model": model.id, "name": model.name}
            for key, attr in zip(PRICE_KEYS, _MTOK_ATTRS, strict=True):
                row[key] = _per_mtok(getattr(price, attr, None))
            row["source"] = "genai-prices"
            rows.append(row)
    return rows


def _custom_rows(now: datetime) -> list[dict[str, Any]]:
    from llmtally.capture.pricing import parse_custom_pricing

    rows = []
    for key, history in parse_custom_pricing(custom_pricing()).items():
        in_force = [p for p in history if p.effective_from is None or p.effective_from <= now]
        price = in_force[-1] if in_force else history[0]
        provider, _, model = key.rpartition("/")
        rows.append(
            {
                "provider": provider or None,
                "model": model,
                "name": None,
                "input_per_mtok": price.input,
                "output_per_mtok": price.output,
                "cache_read_per_mtok": price.cache_read,
                "cache_write_per_mtok": price.cache_write,
                "source": "custom",
            }
        )
    return rows


@click.group(cls=CliGroup)
def prices() -> None:
    """Model prices: list them, show one, re-price stored calls."""


@prices.command("list")
@click.option(
    "--provider", default=None, help="Only this provider id (openai, anthropic, google…)."
)
@click.option(
    "--search", default=None, metavar="TEXT", help="Only models whose id or name contains TEXT."
)
@output_options
def prices_list(provider: str | None, search: str | None, fmt: str) -> None:
    """Known models with their prices in USD per million tokens (custom prices first)."""
    now = datetime.now(UTC)
    rows = _custom_rows(now) + _genai_rows(now)
    if provider:
        rows = [r for r in rows if (r["provider"] or "").lower() == provider.strip().lower()]
    if search:
        needle = search.strip().lower()
        rows = [
            r for r in rows if needle in r["model"].lower() or needle in (r["name"] or "").lower()
        ]
    render(
        rows,
        fmt,
        title=f"Prices ({len(rows):,} models)",
        columns=_LIST_COLUMNS,
    )


def _genai_price_text(info_provider: str | None, matched: str | None, now: datetime) -> str | None:
    if info_provider is None or matched is None:
        return None
    from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

    provider = find_provider_by_id(get_snapshot().providers, info_provider)
    model = next((m for m in provider.models if m.id == matched), None) if provider else None
    return None if model is None else str(model.get_prices(now))


def _registry(db: str, provider: str | None, model: str) -> dict[str, Any]:
    # no migration here: showing a price should not create or upgrade a database
    from llmtally.query import catalog

    with opened_store(db, migrate=False) as store:
        entry = catalog.registry_entry(store.engine, model, provider)
    return {
        "in_registry": entry is not None,
        "registry_provider": entry["provider"] if entry else None,
        "registry_placeholder": entry["is_placeholder"] if entry else None,
        "first_seen": entry["first_seen"] if entry else None,
        "last_seen": entry["last_seen"] if entry else None,
    }


@prices.command("show")
@click.argument("model")
@click.option("--provider", default=None, help="Provider id, when the model name is ambiguous.")
@db_option
@output_options
def prices_show(model: str, provider: str | None, db: str, fmt: str) -> None:
    """The price MODEL is billed at now, where it comes from, and whether calls used it."""
    from llmtally.capture.pricing import PriceBook

    now = datetime.now(UTC)
    info = PriceBook(custom_pricing=custom_pricing()).info(provider, model, now.timestamp())
    row: dict[str, Any] = {
        "model": model,
        "provider": info.provider,
        "source": info.source,
        "matched_model": info.matched_model,
        "input_per_mtok": info.input_per_mtok,
        "output_per_mtok": info.output_per_mtok,
        "cache_read_per_mtok": info.cache_read_per_mtok,
        "cache_write_per_mtok": info.cache_write_per_mtok,
        "genai_prices": _genai_price_text(info.provider, info.matched_model, now)
        if info.source == "genai-prices"
        else None,
    }
    row.update(_registry(db, provider, model))
    units = dict(_PRICES)
    shown = columns(*((key, units[key]) if key in units else key for key in row))
    render_pairs(row, fmt, columns=shown, title=f"Price of {model}")


@prices.command("recompute")
@click.option("--since", default="30d", show_default=True, help="Only calls since (7d, ISO date…).")
@click.option("--until", default=None, help="Only calls before this.")
@click.option(
    "--all",
    "reprice_all",
    is_flag=True,
    help="Re-price every call, not only those without a cost (e.g. after a price change).",
)
@db_option
def prices_recompute(since: str, until: str | None, reprice_all: bool, db: str) -> None:
    """Re-price stored calls with current price data and the config's custom prices."""
    from llmtally.capture.pricing import PriceBook
    from llmtally.query.timeparse import parse_time
    from llmtally.store.maintenance import count_to_reprice, recompute_costs

    now = datetime.now(UTC)
    start = parse_time(since, "since", now=now)
    end = parse_time(until, "until", now=now)
    book = PriceBook(custom_pricing=custom_pricing())
    with opened_store(db) as store:
        total = count_to_reprice(store.engine, since=start, until=end, only_missing=not reprice_all)
        with progress_bar() as progress:
            task = progress.add_task("Re-pricing", total=total)
            changed = recompute_costs(
                store.engine,
                book,
                since=start,
                until=end,
                only_missing=not reprice_all,
                progress=lambda n: progress.advance(task, n),
            )
    what = "calls" if reprice_all else "calls without a cost"
    console().print(f"Examined {total:,} {what}; {changed:,} got a new cost.")
