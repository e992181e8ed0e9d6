"""Sessions ranked by cost over a window, from ``session_totals``.

A session whose calls all lie inside the window is answered by its stored totals; the
database ranks those and cuts at the limit. Sessions that straddle an end of the window
(started before ``since`` and still going, or going on after ``until``) are few: their
in-window figures are recomputed from the events between that end and the furthest
point they reach. Both are merged and ranked again, so the result equals a GROUP BY over
the window's events. Filters other than project and time use the events table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llmtally.query.aggregate import aware
from llmtally.query.filters import Filters
from llmtally.store.schema import events, session_totals

Row = dict[str, Any]
FIELDS = ("project", "session_id", "actor_id", "turns", "errors", "cost_usd", "priced_calls",
          "input_tokens", "output_tokens", "cache_read_tokens", "first_at", "last_at")  # fmt: skip


def usable(f: Filters) -> bool:
    """Whether session totals can answer under these filters (only project and time)."""
    return all(getattr(f, name) is None for name in ("feature", "model", "provider", "status",
                                                       "actor"))  # fmt: skip


def _rank(row: Row) -> tuple[Any, ...]:
    return (-row["cost_usd"], -row["turns"], row["session_id"])


def ranked(conn: sa.Connection, f: Filters, limit: int | None) -> list[Row]:
    """Per session in the window (``FIELDS``), most expensive first, at most ``limit``."""
    st = session_totals.c
    inside: sa.ColumnElement[bool] = sa.true()
    if f.since is not None:
        inside &= st.first_at >= f.since
    if f.until is not None:
        inside &= st.last_at < f.until
    if f.project is not None:
        inside &= st.project == f.project
    query = (
        sa.select(*[st[name] for name in FIELDS])
        .where(inside)
        .order_by(st.cost_usd.desc(), st.turns.desc(), st.session_id)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = [_row(r) for r in conn.execute(query)]
    rows.extend(_straddlers(conn, f))
    rows.sort(key=_rank)
    return rows[:limit] if limit is not None else rows


def _row(values: Any) -> Row:
    row = dict(zip(FIELDS, values, strict=True))
    row["first_at"], row["last_at"] = aware(row["first_at"]), aware(row["last_at"])
    row["cost_usd"] = float(row["cost_usd"])
    for name in ("turns", "errors", "priced_calls", "input_tokens", "output_tokens",
                 "cache_read_tokens"):  # fmt: skip
        row[name] = int(row[name])
    return row


def _straddlers(conn: sa.Connection, f: Filters) -> list[Row]:
    """In-window figures of the sessions that cross ``since`` or ``until``."""
    st = session_totals.c
    crossing: list[sa.ColumnElement[bool]] = []
    if f.since is not None:
        crossing.append((st.first_at < f.since) & (st.last_at >= f.since))
    if f.until is not None:
        crossing.append((st.first_at < f.until) & (st.last_at >= f.until))
    if not crossing:
        return []
    where = sa.or_(*crossing)
    if f.since is not None:
        where &= st.last_at >= f.since
    if f.until is not None:
        where &= st.first_at < f.until
    if f.project is not None:
        where &= st.project == f.project
    keys: dict[tuple[str, str], tuple[datetime, datetime]] = {
        (p, s): (aware(a), aware(b))
        for p, s, a, b in conn.execute(
            sa.select(st.project, st.session_id, st.first_at, st.last_at).where(where)
        )
    }
    if not keys:
        return []
    # the events to read, as half-open ranges: from since to just after the furthest call
    # of a since-straddler, and from the earliest call of an until-straddler to until
    ranges: list[tuple[datetime | None, datetime | None]] = []
    if f.since is not None:
        ends = [b for a, b in keys.values() if a < f.since]
        if ends:
            reach = max(ends) + timedelta(microseconds=1)
            ranges.append((f.since, reach if f.until is None else min(reach, f.until)))
    if f.until is not None:
        starts = [a for a, b in keys.values() if b >= f.until]
        if starts:
            start = min(starts)
            ranges.append((start if f.since is None else max(start, f.since), f.until))
    if len(ranges) == 2:
        (first_lo, first_hi), (second_lo, second_hi) = ranges
        if first_hi is not None and second_lo is not None and second_lo <= first_hi:
            ranges = [(first_lo, second_hi)]  # overlapping: read each event once
    totals: dict[tuple[str, str], Row] = {}
    c = events.c
    for lo, hi in ranges:
        cond = (c.kind == "llm_call") & c.session_id.is_not(None)
        if lo is not None:
            cond = cond & (c.occurred_at >= lo)
        if hi is not None:
            cond = cond & (c.occurred_at < hi)
        if f.project is not None:
            cond &= c.project == f.project
        query = sa.select(c.project, c.session_id, c.actor_id, c.status, c.cost_usd,
                          c.input_tokens, c.output_tokens, c.cache_read_tokens,
                          c.occurred_at).where(cond)  # fmt: skip
        for project, sid, actor, status, cost, inp, out, cached, at in conn.execute(query):
            if (project, sid) not in keys:
                continue
            at = aware(at)
            row = totals.get((project, sid))
            if row is None:
                row = totals[(project, sid)] = {
                    "project": project, "session_id": sid, "actor_id": actor, "turns": 0,
                    "errors": 0, "cost_usd": 0.0, "priced_calls": 0, "input_tokens": 0,
                    "output_tokens": 0, "cache_read_tokens": 0, "first_at": at, "last_at": at,
                }  # fmt: skip
            if actor is not None and (row["actor_id"] is None or actor > row["actor_id"]):
                row["actor_id"] = actor
            row["turns"] += 1
            row["errors"] += status == "error"
            if cost is not None:
                row["cost_usd"] += cost
                row["priced_calls"] += 1
            row["input_tokens"] += inp or 0
            row["output_tokens"] += out or 0
            row["cache_read_tokens"] += cached or 0
            row["first_at"] = min(row["first_at"], at)
            row["last_at"] = max(row["last_at"], at)
    return list(totals.values())
