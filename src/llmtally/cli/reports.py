"""Report commands: ``overview`` and ``costs summary|trends|breakdown``. No SQL here: ``query``."""

from __future__ import annotations

from typing import Final

import click

from llmtally.cli.common import (
    CliGroup,
    dimension_choice,
    interval_option,
    opened_reports,
    report_options,
)
from llmtally.cli.output import (
    format_cell,
    format_change,
    label,
    output_options,
    render,
    render_pairs,
)
from llmtally.query.export import iso_utc
from llmtally.query.reports import Filters, Reports

# the CSV header of an empty breakdown (a non-empty one takes the report's own keys)
_BREAKDOWN_KEYS: Final = (
    "calls",
    "cost_usd",
    "cost_share",
    "avg_cost_usd",
    "unpriced_calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
)
_TREND_KEYS: Final = ("bucket", "calls", "errors", "cost_usd", "input_tokens", "output_tokens")
# the previous period of equal length, shown under the overview in table mode:
# (metric, key now, key before, key of the relative change or None)
_COMPARISON: Final = (
    ("calls", "calls", "prev_calls", "calls_change"),
    ("cost_usd", "cost_usd", "prev_cost_usd", "cost_change"),
    ("error_rate", "error_rate", "prev_error_rate", None),
    ("p95_latency_ms", "p95_latency_ms", "prev_p95_latency_ms", None),
)
_TOP_KEYS: Final = ("calls", "cost_usd", "cost_share", "avg_cost_usd", "errors")
TOP_N: Final = 5


def describe(filters: Filters) -> str:
    """A short human description of a report's time range and filters, for table titles."""
    parts = []
    if filters.since is not None:
        parts.append(f"since {iso_utc(filters.since)[:16].replace('T', ' ')} UTC")
    if filters.until is not None:
        parts.append(f"until {iso_utc(filters.until)[:16].replace('T', ' ')} UTC")
    for name in ("project", "feature", "model", "provider", "actor", "status"):
        value = getattr(filters, name)
        if value is not None:
            parts.append(f"{name}={value}")
    return ", ".join(parts) if parts else "all time"


def breakdown_rows(
    reports: Reports, by: str, filters: Filters, limit: int | None
) -> list[dict[str, object]]:
    """Breakdown rows, the top ``limit`` of them.

    Sliced here rather than with ``costs_breakdown(limit=…)``: that computes
    ``cost_share`` over the returned rows only, which would inflate the shares.
    """
    rows = reports.costs_breakdown(by=by, filters=filters)
    return rows if limit is None else rows[:limit]


def show_overview(reports: Reports, filters: Filters, fmt: str, title: str = "Overview") -> None:
    """Print the overview; in table mode followed by the top models and features by cost."""
    row = reports.overview(filters)[0]
    if fmt != "table":
        render([row], fmt)
        return
    comparison = comparison_rows(row)
    current = {key: value for key, value in row.items() if not key.startswith("prev_")}
    for _, _, _, change in _COMPARISON:
        if change is not None:
            current.pop(change, None)
    render_pairs(current, fmt, title=f"{title} ({describe(filters)})")
    if comparison:
        render(
            comparison,
            fmt,
            title="Compared with the previous period of equal length",
            right=("now", "previous", "change"),
        )
    for by in ("model", "feature"):
        rows = breakdown_rows(reports, by, filters, TOP_N)
        if rows:
            render(rows, fmt, title=f"Cost by {by} (top {TOP_N})", columns=(by, *_TOP_KEYS))


def comparison_rows(row: dict[str, object]) -> list[dict[str, str]]:
    """This period against the previous one, formatted (empty if the overview has no prev_*)."""
    if not any(key.startswith("prev_") for key in row):
        return []
    return [
        {
            "metric": label(metric),
            "now": format_cell(metric, row.get(now)),
            "previous": format_cell(metric, row.get(before)),
            "change": format_change(_number(row.get(change))) if change else "",
        }
        for metric, now, before, change in _COMPARISON
        if before in row
    ]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@click.command()
@report_options
@output_options
def overview(db: str, filters: Filters, fmt: str) -> None:
    """Calls, cost, tokens, error rate and latency at a glance."""
    with opened_reports(db) as reports:
        show_overview(reports, filters, fmt)


@click.group(cls=CliGroup)
def costs() -> None:
    """What the calls cost: totals and breakdowns."""


@costs.command("summary")
@report_options
@output_options
def costs_summary(db: str, filters: Filters, fmt: str) -> None:
    """Total cost with averages per call and per day."""
    with opened_reports(db) as reports:
        rows = reports.costs_summary(filters)
    if fmt == "table":
        render_pairs(rows[0], fmt, title=f"Costs ({describe(filters)})")
    else:
        render(rows, fmt)


@costs.command("trends")
@interval_option("day")
@report_options
@output_options
def costs_trends(interval: str, db: str, filters: Filters, fmt: str) -> None:
    """Calls, errors, cost and tokens per hour, day or week (buckets with calls, oldest first)."""
    with opened_reports(db) as reports:
        rows = reports.costs_trends(interval=interval, filters=filters)
    render(
        rows,
        fmt,
        title=f"Cost per {interval} ({describe(filters)})",
        columns=None if rows else _TREND_KEYS,
    )


@costs.command("breakdown")
@click.option(
    "--by", type=dimension_choice(), default="model", show_default=True, help="Group costs by this."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show only the top N.")
@report_options
@output_options
def costs_breakdown(by: str, limit: int | None, db: str, filters: Filters, fmt: str) -> None:
    """Cost, calls and tokens per model, provider, feature, actor, session or project."""
    with opened_reports(db) as reports:
        rows = breakdown_rows(reports, by, filters, limit)
    render(
        rows,
        fmt,
        title=f"Cost by {by} ({describe(filters)})",
        columns=None if rows else (by, *_BREAKDOWN_KEYS),
    )
