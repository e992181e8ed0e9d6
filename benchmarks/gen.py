"""A month of realistic events, fast, into a migrated SQLite file and PostgreSQL database.

``python benchmarks/gen.py [--events N] [--regenerate]``. Used by ``benchmarks/reports.py``.

The traffic is the demo's model (``llmtally.demo.Traffic``: features, models, people and
agents, sessions, traces, errors and an Anthropic incident, feedback, tool calls and
product events), with ~5k actors (10% agents) and the features spread over 4 projects,
30 days ending at generation time. Its LLM calls are chosen so that the month holds about
N events (the events per call are measured on a sample first).

The model's events become rows the way the writer makes them: ``pipeline.process.
Processor`` (column order, totals, pricing by ``PriceBook`` with the demo's custom
prices, redaction, the actors and model-registry upserts), without the caller-side
validation, which the model's events pass unchanged (``tests/test_demo.py``). That runs
in parallel, one process per core, each a consecutive share of the month's hours
written as time-ordered pickle chunks. The chunks are loaded with the raw drivers
(SQLite 500-row ``INSERT``s, one transaction per 50k rows; PostgreSQL ``COPY``), their
times formatted by the store's own ``ts``; actors and models go through
``Store.write`` (its upserts). The rollups are built by
``llmtally.store.rollups.rebuild(engine)``. Generation, load and rebuild are timed
separately.

Databases are cached under ``benchmarks/results/reports-cache/n<N>/`` (the SQLite file
and ``meta.json``) and in the PostgreSQL database ``llmtally_bench_reports_n<N>``, kept
between runs and keyed by a hash of the generator (this file and ``llmtally.demo``). A
cached database is migrated to head and its rollups rebuilt when the rollup code or
migrations changed since they were built; ``--regenerate`` starts over.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import pickle
import shutil
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import sqlalchemy as sa

from benchmarks._common import console, postgres_admin_url, table
from llmtally.capture.pricing import PriceBook
from llmtally.capture.redact import Redactor
from llmtally.demo import CUSTOM_PRICING, Traffic
from llmtally.event import COLUMN_NAMES
from llmtally.pipeline.process import Identify, Processor
from llmtally.store.base import ACTOR_COLUMNS, MODEL_COLUMNS, Batch, open_store

CACHE: Final = Path(__file__).parent / "results" / "reports-cache"
DAYS: Final = 30
SEED: Final = 20_261_122
HUMANS, AGENTS = 4_500, 500
ROWS_PER_STATEMENT: Final = 500
ROWS_PER_TRANSACTION: Final = 50_000
CHUNK_ROWS: Final = ROWS_PER_TRANSACTION
_SAMPLE_CALLS: Final = 10_000
_GENERATOR_SOURCES: Final = (
    Path(__file__).resolve(),
    *sorted((Path(__file__).resolve().parent.parent / "src" / "llmtally" / "demo").glob("*.py")),
)
_KIND, _STATUS, _TRACE = (COLUMN_NAMES.index(c) for c in ("kind", "status", "trace_id"))
_OCCURRED_AT = COLUMN_NAMES.index("occurred_at")
# first_seen / last_seen of the registry rows: stamped by the store's ts at load time
_ACTOR_STAMPS = (ACTOR_COLUMNS.index("first_seen"), ACTOR_COLUMNS.index("last_seen"))
_MODEL_STAMPS = (MODEL_COLUMNS.index("first_seen"), MODEL_COLUMNS.index("last_seen"))
_prices: PriceBook | None = None  # loaded once before the workers fork


def traffic(seed: int) -> Traffic:
    """The benchmark's traffic: the demo model, a bigger population, four projects."""
    return Traffic(seed=seed, humans=HUMANS, agents=AGENTS, project=None)


def generator_hash() -> str:
    """Changes when the generator (this file or the demo model) changes: regenerate."""
    digest = hashlib.sha256()
    for path in _GENERATOR_SOURCES:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _calls_for(n: int, seed: int, start: float, end: float) -> int:
    """LLM calls that make about ``n`` events: events per call measured on a sample.

    Joins (a person's first session in a stream) are left out of the measure: a small
    sample meets nearly everyone for the first time, the month only a few thousand.
    """
    sample = sum(
        1
        for event in traffic(seed).events(start, end, _SAMPLE_CALLS)
        if event.get("name") != "user_joined_channel"
    )
    return max(1, round(n * _SAMPLE_CALLS / sample))


# -- one share of the month (runs in a worker process) --------------------------------


def _init_worker(prices: PriceBook) -> None:
    global _prices
    _prices = prices
    # millions of short-lived event dicts, none in a cycle: collections would only rescan
    # the live ones (a third of the generation time), and refcounting frees them anyway
    gc.disable()


def _batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while part := list(itertools.islice(events, size)):
        yield part


def _share(job: tuple[Any, ...]) -> dict[str, Any]:
    """Make one share's events, turn them into rows, pickle them in time-ordered chunks."""
    index, seed, start, end, calls, hours, folder = job
    assert _prices is not None
    model = traffic(seed)
    processor = Processor(
        prices=_prices, redactor=Redactor(enabled=True), capture_content=False, ts=float
    )
    kinds: Counter[str] = Counter()
    errors = 0
    chunks, actors, models, traces = [], [], [], []
    events = model.events(start, end, calls, hours=hours)
    for k, part in enumerate(_batches(events, CHUNK_ROWS)):
        items: list[Any] = part
        if index == 0 and k == 0:
            # the profiles, as Tally.identify queues them, in the first batch
            items = [
                Identify(p.actor_type, p.actor_id, p.display_name, p.real_name, p.timezone,
                         None, start)
                for p in model.profiles()
            ] + part  # fmt: skip
        batch = processor.batch(items)
        rows = batch.events
        kinds.update(row[_KIND] for row in rows)
        errors += sum(1 for row in rows if row[_STATUS] == "error" and row[_KIND] == "llm_call")
        actors += batch.actors
        models += batch.models
        richest = Counter(row[_TRACE] for row in rows if row[_TRACE] is not None).most_common(1)
        traces.append((richest[0][1], richest[0][0]) if richest else (0, ""))
        path = str(Path(folder) / f"chunk-{index:03d}-{k:05d}.pkl")
        with open(path, "wb") as fh:
            pickle.dump(rows, fh, protocol=pickle.HIGHEST_PROTOCOL)
        chunks.append(path)
    return {
        "index": index,
        "kinds": kinds,
        "errors": errors,
        "chunks": chunks,
        "actors": actors,
        "models": models,
        "traces": traces,
    }


# -- planning -------------------------------------------------------------------------


def _jobs(n: int, end: float, seed: int, folder: Path, workers: int) -> list[tuple[Any, ...]]:
    """One job per worker: a slice of consecutive hours of the month, about equal calls."""
    end_s = math.floor(end)
    start = end_s - DAYS * 86_400
    calls = _calls_for(n, seed, start, end_s)
    hours = traffic(seed).plan(start, end_s, calls)
    cuts, made = [0], 0
    for i, hour in enumerate(hours):
        if made >= calls * len(cuts) / workers:
            cuts.append(i)
        made += hour.calls
    cuts.append(len(hours))
    return [
        (i, seed, start, end_s, calls, slice(lo, hi), str(folder))
        for i, (lo, hi) in enumerate(itertools.pairwise(cuts))
        if lo < hi
    ]


def generate(n: int, end: float, seed: int, chunks: Path, workers: int) -> dict[str, Any]:
    """Write the chunk files; return counts, the registry rows and timing."""
    chunks.mkdir(parents=True, exist_ok=True)
    jobs = _jobs(n, end, seed, chunks, workers)
    prices = PriceBook(custom_pricing=CUSTOM_PRICING)
    prices.load()  # once, before forking: the workers share it
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(
        len(jobs), initializer=_init_worker, initargs=(prices,)
    ) as pool:
        results = sorted(pool.imap_unordered(_share, jobs), key=lambda r: r["index"])
    elapsed = time.perf_counter() - start
    kinds: Counter[str] = Counter()
    for r in results:
        kinds.update(r["kinds"])
    registry = Batch(
        actors=[row for r in results for row in r["actors"]],
        models=[row for r in results for row in r["models"]],
    )
    actor_id, actor_type = ACTOR_COLUMNS.index("actor_id"), ACTOR_COLUMNS.index("actor_type")
    # the richest trace of the last two chunks (the month's last days): what `trace` is timed on
    trace = max(results[-1]["traces"][-2:])
    return {
        "events": sum(kinds.values()),
        "by_kind": dict(kinds.most_common()),
        "errors": sum(r["errors"] for r in results),
        "actors": {row[actor_id]: row[actor_type] for row in registry.actors},
        "sample_trace": trace[1],
        "sample_trace_events": trace[0],
        "chunks": [path for r in results for path in r["chunks"]],
        "registry": registry,
        "generate_s": elapsed,
    }


# -- loading --------------------------------------------------------------------------


def _read(path: str) -> list[tuple[Any, ...]]:
    with open(path, "rb") as fh:
        rows: list[tuple[Any, ...]] = pickle.load(fh)
    return rows


def _stamped(registry: Batch, ts: Callable[[float], Any]) -> Batch:
    """The actors and models rows with their first/last seen in the engine's form."""

    def stamp(rows: list[tuple[Any, ...]], at: tuple[int, int]) -> list[tuple[Any, ...]]:
        out = []
        for row in rows:
            values = list(row)
            for i in at:
                values[i] = ts(values[i])
            out.append(tuple(values))
        return out

    return Batch(
        actors=stamp(registry.actors, _ACTOR_STAMPS), models=stamp(registry.models, _MODEL_STAMPS)
    )


def _write_registry(url: str, registry: Batch) -> None:
    """Actors and models through the store's own upserts (each chunk had its own rows)."""
    store = open_store(url)
    try:
        store.write(_stamped(registry, store.ts))
    finally:
        store.close()


def load_sqlite(path: Path, chunks: list[str], registry: Batch) -> float:
    """Insert every chunk into a migrated SQLite file; seconds taken."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    ts, width = store.ts, len(COLUMN_NAMES)
    cols = ", ".join(COLUMN_NAMES)
    row = "({})".format(", ".join("?" * width))
    sql = f"INSERT INTO events ({cols}) VALUES " + ", ".join([row] * ROWS_PER_STATEMENT)
    flat = itertools.chain.from_iterable

    def params(rows: list[tuple[Any, ...]]) -> list[Any]:
        values = list(flat(rows))
        values[_OCCURRED_AT::width] = map(ts, values[_OCCURRED_AT::width])
        return values

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -2097152")  # 2 GB while loading
    start = time.perf_counter()
    per = ROWS_PER_STATEMENT
    for chunk in chunks:
        rows = _read(chunk)
        for t0 in range(0, len(rows), ROWS_PER_TRANSACTION):
            part = rows[t0 : t0 + ROWS_PER_TRANSACTION]
            full = len(part) - len(part) % per
            conn.execute("BEGIN")
            if full:
                conn.executemany(sql, [params(part[i : i + per]) for i in range(0, full, per)])
            if full < len(part):
                rest = part[full:]
                conn.execute(
                    f"INSERT INTO events ({cols}) VALUES " + ", ".join([row] * len(rest)),
                    params(rest),
                )
            conn.execute("COMMIT")
    store.close()
    _write_registry(url, registry)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def load_postgres(url: str, chunks: list[str], registry: Batch) -> tuple[float, float]:
    """COPY every chunk into a migrated database, then VACUUM ANALYZE; (load s, analyze s)."""
    copy_sql = "COPY events ({}) FROM STDIN".format(", ".join(COLUMN_NAMES))
    store = open_store(url)
    ts = store.ts
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        start = time.perf_counter()
        for chunk in chunks:
            rows = _read(chunk)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                write = copy.write_row
                for row in rows:
                    write((row[0], ts(row[1]), *row[2:]))
            conn.commit()
    store.close()
    _write_registry(url, registry)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        # what autovacuum would do after a bulk load, done now so runs are comparable
        conn.execute("VACUUM ANALYZE")
    return loaded, time.perf_counter() - start


# -- the cache ------------------------------------------------------------------------


def _fingerprint() -> str:
    """Changes when the rollup code or the migrations change: rollups must be rebuilt."""
    src = Path(__file__).resolve().parent.parent / "src" / "llmtally" / "store"
    digest = hashlib.sha256()
    code = [src / name for name in ("rollups.py", "actor_rollups.py", "feedback.py")]
    for path in sorted([*code, *(src / "migrations" / "versions").glob("*.py")]):
        if path.exists():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def rollups_available() -> bool:
    """Whether ``llmtally.store.rollups.rebuild`` exists yet."""
    try:
        from llmtally.store import rollups
    except ImportError:
        return False
    return hasattr(rollups, "rebuild")


def _rebuild(url: str) -> tuple[float, float, list[str]]:
    """Migrate to head, reconcile, rebuild the rollups; (migrate s, rebuild s, schema notes)."""
    from llmtally.store import rollups

    store = open_store(url)
    try:
        start = time.perf_counter()
        applied = store.migrate()
        with store.engine.begin() as conn:
            notes = _reconcile(conn)
        migrated = time.perf_counter() - start
        if applied and not notes:
            # the migrations that add derived tables roll the whole table up themselves
            return migrated, 0.0, [f"migrated to {applied[-1]} (rolled up there)"]
        start = time.perf_counter()
        rollups.rebuild(store.engine)
        return migrated, time.perf_counter() - start, notes
    finally:
        store.close()


def _reconcile(conn: sa.Connection) -> list[str]:
    """Bring a cached database to the schema a fresh migration gives today.

    A migration edited in place (same revision) is not re-applied to a database that
    has it, so compare with the metadata: create missing tables and indexes, drop
    indexes no longer declared, recreate rollup tables whose columns changed (they are
    derived data, rebuilt next).
    """
    from llmtally.store import schema

    notes = []
    inspector = sa.inspect(conn)
    for tbl in schema.metadata.sorted_tables:
        if not inspector.has_table(tbl.name):
            tbl.create(conn)
            notes.append(f"created {tbl.name}")
            continue
        have = {c["name"] for c in inspector.get_columns(tbl.name)}
        if have != set(tbl.c.keys()):
            if not tbl.name.startswith("rollup_"):
                raise SystemExit(f"{tbl.name} has other columns: run with --regenerate")
            tbl.drop(conn)
            tbl.create(conn)
            notes.append(f"recreated {tbl.name}")
            continue
        existing = {i["name"] for i in inspector.get_indexes(tbl.name)}
        for index in tbl.indexes:
            if index.name not in existing:
                index.create(conn)
                notes.append(f"created index {index.name}")
        for name in existing - {i.name for i in tbl.indexes}:
            if name and name.startswith("ix_"):
                conn.execute(sa.text(f"DROP INDEX {name}"))
                notes.append(f"dropped index {name}")
    return notes


def _migrate(url: str) -> None:
    store = open_store(url)
    try:
        store.migrate()
    finally:
        store.close()


@dataclass
class Dataset:
    """A generated month in each available engine."""

    n: int
    meta: dict[str, Any]
    urls: dict[str, str]  # engine -> URL (sqlite, postgresql)

    @property
    def end(self) -> datetime:
        """When the data ends (generation time)."""
        return datetime.fromtimestamp(self.meta["end"], UTC)


def pg_database(n: int) -> str:
    """The cached PostgreSQL database for ``n`` events."""
    return f"llmtally_bench_reports_n{n}"


def _pg_exists(admin: str, name: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def _pg_recreate(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    return f"{base}/{name}"


def ensure(
    n: int,
    *,
    regenerate: bool = False,
    rebuild: bool = False,
    postgres: bool = True,
    workers: int | None = None,
) -> Dataset:
    """The cached dataset for ``n`` events, generated, loaded and rolled up as needed."""
    workers = workers or max(1, os.cpu_count() or 1)
    folder = CACHE / f"n{n}"
    meta_path = folder / "meta.json"
    admin = postgres_admin_url() if postgres else None
    if admin is None and postgres:
        console.print("PostgreSQL: no server answers; set LLMTALLY_BENCH_POSTGRES_URL")
    meta: dict[str, Any] = {}
    if meta_path.exists() and not regenerate:
        meta = json.loads(meta_path.read_text())
        if meta.get("columns") != list(COLUMN_NAMES) or meta.get("version") != 2:
            console.print("cached dataset has another events layout: regenerating")
            meta = {}
        elif meta.get("generator") != generator_hash():
            console.print("the generator changed since the cached dataset was made: regenerating")
            meta = {}
    if not meta:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        end = time.time()
        meta = {
            "version": 2,
            "generator": generator_hash(),
            "n": n,
            "seed": SEED,
            "start": math.floor(end) - DAYS * 86_400,
            "end": math.floor(end),
            "columns": list(COLUMN_NAMES),
            "engines": {},
        }
    engines: dict[str, dict[str, Any]] = meta["engines"]
    if regenerate or meta.get("events") is None:
        engines.clear()
    urls = {"sqlite": f"sqlite:///{folder / 'events.db'}"}
    if admin is not None:
        base, _, _ = admin.rpartition("/")
        urls["postgresql"] = f"{base}/{pg_database(n)}"
        if "postgresql" in engines and not _pg_exists(admin, pg_database(n)):
            del engines["postgresql"]
    if "sqlite" in engines and not (folder / "events.db").exists():
        del engines["sqlite"]
    missing = [e for e in urls if e not in engines]
    chunks_dir = folder / "chunks"
    phases: list[list[Any]] = []
    if missing:
        info = generate(n, meta["end"], meta["seed"], chunks_dir, workers)
        chunks = info.pop("chunks")
        registry = info.pop("registry")
        meta.update({k: v for k, v in info.items()})
        meta["generate_events_per_s"] = info["events"] / info["generate_s"]
        phases.append(["generate", f"{workers} processes", f"{info['generate_s']:.1f}",
                       f"{info['events'] / info['generate_s']:,.0f}"])  # fmt: skip
        for engine in missing:
            if engine == "sqlite":
                path = folder / "events.db"
                for suffix in ("", "-wal", "-shm", ".migrate-lock"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                _migrate(urls["sqlite"])
                seconds = load_sqlite(path, chunks, registry)
                engines["sqlite"] = {"load_s": seconds}
                phases.append(["load SQLite", "500-row INSERTs", f"{seconds:.1f}",
                               f"{meta['events'] / seconds:,.0f}"])  # fmt: skip
            else:
                assert admin is not None
                url = _pg_recreate(admin, pg_database(n))
                _migrate(url)
                seconds, analyze = load_postgres(url, chunks, registry)
                engines["postgresql"] = {"load_s": seconds, "analyze_s": analyze}
                phases.append(["load PostgreSQL", "COPY", f"{seconds:.1f}",
                               f"{meta['events'] / seconds:,.0f}"])  # fmt: skip
                phases.append(["VACUUM ANALYZE", "PostgreSQL", f"{analyze:.1f}",
                               f"{meta['events'] / analyze:,.0f}"])  # fmt: skip
            meta_path.write_text(json.dumps(meta, indent=1))
        shutil.rmtree(chunks_dir, ignore_errors=True)
    fingerprint = _fingerprint()
    if rollups_available():
        for engine, url in urls.items():
            state = engines[engine]
            if rebuild or state.get("rollups") != fingerprint:
                migrate_s, seconds, notes = _rebuild(url)
                if notes:
                    console.print(f"{engine}: schema brought to today's migrations: {notes}")
                state.update(rollups=fingerprint, rebuild_s=seconds, migrate_s=migrate_s)
                label = "SQLite" if engine == "sqlite" else "PostgreSQL"
                phases.append([f"rebuild {label}", "rollups.rebuild" if seconds else "migration",
                               f"{seconds or migrate_s:.1f}",
                               f"{meta['events'] / (seconds or migrate_s):,.0f}"])  # fmt: skip
                meta_path.write_text(json.dumps(meta, indent=1))
    else:
        console.print("[yellow]llmtally.store.rollups.rebuild does not exist yet: no rollups")
        for state in engines.values():
            state.pop("rollups", None)
    meta_path.write_text(json.dumps(meta, indent=1))
    if phases:
        table(
            f"dataset n={n:,}: {meta['events']:,} events "
            f"({', '.join(f'{k} {v:,}' for k, v in meta['by_kind'].items())}, "
            f"{meta['errors']:,} call errors, {len(meta['actors']):,} actors)",
            ["phase", "how", "s", "events/s"],
            phases,
        )
    else:
        console.print(f"dataset n={n:,}: cached ({meta['events']:,} events in {folder})")
    return Dataset(n=n, meta=meta, urls=urls)


def main() -> None:
    """Generate (or refresh) the cached dataset."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="rebuild rollups even if current")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    ensure(
        args.events,
        regenerate=args.regenerate,
        rebuild=args.rebuild,
        postgres=not args.no_postgres,
    )


if __name__ == "__main__":
    main()
