"""The first-version pipeline: many writers, degraded mode, bounded flush/close, exit flush."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import llmtally
import pgserver
from dbutil import count


def _writer_process(url: str, worker: int, n: int) -> None:
    tally = llmtally.Tally(url, project="multi", batch_size=200, flush_interval=0.05)
    for i in range(n):
        tally.record_call(
            model="gpt-4o-mini",
            provider="openai",
            input_tokens=i,
            output_tokens=1,
            feature=f"w{worker}",
        )
    assert tally.close(timeout=60)


def test_four_processes_writing_one_sqlite_file_lose_nothing(sqlite_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 5_000
    procs = [ctx.Process(target=_writer_process, args=(sqlite_url, w, n)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert count(sqlite_url) == 4 * n
    for w in range(4):
        assert count(sqlite_url, "feature = :f", f=f"w{w}") == n


def test_disabled_tally_is_a_cheap_no_op() -> None:
    tally = llmtally.Tally()  # no database configured
    event_id = tally.record_call(model="gpt-4o", input_tokens=5)
    with tally.track(model="gpt-4o") as call:
        call.record_usage(input_tokens=1, output_tokens=1)
    assert isinstance(event_id, str) and len(event_id) == 36
    assert tally.flush(0.1) and tally.close(0.1)
    assert tally.stats()["enabled"] is False
    with pytest.raises(llmtally.ConfigError, match="database_url"):
        _ = tally.reports


def test_unreachable_store_never_blocks_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmtally"):
        tally = llmtally.Tally("postgresql://nobody@127.0.0.1:9/none", connect_timeout=1)
        started = time.perf_counter()
        for _ in range(100):
            tally.record_call(model="gpt-4o", input_tokens=1)
        assert time.perf_counter() - started < 0.5  # only queue puts on the caller's thread
        assert tally.flush(timeout=0.3) is False
        assert tally.close(timeout=0.3) is False
    unavailable = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert tally.stats()["written"] == 0


@pytest.mark.postgres
def test_writer_recovers_when_the_database_appears(pg_admin_url: str) -> None:
    url = pgserver.create_database(pg_admin_url)
    pgserver.drop_database(pg_admin_url, url)  # a valid server, a database not there yet
    dbname = url.rsplit("/", 1)[1].split("?")[0]
    tally = llmtally.Tally(url, connect_timeout=1)
    try:
        for i in range(10):
            tally.record_call(model="gpt-4o", input_tokens=i)
        assert tally.flush(timeout=0.5) is False
        import psycopg

        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        assert tally.flush(timeout=30) is True
        assert count(url) == 10
    finally:
        tally.close(5)
        pgserver.drop_database(pg_admin_url, url)


def test_events_are_flushed_at_interpreter_exit(sqlite_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import llmtally
        tally = llmtally.Tally({sqlite_url!r})
        for i in range(500):
            tally.record_call(model="gpt-4o", input_tokens=i)
        # no flush, no close: the exit hook must write them
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert count(sqlite_url) == 500


def test_retention_days_applies_at_start(sqlite_url: str) -> None:
    now = datetime.now(UTC)
    with llmtally.Tally(sqlite_url) as tally:
        tally.record_call(model="gpt-4o", occurred_at=now - timedelta(days=200))
        tally.record_call(model="gpt-4o", occurred_at=now - timedelta(days=10))
        assert tally.flush(10)
    with llmtally.Tally(sqlite_url, retention_days=180) as tally:
        tally.record_call(model="gpt-4o")
        assert tally.flush(10)
    assert count(sqlite_url) == 2
    assert count(sqlite_url, "occurred_at < :c", c=str(now - timedelta(days=180))) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_recording_in_a_forked_child(sqlite_url: str) -> None:
    tally = llmtally.Tally(sqlite_url, project="fork")
    tally.record_call(model="gpt-4o", feature="parent")
    assert tally.flush(10)
    pid = os.fork()
    if pid == 0:  # child: a fresh writer thread must start on first use
        code = 0
        try:
            tally.record_call(model="gpt-4o", feature="child")
            code = 0 if tally.flush(10) else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tally.record_call(model="gpt-4o", feature="parent")
    assert tally.close(10)
    assert count(sqlite_url, "feature = 'child'") == 1
    assert count(sqlite_url, "feature = 'parent'") == 2


def test_stats_and_status_show_live_pipeline_counters(sqlite_url: str, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from llmtally.cli.main import cli

    spool = tmp_path / "spool"
    tally = llmtally.Tally(sqlite_url, spool_dir=spool, sample_rate=0.0, sample_kinds=("product",))
    try:
        for i in range(50):
            tally.record_call(model="gpt-4o", input_tokens=i)
            tally.record_event("page_view")  # sampled out entirely
        assert tally.flush(10)
        stats = tally.stats()
        assert stats["written"] == 50 and stats["sampled_out"] == 50 and stats["queued"] == 50
        time.sleep(2.5)  # the writer refreshes its stats file every 2 s
        result = CliRunner().invoke(
            cli, ["status", "--db", sqlite_url, "--spool-dir", str(spool), "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)
        assert row["pipelines"] == 1
        assert row["pipeline_written"] == 50
        assert row["spool_files_awaiting_recovery"] == 0
    finally:
        tally.close(5)
    assert count(sqlite_url) == 50


def test_sampling_keeps_user_facing_calls(sqlite_url: str, tmp_path: Path) -> None:
    with llmtally.Tally(sqlite_url, spool_dir=tmp_path / "s", sample_rate=0.5) as tally:
        for i in range(2000):
            tally.record_call(model="gpt-4o", input_tokens=i)
            tally.record_tool_call("search", latency_ms=1.0)
        assert tally.flush(10)
        sampled = tally.stats()["sampled_out"]
    assert count(sqlite_url, "kind = 'llm_call'") == 2000  # calls are never sampled by default
    kept = count(sqlite_url, "kind = 'tool_call'")
    assert kept + sampled == 2000
    assert 800 < kept < 1200  # ~half, with a wide margin for chance


def test_bad_pipeline_settings_are_config_errors() -> None:
    with pytest.raises(llmtally.ConfigError, match="sample_rate"):
        llmtally.Tally("sqlite:///x.db", sample_rate=1.5)
    with pytest.raises(llmtally.ConfigError, match="sample_kinds"):
        llmtally.Tally("sqlite:///x.db", sample_rate=0.5, sample_kinds=("everything",))
    with pytest.raises(llmtally.ConfigError, match="queue_size"):
        llmtally.Tally("sqlite:///x.db", queue_size=0)


@pytest.mark.parametrize("freeze", [True, False])
def test_gc_freeze_after_the_writer_started(sqlite_url: str, tmp_path: Path, freeze: bool) -> None:
    """What importing and opening the store left is frozen once (or not, when turned off)."""
    import subprocess
    import sys

    script = (
        "import gc, llmtally\n"
        f"t = llmtally.Tally({sqlite_url!r}, spool_dir={str(tmp_path / 's')!r}, "
        f"gc_freeze={freeze})\n"
        "t.record_call(model='gpt-4o'); assert t.flush(30)\n"
        "frozen = gc.get_freeze_count()\n"
        "t2 = llmtally.Tally("
        f"{sqlite_url!r}, spool_dir={str(tmp_path / 's2')!r}, gc_freeze={freeze})\n"
        "t2.record_call(model='gpt-4o'); assert t2.flush(30)\n"
        "print(frozen, gc.get_freeze_count()); t.close(); t2.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    first, second = map(int, out.stdout.split())
    if freeze:
        assert first > 40_000  # the imports, the schema and the price data
        assert second <= first  # once per process (frozen objects can still be freed)
    else:
        assert first == second == 0
    assert count(sqlite_url) == 2
