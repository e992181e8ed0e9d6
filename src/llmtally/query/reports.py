"""The query layer: every report the CLI (and later the server, dashboard and MCP) shows.

Each report returns a list of flat dicts with snake_case keys and numbers as numbers.
All filtering goes through ``Filters`` so every view offers the same options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from llmtally.errors import QueryError
from llmtally.query.timeparse import parse_time
from llmtally.store.schema import events

DIMENSIONS = {
    "model": events.c.model,
    "provider": events.c.provider,
    "feature": events.c.feature,
    "actor": events.c.actor_id,
    "session": events.c.session_id,
    "project": events.c.project,
    "status": events.c.status,
}

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters every report takes."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    feature: str | None = None
    model: str | None = None
    provider: str | None = None
    actor: str | None = None
    status: str | None = None

    @classmethod
    def parse(
        cls,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        **equals: str | None,
    ) -> Filters:
        """Build filters from user input (``since="7d"``…); bad values raise QueryError."""
        now = datetime.now(UTC)
        start = parse_time(since, "since", now=now)
        end = parse_time(until, "until", now=now)
        if start is not None and end is not None and start >= end:
            raise QueryError("since", "must be before --until")
        unknown = set(equals) - {"project", "feature", "model", "provider", "actor", "status"}
        if unknown:
            raise QueryError(sorted(unknown)[0], "is not a filter")
        if equals.get("status") not in (None, "success", "error"):
            raise QueryError("status", "must be success or error")
        return cls(
            since=start.astimezone(UTC) if start else None,
            until=end.astimezone(UTC) if end else None,
            **equals,
        )

    def where(self, kind: str | None = "llm_call") -> sa.ColumnElement[bool]:
        """The SQL condition for these filters."""
        c = events.c
        parts: list[sa.ColumnElement[bool]] = []
        if kind is not None:
            parts.append(c.kind == kind)
        if self.since is not None:
            parts.append(c.occurred_at >= self.since)
        if self.until is not None:
            parts.append(c.occurred_at < self.until)
        for name, column in (
            ("project", c.project),
            ("feature", c.feature),
            ("model", c.model),
            ("provider", c.provider),
            ("actor", c.actor_id),
            ("status", c.status),
        ):
            value = getattr(self, name)
            if value is not None:
                parts.append(column == value)
        return sa.and_(sa.true(), *parts)


def _num(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _percentiles(
    conn: sa.Connection,
    column: sa.ColumnElement[Any],
    where: sa.ColumnElement[bool],
    qs: Sequence[float],
) -> list[float | None]:
    """Exact continuous percentiles (linear interpolation, like percentile_cont)."""
    if conn.dialect.name == "postgresql":
        exprs = [sa.func.percentile_cont(q).within_group(column) for q in qs]
        row = conn.execute(sa.select(*exprs).where(where & column.is_not(None))).one()
        return [None if v is None else float(v) for v in row]
    values = [
        v
        for (v,) in conn.execute(
            sa.select(column).where(where & column.is_not(None)).order_by(column)
        )
    ]
    return [_interpolate(values, q) for q in qs]


def _interpolate(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


class Reports:
    """Reports over one database."""

    def __init__(self, engine: sa.Engine, *, project: str | None = None) -> None:
        self.engine = engine
        self.project = project

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def _filters(self, filters: Filters | None, kwargs: dict[str, Any]) -> Filters:
        if filters is None:
            filters = Filters.parse(**kwargs)
        elif kwargs:
            raise QueryError("filters", "give either a Filters object or keyword filters")
        if filters.project is None and self.project is not None:
            filters = Filters(**{**_as_dict(filters), "project": self.project})
        return filters

    def overview(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Calls, cost, tokens, error rate, latency percentiles and active actors."""
        f = self._filters(filters, kwargs)
        c = events.c
        where = f.where()
        is_error = sa.case((c.status == "error", 1), else_=0)
        query = sa.select(
            sa.func.count().label("calls"),
            sa.func.sum(is_error).label("errors"),
            sa.func.sum(c.cost_usd).label("cost_usd"),
            sa.func.sum(sa.case((c.cost_usd.is_(None), 1), else_=0)).label("unpriced_calls"),
            sa.func.sum(c.input_tokens).label("input_tokens"),
            sa.func.sum(c.output_tokens).label("output_tokens"),
            sa.func.sum(c.cache_read_tokens).label("cache_read_tokens"),
            sa.func.sum(c.cache_write_tokens).label("cache_write_tokens"),
            sa.func.count(sa.distinct(c.actor_id)).label("active_actors"),
        ).where(where)
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
            p50, p95 = _percentiles(conn, c.latency_ms, where, (0.5, 0.95))
        calls = int(row.calls)
        return [
            {
                "calls": calls,
                "errors": int(row.errors or 0),
                "error_rate": (int(row.errors or 0) / calls) if calls else 0.0,
                "cost_usd": _num(row.cost_usd),
                "unpriced_calls": int(row.unpriced_calls or 0),
                "input_tokens": int(row.input_tokens or 0),
                "output_tokens": int(row.output_tokens or 0),
                "cache_read_tokens": int(row.cache_read_tokens or 0),
                "cache_write_tokens": int(row.cache_write_tokens or 0),
                "active_actors": int(row.active_actors or 0),
                "p50_latency_ms": p50,
                "p95_latency_ms": p95,
            }
        ]

    def costs_breakdown(
        self,
        by: str = "model",
        filters: Filters | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> list[Row]:
        """Cost, calls and tokens per value of one dimension, most expensive first."""
        column = DIMENSIONS.get(by)
        if column is None:
            raise QueryError("by", f"must be one of {', '.join(DIMENSIONS)}, got {by!r}")
        f = self._filters(filters, kwargs)
        c = events.c
        cost = sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0)
        query = (
            sa.select(
                column.label("key"),
                sa.func.count().label("calls"),
                sa.func.sum(sa.case((c.status == "error", 1), else_=0)).label("errors"),
                cost.label("cost_usd"),
                sa.func.sum(sa.case((c.cost_usd.is_(None), 1), else_=0)).label("unpriced_calls"),
                sa.func.sum(c.input_tokens).label("input_tokens"),
                sa.func.sum(c.output_tokens).label("output_tokens"),
                sa.func.sum(c.cache_read_tokens).label("cache_read_tokens"),
            )
            .where(f.where())
            .group_by(column)
            .order_by(cost.desc(), sa.func.count().desc(), column)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            total = sum(_num(r.cost_usd) for r in rows)
            if limit is not None and len(rows) == limit:
                # shares are of the whole, not of the rows shown
                total = _num(
                    conn.execute(sa.select(sa.func.sum(c.cost_usd)).where(f.where())).scalar()
                )
        return [
            {
                by: r.key,
                "calls": int(r.calls),
                "cost_usd": _num(r.cost_usd),
                "cost_share": (_num(r.cost_usd) / total) if total else 0.0,
                "avg_cost_usd": _num(r.cost_usd) / int(r.calls) if r.calls else 0.0,
                "unpriced_calls": int(r.unpriced_calls or 0),
                "errors": int(r.errors or 0),
                "input_tokens": int(r.input_tokens or 0),
                "output_tokens": int(r.output_tokens or 0),
                "cache_read_tokens": int(r.cache_read_tokens or 0),
            }
            for r in rows
        ]

    def costs_summary(self, filters: Filters | None = None, **kwargs: Any) -> list[Row]:
        """Total cost with per-call and per-day averages."""
        f = self._filters(filters, kwargs)
        c = events.c
        query = sa.select(
            sa.func.count().label("calls"),
            sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0).label("cost_usd"),
            sa.func.min(c.occurred_at).label("first"),
            sa.func.max(c.occurred_at).label("last"),
        ).where(f.where())
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        calls, cost = int(row.calls), _num(row.cost_usd)
        days = 0.0
        if row.first is not None and row.last is not None:
            start = f.since or row.first
            end = f.until or row.last
            days = max((_aware(end) - _aware(start)).total_seconds() / 86400, 1 / 24)
        return [
            {
                "calls": calls,
                "cost_usd": cost,
                "avg_cost_per_call_usd": cost / calls if calls else 0.0,
                "days": round(days, 3),
                "avg_cost_per_day_usd": cost / days if days else 0.0,
            }
        ]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _as_dict(filters: Filters) -> dict[str, Any]:
    return {name: getattr(filters, name) for name in Filters.__slots__}
