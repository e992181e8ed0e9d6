"""Reports read from the events table itself: listings, traces, and the raw fallbacks of the
session and per-actor/per-session cost reports (filters the rollups do not carry)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmtally.query import registry
from llmtally.query.aggregate import Agg, aware, collect
from llmtally.query.filters import Filters
from llmtally.store.schema import events

Row = dict[str, Any]

# the events columns the two listings return, as their reports declare them
LIST_COLUMNS = tuple(column.name for column in registry.get("requests.list").columns)
TRACE_COLUMNS = tuple(column.name for column in registry.get("trace").columns)


def _row(columns: tuple[str, ...], values: Any) -> Row:
    out = dict(zip(columns, values, strict=True))
    if out.get("occurred_at") is not None:
        out["occurred_at"] = aware(out["occurred_at"])
    if "event_id" in out:
        out["event_id"] = str(out["event_id"])
    if out.get("stream") is not None:
        out["stream"] = bool(out["stream"])
    return out


def requests_list(conn: sa.Connection, f: Filters, limit: int, offset: int) -> list[Row]:
    """Calls newest first, one page."""
    c = events.c
    query = (
        sa.select(*[c[name] for name in LIST_COLUMNS])
        .where(f.where())
        .order_by(c.occurred_at.desc(), c.event_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_row(LIST_COLUMNS, r) for r in conn.execute(query)]


def trace(conn: sa.Connection, trace_id: str, project: str | None) -> list[Row]:
    """Every event of a trace, any kind, oldest first."""
    c = events.c
    where = c.trace_id == trace_id
    if project is not None:
        where &= c.project == project
    query = (
        sa.select(*[c[name] for name in TRACE_COLUMNS])
        .where(where)
        .order_by(c.occurred_at, c.event_id)
    )
    return [_row(TRACE_COLUMNS, r) for r in conn.execute(query)]


def sessions(conn: sa.Connection, f: Filters, limit: int) -> list[Row]:
    """Per session: turns (calls), cost, tokens, errors, first/last call and duration."""
    c = events.c
    cost = sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0)
    query = (
        sa.select(
            c.session_id,
            sa.func.max(c.actor_id),
            sa.func.count(),
            cost,
            sa.func.coalesce(sa.func.sum(c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.output_tokens), 0),
            sa.func.sum(sa.case((c.status == "error", 1), else_=0)),
            sa.func.min(c.occurred_at),
            sa.func.max(c.occurred_at),
        )
        .where(f.where() & c.session_id.is_not(None))
        .group_by(c.session_id)
        .order_by(cost.desc(), sa.func.count().desc(), c.session_id)
        .limit(limit)
    )
    rows = []
    for sid, actor, turns, total, inp, out, errors, first, last in conn.execute(query):
        first, last = aware(first), aware(last)
        rows.append(
            {
                "session_id": sid,
                "actor_id": actor,
                "turns": int(turns),
                "cost_usd": float(total),
                "input_tokens": int(inp),
                "output_tokens": int(out),
                "errors": int(errors or 0),
                "first_at": first,
                "last_at": last,
                "duration_s": (last - first).total_seconds(),
            }
        )
    return rows


def top_breakdown(conn: sa.Connection, f: Filters, by: str, column: str, limit: int) -> list[Row]:
    """``costs_breakdown`` for a raw-only dimension, ranked and limited in SQL."""
    c = events.c
    key = c[column]
    where = f.where()
    cost = sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0)
    calls = sa.func.count()
    query = (
        sa.select(
            key,
            calls,
            cost,
            sa.func.count(c.cost_usd),
            sa.func.sum(sa.case((c.status == "error", 1), else_=0)),
            sa.func.coalesce(sa.func.sum(c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.cache_read_tokens), 0),
        )
        .where(where if by != "session" else where & key.is_not(None))
        .group_by(key)
        .order_by(cost.desc(), calls.desc(), key)
        .limit(limit)
    )
    # the total for the shares comes from the rollups, not a second scan of the events
    total = float(collect(conn, f).get((), Agg()).cost_usd)
    rows = []
    for value, n, spent, priced, errors, inp, out, cached in conn.execute(query):
        spent, priced = float(spent), int(priced)
        rows.append(
            {
                by: value,
                "calls": int(n),
                "cost_usd": spent,
                "cost_share": spent / total if total else 0.0,
                "avg_cost_usd": spent / priced if priced else None,
                "unpriced_calls": int(n) - priced,
                "errors": int(errors or 0),
                "input_tokens": int(inp),
                "output_tokens": int(out),
                "cache_read_tokens": int(cached),
            }
        )
    return rows
