"""The latency sketch's error bound, and rollups kept by the write path equal a rebuild."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmtally
from dbutil import engine, rows
from llmtally.store import rollups, sketch
from llmtally.store.base import open_store


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(0.01, 600_000, allow_nan=False), min_size=1, max_size=400),
    q=st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_sketch_quantiles_within_one_percent(values: list[float], q: float) -> None:
    hist = sketch.add_values({}, values)
    (estimate,) = sketch.quantiles(sketch.decode(sketch.encode(hist)), [q])
    exact = exact_percentile(values, q)
    assert estimate is not None
    assert abs(estimate - exact) <= 0.01 * exact + 1e-12


def test_sketch_merge_equals_sketch_of_union() -> None:
    a, b = [1.0, 5.0, 20.5], [0.0, 5.0, 3000.0]
    merged = sketch.merge_blob(sketch.add_values({}, a), sketch.encode(sketch.add_values({}, b)))
    assert merged == sketch.add_values({}, a + b)
    assert sketch.encode({}) is None and sketch.decode(None) == {}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.just(0.0), st.floats(0.001, 1e7, allow_nan=False)), max_size=50),
        max_size=40,
    )
)
def test_merge_blobs_equals_merging_one_by_one(groups: list[list[float]]) -> None:
    blobs = [sketch.encode(sketch.add_values({}, values)) for values in groups]
    one_by_one: sketch.Histogram = {3: 1}
    for blob in blobs:
        sketch.merge_blob(one_by_one, blob)
    assert sketch.merge_blobs({3: 1}, [*blobs, None]) == one_by_one


REF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def _record(tally: llmtally.Tally) -> None:
    for i in range(600):
        tally.record_call(
            event_id=f"0192a3b4-c5d6-7e8f-9a0b-{i:012x}",
            occurred_at=REF + timedelta(minutes=7 * i),
            model=("gpt-4o", "gpt-4o-mini", "unknown-x")[i % 3],
            provider="openai",
            feature=("chat", "tldr")[i % 2],
            status="error" if i % 17 == 0 else "success",
            error_type="RateLimitError" if i % 17 == 0 else None,
            error_message="slow down" if i % 17 == 0 else None,
            input_tokens=100 + i,
            output_tokens=10 + i % 50,
            latency_ms=50.0 + i * 3.5,
            ttft_ms=20.0 + i if i % 2 else None,
        )
        if i % 10 == 0:
            tally.record_tool_call(
                "search", latency_ms=5.0 + i, occurred_at=REF + timedelta(hours=i)
            )
        if i % 5 == 0:
            tally.record_event("page_view", occurred_at=REF)  # never rolled up


def _rollup_rows(url: str, table: str = "rollup_hourly") -> list[dict[str, Any]]:
    got = rows(url, f"SELECT * FROM {table}")
    for row in got:
        for key in ("latency_hist", "ttft_hist"):
            row[key] = sketch.decode(row[key])
        row["cost_usd"] = round(row["cost_usd"], 9)
        row["latency_sum"] = round(row["latency_sum"], 6)
        row["ttft_sum"] = round(row["ttft_sum"], 6)
    return sorted(got, key=lambda r: (str(r["bucket"]), *[r[d] for d in rollups.ROLLUP_DIMENSIONS]))


def test_incremental_rollups_equal_a_rebuild_and_ignore_duplicates(
    db_url: str, tmp_path: Path
) -> None:
    with llmtally.Tally(db_url, spool_dir=tmp_path / "s", batch_size=97) as tally:
        _record(tally)
        assert tally.flush(30)
        _record(tally)  # the same event ids again: duplicates must not count
        assert tally.flush(30)
    incremental = _rollup_rows(db_url)
    daily = _rollup_rows(db_url, "rollup_daily")
    fine = _rollup_rows(db_url, "rollup_5min")
    assert len(daily) < len(incremental) <= len(fine)
    assert sum(r["calls"] for r in fine) == sum(r["calls"] for r in incremental)
    calls = sum(r["calls"] for r in incremental if r["kind"] == "llm_call")
    assert sum(r["calls"] for r in daily if r["kind"] == "llm_call") == calls
    assert calls == 600
    assert sum(r["calls"] for r in incremental if r["kind"] == "tool_call") == 120  # 60 x 2 runs
    eng = engine(db_url)
    rollups.rebuild(eng)
    eng.dispose()
    rebuilt = _rollup_rows(db_url)
    assert incremental == rebuilt
    assert _rollup_rows(db_url, "rollup_daily") == daily
    assert _rollup_rows(db_url, "rollup_5min") == fine
    raw = rows(db_url, "SELECT count(*) AS n, sum(cost_usd) AS c FROM events WHERE kind='llm_call'")
    assert sum(r["cost_usd"] for r in incremental) == pytest.approx(raw[0]["c"], rel=1e-9)


def test_migration_rolls_up_existing_events(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    from llmtally.store import migrate

    migrate.upgrade(store.engine, "0002_registry_provider_length")
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO events (event_id, occurred_at, project, kind, model, status, "
            "latency_ms, cost_usd, schema_version) VALUES ('0192a3b4-c5d6-7e8f-9a0b-"
            "000000000001', '2026-10-01 12:34:56.000000', 'p', 'llm_call', 'm', 'success', "
            "12.5, 0.5, 1)"
        )
    store.migrate()
    store.close()
    (row,) = rows(sqlite_url, "SELECT * FROM rollup_hourly")
    assert row["calls"] == 1 and row["cost_usd"] == 0.5 and row["model"] == "m"
    assert str(row["bucket"]).startswith("2026-10-01 12:00:00")


def test_cleanup_and_repricing_keep_rollups_exact(db_url: str, tmp_path: Path) -> None:
    from llmtally.capture.pricing import PriceBook
    from llmtally.store.maintenance import delete_older_than, recompute_costs

    with llmtally.Tally(db_url, spool_dir=tmp_path / "s") as tally:
        _record(tally)
        assert tally.flush(30)
    eng = engine(db_url)
    try:
        cutoff = REF + timedelta(hours=20, minutes=13)  # not on an hour boundary
        assert delete_older_than(eng, cutoff=cutoff) > 0
        after_cleanup = _rollup_rows(db_url)
        book = PriceBook(custom_pricing={"unknown-x": {"input": 1.0, "output": 2.0}})
        assert recompute_costs(eng, book) > 0
        after_repricing = _rollup_rows(db_url)
        daily = _rollup_rows(db_url, "rollup_daily")
        fine = _rollup_rows(db_url, "rollup_5min")
        rollups.rebuild(eng)
        assert _rollup_rows(db_url) == after_repricing
        assert _rollup_rows(db_url, "rollup_daily") == daily
        assert _rollup_rows(db_url, "rollup_5min") == fine
    finally:
        eng.dispose()
    assert after_cleanup != after_repricing  # the re-priced costs reached the rollups
    remaining = rows(db_url, "SELECT count(*) AS n FROM events WHERE kind = 'llm_call'")[0]["n"]
    assert sum(r["calls"] for r in after_repricing if r["kind"] == "llm_call") == remaining
