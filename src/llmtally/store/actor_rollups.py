"""Per-actor rollups, kept current by the write path.

``rollup_actor_hourly`` / ``rollup_actor_daily`` hold, per hour (day), project, actor type
and actor, the sums of that actor's ``llm_call`` events; agents' rows also carry a latency
histogram. They answer active actors, the cost per user and the agents report without
touching the events table (a call without an actor is kept under actor ``""``).

Like every derived table (``store.derived``), deltas come from the rows the database
really inserted, in the write transaction, so a duplicate never counts twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from llmtally.store import sketch
from llmtally.store.derived import POS, Acc, Dialect, Key, Merge, Table, Window, clear_buckets
from llmtally.store.schema import ACTOR_SUMS, rollup_actor_daily, rollup_actor_hourly

_OCC, _KIND, _PROJECT = POS["occurred_at"], POS["kind"], POS["project"]
_ATYPE, _ACTOR, _STATUS = POS["actor_type"], POS["actor_id"], POS["status"]
_COST, _LAT = POS["cost_usd"], POS["latency_ms"]
_IN, _OUT, _CACHE = POS["input_tokens"], POS["output_tokens"], POS["cache_read_tokens"]
_CACHE_W, _REASON = POS["cache_write_tokens"], POS["reasoning_tokens"]

_KEYS = ("bucket", "project", "actor_type", "actor_id")
# the histogram is kept for agents only (the agents report): human rows are pure sums
_VALUES = (*((name, Merge.SUM) for name in ACTOR_SUMS), ("latency_hist", Merge.HIST))
HOURLY = Table(rollup_actor_hourly, _KEYS, _VALUES)
DAILY = Table(rollup_actor_daily, _KEYS, _VALUES)
_S = {name: i for i, name in enumerate(ACTOR_SUMS)}
_HIST = len(ACTOR_SUMS)


def actor_deltas(rows: Iterable[Sequence[Any]], hour: Any) -> dict[Key, Acc]:
    """Per (hour, project, actor type, actor) sums of the llm_call rows among ``rows``."""
    out: dict[Key, Acc] = {}
    width = len(ACTOR_SUMS)
    i_err, i_cost, i_priced = _S["errors"], _S["cost_usd"], _S["priced_calls"]
    i_in, i_out, i_cache = _S["input_tokens"], _S["output_tokens"], _S["cache_read_tokens"]
    i_cw, i_reason = _S["cache_write_tokens"], _S["reasoning_tokens"]
    i_lat, i_latn = _S["latency_sum"], _S["latency_count"]
    for row in rows:
        if row[_KIND] != "llm_call":
            continue
        actor_type = row[_ATYPE] or ""
        key = (hour(row[_OCC]), row[_PROJECT], actor_type, row[_ACTOR] or "")
        s = out.get(key)
        if s is None:
            s = out[key] = [0] * width + [{}]
        s[0] += 1
        if row[_STATUS] == "error":
            s[i_err] += 1
        cost = row[_COST]
        if cost is not None:
            s[i_cost] += cost
            s[i_priced] += 1
        s[i_in] += row[_IN] or 0
        s[i_out] += row[_OUT] or 0
        s[i_cache] += row[_CACHE] or 0
        s[i_cw] += row[_CACHE_W] or 0
        s[i_reason] += row[_REASON] or 0
        latency = row[_LAT]
        if latency is not None:
            s[i_lat] += latency
            s[i_latn] += 1
            if actor_type == "agent":
                h = s[_HIST]
                b = sketch.bucket(latency)
                h[b] = h.get(b, 0) + 1
    return out


class Actors:
    """The actor rollups: hourly deltas, re-keyed to the day."""

    name = "actors"
    tables: tuple[sa.Table, ...] = (rollup_actor_hourly, rollup_actor_daily)
    reads: tuple[str, ...] = (
        "occurred_at",
        "kind",
        "project",
        "actor_type",
        "actor_id",
        "status",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "latency_ms",
    )
    replay = True

    def maintain(self, db: Any, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> None:
        """Upsert the hourly and daily deltas of ``rows``."""
        hourly = actor_deltas(rows, dialect.hour)
        if hourly:
            daily = HOURLY.coarsen(hourly, dialect.day)
            HOURLY.upsert(db, dialect, hourly)
            DAILY.upsert(db, dialect, daily)

    def clear(self, conn: sa.Connection, window: Window) -> None:
        """Delete the window's buckets."""
        clear_buckets(conn, self.tables, window)

    def rebuild(self, conn: sa.Connection, window: Window) -> None:
        """Nothing beyond the replay."""


ACTORS = Actors()
