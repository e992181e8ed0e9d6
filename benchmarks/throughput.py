"""(b) Sustained events/s from record_call into the store vs the raw driver on the same rows."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

import llmtally
from benchmarks._common import CALL, console, postgres_admin_url, scratch_database, table
from llmtally.capture.build import build
from llmtally.capture.event import COLUMN_NAMES
from llmtally.capture.pricing import PriceBook
from llmtally.capture.redact import Redactor
from llmtally.pipeline.process import Processor
from llmtally.store.base import open_store

BATCH = 1_000


def _events(n: int) -> list[dict[str, Any]]:
    return [build({**CALL, "input_tokens": i}, "llm_call", "default", True) for i in range(n)]


def _rows(url: str, n: int) -> list[tuple[Any, ...]]:
    """The exact rows the pipeline writes for ``n`` events, built outside the timing."""
    store = open_store(url)
    processor = Processor(
        prices=PriceBook(), redactor=Redactor(), capture_content=False, ts=store.ts
    )
    rows = processor.batch(_events(n)).events
    store.close()
    return rows


def _pipeline(url: str, spool: Path, n: int) -> float:
    tally = llmtally.Tally(url, spool_dir=spool)
    assert tally.flush(60), "store not ready"
    start = time.perf_counter()
    record = tally.record_call
    for i in range(n):
        record(**{**CALL, "input_tokens": i})
    assert tally.flush(900), "pipeline did not drain"
    elapsed = time.perf_counter() - start
    written = tally.stats()["written"]
    tally.close(60)
    assert written == n, f"wrote {written} of {n}"
    return n / elapsed


def _raw_sqlite(path: str, rows: list[tuple[Any, ...]]) -> float:
    sql = "INSERT OR IGNORE INTO events ({}) VALUES ({})".format(
        ", ".join(COLUMN_NAMES), ", ".join("?" * len(COLUMN_NAMES))
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def _raw_copy(url: str, rows: list[tuple[Any, ...]]) -> float:
    copy_sql = "COPY events ({}) FROM STDIN".format(", ".join(COLUMN_NAMES))
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows[i : i + BATCH]:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - start
    return len(rows) / elapsed


def _migrated(url: str) -> str:
    store = open_store(url)
    store.migrate()
    store.close()
    return url


def run(n: int) -> dict[str, Any]:
    """Measure and print; return the figures."""
    results: dict[str, Any] = {}
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.db"
        raw_url = _migrated(f"sqlite:///{raw_path}")
        raw = _raw_sqlite(str(raw_path), _rows(raw_url, n))
        ours = _pipeline(_migrated(f"sqlite:///{Path(tmp) / 'pipe.db'}"), Path(tmp) / "s1", n)
        results["sqlite"] = {"pipeline_events_per_s": ours, "raw_events_per_s": raw}
        rows_out.append(
            ["SQLite", f"{ours:,.0f}", f"{raw:,.0f}", "sqlite3 executemany", f"{ours / raw:.0%}"]
        )
    admin = postgres_admin_url()
    if admin is None:
        console.print("PostgreSQL: no server answers; set LLMTALLY_BENCH_POSTGRES_URL")
    else:
        with scratch_database(admin) as raw_db, scratch_database(admin) as pipe_db:
            raw = _raw_copy(_migrated(raw_db), _rows(raw_db, n))
            with tempfile.TemporaryDirectory() as tmp:
                ours = _pipeline(_migrated(pipe_db), Path(tmp) / "s2", n)
        results["postgresql"] = {"pipeline_events_per_s": ours, "raw_events_per_s": raw}
        rows_out.append(
            ["PostgreSQL", f"{ours:,.0f}", f"{raw:,.0f}", "psycopg COPY", f"{ours / raw:.0%}"]
        )
    table(
        f"(b) sustained throughput, {n:,} events: record_call → store, vs the raw driver",
        ["store", "pipeline ev/s", "raw ev/s", "raw path", "pipeline / raw"],
        rows_out,
    )
    return results
