"""A store that is behind gets its backlog in bigger transactions (issue 10).

Spread-out events (imports, late batches) touch a new rollup bucket with almost every
event; per event, a bigger transaction upserts fewer distinct keys and dirties fewer
pages. The writer merges waiting batches (``pipeline.writer.MERGE_EVENTS``) and the
result must be exactly what one batch at a time would have written.
"""

from __future__ import annotations

import time
from pathlib import Path

import llmtally
from dbutil import count, rows
from llmtally.pipeline.writer import MERGE_EVENTS
from test_faults import migrated, sqlite_write_lock


def _record(tally: llmtally.Tally, n: int, now: float) -> None:
    for i in range(n):
        tally.record_call(
            model="gpt-4o-mini",
            provider="openai",
            feature=f"f{i % 3}",
            input_tokens=10 + i,
            output_tokens=1,
            latency_ms=100.0 + i % 50,
            # spread over 30 days, like an import
            occurred_at=now - (i * 7919 % 2_592_000),
        )


def test_a_backlog_is_written_in_merged_transactions(tmp_path: Path) -> None:
    """6,000 events in batches of 100 wait behind a lock; they land in a few transactions
    of at most MERGE_EVENTS events, every event once, rollups equal to the events."""
    url = migrated(f"sqlite:///{tmp_path / 'b.db'}")
    tally = llmtally.Tally(url, spool_dir=tmp_path / "spool", batch_size=100, queue_size=10_000)
    now = time.time()
    try:
        assert tally.flush(10)
        with sqlite_write_lock(url):
            _record(tally, 6_000, now)
            time.sleep(1.0)  # the spooler cuts every batch while the store is stalled
        assert tally.flush(60)
        stats = tally.stats()
    finally:
        tally.close(10)
    assert stats["written"] == 6_000
    # 60 batches of 100: one may have been in the writer's hands when the lock was taken,
    # the rest fit one merged transaction (one more if the spooler was cutting the last)
    assert MERGE_EVENTS >= 6_000
    assert stats["batches"] <= 3, stats
    assert count(url) == 6_000
    (totals,) = rows(url, "SELECT SUM(calls) AS calls, SUM(input_tokens) AS t FROM rollup_daily")
    assert totals["calls"] == 6_000
    assert totals["t"] == sum(10 + i for i in range(6_000))
