"""Hourly rollups, kept current by the write path and rebuildable from the raw events.

Per hour and per (project, kind, feature, model, provider, status, error_type, name),
``rollup_hourly`` holds counts, token and cost sums and latency/TTFT histograms
(``store.sketch``) of ``llm_call`` and ``tool_call`` events. The store adds a batch's
deltas in the same transaction as its events, computed from the rows the database
really inserted (``RETURNING``), so duplicates and replays never count twice.

Histograms are merged read-modify-write, so concurrent writers are serialized for the
rollup part: SQLite by its write lock (``BEGIN IMMEDIATE``), PostgreSQL by a
transaction-scoped advisory lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llmtally.event import COLUMN_NAMES
from llmtally.store import actor_bits, actor_rollups, feedback, sessions, sketch
from llmtally.store.schema import (
    ROLLUP_DIMENSIONS,
    ROLLUP_SUMS,
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

# every table keyed by a time bucket, for deletes by time window (the first two: those of
# migration 0003)
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

_I = {name: i for i, name in enumerate(COLUMN_NAMES)}
_K_OCC, _K_KIND, _K_STATUS = _I["occurred_at"], _I["kind"], _I["status"]
_K_DIMS = tuple(_I[name] for name in ROLLUP_DIMENSIONS)
_K_COST, _K_LAT, _K_TTFT, _K_MSG = (
    _I["cost_usd"],
    _I["latency_ms"],
    _I["ttft_ms"],
    _I["error_message"],
)
_K_TOKENS = tuple(
    _I[name]
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "reasoning_tokens")
)  # fmt: skip
_COLUMNS = (
    "bucket",
    *ROLLUP_DIMENSIONS,
    *ROLLUP_SUMS,
    "example_error",
    "latency_hist",
    "ttft_hist",
)

Key = tuple[Any, ...]  # (bucket, *dimensions)


class Acc:
    """Accumulated sums and histograms of one rollup key."""

    __slots__ = ("example", "latency", "sums", "ttft")

    def __init__(self) -> None:
        self.sums = [0] * len(ROLLUP_SUMS)
        self.latency: sketch.Histogram = {}
        self.ttft: sketch.Histogram = {}
        self.example: str | None = None

    def merge(self, other: Acc) -> None:
        """Add another accumulator's sums and histograms into this one."""
        for i, value in enumerate(other.sums):
            self.sums[i] += value
        sketch.merge(self.latency, other.latency)
        sketch.merge(self.ttft, other.ttft)
        if other.example is not None:
            self.example = other.example


def add_rows(
    accs: dict[Key, Acc], rows: Iterable[Sequence[Any]], hour: Callable[[Any], Any]
) -> dict[Key, Acc]:
    """Accumulate event rows (``COLUMN_NAMES`` order) into per-key accumulators."""
    bucket = sketch.bucket
    for row in rows:
        kind = row[_K_KIND]
        if kind not in ROLLED_KINDS:
            continue
        key = (hour(row[_K_OCC]), *[row[i] or "" for i in _K_DIMS])
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = Acc()
        s = acc.sums
        s[0] += 1
        if row[_K_STATUS] == "error":
            s[1] += 1
            message = row[_K_MSG]
            if message:
                acc.example = message
        cost = row[_K_COST]
        if cost is not None:
            s[2] += cost
            s[3] += 1
        for offset, index in enumerate(_K_TOKENS, start=4):
            value = row[index]
            if value:
                s[offset] += value
        if row[_K_TOKENS[0]] is not None:
            s[13] += 1
        if row[_K_TOKENS[1]] is not None:
            s[14] += 1
        latency = row[_K_LAT]
        if latency is not None:
            s[9] += latency
            s[10] += 1
            b = bucket(latency)
            acc.latency[b] = acc.latency.get(b, 0) + 1
        ttft = row[_K_TTFT]
        if ttft is not None:
            s[11] += ttft
            s[12] += 1
            b = bucket(ttft)
            acc.ttft[b] = acc.ttft.get(b, 0) + 1
    return accs


def _rows_for_upsert(
    accs: dict[Key, Acc], existing: dict[Key, tuple[Any, Any]]
) -> list[tuple[Any, ...]]:
    out = []
    for key, acc in accs.items():
        old_latency, old_ttft = existing.get(key, (None, None))
        latency = sketch.merge_blob(dict(acc.latency), old_latency)
        ttft = sketch.merge_blob(dict(acc.ttft), old_ttft)
        out.append((*key, *acc.sums, acc.example, sketch.encode(latency), sketch.encode(ttft)))
    return out


def _upsert_sql(table: str, placeholder: str) -> str:
    keys = ("bucket", *ROLLUP_DIMENSIONS)
    sums = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    return (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join([placeholder] * len(_COLUMNS))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums}, "
        f"example_error = coalesce(excluded.example_error, {table}.example_error), "
        "latency_hist = excluded.latency_hist, ttft_hist = excluded.ttft_hist"
    )


def _select_sql(table: str, placeholder: str) -> str:
    where = " AND ".join(f"{name} = {placeholder}" for name in ("bucket", *ROLLUP_DIMENSIONS))
    return f"SELECT latency_hist, ttft_hist FROM {table} WHERE {where}"


TABLES = ("rollup_5min", "rollup_hourly", "rollup_daily")
_SQLITE = {t: (_select_sql(t, "?"), _upsert_sql(t, "?")) for t in TABLES}
_PG = {t: (_select_sql(t, "%s"), _upsert_sql(t, "%s")) for t in TABLES}


def by_day(accs: dict[Key, Acc], day: Callable[[Any], Any]) -> dict[Key, Acc]:
    """The same deltas keyed by a coarser bucket (``day`` maps a bucket to it)."""
    out: dict[Key, Acc] = {}
    for key, acc in accs.items():
        day_key = (day(key[0]), *key[1:])
        out.setdefault(day_key, Acc()).merge(acc)
    return out


def _levels(accs: dict[Key, Acc], hour: Callable[[Any], Any], day: Callable[[Any], Any]) -> Any:
    hourly = by_day(accs, hour)
    return (("rollup_5min", accs), ("rollup_hourly", hourly), ("rollup_daily", by_day(hourly, day)))


def apply_sqlite(conn: Any, accs: dict[Key, Acc]) -> None:
    """Merge 5-minute deltas (and their hourly and daily sums) in the SQLite transaction."""
    if not accs:
        return
    for table, deltas in _levels(accs, sqlite_hour, sqlite_day):
        select, upsert = _SQLITE[table]
        existing = {}
        for key in deltas:
            found = conn.execute(select, key).fetchone()
            if found is not None:
                existing[key] = found
        conn.executemany(upsert, _rows_for_upsert(deltas, existing))


def apply_postgres(cur: Any, accs: dict[Key, Acc]) -> None:
    """Merge 5-minute deltas (and their hourly and daily sums) in the PostgreSQL transaction.

    The caller holds the advisory lock (``PG_LOCK_KEY``) for the transaction.
    """
    if not accs:
        return
    for table, deltas in _levels(accs, datetime_hour, datetime_day):
        select, upsert = _PG[table]
        existing = {}
        for key in deltas:
            cur.execute(select, key)
            found = cur.fetchone()
            if found is not None:
                existing[key] = found
        cur.executemany(upsert, _rows_for_upsert(deltas, existing))


_FEEDBACK = {d: feedback.Maintainer(d) for d in ("sqlite", "postgresql")}
_BITS = {d: actor_bits.Maintainer(d) for d in ("sqlite", "postgresql")}
_SESSIONS = {d: sessions.Maintainer(d) for d in ("sqlite", "postgresql")}


def maintain_sqlite(conn: Any, new_rows: Sequence[Sequence[Any]]) -> None:
    """Every derived table's deltas for rows just inserted, in the SQLite write transaction."""
    if not new_rows:
        return
    apply_sqlite(conn, add_rows({}, new_rows, sqlite_5min))
    actor_rollups.apply_actors(conn, actor_rollups.actor_deltas(new_rows, sqlite_hour),
                               sqlite_day, "?")  # fmt: skip
    _SESSIONS["sqlite"].apply(conn, new_rows)
    _FEEDBACK["sqlite"].apply(conn, new_rows, sqlite_hour, sqlite_day)
    _BITS["sqlite"].apply(conn, new_rows, sqlite_5min, sqlite_hour, sqlite_day)


def maintain_postgres(cur: Any, new_rows: Sequence[Sequence[Any]]) -> None:
    """Every derived table's deltas for rows just inserted, in the PostgreSQL transaction."""
    if not new_rows:
        return
    # histograms are read-modify-write: one writer at a time for this part
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
    apply_postgres(cur, add_rows({}, new_rows, datetime_5min))
    actor_rollups.apply_actors(cur, actor_rollups.actor_deltas(new_rows, datetime_hour),
                               datetime_day, "%s")  # fmt: skip
    _SESSIONS["postgresql"].apply(cur, new_rows)
    _FEEDBACK["postgresql"].apply(cur, new_rows, datetime_hour, datetime_day)
    _BITS["postgresql"].apply(cur, new_rows, datetime_5min, datetime_hour, datetime_day)


def sqlite_5min(value: str) -> str:
    """5-minute bucket of a SQLite occurred_at text."""
    return f"{value[:14]}{int(value[14:16]) // 5 * 5:02d}:00.000000"


def datetime_5min(value: datetime) -> datetime:
    """5-minute bucket of a datetime."""
    return value.replace(minute=value.minute - value.minute % 5, second=0, microsecond=0)


def sqlite_hour(value: str) -> str:
    """Hour bucket of a SQLite occurred_at text."""
    return value[:13] + ":00:00.000000"


def datetime_hour(value: datetime) -> datetime:
    """Hour bucket of a datetime."""
    return value.replace(minute=0, second=0, microsecond=0)


def sqlite_day(value: str) -> str:
    """Day bucket of a SQLite hour bucket text."""
    return value[:10] + " 00:00:00.000000"


def datetime_day(value: datetime) -> datetime:
    """Day bucket of a datetime."""
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


_REBUILD_COLUMNS = ("occurred_at", "kind", "status", *ROLLUP_DIMENSIONS, "actor_type",
                    "actor_id", "cost_usd",
                    "latency_ms", "ttft_ms", "error_message", "input_tokens", "output_tokens",
                    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")  # fmt: skip


def rebuild_on(
    conn: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    project: str | None = None,
    chunk: int = 20_000,
    derived: bool = True,
) -> int:
    """Recompute rollups from the events table (optionally for whole hours in a window).

    ``derived=False`` rebuilds only ``rollup_hourly``/``rollup_daily`` (for migration 0003,
    which runs before the 5-minute, actor, session and feedback tables exist).

    Events are read in time order, so each hour's keys are complete when the next hour
    starts and memory holds one hour at a time. Returns the events rolled up.
    """
    # whole UTC days, so that daily rows are recomputed from complete days
    if since is not None:
        since = datetime_day(since)
    if until is not None:
        day = datetime_day(until)
        until = day + timedelta(days=1) if until != day else day
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
    window: list[sa.ColumnElement[bool]] = [events.c.kind.in_(sorted(ROLLED_KINDS))]
    if since is not None:
        window.append(events.c.occurred_at >= since)
    if until is not None:
        window.append(events.c.occurred_at < until)
    if project is not None:
        window.append(events.c.project == project)
    for table in BUCKET_TABLES if derived else BUCKET_TABLES[:2]:
        gone = sa.delete(table)
        if since is not None:
            gone = gone.where(table.c.bucket >= since)
        if until is not None:
            gone = gone.where(table.c.bucket < until)
        if project is not None:
            gone = gone.where(table.c.project == project)
        conn.execute(gone)
    names = list(dict.fromkeys(_REBUILD_COLUMNS))
    query = (
        sa.select(*[events.c[name] for name in names])
        .where(sa.and_(*window))
        .order_by(events.c.occurred_at)
    )
    position = {name: i for i, name in enumerate(names)}
    # rebuild reads rows of a different shape: map them onto COLUMN_NAMES positions
    width = len(COLUMN_NAMES)
    order = [(i, position.get(name)) for i, name in enumerate(COLUMN_NAMES)]
    hour_rows: list[list[Any]] = []
    current_hour: Any = None
    day_accs: dict[Key, Acc] = {}
    actor_days: dict[actor_rollups.ActorKey, actor_rollups.ActorAcc] = {}
    bits = _Bits(actor_bits.known_numbers(conn) if derived else {})
    current_day: Any = None
    total = 0
    # statement-level options: Connection.execution_options() would change the connection
    result = conn.execute(query.execution_options(stream_results=True, yield_per=chunk))
    for part in result.partitions(chunk):
        for r in part:
            full: list[Any] = [None] * width
            for i, p in order:
                if p is not None:
                    full[i] = r[p]
            hour = datetime_hour(r[0])
            full[_K_OCC] = datetime_5min(r[0])
            if hour != current_hour and hour_rows:
                day_accs, actor_days = _flush_hour(
                    conn, hour_rows, day_accs, actor_days, bits, current_day, hour, derived
                )
                hour_rows = []
            current_hour = hour
            current_day = datetime_day(hour)
            hour_rows.append(full)
            total += 1
    if hour_rows:
        _flush_hour(conn, hour_rows, day_accs, actor_days, bits, current_day, None, derived)
    if not derived:
        return total
    feedback.rebuild_feedback_on(
        conn, datetime_hour, datetime_day, since=since, until=until, project=project
    )
    sessions.rebuild_on(conn, since=since, until=until, project=project)
    return total


def _flush_hour(
    conn: sa.Connection,
    hour_rows: list[list[Any]],
    day_accs: dict[Key, Acc],
    actor_days: dict[actor_rollups.ActorKey, actor_rollups.ActorAcc],
    bits: _Bits,
    day: Any,
    next_hour: Any,
    derived: bool,
) -> tuple[dict[Key, Acc], dict[actor_rollups.ActorKey, actor_rollups.ActorAcc]]:
    """Insert one complete hour; insert its day too when the next row starts another day.

    ``hour_rows`` carry their 5-minute bucket as ``occurred_at``.
    """
    fine = add_rows({}, hour_rows, _same)
    if derived:
        _insert_complete(conn, rollup_5min, fine)
    hourly = by_day(fine, datetime_hour)
    _insert_complete(conn, rollup_hourly, hourly)
    for key, acc in by_day(hourly, datetime_day).items():
        day_accs.setdefault(key, Acc()).merge(acc)
    actors = actor_rollups.actor_deltas(hour_rows, datetime_hour) if derived else {}
    actor_rollups.insert_actor_rows(conn, rollup_actor_hourly, actors)
    for key, actor_acc in actor_rollups.actors_by_day(actors, datetime_day).items():
        actor_days.setdefault(key, actor_rollups.ActorAcc()).merge(actor_acc)
    if derived:
        bits.add_hour(conn, hour_rows)
    if next_hour is None or datetime_day(next_hour) != day:
        _insert_complete(conn, rollup_daily, day_accs)
        actor_rollups.insert_actor_rows(conn, rollup_actor_daily, actor_days)
        if derived:
            bits.flush_day(conn)
        return {}, {}
    return day_accs, actor_days


class _Bits:
    """Active-actor bitmaps of a rebuild: 5-minute and hour rows now, day rows at day end."""

    def __init__(self, numbers: dict[str, int]) -> None:
        self.numbers = numbers
        self.days: dict[actor_bits.Key, int] = {}

    def add_hour(self, conn: sa.Connection, hour_rows: list[list[Any]]) -> None:
        sets = actor_bits.actor_sets(hour_rows, _same)
        if not sets:
            return
        actor_bits.number_all(conn, set().union(*sets.values()), self.numbers)
        found = actor_bits.masks(sets, self.numbers, datetime_hour, datetime_day)
        actor_bits.insert_masks(conn, {k: v for k, v in found.items() if k[0] != "d"})
        for key, mask in found.items():
            if key[0] == "d":
                self.days[key] = self.days.get(key, 0) | mask

    def flush_day(self, conn: sa.Connection) -> None:
        actor_bits.insert_masks(conn, self.days)
        self.days = {}


def _same(value: Any) -> Any:
    return value


def _insert_complete(conn: sa.Connection, table: sa.Table, accs: dict[Key, Acc]) -> None:
    if not accs:
        return
    rows = _rows_for_upsert(accs, {})
    conn.execute(sa.insert(table), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])


def rebuild(engine: sa.Engine) -> int:
    """Recompute every rollup from the raw events in one transaction."""
    with engine.begin() as conn:
        return rebuild_on(conn)
