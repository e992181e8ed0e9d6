"""The report commands of the CLI (issue 4) against a recorded SQLite dataset.

Every expectation is computed here, independently, from the events the test recorded:
the CLI output must agree with plain Python over the same data.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import llmtally
from llmtally.cli.main import cli
from llmtally.cli.output import format_cell, format_change, format_duration

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
BASE = TODAY - timedelta(days=5)  # every recent event lies in [BASE, BASE + 100 h)
TRACE = "trace-0001"
MODELS = (("gpt-4o", "openai"), ("claude-sonnet-4", "anthropic"), ("gpt-4o-mini", "openai"))
HUMANS = ("U001", "U002", "U003")
AGENTS = ("planner-bot", "coder-bot")
TOOLS = ("web_search", "sql_query", "send_email")


@dataclass
class Dataset:
    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)  # recent llm calls, with event_id
    old_call: dict[str, Any] = field(default_factory=dict)  # 40 days before BASE
    tools: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)


def _calls(rng: random.Random) -> list[dict[str, Any]]:
    calls = []
    for i in range(40):
        model, provider = rng.choices(MODELS, weights=(5, 3, 2))[0]
        feature = rng.choices(("chat", "summarize", "agent_task"), weights=(5, 3, 2))[0]
        agent = feature == "agent_task"
        actor = rng.choice(AGENTS if agent else HUMANS)
        error = rng.random() < 0.2
        latency = float(rng.randrange(200, 5000))
        stream = i % 2 == 0
        call: dict[str, Any] = {
            "occurred_at": BASE + timedelta(minutes=150 * i + rng.randrange(1, 60)),
            "model": model,
            "provider": provider,
            "feature": feature,
            "actor": actor,
            "actor_type": "agent" if agent else "human",
            "session_id": f"{actor}-s{i // 10}",
            "latency_ms": latency,
            "stream": stream,
        }
        if stream:
            call["ttft_ms"] = round(latency * rng.uniform(0.1, 0.5), 1)
        if error:
            etype = rng.choice(("RateLimitError", "APITimeoutError"))
            call.update(
                status="error",
                error_type=etype,
                error_message=f"{etype}: attempt {i} failed",
                cost_usd=0.0,
            )
        else:
            inp, out = rng.randrange(200, 4000), rng.randrange(20, 800)
            call.update(input_tokens=inp, output_tokens=out, cost_usd=inp * 2.5e-6 + out * 1e-5)
        if i in (5, 6, 7):
            call["trace_id"] = TRACE
        calls.append(call)
    # one call of a model without a known price: stored with cost_usd NULL
    calls.append(
        {
            "occurred_at": BASE + timedelta(hours=99),
            "model": "acme-x1",
            "provider": "acme",
            "feature": "chat",
            "actor": "U001",
            "actor_type": "human",
            "session_id": "U001-s9",
            "input_tokens": 100,
            "output_tokens": 10,
            "latency_ms": 700.0,
            "stream": False,
        }
    )
    return calls


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    tmp = tmp_path_factory.mktemp("reports")
    ds = Dataset(f"sqlite:///{tmp / 'llmtally.db'}")
    rng = random.Random(20261122)
    ds.calls = _calls(rng)
    ds.old_call = {
        "occurred_at": BASE - timedelta(days=40),
        "model": "gpt-4o",
        "provider": "openai",
        "feature": "legacy",
        "actor": "U009",
        "input_tokens": 1000,
        "output_tokens": 100,
        "cost_usd": 1.5,
        "latency_ms": 900.0,
    }
    with llmtally.Tally(ds.url, project="app", spool_dir=tmp / "spool") as tally:
        for call in [*ds.calls, ds.old_call]:
            call["event_id"] = tally.record_call(**call)
        for j in range(12):
            parent = ds.calls[5 + j % 3] if j < 2 else rng.choice(ds.calls)
            error = rng.random() < 0.25
            tool: dict[str, Any] = {
                "name": rng.choice(TOOLS),
                "occurred_at": parent["occurred_at"] + timedelta(seconds=10 + j),
                "latency_ms": float(rng.randrange(5, 900)),
                "status": "error" if error else "success",
                "parent_id": parent["event_id"],
            }
            if error:
                tool["error_type"] = "ToolError"
            if j < 2:
                tool["trace_id"] = TRACE
            tool["event_id"] = tally.record_tool_call(**tool)
            ds.tools.append(tool)
        # at most one feedback per call, always with a rating
        rated = [ds.calls[5], *rng.sample([*ds.calls[:5], *ds.calls[6:40]], 13)]
        for n, call in enumerate(rated):
            fb: dict[str, Any] = {
                "call_id": call["event_id"],
                "rating": rng.choice(("up", "down")),
                "regenerated": rng.random() < 0.3,
                "edited": rng.random() < 0.3,
                "occurred_at": call["occurred_at"] + timedelta(minutes=1, seconds=n),
            }
            if call.get("trace_id") == TRACE:
                fb["trace_id"] = TRACE
            fb["event_id"] = tally.record_feedback(**fb)
            ds.feedback.append(fb)
        assert tally.flush(10)
    return ds


@pytest.fixture(autouse=True)
def in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default database lands in tmp_path (conftest clears the LLMTALLY_ settings)."""
    monkeypatch.chdir(tmp_path)


# -- helpers -------------------------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def as_json(*args: str) -> list[dict[str, Any]]:
    rows = json.loads(ok(*args, "--format", "json").stdout)
    assert isinstance(rows, list)
    for row in rows:
        assert isinstance(row, dict)
        assert all(not isinstance(v, (dict, list)) for v in row.values())  # flat
    return rows


def csv_rows(*args: str) -> tuple[list[str], list[dict[str, str]]]:
    text = ok(*args, "--format", "csv").stdout
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def ts(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def percentile(values: Iterable[float | None], q: float) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def near(actual: float | None, expected: float | None, rel: float = 1e-9) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return actual == pytest.approx(expected, rel=rel, abs=1e-12)


def cost(calls: Sequence[dict[str, Any]]) -> float:
    return sum(c["cost_usd"] for c in calls if c.get("cost_usd") is not None)


def cost_ok(actual: float | None, calls: Sequence[dict[str, Any]]) -> bool:
    if all(c.get("cost_usd") is None for c in calls) and actual is None:
        return True  # only unpriced calls: unknown is as good as $0
    return near(actual, cost(calls))


def errors_in(calls: Iterable[dict[str, Any]]) -> int:
    return sum(1 for c in calls if c.get("status") == "error")


def group(
    items: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return dict(groups)


def descending(rows: Sequence[dict[str, Any]], key: str) -> bool:
    values = [row[key] or 0 for row in rows]
    return values == sorted(values, reverse=True)


def bucket_of(at: datetime, interval: str) -> datetime:
    if interval == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval == "day" else day - timedelta(days=day.weekday())


def one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# the keys of each report's rows, in order, as the query layer's contract lists them
LATENCY = ("avg_latency_ms", "p95_latency_ms")
CONTRACT_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("overview", "--since", "7d"): (
        "calls",
        "errors",
        "error_rate",
        "cost_usd",
        "unpriced_calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "active_actors",
        "avg_latency_ms",
        "p50_latency_ms",
        "p95_latency_ms",
        "p95_ttft_ms",
        "top_model",
        "top_feature",
        "prev_calls",
        "prev_cost_usd",
        "prev_error_rate",
        "prev_p95_latency_ms",
        "calls_change",
        "cost_change",
    ),
    ("costs", "summary"): (
        "calls",
        "cost_usd",
        "avg_cost_per_call_usd",
        "days",
        "avg_cost_per_day_usd",
    ),
    ("costs", "trends"): ("bucket", "calls", "errors", "cost_usd", "input_tokens", "output_tokens"),
    ("requests", "stats", "--by", "feature"): (
        "feature",
        "calls",
        "errors",
        "error_rate",
        "avg_latency_ms",
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "avg_ttft_ms",
        "p50_ttft_ms",
        "p95_ttft_ms",
        "avg_input_tokens",
        "avg_output_tokens",
    ),
    ("requests", "list"): (
        "event_id",
        "occurred_at",
        "project",
        "feature",
        "model",
        "provider",
        "actor_id",
        "session_id",
        "trace_id",
        "status",
        "error_type",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "latency_ms",
        "ttft_ms",
        "stream",
    ),
    ("requests", "trends"): ("bucket", "calls", "errors", "error_rate", *LATENCY),
    ("requests", "models"): (
        "model",
        "provider",
        "calls",
        "errors",
        "error_rate",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        *LATENCY,
    ),
    ("errors",): (
        "error_type",
        "feature",
        "model",
        "count",
        "share",
        "error_rate",
        "example_message",
    ),
    ("feedback", "--by", "model"): (
        "model",
        "calls",
        "feedback",
        "up",
        "down",
        "up_ratio",
        "regenerated",
        "edited",
        "regenerated_rate",
        "edited_rate",
        "quality_score",
    ),
    ("sessions",): (
        "session_id",
        "actor_id",
        "turns",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "errors",
        "first_at",
        "last_at",
        "duration_s",
    ),
    ("agents",): ("actor_id", "calls", "errors", "error_rate", "cost_usd", *LATENCY),
    ("tools",): ("name", "calls", "errors", "error_rate", *LATENCY),
    ("trace", TRACE): (
        "event_id",
        "occurred_at",
        "kind",
        "name",
        "feature",
        "model",
        "provider",
        "status",
        "error_type",
        "latency_ms",
        "cost_usd",
        "parent_id",
        "actor_id",
    ),
}


@pytest.mark.parametrize("args", list(CONTRACT_KEYS), ids=" ".join)
def test_rows_have_the_contract_keys(data: Dataset, args: tuple[str, ...]) -> None:
    rows = as_json(*args, "--db", data.url)
    assert rows
    for row in rows:
        assert tuple(row) == CONTRACT_KEYS[args]
    header, _ = csv_rows(*args, "--db", data.url)
    assert tuple(header) == CONTRACT_KEYS[args]


# -- overview and costs --------------------------------------------------------------------


def test_overview_compares_with_the_previous_period(data: Dataset) -> None:
    since, until = BASE + timedelta(hours=50), BASE + timedelta(hours=100)
    now = [c for c in data.calls if since <= c["occurred_at"] < until]
    before = [c for c in data.calls if since - (until - since) <= c["occurred_at"] < since]
    args = ("--db", data.url, "--since", iso(since), "--until", iso(until))
    (row,) = as_json("overview", *args)
    assert row["calls"] == len(now) and row["errors"] == errors_in(now)
    assert near(row["cost_usd"], cost(now))
    assert row["prev_calls"] == len(before)
    assert near(row["prev_cost_usd"], cost(before))
    assert near(row["prev_error_rate"], errors_in(before) / len(before))
    assert near(
        row["prev_p95_latency_ms"], percentile((c["latency_ms"] for c in before), 0.95), 0.01
    )
    assert near(row["calls_change"], len(now) / len(before) - 1)
    assert near(row["cost_change"], cost(now) / cost(before) - 1)
    assert row["active_actors"] == len({c["actor"] for c in now})
    assert near(row["avg_latency_ms"], mean(c["latency_ms"] for c in now))
    assert near(row["p95_ttft_ms"], percentile((c.get("ttft_ms") for c in now), 0.95), 0.01)
    by_model = group(now, lambda c: c["model"])
    by_feature = group(now, lambda c: c["feature"])
    assert row["top_model"] == max(by_model, key=lambda m: cost(by_model[m]))
    assert row["top_feature"] == max(by_feature, key=lambda f: cost(by_feature[f]))
    table = ok("overview", *args).stdout
    assert "previous period" in table
    assert format_change(len(now) / len(before) - 1) in table
    assert format_change(cost(now) / cost(before) - 1) in table
    # no --since: all time, no previous period to compare with
    (total,) = as_json("overview", "--db", data.url, "--since", "")
    assert total["calls"] == len(data.calls) + 1
    assert total.get("prev_calls") is None and total.get("calls_change") is None
    assert "previous period" not in ok("overview", "--db", data.url, "--since", "").stdout


@pytest.mark.parametrize("interval", ["hour", "day", "week"])
def test_costs_trends(data: Dataset, interval: str) -> None:
    rows = as_json("costs", "trends", "--db", data.url, "--interval", interval)
    buckets = group(data.calls, lambda c: bucket_of(c["occurred_at"], interval))
    assert [ts(r["bucket"]) for r in rows] == sorted(buckets)  # oldest first, only busy ones
    for row in rows:
        calls = buckets[ts(row["bucket"])]
        assert row["calls"] == len(calls) and row["errors"] == errors_in(calls)
        assert near(row["cost_usd"], cost(calls))
        assert row["input_tokens"] == sum(c.get("input_tokens") or 0 for c in calls)
        assert row["output_tokens"] == sum(c.get("output_tokens") or 0 for c in calls)
    header, _ = csv_rows("costs", "trends", "--db", data.url, "--interval", interval)
    assert header[:2] == ["bucket", "calls"] and "cost_usd" in header


def test_costs_trends_default_interval_is_day_and_table(data: Dataset) -> None:
    rows = as_json("costs", "trends", "--db", data.url)
    days = {bucket_of(c["occurred_at"], "day") for c in data.calls}
    assert [ts(r["bucket"]) for r in rows] == sorted(days)
    out = ok("costs", "trends", "--db", data.url).stdout
    assert "Cost per day" in out and "$" in out and BASE.strftime("%Y-%m-%d") in out


# -- requests ------------------------------------------------------------------------------


def _check_stats(row: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    assert row["calls"] == len(calls) and row["errors"] == errors_in(calls)
    assert near(row["error_rate"], errors_in(calls) / len(calls))
    latencies = [c["latency_ms"] for c in calls]
    ttfts = [c.get("ttft_ms") for c in calls]
    assert near(row["avg_latency_ms"], mean(latencies))
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert near(row[f"{key}_latency_ms"], percentile(latencies, q), 0.01), key
    assert near(row["avg_ttft_ms"], mean(ttfts))
    assert near(row["p50_ttft_ms"], percentile(ttfts, 0.5), 0.01)
    assert near(row["p95_ttft_ms"], percentile(ttfts, 0.95), 0.01)


def test_requests_stats_overall_and_by_dimension(data: Dataset) -> None:
    (row,) = as_json("requests", "stats", "--db", data.url)
    _check_stats(row, data.calls)
    rows = as_json("requests", "stats", "--db", data.url, "--by", "model")
    by_model = group(data.calls, lambda c: c["model"])
    assert {r["model"] for r in rows} == set(by_model)
    assert descending(rows, "calls")
    for r in rows:
        _check_stats(r, by_model[r["model"]])
    chat = as_json("requests", "stats", "--db", data.url, "--by", "actor", "--feature", "chat")
    by_actor = group((c for c in data.calls if c["feature"] == "chat"), lambda c: c["actor"])
    assert {r["actor"]: r["calls"] for r in chat} == {a: len(c) for a, c in by_actor.items()}
    header, csv_out = csv_rows("requests", "stats", "--db", data.url, "--by", "status")
    assert header[:2] == ["status", "calls"] and "p99_latency_ms" in header
    assert {r["status"]: int(r["calls"]) for r in csv_out} == {
        s: len(c) for s, c in group(data.calls, lambda c: c.get("status", "success")).items()
    }
    table = ok("requests", "stats", "--db", data.url).stdout
    assert "p95 latency (ms)" in table and "%" in table
    assert "claude-sonnet-4" in ok("requests", "stats", "--db", data.url, "--by", "model").stdout


def test_requests_stats_average_tokens_skip_calls_without_usage(data: Dataset) -> None:
    """The contract: averages are means over non-null values (failed calls report no usage)."""
    rows = as_json("requests", "stats", "--db", data.url, "--by", "status")
    by_status = group(data.calls, lambda c: c.get("status", "success"))
    for row in rows:
        calls = by_status[row["status"]]
        assert near(row["avg_input_tokens"], mean(c.get("input_tokens") for c in calls)), row
        assert near(row["avg_output_tokens"], mean(c.get("output_tokens") for c in calls)), row


def test_requests_list_newest_first_with_paging(data: Dataset) -> None:
    newest = sorted(data.calls, key=lambda c: c["occurred_at"], reverse=True)
    rows = as_json("requests", "list", "--db", data.url, "--limit", "5")
    assert [r["event_id"] for r in rows] == [c["event_id"] for c in newest[:5]]
    first = rows[0]
    call = newest[0]
    assert ts(first["occurred_at"]) == call["occurred_at"]
    assert (first["model"], first["provider"], first["feature"]) == (
        call["model"],
        call["provider"],
        call["feature"],
    )
    assert first["actor_id"] == call["actor"] and first["session_id"] == call["session_id"]
    assert first["project"] == "app" and isinstance(first["stream"], bool)
    page = as_json("requests", "list", "--db", data.url, "--limit", "3", "--offset", "4")
    assert [r["event_id"] for r in page] == [c["event_id"] for c in newest[4:7]]
    everything = as_json("requests", "list", "--db", data.url)
    assert len(everything) == min(50, len(data.calls))
    failed = as_json("requests", "list", "--db", data.url, "--status", "error", "--limit", "100")
    expected = [c for c in newest if c.get("status") == "error"]
    assert [r["event_id"] for r in failed] == [c["event_id"] for c in expected]
    assert [r["error_type"] for r in failed] == [c["error_type"] for c in expected]
    header, _ = csv_rows("requests", "list", "--db", data.url, "--limit", "1")
    assert header[:2] == ["event_id", "occurred_at"] and "latency_ms" in header
    table = ok("requests", "list", "--db", data.url, "--limit", "3").stdout
    assert newest[0]["model"] in table and "latency (ms)" in table


@pytest.mark.parametrize("interval", ["hour", "day"])
def test_requests_trends(data: Dataset, interval: str) -> None:
    rows = as_json("requests", "trends", "--db", data.url, "--interval", interval)
    buckets = group(data.calls, lambda c: bucket_of(c["occurred_at"], interval))
    assert [ts(r["bucket"]) for r in rows] == sorted(buckets)
    for row in rows:
        calls = buckets[ts(row["bucket"])]
        assert row["calls"] == len(calls) and row["errors"] == errors_in(calls)
        assert near(row["error_rate"], errors_in(calls) / len(calls))
        assert near(row["avg_latency_ms"], mean(c["latency_ms"] for c in calls))
        assert near(row["p95_latency_ms"], percentile((c["latency_ms"] for c in calls), 0.95), 0.01)


def test_requests_trends_default_is_hourly(data: Dataset) -> None:
    rows = as_json("requests", "trends", "--db", data.url)
    hours = {bucket_of(c["occurred_at"], "hour") for c in data.calls}
    assert [ts(r["bucket"]) for r in rows] == sorted(hours)
    assert "Requests per hour" in ok("requests", "trends", "--db", data.url).stdout


def test_requests_models(data: Dataset) -> None:
    rows = as_json("requests", "models", "--db", data.url)
    models = group(data.calls, lambda c: (c["model"], c["provider"]))
    assert {(r["model"], r["provider"]) for r in rows} == set(models)
    assert descending(rows, "calls")
    for row in rows:
        calls = models[row["model"], row["provider"]]
        assert row["calls"] == len(calls) and row["errors"] == errors_in(calls)
        assert near(row["error_rate"], errors_in(calls) / len(calls))
        assert cost_ok(row["cost_usd"], calls)
        assert row["input_tokens"] == sum(c.get("input_tokens") or 0 for c in calls)
        assert near(row["avg_latency_ms"], mean(c["latency_ms"] for c in calls))
        assert near(row["p95_latency_ms"], percentile((c["latency_ms"] for c in calls), 0.95), 0.01)
    openai = as_json("requests", "models", "--db", data.url, "--provider", "openai")
    assert {r["model"] for r in openai} == {m for m, p in models if p == "openai"}
    assert "acme-x1" in ok("requests", "models", "--db", data.url).stdout


# -- errors, feedback, sessions, agents, tools, trace ---------------------------------------


def test_errors(data: Dataset) -> None:
    failed = [c for c in data.calls if c.get("status") == "error"]
    groups = group(failed, lambda c: (c["error_type"], c["feature"], c["model"]))
    per_fm = Counter((c["feature"], c["model"]) for c in data.calls)
    rows = as_json("errors", "--db", data.url)
    assert len(rows) == min(20, len(groups))
    assert descending(rows, "count")
    for row in rows:
        calls = groups[row["error_type"], row["feature"], row["model"]]
        assert row["count"] == len(calls)
        assert near(row["share"], len(calls) / len(failed))
        assert near(row["error_rate"], len(calls) / per_fm[row["feature"], row["model"]])
        assert row["example_message"] in {c["error_message"] for c in calls}
    top = as_json("errors", "--db", data.url, "--limit", "2")
    assert [r["count"] for r in top] == [r["count"] for r in rows[:2]]
    assert near(sum(r["share"] for r in rows), 1.0) or len(groups) > 20
    table = ok("errors", "--db", data.url).stdout
    assert "RateLimitError" in table and "%" in table


@pytest.mark.parametrize("by", ["feature", "model"])
def test_feedback(data: Dataset, by: str) -> None:
    calls_by_id = {c["event_id"]: c for c in data.calls}
    rated = group(data.feedback, lambda f: calls_by_id[f["call_id"]][by])
    totals = Counter(c[by] for c in data.calls)
    rows = as_json("feedback", "--db", data.url, "--by", by)
    keys = {r[by] for r in rows}
    assert set(rated) <= keys <= set(totals)
    for row in rows:
        fbs = rated.get(row[by], [])
        up = sum(f["rating"] == "up" for f in fbs)
        down = sum(f["rating"] == "down" for f in fbs)
        regenerated = sum(f["regenerated"] for f in fbs)
        edited = sum(f["edited"] for f in fbs)
        assert row["calls"] == totals[row[by]]
        assert (row["feedback"], row["up"], row["down"]) == (len(fbs), up, down)
        assert (row["regenerated"], row["edited"]) == (regenerated, edited)
        assert near(row["up_ratio"], up / (up + down) if fbs else None)
        assert near(row["regenerated_rate"], regenerated / row["calls"])
        assert near(row["edited_rate"], edited / row["calls"])
        scores = []
        for f in fbs:
            score = 1.0 - 0.3 * f["regenerated"] - 0.15 * f["edited"]
            if calls_by_id[f["call_id"]]["latency_ms"] > 3000:
                score *= 0.6
            scores.append(min(1.0, max(0.0, score)))
        assert near(row["quality_score"], mean(scores)), row
    header, _ = csv_rows("feedback", "--db", data.url, "--by", by)
    assert header[0] == by and "up_ratio" in header
    # the quality weights come from the config file's [quality_weights] table
    config = Path("weights.toml")
    config.write_text("[quality_weights]\nregenerated_penalty = 1.0\nslow_factor = 0.0\n")
    result = run("feedback", "--db", data.url, "--by", by, "--format", "json",
                 env={"LLMTALLY_CONFIG": str(config)})  # fmt: skip
    harsh = {r[by]: r for r in json.loads(result.stdout)}
    for row in rows:
        fbs = rated.get(row[by], [])
        strict = [0.0 if f["regenerated"] or calls_by_id[f["call_id"]]["latency_ms"] > 3000
                  else 1.0 - 0.15 * f["edited"] for f in fbs]  # fmt: skip
        assert near(harsh[row[by]]["quality_score"], mean(strict)), harsh[row[by]]
    assert "up ratio" in ok("feedback", "--db", data.url, "--by", by).stdout


def test_feedback_time_filter_applies_to_the_calls(data: Dataset) -> None:
    """Feedback given a minute after its call counts when only the call is in range."""
    call = next(c for c in data.calls if c["event_id"] == data.feedback[0]["call_id"])
    since, until = call["occurred_at"], call["occurred_at"] + timedelta(seconds=30)
    window = ("--since", iso(since), "--until", iso(until))
    (row,) = as_json("feedback", "--db", data.url, "--by", "model", *window)
    assert (row["model"], row["calls"], row["feedback"]) == (call["model"], 1, 1)
    assert row["up" if data.feedback[0]["rating"] == "up" else "down"] == 1


def test_sessions(data: Dataset) -> None:
    sessions = group(data.calls, lambda c: c["session_id"])
    rows = as_json("sessions", "--db", data.url)
    assert {r["session_id"] for r in rows} == set(sessions)
    assert descending(rows, "cost_usd")
    for row in rows:
        calls = sessions[row["session_id"]]
        first = min(c["occurred_at"] for c in calls)
        last = max(c["occurred_at"] for c in calls)
        assert row["actor_id"] == calls[0]["actor"]
        assert row["turns"] == len(calls) and row["errors"] == errors_in(calls)
        assert cost_ok(row["cost_usd"], calls)
        assert row["input_tokens"] == sum(c.get("input_tokens") or 0 for c in calls)
        assert row["output_tokens"] == sum(c.get("output_tokens") or 0 for c in calls)
        assert (ts(row["first_at"]), ts(row["last_at"])) == (first, last)
        assert near(row["duration_s"], (last - first).total_seconds())
    top = as_json("sessions", "--db", data.url, "--limit", "2")
    assert [r["session_id"] for r in top] == [r["session_id"] for r in rows[:2]]
    assert "U001-s" in ok("sessions", "--db", data.url).stdout


def test_agents(data: Dataset) -> None:
    agents = group((c for c in data.calls if c["actor_type"] == "agent"), lambda c: c["actor"])
    rows = as_json("agents", "--db", data.url)
    assert {r["actor_id"] for r in rows} == set(agents)
    assert descending(rows, "cost_usd")
    for row in rows:
        calls = agents[row["actor_id"]]
        assert row["calls"] == len(calls) and row["errors"] == errors_in(calls)
        assert near(row["error_rate"], errors_in(calls) / len(calls))
        assert near(row["cost_usd"], cost(calls))
        assert near(row["avg_latency_ms"], mean(c["latency_ms"] for c in calls))
        assert near(row["p95_latency_ms"], percentile((c["latency_ms"] for c in calls), 0.95), 0.01)
    assert "planner-bot" in ok("agents", "--db", data.url).stdout


def test_tools(data: Dataset) -> None:
    tools = group(data.tools, lambda t: t["name"])
    rows = as_json("tools", "--db", data.url)
    assert {r["name"] for r in rows} == set(tools)
    assert descending(rows, "calls")
    for row in rows:
        calls = tools[row["name"]]
        assert row["calls"] == len(calls) and row["errors"] == errors_in(calls)
        assert near(row["error_rate"], errors_in(calls) / len(calls))
        assert near(row["avg_latency_ms"], mean(t["latency_ms"] for t in calls))
        assert near(row["p95_latency_ms"], percentile((t["latency_ms"] for t in calls), 0.95), 0.01)
    header, _ = csv_rows("tools", "--db", data.url)
    assert header[:2] == ["name", "calls"]
    table = ok("tools", "--db", data.url).stdout
    assert all(name in table for name in tools) and "%" in table


def test_trace(data: Dataset) -> None:
    events = [
        *(("llm_call", c) for c in data.calls if c.get("trace_id") == TRACE),
        *(("tool_call", t) for t in data.tools if t.get("trace_id") == TRACE),
        *(("feedback", f) for f in data.feedback if f.get("trace_id") == TRACE),
    ]
    events.sort(key=lambda e: e[1]["occurred_at"])
    assert {kind for kind, _ in events} == {"llm_call", "tool_call", "feedback"}
    rows = as_json("trace", TRACE, "--db", data.url)
    assert [(r["kind"], r["event_id"]) for r in rows] == [(k, e["event_id"]) for k, e in events]
    assert [ts(r["occurred_at"]) for r in rows] == [e["occurred_at"] for _, e in events]
    for row, (kind, event) in zip(rows, events, strict=True):
        if kind == "tool_call":
            assert row["name"] == event["name"] and row["parent_id"] == event["parent_id"]
        if kind == "llm_call":
            assert (row["model"], row["feature"]) == (event["model"], event["feature"])
            assert row["actor_id"] == event["actor"]
        if kind == "feedback":
            assert row["parent_id"] == event["call_id"]
    table = ok("trace", TRACE, "--db", data.url).stdout
    assert TRACE in table and "tool_call" in table
    assert as_json("trace", "no-such-trace", "--db", data.url) == []
    header, rows_csv = csv_rows("trace", "no-such-trace", "--db", data.url)
    assert header[:3] == ["event_id", "occurred_at", "kind"] and rows_csv == []
    # trace takes no report filters
    one_line_error(run("trace", TRACE, "--db", data.url, "--since", "7d"), "--since")
    one_line_error(run("trace", "--db", data.url), "TRACE_ID")


def test_default_window_is_30_days(data: Dataset) -> None:
    """The old call (45 days ago) only shows with a wider --since."""
    (row,) = as_json("requests", "stats", "--db", data.url)
    assert row["calls"] == len(data.calls)
    (row,) = as_json("requests", "stats", "--db", data.url, "--since", "60d")
    assert row["calls"] == len(data.calls) + 1
    rows = as_json("requests", "list", "--db", data.url, "--feature", "legacy", "--since", "60d")
    assert [r["event_id"] for r in rows] == [data.old_call["event_id"]]


# -- bad arguments and empty databases -------------------------------------------------------

# every report with the first column of its (empty) CSV
REPORTS = [
    (("costs", "trends"), "bucket"),
    (("requests", "stats"), "calls"),
    (("requests", "list"), "event_id"),
    (("requests", "trends"), "bucket"),
    (("requests", "models"), "model"),
    (("errors",), "error_type"),
    (("feedback",), "feature"),
    (("sessions",), "session_id"),
    (("agents",), "actor_id"),
    (("tools",), "name"),
]


@pytest.mark.parametrize(
    "args, needle",
    [
        (("costs", "trends", "--since", "yesterday"), "--since"),
        (("requests", "list", "--until", "soon"), "--until"),
        (("costs", "trends", "--interval", "month"), "--interval"),
        (("requests", "trends", "--interval", "minute"), "--interval"),
        (("requests", "stats", "--by", "colour"), "--by"),
        (("feedback", "--by", "provider"), "--by"),
        (("requests", "list", "--limit", "-1"), "--limit"),
        (("requests", "list", "--offset", "-5"), "--offset"),
        (("errors", "--limit", "-1"), "--limit"),
        (("sessions", "--limit", "-3"), "--limit"),
        (("agents", "--status", "maybe"), "--status"),
        (("tools", "--since", "1d", "--until", "7d"), "--since"),
        (("requests", "list", "--format", "xml"), "--format"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    args: tuple[str, ...], needle: str, tmp_path: Path
) -> None:
    one_line_error(run(*args, "--db", f"sqlite:///{tmp_path / 'x.db'}"), needle)


def test_empty_database_gives_empty_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'empty.db'}"
    for args, first in REPORTS:
        rows = json.loads(ok(*args, "--db", url, "--format", "json").stdout)
        if args == ("requests", "stats"):  # one all-time row of zeros is fine too
            assert rows == [] or (len(rows) == 1 and rows[0]["calls"] == 0), rows
            continue
        assert rows == [], args
        lines = ok(*args, "--db", url, "--format", "csv").stdout.splitlines()
        assert len(lines) == 1 and lines[0].split(",")[0] == first, (args, lines)
        ok(*args, "--db", url)  # a table, no traceback
    assert as_json("requests", "stats", "--by", "model", "--db", url) == []
    assert as_json("trace", "t", "--db", url) == []
    (overview,) = as_json("overview", "--db", url)
    assert overview["calls"] == 0
    assert "Overview" in ok("overview", "--db", url).stdout


def test_narrow_terminal_hides_columns_rather_than_crushing_them(data: Dataset) -> None:
    args = ("requests", "stats", "--by", "model", "--db", data.url)
    result = run(*args, env={"COLUMNS": "72"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert all(len(line) <= 72 for line in lines), result.stdout
    assert "claude-sonnet-4" in result.stdout  # the key column stays readable
    assert "not shown:" in result.stdout
    assert "p99_latency_ms" in result.stdout.split("not shown:")[1]
    # in a file or a pipe (no COLUMNS) nothing is hidden
    assert "not shown" not in ok(*args).stdout


def test_table_formatting_of_changes_ratios_and_durations() -> None:
    assert format_change(0.12) == "+12%" and format_change(-0.05) == "-5.0%"
    assert format_change(None) == "—" and format_change(2.5) == "+250%"
    assert format_cell("change", -0.25) == "-25%"
    assert format_cell("ratio", 0.5) == "50.0%" and format_cell("ratio", 0.2) == "20.0%"
    assert format_duration(42) == "42.0s" and format_duration(725) == "12m 05s"
    assert format_duration(65520) == "18h 12m" and format_duration(3 * 86400 + 4 * 3600) == "3d 04h"
    assert format_cell("seconds", 65520.0) == "18h 12m"
