"""``errors``, ``feedback``, ``sessions``, ``agents``, ``tools`` and ``trace TRACE_ID``.

Thin skins over ``llmtally.query.reports.Reports``; no SQL here.
"""

from __future__ import annotations

from typing import Any, Final

import click

from llmtally.cli.common import db_option, limit_option, opened_reports, report_options
from llmtally.cli.output import output_options, render
from llmtally.cli.reports import describe
from llmtally.query.reports import Filters

# CSV headers of empty reports (a non-empty report takes its own keys)
ERROR_KEYS: Final = (
    "error_type",
    "feature",
    "model",
    "count",
    "share",
    "error_rate",
    "example_message",
)
FEEDBACK_KEYS: Final = (
    "calls",
    "feedback",
    "up",
    "down",
    "up_ratio",
    "regenerated",
    "edited",
    "regenerated_rate",
    "edited_rate",
    "quality_score",
)
SESSION_KEYS: Final = (
    "session_id",
    "actor_id",
    "turns",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "errors",
    "first_at",
    "last_at",
    "duration_s",
)
AGENT_KEYS: Final = (
    "actor_id",
    "calls",
    "errors",
    "error_rate",
    "cost_usd",
    "avg_latency_ms",
    "p95_latency_ms",
)
TOOL_KEYS: Final = ("name", "calls", "errors", "error_rate", "avg_latency_ms", "p95_latency_ms")
TRACE_KEYS: Final = (
    "event_id",
    "occurred_at",
    "kind",
    "name",
    "feature",
    "model",
    "provider",
    "status",
    "error_type",
    "latency_ms",
    "cost_usd",
    "parent_id",
    "actor_id",
)
MESSAGE_WIDTH: Final = 80


def _clip(rows: list[dict[str, Any]], key: str, width: int) -> list[dict[str, Any]]:
    """Rows with a long text column cut to ``width`` characters (for tables only)."""
    clipped = []
    for row in rows:
        value = row.get(key)
        if isinstance(value, str) and len(value) > width:
            row = {**row, key: value[: width - 1] + "…"}
        clipped.append(row)
    return clipped


@click.command()
@limit_option(20, "error groups")
@report_options
@output_options
def errors(limit: int, db: str, filters: Filters, fmt: str) -> None:
    """Failed calls grouped by error type, feature and model, most frequent first."""
    with opened_reports(db) as reports:
        rows = reports.errors(limit=limit, filters=filters)
    if fmt == "table":
        rows = _clip(rows, "example_message", MESSAGE_WIDTH)
    render(rows, fmt, title=f"Errors ({describe(filters)})", columns=None if rows else ERROR_KEYS)


@click.command()
@click.option(
    "--by",
    type=click.Choice(["feature", "model"]),
    default="feature",
    show_default=True,
    help="One row per feature or per model.",
)
@report_options
@output_options
def feedback(by: str, db: str, filters: Filters, fmt: str) -> None:
    """User feedback on calls: thumbs up/down, regenerations, edits, implicit quality."""
    with opened_reports(db) as reports:
        rows = reports.feedback(by=by, filters=filters)
    render(
        rows,
        fmt,
        title=f"Feedback by {by} ({describe(filters)})",
        columns=None if rows else (by, *FEEDBACK_KEYS),
    )


@click.command()
@limit_option(50, "sessions")
@report_options
@output_options
def sessions(limit: int, db: str, filters: Filters, fmt: str) -> None:
    """Conversations: turns, cost, tokens, errors and duration per session, costliest first."""
    with opened_reports(db) as reports:
        rows = reports.sessions(limit=limit, filters=filters)
    render(
        rows, fmt, title=f"Sessions ({describe(filters)})", columns=None if rows else SESSION_KEYS
    )


@click.command()
@report_options
@output_options
def agents(db: str, filters: Filters, fmt: str) -> None:
    """Calls made by agents (actor_type agent): cost, errors and latency per agent."""
    with opened_reports(db) as reports:
        rows = reports.agents(filters=filters)
    render(rows, fmt, title=f"Agents ({describe(filters)})", columns=None if rows else AGENT_KEYS)


@click.command()
@report_options
@output_options
def tools(db: str, filters: Filters, fmt: str) -> None:
    """Tool/function executions: calls, error rate and latency per tool, busiest first."""
    with opened_reports(db) as reports:
        rows = reports.tools(filters=filters)
    render(rows, fmt, title=f"Tools ({describe(filters)})", columns=None if rows else TOOL_KEYS)


@click.command()
@click.argument("trace_id")
@db_option
@output_options
def trace(trace_id: str, db: str, fmt: str) -> None:
    """Every event of one trace (calls, tool calls, feedback…), oldest first."""
    with opened_reports(db) as reports:
        rows = reports.trace(trace_id)
    render(rows, fmt, title=f"Trace {trace_id}", columns=None if rows else TRACE_KEYS)
