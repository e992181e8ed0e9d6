"""Every report, declared once: parameters, columns with units, and how rows are computed.

The CLI commands, their options and help, and the JSON Schema of each report's
parameters are generated from these declarations (``query.registry``). The rows come
from the methods of ``query.reports.Reports``; a column listed here is a key of every
row, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from llmtally.query.registry import BY_PLACEHOLDER, Column, Report, WindowParams, param
from llmtally.query.vocabulary import FeedbackBy, GroupBy, Interval

if TYPE_CHECKING:
    from llmtally.query.reports import Reports

Row = dict[str, Any]

GROUPS: Final = {
    "costs": "What the calls cost: totals and breakdowns.",
    "requests": "The calls themselves: latency percentiles, errors, tokens, recent calls.",
}

# -- columns shared by several reports ---------------------------------------------------

BY = Column(BY_PLACEHOLDER, "text", "The group: a value of the dimension given as `by`.")
BUCKET = Column("bucket", "time", "Start of the hour, day or ISO week (UTC).")
CALLS = Column("calls", "count", "LLM calls.")
ERRORS = Column("errors", "count", "Failed calls.")
ERROR_RATE = Column("error_rate", "ratio", "Failed calls / calls.")
COST = Column("cost_usd", "usd", "Cost of the priced calls.")
UNPRICED = Column("unpriced_calls", "count", "Calls of models with no known price.")
INPUT = Column("input_tokens", "count", "Prompt tokens, cache reads and writes included.")
OUTPUT = Column("output_tokens", "count", "Generated tokens, reasoning included.")
CACHE_READ = Column("cache_read_tokens", "count", "Prompt tokens read from the cache.")
CACHE_WRITE = Column("cache_write_tokens", "count", "Prompt tokens written to the cache.")
REASONING = Column("reasoning_tokens", "count", "Reasoning part of the output tokens.")
AVG_LATENCY = Column("avg_latency_ms", "ms", "Mean latency.")
P50_LATENCY = Column("p50_latency_ms", "ms", "Median latency.")
P95_LATENCY = Column("p95_latency_ms", "ms", "95th percentile latency.")
P99_LATENCY = Column("p99_latency_ms", "ms", "99th percentile latency.")
AVG_TTFT = Column("avg_ttft_ms", "ms", "Mean time to first token (streams).")
P50_TTFT = Column("p50_ttft_ms", "ms", "Median time to first token.")
P95_TTFT = Column("p95_ttft_ms", "ms", "95th percentile time to first token.")
ACTOR_ID = Column("actor_id", "text", "The user or agent.")
FEATURE = Column("feature", "text", "The product feature.")
MODEL = Column("model", "text", "The model.")
PROVIDER = Column("provider", "text", "The provider.")
EVENT_ID = Column("event_id", "text", "The event's id.")
OCCURRED_AT = Column("occurred_at", "time", "When it happened (UTC).")
STATUS = Column("status", "text", "success or error.")
ERROR_TYPE = Column("error_type", "text", "The error's type (the SDK's exception class).")
LATENCY = Column("latency_ms", "ms", "Latency.")
TRACE_ID = Column("trace_id", "text", "The trace.")


def _when_since(column: Column, name: str, doc: str) -> Column:
    """A previous-period twin of ``column`` (present when ``since`` is set)."""
    return Column(name, column.unit, doc, when="since")


# -- parameters ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WindowOnly(WindowParams):
    """A report taking only the window and filters."""


@dataclass(frozen=True, kw_only=True)
class TrendParams(WindowParams):
    """A trend: buckets of one size."""

    interval: Interval = param("day", doc="Bucket size: hour, day or ISO week (UTC).")


@dataclass(frozen=True, kw_only=True)
class HourlyTrendParams(WindowParams):
    """A trend whose buckets are hours unless asked otherwise."""

    interval: Interval = param("hour", doc="Bucket size: hour, day or ISO week (UTC).")


@dataclass(frozen=True, kw_only=True)
class BreakdownParams(WindowParams):
    """A breakdown by one dimension, optionally only its top rows."""

    by: GroupBy = param("model", doc="Group costs by this.")
    limit: int | None = param(None, doc="Show only the top N.", minimum=1)


@dataclass(frozen=True, kw_only=True)
class StatsParams(WindowParams):
    """Request statistics, overall or per group."""

    by: GroupBy | None = param(
        None, doc="One row per model, provider, feature, actor, session, project or status."
    )


@dataclass(frozen=True, kw_only=True)
class ListParams(WindowParams):
    """A page of calls, newest first."""

    limit: int = param(50, doc="Show at most this many calls.", minimum=1)
    offset: int = param(0, doc="Skip this many of the newest calls first.", minimum=0)


@dataclass(frozen=True, kw_only=True)
class ErrorParams(WindowParams):
    """The most frequent error groups."""

    limit: int = param(20, doc="Show at most this many error groups.", minimum=1)


@dataclass(frozen=True, kw_only=True)
class FeedbackParams(WindowParams):
    """Feedback per feature or model."""

    by: FeedbackBy = param("feature", doc="One row per feature or per model.")


@dataclass(frozen=True, kw_only=True)
class SessionParams(WindowParams):
    """The costliest sessions."""

    limit: int = param(50, doc="Show at most this many sessions.", minimum=1)


@dataclass(frozen=True, kw_only=True)
class TraceParams:
    """One trace by id."""

    trace_id: str = param(doc="The trace's id.", argument=True)


# -- how rows are computed -------------------------------------------------------------


def _breakdown(reports: Reports, p: BreakdownParams) -> list[Row]:
    # sliced here rather than with costs_breakdown(limit=…): that computes cost_share
    # over the returned rows only, which would inflate the shares
    rows = reports.costs_breakdown(by=p.by, filters=p.filters())
    return rows if p.limit is None else rows[: p.limit]


_TREND_COLUMNS: Final = (BUCKET, CALLS, ERRORS, COST, INPUT, OUTPUT)
_STATS_COLUMNS: Final = (
    Column(BY_PLACEHOLDER, "text", BY.doc, when="by"),
    CALLS,
    ERRORS,
    ERROR_RATE,
    AVG_LATENCY,
    P50_LATENCY,
    P95_LATENCY,
    P99_LATENCY,
    AVG_TTFT,
    P50_TTFT,
    P95_TTFT,
    Column("avg_input_tokens", "number", "Mean input tokens per call."),
    Column("avg_output_tokens", "number", "Mean output tokens per call."),
)

REPORTS: Final[tuple[Report, ...]] = (
    Report(
        name="overview",
        title="Overview",
        doc="Calls, cost, tokens, error rate and latency at a glance.",
        params=WindowOnly,
        record=True,
        columns=(
            CALLS,
            ERRORS,
            ERROR_RATE,
            COST,
            UNPRICED,
            INPUT,
            OUTPUT,
            CACHE_READ,
            CACHE_WRITE,
            REASONING,
            Column("active_actors", "count", "Distinct actors with calls."),
            AVG_LATENCY,
            P50_LATENCY,
            P95_LATENCY,
            P95_TTFT,
            Column("top_model", "text", "The model with the highest cost."),
            Column("top_feature", "text", "The feature with the highest cost."),
            _when_since(CALLS, "prev_calls", "Calls in the previous period of equal length."),
            _when_since(COST, "prev_cost_usd", "Cost in the previous period."),
            _when_since(ERROR_RATE, "prev_error_rate", "Error rate in the previous period."),
            _when_since(P95_LATENCY, "prev_p95_latency_ms", "p95 latency, previous period."),
            Column("calls_change", "change", "Calls vs the previous period.", when="since"),
            Column("cost_change", "change", "Cost vs the previous period.", when="since"),
        ),
        compute=lambda r, p: r.overview(p.filters()),
    ),
    Report(
        name="costs.summary",
        title="Costs",
        doc="Total cost with averages per call and per day.",
        params=WindowOnly,
        record=True,
        columns=(
            CALLS,
            COST,
            Column("avg_cost_per_call_usd", "usd", "Mean cost of a priced call."),
            Column("days", "number", "Length of the window in days."),
            Column("avg_cost_per_day_usd", "usd", "Cost per day of the window."),
        ),
        compute=lambda r, p: r.costs_summary(p.filters()),
    ),
    Report(
        name="costs.trends",
        title="Cost per {interval}",
        doc="Calls, errors, cost and tokens per hour, day or week (buckets with calls, "
        "oldest first).",
        params=TrendParams,
        columns=_TREND_COLUMNS,
        compute=lambda r, p: r.costs_trends(interval=p.interval, filters=p.filters()),
    ),
    Report(
        name="costs.breakdown",
        title="Cost by {by}",
        doc="Cost, calls and tokens per model, provider, feature, actor, session or project.",
        params=BreakdownParams,
        columns=(
            BY,
            CALLS,
            COST,
            Column("cost_share", "ratio", "This group's share of the total cost."),
            Column("avg_cost_usd", "usd", "Mean cost of a priced call."),
            UNPRICED,
            ERRORS,
            INPUT,
            OUTPUT,
            CACHE_READ,
        ),
        compute=_breakdown,
    ),
    Report(
        name="requests.stats",
        title="Requests{by_suffix}",
        doc="Call count, error rate, latency and TTFT percentiles, average tokens.",
        params=StatsParams,
        record=lambda p: p.by is None,
        columns=_STATS_COLUMNS,
        compute=lambda r, p: r.requests_stats(by=p.by, filters=p.filters()),
    ),
    Report(
        name="requests.list",
        title="Recent calls",
        doc="The most recent calls, newest first.",
        params=ListParams,
        columns=(
            EVENT_ID,
            OCCURRED_AT,
            Column("project", "text", "The project."),
            FEATURE,
            MODEL,
            PROVIDER,
            ACTOR_ID,
            Column("session_id", "text", "The session (conversation)."),
            TRACE_ID,
            STATUS,
            ERROR_TYPE,
            INPUT,
            OUTPUT,
            CACHE_READ,
            COST,
            LATENCY,
            Column("ttft_ms", "ms", "Time to first token (streams)."),
            Column("stream", "bool", "Whether the call streamed."),
        ),
        table_columns=(
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
        ),
        compute=lambda r, p: r.requests_list(limit=p.limit, offset=p.offset, filters=p.filters()),
    ),
    Report(
        name="requests.trends",
        title="Requests per {interval}",
        doc="Calls, error rate and latency per hour, day or week, oldest first.",
        params=HourlyTrendParams,
        columns=(BUCKET, CALLS, ERRORS, ERROR_RATE, AVG_LATENCY, P95_LATENCY),
        compute=lambda r, p: r.requests_trends(interval=p.interval, filters=p.filters()),
    ),
    Report(
        name="requests.models",
        title="Models",
        doc="Per model: calls, error rate, cost, tokens and latency, busiest first.",
        params=WindowOnly,
        columns=(
            MODEL,
            PROVIDER,
            CALLS,
            ERRORS,
            ERROR_RATE,
            COST,
            INPUT,
            OUTPUT,
            AVG_LATENCY,
            P95_LATENCY,
        ),
        compute=lambda r, p: r.requests_models(filters=p.filters()),
    ),
    Report(
        name="errors",
        title="Errors",
        doc="Failed calls grouped by error type, feature and model, most frequent first.",
        params=ErrorParams,
        columns=(
            ERROR_TYPE,
            FEATURE,
            MODEL,
            Column("count", "count", "Failed calls in this group."),
            Column("share", "ratio", "This group's share of all failed calls."),
            Column("error_rate", "ratio", "Failed / all calls of this feature and model."),
            Column("example_message", "text", "One error message of the group.", width=80),
        ),
        compute=lambda r, p: r.errors(limit=p.limit, filters=p.filters()),
    ),
    Report(
        name="feedback",
        title="Feedback by {by}",
        doc="User feedback on calls: thumbs up/down, regenerations, edits, implicit quality.",
        params=FeedbackParams,
        columns=(
            BY,
            CALLS,
            Column("feedback", "count", "Feedback events."),
            Column("up", "count", "Thumbs up."),
            Column("down", "count", "Thumbs down."),
            Column("up_ratio", "ratio", "Up / rated."),
            Column("regenerated", "count", "Answers the user regenerated."),
            Column("edited", "count", "Answers the user edited."),
            Column("regenerated_rate", "ratio", "Regenerated / calls."),
            Column("edited_rate", "ratio", "Edited / calls."),
            Column("quality_score", "number", "Implicit quality score, 0–1."),
        ),
        compute=lambda r, p: r.feedback(by=p.by, filters=p.filters()),
    ),
    Report(
        name="sessions",
        title="Sessions",
        doc="Conversations: turns, cost, tokens, errors and duration per session, costliest first.",
        params=SessionParams,
        columns=(
            Column("session_id", "text", "The session (conversation)."),
            ACTOR_ID,
            Column("turns", "count", "LLM calls in the session."),
            COST,
            INPUT,
            OUTPUT,
            ERRORS,
            Column("first_at", "time", "The session's first call."),
            Column("last_at", "time", "The session's last call."),
            Column("duration_s", "seconds", "From the first call to the last."),
        ),
        compute=lambda r, p: r.sessions(limit=p.limit, filters=p.filters()),
    ),
    Report(
        name="agents",
        title="Agents",
        doc="Calls made by agents (actor_type agent): cost, errors and latency per agent.",
        params=WindowOnly,
        columns=(ACTOR_ID, CALLS, ERRORS, ERROR_RATE, COST, AVG_LATENCY, P95_LATENCY),
        compute=lambda r, p: r.agents(filters=p.filters()),
    ),
    Report(
        name="tools",
        title="Tools",
        doc="Tool/function executions: calls, error rate and latency per tool, busiest first.",
        params=WindowOnly,
        columns=(
            Column("name", "text", "The tool."),
            Column("calls", "count", "Executions."),
            Column("errors", "count", "Failed executions."),
            ERROR_RATE,
            AVG_LATENCY,
            P95_LATENCY,
        ),
        compute=lambda r, p: r.tools(filters=p.filters()),
    ),
    Report(
        name="trace",
        title="Trace {trace_id}",
        doc="Every event of one trace (calls, tool calls, feedback…), oldest first.",
        params=TraceParams,
        columns=(
            EVENT_ID,
            OCCURRED_AT,
            Column("kind", "text", "llm_call, tool_call, feedback or product."),
            Column("name", "text", "The tool or product event's name."),
            FEATURE,
            MODEL,
            PROVIDER,
            STATUS,
            ERROR_TYPE,
            LATENCY,
            COST,
            Column("parent_id", "text", "The event this one belongs to."),
            ACTOR_ID,
        ),
        compute=lambda r, p: r.trace(p.trace_id),
    ),
)
