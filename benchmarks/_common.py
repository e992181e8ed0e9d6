"""Shared benchmark helpers: timing, PostgreSQL scratch databases, result tables."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

console = Console()

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
CALL = {
    "model": "gpt-4o",
    "provider": "openai",
    "feature": "chat",
    "actor": "U1",
    "session_id": "s1",
    "input_tokens": 1200,
    "output_tokens": 300,
    "latency_ms": 812.5,
}


def percentiles_ns(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """Median and p99 wall time of one call of ``fn``, in nanoseconds."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        start = clock()
        fn()
        samples.append(clock() - start)
    overhead = _timer_overhead()
    samples.sort()
    return samples[n // 2] - overhead, samples[int(n * 0.99)] - overhead


def _timer_overhead() -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        start = clock()
        samples.append(clock() - start)
    samples.sort()
    return samples[len(samples) // 2]


def postgres_admin_url() -> str | None:
    """The server benchmarks may use, or None when none answers."""
    url = os.environ.get("LLMTALLY_BENCH_POSTGRES_URL", DEFAULT_PG)
    try:
        with psycopg.connect(url, connect_timeout=2):
            return url
    except psycopg.Error:
        return None


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"llmtally_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a result table."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        out.add_row(*[str(cell) for cell in row])
    console.print(out)
