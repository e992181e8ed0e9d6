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
from llmtally.capture.pricing import PriceBook
from llmtally.capture.redact import Redactor
from llmtally.event import COLUMN_NAMES
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


RATES = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 100_000, 120_000)


def _paced(tally: llmtally.Tally, rate: int, seconds: float, offset: int) -> tuple[bool, int]:
    """Record at ``rate`` events/s for ``seconds``; whether the pipeline kept up."""
    n = int(rate * seconds)
    spooled = tally.stats()["spooled"]
    record = tally.record_call
    start = time.perf_counter()
    for i in range(n):
        record(**{**CALL, "input_tokens": offset + i})
        if i % 100 == 0:
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    produced = time.perf_counter()
    assert tally.flush(900), "pipeline did not drain"
    tail = time.perf_counter() - produced
    # kept up: nothing had to be read back from disk and the queue drained at once
    return tally.stats()["spooled"] == spooled and tail < 0.25, n


def _pipeline(url: str, spool: Path, n: int) -> tuple[float, float]:
    """(highest sustained rate, unpaced burst rate) in events/s, end to end into the store."""
    tally = llmtally.Tally(url, spool_dir=spool)
    assert tally.flush(60), "store not ready"
    offset, sustained = 0, 0.0
    for rate in RATES:
        kept_up, produced = _paced(tally, rate, 1.5, offset)
        offset += produced
        if not kept_up:
            break
        sustained = rate
    start = time.perf_counter()
    for i in range(n):
        tally.record_call(**{**CALL, "input_tokens": offset + i})
    assert tally.flush(900), "pipeline did not drain"
    burst = n / (time.perf_counter() - start)
    written = tally.stats()["written"]
    tally.close(60)
    assert written == offset + n, f"wrote {written} of {offset + n}"
    return sustained, burst


def raw_sqlite(path: str, rows: list[tuple[Any, ...]], per_statement: int = 1) -> float:
    """Rows/s of sqlite3 ``executemany`` (``per_statement`` rows per INSERT) into events."""
    row = "({})".format(", ".join("?" * len(COLUMN_NAMES)))
    sql = "INSERT OR IGNORE INTO events ({}) VALUES {}".format(
        ", ".join(COLUMN_NAMES), ", ".join([row] * per_statement)
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("DELETE FROM events")
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        chunk = rows[i : i + BATCH]
        params = [
            [v for r in chunk[j : j + per_statement] for v in r]
            for j in range(0, len(chunk), per_statement)
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, params)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def raw_copy(url: str, rows: list[tuple[Any, ...]]) -> float:
    """Rows/s of psycopg ``COPY`` into the (emptied) migrated events table."""
    copy_sql = "COPY events ({}) FROM STDIN".format(", ".join(COLUMN_NAMES))
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE events")
        conn.commit()
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows[i : i + BATCH]:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - start
    return len(rows) / elapsed


def migrated(url: str) -> str:
    """``url``, its schema migrated to head."""
    store = open_store(url)
    store.migrate()
    store.close()
    return url


def run(n: int) -> dict[str, Any]:
    """Measure and print; return the figures."""
    results: dict[str, Any] = {}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.db"
        rows = _rows(migrated(f"sqlite:///{raw_path}"), n)
        raw = raw_sqlite(str(raw_path), rows)
        raw_multi = raw_sqlite(str(raw_path), rows, per_statement=500)
        sustained, burst = _pipeline(
            migrated(f"sqlite:///{Path(tmp) / 'pipe.db'}"), Path(tmp) / "s1", n
        )
    results["sqlite"] = {
        "sustained_events_per_s": sustained,
        "burst_events_per_s": burst,
        "raw_executemany_events_per_s": raw,
        "raw_multirow_events_per_s": raw_multi,
    }
    out.append(
        [
            "SQLite",
            "sqlite3 executemany",
            f"{raw:,.0f}",
            f"{sustained:,.0f}",
            f"{sustained / raw:.0%}",
            f"{burst:,.0f}",
            f"{burst / raw:.0%}",
        ]
    )
    out.append(
        [
            "",
            "500-row INSERTs",
            f"{raw_multi:,.0f}",
            "",
            f"{sustained / raw_multi:.0%}",
            "",
            f"{burst / raw_multi:.0%}",
        ]
    )
    admin = postgres_admin_url()
    if admin is None:
        console.print("PostgreSQL: no server answers; set LLMTALLY_BENCH_POSTGRES_URL")
    else:
        with scratch_database(admin) as raw_db, scratch_database(admin) as pipe_db:
            raw = raw_copy(migrated(raw_db), _rows(raw_db, n))
            with tempfile.TemporaryDirectory() as tmp:
                sustained, burst = _pipeline(migrated(pipe_db), Path(tmp) / "s2", n)
        results["postgresql"] = {
            "sustained_events_per_s": sustained,
            "burst_events_per_s": burst,
            "raw_copy_events_per_s": raw,
        }
        out.append(
            [
                "PostgreSQL",
                "psycopg COPY",
                f"{raw:,.0f}",
                f"{sustained:,.0f}",
                f"{sustained / raw:.0%}",
                f"{burst:,.0f}",
                f"{burst / raw:.0%}",
            ]
        )
    table(
        "(b) events/s from record_call into the store (same process, same rows) vs the raw "
        f"driver; sustained = highest paced rate with no backlog; burst = {n:,} unpaced",
        ["store", "raw path", "raw ev/s", "sustained", "vs raw", "burst", "vs raw"],
        out,
    )
    return results
