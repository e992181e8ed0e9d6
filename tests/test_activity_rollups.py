"""Actor rollups, session totals and feedback rollups: the write path equals a rebuild, and
the reports they answer equal the events-table computation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import llmtally
from dbutil import engine, rows
from llmtally.query import activity
from llmtally.query.filters import Filters
from llmtally.query.reports import Reports
from llmtally.store import actor_bits, rollups, sketch

REF = datetime(2026, 10, 1, 22, 10, tzinfo=UTC)
TABLES = (
    "rollup_actor_hourly",
    "rollup_actor_daily",
    "session_totals",
    "rollup_feedback_hourly",
    "rollup_feedback_daily",
    "rollup_actor_bits",
    "actor_numbers",
)


def _id(n: int) -> str:
    return f"0192a3b4-c5d6-7e8f-9a0b-{n:012x}"


def _calls(tally: llmtally.Tally, start: int, stop: int) -> None:
    for i in range(start, stop):
        agent = i % 7 == 0
        tally.record_call(
            event_id=_id(i),
            # 9 minutes apart: sessions run across hours and midnight
            occurred_at=REF + timedelta(minutes=9 * i),
            project=("alpha", "beta")[i % 2],
            model=("gpt-4o", "gpt-4o-mini", "unknown-x")[i % 3],
            provider="openai",
            feature=("chat", "tldr")[i % 5 % 2],
            actor=f"agent-{i % 3}" if agent else (f"u{i % 11}" if i % 13 else None),
            actor_type="agent" if agent else None,
            session_id=f"s{i % 2}-{i // 40}" if i % 13 else None,
            status="error" if i % 17 == 0 else "success",
            error_type="RateLimitError" if i % 17 == 0 else None,
            input_tokens=100 + i,
            output_tokens=10 + i % 50,
            cache_read_tokens=i % 4 * 10,
            latency_ms=400.0 + (i % 9) * 700.0,  # some over the 3 s "slow" threshold
        )


def _feedback(tally: llmtally.Tally, calls: range, salt: int) -> None:
    for i in calls:
        if i % 3 == 0:
            tally.record_feedback(
                _id(i),
                event_id=_id(10_000 + salt * 1000 + i),
                rating=("up", "down")[i % 2],
                regenerated=i % 4 == 0,
                edited=(i + salt) % 5 == 0,
            )


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for table in TABLES:
        got = rows(url, f"SELECT * FROM {table}")
        for row in got:
            for key, value in row.items():
                if isinstance(value, float):
                    row[key] = round(value, 6)
                elif isinstance(value, (bytes, memoryview)):
                    row[key] = actor_bits.decode(value) if key == "bits" else sketch.decode(value)
                elif isinstance(value, datetime):
                    row[key] = value.replace(tzinfo=None).isoformat(" ")
                elif isinstance(value, str) and key in ("bucket", "first_at", "last_at"):
                    row[key] = value[:19]
        out[table] = sorted(got, key=lambda r: sorted((k, str(v)) for k, v in r.items()))
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal rows, floats to 1e-9 relative."""
    if a.keys() != b.keys():
        return False
    return all(
        math.isclose(a[k], b[k], rel_tol=1e-9)
        if isinstance(a[k], float) and isinstance(b[k], float)
        else a[k] == b[k]
        for k in a
    )


def test_write_path_equals_rebuild(db_url: str, tmp_path: Path) -> None:
    with llmtally.Tally(db_url, spool_dir=tmp_path / "s", batch_size=53) as tally:
        _feedback(tally, range(300, 330), salt=1)  # feedback before its calls exist
        assert tally.flush(30)
        _feedback(tally, range(400, 403), salt=9)  # rates calls that never come
        _calls(tally, 0, 400)
        _feedback(tally, range(0, 200), salt=2)
        assert tally.flush(30)
        _feedback(tally, range(100, 300), salt=3)  # second feedback on many calls
        _calls(tally, 0, 400)  # duplicates: ignored
        _feedback(tally, range(0, 50), salt=2)  # duplicate feedback: ignored
        assert tally.flush(30)
    incremental = _dump(db_url)
    assert all(incremental[t] for t in TABLES)
    # the early feedback was adopted by its calls; only 402's call never came
    assert [r["call_id"] for r in rows(db_url, "SELECT call_id FROM feedback_orphans")] == [
        _id(402)
    ]
    eng = engine(db_url)
    rollups.rebuild(eng)
    eng.dispose()
    assert _dump(db_url) == incremental
    fb = rows(db_url, "SELECT sum(feedback) AS n FROM rollup_feedback_hourly")[0]["n"]
    raw = rows(
        db_url,
        "SELECT count(*) AS n FROM events f WHERE f.kind = 'feedback' AND f.parent_id IN "
        "(SELECT CAST(event_id AS VARCHAR(36)) FROM events WHERE kind = 'llm_call')",
    )[0]["n"]
    assert fb == raw > 0


def test_cleanup_and_repricing_keep_activity_rollups_exact(db_url: str, tmp_path: Path) -> None:
    from llmtally.capture.pricing import PriceBook
    from llmtally.store.maintenance import delete_older_than, recompute_costs

    with llmtally.Tally(db_url, spool_dir=tmp_path / "s") as tally:
        _calls(tally, 0, 400)
        _feedback(tally, range(0, 400), salt=1)
        assert tally.flush(30)
    eng = engine(db_url)
    try:
        assert delete_older_than(eng, cutoff=REF + timedelta(hours=20, minutes=13)) > 0
        book = PriceBook(custom_pricing={"unknown-x": {"input": 1.0, "output": 2.0}})
        assert recompute_costs(eng, book) > 0
        maintained = _dump(db_url)
        rollups.rebuild(eng)
        assert _dump(db_url) == maintained
    finally:
        eng.dispose()
    costs = rows(db_url, "SELECT sum(cost_usd) AS c FROM session_totals")[0]["c"]
    raw = rows(
        db_url,
        "SELECT sum(cost_usd) AS c FROM events WHERE kind = 'llm_call' AND session_id IS NOT NULL",
    )[0]["c"]
    assert costs == pytest.approx(raw, rel=1e-9)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, None),
        (REF + timedelta(hours=5, minutes=3), None),
        (None, REF + timedelta(hours=30, minutes=31)),
        (REF + timedelta(hours=5, minutes=3), REF + timedelta(hours=30, minutes=31)),
        (REF + timedelta(hours=26), REF + timedelta(hours=26, minutes=40)),  # inside sessions
    ],
)
def test_sessions_and_actor_reports_equal_the_events_table(
    db_url: str, tmp_path: Path, since: datetime | None, until: datetime | None
) -> None:
    with llmtally.Tally(db_url, spool_dir=tmp_path / "s") as tally:
        _calls(tally, 0, 400)
        assert tally.flush(30)
    eng = engine(db_url)
    reports = Reports(eng)
    f = Filters(since=since, until=until)
    try:
        with eng.connect() as conn:
            raw_sessions = activity.sessions(conn, f, 1000)
            raw_actors = activity.top_breakdown(conn, f, "actor", "actor_id", 1000)
            raw_active = len({r["actor"] for r in raw_actors if r["actor"] is not None})
        got = reports.sessions(filters=f, limit=1000)
        assert len(got) == len(raw_sessions) > 0
        assert all(_same(a, b) for a, b in zip(got, raw_sessions, strict=True))
        top = reports.sessions(filters=f, limit=3)
        assert all(_same(a, b) for a, b in zip(top, raw_sessions[:3], strict=True))
        by_actor = reports.costs_breakdown(by="actor", filters=f)
        assert [r["actor"] for r in by_actor] == [r["actor"] for r in raw_actors]
        for mine, theirs in zip(by_actor, raw_actors, strict=True):
            assert _same(mine, theirs), (mine, theirs)
        assert reports.overview(filters=f)[0]["active_actors"] == raw_active
        if since is not None and until is not None and until - since > timedelta(hours=1):
            # the cuts fall inside sessions: the straddler path was exercised
            cut = since.strftime("%Y-%m-%d %H:%M:%S")
            crossing = [r for r in rows(db_url, "SELECT * FROM session_totals")
                        if str(r["first_at"])[:19] < cut <= str(r["last_at"])[:19]]  # fmt: skip
            assert crossing
    finally:
        eng.dispose()


def test_quality_weights_are_configurable(sqlite_url: str, tmp_path: Path) -> None:
    with llmtally.Tally(sqlite_url, spool_dir=tmp_path / "s") as tally:
        _calls(tally, 0, 120)
        _feedback(tally, range(0, 120), salt=1)
        assert tally.flush(30)
    eng = engine(sqlite_url)
    try:
        default = {r["feature"]: r for r in Reports(eng).feedback(by="feature")}
        harsh = Reports(eng, quality_weights={"regenerated_penalty": 1.0, "slow_factor": 0.0})
        strict = {r["feature"]: r for r in harsh.feedback(by="feature")}
        assert all(strict[k]["quality_score"] < default[k]["quality_score"] for k in default)
        # a slow threshold other than the rollups' one is answered from the events
        lenient = Reports(eng, quality_weights={"slow_ms": 10_000.0}).feedback(by="feature")
        signals = rows(
            sqlite_url,
            "SELECT c.feature, c.event_id, c.latency_ms, max(f.regenerated) AS r, "
            "max(f.edited) AS e FROM events f JOIN events c ON c.event_id = f.parent_id "
            "WHERE f.kind = 'feedback' GROUP BY c.feature, c.event_id, c.latency_ms",
        )
        for row in lenient:
            mine = [
                1.0 - 0.3 * bool(s["r"]) - 0.15 * bool(s["e"])
                for s in signals
                if s["feature"] == row["feature"]
            ]
            assert row["quality_score"] == pytest.approx(sum(mine) / len(mine))
        with pytest.raises(llmtally.QueryError, match="edited_penalty"):
            Reports(eng, quality_weights={"edited_penalty": 2})
        with pytest.raises(llmtally.ConfigError, match=r"quality_weights\.slow_factor"):
            llmtally.Tally(None, quality_weights={"slow_factor": -1})
        weighted = llmtally.Tally(sqlite_url, spool_dir=tmp_path / "s", quality_weights={
            "regenerated_penalty": 1.0, "slow_factor": 0.0})  # fmt: skip
        try:
            assert weighted.reports.feedback(by="feature") == harsh.feedback(by="feature")
        finally:
            weighted.close()
    finally:
        eng.dispose()


def test_migration_from_0003_rolls_up_existing_events(sqlite_url: str, tmp_path: Path) -> None:
    from llmtally.store import migrate
    from llmtally.store.base import open_store

    store = open_store(sqlite_url)
    migrate.upgrade(store.engine, "0003_rollups")
    with store.engine.begin() as conn:
        for n, (kind, parent) in enumerate((("llm_call", None), ("feedback", _id(0)))):
            conn.exec_driver_sql(
                "INSERT INTO events (event_id, occurred_at, project, kind, model, status, "
                "actor_id, session_id, parent_id, rating, latency_ms, cost_usd, schema_version) "
                f"VALUES ('{_id(n)}', '2026-10-01 12:34:56.000000', 'p', '{kind}', 'm', "
                f"'success', 'u1', 's1', {repr(parent) if parent else 'NULL'}, "
                f"{repr('up') if parent else 'NULL'}, 12.5, 0.5, 1)"
            )
    store.migrate()
    store.close()
    (actor,) = rows(sqlite_url, "SELECT * FROM rollup_actor_daily")
    assert actor["actor_id"] == "u1" and actor["calls"] == 1 and actor["cost_usd"] == 0.5
    (session,) = rows(sqlite_url, "SELECT * FROM session_totals")
    assert session["session_id"] == "s1" and session["turns"] == 1
    (fb,) = rows(sqlite_url, "SELECT * FROM rollup_feedback_hourly")
    assert fb["feedback"] == 1 and fb["up"] == 1 and fb["rated_0"] == 1
