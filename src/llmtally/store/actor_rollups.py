"""Per-actor rollups and per-session totals, kept current by the write path.

``rollup_actor_hourly`` / ``rollup_actor_daily`` hold, per hour (day), project, actor type
and actor, the sums of that actor's ``llm_call`` events; agents' rows also carry a latency
histogram. They answer active actors, the cost per user and the agents report without
touching the events table (a call without an actor is kept under actor ``""``).

``session_totals`` holds one row per (project, session): turns, cost, tokens, errors, and
the first and last call's time. A report over a window uses the totals of sessions that
lie inside it and recomputes only the few sessions that straddle its ends from events.

Like ``store.rollups``, deltas come from the rows the database really inserted, in the
write transaction, so a duplicate never counts twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from llmtally.capture.event import COLUMN_NAMES
from llmtally.store import sketch
from llmtally.store.schema import ACTOR_SUMS, SESSION_SUMS, events, session_totals

_I = {name: i for i, name in enumerate(COLUMN_NAMES)}
_K_OCC, _K_KIND, _K_PROJECT = _I["occurred_at"], _I["kind"], _I["project"]
_K_ATYPE, _K_ACTOR, _K_SESSION = _I["actor_type"], _I["actor_id"], _I["session_id"]
_K_STATUS, _K_COST, _K_LAT = _I["status"], _I["cost_usd"], _I["latency_ms"]
_K_IN, _K_OUT, _K_CACHE = _I["input_tokens"], _I["output_tokens"], _I["cache_read_tokens"]

ActorKey = tuple[Any, str, str, str]  # (bucket, project, actor_type, actor_id)


class ActorAcc:
    """Sums (``ACTOR_SUMS`` order) and, for agents, a latency histogram."""

    __slots__ = ("latency", "sums")

    def __init__(self) -> None:
        self.sums: list[float] = [0] * len(ACTOR_SUMS)
        self.latency: sketch.Histogram = {}

    def merge(self, other: ActorAcc) -> None:
        """Add another accumulator into this one."""
        for i, value in enumerate(other.sums):
            self.sums[i] += value
        sketch.merge(self.latency, other.latency)


def actor_deltas(
    rows: Iterable[Sequence[Any]], hour: Callable[[Any], Any]
) -> dict[ActorKey, ActorAcc]:
    """Per (hour, project, actor type, actor) sums of the llm_call rows among ``rows``."""
    out: dict[ActorKey, ActorAcc] = {}
    for row in rows:
        if row[_K_KIND] != "llm_call":
            continue
        actor_type = row[_K_ATYPE] or ""
        key = (hour(row[_K_OCC]), row[_K_PROJECT], actor_type, row[_K_ACTOR] or "")
        acc = out.get(key)
        if acc is None:
            acc = out[key] = ActorAcc()
        s = acc.sums
        s[0] += 1
        if row[_K_STATUS] == "error":
            s[1] += 1
        cost = row[_K_COST]
        if cost is not None:
            s[2] += cost
            s[3] += 1
        s[4] += row[_K_IN] or 0
        s[5] += row[_K_OUT] or 0
        s[6] += row[_K_CACHE] or 0
        latency = row[_K_LAT]
        if latency is not None:
            s[7] += latency
            s[8] += 1
            if actor_type == "agent":
                b = sketch.bucket(latency)
                acc.latency[b] = acc.latency.get(b, 0) + 1
    return out


def actors_by_day(
    deltas: dict[ActorKey, ActorAcc], day: Callable[[Any], Any]
) -> dict[ActorKey, ActorAcc]:
    """The same deltas keyed by UTC day instead of hour."""
    out: dict[ActorKey, ActorAcc] = {}
    for key, acc in deltas.items():
        day_key = (day(key[0]), *key[1:])
        found = out.get(day_key)
        if found is None:
            found = out[day_key] = ActorAcc()
        found.merge(acc)
    return out


_ACTOR_KEYS = ("bucket", "project", "actor_type", "actor_id")
_ACTOR_COLUMNS = (*_ACTOR_KEYS, *ACTOR_SUMS, "latency_hist")


def _actor_upsert(table: str, ph: str) -> str:
    sums = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in ACTOR_SUMS)
    return (
        f"INSERT INTO {table} ({', '.join(_ACTOR_COLUMNS)}) "
        f"VALUES ({', '.join([ph] * len(_ACTOR_COLUMNS))}) "
        f"ON CONFLICT ({', '.join(_ACTOR_KEYS)}) DO UPDATE SET {sums}, "
        f"latency_hist = coalesce(excluded.latency_hist, {table}.latency_hist)"
    )


def _hist_select(table: str, ph: str) -> str:
    where = " AND ".join(f"{k} = {ph}" for k in _ACTOR_KEYS)
    return f"SELECT latency_hist FROM {table} WHERE {where}"


ACTOR_TABLES = ("rollup_actor_hourly", "rollup_actor_daily")
_SQL = {
    (t, ph): (_hist_select(t, ph), _actor_upsert(t, ph)) for t in ACTOR_TABLES for ph in ("?", "%s")
}


def _actor_rows(
    deltas: dict[ActorKey, ActorAcc], read_hist: Callable[[ActorKey], Any]
) -> list[tuple[Any, ...]]:
    out = []
    for key, acc in deltas.items():
        blob = None
        if acc.latency:  # agents only: merge with the stored histogram
            blob = sketch.encode(sketch.merge_blob(dict(acc.latency), read_hist(key)))
        out.append((*key, *acc.sums, blob))
    return out


def apply_actors(
    db: Any, deltas: dict[ActorKey, ActorAcc], day: Callable[[Any], Any], placeholder: str
) -> None:
    """Merge hourly deltas and their daily sums in the caller's transaction.

    ``db`` is a sqlite3 connection or a psycopg cursor: both have ``execute()`` returning
    something with ``fetchone()``, and ``executemany()``.
    """
    if not deltas:
        return
    for table, part in (
        ("rollup_actor_hourly", deltas),
        ("rollup_actor_daily", actors_by_day(deltas, day)),
    ):
        select, upsert = _SQL[(table, placeholder)]

        def read_hist(key: ActorKey, select: str = select) -> Any:
            row = db.execute(select, key).fetchone()
            return None if row is None else row[0]

        db.executemany(upsert, _actor_rows(part, read_hist))


def insert_actor_rows(
    conn: sa.Connection, table: sa.Table, deltas: dict[ActorKey, ActorAcc]
) -> None:
    """Insert complete (rebuilt) rows through SQLAlchemy."""
    if not deltas:
        return
    rows = _actor_rows(deltas, lambda key: None)
    conn.execute(sa.insert(table), [dict(zip(_ACTOR_COLUMNS, row, strict=True)) for row in rows])


# -- sessions --------------------------------------------------------------------------

SessionKey = tuple[str, str]  # (project, session_id)
_SESSION_COLUMNS = ("project", "session_id", "actor_id", "first_at", "last_at", *SESSION_SUMS)


def session_deltas(rows: Iterable[Sequence[Any]]) -> dict[SessionKey, list[Any]]:
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


def session_upsert_sql(dialect: str) -> str:
    """The upsert of session deltas, in the engine's SQL and paramstyle."""
    ph = "?" if dialect == "sqlite" else "%s"
    t = "session_totals"
    if dialect == "sqlite":
        # SQLite's two-argument min/max return NULL when either side is NULL
        actor = f"coalesce(max({t}.actor_id, excluded.actor_id), {t}.actor_id, excluded.actor_id)"
        lo, hi = "min", "max"
    else:
        actor = f"greatest({t}.actor_id, excluded.actor_id)"
        lo, hi = "least", "greatest"
    sums = ", ".join(f"{c} = {t}.{c} + excluded.{c}" for c in SESSION_SUMS)
    return (
        f"INSERT INTO {t} ({', '.join(_SESSION_COLUMNS)}) "
        f"VALUES ({', '.join([ph] * len(_SESSION_COLUMNS))}) "
        f"ON CONFLICT (project, session_id) DO UPDATE SET actor_id = {actor}, "
        f"first_at = {lo}({t}.first_at, excluded.first_at), "
        f"last_at = {hi}({t}.last_at, excluded.last_at), {sums}"
    )


def session_rows(deltas: dict[SessionKey, list[Any]]) -> list[tuple[Any, ...]]:
    """Upsert parameters of session deltas."""
    return [(*key, *values) for key, values in deltas.items()]


def _utc(value: Any) -> Any:
    """SQLite hands datetimes back naive; they are UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def rebuild_sessions_on(
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
    total = 0
    for row in conn.execute(query):
        if (row[0], row[1]) in kept:
            continue
        batch.append(dict(zip(_SESSION_COLUMNS, row, strict=True)))
        total += 1
        if len(batch) >= 5_000:
            conn.execute(sa.insert(session_totals), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(session_totals), batch)
    return total
