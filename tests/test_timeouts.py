"""A flush() or close() that runs out of time says how many events remain and why: a store
that is reachable but behind (a real SQLite file locked by another writer) is not reported
like one that is unreachable (a real PostgreSQL behind a cut TCP proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmtally
from dbutil import count
from tcpproxy import pg_proxy
from test_spool_faults import migrated, record, store_down


def _warning(caplog: pytest.LogCaptureFixture, start: str) -> str:
    return next(r.getMessage() for r in caplog.records if r.getMessage().startswith(start))


def test_a_locked_sqlite_store_is_behind_not_unreachable(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with store_down(sqlite_url) as outage:
        tally = llmtally.Tally(
            outage.url, spool_dir=tmp_path / "spool", batch_size=100, max_backoff=0.2
        )
        assert tally.flush(30)
        outage.stall()  # another connection holds the write lock: our writer waits on it
        record(tally, 0, 250)
        with caplog.at_level("WARNING", logger="llmtally"):
            assert tally.flush(timeout=2.5) is False
            assert tally.close(timeout=1.5) is False
        flushed = _warning(caplog, "llmtally: flush timed out")
        closed = _warning(caplog, "llmtally: close timed out")
        outage.restore()
    for message in (flushed, closed):
        assert "250 events pending (250 in the journal" in message
        assert "store reachable but behind: 250 events in 3 batches still to write" in message
        assert "in progress for" in message and "locked" in message
        assert "unreachable" not in message
    assert "the journal keeps them for the next start" in closed


def test_an_unreachable_postgres_says_since_when_and_the_last_error(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, url = pg_proxy(migrated(pg_url))
    try:
        proxy.cut()  # never reachable from this process's start
        tally = llmtally.Tally(
            url, spool_dir=tmp_path / "spool", connect_timeout=1, max_backoff=0.2,
            spool_interval=0.05,
        )  # fmt: skip
        record(tally, 0, 40)
        with caplog.at_level("WARNING", logger="llmtally"):
            assert tally.flush(timeout=2.0) is False
            assert tally.close(timeout=1.0) is False
        flushed = _warning(caplog, "llmtally: flush timed out")
        closed = _warning(caplog, "llmtally: close timed out")
    finally:
        proxy.close()
    for message in (flushed, closed):
        assert "40 events pending (40 in the journal" in message
        assert "store unreachable since " in message and " UTC (" in message
        assert "last error: StoreError: reaching the database failed" in message
        assert "behind" not in message
    assert count(pg_url) == 0


def test_postgres_cut_after_start_is_failing_writes_since(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with store_down(pg_url) as outage:
        tally = llmtally.Tally(
            outage.url, spool_dir=tmp_path / "spool", connect_timeout=1, max_backoff=0.2
        )
        assert tally.flush(30)
        outage.stall()
        record(tally, 0, 30)
        with caplog.at_level("WARNING", logger="llmtally"):
            assert tally.flush(timeout=2.5) is False
        message = _warning(caplog, "llmtally: flush timed out")
        outage.restore()
        assert tally.flush(30)
        tally.close(5)
    assert "30 events pending (30 in the journal" in message
    assert "store writes are failing since " in message and "last error: " in message
    assert count(pg_url) == 30
