"""Fault tests: outages, overflow, kill -9, poisoned events, on real SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import llmtally
from dbutil import count, engine
from llmtally.store.base import open_store
from tcpproxy import pg_proxy


def migrated(url: str) -> str:
    store = open_store(url)
    store.migrate()
    store.close()
    return url


@contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    """Hold SQLite's write lock: every writer waits (a stalled store)."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def record(tally: llmtally.Tally, start: int, stop: int) -> None:
    for i in range(start, stop):
        tally.record_call(
            model="gpt-4o-mini", provider="openai", input_tokens=i, output_tokens=1, feature="f"
        )


@pytest.mark.postgres
def test_postgres_outage_in_the_middle_of_20000_events(pg_url: str, tmp_path: Path) -> None:
    migrated(pg_url)
    proxy, proxied = pg_proxy(pg_url)
    tally = llmtally.Tally(
        proxied, spool_dir=tmp_path / "spool", connect_timeout=1, max_backoff=0.5,
        queue_size=2_000, batch_size=500,
    )  # fmt: skip
    try:
        record(tally, 0, 7_000)
        assert tally.flush(30)
        proxy.cut()  # the database disappears
        record(tally, 7_000, 14_000)
        time.sleep(3)
        assert tally.flush(timeout=0.5) is False
        down = tally.stats()
        proxy.restore()
        record(tally, 14_000, 20_000)
        assert tally.flush(timeout=60)
        stats = tally.stats()
    finally:
        tally.close(10)
        proxy.close()
    assert down["retries"] > 0 and down["last_error"]
    assert down["circuit_opens"] >= 1 and down["circuit_open"] is True
    assert stats["circuit_open"] is False  # closed again once writes succeed
    assert count(pg_url) == 20_000
    eng = engine(pg_url)
    with eng.connect() as conn:
        from sqlalchemy import text

        distinct = conn.execute(text("SELECT count(DISTINCT input_tokens) FROM events")).scalar()
    eng.dispose()
    assert distinct == 20_000  # every event once, none twice
    assert stats["written"] == 20_000 and stats["rejected"] == 0


def test_sqlite_stalled_for_seconds_then_everything_lands(sqlite_url: str, tmp_path: Path) -> None:
    migrated(sqlite_url)
    with llmtally.Tally(sqlite_url, spool_dir=tmp_path / "spool", queue_size=1_000) as tally:
        record(tally, 0, 5_000)
        with sqlite_write_lock(sqlite_url):
            record(tally, 5_000, 15_000)
            time.sleep(2)
            assert tally.flush(timeout=0.3) is False
        record(tally, 15_000, 20_000)
        assert tally.flush(timeout=60)
    assert count(sqlite_url) == 20_000
    assert count(sqlite_url, "input_tokens >= 5000 AND input_tokens < 15000") == 10_000


def test_overflow_at_ten_times_capacity_loses_nothing_and_memory_stays_bounded(
    sqlite_url: str, tmp_path: Path
) -> None:
    migrated(sqlite_url)
    capacity, n = 1_000, 100_000
    tally = llmtally.Tally(sqlite_url, spool_dir=tmp_path / "spool", queue_size=capacity)
    try:
        with sqlite_write_lock(sqlite_url):
            tracemalloc.start()
            record(tally, 0, n)  # 100x the queue while the store accepts nothing
            time.sleep(0.5)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            during = tally.stats()
        assert tally.flush(timeout=120)
        stats = tally.stats()
    finally:
        tally.close(10)
    assert count(sqlite_url) == n
    assert during["spooled"] + during["overflowed"] > 0  # the backlog went to disk
    # holding 100k events in memory takes well over 100 MB; the pipeline keeps ~1 batch
    assert peak < 40 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
    assert stats["written"] == n and stats["dropped"] == 0


CHILD = """
import sys, time, llmtally
tally = llmtally.Tally({url!r}, spool_dir={spool!r})
for i in range({n}):
    tally.record_call(model="gpt-4o", input_tokens=i)
print("recorded", flush=True)
time.sleep(60)
"""


def test_kill_9_is_recovered_on_restart(sqlite_url: str, tmp_path: Path) -> None:
    migrated(sqlite_url)
    spool = str(tmp_path / "spool")
    n = 5_000
    with sqlite_write_lock(sqlite_url):  # the child cannot commit anything
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(url=sqlite_url, spool=spool, n=n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "recorded"
        time.sleep(1.0)  # the documented interval (spool_interval 0.2 s) has passed
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert count(sqlite_url) == 0
    assert any(Path(spool).glob("*.jsonl"))
    with llmtally.Tally(sqlite_url, spool_dir=spool) as tally:  # the next start recovers
        assert tally.flush(timeout=60)
        stats = tally.stats()
    assert count(sqlite_url) == n
    assert stats["replayed"] == n
    assert not list(Path(spool).glob("*.jsonl"))  # recovered segments are removed


def test_exit_while_the_store_is_down_keeps_events_for_the_next_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    migrated(sqlite_url)
    spool = str(tmp_path / "spool")
    script = textwrap.dedent(
        f"""
        import llmtally
        tally = llmtally.Tally({sqlite_url!r}, spool_dir={spool!r}, exit_timeout=0.5)
        for i in range(1000):
            tally.record_call(model="gpt-4o", input_tokens=i)
        """
    )
    with sqlite_write_lock(sqlite_url):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        exit_took = time.monotonic() - started
    assert exit_took < 20  # a bounded exit flush, not a hang
    assert count(sqlite_url) == 0
    with llmtally.Tally(sqlite_url, spool_dir=spool) as tally:
        assert tally.flush(timeout=30)
    assert count(sqlite_url) == 1000


POISON_SQL = {
    "sqlite": [
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.feature = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.feature = 'poison' THEN RAISE EXCEPTION 'poisoned event' "
        "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()",
    ],
}


def test_poisoned_events_do_not_block_the_others(db_url: str, tmp_path: Path) -> None:
    migrated(db_url)
    eng = engine(db_url)
    from sqlalchemy import text

    with eng.begin() as conn:
        for statement in POISON_SQL[eng.dialect.name]:
            conn.execute(text(statement))
    eng.dispose()
    with llmtally.Tally(db_url, spool_dir=tmp_path / "spool") as tally:
        for i in range(300):
            feature = "poison" if i % 100 == 50 else "ok"
            tally.record_call(model="gpt-4o", input_tokens=i, feature=feature)
        tally.record_call(model="gpt-4o", feature="lone \ud800 surrogate?")  # not encodable
        assert tally.flush(timeout=30)
        stats = tally.stats()
    assert count(db_url, "feature = 'ok'") == 297
    assert count(db_url, "feature = 'poison'") == 0
    assert stats["rejected"] == 3
    # the unencodable one is repaired, not lost
    assert count(db_url, "feature = :f", f="lone \ufffd surrogate?") == 1
