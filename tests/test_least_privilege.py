"""The runtime works with a PostgreSQL role that has only SELECT/INSERT/UPDATE/DELETE."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import llmtally
import pgserver
from llmtally.store.base import open_store
from llmtally.store.maintenance import delete_older_than

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_url(pg_admin_url: str, pg_url: str) -> Iterator[str]:
    owner = open_store(pg_url)
    owner.migrate()  # what `llmtally db migrate` does, as the owner
    owner.close()
    role_url = pgserver.create_app_role(pg_admin_url, pg_url)
    try:
        yield role_url
    finally:
        pgserver.drop_role(pg_admin_url, role_url)


def test_runtime_role_records_reads_and_cleans_up(app_url: str) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    with llmtally.Tally(app_url, project="lp") as tally:
        call_id = tally.record_call(
            model="gpt-4o", provider="openai", input_tokens=100, output_tokens=10, actor="U1"
        )
        tally.record_call(model="gpt-4o", provider="openai", input_tokens=1, occurred_at=old)
        tally.record_feedback(call_id, rating="up")
        tally.identify("U1", real_name="Test User")
        assert tally.flush(10)
        stats = tally.stats()
        overview = tally.reports.overview(since="2000-01-01")[0]
    assert stats["written"] == 3 and stats["last_error"] is None
    assert overview["calls"] == 2
    store = open_store(app_url)
    try:
        assert delete_older_than(store.engine, days=180) == 1
    finally:
        store.close()


def test_runtime_role_cannot_change_the_schema(app_url: str) -> None:
    with psycopg.connect(app_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE sneaky (id int)")
    with psycopg.connect(app_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("ALTER TABLE events ADD COLUMN sneaky int")
