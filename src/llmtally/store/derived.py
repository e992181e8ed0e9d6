"""Derived tables: one declaration per table, one maintenance and one rebuild path for all.

A derived table (the call rollups, the actor rollups, the active-actor bitmaps, the
feedback rollups, the session totals) is declared once as a ``Table``: its key columns
and its value columns, each with how two values of one key merge (``Merge``). From that
declaration come the accumulators (``zero``, ``merge``), the re-keying to a coarser
bucket (``coarsen``), the multi-row upsert of each engine and the plain insert of a
rebuild. What is specific to a table is only how event rows become deltas; that lives in
its module (``rollups``, ``actor_rollups``, ``actor_bits``, ``feedback``, ``sessions``)
as a ``Derived``: the tables it keeps, the event columns it reads, its maintenance in
the write transaction from the rows the database really inserted, and its rebuild
over a time window.

Writes are shaped for speed: a batch's deltas are aggregated per key in Python first,
then written with one statement per table and chunk, never one per key.

* SQLite: multi-row ``INSERT … VALUES … ON CONFLICT DO UPDATE``; histograms and bitmaps
  merge inside the statement through two functions registered on the connection, so a
  key is never read back first.
* PostgreSQL: ``INSERT … SELECT * FROM unnest(<one array per column>) ON CONFLICT DO
  UPDATE``, one round trip per table; histograms and bitmaps of existing keys are read
  with one joined ``SELECT`` per table and merged in Python (the caller holds the
  rollup advisory lock, so nothing changes them in between).
"""

from __future__ import annotations

import enum
import itertools
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from llmtally.store import sketch

Key = tuple[Any, ...]
Acc = list[Any]  # one key's values, in the order of ``Table.values``
_SQLITE_ROWS = 500  # rows per statement: far below SQLite's variable limit at our widths


class Merge(enum.Enum):
    """How two values of the same key combine."""

    SUM = "sum"  # added
    HIST = "hist"  # latency histograms (``store.sketch``), merged bucket by bucket
    BITS = "bits"  # active-actor bitmaps (``actor_bits``), OR-ed
    NEWEST = "newest"  # the newer value unless it is NULL
    LOW = "low"  # the smaller
    HIGH = "high"  # the greater
    TOP = "top"  # the greater, NULL meaning "none yet"


def encode_bits(mask: int) -> bytes:
    """Blob of an active-actor bitmap: little-endian bytes, zlib-compressed."""
    return zlib.compress(mask.to_bytes((mask.bit_length() + 7) // 8, "little"), 1)


def decode_bits(blob: bytes | memoryview | None) -> int:
    """Bitmap of a blob (0 for None)."""
    if not blob:
        return 0
    return int.from_bytes(zlib.decompress(bytes(blob)), "little")


def sqlite_merge_hist(old: bytes | None, new: bytes | None) -> bytes | None:
    """SQL function ``llmtally_merge_hist``: two histogram blobs as one."""
    if old is None:
        return new
    if new is None:
        return old
    return sketch.encode(sketch.merge_blob(sketch.decode(old), new))


def sqlite_or_bits(old: bytes | None, new: bytes | None) -> bytes | None:
    """SQL function ``llmtally_or_bits``: the union of two bitmap blobs."""
    if old is None:
        return new
    if new is None:
        return old
    return encode_bits(decode_bits(old) | decode_bits(new))


def sqlite_5min(value: str) -> str:
    """5-minute bucket of a SQLite occurred_at text."""
    return f"{value[:14]}{int(value[14:16]) // 5 * 5:02d}:00.000000"


def sqlite_hour(value: str) -> str:
    """Hour bucket of a SQLite occurred_at text (or of a 5-minute bucket)."""
    return value[:13] + ":00:00.000000"


def sqlite_day(value: str) -> str:
    """Day bucket of a SQLite occurred_at text (or of a finer bucket)."""
    return value[:10] + " 00:00:00.000000"


def datetime_5min(value: datetime) -> datetime:
    """5-minute bucket of a datetime."""
    return value.replace(minute=value.minute - value.minute % 5, second=0, microsecond=0)


def datetime_hour(value: datetime) -> datetime:
    """Hour bucket of a datetime."""
    return value.replace(minute=0, second=0, microsecond=0)


def datetime_day(value: datetime) -> datetime:
    """Day bucket of a datetime."""
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between engines for derived tables: SQL spelling and time buckets.

    The bucket functions take ``occurred_at`` in the form the engine's write path holds
    it (ISO text on SQLite, an aware UTC datetime on PostgreSQL) and return the bucket
    in the same form; each also accepts a finer bucket.
    """

    name: str
    ph: str
    low: str  # two-argument minimum
    high: str
    five_min: Callable[[Any], Any]
    hour: Callable[[Any], Any]
    day: Callable[[Any], Any]

    @property
    def pg(self) -> bool:
        """Whether this is PostgreSQL."""
        return self.name == "postgresql"

    def any_of(self, column: str, values: Sequence[Any], cast: str = "") -> tuple[str, list[Any]]:
        """A ``column`` in ``values`` condition and its parameters."""
        if self.pg:
            return f"{column} = ANY(%s{cast})", [list(values)]
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def prepare(self, db: Any) -> None:
        """Make a write connection ready (SQLite: register the merge functions)."""
        if not self.pg:
            db.create_function("llmtally_merge_hist", 2, sqlite_merge_hist, deterministic=True)
            db.create_function("llmtally_or_bits", 2, sqlite_or_bits, deterministic=True)


SQLITE = Dialect("sqlite", "?", "min", "max", sqlite_5min, sqlite_hour, sqlite_day)
POSTGRES = Dialect(
    "postgresql", "%s", "least", "greatest", datetime_5min, datetime_hour, datetime_day
)
DIALECTS = {"sqlite": SQLITE, "postgresql": POSTGRES}


def _pg_type(column: sa.Column[Any]) -> str:
    t = column.type
    if isinstance(t, sa.DateTime):
        return "timestamptz"
    if isinstance(t, sa.Double):
        return "float8"
    if isinstance(t, sa.Integer):
        return "int8"
    if isinstance(t, sa.LargeBinary):
        return "bytea"
    if isinstance(t, sa.Boolean):
        return "bool"
    return "text"


class Table:
    """One derived table: its key columns and its value columns with their merges."""

    def __init__(
        self,
        table: sa.Table,
        keys: tuple[str, ...],
        values: Iterable[tuple[str, Merge]],
        returning: tuple[str, ...] = (),
    ) -> None:
        self.table = table
        self.keys = keys
        self.values = tuple(values)
        self.returning = returning
        kinds = [how for _, how in self.values]
        # positions per merge kind: a merge is then a few tight loops, no dispatch per value
        self._at = {how: [i for i, k in enumerate(kinds) if k is how] for how in Merge}
        self._blobs = [(i, how) for i, how in enumerate(kinds) if how in _BLOBS]
        self._floats = [
            i for i, name in enumerate(self.columns) if _pg_type(table.c[name]) == "float8"
        ]
        self._sql: dict[tuple[str, int], str] = {}

    @property
    def name(self) -> str:
        """The table's name."""
        return self.table.name

    @property
    def columns(self) -> tuple[str, ...]:
        """Key columns then value columns."""
        return (*self.keys, *(name for name, _ in self.values))

    def zero(self) -> Acc:
        """A fresh accumulator."""
        return [_ZERO[m]() for _, m in self.values]

    def merge(self, into: Acc, other: Acc) -> None:
        """Add ``other``'s values into ``into``."""
        at = self._at
        for i in at[Merge.SUM]:
            into[i] += other[i]
        for i in at[Merge.HIST]:
            sketch.merge(into[i], other[i])
        for i in at[Merge.BITS]:
            into[i] |= other[i]
        for i in at[Merge.NEWEST]:
            if other[i] is not None:
                into[i] = other[i]
        for how in (Merge.LOW, Merge.HIGH, Merge.TOP):
            for i in at[how]:
                into[i] = _MERGE[how](into[i], other[i])

    def coarsen(self, accs: dict[Key, Acc], bucket: Callable[[Any], Any]) -> dict[Key, Acc]:
        """The same deltas keyed by a coarser bucket (``bucket`` maps the first key part)."""
        out: dict[Key, Acc] = {}
        hists = self._at[Merge.HIST]
        for key, acc in accs.items():
            coarse = (bucket(key[0]), *key[1:])
            found = out.get(coarse)
            if found is None:
                copy = list(acc)
                for i in hists:  # histograms are merged in place: never share one
                    copy[i] = dict(copy[i])
                out[coarse] = copy
            else:
                self.merge(found, acc)
        return out

    def params(self, accs: dict[Key, Acc]) -> list[tuple[Any, ...]]:
        """Rows ready for the database: histograms and bitmaps encoded as blobs."""
        if not self._blobs:
            return [(*key, *acc) for key, acc in accs.items()]
        out = []
        blobs = self._blobs
        encode = sketch.encode
        for key, acc in accs.items():
            row = list(acc)
            for i, how in blobs:
                row[i] = encode(row[i]) if how is Merge.HIST else encode_bits(row[i])
            out.append((*key, *row))
        return out

    # -- SQL -----------------------------------------------------------------------------

    def _set(self, dialect: Dialect) -> str:
        t = self.name
        parts = []
        for name, how in self.values:
            old, new = f"{t}.{name}", f"excluded.{name}"
            if how is Merge.SUM:
                value = f"{old} + {new}"
            elif how is Merge.NEWEST:
                value = f"coalesce({new}, {old})"
            elif how is Merge.LOW:
                value = f"{dialect.low}({old}, {new})"
            elif how is Merge.HIGH:
                value = f"{dialect.high}({old}, {new})"
            elif how is Merge.TOP:
                # SQLite's two-argument max() is NULL when either side is
                value = (
                    f"greatest({old}, {new})"
                    if dialect.pg
                    else f"coalesce(max({old}, {new}), {old}, {new})"
                )
            elif dialect.pg:  # merged in Python from the value read first
                value = f"coalesce({new}, {old})"
            elif how is Merge.HIST:
                value = f"llmtally_merge_hist({old}, {new})"
            else:
                value = f"llmtally_or_bits({old}, {new})"
            parts.append(f"{name} = {value}")
        return ", ".join(parts)

    def _tail(self, dialect: Dialect) -> str:
        tail = f" ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {self._set(dialect)}"
        if self.returning:
            tail += f" RETURNING {', '.join(self.returning)}"
        return tail

    def _statement(self, dialect: Dialect, rows: int) -> str:
        sql = self._sql.get((dialect.name, rows))
        if sql is None:
            cols = ", ".join(self.columns)
            if dialect.pg:
                # binary parameters: arrays of thousands of values parse ~35% faster
                arrays = ", ".join(f"%b::{_pg_type(self.table.c[c])}[]" for c in self.columns)
                body = f"SELECT * FROM unnest({arrays})"
            else:
                one = f"({', '.join('?' * len(self.columns))})"
                body = "VALUES " + ", ".join([one] * rows)
            sql = f"INSERT INTO {self.name} ({cols}) {body}{self._tail(dialect)}"
            self._sql[(dialect.name, rows)] = sql
        return sql

    def upsert(self, db: Any, dialect: Dialect, accs: dict[Key, Acc]) -> list[tuple[Any, ...]]:
        """Merge ``accs`` into the table in the caller's transaction; the RETURNING rows.

        ``db`` is a sqlite3 connection or a psycopg cursor.
        """
        if not accs:
            return []
        if dialect.pg:
            self._read_blobs(db, accs)
            rows = self.params(accs)
            columns = [list(c) for c in zip(*rows, strict=True)]
            for i in self._floats:  # a sum that stayed 0 is an int: one type per array
                columns[i] = [None if v is None else float(v) for v in columns[i]]
            cur = db.execute(self._statement(dialect, 0), columns)
            return list(cur.fetchall()) if self.returning else []
        rows = self.params(accs)
        returned: list[tuple[Any, ...]] = []
        flat = itertools.chain.from_iterable
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start : start + _SQLITE_ROWS]
            cur = db.execute(self._statement(dialect, len(chunk)), list(flat(chunk)))
            if self.returning:
                returned += cur.fetchall()
        return returned

    def _read_blobs(self, cur: Any, accs: dict[Key, Acc]) -> None:
        """PostgreSQL: merge the stored histograms/bitmaps of existing keys into ``accs``."""
        n = len(self.keys)
        blobs = [(i + n, how) for i, how in self._blobs]
        if not blobs:
            return
        wanted = [k for k, acc in accs.items() if any(acc[i - n] for i, _ in blobs)]
        if not wanted:
            return
        names = [self.columns[i] for i, _ in blobs]
        keys = ", ".join(self.keys)
        arrays = ", ".join(f"%b::{_pg_type(self.table.c[k])}[]" for k in self.keys)
        match = " AND ".join(f"t.{k} = w.{k}" for k in self.keys)
        # one primary-key probe per wanted key: the LIMIT keeps the planner from turning
        # the lookups into a hash join over the whole table
        sql = (
            f"SELECT w.*, x.* FROM unnest({arrays}) AS w ({keys}) CROSS JOIN LATERAL "
            f"(SELECT {', '.join(names)} FROM {self.name} t WHERE {match} LIMIT 1) x"
        )
        for found in cur.execute(sql, [list(c) for c in zip(*wanted, strict=True)]).fetchall():
            acc = accs[tuple(found[:n])]
            for (i, how), blob in zip(blobs, found[n:], strict=True):
                if how is Merge.HIST:
                    sketch.merge_blob(acc[i - n], blob)
                else:
                    acc[i - n] |= decode_bits(blob)

    def insert(self, conn: sa.Connection, accs: dict[Key, Acc]) -> None:
        """Insert complete rows (a rebuild's) through SQLAlchemy."""
        if accs:
            cols = self.columns
            rows = [dict(zip(cols, row, strict=True)) for row in self.params(accs)]
            conn.execute(sa.insert(self.table), rows)


def _hist_merge(a: sketch.Histogram, b: sketch.Histogram) -> sketch.Histogram:
    return sketch.merge(a, b)


_BLOBS = (Merge.HIST, Merge.BITS)
_ZERO: dict[Merge, Callable[[], Any]] = {
    Merge.SUM: int,
    Merge.HIST: dict,
    Merge.BITS: int,
    Merge.NEWEST: lambda: None,
    Merge.LOW: lambda: None,
    Merge.HIGH: lambda: None,
    Merge.TOP: lambda: None,
}
_MERGE: dict[Merge, Callable[[Any, Any], Any]] = {
    Merge.SUM: lambda a, b: a + b,
    Merge.HIST: _hist_merge,
    Merge.BITS: lambda a, b: a | b,
    Merge.NEWEST: lambda a, b: a if b is None else b,
    Merge.LOW: lambda a, b: b if a is None else a if b is None else min(a, b),
    Merge.HIGH: lambda a, b: b if a is None else a if b is None else max(a, b),
    Merge.TOP: lambda a, b: b if a is None else a if b is None else max(a, b),
}


@dataclass(frozen=True, slots=True)
class Window:
    """A rebuild's scope: whole UTC days in [since, until), one project or all."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None

    @property
    def whole(self) -> bool:
        """Whether the window covers all time."""
        return self.since is None and self.until is None


class Derived(Protocol):
    """A derived table (or a few kept together) and how it is maintained and rebuilt."""

    name: str
    tables: tuple[sa.Table, ...]
    # event columns the maintenance reads (a rebuild by replay selects only these)
    reads: tuple[str, ...]
    # True: rebuilt by replaying the window's events through ``maintain``
    replay: bool

    def maintain(self, db: Any, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> None:
        """Apply the deltas of ``rows`` (new events, ``COLUMN_NAMES`` order) in the transaction."""

    def clear(self, conn: sa.Connection, window: Window) -> None:
        """Delete what a rebuild of ``window`` recomputes."""

    def rebuild(self, conn: sa.Connection, window: Window) -> None:
        """Recompute ``window`` after ``clear`` (non-replayed tables only)."""


def clear_buckets(conn: sa.Connection, tables: Iterable[sa.Table], window: Window) -> None:
    """Delete the rows of bucketed tables inside ``window``."""
    for table in tables:
        gone = sa.delete(table)
        if window.since is not None:
            gone = gone.where(table.c.bucket >= window.since)
        if window.until is not None:
            gone = gone.where(table.c.bucket < window.until)
        if window.project is not None:
            gone = gone.where(table.c.project == window.project)
        conn.execute(gone)


def utc(value: Any) -> Any:
    """An aware datetime in UTC (SQLite hands datetimes back naive; they are UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _positions() -> dict[str, int]:
    from llmtally.event import COLUMN_NAMES

    return {name: i for i, name in enumerate(COLUMN_NAMES)}


# where each event field sits in a row of the write path (``COLUMN_NAMES`` order)
POS = _positions()
