"""The query layer: every report the CLI (and later the server, dashboard and MCP) shows.

Each report returns a list of flat dicts with snake_case keys, numbers as numbers and
datetimes as aware UTC ``datetime``. Filters are a ``Filters`` object or keyword
arguments (``since="7d"``, ``model="gpt-4o"``…). Counting reports come from hourly
rollups plus raw edges (``query.aggregate``); listings come from the events table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llmtally.errors import QueryError
from llmtally.query import activity, actors, registry, sessions
from llmtally.query import feedback as feedback_report
from llmtally.query.aggregate import Agg, aware, collect
from llmtally.query.connect import connect
from llmtally.query.filters import Filters
from llmtally.query.registry import Result
from llmtally.query.vocabulary import DIMENSION_COLUMNS, FEEDBACK_BY, GROUP_BY, INTERVALS
from llmtally.store import sketch
from llmtally.store.schema import events

# dimensions a breakdown or a stats report can be grouped by (report name → events column)
DIMENSIONS = {name: DIMENSION_COLUMNS[name] for name in GROUP_BY}

Row = dict[str, Any]

QualityWeights = feedback_report.QualityWeights

__all__ = ["DIMENSIONS", "Filters", "QualityWeights", "Reports"]


def _rate(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _mean(total: float, count: float) -> float | None:
    return total / count if count else None


def _change(now: float, before: float) -> float | None:
    return (now - before) / before if before else None


def _by(by: str | None) -> list[str]:
    if by is None:
        return []
    if by not in DIMENSIONS:
        raise QueryError("by", f"must be one of {', '.join(DIMENSIONS)}, got {by!r}")
    return [by]


def _interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise QueryError("interval", f"must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return interval


def _limit(limit: int | None, argument: str = "limit") -> int | None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise QueryError(argument, f"must be a whole number >= 0, got {limit!r}")
    return limit


def latency_fields(agg: Agg, *, p99: bool = True, ttft: bool = True) -> Row:
    """avg/p50/p95(/p99) latency and TTFT of a group, in ms."""
    p50, p95, p99_value = sketch.quantiles(agg.latency, (0.5, 0.95, 0.99))
    out: Row = {
        "avg_latency_ms": agg.avg_latency,
        "p50_latency_ms": p50,
        "p95_latency_ms": p95,
    }
    if p99:
        out["p99_latency_ms"] = p99_value
    if ttft:
        t50, t95 = sketch.quantiles(agg.ttft, (0.5, 0.95))
        out.update(avg_ttft_ms=agg.avg_ttft, p50_ttft_ms=t50, p95_ttft_ms=t95)
    return out


class Reports:
    """Reports over one database."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        project: str | None = None,
        quality_weights: QualityWeights | Mapping[str, float] | None = None,
    ) -> None:
        self.engine = engine
        self.project = project
        self.quality_weights = QualityWeights.of(quality_weights)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def run(self, name: str, **values: Any) -> Result:
        """Any report of the registry by name, with loose values: ``run("costs.breakdown",
        by="feature", since="7d")``; the result carries its columns even when empty."""
        return registry.get(name).run(self, **values)

    def _connect(self) -> contextlib.AbstractContextManager[sa.Connection]:
        """A connection for one report; database errors leave as ``StoreError``."""
        return connect(self.engine)

    def _filters(self, filters: Filters | None, kwargs: dict[str, Any]) -> Filters:
        if filters is None:
            filters = Filters.parse(**kwargs)
        elif kwargs:
            raise QueryError("filters", "give either a Filters object or keyword filters")
        return filters.with_project(self.project)

    # -- overview and costs ------------------------------------------------------------

    def overview(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Calls, cost, tokens, errors, latency percentiles, actors, top model and feature."""
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            row = self._overview_row(conn, f)
            previous = f.previous()
            if previous is not None:
                before = self._overview_row(conn, previous, top=False)
                row.update(
                    prev_calls=before["calls"],
                    prev_cost_usd=before["cost_usd"],
                    prev_error_rate=before["error_rate"],
                    prev_p95_latency_ms=before["p95_latency_ms"],
                    calls_change=_change(row["calls"], before["calls"]),
                    cost_change=_change(row["cost_usd"], before["cost_usd"]),
                )
        return [row]

    def _overview_row(self, conn: sa.Connection, f: Filters, *, top: bool = True) -> Row:
        agg = collect(conn, f, histograms=True).get((), Agg())
        p50, p95 = sketch.quantiles(agg.latency, (0.5, 0.95))
        (t95,) = sketch.quantiles(agg.ttft, (0.95,))
        calls = int(agg.calls)
        row: Row = {
            "calls": calls,
            "errors": int(agg.errors),
            "error_rate": _rate(agg.errors, calls),
            "cost_usd": float(agg.cost_usd),
            "unpriced_calls": calls - int(agg.priced_calls),
            "input_tokens": int(agg.input_tokens),
            "output_tokens": int(agg.output_tokens),
            "cache_read_tokens": int(agg.cache_read_tokens),
            "cache_write_tokens": int(agg.cache_write_tokens),
            "reasoning_tokens": int(agg.reasoning_tokens),
            "active_actors": actors.active_actors(conn, f),
            "avg_latency_ms": agg.avg_latency,
            "p50_latency_ms": p50,
            "p95_latency_ms": p95,
            "p95_ttft_ms": t95,
        }
        if top:
            # one pass for both: every collect reads the window's raw edges again
            pairs = collect(conn, f, ["model", "feature"])
            row["top_model"] = _top(_regroup(pairs, 0))
            row["top_feature"] = _top(_regroup(pairs, 1))
        return row

    def costs_summary(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Total cost with per-call and per-day averages."""
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            agg = collect(conn, f).get((), Agg())
            # an open end of the window is the first or last call in it; one query per end,
            # read from the occurred_at index (min() and max() in one SELECT scan the window)
            first = _edge_call(conn, f, newest=False) if f.since is None else None
            last = _edge_call(conn, f, newest=True) if f.until is None else None
        calls, cost = int(agg.calls), float(agg.cost_usd)
        days = 0.0
        start, end = f.since, f.until
        if first is not None or last is not None:  # the window holds calls
            start = start or first
            end = end or last
        if start is not None and end is not None:
            days = max((end - start).total_seconds() / 86400, 1 / 24)
        return [
            {
                "calls": calls,
                "cost_usd": cost,
                "avg_cost_per_call_usd": _mean(cost, agg.priced_calls),
                "days": round(days, 3),
                "avg_cost_per_day_usd": _rate(cost, days),
            }
        ]

    def costs_trends(
        self, interval: str = "day", filters: Filters | None = None, **kwargs: Any
    ) -> list[Row]:
        """Cost, calls and tokens per hour, day or ISO week, oldest first."""
        step = _interval(interval)
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            groups = collect(conn, f, interval=step)
        return [
            {
                "bucket": bucket,
                "calls": int(agg.calls),
                "errors": int(agg.errors),
                "cost_usd": float(agg.cost_usd),
                "input_tokens": int(agg.input_tokens),
                "output_tokens": int(agg.output_tokens),
            }
            for (bucket,), agg in sorted(groups.items())
            if agg.calls
        ]

    def costs_breakdown(
        self,
        by: str = "model",
        filters: Filters | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> list[Row]:
        """Cost, calls and tokens per value of one dimension, most expensive first."""
        dims = _by(by)
        _limit(limit)
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            if by == "actor" and f.project_and_time_only():
                return _actor_breakdown(actors.by_actor(conn, f), limit)
            if by == "session" and f.project_and_time_only():
                total = float(collect(conn, f).get((), Agg()).cost_usd)
                return [_session_breakdown(row, total) for row in sessions.ranked(conn, f, limit)]
            if limit is not None and by in ("actor", "session"):
                # not rolled up under these filters: let the database rank and cut
                return activity.top_breakdown(conn, f, by, DIMENSIONS[by], limit)
            groups = collect(conn, f, dims)
            if by == "session":  # calls without a session are no session
                groups.pop((None,), None)
                total = float(collect(conn, f).get((), Agg()).cost_usd)
            else:
                total = sum(agg.cost_usd for agg in groups.values())
        rows = [
            {
                by: key[0],
                "calls": int(agg.calls),
                "cost_usd": float(agg.cost_usd),
                "cost_share": _rate(agg.cost_usd, total),
                # unpriced calls are unknown, not free: average over priced ones
                "avg_cost_usd": _mean(agg.cost_usd, agg.priced_calls),
                "unpriced_calls": int(agg.calls - agg.priced_calls),
                "errors": int(agg.errors),
                "input_tokens": int(agg.input_tokens),
                "output_tokens": int(agg.output_tokens),
                "cache_read_tokens": int(agg.cache_read_tokens),
            }
            for key, agg in groups.items()
            if agg.calls
        ]
        rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r[by])))
        return rows[:limit] if limit is not None else rows

    # -- requests ----------------------------------------------------------------------

    def requests_stats(
        self, by: str | None = None, filters: Filters | None = None, **kwargs: Any
    ) -> list[Row]:
        """Count, error rate, latency and TTFT percentiles, average tokens, per group."""
        dims = _by(by)
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            groups = collect(conn, f, dims, histograms=True)
        rows = []
        for key, agg in groups.items():
            if not agg.calls:
                continue
            row: Row = {by: key[0]} if by else {}
            row.update(
                calls=int(agg.calls),
                errors=int(agg.errors),
                error_rate=_rate(agg.errors, agg.calls),
                **latency_fields(agg),
                # means over the calls that reported usage (failed calls often have none)
                avg_input_tokens=agg.input_tokens / agg.input_count if agg.input_count else None,
                avg_output_tokens=(
                    agg.output_tokens / agg.output_count if agg.output_count else None
                ),
            )
            rows.append(row)
        rows.sort(key=lambda r: (-r["calls"], str(r.get(by or "", ""))))
        return rows

    def requests_list(
        self, limit: int = 50, offset: int = 0, filters: Filters | None = None, **kwargs: Any
    ) -> list[Row]:
        """Individual calls, newest first."""
        _limit(limit)
        _limit(offset, "offset")
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            return activity.requests_list(conn, f, limit, offset)

    def requests_trends(
        self, interval: str = "hour", filters: Filters | None = None, **kwargs: Any
    ) -> list[Row]:
        """Calls, errors and latency per hour, day or ISO week, oldest first."""
        step = _interval(interval)
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            groups = collect(conn, f, histograms="latency", interval=step)
        rows = []
        for (bucket,), agg in sorted(groups.items()):
            if not agg.calls:
                continue
            (p95,) = sketch.quantiles(agg.latency, (0.95,))
            rows.append(
                {
                    "bucket": bucket,
                    "calls": int(agg.calls),
                    "errors": int(agg.errors),
                    "error_rate": _rate(agg.errors, agg.calls),
                    "avg_latency_ms": agg.avg_latency,
                    "p95_latency_ms": p95,
                }
            )
        return rows

    def requests_models(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Per model and provider: calls, errors, cost, tokens and latency."""
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            groups = collect(conn, f, ["model", "provider"], histograms="latency")
        rows = []
        for (model, provider), agg in groups.items():
            if not agg.calls:
                continue
            (p95,) = sketch.quantiles(agg.latency, (0.95,))
            rows.append(
                {
                    "model": model,
                    "provider": provider,
                    "calls": int(agg.calls),
                    "errors": int(agg.errors),
                    "error_rate": _rate(agg.errors, agg.calls),
                    "cost_usd": float(agg.cost_usd),
                    "input_tokens": int(agg.input_tokens),
                    "output_tokens": int(agg.output_tokens),
                    "avg_latency_ms": agg.avg_latency,
                    "p95_latency_ms": p95,
                }
            )
        rows.sort(key=lambda r: (-r["calls"], str(r["model"]), str(r["provider"])))
        return rows

    # -- errors, feedback, sessions, agents, tools, traces -----------------------------

    def errors(self, limit: int = 20, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Top error types per feature and model: count, share, rate and an example message."""
        _limit(limit)
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            failed = collect(conn, f.window(f.since, f.until), ["error_type", "feature", "model"])
            calls = collect(conn, f, ["feature", "model"])
        total = sum(agg.errors for agg in failed.values())
        rows = [
            {
                "error_type": error_type,
                "feature": feature,
                "model": model,
                "count": int(agg.errors),
                "share": _rate(agg.errors, total),
                "error_rate": _rate(agg.errors, calls[(feature, model)].calls),
                "example_message": agg.example,
            }
            for (error_type, feature, model), agg in failed.items()
            if agg.errors
        ]
        rows.sort(
            key=lambda r: (-r["count"], str(r["error_type"]), str(r["feature"]), str(r["model"]))
        )
        return rows[:limit]

    def feedback(
        self, by: str = "feature", filters: Filters | None = None, **kwargs: Any
    ) -> list[Row]:
        """Ratings, regenerations, edits and implicit quality per feature or model."""
        if by not in FEEDBACK_BY:
            raise QueryError("by", f"must be {' or '.join(FEEDBACK_BY)}, got {by!r}")
        f = self._filters(filters, kwargs)
        weights = self.quality_weights
        with self._connect() as conn:
            calls = collect(conn, f, [by])
            groups = feedback_report.sums(conn, f, by, weights)
        counts = {key[0]: agg.calls for key, agg in calls.items()}
        return feedback_report.rows(groups, counts, by, weights)

    def sessions(self, limit: int = 50, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Sessions with their cost, turns and duration, most expensive first."""
        _limit(limit)
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            if not f.project_and_time_only():
                return activity.sessions(conn, f, limit)
            found = sessions.ranked(conn, f, limit)
        return [
            {
                "session_id": row["session_id"],
                "actor_id": row["actor_id"],
                "turns": row["turns"],
                "cost_usd": row["cost_usd"],
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "errors": row["errors"],
                "first_at": row["first_at"],
                "last_at": row["last_at"],
                "duration_s": (row["last_at"] - row["first_at"]).total_seconds(),
            }
            for row in found
        ]

    def agents(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Actors of type agent with their calls, errors, cost and latency."""
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            if f.project_and_time_only():
                return _agents(actors.by_actor(conn, f, agents=True))
            groups = collect(
                conn, f, ["actor"], histograms="latency", extra=events.c.actor_type == "agent"
            )
        rows = []
        for (actor,), agg in groups.items():
            if not agg.calls:
                continue
            (p95,) = sketch.quantiles(agg.latency, (0.95,))
            rows.append(
                {
                    "actor_id": actor,
                    "calls": int(agg.calls),
                    "errors": int(agg.errors),
                    "error_rate": _rate(agg.errors, agg.calls),
                    "cost_usd": float(agg.cost_usd),
                    "avg_latency_ms": agg.avg_latency,
                    "p95_latency_ms": p95,
                }
            )
        rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r["actor_id"])))
        return rows

    def tools(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Tool calls by name: calls, errors and latency."""
        f = self._filters(filters, kwargs)
        with self._connect() as conn:
            groups = collect(conn, f, ["name"], kind="tool_call", histograms="latency")
        rows = []
        for (name,), agg in groups.items():
            if not agg.calls:
                continue
            (p95,) = sketch.quantiles(agg.latency, (0.95,))
            rows.append(
                {
                    "name": name,
                    "calls": int(agg.calls),
                    "errors": int(agg.errors),
                    "error_rate": _rate(agg.errors, agg.calls),
                    "avg_latency_ms": agg.avg_latency,
                    "p95_latency_ms": p95,
                }
            )
        rows.sort(key=lambda r: (-r["calls"], str(r["name"])))
        return rows

    def trace(self, trace_id: str) -> list[Row]:
        """Every event of one trace, oldest first."""
        if not isinstance(trace_id, str) or not trace_id:
            raise QueryError("trace_id", "must be a non-empty string")
        with self._connect() as conn:
            return activity.trace(conn, trace_id, self.project)


def _edge_call(conn: sa.Connection, f: Filters, *, newest: bool) -> datetime | None:
    """When the first (or the newest) call under ``f`` happened; None without calls."""
    when = events.c.occurred_at
    query = sa.select(when).where(f.where()).order_by(when.desc() if newest else when).limit(1)
    found = conn.execute(query).scalar()
    return None if found is None else aware(found)


def _regroup(groups: dict[tuple[Any, ...], Agg], position: int) -> dict[tuple[Any, ...], Agg]:
    """Groups keyed by one of their key's parts."""
    out: dict[tuple[Any, ...], Agg] = {}
    for key, agg in groups.items():
        found = out.get((key[position],))
        if found is None:
            out[(key[position],)] = found = Agg()
        found.add(agg)
    return out


def _top(groups: dict[tuple[Any, ...], Agg]) -> Any:
    best = max(
        (item for item in groups.items() if item[1].cost_usd > 0),
        key=lambda item: (item[1].cost_usd, str(item[0][0])),
        default=None,
    )
    return None if best is None else best[0][0]


def _actor_breakdown(groups: dict[str | None, actors.ActorAgg], limit: int | None) -> list[Row]:
    total = sum(agg.get("cost_usd") for agg in groups.values())
    rows: list[Row] = []
    for actor, agg in groups.items():
        calls, cost, priced = agg.get("calls"), agg.get("cost_usd"), agg.get("priced_calls")
        if not calls:
            continue
        rows.append(
            {
                "actor": actor,
                "calls": int(calls),
                "cost_usd": float(cost),
                "cost_share": _rate(cost, total),
                "avg_cost_usd": _mean(cost, priced),
                "unpriced_calls": int(calls - priced),
                "errors": int(agg.get("errors")),
                "input_tokens": int(agg.get("input_tokens")),
                "output_tokens": int(agg.get("output_tokens")),
                "cache_read_tokens": int(agg.get("cache_read_tokens")),
            }
        )
    rows.sort(key=lambda r: (-float(r["cost_usd"]), -int(r["calls"]), str(r["actor"])))
    return rows[:limit] if limit is not None else rows


def _session_breakdown(row: Row, total: float) -> Row:
    return {
        "session": row["session_id"],
        "calls": row["turns"],
        "cost_usd": row["cost_usd"],
        "cost_share": _rate(row["cost_usd"], total),
        "avg_cost_usd": _mean(row["cost_usd"], row["priced_calls"]),
        "unpriced_calls": row["turns"] - row["priced_calls"],
        "errors": row["errors"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cache_read_tokens": row["cache_read_tokens"],
    }


def _agents(groups: dict[str | None, actors.ActorAgg]) -> list[Row]:
    rows: list[Row] = []
    for actor, agg in groups.items():
        calls = agg.get("calls")
        if not calls:
            continue
        (p95,) = sketch.quantiles(agg.latency, (0.95,))
        rows.append(
            {
                "actor_id": actor,
                "calls": int(calls),
                "errors": int(agg.get("errors")),
                "error_rate": _rate(agg.get("errors"), calls),
                "cost_usd": float(agg.get("cost_usd")),
                "avg_latency_ms": _mean(agg.get("latency_sum"), agg.get("latency_count")),
                "p95_latency_ms": p95,
            }
        )
    rows.sort(key=lambda r: (-float(r["cost_usd"]), -int(r["calls"]), str(r["actor_id"])))
    return rows
