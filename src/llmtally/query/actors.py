"""Per-actor figures (active actors, cost per user, agents) from the actor rollups.

A window is cut like every rolled-up report (``filters.split``): whole days from
``rollup_actor_daily``, other whole hours from ``rollup_actor_hourly``, the partial hours
at the ends from the events table. The actor rollups are keyed by project and actor only,
so a filter on feature, model, provider, status or actor sends the caller to the events
table instead (``Filters.project_and_time_only`` says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llmtally.query.filters import Filters, refine, split
from llmtally.store import actor_bits, sketch
from llmtally.store.schema import (
    ACTOR_SUMS,
    actor_numbers,
    events,
    rollup_actor_bits,
    rollup_actor_daily,
    rollup_actor_hourly,
)

Part = tuple[sa.Table | None, datetime | None, datetime | None]  # None table: raw events


@dataclass(slots=True)
class ActorAgg:
    """``ACTOR_SUMS`` of one actor and, when asked for, its latency histogram."""

    sums: list[float] = field(default_factory=lambda: [0.0] * len(ACTOR_SUMS))
    latency: sketch.Histogram = field(default_factory=dict)

    def get(self, name: str) -> float:
        """One of ``ACTOR_SUMS`` by name."""
        return self.sums[ACTOR_SUMS.index(name)]


def parts(f: Filters) -> list[Part]:
    """The window as rollup and raw parts."""
    cut = split(f.since, f.until)
    out: list[Part] = []
    if cut.daily is not None:
        out.append((rollup_actor_daily, *cut.daily))
    out.extend((rollup_actor_hourly, *w) for w in cut.hourly)
    out.extend((None, *w) for w in cut.raw)
    return out


def active_actors(conn: sa.Connection, f: Filters) -> int:
    """Distinct actors with at least one call in the window.

    Under project and time filters: the OR of the window's whole day, hour and 5-minute
    bitmaps (``store.actor_bits``) plus the actors of its ragged ends; otherwise a
    COUNT(DISTINCT) over the events.
    """
    c = events.c
    if not f.project_and_time_only():
        query = sa.select(sa.func.count(sa.distinct(c.actor_id))).where(f.where())
        return int(conn.execute(query).scalar_one() or 0)
    cut = split(f.since, f.until)
    levels: list[tuple[str, datetime | None, datetime | None]] = []
    if cut.daily is not None:
        levels.append(("d", *cut.daily))
    levels.extend(("h", *w) for w in cut.hourly)
    raw: list[tuple[datetime | None, datetime | None]] = []
    for window in cut.raw:
        fine, rest = refine(window)
        if fine is not None:
            levels.append(("m", *fine))
        raw.extend(rest)
    b = rollup_actor_bits.c
    mask = 0
    for level, since, until in levels:
        where = f.rollup_where(rollup_actor_bits, None, since, until) & (b.level == level)
        for blob in conn.execute(sa.select(b.bits).where(where)).scalars():
            mask |= actor_bits.decode(blob)
    ends: set[str] = set()
    for since, until in raw:
        where = f.raw_where(("llm_call",), since, until) & c.actor_id.is_not(None)
        ends.update(
            str(a) for a in conn.execute(sa.select(c.actor_id).where(where).distinct()).scalars()
        )
    if ends:
        n = actor_numbers.c
        numbered = sa.select(n.actor_id, n.n).where(n.actor_id.in_(sorted(ends)))
        for actor, number in conn.execute(numbered):
            mask |= 1 << int(number)
            ends.discard(actor)
    # every stored call's actor is numbered in the same transaction: ``ends`` is empty
    return mask.bit_count() + len(ends)


_RAW_SUMS = (
    sa.func.count(),
    sa.func.sum(sa.case((events.c.status == "error", 1), else_=0)),
    sa.func.sum(events.c.cost_usd),
    sa.func.count(events.c.cost_usd),
    sa.func.sum(events.c.input_tokens),
    sa.func.sum(events.c.output_tokens),
    sa.func.sum(events.c.cache_read_tokens),
    sa.func.sum(events.c.latency_ms),
    sa.func.count(events.c.latency_ms),
)


def by_actor(
    conn: sa.Connection, f: Filters, *, agents: bool = False
) -> dict[str | None, ActorAgg]:
    """Sums per actor id (None: calls without an actor); ``agents``: agents only, with
    latency histograms. Callers check ``f.project_and_time_only()`` first."""
    out: dict[str | None, ActorAgg] = {}

    def add(actor: str | None, values: Any) -> ActorAgg:
        agg = out.get(actor)
        if agg is None:
            agg = out[actor] = ActorAgg()
        for i, value in enumerate(values):
            agg.sums[i] += float(value or 0)
        return agg

    c = events.c
    for table, since, until in parts(f):
        if table is None:
            where = f.raw_where(("llm_call",), since, until)
            if agents:
                where &= c.actor_type == "agent"
                rows = conn.execute(sa.select(c.actor_id, *_RAW_SUMS, c.latency_ms)
                                    .where(where).group_by(c.actor_id, c.latency_ms))  # fmt: skip
                for actor, *values, latency in rows:
                    agg = add(actor, values)
                    if latency is not None:
                        b = sketch.bucket(latency)
                        agg.latency[b] = agg.latency.get(b, 0) + int(values[0])
                continue
            rows = conn.execute(sa.select(c.actor_id, *_RAW_SUMS).where(where).group_by(c.actor_id))
            for actor, *values in rows:
                add(actor, values)
            continue
        r = table.c
        where = f.rollup_where(table, None, since, until)
        if agents:
            query = sa.select(r.actor_id, *[r[n] for n in ACTOR_SUMS], r.latency_hist).where(
                where & (r.actor_type == "agent")
            )
            blobs: dict[str | None, list[Any]] = {}
            for actor, *values, blob in conn.execute(query):
                add(actor or None, values)
                blobs.setdefault(actor or None, []).append(blob)
            for actor, found in blobs.items():
                sketch.merge_blobs(out[actor].latency, found)
            continue
        query = sa.select(r.actor_id, *[sa.func.sum(r[n]) for n in ACTOR_SUMS]).where(where)
        for actor, *values in conn.execute(query.group_by(r.actor_id)):
            add(actor or None, values)
    return out
