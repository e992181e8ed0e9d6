"""PostgreSQL engine: psycopg 3, batches through COPY.

A batch is copied into a per-connection temporary staging table and moved into
``events`` with ``INSERT … ON CONFLICT DO NOTHING``: COPY speed with ``event_id``
idempotency (COPY alone cannot skip duplicates). The runtime role therefore needs the
database's TEMPORARY privilege (PUBLIC has it by default) besides
SELECT/INSERT/UPDATE/DELETE on the tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
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
from llmtally.store.derived import POSTGRES

_STAGE = "llmtally_stage_events"
_COLS = ", ".join(COLUMN_NAMES)
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (LIKE events INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {_STAGE} ({_COLS}) FROM STDIN"
_COPY_DIRECT = f"COPY events ({_COLS}) FROM STDIN"
_MOVE = (
    f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM {_STAGE} "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_UPSERT_ACTORS = (
    "INSERT INTO actors ({}) VALUES ({}) ON CONFLICT (actor_type, actor_id) DO UPDATE SET "
    "display_name = coalesce(excluded.display_name, actors.display_name), "
    "real_name = coalesce(excluded.real_name, actors.real_name), "
    "timezone = coalesce(excluded.timezone, actors.timezone), "
    "email = coalesce(excluded.email, actors.email), "
    "first_seen = least(actors.first_seen, excluded.first_seen), "
    "last_seen = greatest(actors.last_seen, excluded.last_seen)"
).format(", ".join(ACTOR_COLUMNS), ", ".join(["%s"] * len(ACTOR_COLUMNS)))
_UPSERT_MODELS = (
    "INSERT INTO models ({}) VALUES ({}) ON CONFLICT (provider, model) DO UPDATE SET "
    "price_source = excluded.price_source, matched_model = excluded.matched_model, "
    "input_per_mtok = excluded.input_per_mtok, output_per_mtok = excluded.output_per_mtok, "
    "cache_read_per_mtok = excluded.cache_read_per_mtok, "
    "cache_write_per_mtok = excluded.cache_write_per_mtok, "
    "is_placeholder = excluded.is_placeholder, "
    "first_seen = least(models.first_seen, excluded.first_seen), "
    "last_seen = greatest(models.last_seen, excluded.last_seen)"
).format(", ".join(MODEL_COLUMNS), ", ".join(["%s"] * len(MODEL_COLUMNS)))


def driver_conninfo(url: sa.URL) -> str:
    """A libpq connection string for a SQLAlchemy URL (keeps unix-socket host query args)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresStore(Store):
    """The production store."""

    dialect = "postgresql"

    def __init__(self, sa_url: str, *, connect_timeout: float = 10.0) -> None:
        url = sa.make_url(sa_url)
        timeout = max(1, int(connect_timeout))
        engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": timeout}
        )
        super().__init__(sa_url, engine)
        self._conninfo = driver_conninfo(url)
        self._timeout = timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._staged = False

    def _raw(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = None
            conn = psycopg.connect(self._conninfo, connect_timeout=self._timeout)
            self._conn = conn
            self._staged = False
        return conn

    def ts(self, epoch: float) -> Any:
        """An aware datetime: COPY sends it as timestamptz."""
        return datetime.fromtimestamp(epoch, UTC)

    def _copy_events(
        self, cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """COPY straight into events; through the stage only when a duplicate is met.

        Duplicates are rare (replays after a crash, a resend after a lost commit), so the
        common batch pays for one COPY; the stage and ``ON CONFLICT`` are the fallback,
        and its ``RETURNING`` names the rows that were new. Returns those rows.
        """
        cur.execute("SAVEPOINT llmtally_copy")
        try:
            with cur.copy(_COPY_DIRECT) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT llmtally_copy")
        else:
            cur.execute("RELEASE SAVEPOINT llmtally_copy")
            return rows
        with cur.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(_MOVE)
        inserted = {str(event_id) for (event_id,) in cur.fetchall()}
        return new_rows_only(rows, inserted)

    def repair(self, row: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Also replace NUL, which PostgreSQL text cannot hold, rather than lose the event."""
        fixed = super().repair(row) or row
        fixed = tuple(
            v.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd") if isinstance(v, str) else v
            for v in fixed
        )
        return fixed if fixed != row else None

    def is_data_error(self, exc: BaseException) -> bool:
        """Also a row too large for an index or a value out of a column's range."""
        return super().is_data_error(exc) or isinstance(
            exc,
            (psycopg.errors.DataError, psycopg.errors.IntegrityError,
             psycopg.errors.ProgramLimitExceeded),
        )  # fmt: skip

    def _ping(self) -> None:
        """Connect and run a trivial query."""
        self._raw().execute("SELECT 1").fetchone()
        self._raw().rollback()

    def _write(self, batch: Batch) -> WriteResult:
        conn = self._raw()
        if not self._staged:
            # after migrations: the stage copies the events table's current shape
            conn.execute(_CREATE_STAGE)
            conn.commit()
            self._staged = True
        try:
            with conn.cursor() as cur:
                inserted = 0
                if batch.events:
                    new_rows = self._copy_events(cur, batch.events)
                    inserted = len(new_rows)
                    rollups.maintain(cur, POSTGRES, new_rows)
                if batch.actors:
                    cur.executemany(_UPSERT_ACTORS, batch.actors)
                if batch.models:
                    cur.executemany(_UPSERT_MODELS, batch.models)
            conn.commit()
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError, UnicodeEncodeError) as exc:
            conn.rollback()
            raise DataRejected(str(exc).strip()) from exc
        except BaseException:
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            raise
        return WriteResult(inserted=inserted, duplicates=len(batch.events) - inserted)

    def _close_raw(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
