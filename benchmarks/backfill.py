"""(g) The write path with rollups: backfill (``occurred_at`` over 30 days) vs live vs raw driver.

End to end: ``record_call`` → queue → writer (pricing, rows) → store (events and every
derived table), unpaced, from the first call until ``flush()`` returns. Three figures per
engine, measured in the same run, interleaved over ``rounds`` rounds (best of each kept,
as other processes share the machine):

* **backfill**: the events' ``occurred_at`` spread uniformly over the last 30 days
  (imports, late OTLP/PostHog batches): every batch touches hundreds of rollup buckets;
* **live**: the same events, all at "now";
* **raw**: the rows the pipeline writes for the live events, inserted by the driver alone
  into a migrated ``events`` table (no rollups): sqlite3 ``executemany`` of single-row
  ``INSERT OR IGNORE`` per 1,000-row transaction, psycopg ``COPY`` on PostgreSQL.

Two workloads: **uniform** (one model, feature, actor and session: the call of
``benchmarks/throughput.py``, the shape of the issue's baseline) and **varied** (3 models,
4 features, 300 actors, 3,000 sessions: every derived table gets many more keys).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import llmtally
from benchmarks._common import console, postgres_admin_url, scratch_database, table
from benchmarks.throughput import migrated, raw_copy, raw_sqlite
from llmtally.capture.build import build
from llmtally.capture.pricing import PriceBook
from llmtally.capture.redact import Redactor
from llmtally.pipeline.process import Processor
from llmtally.store.base import open_store

SPREAD_S = 30 * 86_400.0


def calls(n: int, *, spread: bool, varied: bool, seed: int = 7) -> list[dict[str, Any]]:
    """``record_call`` keyword arguments for ``n`` events (``occurred_at`` only if spread).

    ``varied``: 3 models, 4 features, 300 actors, 3,000 sessions; otherwise one of each
    (the shape of ``benchmarks/throughput.py``'s call).
    """
    rnd = random.Random(seed)
    now = time.time()
    out = []
    for i in range(n):
        pick = i if varied else 0
        call: dict[str, Any] = {
            "model": ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest")[pick % 3],
            "provider": ("openai", "openai", "anthropic")[pick % 3],
            "feature": ("chat", "tldr", "search", "agent")[pick % 4],
            "actor": f"U{rnd.randrange(300) if varied else 1}",
            "session_id": f"s{rnd.randrange(3000) if varied else 1}",
            "status": "error" if i % 50 == 0 else "success",
            "input_tokens": 200 + i % 2000,
            "output_tokens": 50 + i % 400,
            "latency_ms": 100.0 + rnd.random() * 3000,
        }
        if spread:
            call["occurred_at"] = now - rnd.random() * SPREAD_S
        out.append(call)
    return out


def _rows(url: str, n: int) -> list[tuple[Any, ...]]:
    """The exact rows the pipeline writes for the live events, built outside the timing."""
    store = open_store(url)
    processor = Processor(
        prices=PriceBook(), redactor=Redactor(), capture_content=False, ts=store.ts
    )
    events = [
        build(dict(c), "llm_call", "default", True) for c in calls(n, spread=False, varied=True)
    ]
    rows = processor.batch(events).events
    store.close()
    return rows


def end_to_end(url: str, spool: Path, work: list[dict[str, Any]]) -> float:
    """Events/s from the first ``record_call`` until ``flush()`` returned."""
    tally = llmtally.Tally(url, spool_dir=spool, queue_size=len(work) + 10)
    assert tally.flush(60), "store not ready"
    record = tally.record_call
    start = time.perf_counter()
    for call in work:
        record(**call)
    assert tally.flush(900), "pipeline did not drain"
    rate = len(work) / (time.perf_counter() - start)
    written = tally.stats()["written"]
    tally.close(60)
    assert written == len(work), f"wrote {written} of {len(work)}"
    return rate


def _rounds(
    rounds: int,
    raw: Callable[[], float],
    pipeline: Callable[[str, list[dict[str, Any]]], float],
    live: list[dict[str, Any]],
    backfill: list[dict[str, Any]],
) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"raw": [], "live": [], "backfill": []}
    for r in range(rounds):
        got["raw"].append(raw())
        got["live"].append(pipeline(f"live{r}", live))
        got["backfill"].append(pipeline(f"backfill{r}", backfill))
    return got


def _report(engine: str, workload: str, raw_label: str, got: dict[str, list[float]]) -> list[Any]:
    raw, live, back = (max(got[k]) for k in ("raw", "live", "backfill"))
    return [
        engine,
        workload,
        f"{raw:,.0f} ({raw_label})",
        f"{live:,.0f}",
        f"{live / raw:.0%}",
        f"{back:,.0f}",
        f"{back / raw:.0%}",
        " / ".join(f"{v:,.0f}" for v in got["backfill"]),
    ]


def run(n: int, rounds: int = 3) -> dict[str, Any]:
    """Measure and print; return the figures."""
    results: dict[str, Any] = {}
    out = []
    admin = postgres_admin_url()
    for workload in ("uniform", "varied"):
        varied = workload == "varied"
        live, backfill = calls(n, spread=False, varied=varied), calls(n, spread=True, varied=varied)
        with tempfile.TemporaryDirectory() as tmp:
            raw_path = Path(tmp) / "raw.db"
            rows = _rows(migrated(f"sqlite:///{raw_path}"), n)

            def sqlite_pipeline(name: str, work: list[dict[str, Any]], tmp: str = tmp) -> float:
                url = migrated(f"sqlite:///{Path(tmp) / name}.db")
                return end_to_end(url, Path(tmp) / f"spool-{name}", work)

            got = _rounds(rounds, partial(raw_sqlite, str(raw_path), rows), sqlite_pipeline,
                          live, backfill)  # fmt: skip
        results[f"sqlite_{workload}"] = got
        out.append(_report("SQLite", workload, "executemany", got))
        if admin is None:
            console.print("PostgreSQL: no server answers; set LLMTALLY_BENCH_POSTGRES_URL")
            continue
        with scratch_database(admin) as raw_db, tempfile.TemporaryDirectory() as tmp:
            pg_rows = _rows(migrated(raw_db), n)

            def pg_pipeline(name: str, work: list[dict[str, Any]], tmp: str = tmp) -> float:
                assert admin is not None
                with scratch_database(admin) as url:
                    return end_to_end(migrated(url), Path(tmp) / f"spool-{name}", work)

            got = _rounds(rounds, partial(raw_copy, raw_db, pg_rows), pg_pipeline, live, backfill)
        results[f"postgresql_{workload}"] = got
        out.append(_report("PostgreSQL", workload, "COPY", got))
    table(
        f"(g) events/s end to end (record_call → pipeline → store with rollups), {n:,} events, "
        f"best of {rounds}: live = all at now, backfill = occurred_at over 30 days, "
        "vs the raw driver inserting the same rows without rollups",
        ["store", "workload", "raw rows/s", "live ev/s", "vs raw", "backfill ev/s", "vs raw",
         "backfill runs"],
        out,
    )  # fmt: skip
    return results


if __name__ == "__main__":
    import sys

    run(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
