"""The journal under faults: unjournalable events, failed and torn writes, a full spool,
an unwritable spool, poisoned spool lines, dead letters — on real SQLite and PostgreSQL.

Disk faults are injected at the OS boundary: ``os.write`` fails (after writing part of
the data, as a filling disk does) for files in the test's spool directory only.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import llmtally
from dbutil import count, rows
from llmtally.cli.main import cli
from llmtally.pipeline import deadletter
from llmtally.store.base import open_store
from tcpproxy import pg_proxy


def migrated(url: str) -> str:
    store = open_store(url)
    store.migrate()
    store.close()
    return url


class Outage:
    """A URL for the Tally, and switches that make its store unwritable and writable again.

    SQLite: another connection holds the write lock. PostgreSQL: the TCP path is cut.
    """

    def __init__(self, url: str) -> None:
        migrated(url)
        self._conn: sqlite3.Connection | None = None
        self._proxy = None
        if url.startswith("sqlite"):
            self.url = url
            self._conn = sqlite3.connect(
                url.removeprefix("sqlite:///"), isolation_level=None, timeout=30
            )
        else:
            self._proxy, self.url = pg_proxy(url)

    def stall(self) -> None:
        if self._conn is not None:
            self._conn.execute("BEGIN EXCLUSIVE")
        else:
            self._proxy.cut()

    def restore(self) -> None:
        if self._conn is not None:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        else:
            self._proxy.restore()

    def close(self) -> None:
        self.restore()
        if self._conn is not None:
            self._conn.close()
        else:
            self._proxy.close()


@contextmanager
def store_down(url: str) -> Iterator[Outage]:
    outage = Outage(url)
    try:
        yield outage
    finally:
        outage.close()


class DiskFault:
    """Makes ``os.write`` to files under ``directory`` fail with ``error`` while armed.

    With ``partial`` the first failing call writes half its data before failing, like a
    disk that fills up in the middle of a write.
    """

    def __init__(self, directory: Path, error: int = errno.ENOSPC, partial: bool = True) -> None:
        self.directory = str(directory.resolve())
        self.error = error
        self.partial = partial
        self.armed = False
        self.failures = 0
        self._real = os.write

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.armed and self._ours(fd):
            self.failures += 1
            if self.partial and len(data) > 1 and self.failures == 1:
                return self._real(fd, bytes(data)[: len(data) // 2])
            raise OSError(self.error, os.strerror(self.error))
        return self._real(fd, data)

    def _ours(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.directory)
        except OSError:
            return False


@pytest.fixture
def disk_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DiskFault:
    fault = DiskFault(tmp_path / "spool")
    monkeypatch.setattr(os, "write", fault)
    return fault


def record(tally: llmtally.Tally, start: int, stop: int, **extra: object) -> None:
    for i in range(start, stop):
        tally.record_call(model="gpt-4o-mini", provider="openai", input_tokens=i, **extra)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def spool_files(spool: Path) -> list[Path]:
    return [p for p in spool.glob("*.jsonl") if not p.name.startswith("dead-")]


def stalled_tally(outage: Outage, spool: Path, **settings: Any) -> llmtally.Tally:
    """A Tally on the outage's store, ready (migrated, connected), then the store stalls."""
    tally = llmtally.Tally(
        outage.url, spool_dir=spool, queue_size=500, batch_size=200, connect_timeout=1,
        max_backoff=0.5, **settings,
    )  # fmt: skip
    assert tally.flush(30)
    outage.stall()
    return tally


def test_one_unjournalable_event_loses_nothing_behind_it(db_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with store_down(db_url) as outage:
        tally = stalled_tally(outage, spool)
        record(tally, 0, 2_000)  # beyond the in-memory batches: spilled to the journal
        tally.record_call(model="gpt-4o", feature="lone \ud800 surrogate", input_tokens=2_000)
        record(tally, 2_001, 5_000)
        assert wait_for(lambda: tally.stats()["spooled"] > 0)
        outage.restore()
        assert tally.flush(60), tally.stats()
        stats = tally.stats()
        tally.close(10)
    assert count(db_url) == 5_000
    assert count(db_url, "feature = :f", f="lone \ufffd surrogate") == 1
    assert stats["dropped"] == 0 and stats["rejected"] == 0
    assert not spool_files(spool)  # committed segments are gone, none left behind


def test_failed_and_torn_journal_writes_lose_nothing(
    db_url: str, tmp_path: Path, disk_fault: DiskFault
) -> None:
    spool = tmp_path / "spool"
    with store_down(db_url) as outage:
        tally = stalled_tally(outage, spool)
        record(tally, 0, 1_000)
        disk_fault.armed = True  # the disk fills up half way through a journal write
        record(tally, 1_000, 2_500)
        assert wait_for(lambda: tally.stats()["journal_error"] is not None)
        failing = tally.stats()
        disk_fault.armed = False  # space again
        record(tally, 2_500, 4_000)
        assert wait_for(lambda: tally.stats()["journal_error"] is None)
        outage.restore()
        assert tally.flush(60), tally.stats()
        stats = tally.stats()
        tally.close(10)
    assert disk_fault.failures >= 1
    assert "No space left" in failing["journal_error"]
    assert count(db_url) == 4_000
    assert (
        len({r["input_tokens"] for r in rows(db_url, "SELECT input_tokens FROM events")}) == 4_000
    )
    assert stats["dropped"] == 0 and stats["rejected"] == 0
    assert not spool_files(spool)


def test_spool_max_bytes_is_enforced_and_what_it_drops_is_counted(
    db_url: str, tmp_path: Path
) -> None:
    spool, cap, n = tmp_path / "spool", 150_000, 30_000
    with store_down(db_url) as outage:
        tally = llmtally.Tally(
            outage.url, spool_dir=spool, queue_size=1_000, batch_size=250, spool_max_bytes=cap,
            connect_timeout=1, max_backoff=0.5,
        )  # fmt: skip
        assert tally.flush(30)
        outage.stall()
        tracemalloc.start()
        largest = 0
        for start in range(0, n, 1_000):
            record(tally, start, start + 1_000)
            largest = max(largest, sum(p.stat().st_size for p in spool_files(spool)))
        time.sleep(0.5)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        during = tally.stats()
        outage.restore()
        assert tally.flush(60), tally.stats()
        stats = tally.stats()
        tally.close(10)
    assert largest <= cap and during["journal_bytes"] <= cap
    assert "spool_max_bytes" in during["journal_error"]
    assert stats["dropped"] > 0
    # every event is either stored or counted as dropped: nothing vanished silently
    assert count(db_url) + stats["dropped"] == n
    assert peak < 40 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"


def test_unwritable_spool_keeps_memory_bounded_and_counts_the_loss(
    sqlite_url: str, tmp_path: Path, disk_fault: DiskFault
) -> None:
    spool, n = tmp_path / "spool", 60_000
    disk_fault.error, disk_fault.partial = errno.EIO, False
    with store_down(sqlite_url) as outage:
        tally = llmtally.Tally(outage.url, spool_dir=spool, queue_size=1_000, batch_size=250)
        assert tally.flush(30)
        outage.stall()
        disk_fault.armed = True
        tracemalloc.start()
        record(tally, 0, n)
        time.sleep(1.0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        during = tally.stats()
        disk_fault.armed = False
        outage.restore()
        assert tally.flush(60), tally.stats()
        stats = tally.stats()
        tally.close(10)
    assert "Input/output error" in during["journal_error"]
    assert during["pending_in_memory"] <= 21 * 250  # 4 + 16 batches, plus one being written
    assert peak < 40 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
    assert stats["dropped"] > 0
    assert count(sqlite_url) + stats["dropped"] == n


def test_a_poisoned_spool_is_dead_lettered_and_the_writer_goes_on(
    db_url: str, tmp_path: Path
) -> None:
    """A journal left by a dead process holds values no store takes (an older llmtally
    accepted them): replaying it must not stall this process, and the refused ones are
    kept with the reason."""
    migrated(db_url)
    spool = tmp_path / "spool"
    spool.mkdir()
    lines = []
    with llmtally.Tally(None) as disabled:  # ids and timestamps as the pipeline makes them
        ids = [disabled.record_call(model="x") for _ in range(5)]
    now = time.time()
    for i, event_id in enumerate(ids):
        event = {
            "event_id": event_id, "occurred_at": now, "project": "default", "kind": "llm_call",
            "model": "gpt-4o", "status": "success", "schema_version": 1, "input_tokens": i,
        }  # fmt: skip
        if i == 2:
            event["latency_ms"] = 2**63  # too large for SQLite's integers and a rollup sum
            event["input_tokens"] = 2**63  # out of the int64 range of both stores
        lines.append(orjson.dumps(event) + b"\n")
    (spool / "1-deadbeef-000001.jsonl").write_bytes(b"".join(lines))
    with llmtally.Tally(db_url, spool_dir=spool) as tally:
        assert tally.flush(30)
        tally.record_call(model="gpt-4o", feature="after")
        assert tally.flush(30)
        stats = tally.stats()
    assert count(db_url) == 5  # 4 replayed + the one recorded after
    assert count(db_url, "feature = 'after'") == 1
    assert stats["rejected"] == 1 and stats["dead_letters"] == 1
    (letter,) = list(deadletter.read(spool))
    assert letter["event"]["event_id"] == ids[2]
    assert letter["reason"]
    assert not spool_files(spool)  # the next process has nothing left to replay
    result = CliRunner().invoke(
        cli, ["status", "--db", db_url, "--spool-dir", str(spool), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["dead_letters"] == 1


def test_flush_says_what_is_pending_and_why_and_errors_clear_on_recovery(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with store_down(db_url) as outage:
        tally = llmtally.Tally(
            outage.url, spool_dir=tmp_path / "spool", max_backoff=0.2, connect_timeout=1
        )
        assert tally.flush(30)
        outage.stall()
        record(tally, 0, 100)
        with caplog.at_level("WARNING", logger="llmtally"):
            assert tally.flush(timeout=2.5) is False
        down = tally.stats()
        outage.restore()
        assert tally.flush(30)
        up = tally.stats()
        tally.close(5)
    message = next(r.getMessage() for r in caplog.records if "flush timed out" in r.getMessage())
    assert "100 events pending (100 in the journal" in message
    if db_url.startswith("sqlite"):  # a locked SQLite file makes writers wait, not fail
        assert "in progress for" in message and "locked" in message
    else:
        assert "store writes are failing" in message
        assert down["last_error"] and down["last_error_at"]
    assert up["last_error"] is None and up["last_error_at"] is None
    assert count(db_url) == 100
