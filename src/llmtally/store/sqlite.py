"""SQLite engine: one file, WAL, several writer processes.

Every connection runs in WAL mode with a busy timeout, so readers never block the
writer and concurrent writers (several app processes on one file) wait for the write
lock instead of failing. Writes take the lock up front (``BEGIN IMMEDIATE``) so a
transaction never has to be retried half way through.
"""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from llmtally.event import COLUMN_NAMES
from llmtally.store import rollups
from llmtally.store.base import (
    ACTOR_COLUMNS,
    MODEL_COLUMNS,
    Batch,
    DataRejected,
    Store,
    WriteResult,
    new_rows_only,
)
from llmtally.store.derived import SQLITE

_ROW = "({})".format(", ".join("?" * len(COLUMN_NAMES)))
_INSERT_PREFIX = "INSERT OR IGNORE INTO events ({}) VALUES ".format(", ".join(COLUMN_NAMES))
_MAX_ROWS_PER_STATEMENT = 500


def _insert_sql(rows: int) -> str:
    return _INSERT_PREFIX + ", ".join([_ROW] * rows) + " RETURNING event_id"


_UPSERT_ACTORS = (
    "INSERT INTO actors ({}) VALUES ({}) ON CONFLICT (actor_type, actor_id) DO UPDATE SET "
    "display_name = coalesce(excluded.display_name, display_name), "
    "real_name = coalesce(excluded.real_name, real_name), "
    "timezone = coalesce(excluded.timezone, timezone), "
    "email = coalesce(excluded.email, email), "
    "first_seen = min(first_seen, excluded.first_seen), "
    "last_seen = max(last_seen, excluded.last_seen)"
).format(", ".join(ACTOR_COLUMNS), ", ".join("?" * len(ACTOR_COLUMNS)))
_UPSERT_MODELS = (
    "INSERT INTO models ({}) VALUES ({}) ON CONFLICT (provider, model) DO UPDATE SET "
    "price_source = excluded.price_source, matched_model = excluded.matched_model, "
    "input_per_mtok = excluded.input_per_mtok, output_per_mtok = excluded.output_per_mtok, "
    "cache_read_per_mtok = excluded.cache_read_per_mtok, "
    "cache_write_per_mtok = excluded.cache_write_per_mtok, "
    "is_placeholder = excluded.is_placeholder, "
    "first_seen = min(first_seen, excluded.first_seen), "
    "last_seen = max(last_seen, excluded.last_seen)"
).format(", ".join(MODEL_COLUMNS), ", ".join("?" * len(MODEL_COLUMNS)))


def _configure(dbapi_conn: sqlite3.Connection, busy_ms: int) -> None:
    dbapi_conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    dbapi_conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode survives process crashes (kill -9); only an OS crash or power
    # loss can lose the last commits
    dbapi_conn.execute("PRAGMA synchronous = NORMAL")
    # rollup upserts of a backfill touch pages all over the derived tables: a 64 MiB page
    # cache (default 2 MiB) keeps them from being read again for every batch
    dbapi_conn.execute("PRAGMA cache_size = -65536")


class SQLiteStore(Store):
    """The embedded default store."""

    dialect = "sqlite"

    def __init__(self, sa_url: str, *, busy_timeout: float = 30.0) -> None:
        self._busy_ms = int(busy_timeout * 1000)
        url = sa.make_url(sa_url)
        database = url.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout})
        busy_ms = self._busy_ms

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            _configure(dbapi_conn, busy_ms)

        super().__init__(sa_url, engine)
        self._path = database
        self._conn: sqlite3.Connection | None = None
        self._ts_cache: tuple[int, str] = (-1, "")
        self._per_statement = 0
        self._statements: dict[int, str] = {}

    def _raw(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,
            )
            _configure(conn, self._busy_ms)
            # checkpoint every ~40 MiB of WAL instead of ~4 MiB: a page dirtied by many
            # batches in a row is copied back to the database file once, not each time
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
            SQLITE.prepare(conn)  # the histogram and bitmap merges of the rollup upserts
            self._conn = conn
        return self._conn

    def ts(self, epoch: float) -> Any:
        """ISO text in UTC, always with microseconds so that text order is time order."""
        micros = round(epoch * 1_000_000)
        second, fraction = divmod(micros, 1_000_000)
        cached = self._ts_cache
        if cached[0] != second:
            # events come in bursts within one second: format the date part once; one tuple,
            # swapped whole, so two threads never pair a second with another's text
            cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S."))
            self._ts_cache = cached
        return f"{cached[1]}{fraction:06d}"

    def _ping(self) -> None:
        """Open the file (creating it) and run a trivial query."""
        self._raw().execute("SELECT 1").fetchone()

    def _write(self, batch: Batch) -> WriteResult:
        conn = self._raw()
        conn.execute("BEGIN IMMEDIATE")
        try:
            inserted = 0
            if batch.events:
                new_rows = self._insert(conn, batch.events)
                inserted = len(new_rows)
                rollups.maintain(conn, SQLITE, new_rows)
            if batch.actors:
                conn.executemany(_UPSERT_ACTORS, batch.actors)
            if batch.models:
                conn.executemany(_UPSERT_MODELS, batch.models)
            conn.execute("COMMIT")
        except (
            sqlite3.IntegrityError,
            sqlite3.DataError,
            sqlite3.InterfaceError,
            UnicodeEncodeError,  # a lone surrogate in some string
        ) as exc:
            conn.execute("ROLLBACK")
            raise DataRejected(str(exc)) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return WriteResult(inserted=inserted, duplicates=len(batch.events) - inserted)

    def _insert(
        self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """Insert with multi-row statements; return the rows that were new.

        ``executemany`` runs one statement per row and releases the GIL around each step;
        when any other thread is busy, getting it back can take a whole switch interval
        (5 ms) per row. Hundreds of rows per statement make that a handful of times per
        batch, and are faster even on an idle interpreter. ``RETURNING`` names the rows
        really inserted, so rollups never count a duplicate.
        """
        per = self._rows_per_statement(conn)
        flat = itertools.chain.from_iterable
        inserted: set[str] = set()
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            cursor = conn.execute(self._sql(len(chunk)), list(flat(chunk)))
            inserted.update(event_id for (event_id,) in cursor.fetchall())
        if len(inserted) == len(rows):
            return rows
        return new_rows_only(rows, inserted)

    def _rows_per_statement(self, conn: sqlite3.Connection) -> int:
        if self._per_statement == 0:
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._per_statement = max(1, min(_MAX_ROWS_PER_STATEMENT, limit // len(COLUMN_NAMES)))
        return self._per_statement

    def _sql(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            sql = self._statements[rows] = _insert_sql(rows)
        return sql

    def _close_raw(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
