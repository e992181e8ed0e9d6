"""Migrations from a blank database, schema equality with the code, and concurrent start-up."""

from __future__ import annotations

import multiprocessing

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import llmtally
from dbutil import engine, rows
from llmtally.store import migrate
from llmtally.store.base import open_store
from llmtally.store.schema import metadata


def test_blank_database_migrates_to_head_once(db_url: str) -> None:
    store = open_store(db_url)
    try:
        assert [r.applied for r in migrate.status(store.engine)] == [False] * len(
            migrate.status(store.engine)
        )
        applied = store.migrate()
        assert applied[0] == "0001_initial"
        assert applied[-1] == migrate.head_revision()
        assert store.migrate() == []  # already applied: skipped
        assert all(r.applied for r in migrate.status(store.engine))
        version = rows(db_url, f"SELECT version_num FROM {migrate.VERSION_TABLE}")
        assert version == [{"version_num": migrate.head_revision()}]
    finally:
        store.close()


def test_migrated_schema_equals_the_code(db_url: str) -> None:
    store = open_store(db_url)
    store.migrate()
    store.close()
    eng = engine(db_url)
    try:
        with eng.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE}
            )
            diffs = [d for d in compare_metadata(context, metadata) if not _ignorable(d)]
    finally:
        eng.dispose()
    assert diffs == []


def _ignorable(diff: object) -> bool:
    # the version table is Alembic's, not part of our metadata
    text = repr(diff)
    return migrate.VERSION_TABLE in text


def _start_and_write(url: str, n: int) -> None:
    with llmtally.Tally(url, project="race") as tally:
        for i in range(n):
            tally.record_call(model="gpt-4o", input_tokens=i)
        assert tally.flush(30)


def test_processes_starting_together_migrate_once(sqlite_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_start_and_write, args=(sqlite_url, 50)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    eng = engine(sqlite_url)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 200
    eng.dispose()


def test_bad_url_is_a_clear_error() -> None:
    import pytest

    with pytest.raises(llmtally.UnsupportedDatabaseError, match="mysql"):
        open_store("mysql://root@localhost/x")


def test_upgrade_from_the_oldest_schema_keeps_data(db_url: str) -> None:
    store = open_store(db_url)
    try:
        assert migrate.upgrade(store.engine, "0001_initial") == ["0001_initial"]
        long_provider = "p" * 150
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO models (provider, model, price_source, is_placeholder, "
                    "first_seen, last_seen) VALUES ('openai', 'gpt-4o', 'genai-prices', "
                    "false, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
        applied = store.migrate()
        assert applied[0] == "0002_registry_provider_length"
        with llmtally.Tally(db_url) as tally:  # a provider only the new schema can register
            tally.record_call(model="m", provider=long_provider, input_tokens=1)
            assert tally.flush(10)
        registry = rows(db_url, "SELECT provider, model FROM models ORDER BY model")
        assert registry == [
            {"provider": "openai", "model": "gpt-4o"},
            {"provider": long_provider, "model": "m"},
        ]
    finally:
        store.close()


def test_the_head_constant_is_the_newest_shipped_script() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(migrate._SCRIPT_LOCATION))
    assert scripts.get_current_head() == migrate.HEAD


def test_a_start_at_head_does_not_import_alembic(sqlite_url: str, tmp_path) -> None:
    import subprocess
    import sys

    with llmtally.Tally(sqlite_url, spool_dir=tmp_path / "s") as tally:
        assert tally.flush(30)  # migrated here
    script = (
        "import sys, llmtally\n"
        f"t = llmtally.Tally({sqlite_url!r}, spool_dir={str(tmp_path / 's')!r})\n"
        "t.record_call(model='gpt-4o'); assert t.flush(30); t.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _insert_old_events(url: str, n: int = 120) -> None:
    """Events written with the oldest schema's columns (0001), by plain SQL."""
    pg = not url.startswith("sqlite")
    eng = engine(url)
    cols = ("event_id, occurred_at, project, kind, name, actor_id, actor_type, session_id, "
            "parent_id, feature, provider, model, status, error_type, error_message, "
            "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
            "reasoning_tokens, latency_ms, ttft_ms, cost_usd, rating, regenerated, edited, "
            "schema_version")  # fmt: skip
    marks = ", ".join(f":{c.strip()}" for c in cols.split(","))
    rows = []
    for i in range(n):
        minute = 7 * i  # ~14 hours: several hours, days, sessions across them
        at = f"2026-10-01 {20 + minute // 60 % 4:02d}:{minute % 60:02d}:00.000000"
        at = at.replace("2026-10-01", f"2026-10-0{1 + minute // 240}")
        call = i % 5 != 4
        rows.append({
            "event_id": f"0192a3b4-c5d6-7e8f-9a0b-{i:012x}",
            "occurred_at": at + ("+00" if pg else ""),
            "project": ("alpha", "beta")[i % 2],
            "kind": "llm_call" if call else ("feedback" if i % 10 == 4 else "tool_call"),
            "name": None if call else "search",
            "actor_id": f"agent-{i % 3}" if i % 7 == 0 else f"u{i % 6}",
            "actor_type": "agent" if i % 7 == 0 else "human",
            "session_id": f"s{i // 20}" if call else None,
            "parent_id": f"0192a3b4-c5d6-7e8f-9a0b-{i - 1:012x}" if i % 10 == 4 else None,
            "feature": ("chat", "tldr")[i % 2], "provider": "openai",
            "model": ("gpt-4o", "gpt-4o-mini")[i % 2] if call else None,
            "status": "error" if i % 11 == 0 else "success",
            "error_type": "RateLimitError" if i % 11 == 0 else None,
            "error_message": "slow down" if i % 11 == 0 else None,
            "input_tokens": 100 + i, "output_tokens": 20 + i % 9, "cache_read_tokens": i % 4,
            "cache_write_tokens": 3 * i, "reasoning_tokens": i % 13,
            "latency_ms": 300.0 + 37 * i, "ttft_ms": 50.0 + i, "cost_usd": 0.001 * i,
            "rating": ("up", "down")[i % 20 == 14] if i % 10 == 4 else None,
            "regenerated": i % 20 == 4 if i % 10 == 4 else None,
            "edited": None, "schema_version": 1,
        })  # fmt: skip
    try:
        with eng.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO events ({cols}) VALUES ({marks})"), rows)
    finally:
        eng.dispose()


DERIVED_TABLES = (
    "rollup_5min", "rollup_hourly", "rollup_daily", "rollup_actor_hourly",
    "rollup_actor_daily", "rollup_actor_bits", "actor_numbers", "rollup_feedback_hourly",
    "rollup_feedback_daily", "feedback_orphans", "session_totals", "session_bounds",
)  # fmt: skip


def _dump(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every derived table's rows, each value as text (floats rounded), sorted."""
    out = {}
    for table in DERIVED_TABLES:
        got = []
        for row in rows(url, f"SELECT * FROM {table}"):
            got.append(tuple(
                f"{k}={round(v, 9) if isinstance(v, float) else bytes(v).hex() if isinstance(v, (bytes, memoryview)) else str(v)[:19]}"  # noqa: E501
                for k, v in sorted(row.items())
            ))  # fmt: skip
        out[table] = sorted(got)
    return out


def test_oldest_revision_with_events_upgrades_to_correct_derived_tables(db_url: str) -> None:
    store = open_store(db_url)
    try:
        migrate.upgrade(store.engine, "0001_initial")
        _insert_old_events(db_url)
        applied = store.migrate()  # 0002 … head, then the one rebuild at head
    finally:
        store.close()
    assert applied[-1] == migrate.HEAD
    assert rows(db_url, "SELECT * FROM llmtally_derived_state") == []
    upgraded = _dump(db_url)
    empty = [t for t in DERIVED_TABLES if not upgraded[t]]
    assert empty == ["feedback_orphans"]  # every feedback event rates a stored call
    eng = engine(db_url)
    try:
        from llmtally.store import rollups

        rollups.rebuild(eng)
    finally:
        eng.dispose()
    assert _dump(db_url) == upgraded
    # the columns the actor rollups gained after 0001 hold the events' sums
    (got,) = rows(db_url, "SELECT sum(cache_write_tokens) AS w, sum(reasoning_tokens) AS r, "
                          "sum(calls) AS n FROM rollup_actor_daily")  # fmt: skip
    (raw,) = rows(db_url, "SELECT sum(cache_write_tokens) AS w, sum(reasoning_tokens) AS r, "
                          "count(*) AS n FROM events WHERE kind = 'llm_call'")  # fmt: skip
    assert got == raw and raw["w"] > 0


def test_a_derived_table_that_gained_columns_is_rebuilt_at_head(db_url: str) -> None:
    store = open_store(db_url)
    try:
        migrate.upgrade(store.engine, "0004_activity_rollups")
        _insert_old_events(db_url)
        with store.engine.begin() as conn:  # a stale row, as 0004's write path left it
            conn.execute(sa.text(
                "INSERT INTO rollup_actor_daily (bucket, project, actor_type, actor_id, calls, "
                "errors, cost_usd, priced_calls, input_tokens, output_tokens, "
                "cache_read_tokens, latency_sum, latency_count) VALUES ('2026-10-01 00:00:00"
                f"{'+00' if store.dialect == 'postgresql' else '.000000'}', 'alpha', 'human', "
                "'u0', 999, 0, 0, 0, 0, 0, 0, 0, 0)"
            ))  # fmt: skip
        assert store.migrate() == [migrate.HEAD]
    finally:
        store.close()
    marks = rows(db_url, "SELECT * FROM llmtally_derived_state")
    assert marks == []  # claimed and rebuilt
    (got,) = rows(db_url, "SELECT sum(calls) AS n, sum(cache_write_tokens) AS w "
                          "FROM rollup_actor_daily")  # fmt: skip
    (raw,) = rows(db_url, "SELECT count(*) AS n, sum(cache_write_tokens) AS w FROM events "
                          "WHERE kind = 'llm_call'")  # fmt: skip
    assert got == raw  # the stale 999 calls are gone, the new column is filled
    # 0004 created the other derived tables empty beside events: 0005 marked them too
    assert rows(db_url, "SELECT count(*) AS n FROM rollup_5min")[0]["n"] > 0


def test_a_blank_database_has_nothing_stale(db_url: str) -> None:
    store = open_store(db_url)
    try:
        store.migrate()
    finally:
        store.close()
    assert rows(db_url, "SELECT * FROM llmtally_derived_state") == []


def test_migration_scripts_import_nothing_from_llmtally() -> None:
    from pathlib import Path

    versions = Path(migrate._SCRIPT_LOCATION) / "versions"
    scripts = sorted(versions.glob("*.py"))
    assert len(scripts) >= 5
    for script in scripts:
        text = script.read_text()
        assert "import llmtally" not in text and "from llmtally" not in text, script.name
