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
from llmtally.store.sessions import duration_bound

Row = dict[str, Any]
FIELDS = ("project", "session_id", "actor_id", "turns", "errors", "cost_usd", "priced_calls",
          "input_tokens", "output_tokens", "cache_read_tokens", "first_at", "last_at")  # fmt: skip


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
        if conn.dialect.name == "sqlite":
            index = _sqlite_index(conn, f, limit)
            query = query.with_hint(session_totals, f"INDEXED BY {index}", "sqlite")
    rows = [_row(r) for r in conn.execute(query)]
    rows.extend(_straddlers(conn, f))
    rows.sort(key=_rank)
    return rows[:limit] if limit is not None else rows


def _sqlite_index(conn: sa.Connection, f: Filters, limit: int) -> str:
    """Pick the index for SQLite, whose planner has no statistics on time ranges.

    Walking the cost index from the top stops after ``limit`` matches, about
    ``limit / share`` rows for a window holding ``share`` of all sessions; reading the
    window by start time reads ``share`` of all rows. The share is estimated from the
    window's part of the span of session starts.
    """
    st = session_totals.c
    # one aggregate per statement: only then does SQLite answer min/max from the index
    first = conn.execute(sa.select(sa.func.min(st.first_at))).scalar()
    last = conn.execute(sa.select(sa.func.max(st.first_at))).scalar()
    # max(rowid) counts the rows without reading them (deletes only make it an overestimate)
    rowid: sa.Select[Any] = sa.select(sa.func.max(sa.literal_column("rowid")))
    rowid = rowid.select_from(session_totals)
    total = float(conn.execute(rowid).scalar() or 0)
    index = "ix_session_totals_cost"
    if first is not None and last is not None and total:
        lo, hi = aware(first), aware(last)
        start = max(lo, f.since) if f.since is not None else lo
        end = min(hi, f.until) if f.until is not None else hi
        span = (hi - lo).total_seconds() or 1.0
        share = max((end - start).total_seconds(), 0.0) / span
        if share * total < limit / max(share, 1e-9):
            index = "ix_session_totals_first_at"
    return index


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
    if f.since is None and f.until is None:
        return []
    bound = timedelta(microseconds=duration_bound(conn))
    keys: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for moment in (f.since, f.until):
        if moment is None:
            continue
        # a session crossing this moment started less than the longest duration before it
        where = (st.first_at >= moment - bound) & (st.first_at < moment) & (st.last_at >= moment)
        if f.since is not None:
            where &= st.last_at >= f.since
        if f.project is not None:
            where &= st.project == f.project
        found = sa.select(st.project, st.session_id, st.first_at, st.last_at).where(where)
        for p, s, a, b in conn.execute(found):
            keys[(p, s)] = (aware(a), aware(b))
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
        calls = sa.select(c.project, c.session_id, c.actor_id, c.status, c.cost_usd,
                          c.input_tokens, c.output_tokens, c.cache_read_tokens,
                          c.occurred_at).where(cond)  # fmt: skip
        for project, sid, actor, status, cost, inp, out, cached, at in conn.execute(calls):
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
