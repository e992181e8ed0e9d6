"""``llmtally demo``: fill a database with a realistic month of traffic, then show it.

The traffic is ``llmtally.demo``'s model, recorded through a real ``Tally``; this command
only clears earlier demo events, shows progress and prints the overview.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import click

from llmtally.cli.common import (
    StoreFailure,
    db_option,
    opened_reports,
    opened_store,
    progress_bar,
    settings,
)
from llmtally.cli.reports import show_overview
from llmtally.query import registry

_EVERYTHING: Final = datetime(9999, 1, 1, tzinfo=UTC)  # a cutoff after every event
FLUSH_TIMEOUT: Final = 60.0
_KIND_LABELS: Final = {
    "llm_call": "LLM calls",
    "product": "product events",
    "tool_call": "tool calls",
    "feedback": "feedback events",
}


def _pricing() -> Any:
    """The config's custom prices (they apply to the demo too) plus the demo's in-house model."""
    from llmtally.demo import CUSTOM_PRICING

    configured = settings().get("custom_pricing")
    if configured is not None and not isinstance(configured, Mapping):
        return configured  # Tally rejects it with a ConfigError that names the setting
    return {**(configured or {}), **CUSTOM_PRICING}


@click.command()
@click.option(
    "--days", type=click.IntRange(1, 366), default=30, show_default=True, help="Days of history."
)
@click.option(
    "--calls",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="LLM calls to generate.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same traffic.")
@click.option("--keep", is_flag=True, help="Keep earlier demo events instead of replacing them.")
@db_option
def demo(days: int, calls: int, seed: int, keep: bool, db: str) -> None:
    """Record a month of realistic LLM traffic (project "demo") and print the overview."""
    # imported here: `llmtally --help` must not load the pipeline, the store and SQLAlchemy
    from llmtally.demo import PROJECT, UNPRICED_MODEL, Generator
    from llmtally.store.maintenance import delete_older_than
    from llmtally.tally import Tally

    started = time.perf_counter()
    # built first so that bad settings fail before earlier demo events are deleted; its
    # writer thread only starts with the first event
    tally = Tally(
        db,
        project=PROJECT,
        custom_pricing=_pricing(),
        # generation outpaces the writer for a while: room for everything, nothing dropped
        queue_size=calls * 4 + 10_000,
        batch_size=2_000,
        flush_interval=0.2,
    )
    try:
        with opened_store(db) as store:
            where = store.safe_url
            removed = (
                0 if keep else delete_older_than(store.engine, cutoff=_EVERYTHING, project=PROJECT)
            )
        with progress_bar() as progress:
            task = progress.add_task("Recording demo traffic", total=calls)
            generator = Generator(tally, days=days, calls=calls, seed=seed, now=time.time())
            counts = generator.run(lambda n: progress.advance(task, n))
            progress.update(task, description="Writing")
            flushed = tally.flush(timeout=FLUSH_TIMEOUT)
        stats = tally.stats()
    finally:
        tally.close(timeout=5)
    if not flushed:
        raise StoreFailure(
            f"the demo events were not all written within {FLUSH_TIMEOUT:.0f} s ({where})"
        )
    elapsed = time.perf_counter() - started
    lost = stats.get("dropped", 0) + stats.get("rejected", 0) + len(generator.rejected)
    summary = ", ".join(f"{n:,} {_KIND_LABELS[kind]}" for kind, n in counts.most_common())
    click.echo(
        f"Recorded {stats.get('written', 0):,} events ({summary}) over {days} days "
        f"in {elapsed:.1f} s into {where}"
        + (f"; replaced {removed:,} earlier demo events." if removed else ".")
    )
    if lost:
        refused = generator.rejected[:3]
        click.echo(
            f"Warning: {lost:,} events were dropped or rejected: {stats}"
            + (f"; refused at capture: {refused}" if refused else ""),
            err=True,
        )
    with opened_reports(db) as reports:
        overview = registry.get("overview")
        result = overview.run(reports, overview.params(since=None, project=PROJECT))
        show_overview(reports, result, "Demo overview")
    click.echo(
        f"{UNPRICED_MODEL} has no known price, so its calls have cost_usd = null: add it to "
        "[custom_pricing] and run `llmtally prices recompute`.\n"
        "Next: llmtally costs breakdown --by feature --project demo · llmtally status · "
        "llmtally export --days 7 -o events.csv"
    )
