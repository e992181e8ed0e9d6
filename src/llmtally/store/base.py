"""The store interface: one class per engine, chosen by URL scheme (``register_store``).

Schema, migrations and queries go through SQLAlchemy Core (``Store.engine``). The batch
write path goes to the driver directly (sqlite3 ``executemany``, psycopg ``COPY``):
SQLAlchemy's executemany adds ~15 µs per row, half the SQLite budget.

A batch is written in one transaction. When the database refuses the batch because of
its data (a constraint, a value out of range), the batch is retried row by row so that
one poisoned event is rejected alone and every other event is stored.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlalchemy as sa

from llmtally.capture.text import clean_text
from llmtally.errors import DataRejected as DataRejected  # engines import it from here
from llmtally.errors import StoreError, UnsupportedDatabaseError
from llmtally.event import COLUMN_NAMES
from llmtally.store import migrate
from llmtally.store.boundary import safe_url, store_errors

log = logging.getLogger("llmtally")

ACTOR_COLUMNS = (
    "actor_type",
    "actor_id",
    "display_name",
    "real_name",
    "timezone",
    "email",
    "first_seen",
    "last_seen",
)
MODEL_COLUMNS = (
    "provider",
    "model",
    "price_source",
    "matched_model",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "is_placeholder",
    "first_seen",
    "last_seen",
)


@dataclass(slots=True)
class Batch:
    """Rows ready for one write: events in ``COLUMN_NAMES`` order, actors and models upserts."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    actors: list[tuple[Any, ...]] = field(default_factory=list)
    models: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(slots=True)
class WriteResult:
    """What a batch write did: rows inserted, duplicates ignored, rows refused with reasons."""

    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)


class Store(abc.ABC):
    """An event store on one database."""

    dialect: ClassVar[str]

    def __init__(self, url: str, engine: sa.Engine) -> None:
        self.url = url
        self.engine = engine

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> list[str]:
        """Bring the schema to head, then rebuild what migrations marked stale.

        Returns the revisions applied. The rebuild runs with this version's code at head
        (``rollups.rebuild_stale``); migrations themselves only change the schema.
        """
        with store_errors(self.engine, "migrating the schema"):
            applied = migrate.upgrade(self.engine)
            from llmtally.store.rollups import rebuild_stale

            rebuild_stale(self.engine)
        return applied

    def write(self, batch: Batch) -> WriteResult:
        """Write a batch; isolate the rows the database refuses instead of losing the batch.

        A refusal caused by the data (``is_data_error``) splits the batch in halves until
        the refusing rows are alone; each is repaired if it can be (``repair``) or returned
        in ``rejected`` with the reason. Any other failure (connection lost, database
        locked, disk full) is raised for the caller to retry: it says nothing about rows.
        """
        try:
            return self._write(batch)
        except Exception as exc:
            if not self.is_data_error(exc):
                raise
        result = WriteResult()
        if batch.actors or batch.models:
            self._write_upserts(batch)
        parts = [batch.events] if batch.events else []
        while parts:
            part = parts.pop()
            try:
                one = self._write(Batch(events=part))
            except Exception as exc:
                if not self.is_data_error(exc):
                    raise
                if len(part) > 1:
                    middle = len(part) // 2
                    parts += (part[middle:], part[:middle])  # the first half is written first
                    continue
                repaired = self._write_repaired(part[0], exc, result)
                if repaired is None:
                    continue
                one = repaired
            result.inserted += one.inserted
            result.duplicates += one.duplicates
        return result

    def _write_upserts(self, batch: Batch) -> None:
        """Actor and model upserts alone, repaired like events if the store refuses them."""
        try:
            self._write(Batch(actors=batch.actors, models=batch.models))
            return
        except Exception as exc:
            if not self.is_data_error(exc):
                raise
        repaired = Batch(
            actors=[self.repair(row) or row for row in batch.actors],
            models=[self.repair(row) or row for row in batch.models],
        )
        try:
            self._write(repaired)
        except Exception as exc:
            if not self.is_data_error(exc):
                raise
            # enrichment and the registry are secondary: never let them cost events
            log.warning("llmtally: actor/model upserts rejected by the store: %s", exc)

    def _write_repaired(
        self, row: tuple[Any, ...], error: Exception, result: WriteResult
    ) -> WriteResult | None:
        repaired = self.repair(row)
        if repaired is not None:
            try:
                return self._write(Batch(events=[repaired]))
            except Exception as again:
                if not self.is_data_error(again):
                    raise
                error = again
        result.rejected.append((row, _reason(error)))
        return None

    def is_data_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the database refused the rows themselves (not a fault).

        Python errors raised while turning rows into SQL (a number too large for the
        driver, text it cannot encode, a bug met by one odd value) are data errors too:
        retrying them could never succeed, so they are isolated rather than retried.
        """
        return isinstance(exc, (DataRejected, ArithmeticError, ValueError, TypeError, LookupError))

    @abc.abstractmethod
    def _write(self, batch: Batch) -> WriteResult:
        """Write a batch in one transaction; raise DataRejected for data errors."""

    def repair(self, row: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """A row this engine can store in place of one it refused, or None.

        Text that cannot be encoded (lone surrogates from a bad decode) gets U+FFFD in
        place of the bad characters: the event is worth more than those characters.
        """
        fixed = tuple(clean_text(v) if isinstance(v, str) else v for v in row)
        return fixed if fixed != row else None

    @abc.abstractmethod
    def ts(self, epoch: float) -> Any:
        """An occurred_at value in the form this engine's write path takes."""

    def ping(self) -> None:
        """Raise ``StoreError`` if the database cannot be reached."""
        with store_errors(self.engine, "reaching the database"):
            self._ping()

    @abc.abstractmethod
    def _ping(self) -> None:
        """Run a trivial query on the write connection (driver errors raised as they are)."""

    @abc.abstractmethod
    def _close_raw(self) -> None:
        """Close the driver connection of the write path."""

    def close(self) -> None:
        """Close the write connection and the engine's pool."""
        self._close_raw()
        self.engine.dispose()


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, DataRejected) and exc.__cause__ else exc
    return f"{type(cause).__name__}: {str(cause).strip()}"


StoreFactory = Callable[[str, float], Store]  # (SQLAlchemy URL, connect_timeout) -> store


@dataclass(frozen=True, slots=True)
class StoreKind:
    """An engine llmtally can open: its URL scheme, SQLAlchemy driver and factory."""

    scheme: str
    drivername: str
    factory: StoreFactory


_KINDS: dict[str, StoreKind] = {}  # every accepted scheme (aliases included) -> its kind


def register_store(
    scheme: str, factory: StoreFactory, *, drivername: str, aliases: Iterable[str] = ()
) -> None:
    """Make ``open_store`` open URLs of ``scheme`` (and ``aliases``) with ``factory``.

    ``factory(sqlalchemy_url, connect_timeout)`` returns the store; the URL it gets has
    ``drivername`` as its scheme. Registering a scheme again replaces it.
    """
    kind = StoreKind(scheme.lower(), drivername, factory)
    for name in (scheme, *aliases):
        _KINDS[name.lower()] = kind


def store_schemes() -> list[str]:
    """The URL schemes ``open_store`` accepts, aliases included."""
    return sorted(_KINDS)


def _kind(url: str) -> tuple[StoreKind, str]:
    """The registered kind of ``url`` and the rest of the URL after ``://``."""
    if "://" not in url:
        # a bare path is a SQLite file: `llmtally --db ./x.db`
        url = f"sqlite:///{url}"
    scheme, rest = url.split("://", 1)
    kind = _KINDS.get(scheme.lower())
    if kind is None:
        known = ", ".join(sorted({k.scheme for k in _KINDS.values()}))
        raise UnsupportedDatabaseError(
            f"unsupported database URL scheme {scheme!r}; known schemes: {known} "
            f"(aliases: {', '.join(store_schemes())})",
            url=safe_url(url),
        )
    return kind, rest


def normalize_url(url: str) -> str:
    """Map user-facing URLs to SQLAlchemy ones (``postgres://`` → ``postgresql+psycopg://``)."""
    kind, rest = _kind(url)
    return f"{kind.drivername}://{rest}"


def open_store(url: str, *, connect_timeout: float = 10.0) -> Store:
    """Open the store for ``url`` (does not migrate; call ``migrate()``)."""
    kind, rest = _kind(url)
    sa_url = f"{kind.drivername}://{rest}"
    try:
        with store_errors(sa_url, "opening the store"):
            return kind.factory(sa_url, connect_timeout)
    except ImportError as exc:  # pragma: no cover - driver missing from a broken install
        raise StoreError(f"database driver missing: {exc}", url=safe_url(sa_url)) from exc


def _open_sqlite(sa_url: str, connect_timeout: float) -> Store:
    from llmtally.store.sqlite import SQLiteStore

    # SQLite's timeout is how long a writer waits for the file lock: never below 30 s
    return SQLiteStore(sa_url, busy_timeout=max(connect_timeout, 30.0))


def _open_postgres(sa_url: str, connect_timeout: float) -> Store:
    from llmtally.store.postgres import PostgresStore

    return PostgresStore(sa_url, connect_timeout=connect_timeout)


register_store("sqlite", _open_sqlite, drivername="sqlite", aliases=("sqlite+pysqlite",))
register_store(
    "postgresql",
    _open_postgres,
    drivername="postgresql+psycopg",
    aliases=("postgres", "postgresql+psycopg", "postgresql+psycopg3"),
)


def event_columns() -> Sequence[str]:
    """The events columns in write order."""
    return COLUMN_NAMES


def new_rows_only(rows: list[tuple[Any, ...]], inserted: set[str]) -> list[tuple[Any, ...]]:
    """The rows whose id the database reports as inserted, each id once (first wins)."""
    out = []
    for row in rows:
        event_id = row[0]
        if event_id in inserted:
            inserted.discard(event_id)  # a repeat of the same id in this batch was not new
            out.append(row)
    return out
