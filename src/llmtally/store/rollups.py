"""Call rollups, and the maintenance and rebuild of every derived table.

Per 5 minutes, hour and UTC day and per (project, kind, feature, model, provider,
status, error_type, name), ``rollup_5min`` / ``rollup_hourly`` / ``rollup_daily`` hold
counts, token and cost sums and latency/TTFT histograms (``store.sketch``) of
``llm_call`` and ``tool_call`` events. The hourly and daily deltas are the 5-minute
ones re-keyed (``Table.coarsen``), so the three levels always agree.

``maintain`` applies every derived table's deltas (``DERIVED``) in the same transaction
as the events, computed from the rows the database really inserted (``RETURNING``), so
duplicates and replays never count twice. Histograms and bitmaps are merged
read-modify-write, so concurrent writers are serialized for this part: SQLite by its
write lock (``BEGIN IMMEDIATE``), PostgreSQL by a transaction-scoped advisory lock.

``rebuild_on`` recomputes derived tables over a window: the tables kept from events
alone are cleared and the window's events replayed through the same maintenance (one
code path for both); feedback and sessions, whose rows depend on events outside the
window, run their own rebuild. ``rebuild_stale`` runs, at head, the one rebuild that
migrations asked for by marking tables stale in ``llmtally_derived_state``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llmtally.event import COLUMN_NAMES
from llmtally.store import actor_bits, actor_rollups, feedback, sessions, sketch
from llmtally.store.boundary import store_errors
from llmtally.store.derived import (
    DIALECTS,
    POS,
    Acc,
    Derived,
    Dialect,
    Key,
    Merge,
    Table,
    Window,
    clear_buckets,
    datetime_5min,
    datetime_day,
    datetime_hour,
    sqlite_5min,
    sqlite_day,
    sqlite_hour,
    utc,
)
from llmtally.store.schema import (
    ROLLUP_DIMENSIONS,
    ROLLUP_SUMS,
    derived_state,
    events,
    rollup_5min,
    rollup_actor_bits,
    rollup_actor_daily,
    rollup_actor_hourly,
    rollup_daily,
    rollup_feedback_daily,
    rollup_feedback_hourly,
    rollup_hourly,
)

__all__ = [
    "BUCKET_TABLES",
    "DERIVED",
    "ROLLUP_DIMENSIONS",
    "datetime_5min",
    "datetime_day",
    "datetime_hour",
    "maintain",
    "rebuild",
    "rebuild_on",
    "rebuild_stale",
    "sqlite_5min",
    "sqlite_day",
    "sqlite_hour",
]

# every table keyed by a time bucket, for deletes by time window
BUCKET_TABLES = (
    rollup_hourly,
    rollup_daily,
    rollup_5min,
    rollup_actor_hourly,
    rollup_actor_daily,
    rollup_feedback_hourly,
    rollup_feedback_daily,
    rollup_actor_bits,
)

ROLLED_KINDS = frozenset({"llm_call", "tool_call"})
PG_LOCK_KEY = 0x6C6C6D726F6C6C  # "llmroll"

_VALUES = (
    *((name, Merge.SUM) for name in ROLLUP_SUMS),
    ("example_error", Merge.NEWEST),
    ("latency_hist", Merge.HIST),
    ("ttft_hist", Merge.HIST),
)
_KEYS = ("bucket", *ROLLUP_DIMENSIONS)
FIVE_MIN = Table(rollup_5min, _KEYS, _VALUES)
HOURLY = Table(rollup_hourly, _KEYS, _VALUES)
DAILY = Table(rollup_daily, _KEYS, _VALUES)

_OCC, _KIND, _STATUS, _MSG = POS["occurred_at"], POS["kind"], POS["status"], POS["error_message"]
_DIMS = tuple(POS[name] for name in ROLLUP_DIMENSIONS)
_COST, _LAT, _TTFT = POS["cost_usd"], POS["latency_ms"], POS["ttft_ms"]
_TOKENS = tuple(POS[name] for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                                       "cache_write_tokens", "reasoning_tokens"))  # fmt: skip
_N = len(_VALUES)
_EXAMPLE, _LAT_HIST, _TTFT_HIST = _N - 3, _N - 2, _N - 1


def call_deltas(rows: Iterable[Sequence[Any]], bucket: Any) -> dict[Key, Acc]:
    """Per (bucket, *dimensions) accumulators (``_VALUES`` order) of the rolled-up rows."""
    accs: dict[Key, Acc] = {}
    hist = sketch.bucket
    n_sums = len(ROLLUP_SUMS)
    for row in rows:
        if row[_KIND] not in ROLLED_KINDS:
            continue
        key = (bucket(row[_OCC]), *[row[i] or "" for i in _DIMS])
        s = accs.get(key)
        if s is None:
            s = accs[key] = [0] * n_sums + [None, {}, {}]
        s[0] += 1
        if row[_STATUS] == "error":
            s[1] += 1
            message = row[_MSG]
            if message:
                s[_EXAMPLE] = message
        cost = row[_COST]
        if cost is not None:
            s[2] += cost
            s[3] += 1
        for offset, index in enumerate(_TOKENS, start=4):
            value = row[index]
            if value:
                s[offset] += value
        if row[_TOKENS[0]] is not None:
            s[13] += 1
        if row[_TOKENS[1]] is not None:
            s[14] += 1
        latency = row[_LAT]
        if latency is not None:
            s[9] += latency
            s[10] += 1
            h = s[_LAT_HIST]
            b = hist(latency)
            h[b] = h.get(b, 0) + 1
        ttft = row[_TTFT]
        if ttft is not None:
            s[11] += ttft
            s[12] += 1
            h = s[_TTFT_HIST]
            b = hist(ttft)
            h[b] = h.get(b, 0) + 1
    return accs


class Calls:
    """The call rollups at three levels: 5-minute deltas, re-keyed to hour and day."""

    name = "calls"
    tables: tuple[sa.Table, ...] = (rollup_5min, rollup_hourly, rollup_daily)
    reads: tuple[str, ...] = (
        "occurred_at",
        "kind",
        "status",
        *ROLLUP_DIMENSIONS,
        "cost_usd",
        "latency_ms",
        "ttft_ms",
        "error_message",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    replay = True

    def maintain(self, db: Any, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> None:
        """Upsert the 5-minute, hourly and daily deltas of ``rows``."""
        fine = call_deltas(rows, dialect.five_min)
        if not fine:
            return
        # coarsened before any upsert: PostgreSQL merges stored histograms into ``fine``
        hourly = FIVE_MIN.coarsen(fine, dialect.hour)
        daily = HOURLY.coarsen(hourly, dialect.day)
        FIVE_MIN.upsert(db, dialect, fine)
        HOURLY.upsert(db, dialect, hourly)
        DAILY.upsert(db, dialect, daily)

    def clear(self, conn: sa.Connection, window: Window) -> None:
        """Delete the window's buckets."""
        clear_buckets(conn, self.tables, window)

    def rebuild(self, conn: sa.Connection, window: Window) -> None:
        """Nothing beyond the replay."""


# maintenance order: sessions and feedback after the rollups, the bitmaps last (as ever)
DERIVED: tuple[Derived, ...] = (
    Calls(),
    actor_rollups.ACTORS,
    sessions.SESSIONS,
    feedback.FEEDBACK,
    actor_bits.BITS,
)
_BY_TABLE = {table.name: d.name for d in DERIVED for table in d.tables}


def maintain(db: Any, dialect: Dialect, new_rows: Sequence[Sequence[Any]]) -> None:
    """Every derived table's deltas for rows just inserted, in the write transaction.

    ``db``: the sqlite3 connection or a psycopg cursor of the write transaction.
    """
    if not new_rows:
        return
    if dialect.pg:
        # histograms and bitmaps are read-modify-write: one writer at a time for this part
        db.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
    for derived in DERIVED:
        derived.maintain(db, dialect, new_rows)


def rebuild_on(
    conn: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    project: str | None = None,
    chunk: int = 20_000,
    only: Iterable[str] | None = None,
) -> int:
    """Recompute derived tables from the events (for whole UTC days around a window).

    ``only`` names the ``DERIVED`` entries to rebuild (default all). Returns the events
    replayed.
    """
    if since is not None:
        since = datetime_day(since)
    if until is not None:
        day = datetime_day(until)
        until = day + timedelta(days=1) if until != day else day
    window = Window(since, until, project)
    wanted = None if only is None else set(only)
    chosen = [d for d in DERIVED if wanted is None or d.name in wanted]
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
    for derived in chosen:
        derived.clear(conn, window)
    replayed = [d for d in chosen if d.replay]
    total = _replay(conn, replayed, window, chunk) if replayed else 0
    for derived in chosen:
        if not derived.replay:
            derived.rebuild(conn, window)
    return total


def _replay(conn: sa.Connection, chosen: list[Derived], window: Window, chunk: int) -> int:
    """Feed the window's events, in time order, through the maintenance of ``chosen``."""
    dialect = DIALECTS[conn.dialect.name]
    names = list(dict.fromkeys(name for d in chosen for name in d.reads))
    # the write path's form of occurred_at: ISO text on SQLite, a datetime on PostgreSQL
    columns: list[Any] = [
        events.c[name]
        if name != "occurred_at" or dialect.pg
        else sa.type_coerce(events.c.occurred_at, sa.String())
        for name in names
    ]
    where: list[sa.ColumnElement[bool]] = [events.c.kind.in_(sorted(ROLLED_KINDS))]
    if window.since is not None:
        where.append(events.c.occurred_at >= window.since)
    if window.until is not None:
        where.append(events.c.occurred_at < window.until)
    if window.project is not None:
        where.append(events.c.project == window.project)
    query = sa.select(*columns).where(*where).order_by(events.c.occurred_at)
    slots = [POS[name] for name in names]
    occ = names.index("occurred_at")
    width = len(COLUMN_NAMES)
    raw = conn.connection.driver_connection
    assert raw is not None  # a live connection inside the rebuild's transaction
    db = raw.cursor() if dialect.pg else raw
    dialect.prepare(db)
    total = 0
    result = conn.execute(query.execution_options(stream_results=True, yield_per=chunk))
    for part in result.partitions(chunk):
        rows = []
        for r in part:
            full: list[Any] = [None] * width
            for slot, value in zip(slots, r, strict=True):
                full[slot] = value
            if dialect.pg:
                full[POS["occurred_at"]] = utc(r[occ])
            rows.append(full)
        for derived in chosen:
            derived.maintain(db, dialect, rows)
        total += len(rows)
    return total


def rebuild(engine: sa.Engine) -> int:
    """Recompute every derived table from the raw events in one transaction."""
    with store_errors(engine, "rebuilding the derived tables"), engine.begin() as conn:
        return rebuild_on(conn)


def rebuild_stale(engine: sa.Engine) -> list[str]:
    """Rebuild the derived tables migrations marked stale; return the ``DERIVED`` names.

    Each stale mark is deleted in the rebuild's transaction, before the rebuild: a second
    process starting at the same time waits on that row, then finds nothing left to do.
    """
    with store_errors(engine, "reading the derived tables' state"), engine.connect() as conn:
        marked = [str(r[0]) for r in conn.execute(sa.select(derived_state.c.name))]
    if not marked:
        return []
    with store_errors(engine, "rebuilding stale derived tables"), engine.begin() as conn:
        claimed = set()
        for name in marked:
            gone = conn.execute(sa.delete(derived_state).where(derived_state.c.name == name))
            if gone.rowcount:
                claimed.add(_BY_TABLE.get(name, name))
        names = [d.name for d in DERIVED if d.name in claimed]
        if names:
            rebuild_on(conn, only=names)
    return names
