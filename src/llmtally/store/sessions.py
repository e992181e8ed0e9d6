"""Per-session totals, kept current by the write path.

``session_totals`` holds one row per (project, session): turns, cost, tokens, errors, and
the first and last call's time. A report over a window takes the stored totals of the
sessions that lie inside it and recomputes from events only the few that straddle one of
its ends. Finding those cheaply needs a bound on how long a session lasts: the single
row of ``session_bounds`` holds the longest session seen (µs), only ever raised, so the
straddlers of a moment ``t`` are among the sessions that started in ``[t - bound, t)``.

The upsert returns every touched session's first and last call, so the bound is kept
exact without reading the table again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from llmtally.store.derived import POS, Dialect, Merge, Table, Window
from llmtally.store.schema import SESSION_SUMS, events, session_bounds, session_totals

_K_OCC, _K_KIND, _K_PROJECT = POS["occurred_at"], POS["kind"], POS["project"]
_K_ACTOR, _K_SESSION, _K_STATUS = POS["actor_id"], POS["session_id"], POS["status"]
_K_COST, _K_IN, _K_OUT = POS["cost_usd"], POS["input_tokens"], POS["output_tokens"]
_K_CACHE = POS["cache_read_tokens"]

SessionKey = tuple[str, str]  # (project, session_id)
COLUMNS = ("project", "session_id", "actor_id", "first_at", "last_at", *SESSION_SUMS)
# the upsert returns every touched session's span: the duration bound needs no re-read
TOTALS = Table(
    session_totals,
    ("project", "session_id"),
    (("actor_id", Merge.TOP), ("first_at", Merge.LOW), ("last_at", Merge.HIGH),
     *((name, Merge.SUM) for name in SESSION_SUMS)),
    returning=("first_at", "last_at"),
)  # fmt: skip


def deltas(rows: Iterable[Sequence[Any]]) -> dict[SessionKey, list[Any]]:
    """Per (project, session) [actor, first, last, *SESSION_SUMS] of the llm_call rows."""
    out: dict[SessionKey, list[Any]] = {}
    for row in rows:
        session = row[_K_SESSION]
        if session is None or row[_K_KIND] != "llm_call":
            continue
        key = (row[_K_PROJECT], session)
        at = row[_K_OCC]
        d = out.get(key)
        if d is None:
            d = out[key] = [None, at, at, 0, 0, 0.0, 0, 0, 0, 0]
        actor = row[_K_ACTOR]
        if actor is not None and (d[0] is None or actor > d[0]):
            d[0] = actor  # the greatest actor id, like max(actor_id)
        if at < d[1]:
            d[1] = at
        if at > d[2]:
            d[2] = at
        d[3] += 1
        if row[_K_STATUS] == "error":
            d[4] += 1
        cost = row[_K_COST]
        if cost is not None:
            d[5] += cost
            d[6] += 1
        d[7] += row[_K_IN] or 0
        d[8] += row[_K_OUT] or 0
        d[9] += row[_K_CACHE] or 0
    return out


def _micros(value: Any) -> int:
    """A timestamp (SQLite text or datetime) as µs since the epoch."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000)


class Sessions:
    """Per-session totals and the longest-session bound."""

    name = "sessions"
    tables: tuple[sa.Table, ...] = (session_totals, session_bounds)
    reads: tuple[str, ...] = (
        "occurred_at",
        "kind",
        "project",
        "actor_id",
        "session_id",
        "status",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
    )
    replay = False  # a session straddling the window's ends needs its events outside it

    def maintain(self, db: Any, dialect: Dialect, new_rows: Sequence[Sequence[Any]]) -> None:
        """Upsert the sessions of ``new_rows``; raise the duration bound if one grew longer.

        ``db``: a sqlite3 connection or a psycopg cursor, inside the write transaction.
        """
        found = deltas(new_rows)
        if not found:
            return
        longest = 0
        for first, last in TOTALS.upsert(db, dialect, found):
            longest = max(longest, _micros(last) - _micros(first))
        if longest > 0:  # one primary-key probe; writes only when a session grew longest
            db.execute(
                f"UPDATE session_bounds SET max_duration_us = {dialect.ph} "
                f"WHERE id = 1 AND max_duration_us < {dialect.ph}",
                (longest, longest),
            )

    def clear(self, conn: sa.Connection, window: Window) -> None:
        """Nothing: the rebuild deletes exactly the sessions it recomputes."""

    def rebuild(self, conn: sa.Connection, window: Window) -> None:
        """Recompute every session with a call in the window."""
        rebuild_on(conn, since=window.since, until=window.until, project=window.project)


SESSIONS = Sessions()


def duration_bound(conn: sa.Connection) -> int:
    """The longest session seen, in µs (0 when none)."""
    value = conn.execute(
        sa.select(session_bounds.c.max_duration_us).where(session_bounds.c.id == 1)
    ).scalar()
    return int(value or 0)


def _raise_bound(conn: sa.Connection, micros: int, *, exact: bool = False) -> None:
    b = session_bounds.c
    if conn.execute(sa.select(b.id).where(b.id == 1)).first() is None:
        conn.execute(sa.insert(session_bounds).values(id=1, max_duration_us=micros))
    elif exact:
        conn.execute(sa.update(session_bounds).where(b.id == 1).values(max_duration_us=micros))
    else:
        conn.execute(
            sa.update(session_bounds)
            .where((b.id == 1) & (b.max_duration_us < micros))
            .values(max_duration_us=micros)
        )


def rebuild_on(
    conn: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    project: str | None = None,
) -> int:
    """Recompute the totals of every session with a call in [since, until); return how many."""
    st = session_totals.c
    touched: sa.ColumnElement[bool] = sa.true()
    if since is not None:
        touched &= st.last_at >= since
    if until is not None:
        touched &= st.first_at < until
    if project is not None:
        touched &= st.project == project
    whole = since is None and until is None
    lo, hi = since, until
    if not whole:
        # the removed sessions' events may reach beyond the window: read their whole span
        first, last = conn.execute(
            sa.select(sa.func.min(st.first_at), sa.func.max(st.last_at)).where(touched)
        ).one()
        first, last = _utc(first), _utc(last)
        if first is not None and (lo is None or first < _utc(lo)):
            lo = first
        if last is not None and hi is not None and last >= _utc(hi):
            hi = last
    conn.execute(sa.delete(session_totals).where(touched))
    c = events.c
    where = (c.kind == "llm_call") & c.session_id.is_not(None)
    if lo is not None:
        where &= c.occurred_at >= lo
    if hi is not None:
        where &= c.occurred_at <= hi
    if project is not None:
        where &= c.project == project
    query = (
        sa.select(
            c.project, c.session_id, sa.func.max(c.actor_id), sa.func.min(c.occurred_at),
            sa.func.max(c.occurred_at), sa.func.count(),
            sa.func.sum(sa.case((c.status == "error", 1), else_=0)),
            sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0), sa.func.count(c.cost_usd),
            sa.func.coalesce(sa.func.sum(c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.cache_read_tokens), 0),
        )
        .where(where)
        .group_by(c.project, c.session_id)
    )  # fmt: skip
    # sessions that kept their row (no call in the window) are partial in this span: skip
    kept: set[tuple[Any, ...]] = set()
    if not whole:
        overlap: sa.ColumnElement[bool] = sa.true()
        if lo is not None:
            overlap &= st.last_at >= lo
        if hi is not None:
            overlap &= st.first_at <= hi
        kept = {tuple(r) for r in conn.execute(sa.select(st.project, st.session_id).where(overlap))}
    batch: list[dict[str, Any]] = []
    total = longest = 0
    for row in conn.execute(query):
        if (row[0], row[1]) in kept:
            continue
        batch.append(dict(zip(COLUMNS, row, strict=True)))
        longest = max(longest, _micros(row[4]) - _micros(row[3]))
        total += 1
        if len(batch) >= 5_000:
            conn.execute(sa.insert(session_totals), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(session_totals), batch)
    # a whole rebuild knows the exact longest session; a partial one can only raise it
    _raise_bound(conn, longest, exact=whole and project is None)
    return total


def _utc(value: Any) -> Any:
    """SQLite hands datetimes back naive; they are UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
