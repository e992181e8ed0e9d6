"""`llmtally demo` and its traffic model: realistic traffic through the real pipeline,
checked with plain SQL; the model's streams, seeds and events checked directly."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from llmtally import Tally
from llmtally.capture.build import build_from_mapping
from llmtally.capture.pricing import PriceBook
from llmtally.capture.redact import Redactor
from llmtally.cli.main import cli
from llmtally.demo import CUSTOM_PRICING, Generator, Traffic
from llmtally.pipeline.process import Processor
from llmtally.settings import ENV_NAMES
from llmtally.store.base import Batch

CALLS = 3_000


def ok(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def breakdown(url: str, by: str = "model") -> list[dict[str, Any]]:
    data = json.loads(ok("costs", "breakdown", "--db", url, "--by", by, "--format", "json").stdout)
    assert isinstance(data, list)
    return data


@pytest.fixture(autouse=True)
def in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default database lands in tmp_path (conftest clears the LLMTALLY_ settings)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One demo database shared by the read-only checks below."""
    path = tmp_path_factory.mktemp("demo") / "llmtally.db"
    with pytest.MonkeyPatch.context() as mp:  # runs before conftest's function-scoped clearing
        for name in ENV_NAMES:
            mp.delenv(name, raising=False)
        result = ok("demo", "--db", f"sqlite:///{path}", "--calls", str(CALLS), "--days", "20")
    return path, result


def test_breakdown_matches_the_database(demo_db: tuple[Path, Result]) -> None:
    path, result = demo_db
    assert "Demo overview" in result.stdout and "Cost by model" in result.stdout
    rows = breakdown(f"sqlite:///{path}")
    assert len(rows) >= 6
    conn = sqlite3.connect(path)
    expected = {
        model: (calls, cost)
        for model, calls, cost in conn.execute(
            "SELECT model, count(*), coalesce(sum(cost_usd), 0) FROM events "
            "WHERE kind = 'llm_call' GROUP BY model"
        )
    }
    assert {r["model"] for r in rows} == set(expected)
    for row in rows:
        calls, cost = expected[row["model"]]
        assert row["calls"] == calls
        assert row["cost_usd"] == pytest.approx(cost, rel=1e-12, abs=1e-12)
    assert sum(r["calls"] for r in rows) == CALLS


def test_demo_content_is_realistic(demo_db: tuple[Path, Result]) -> None:
    conn = sqlite3.connect(demo_db[0])

    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    calls = "FROM events WHERE kind = 'llm_call'"
    error_rate = one(f"SELECT avg(status = 'error') {calls}")
    assert 0.03 <= error_rate <= 0.05
    assert {
        t for (t,) in conn.execute(f"SELECT DISTINCT error_type {calls} AND status = 'error'")
    } >= {
        "RateLimitError",
        "APITimeoutError",
        "InternalServerError",
        "BadRequestError",
    }
    features = {f for (f,) in conn.execute(f"SELECT DISTINCT feature {calls}")}
    assert features >= {
        "chat",
        "smart_reply",
        "summarize",
        "translate",
        "agent_planner",
        "image_caption",
    }
    assert one(f"SELECT count(*) {calls} AND stream AND ttft_ms > 0 AND stream_chunks > 0") > 100
    assert one(f"SELECT count(*) {calls} AND model = 'o4-mini' AND reasoning_tokens > 0") > 10
    assert (
        one(f"SELECT count(*) {calls} AND model = 'gemini-2.5-flash' AND reasoning_tokens > 0") > 10
    )
    assert one(f"SELECT count(*) {calls} AND provider = 'anthropic' AND cache_read_tokens > 0") > 10
    assert (
        one(f"SELECT count(*) {calls} AND provider = 'anthropic' AND cache_write_tokens > 0") > 10
    )
    assert one(f"SELECT count(*) {calls} AND model = 'gpt-4o' AND cache_read_tokens > 0") > 10
    # the in-house model is priced by custom pricing; the unknown one stays null, never $0
    assert one(f"SELECT min(cost_usd) {calls} AND model = 'acme-llm-8b' AND status = 'success'") > 0
    unknown = f"{calls} AND model = 'caption-vision-beta' AND status = 'success'"
    assert one(f"SELECT count(*) {unknown}") > 0 and one(f"SELECT count(cost_usd) {unknown}") == 0
    assert one("SELECT is_placeholder FROM models WHERE model = 'caption-vision-beta'") == 1
    assert one(f"SELECT count(DISTINCT actor_id) {calls} AND actor_type = 'agent'") == 3
    assert one(f"SELECT max(n) FROM (SELECT count(*) AS n {calls} GROUP BY session_id)") >= 4
    assert {
        r for (r,) in conn.execute("SELECT DISTINCT rating FROM events WHERE kind = 'feedback'")
    } == {
        "up",
        "down",
    }
    assert one("SELECT count(*) FROM events WHERE kind = 'feedback' AND edited") > 0
    assert one("SELECT count(*) FROM events WHERE kind = 'feedback' AND regenerated") > 0
    names = {n for (n,) in conn.execute("SELECT DISTINCT name FROM events WHERE kind = 'product'")}
    assert names >= {"new_conversation", "new_reply", "thumbs_up", "user_joined_channel"}
    assert one("SELECT count(*) FROM events WHERE kind = 'tool_call'") > 0
    assert (
        one("SELECT count(*) FROM actors WHERE real_name IS NOT NULL AND timezone IS NOT NULL") > 5
    )
    assert one("SELECT count(*) FROM actors WHERE email IS NOT NULL") == 0
    assert (
        one("SELECT count(*) FROM events WHERE metadata LIKE '%@%' OR error_message LIKE '%@%'")
        == 0
    )
    # a working-day rhythm: the busiest UTC hours see several times the quietest ones
    hours = [
        n
        for (n,) in conn.execute(
            f"SELECT count(*) {calls} GROUP BY strftime('%H', occurred_at) ORDER BY 1"
        )
    ]
    assert hours[-1] > 4 * hours[0]


def test_rerun_replaces_unless_keep(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    args = ("demo", "--db", url, "--calls", "800", "--days", "7")
    ok(*args)
    result = ok(*args)
    assert "replaced" in result.stdout
    assert sum(r["calls"] for r in breakdown(url, "feature")) == 800
    ok(*args, "--keep")
    assert sum(r["calls"] for r in breakdown(url, "feature")) == 1_600


def traffic(url: str, seed: int, now: float) -> list[tuple[Any, ...]]:
    with Tally(url, project="demo", custom_pricing=CUSTOM_PRICING) as tally:
        Generator(tally, days=5, calls=500, seed=seed, now=now).run()
        assert tally.flush(30)
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    return conn.execute(
        "SELECT occurred_at, kind, name, actor_id, feature, model, status, error_type,"
        " input_tokens, cache_read_tokens, output_tokens, latency_ms, cost_usd, rating"
        " FROM events ORDER BY occurred_at, kind, name, model, actor_id"
    ).fetchall()


def test_same_seed_same_traffic(tmp_path: Path) -> None:
    now = time.time()
    first = traffic(f"sqlite:///{tmp_path / 'a.db'}", 42, now)
    assert len(first) > 500
    assert traffic(f"sqlite:///{tmp_path / 'b.db'}", 42, now) == first
    assert traffic(f"sqlite:///{tmp_path / 'c.db'}", 7, now) != first


def test_demo_uses_the_default_database(tmp_path: Path) -> None:
    ok("demo", "--calls", "300", "--days", "3")
    assert (tmp_path / "llmtally.db").exists()
    assert sum(r["calls"] for r in breakdown("sqlite:///llmtally.db")) == 300


@pytest.mark.postgres
def test_demo_on_postgres(pg_url: str) -> None:
    ok("demo", "--calls", "2000", "--db", pg_url)
    rows = breakdown(pg_url)
    with psycopg.connect(pg_url) as conn:
        expected = dict(
            conn.execute(
                "SELECT model, coalesce(sum(cost_usd), 0) FROM events "
                "WHERE kind = 'llm_call' GROUP BY model"
            ).fetchall()
        )
    assert {
        r["model"]: pytest.approx(r["cost_usd"], rel=1e-12, abs=1e-12) for r in rows
    } == expected
    assert sum(r["calls"] for r in rows) == 2000
    exported = ok(
        "export", "--db", pg_url, "--days", "31", "--kind", "llm_call", "--format", "jsonl"
    )
    lines = exported.stdout.splitlines()
    assert len(lines) == 2000 and json.loads(lines[0])["occurred_at"].endswith("Z")


def test_bad_settings_fail_before_earlier_demo_events_are_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    ok("demo", "--db", url, "--calls", "200", "--days", "2")
    config = tmp_path / "bad.toml"
    config.write_text("custom_pricing = 5\n")
    monkeypatch.setenv("LLMTALLY_CONFIG", str(config))
    result = CliRunner().invoke(cli, ["demo", "--db", url, "--calls", "200"])
    assert result.exit_code == 2 and "custom_pricing" in result.stderr
    monkeypatch.delenv("LLMTALLY_CONFIG")  # every command refuses a bad config file
    assert sum(r["calls"] for r in breakdown(url)) == 200


# -- the traffic model on its own ------------------------------------------------------

END = 1_795_000_000.0  # a fixed "now"
START = END - 3 * 86_400


def test_events_are_ordered_exact_and_inside_the_range() -> None:
    traffic = Traffic(seed=3, humans=60, agents=5, project=None)
    hours = traffic.plan(START, END, 1_234)
    assert sum(h.calls for h in hours) == 1_234
    assert all(a.hi == b.lo for a, b in itertools.pairwise(hours))
    events = list(traffic.events(START, END, 1_234))
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times) and times[0] >= START and times[-1] < END
    assert sum(e["kind"] == "llm_call" for e in events) == 1_234
    assert len({e["event_id"] for e in events}) == len(events)
    assert {e["project"] for e in events} == {"web", "support", "mobile", "platform"}
    calls = {e["event_id"]: e for e in events if e["kind"] == "llm_call"}
    linked = [e for e in events if e["kind"] in ("feedback", "tool_call")]
    assert linked and all(calls[e["parent_id"]]["trace_id"] == e["trace_id"] for e in linked)
    assert all(calls[e["parent_id"]]["occurred_at"] <= e["occurred_at"] for e in linked)


def test_same_seed_same_events_and_another_seed_others() -> None:
    def events(seed: int) -> list[dict[str, Any]]:
        return list(Traffic(seed=seed, humans=50).events(START, END, 800))

    first = events(42)
    assert events(42) == first
    other = events(43)
    assert {e["event_id"] for e in other}.isdisjoint(e["event_id"] for e in first)
    assert [e["model"] for e in other if "model" in e] != [
        e["model"] for e in first if "model" in e
    ]


def test_events_are_stored_as_capture_would_store_them() -> None:
    """The benchmark's generator skips validation: it must change nothing in these events."""
    traffic = Traffic(seed=5, humans=80, agents=6, project=None)
    events = list(traffic.events(START, END, 3_000))
    assert {e["kind"] for e in events} == {"llm_call", "feedback", "tool_call", "product"}

    def rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        processor = Processor(
            prices=PriceBook(custom_pricing=CUSTOM_PRICING),
            redactor=Redactor(enabled=True),
            capture_content=False,
            ts=float,
        )
        return [processor.row(item, Batch()) for item in items]

    validated = [build_from_mapping(e, project="elsewhere") for e in events]
    assert rows(events) == rows(validated)


def test_a_stream_over_later_hours_repeats_the_full_streams_events() -> None:
    """What lets the benchmark make a month in parallel shares: an hour is made alone."""
    traffic = Traffic(seed=9, humans=40, agents=4, project=None)
    hours = traffic.plan(START, END, 1_500)
    full = {e["event_id"]: e for e in traffic.events(START, END, 1_500)}
    later = list(traffic.events(START, END, 1_500, hours=slice(30, None)))
    joins = [e for e in later if e.get("name") == "user_joined_channel"]
    assert all(full.get(e["event_id"]) == e for e in later if e not in joins)
    assert sum(e["kind"] == "llm_call" for e in later) == sum(h.calls for h in hours[30:])


def test_live_traffic_comes_in_real_time_at_the_rate() -> None:
    clock = [END]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    events = Traffic(seed=1, humans=30).live(600, clock=lambda: clock[0], sleep=sleep)
    seen = []
    for event in events:
        assert event["occurred_at"] <= clock[0]  # never ahead of the clock
        seen.append(event)
        if clock[0] >= END + 6 * 3600:
            break
    times = [e["occurred_at"] for e in seen]
    assert times == sorted(times) and times[0] >= END and waits and min(waits) > 0
    calls = sum(e["kind"] == "llm_call" for e in seen)
    # 600 calls an hour on average over a week; these six hours are a weekday morning
    assert 6 * 600 * 0.3 < calls < 6 * 600 * 3


def test_profiles_name_people_and_every_agent() -> None:
    traffic = Traffic(seed=2, humans=100, agents=8)
    profiles = traffic.profiles()
    agents = [p for p in profiles if p.actor_type == "agent"]
    assert [p.actor_id for p in agents] == traffic.population.agents and len(agents) == 8
    assert agents[0].display_name == "Release planner" and agents[-1].display_name
    people = [p for p in profiles if p.actor_type == "human"]
    assert len(people) == 24 and all(p.real_name and p.timezone for p in people)
    assert profiles == Traffic(seed=2, humans=100, agents=8).profiles()
