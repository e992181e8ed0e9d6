"""``requests stats|list|trends|models``: latency, errors and tokens of the calls themselves.

Thin skins over ``llmtally.query.reports.Reports``; no SQL here.
"""

from __future__ import annotations

from typing import Final

import click

from llmtally.cli.common import (
    CliGroup,
    dimension_choice,
    interval_option,
    limit_option,
    opened_reports,
    report_options,
)
from llmtally.cli.output import output_options, render, render_pairs
from llmtally.cli.reports import describe
from llmtally.query.reports import Filters

# CSV headers of empty reports (a non-empty report takes its own keys)
STATS_KEYS: Final = (
    "calls",
    "errors",
    "error_rate",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "avg_ttft_ms",
    "p50_ttft_ms",
    "p95_ttft_ms",
    "avg_input_tokens",
    "avg_output_tokens",
)
LIST_KEYS: Final = (
    "event_id",
    "occurred_at",
    "project",
    "feature",
    "model",
    "provider",
    "actor_id",
    "session_id",
    "trace_id",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "stream",
)
# what fits a terminal; JSON and CSV keep every key
LIST_TABLE_KEYS: Final = (
    "occurred_at",
    "feature",
    "model",
    "actor_id",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "trace_id",
)
TREND_KEYS: Final = (
    "bucket",
    "calls",
    "errors",
    "error_rate",
    "avg_latency_ms",
    "p95_latency_ms",
)
MODEL_KEYS: Final = (
    "model",
    "provider",
    "calls",
    "errors",
    "error_rate",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "avg_latency_ms",
    "p95_latency_ms",
)


@click.group("requests", cls=CliGroup)
def requests_group() -> None:
    """The calls themselves: latency percentiles, errors, tokens, recent calls."""


@requests_group.command("stats")
@click.option(
    "--by",
    type=dimension_choice(),
    default=None,
    help="One row per model, provider, feature, actor, session, project or status.",
)
@report_options
@output_options
def requests_stats(by: str | None, db: str, filters: Filters, fmt: str) -> None:
    """Call count, error rate, latency and TTFT percentiles, average tokens."""
    with opened_reports(db) as reports:
        rows = reports.requests_stats(by=by, filters=filters)
    title = f"Requests{f' by {by}' if by else ''} ({describe(filters)})"
    if by is None and len(rows) == 1 and fmt == "table":
        render_pairs(rows[0], fmt, title=title)
        return
    keys = (by, *STATS_KEYS) if by else STATS_KEYS
    render(rows, fmt, title=title, columns=None if rows else keys)


@requests_group.command("list")
@limit_option(50, "calls")
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Skip this many of the newest calls first.",
)
@report_options
@output_options
def requests_list(limit: int, offset: int, db: str, filters: Filters, fmt: str) -> None:
    """The most recent calls, newest first."""
    with opened_reports(db) as reports:
        rows = reports.requests_list(limit=limit, offset=offset, filters=filters)
    if fmt == "table":
        columns: tuple[str, ...] | None = LIST_TABLE_KEYS
    else:
        columns = None if rows else LIST_KEYS
    render(rows, fmt, title=f"Recent calls ({describe(filters)})", columns=columns)


@requests_group.command("trends")
@interval_option("hour")
@report_options
@output_options
def requests_trends(interval: str, db: str, filters: Filters, fmt: str) -> None:
    """Calls, error rate and latency per hour, day or week, oldest first."""
    with opened_reports(db) as reports:
        rows = reports.requests_trends(interval=interval, filters=filters)
    render(
        rows,
        fmt,
        title=f"Requests per {interval} ({describe(filters)})",
        columns=None if rows else TREND_KEYS,
    )


@requests_group.command("models")
@report_options
@output_options
def requests_models(db: str, filters: Filters, fmt: str) -> None:
    """Per model: calls, error rate, cost, tokens and latency, busiest first."""
    with opened_reports(db) as reports:
        rows = reports.requests_models(filters=filters)
    render(
        rows,
        fmt,
        title=f"Models ({describe(filters)})",
        columns=None if rows else MODEL_KEYS,
    )
