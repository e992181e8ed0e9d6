"""Reports read from the events table itself: listings, traces, sessions, feedback, actors."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from llmtally.query.aggregate import Agg, aware, collect
from llmtally.query.filters import Filters
from llmtally.store.schema import events

Row = dict[str, Any]

LIST_COLUMNS = (
    "event_id", "occurred_at", "project", "feature", "model", "provider", "actor_id",
    "session_id", "trace_id", "status", "error_type", "input_tokens", "output_tokens",
    "cache_read_tokens", "cost_usd", "latency_ms", "ttft_ms", "stream",
)  # fmt: skip
TRACE_COLUMNS = (
    "event_id", "occurred_at", "kind", "name", "feature", "model", "provider", "status",
    "error_type", "latency_ms", "cost_usd", "parent_id", "actor_id",
)  # fmt: skip

# seed 003's default weights for the implicit quality score of a call
REGENERATED_PENALTY = 0.3
EDITED_PENALTY = 0.15
SLOW_MS = 3000.0
SLOW_FACTOR = 0.6


def quality_score(regenerated: bool, edited: bool, latency_ms: float | None) -> float:
    """Implicit quality of one call from its feedback signals and latency, in [0, 1]."""
    score = (
        1.0 - (REGENERATED_PENALTY if regenerated else 0.0) - (EDITED_PENALTY if edited else 0.0)
    )
    if latency_ms is not None and latency_ms > SLOW_MS:
        score *= SLOW_FACTOR
    return max(0.0, min(1.0, score))


def _row(columns: tuple[str, ...], values: Any) -> Row:
    out = dict(zip(columns, values, strict=True))
    if out.get("occurred_at") is not None:
        out["occurred_at"] = aware(out["occurred_at"])
    if "event_id" in out:
        out["event_id"] = str(out["event_id"])
    if out.get("stream") is not None:
        out["stream"] = bool(out["stream"])
    return out


def active_actors(conn: sa.Connection, f: Filters) -> int:
    """Distinct actors with at least one call in the window."""
    c = events.c
    query = sa.select(sa.func.count(sa.distinct(c.actor_id))).where(f.where())
    return int(conn.execute(query).scalar_one() or 0)


def requests_list(engine: sa.Engine, f: Filters, limit: int, offset: int) -> list[Row]:
    """Calls newest first, one page."""
    c = events.c
    query = (
        sa.select(*[c[name] for name in LIST_COLUMNS])
        .where(f.where())
        .order_by(c.occurred_at.desc(), c.event_id.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        return [_row(LIST_COLUMNS, r) for r in conn.execute(query)]


def trace(engine: sa.Engine, trace_id: str, project: str | None) -> list[Row]:
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
    with engine.connect() as conn:
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


def feedback(conn: sa.Connection, f: Filters, by: str, calls: dict[Any, float]) -> list[Row]:
    """Feedback events matched to the calls they rate (time filter applies to the calls)."""
    call = events.alias("call")
    fb = events.alias("fb")
    column = call.c[by]
    query = (
        sa.select(column, call.c.event_id, call.c.latency_ms, fb.c.rating, fb.c.regenerated,
                  fb.c.edited)
        # parent_id is free text (a caller's own ids are allowed); event_id is a uuid on
        # PostgreSQL, so compare as text
        .select_from(fb.join(call, sa.cast(call.c.event_id, sa.String(36)) == fb.c.parent_id))
        .where(fb.c.kind == "feedback")
        .where(f.raw_where(("llm_call",), f.since, f.until, table=call))
    )  # fmt: skip
    per_key: dict[Any, dict[str, float]] = defaultdict(
        lambda: {"feedback": 0, "up": 0, "down": 0, "regenerated": 0, "edited": 0}
    )
    per_call: dict[Any, list[Any]] = {}
    for key, call_id, latency, rating, regenerated, edited in conn.execute(query):
        counts = per_key[key]
        counts["feedback"] += 1
        if rating == "up":
            counts["up"] += 1
        elif rating == "down":
            counts["down"] += 1
        counts["regenerated"] += bool(regenerated)
        counts["edited"] += bool(edited)
        signals = per_call.setdefault(call_id, [key, latency, False, False])
        signals[2] = signals[2] or bool(regenerated)
        signals[3] = signals[3] or bool(edited)
    scores: dict[Any, list[float]] = defaultdict(list)
    for key, latency, regenerated, edited in per_call.values():
        scores[key].append(quality_score(regenerated, edited, latency))
    rows = []
    for key in set(per_key) | {k for k, n in calls.items() if n}:
        counts = per_key.get(
            key, {"feedback": 0, "up": 0, "down": 0, "regenerated": 0, "edited": 0}
        )
        n_calls = int(calls.get(key, 0))
        rated = counts["up"] + counts["down"]
        rows.append(
            {
                by: key,
                "calls": n_calls,
                "feedback": int(counts["feedback"]),
                "up": int(counts["up"]),
                "down": int(counts["down"]),
                "up_ratio": counts["up"] / rated if rated else None,
                "regenerated": int(counts["regenerated"]),
                "edited": int(counts["edited"]),
                "regenerated_rate": counts["regenerated"] / n_calls if n_calls else 0.0,
                "edited_rate": counts["edited"] / n_calls if n_calls else 0.0,
                "quality_score": (sum(scores[key]) / len(scores[key])) if scores.get(key) else None,
            }
        )
    rows.sort(key=lambda r: (-r["feedback"], -r["calls"], str(r[by])))
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
        .where(where)
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
