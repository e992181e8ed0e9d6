"""(d) Report latency at scale: every report of ``Reports`` vs a naive GROUP BY on events.

``python benchmarks/reports.py [--events N] [--regenerate] [--rebuild]``.

For each engine the dataset of ``benchmarks/gen.py`` (N events over 30 days, cached) is
queried. Each report is timed cold (the first call on a freshly opened engine: connect,
first statements; the OS page cache stays warm) and warm (median of 5 further calls;
3 when the cold call took over 5 s, 1 over 20 s). In the same run the same question is asked naively
of the raw ``events`` table (one GROUP BY per figure; percentiles with percentile_cont on
PostgreSQL, fetched and interpolated in Python on SQLite), timed, and compared with the
report's figures (counts exact, costs rel 1e-6, percentiles within 1%). Target: every
report ≤ 100 ms warm at 10M events. Time windows are anchored at the dataset's end
(``since`` = end − 30 d or end − 7 d), so a cached dataset is queried like a fresh one.
Figures go to ``benchmarks/results/reports.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from benchmarks import gen
from benchmarks._common import console
from llmtally.store.base import open_store

TARGET_MS = 100.0
RESULTS = Path(__file__).parent / "results" / "reports.json"
Row = dict[str, Any]
Check = tuple[bool, str]


# -- naive queries over the raw events table ------------------------------------------


class Naive:
    """The same questions, asked of ``events`` directly, on one connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def ts(self, value: datetime) -> Any:
        """A bound occurred_at value (ISO text on SQLite)."""
        return value if self.pg else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Run one statement; datetimes bound in the engine's form."""
        bound = {k: self.ts(v) if isinstance(v, datetime) else v for k, v in params.items()}
        return list(self.conn.execute(sa.text(sql), bound).all())

    def bucket(self, interval: str) -> str:
        """SQL for the hour/day bucket of occurred_at (UTC)."""
        if self.pg:
            return f"date_trunc('{interval}', occurred_at AT TIME ZONE 'UTC')"
        return f"substr(occurred_at, 1, {13 if interval == 'hour' else 10})"

    def percentiles(
        self, key: str | None, where: str, specs: Sequence[tuple[str, float]], **params: Any
    ) -> dict[Any, list[float | None]]:
        """Exact percentile_cont values of (column, q) per group of ``key`` (None: one group)."""
        group = f"{key}" if key else "1"
        if self.pg:
            exprs = ", ".join(
                f"percentile_cont({q}) WITHIN GROUP (ORDER BY {col})" for col, q in specs
            )
            found = self.rows(
                f"SELECT {group}, {exprs} FROM events WHERE {where} GROUP BY 1", **params
            )
            return {r[0]: [None if v is None else float(v) for v in r[1:]] for r in found}
        columns = sorted({col for col, _ in specs})
        values: dict[Any, dict[str, list[float]]] = {}
        for r in self.rows(
            f"SELECT {group}, {', '.join(columns)} FROM events WHERE {where}", **params
        ):
            per = values.get(r[0])
            if per is None:
                per = values[r[0]] = {c: [] for c in columns}
            for c, v in zip(columns, r[1:], strict=True):
                if v is not None:
                    per[c].append(v)
        out = {}
        for k, per in values.items():
            for c in columns:
                per[c].sort()
            out[k] = [_interpolate(per[c], q) for c, q in specs]
        return out


def _interpolate(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))


CALLS = "kind = 'llm_call' AND occurred_at >= :since"
ERR = "CASE WHEN status = 'error' THEN 1 ELSE 0 END"
UNPRICED = "CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END"


def naive_overview(n: Naive, since: datetime) -> Row:
    """Current period sums, distinct actors, percentiles, top model/feature, previous period."""
    now = datetime.now(UTC)
    prev = since - (now - since)
    r = n.rows(
        f"SELECT count(*), sum({ERR}), sum(cost_usd), sum({UNPRICED}), sum(input_tokens), "
        "sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), "
        "sum(reasoning_tokens), count(DISTINCT actor_id), avg(latency_ms) "
        f"FROM events WHERE {CALLS}",
        since=since,
    )[0]
    p = n.percentiles(
        None, CALLS, [("latency_ms", 0.5), ("latency_ms", 0.95), ("ttft_ms", 0.95)], since=since
    )
    p50, p95, ttft95 = next(iter(p.values()), [None] * 3)
    tops = {}
    for dim in ("model", "feature"):
        top = n.rows(
            f"SELECT {dim}, sum(cost_usd) FROM events WHERE {CALLS} GROUP BY 1 "
            "ORDER BY 2 DESC LIMIT 1",
            since=since,
        )
        tops[dim] = top[0][0] if top else None
    w_prev = "kind = 'llm_call' AND occurred_at >= :prev AND occurred_at < :since"
    pr = n.rows(f"SELECT count(*), sum({ERR}), sum(cost_usd) FROM events WHERE {w_prev}",
                prev=prev, since=since)[0]  # fmt: skip
    pp = n.percentiles(None, w_prev, [("latency_ms", 0.95)], prev=prev, since=since)
    return {
        "calls": r[0],
        "errors": r[1] or 0,
        "cost_usd": r[2] or 0.0,
        "active_actors": r[9],
        "p50_latency_ms": p50,
        "p95_latency_ms": p95,
        "p95_ttft_ms": ttft95,
        "top_model": tops["model"],
        "top_feature": tops["feature"],
        "prev_calls": pr[0],
        "prev_p95": next(iter(pp.values()), [None])[0],
    }


def naive_breakdown(n: Naive, since: datetime, column: str, limit: int | None) -> list[Row]:
    """One GROUP BY, most expensive first (and the total when limited, for shares)."""
    tail = f" LIMIT {limit}" if limit else ""
    found = n.rows(
        f"SELECT {column}, count(*), sum(cost_usd), sum({UNPRICED}), sum({ERR}), "
        "sum(input_tokens), sum(output_tokens), sum(cache_read_tokens) "
        # NULLS LAST: PostgreSQL puts a group of only unpriced calls first otherwise
        f"FROM events WHERE {CALLS} GROUP BY {column} ORDER BY 3 DESC NULLS LAST{tail}",
        since=since,
    )
    if limit:
        n.rows(f"SELECT sum(cost_usd) FROM events WHERE {CALLS}", since=since)
    return [{"key": r[0], "calls": r[1], "cost_usd": r[2] or 0.0} for r in found]


def naive_trends(n: Naive, since: datetime, interval: str) -> list[Row]:
    """Per day: calls, errors, cost, tokens."""
    found = n.rows(
        f"SELECT {n.bucket(interval)} AS b, count(*), sum({ERR}), sum(cost_usd), "
        f"sum(input_tokens), sum(output_tokens) FROM events WHERE {CALLS} GROUP BY 1 ORDER BY 1",
        since=since,
    )
    return [{"key": r[0], "calls": r[1], "cost_usd": r[3] or 0.0} for r in found]


def naive_stats(
    n: Naive, since: datetime, key: str, where: str = CALLS, specs: Sequence[Any] = ()
) -> list[Row]:
    """Per group: counts, means, and percentiles by a second query."""
    found = n.rows(
        f"SELECT {key}, count(*), sum({ERR}), avg(latency_ms), avg(ttft_ms), sum(cost_usd), "
        f"avg(input_tokens), avg(output_tokens) FROM events WHERE {where} GROUP BY 1",
        since=since,
    )
    p = n.percentiles(key, where, specs, since=since) if specs else {}
    return [
        {"key": r[0], "calls": r[1], "cost_usd": r[5] or 0.0, "p": p.get(r[0], [])}
        for r in sorted(found, key=lambda r: -r[1])
    ]


def naive_errors(n: Naive, since: datetime) -> list[Row]:
    """Errors by type × feature × model, with calls per feature × model for rates."""
    found = n.rows(
        "SELECT error_type, feature, model, count(*), min(error_message) FROM events "
        f"WHERE {CALLS} AND status = 'error' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20",
        since=since,
    )
    n.rows(f"SELECT feature, model, count(*) FROM events WHERE {CALLS} GROUP BY 1, 2", since=since)
    return [{"key": (r[0], r[1], r[2]), "count": r[3]} for r in found]


def naive_feedback(n: Naive, since: datetime) -> list[Row]:
    """Calls per feature, and feedback events joined to their calls."""
    calls = dict(
        n.rows(f"SELECT feature, count(*) FROM events WHERE {CALLS} GROUP BY 1", since=since)
    )
    # events.event_id is uuid on PostgreSQL, parent_id text
    parent = "CAST(f.parent_id AS uuid)" if n.pg else "f.parent_id"
    fb = n.rows(
        "SELECT c.feature, count(*), sum(CASE WHEN f.rating = 'up' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN f.rating = 'down' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN f.regenerated THEN 1 ELSE 0 END), "
        "sum(CASE WHEN f.edited THEN 1 ELSE 0 END) "
        f"FROM events f JOIN events c ON c.event_id = {parent} "
        "WHERE f.kind = 'feedback' AND c.kind = 'llm_call' AND c.occurred_at >= :since "
        "GROUP BY 1",
        since=since,
    )
    by = {r[0]: r for r in fb}
    return [
        {"key": k, "calls": v, "up": by[k][2] if k in by else 0, "down": by[k][3] if k in by else 0}
        for k, v in calls.items()
    ]


def naive_sessions(n: Naive, since: datetime) -> list[Row]:
    """Sessions by cost, top 50."""
    found = n.rows(
        "SELECT session_id, min(actor_id), count(*), sum(cost_usd), sum(input_tokens), "
        f"sum(output_tokens), sum({ERR}), min(occurred_at), max(occurred_at) FROM events "
        f"WHERE {CALLS} AND session_id IS NOT NULL GROUP BY 1 ORDER BY 4 DESC NULLS LAST "
        "LIMIT 50",
        since=since,
    )
    return [{"key": r[0], "calls": r[2], "cost_usd": r[3] or 0.0} for r in found]


def naive_list(n: Naive, since: datetime) -> list[Row]:
    """The newest 50 calls."""
    found = n.rows(
        "SELECT event_id, occurred_at, project, feature, model, provider, actor_id, session_id, "
        "trace_id, status, error_type, input_tokens, output_tokens, cache_read_tokens, cost_usd, "
        f"latency_ms, ttft_ms, stream FROM events WHERE {CALLS} "
        "ORDER BY occurred_at DESC LIMIT 50",
        since=since,
    )
    return [{"key": str(r[0])} for r in found]


def naive_trace(n: Naive, trace_id: str) -> list[Row]:
    """Every event of one trace."""
    found = n.rows(
        "SELECT event_id, occurred_at, kind, name, feature, model, provider, status, error_type, "
        "latency_ms, cost_usd, parent_id, actor_id FROM events WHERE trace_id = :t "
        "ORDER BY occurred_at",
        t=trace_id,
    )
    return [{"key": str(r[0])} for r in found]


# -- comparisons ----------------------------------------------------------------------


def _close(a: Any, b: Any, rel: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-9)


def _compare(
    report: list[Row], naive: list[Row], key: str | Callable[[Row], Any], fields: dict[str, Any]
) -> Check:
    """Rows matched by key; ``fields`` maps report field → (naive field or index, rel tol)."""
    get = key if callable(key) else (lambda r: r[key])
    mine = {get(r): r for r in report}
    bad = []
    missing = [n["key"] for n in naive if n["key"] not in mine]
    if len(missing) > max(0, len(naive) - len(report)):
        return False, f"{len(missing)} groups missing, e.g. {missing[0]!r}"
    for nrow in naive:
        r = mine.get(nrow["key"])
        if r is None:
            continue
        for field_name, (source, rel) in fields.items():
            expect = nrow["p"][source] if isinstance(source, int) else nrow[source]
            if not _close(r.get(field_name), expect, rel):
                bad.append(f"{nrow['key']}.{field_name} {r.get(field_name)} != {expect}")
    if bad:
        return False, f"{len(bad)} differ, e.g. {bad[0]}"
    return True, "ok"


def check_overview(report: list[Row], naive: Row) -> Check:
    """Counts, cost, distinct actors, percentiles, tops."""
    r = report[0]
    bad = [
        f"{k} {r.get(k)} != {naive[k]}"
        for k, rel in (("calls", 0), ("errors", 0), ("cost_usd", 1e-6), ("active_actors", 0),
                       ("p50_latency_ms", 0.01), ("p95_latency_ms", 0.01), ("p95_ttft_ms", 0.01))
        if not _close(r.get(k), naive[k], rel)
    ]  # fmt: skip
    bad += [f"{k} {r.get(k)} != {naive[k]}" for k in ("top_model", "top_feature")
            if r.get(k) != naive[k]]  # fmt: skip
    return (not bad), ("ok" if not bad else f"{len(bad)} differ, e.g. {bad[0]}")


def check_list(report: list[Row], naive: list[Row], key: str = "event_id") -> Check:
    """Same event ids, same order."""
    mine = [str(r[key]) for r in report]
    theirs = [n["key"] for n in naive]
    if mine == theirs:
        return True, "ok"
    if sorted(mine) == sorted(theirs):
        return True, "ok (ties ordered differently)"
    return False, f"{len(set(mine) ^ set(theirs))} ids differ ({len(mine)} vs {len(theirs)} rows)"


def _bucket_key(value: Any) -> str:
    """A trend bucket, as the naive query spells it (UTC text prefix)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


# -- the benchmark --------------------------------------------------------------------


@dataclass
class Case:
    """One report call, its naive counterpart and how to compare them."""

    name: str
    call: Callable[[Any], list[Row]]
    naive: Callable[[Naive], Any] | None
    check: Callable[[list[Row], Any], Check] | None


def cases(ds: gen.Dataset) -> list[Case]:
    """The reports timed, with the dataset's windows."""
    s30 = ds.end - timedelta(days=30)
    s7 = ds.end - timedelta(days=7)
    trace = ds.meta["sample_trace"]
    pct = [("latency_ms", 0.5), ("latency_ms", 0.95), ("latency_ms", 0.99), ("ttft_ms", 0.5),
           ("ttft_ms", 0.95)]  # fmt: skip
    one_pct = [("latency_ms", 0.95)]

    def by_bucket(width: int, fields: dict[str, Any]) -> Callable[[list[Row], Any], Check]:
        # buckets compared as UTC text: 'YYYY-MM-DD' (day, width 10) or 'YYYY-MM-DD HH' (13)
        def check(report: list[Row], naive: list[Row]) -> Check:
            keyed = [{**x, "key": _bucket_key(x["key"])[:width]} for x in naive]
            return _compare(report, keyed, lambda r: _bucket_key(r["bucket"])[:width], fields)

        return check

    timed = [
        Case("overview 30d", lambda r: r.overview(since=s30),
             lambda n: naive_overview(n, s30), check_overview),
        Case("overview 7d", lambda r: r.overview(since=s7),
             lambda n: naive_overview(n, s7), check_overview),
        Case("costs_summary", lambda r: r.costs_summary(since=s30), None, None),
        Case("costs_breakdown model", lambda r: r.costs_breakdown(by="model", since=s30),
             lambda n: naive_breakdown(n, s30, "model", None),
             lambda rep, nv: _compare(rep, nv, "model", {"calls": ("calls", 0),
                                                          "cost_usd": ("cost_usd", 1e-6)})),
        Case("costs_breakdown feature", lambda r: r.costs_breakdown(by="feature", since=s30),
             lambda n: naive_breakdown(n, s30, "feature", None),
             lambda rep, nv: _compare(rep, nv, "feature", {"calls": ("calls", 0),
                                                            "cost_usd": ("cost_usd", 1e-6)})),
        Case("costs_breakdown actor top50",
             lambda r: r.costs_breakdown(by="actor", since=s30, limit=50),
             lambda n: naive_breakdown(n, s30, "actor_id", 50),
             lambda rep, nv: _compare(rep, nv, "actor", {"calls": ("calls", 0),
                                                          "cost_usd": ("cost_usd", 1e-6)})),
        Case("costs_breakdown session top50",
             lambda r: r.costs_breakdown(by="session", since=s30, limit=50),
             lambda n: naive_breakdown(n, s30, "session_id", 50),
             lambda rep, nv: _compare(rep, nv, "session", {"calls": ("calls", 0),
                                                            "cost_usd": ("cost_usd", 1e-6)})),
        Case("costs_trends day", lambda r: r.costs_trends(interval="day", since=s30),
             lambda n: naive_trends(n, s30, "day"),
             by_bucket(10, {"calls": ("calls", 0), "cost_usd": ("cost_usd", 1e-6)})),
        Case("requests_stats feature", lambda r: r.requests_stats(by="feature", since=s30),
             lambda n: naive_stats(n, s30, "feature", specs=pct),
             lambda rep, nv: _compare(rep, nv, "feature", {
                 "calls": ("calls", 0), "p50_latency_ms": (0, 0.01), "p95_latency_ms": (1, 0.01),
                 "p99_latency_ms": (2, 0.01), "p95_ttft_ms": (4, 0.01)})),
        Case("requests_trends hour 7d", lambda r: r.requests_trends(interval="hour", since=s7),
             lambda n: naive_stats(n, s7, n.bucket("hour"), specs=one_pct),
             by_bucket(13, {"calls": ("calls", 0), "p95_latency_ms": (0, 0.01)})),
        Case("requests_models", lambda r: r.requests_models(since=s30),
             lambda n: naive_stats(n, s30, "model", specs=one_pct),
             lambda rep, nv: _compare(rep, nv, "model", {
                 "calls": ("calls", 0), "cost_usd": ("cost_usd", 1e-6),
                 "p95_latency_ms": (0, 0.01)})),
        Case("errors", lambda r: r.errors(since=s30), lambda n: naive_errors(n, s30),
             lambda rep, nv: _compare(rep, nv, lambda r: (r["error_type"], r["feature"],
                                                          r["model"]), {"count": ("count", 0)})),
        Case("feedback feature", lambda r: r.feedback(by="feature", since=s30),
             lambda n: naive_feedback(n, s30),
             lambda rep, nv: _compare(rep, nv, "feature", {
                 "calls": ("calls", 0), "up": ("up", 0), "down": ("down", 0)})),
        Case("sessions", lambda r: r.sessions(since=s30), lambda n: naive_sessions(n, s30),
             lambda rep, nv: _compare(rep, nv, "session_id", {
                 "turns": ("calls", 0), "cost_usd": ("cost_usd", 1e-6)})),
        Case("agents", lambda r: r.agents(since=s30),
             lambda n: naive_stats(n, s30, "actor_id", f"{CALLS} AND actor_type = 'agent'",
                                   one_pct),
             lambda rep, nv: _compare(rep, nv, "actor_id", {
                 "calls": ("calls", 0), "cost_usd": ("cost_usd", 1e-6),
                 "p95_latency_ms": (0, 0.01)})),
        Case("tools", lambda r: r.tools(since=s30),
             lambda n: naive_stats(n, s30, "name",
                                   "kind = 'tool_call' AND occurred_at >= :since", one_pct),
             lambda rep, nv: _compare(rep, nv, "name", {
                 "calls": ("calls", 0), "p95_latency_ms": (0, 0.01)})),
        Case("requests_list", lambda r: r.requests_list(since=s30),
             lambda n: naive_list(n, s30), check_list),
        Case("trace", lambda r: r.trace(trace), lambda n: naive_trace(n, trace), check_list),
    ]  # fmt: skip
    return _covering_the_registry(timed)


def _covering_the_registry(timed: list[Case]) -> list[Case]:
    """``timed``, after checking that every report of the registry is among them."""
    from llmtally.query import registry

    names = {case.name.split(" ")[0] for case in timed}
    missing = [r.name for r in registry.all_reports() if r.name.replace(".", "_") not in names]
    if missing:
        raise SystemExit(f"benchmarks/reports.py times no case of: {', '.join(missing)}")
    return timed


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def measure(url: str, case: Case) -> Row:
    """Cold and warm timings of one report, naive timing and the comparison."""
    from llmtally.query.reports import Reports

    out: Row = {"report": case.name}
    store = open_store(url)
    rows: list[Row] | None = None
    try:
        reports = Reports(store.engine)
        start = time.perf_counter()
        try:
            rows = case.call(reports)
        except Exception as exc:  # a report failing: still time the naive query
            out["error"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            cold = time.perf_counter() - start
            warm = []
            for _ in range(5 if cold < 5 else 3 if cold < 20 else 1):
                start = time.perf_counter()
                case.call(reports)
                warm.append(time.perf_counter() - start)
            out.update(rows=len(rows), cold_ms=_ms(cold), warm_ms=_ms(statistics.median(warm)),
                       warm_runs=len(warm))  # fmt: skip
            out["met"] = out["warm_ms"] <= TARGET_MS
        if case.naive is not None:
            with store.engine.connect() as conn:
                naive = Naive(conn)
                times = []
                while len(times) < 3 and (not times or sum(times) < 1.0):
                    start = time.perf_counter()
                    result = case.naive(naive)
                    times.append(time.perf_counter() - start)
            out["naive_ms"] = _ms(statistics.median(times))
            if rows is not None:
                out["naive_ratio"] = round(out["naive_ms"] / max(out["warm_ms"], 0.01), 1)
            if case.check is not None and rows is not None:
                try:
                    ok, note = case.check(rows, result)
                except Exception as exc:
                    ok, note = False, f"check failed: {type(exc).__name__}: {exc}"[:200]
                out["matches_naive"], out["check"] = ok, note
    finally:
        store.close()
    return out


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A result table at least 132 columns wide (the shared console assumes 80 off a tty)."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        out.add_row(*[str(cell) for cell in row])
    Console(width=max(132, console.width)).print(out)


def run(n: int, *, regenerate: bool = False, rebuild: bool = False) -> dict[str, Any]:
    """Generate (or reuse) the dataset, time every report on every engine; return figures."""
    ds = gen.ensure(n, regenerate=regenerate, rebuild=rebuild)
    results: dict[str, Any] = {
        "n": n,
        "dataset": {k: v for k, v in ds.meta.items() if k not in ("actors", "columns")},
        "target_ms": TARGET_MS,
        "rollups": gen.rollups_available(),
    }
    for engine, url in ds.urls.items():
        label = "SQLite" if engine == "sqlite" else "PostgreSQL"
        figures = []
        for case in cases(ds):
            figures.append(measure(url, case))
            done = figures[-1]
            console.print(
                f"  {label} {case.name}: "
                + (done.get("error") or f"cold {done['cold_ms']} ms, warm {done['warm_ms']} ms"
                   + (f", naive {done['naive_ms']} ms" if "naive_ms" in done else ""))
            )  # fmt: skip
        results[engine] = figures
        _table(
            f"(d) {label}, {ds.meta['events']:,} events: report latency in ms (cold = first "
            f"call on a fresh engine; warm = median) vs a naive GROUP BY on events; "
            f"target ≤ {TARGET_MS:.0f} ms warm",
            ["report", "rows", "cold", "warm", "≤100ms", "naive", "naive/report", "vs naive"],
            [
                [
                    f["report"],
                    "",
                    "",
                    "",
                    "ERROR",
                    f"{f['naive_ms']:,.1f}" if "naive_ms" in f else "",
                    "",
                    f["error"][:60],
                ]
                if "error" in f
                else [
                    f["report"],
                    f["rows"],
                    f"{f['cold_ms']:,.1f}",
                    f"{f['warm_ms']:,.1f}",
                    "met" if f["met"] else "MISSED",
                    f"{f['naive_ms']:,.1f}" if "naive_ms" in f else "",
                    f"{f['naive_ratio']:,.1f}x" if "naive_ratio" in f else "",
                    f.get("check", "")[:60],
                ]
                for f in figures
            ],
        )
        met = sum(1 for f in figures if f.get("met"))
        console.print(f"{label}: {met} of {len(figures)} reports within {TARGET_MS:.0f} ms warm")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results written to {RESULTS}")
    return results


def main() -> None:
    """Run the report benchmark alone."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 events")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="rebuild rollups even if current")
    args = parser.parse_args()
    run(200_000 if args.quick else args.events, regenerate=args.regenerate, rebuild=args.rebuild)


if __name__ == "__main__":
    main()
