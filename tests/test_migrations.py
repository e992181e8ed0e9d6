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
