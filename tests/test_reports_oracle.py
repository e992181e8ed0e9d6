"""Every report of the query layer against an independent oracle, on random datasets.

Datasets come from Hypothesis strategies (``oracle.datasets``), are recorded through the
real pipeline (``Tally.record_call`` / ``record_feedback`` / ``record_tool_call`` /
``record_event``) into a fresh database each, on SQLite and on PostgreSQL, and read back
raw with SQLAlchemy. ``oracle`` recomputes each report from those rows for a set of
scenarios: windows aligned and not aligned on hours (the reports mix hourly rollups with
raw-event edges), events exactly on window edges, and every filter.

Each test checks one report on every dataset and scenario and lists all mismatches at
once. Reproduce a run with ``LLMTALLY_ORACLE_SEED=<seed>`` (printed on failure);
``LLMTALLY_ORACLE_EXAMPLES`` sets the number of datasets (default 10).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

import llmtally
import oracle as o
import pgserver
from dbutil import rows
from llmtally.errors import QueryError
from llmtally.query.reports import Filters, Reports

SEED = int(os.environ.get("LLMTALLY_ORACLE_SEED") or random.randrange(2**32))
EXAMPLES = int(os.environ.get("LLMTALLY_ORACLE_EXAMPLES") or 10)
HEADER = f"LLMTALLY_ORACLE_SEED={SEED} LLMTALLY_ORACLE_EXAMPLES={EXAMPLES}"


@dataclass
class Loaded:
    """One dataset recorded into its own database."""

    index: int
    dataset: o.Dataset
    url: str
    tally: llmtally.Tally
    events: list[dict[str, Any]]
    scenarios: list[o.Scenario]

    @property
    def reports(self) -> Reports:
        return self.tally.reports

    def label(self) -> str:
        return f"dataset #{self.index} ({self.dataset.summary()})"


@pytest.fixture(scope="module")
def pool() -> list[o.Dataset]:
    """``EXAMPLES`` datasets drawn by Hypothesis (the first is its simplest: almost empty)."""
    drawn: list[o.Dataset] = []

    @hypothesis_seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(o.datasets())
    def collect(ds: o.Dataset) -> None:
        drawn.append(ds)

    collect()
    return drawn


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def loaded(
    request: pytest.FixtureRequest, pool: list[o.Dataset], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Loaded]]:
    """Each dataset of the pool in a fresh database of one engine."""
    admin = str(request.getfixturevalue("pg_admin_url")) if request.param == "postgres" else None
    base = tmp_path_factory.mktemp(f"oracle-{request.param}")
    out: list[Loaded] = []
    try:
        for index, ds in enumerate(pool):
            work = base / f"ds{index}"
            work.mkdir()
            url = pgserver.create_database(admin) if admin else f"sqlite:///{work / 'db.sqlite'}"
            tally = llmtally.Tally(url, spool_dir=work / "spool", project="alpha")
            out.append(Loaded(index, ds, url, tally, [], o.scenarios(ds)))
            o.record(tally, ds)
            assert tally.flush(30), f"dataset #{index} not flushed: {tally.stats()}"
            out[-1].events = o.normalize(rows(url))
            _ = tally.reports  # migrated and ready
        yield out
    finally:
        for item in out:
            item.tally.close()
            if admin:
                pgserver.drop_database(admin, item.url)
        shutil.rmtree(base, ignore_errors=True)


def _run(loaded: list[Loaded], name: str) -> o.Checker:
    return o.Checker(f"{name}: {HEADER}")


def _call(ck: o.Checker, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # a crashing report is one more mismatch, not the end
        ck.fail(f"raised {type(exc).__name__}: {exc}"[:400])
        return None


def _finish(ck: o.Checker) -> None:
    message = ck.report()
    if message:
        pytest.fail(message, pytrace=False)
    assert ck.checked > 0


def _for_each(ck: o.Checker, loaded: list[Loaded]) -> Iterator[tuple[Loaded, o.Scenario]]:
    for item in loaded:
        with ck.context(item.label()):
            for sc in item.scenarios:
                with ck.context(str(sc)):
                    yield item, sc


def _has(method: str) -> None:
    if not hasattr(Reports, method):
        pytest.fail(f"Reports.{method} does not exist (contract: REPORTS_API.md)", pytrace=False)


# --------------------------------------------------------------------------- costs


def test_overview(loaded: list[Loaded]) -> None:
    ck = _run(loaded, "overview")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.overview, **sc.kwargs())
        if got is None or ck.rows_list(got) is None:
            continue
        if len(got) != 1:
            ck.fail(f"expected exactly one row, got {len(got)}")
            continue
        exp = o.exp_overview(item.events, sc)
        ck.row(got[0], exp, list(exp))
        if sc.previous() is None:
            for name in ("prev_calls", "prev_cost_usd", "calls_change", "cost_change"):
                if got[0].get(name) is not None:
                    ck.fail(f"{name} without since: expected absent/None, got {got[0][name]!r}")
    _finish(ck)


def test_costs_summary(loaded: list[Loaded]) -> None:
    ck = _run(loaded, "costs_summary")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.costs_summary, **sc.kwargs())
        if got is None or ck.rows_list(got) is None:
            continue
        if len(got) != 1:
            ck.fail(f"expected exactly one row, got {len(got)}")
            continue
        ck.row(got[0], o.exp_costs_summary(item.events, sc), ("calls", "cost_usd"))
        for name in ("days", "avg_cost_per_day_usd", "avg_cost_per_call_usd"):
            if name not in got[0]:
                ck.fail(f"missing key {name!r}")
    _finish(ck)


def test_costs_summary_days_span_the_window(loaded: list[Loaded]) -> None:
    """``days`` is not defined by the contract; with an explicit since/until it can only be
    the window's length (rounding to 3 decimals and a one-hour minimum tolerated), and
    ``avg_cost_per_day_usd`` is ``cost_usd / days``."""
    ck = _run(loaded, "costs_summary days")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.costs_summary, **sc.kwargs())
        if not got or "days" not in got[0]:
            continue
        row = got[0]
        ck.checked += 1
        cost = o.cost_value(o.exp_costs_summary(item.events, sc)["cost_usd"])
        days, per_day = row["days"], row.get("avg_cost_per_day_usd")
        if sc.since is not None and sc.until is not None:
            window = (sc.until - sc.since).total_seconds() / 86_400
            allowed = (window, max(window, 1 / 24))
            if not (o._is_number(days) and any(abs(days - w) <= 5e-4 for w in allowed)):
                ck.fail(f"days: expected the window length {window!r} (±5e-4), got {days!r}")
            want = cost / max(window, 1 / 24) if cost else 0.0
            if not (o._is_number(per_day) and o._close(per_day, want, 2e-2, 1e-12)):
                ck.fail(f"avg_cost_per_day_usd: expected ~{want!r}, got {per_day!r}")
        elif o._is_number(days) and days > 0:
            want = cost / days
            if not (o._is_number(per_day) and o._close(per_day, want, 2e-2, 1e-12)):
                ck.fail(f"avg_cost_per_day_usd {per_day!r} != cost_usd/days {want!r}")
    _finish(ck)


def test_average_costs_are_over_priced_calls(loaded: list[Loaded]) -> None:
    """Contract: "Averages are arithmetic means over non-null values" — so the average
    cost of a group is over its priced calls (cost_usd not null), None when none is."""
    ck = _run(loaded, "avg_cost_usd / avg_cost_per_call_usd")
    for item, sc in _for_each(ck, loaded):
        with ck.context("costs_summary"):
            got = _call(ck, item.reports.costs_summary, **sc.kwargs())
            if got and len(got) == 1:
                exp = o.exp_costs_summary(item.events, sc)
                ck.row(got[0], exp, ("avg_cost_per_call_usd",))
        with ck.context("costs_breakdown(by=feature)"):
            got = _call(ck, item.reports.costs_breakdown, by="feature", **sc.kwargs())
            exp_groups = o.exp_breakdown(item.events, sc, "feature")
            for r in got or []:
                if r.get("feature") in exp_groups:
                    with ck.context(f"group {r['feature']!r}"):
                        ck.row(r, exp_groups[r["feature"]], ("avg_cost_usd",))
    _finish(ck)


@pytest.mark.parametrize("interval", ["hour", "day", "week"])
def test_costs_trends(loaded: list[Loaded], interval: str) -> None:
    ck = _run(loaded, f"costs_trends({interval})")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.costs_trends, interval=interval, **sc.kwargs())
        _check_trend(ck, got, o.exp_trends(item.events, sc, interval, o.TREND_COST_FIELDS))
    _finish(ck)


def _check_trend(ck: o.Checker, got: Any, exp: list[dict[str, Any]]) -> None:
    if got is None or ck.rows_list(got) is None:
        return
    got_buckets = [r.get("bucket") for r in got]
    exp_buckets = [r["bucket"] for r in exp]
    if got_buckets != exp_buckets:
        ck.fail(
            f"buckets: expected {[b.isoformat() for b in exp_buckets]}, got "
            f"{[b.isoformat() if hasattr(b, 'isoformat') else b for b in got_buckets]}"
        )
        exp_by = {r["bucket"]: r for r in exp}
        for r in got:
            if r.get("bucket") in exp_by:
                with ck.context(f"bucket {r['bucket'].isoformat()}"):
                    ck.row(r, exp_by[r["bucket"]], list(exp_by[r["bucket"]]))
        return
    for r, e in zip(got, exp, strict=True):
        with ck.context(f"bucket {e['bucket'].isoformat()}"):
            ck.row(r, e, list(e))


@pytest.mark.parametrize("by", list(o.DIMENSIONS))
def test_costs_breakdown(loaded: list[Loaded], by: str) -> None:
    ck = _run(loaded, f"costs_breakdown(by={by})")
    for item, sc in _for_each(ck, loaded):
        exp = o.exp_breakdown(item.events, sc, by)
        for limit in (None, 2):
            with ck.context(f"limit={limit}"):
                got = _call(ck, item.reports.costs_breakdown, by=by, limit=limit, **sc.kwargs())
                if got is not None:
                    ck.grouped(
                        got, exp, lambda r: r[by], o.BREAKDOWN_FIELDS, o.by_cost, limit=limit
                    )
    _finish(ck)


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("by", [None, *o.DIMENSIONS])
def test_requests_stats(loaded: list[Loaded], by: str | None) -> None:
    _has("requests_stats")
    ck = _run(loaded, f"requests_stats(by={by})")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.requests_stats, by=by, **sc.kwargs())
        if got is None:
            continue
        exp = o.exp_requests_stats(item.events, sc, by)
        if by is None:
            if ck.rows_list(got) is None:
                continue
            calls = exp[None]["calls"]
            if calls == 0 and (got == [] or (len(got) == 1 and got[0].get("calls") == 0)):
                continue  # no calls: no row or a zero row, the contract says neither
            if len(got) != 1:
                ck.fail(f"by=None: expected one row, got {len(got)}")
                continue
            ck.row(got[0], exp[None], o.STATS_FIELDS)
        else:
            ck.grouped(got, exp, lambda r: r[by], o.STATS_FIELDS, o.by_calls)
    _finish(ck)


def test_requests_list(loaded: list[Loaded]) -> None:
    _has("requests_list")
    ck = _run(loaded, "requests_list")
    for item, sc in _for_each(ck, loaded):
        exp = o.exp_requests_list(item.events, sc)
        by_id = {e["event_id"]: e for e in exp}
        for limit, offset in ((None, None), (7, 5), (100_000, 0), (5, len(exp))):
            kwargs: dict[str, Any] = {}
            if limit is not None:
                kwargs.update(limit=limit, offset=offset)
            with ck.context(f"limit={limit} offset={offset}"):
                got = _call(ck, item.reports.requests_list, **kwargs, **sc.kwargs())
                if got is None or ck.rows_list(got) is None:
                    continue
                start = offset or 0
                want = exp[start : start + (50 if limit is None else limit)]
                _check_page(ck, got, want, by_id)
    _finish(ck)


def _check_page(
    ck: o.Checker, got: list[dict[str, Any]], want: list[dict[str, Any]], by_id: dict[str, Any]
) -> None:
    """The page holds the expected rows; among equal timestamps any order is fine."""
    if len(got) != len(want):
        ck.fail(f"{len(got)} rows, expected {len(want)}")
    got_times = [r.get("occurred_at") for r in got]
    want_times = [r["occurred_at"] for r in want]
    if got_times != want_times[: len(got_times)]:
        ck.fail(f"occurred_at sequence differs (newest first expected): {got_times[:5]}…")
    ids = [r.get("event_id") for r in got]
    if len(set(ids)) != len(ids):
        ck.fail("duplicate event_id in one page")
    for r in got:
        exp = by_id.get(r.get("event_id"))
        if exp is None:
            ck.fail(f"event {r.get('event_id')!r} should not be listed")
            continue
        with ck.context(f"event {exp['event_id']}"):
            ck.row(r, exp, o.LIST_FIELDS)


@pytest.mark.parametrize("interval", [None, "day", "week"])
def test_requests_trends(loaded: list[Loaded], interval: str | None) -> None:
    _has("requests_trends")
    ck = _run(loaded, f"requests_trends({interval})")
    for item, sc in _for_each(ck, loaded):
        kwargs = {} if interval is None else {"interval": interval}
        got = _call(ck, item.reports.requests_trends, **kwargs, **sc.kwargs())
        exp = o.exp_trends(item.events, sc, interval or "hour", o.TREND_REQUEST_FIELDS)
        _check_trend(ck, got, exp)
    _finish(ck)


def test_requests_models(loaded: list[Loaded]) -> None:
    _has("requests_models")
    ck = _run(loaded, "requests_models")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.requests_models, **sc.kwargs())
        if got is not None:
            ck.grouped(
                got,
                o.exp_requests_models(item.events, sc),
                lambda r: (r["model"], r["provider"]),
                o.MODELS_FIELDS,
                o.by_calls,
            )
    _finish(ck)


def test_errors(loaded: list[Loaded]) -> None:
    _has("errors")
    ck = _run(loaded, "errors")
    for item, sc in _for_each(ck, loaded):
        exp = o.exp_errors(item.events, sc)
        for group in exp.values():
            messages = group["example_message"] - {None}
            group["example_message"] = messages or {None}  # a message when there is one
        for limit in (None, 1000, 3):
            with ck.context(f"limit={limit}"):
                kwargs = {} if limit is None else {"limit": limit}
                got = _call(ck, item.reports.errors, **kwargs, **sc.kwargs())
                if got is None:
                    continue
                ck.grouped(
                    got,
                    exp,
                    lambda r: (r["error_type"], r["feature"], r["model"]),
                    ("count", "share", "error_rate", "example_message"),
                    o.by_count,
                    limit=limit or 20,
                )
    _finish(ck)


# --------------------------------------------------------------------------- quality & agents


@pytest.mark.parametrize("by", ["feature", "model"])
def test_feedback(loaded: list[Loaded], by: str) -> None:
    _has("feedback")
    ck = _run(loaded, f"feedback(by={by})")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.feedback, by=by, **sc.kwargs())
        if got is not None:  # the contract gives no order
            ck.grouped(
                got, o.exp_feedback(item.events, sc, by), lambda r: r[by], o.FEEDBACK_FIELDS, None
            )
    _finish(ck)


def test_sessions(loaded: list[Loaded]) -> None:
    _has("sessions")
    ck = _run(loaded, "sessions")
    for item, sc in _for_each(ck, loaded):
        exp = o.exp_sessions(item.events, sc)
        assert len(exp) < 50, "datasets stay under the default limit"
        for limit in (None, 3):
            with ck.context(f"limit={limit}"):
                kwargs = {} if limit is None else {"limit": limit}
                got = _call(ck, item.reports.sessions, **kwargs, **sc.kwargs())
                if got is not None:
                    ck.grouped(
                        got,
                        exp,
                        lambda r: r["session_id"],
                        o.SESSION_FIELDS,
                        o.by_cost,
                        limit=limit or 50,
                    )
    _finish(ck)


def test_agents(loaded: list[Loaded]) -> None:
    _has("agents")
    ck = _run(loaded, "agents")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.agents, **sc.kwargs())
        if got is not None:
            ck.grouped(
                got,
                o.exp_agents(item.events, sc),
                lambda r: r["actor_id"],
                o.AGENT_FIELDS,
                o.by_cost,
            )
    _finish(ck)


def test_tools(loaded: list[Loaded]) -> None:
    _has("tools")
    ck = _run(loaded, "tools")
    for item, sc in _for_each(ck, loaded):
        got = _call(ck, item.reports.tools, **sc.kwargs())
        if got is not None:
            ck.grouped(
                got, o.exp_tools(item.events, sc), lambda r: r["name"], o.TOOL_FIELDS, o.by_calls
            )
    _finish(ck)


def test_trace(loaded: list[Loaded]) -> None:
    _has("trace")
    ck = _run(loaded, "trace")
    for item in loaded:
        with ck.context(item.label()):
            for trace_id in [t for t in o.TRACES if t is not None] + ["no-such-trace"]:
                with ck.context(f"trace {trace_id}"):
                    got = _call(ck, item.reports.trace, trace_id)
                    if got is None or ck.rows_list(got) is None:
                        continue
                    exp = o.exp_trace(item.events, trace_id)
                    by_id = {e["event_id"]: e for e in exp}
                    got_times = [r.get("occurred_at") for r in got]
                    if got_times != [e["occurred_at"] for e in exp]:
                        ck.fail(f"{len(got)} events, expected {len(exp)} oldest first")
                    if sorted(r.get("event_id") for r in got) != sorted(by_id):
                        ck.fail("other events than the trace's")
                    for r in got:
                        if r.get("event_id") in by_id:
                            with ck.context(f"event {r['event_id']} ({r.get('kind')})"):
                                ck.row(r, by_id[r["event_id"]], o.TRACE_FIELDS)
    _finish(ck)


# --------------------------------------------------------------------------- filters & setup


def test_filters_object_and_scoped_reports(loaded: list[Loaded]) -> None:
    """A Filters object equals the keyword form; Reports(project=…) scopes like the filter."""
    ck = _run(loaded, "filters")
    for item in loaded:
        with ck.context(item.label()):
            since, until = o.WINDOWS["w1"]
            kw = {"since": since, "until": until, "feature": "chat", "status": "error"}
            for name in ("overview", "costs_breakdown", "costs_summary"):
                with ck.context(name):
                    method = getattr(item.reports, name)
                    a = _call(ck, method, **kw)
                    b = _call(ck, method, filters=Filters.parse(**kw))
                    if a != b:
                        ck.fail(f"keywords {a!r} != Filters object {b!r}")
            with ck.context("ISO strings"):
                iso = {
                    "since": since.isoformat(),
                    "until": until.isoformat().replace("+00:00", "Z"),
                }
                a = _call(ck, item.reports.overview, **iso)
                b = _call(ck, item.reports.overview, since=since, until=until)
                if a != b:
                    ck.fail(f"ISO datetimes {iso} give {a!r}, datetimes give {b!r}")
                day = o.REF.replace(hour=0) - timedelta(days=2)
                a = _call(ck, item.reports.costs_breakdown, since=day.date().isoformat())
                b = _call(ck, item.reports.costs_breakdown, since=day)
                if a != b:
                    ck.fail(f"ISO date {day.date()} is not UTC midnight: {a!r} != {b!r}")
            scoped = Reports(item.reports.engine, project="beta")
            with ck.context("Reports(project='beta').overview"):
                a = _call(ck, scoped.overview, since=since, until=until)
                exp = o.exp_overview(
                    item.events, o.Scenario("w1", since, until, {"project": "beta"})
                )
                if a is not None and len(a) == 1:
                    ck.row(a[0], exp, list(exp))
    _finish(ck)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"since": "yesterday-ish"}, "since"),
        ({"until": "3 fortnights"}, "until"),
        ({"since": o.REF, "until": o.REF - timedelta(hours=1)}, "since"),
        ({"status": "failed"}, "status"),
    ],
)
def test_bad_arguments_name_the_argument(
    loaded: list[Loaded], kwargs: dict[str, Any], argument: str
) -> None:
    reports = loaded[0].reports
    with pytest.raises(QueryError) as info:
        reports.overview(**kwargs)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("method", "kwargs", "argument"),
    [
        ("costs_breakdown", {"by": "colour"}, "by"),
        ("costs_trends", {"interval": "fortnight"}, "interval"),
        ("requests_stats", {"by": "colour"}, "by"),
        ("requests_trends", {"interval": "minute"}, "interval"),
        ("feedback", {"by": "provider"}, "by"),
    ],
)
def test_bad_report_arguments(
    loaded: list[Loaded], method: str, kwargs: dict[str, Any], argument: str
) -> None:
    _has(method)
    with pytest.raises(QueryError) as info:
        getattr(loaded[0].reports, method)(**kwargs)
    assert info.value.argument == argument


def test_empty_database_gives_empty_reports(db_url: str, tmp_path: Path) -> None:
    since, until = o.WINDOWS["w1"]
    with llmtally.Tally(db_url, spool_dir=tmp_path / "spool") as tally:
        reports = tally.reports
        ck = o.Checker(f"empty database ({db_url.split(':')[0]})")
        for window in ({}, {"since": since, "until": until}):
            with ck.context(f"window {window or 'all time'}"):
                sc = o.Scenario("empty", window.get("since"), window.get("until"))
                with ck.context("overview"):
                    got = _call(ck, reports.overview, **window)
                    if got is not None and ck.rows_list(got) is not None:
                        if len(got) != 1:
                            ck.fail(f"overview: expected one row with calls 0, got {got!r}")
                        else:
                            exp = o.exp_overview([], sc)
                            ck.row(got[0], exp, list(exp))
                with ck.context("costs_summary"):
                    got = _call(ck, reports.costs_summary, **window)
                    if got is not None and (len(got) != 1 or got[0].get("calls") != 0):
                        ck.fail(f"expected one row with calls 0, got {got!r}")
                with ck.context("requests_stats"):
                    if hasattr(reports, "requests_stats"):
                        got = _call(ck, reports.requests_stats, **window)
                        if got is not None and got != [] and [r.get("calls") for r in got] != [0]:
                            ck.fail(f"expected no row or a zero row, got {got!r}")
                calls: list[tuple[str, dict[str, Any]]] = [
                    ("costs_trends", {}),
                    ("costs_breakdown", {}),
                    ("requests_stats", {"by": "model"}),
                    ("requests_list", {}),
                    ("requests_trends", {}),
                    ("requests_models", {}),
                    ("errors", {}),
                    ("feedback", {}),
                    ("sessions", {}),
                    ("agents", {}),
                    ("tools", {}),
                ]
                for name, extra in calls:
                    with ck.context(name):
                        if not hasattr(reports, name):
                            ck.fail("missing")
                            continue
                        got = _call(ck, getattr(reports, name), **extra, **window)
                        if got is not None and got != []:
                            ck.fail(f"expected [], got {got!r}")
        with ck.context("trace"):
            got = _call(ck, reports.trace, "anything") if hasattr(reports, "trace") else None
            if got is not None and got != []:
                ck.fail(f"expected [], got {got!r}")
        ck.checked += 1
        _finish(ck)
