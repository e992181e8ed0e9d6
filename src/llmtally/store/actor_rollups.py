"""Per-actor rollups, kept current by the write path.

``rollup_actor_hourly`` / ``rollup_actor_daily`` hold, per hour (day), project, actor type
and actor, the sums of that actor's ``llm_call`` events; agents' rows also carry a latency
histogram. They answer active actors, the cost per user and the agents report without
touching the events table (a call without an actor is kept under actor ``""``).

Like ``store.rollups``, deltas come from the rows the database really inserted, in the
write transaction, so a duplicate never counts twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from llmtally.event import COLUMN_NAMES
from llmtally.store import sketch
from llmtally.store.schema import ACTOR_SUMS

_I = {name: i for i, name in enumerate(COLUMN_NAMES)}
_K_OCC, _K_KIND, _K_PROJECT = _I["occurred_at"], _I["kind"], _I["project"]
_K_ATYPE, _K_ACTOR = _I["actor_type"], _I["actor_id"]
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
