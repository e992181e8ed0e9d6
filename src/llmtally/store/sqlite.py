"""SQLite engine: one file, WAL, several writer processes.

Every connection runs in WAL mode with a busy timeout, so readers never block the
writer and concurrent writers (several app processes on one file) wait for the write
lock instead of failing. Writes take the lock up front (``BEGIN IMMEDIATE``) so a
transaction never has to be retried half way through.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from llmtally.capture.event import COLUMN_NAMES
from llmtally.store.base import (
    ACTOR_COLUMNS,
    MODEL_COLUMNS,
    Batch,
    DataRejected,
    Store,
    WriteResult,
)

_INSERT_EVENTS = "INSERT OR IGNORE INTO events ({}) VALUES ({})".format(
    ", ".join(COLUMN_NAMES), ", ".join("?" * len(COLUMN_NAMES))
)
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
        self._ts_second = -1
        self._ts_prefix = ""

    def _raw(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,
            )
            _configure(conn, self._busy_ms)
            self._conn = conn
        return self._conn

    def ts(self, epoch: float) -> Any:
        """ISO text in UTC, always with microseconds so that text order is time order."""
        micros = round(epoch * 1_000_000)
        second, fraction = divmod(micros, 1_000_000)
        if second != self._ts_second:
            # events arrive in bursts within the same second: format the date part once
            self._ts_prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S.")
            self._ts_second = second
        return f"{self._ts_prefix}{fraction:06d}"

    def ping(self) -> None:
        """Open the file (creating it) and run a trivial query."""
        self._raw().execute("SELECT 1").fetchone()

    def _write(self, batch: Batch) -> WriteResult:
        conn = self._raw()
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            if batch.events:
                conn.executemany(_INSERT_EVENTS, batch.events)
            inserted = conn.total_changes - before
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

    def _close_raw(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
