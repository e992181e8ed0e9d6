"""Grouped aggregates over a time window: whole buckets from rollups, edges from raw events.

``collect`` is what every counting report builds on. It answers from the rollups
(whole days, then whole hours, then whole 5-minute buckets) whenever the grouping and
filters allow (only rolled-up dimensions, no actor filter), adding the partial 5 minutes
at the window's ends from the events table, and falls back to
the events table alone otherwise. Both paths produce the same ``Agg`` values, so a
report cannot tell which one answered.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from llmtally.query.filters import ROLLUP_DIMS, Filters, refine, split
from llmtally.query.vocabulary import DIMENSION_COLUMNS as DIMENSIONS
from llmtally.store import sketch
from llmtally.store.schema import ROLLUP_SUMS, events, rollup_5min, rollup_daily, rollup_hourly

_SUM_INDEX = {name: i for i, name in enumerate(ROLLUP_SUMS)}
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens")  # fmt: skip


@dataclass(slots=True)
class Agg:
    """Sums, histograms and an example error of one group."""

    sums: list[float] = field(default_factory=lambda: [0] * len(ROLLUP_SUMS))
    latency: sketch.Histogram = field(default_factory=dict)
    ttft: sketch.Histogram = field(default_factory=dict)
    example: str | None = None

    def __getattr__(self, name: str) -> Any:
        index = _SUM_INDEX.get(name)
        if index is None:
            raise AttributeError(name)
        return self.sums[index]

    def add(self, other: Agg) -> None:
        """Merge another group's values into this one."""
        for i, value in enumerate(other.sums):
            self.sums[i] += value
        sketch.merge(self.latency, other.latency)
        sketch.merge(self.ttft, other.ttft)
        if other.example is not None:
            self.example = other.example

    @property
    def avg_latency(self) -> float | None:
        """Mean latency in ms (None without any)."""
        n = self.sums[_SUM_INDEX["latency_count"]]
        return self.sums[_SUM_INDEX["latency_sum"]] / n if n else None

    @property
    def avg_ttft(self) -> float | None:
        """Mean time to first token in ms (None without any)."""
        n = self.sums[_SUM_INDEX["ttft_count"]]
        return self.sums[_SUM_INDEX["ttft_sum"]] / n if n else None


def aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def truncate(moment: datetime, interval: str) -> datetime:
    """Start of the hour, UTC day or ISO week (Monday) containing ``moment``."""
    moment = aware(moment).astimezone(UTC)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    return day - timedelta(days=day.weekday())


def collect(
    conn: sa.Connection,
    filters: Filters,
    by: Sequence[str] = (),
    *,
    kind: str = "llm_call",
    histograms: bool | Literal["latency"] = False,
    interval: str | None = None,
    extra: sa.ColumnElement[bool] | None = None,
) -> dict[tuple[Any, ...], Agg]:
    """Aggregates per group (``by`` dimensions, then the time bucket when ``interval``).

    ``histograms``: True for latency and TTFT sketches, ``"latency"`` for latency only
    (half the blobs to read and merge).
    """
    kinds = (kind,)
    out: dict[tuple[Any, ...], Agg] = {}
    windows: tuple[tuple[datetime | None, datetime | None], ...]
    use_rollup = filters.rollup_ok() and set(by) <= ROLLUP_DIMS and extra is None
    if use_rollup:
        parts = split(filters.since, filters.until)
        if parts.daily is not None and interval != "hour":
            _from_rollup(conn, rollup_daily, filters, by, kinds, parts.daily, histograms,
                         interval, out)  # fmt: skip
            hourly = parts.hourly
        elif parts.daily is not None:  # hourly trends need hours even inside whole days
            hourly = (*parts.hourly, parts.daily)
        else:
            hourly = parts.hourly
        for window in hourly:
            _from_rollup(conn, rollup_hourly, filters, by, kinds, window, histograms,
                         interval, out)  # fmt: skip
        windows = ()
        for raw in parts.raw:
            fine, rest = refine(raw)
            if fine is not None:
                _from_rollup(conn, rollup_5min, filters, by, kinds, fine, histograms,
                             interval, out)  # fmt: skip
            windows += rest
    else:
        windows = ((filters.since, filters.until),)
    for since, until in windows:
        _from_raw(conn, filters, by, kinds, since, until, histograms, interval, extra, out)
    return out


def _merge_into(out: dict[tuple[Any, ...], Agg], key: tuple[Any, ...], agg: Agg) -> None:
    found = out.get(key)
    if found is None:
        out[key] = agg
    else:
        found.add(agg)


def _from_rollup(
    conn: sa.Connection,
    table: sa.Table,
    filters: Filters,
    by: Sequence[str],
    kinds: tuple[str, ...],
    window: tuple[datetime | None, datetime | None],
    histograms: bool | Literal["latency"],
    interval: str | None,
    out: dict[tuple[Any, ...], Agg],
) -> None:
    r = table.c
    where = filters.rollup_where(table, kinds, *window)
    group_cols = [r[DIMENSIONS[name]] for name in by]
    if interval is not None:
        group_cols.append(r.bucket)
    if histograms:
        # one pass over the matching rows (a second, grouped query costs PostgreSQL another
        # scan); the sketches merge in Python, all of a group's blobs at once
        ttft_col = r.ttft_hist if histograms is True else sa.null()
        query = sa.select(
            *group_cols, *[r[name] for name in ROLLUP_SUMS], r.example_error,
            r.latency_hist, ttft_col,
        ).where(where)  # fmt: skip
        n = len(group_cols)
        width = len(ROLLUP_SUMS)
        blobs: dict[tuple[Any, ...], tuple[Agg, list[Any], list[Any]]] = {}
        for row in conn.execute(query):
            key = _rollup_key(row[:n], interval)
            pending = blobs.get(key)
            if pending is None:
                agg = out.get(key)
                if agg is None:
                    agg = out[key] = Agg()
                pending = blobs[key] = (agg, [], [])
            sums = pending[0].sums
            for i, value in enumerate(row[n : n + width]):
                sums[i] += value
            example, latency, ttft = row[n + width :]
            if example is not None:
                pending[0].example = example
            pending[1].append(latency)
            pending[2].append(ttft)
        for agg, latencies, ttfts in blobs.values():
            sketch.merge_blobs(agg.latency, latencies)
            sketch.merge_blobs(agg.ttft, ttfts)
        return
    query = sa.select(
        *group_cols, *[sa.func.sum(r[name]) for name in ROLLUP_SUMS], sa.func.max(r.example_error)
    ).where(where)
    if group_cols:
        query = query.group_by(*group_cols)
    n = len(group_cols)
    for row in conn.execute(query):
        if row[n] is None:  # no rollup rows at all
            continue
        # PostgreSQL sums bigints as numeric: floats are exact for counts below 2**53
        agg = Agg(sums=[float(v) for v in row[n : n + len(ROLLUP_SUMS)]], example=row[-1])
        _merge_into(out, _rollup_key(row[:n], interval), agg)


@functools.lru_cache(maxsize=4096)
def _truncated(bucket: Any, interval: str) -> datetime:
    # thousands of rollup rows share a few hundred buckets
    return truncate(bucket, interval)


def _rollup_key(values: Sequence[Any], interval: str | None) -> tuple[Any, ...]:
    if interval is None:
        return tuple(v or None for v in values)
    *dims, bucket = values
    return (*[v or None for v in dims], _truncated(bucket, interval))


def _from_raw(
    conn: sa.Connection,
    filters: Filters,
    by: Sequence[str],
    kinds: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    histograms: bool | Literal["latency"],
    interval: str | None,
    extra: sa.ColumnElement[bool] | None,
    out: dict[tuple[Any, ...], Agg],
) -> None:
    c = events.c
    where = filters.raw_where(kinds, since, until)
    if extra is not None:
        where = where & extra
    group_cols = [c[DIMENSIONS[name]] for name in by]
    if not histograms and interval is None:
        is_error = sa.case((c.status == "error", 1), else_=0)
        query = sa.select(
            *group_cols,
            sa.func.count(),
            sa.func.sum(is_error),
            sa.func.sum(c.cost_usd),
            sa.func.count(c.cost_usd),
            *[sa.func.sum(c[name]) for name in _TOKENS],
            sa.func.sum(c.latency_ms),
            sa.func.count(c.latency_ms),
            sa.func.sum(c.ttft_ms),
            sa.func.count(c.ttft_ms),
            sa.func.count(c.input_tokens),
            sa.func.count(c.output_tokens),
            sa.func.max(c.error_message),
        ).where(where)
        if group_cols:
            query = query.group_by(*group_cols)
        n = len(group_cols)
        for row in conn.execute(query):
            if row[n] == 0:
                continue
            sums = [float(v or 0) for v in row[n : n + len(ROLLUP_SUMS)]]
            _merge_into(out, tuple(row[:n]), Agg(sums=sums, example=row[-1]))
        return
    query = sa.select(
        *group_cols, c.occurred_at, c.status, c.cost_usd, *[c[name] for name in _TOKENS],
        c.latency_ms, c.ttft_ms, c.error_message,
    ).where(where)  # fmt: skip
    n = len(group_cols)
    for row in conn.execute(query):
        key = tuple(row[:n])
        if interval is not None:
            key = (*key, truncate(row[n], interval))
        agg = out.get(key)
        if agg is None:
            agg = out[key] = Agg()
        status, cost, *tokens, latency, ttft, message = row[n + 1 :]
        s = agg.sums
        s[0] += 1
        if status == "error":
            s[1] += 1
            if message:
                agg.example = message
        if cost is not None:
            s[2] += cost
            s[3] += 1
        for offset, value in enumerate(tokens, start=4):
            if value:
                s[offset] += value
        if tokens[0] is not None:
            s[13] += 1
        if tokens[1] is not None:
            s[14] += 1
        if latency is not None:
            s[9] += latency
            s[10] += 1
            b = sketch.bucket(latency)
            agg.latency[b] = agg.latency.get(b, 0) + 1
        if ttft is not None:
            s[11] += ttft
            s[12] += 1
            b = sketch.bucket(ttft)
            agg.ttft[b] = agg.ttft.get(b, 0) + 1
