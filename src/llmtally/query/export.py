"""Stream events out of the store as CSV or JSON Lines, in constant memory.

Every column of the ``events`` table is written, in table order, with the values of
``query.values``; ``metadata`` is a JSON object in JSONL and its JSON text in CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Final, Literal

import orjson
import sqlalchemy as sa

from llmtally.query.connect import connect
from llmtally.query.filters import Filters
from llmtally.query.values import csv_value, json_value
from llmtally.store.schema import events

# str(): SQLAlchemy names are a str subclass, which orjson refuses as keys
COLUMNS: Final = tuple(str(column.name) for column in events.columns)
_CHUNK: Final = 2_000


def _condition(filters: Filters | None, kind: str | None) -> sa.ColumnElement[bool]:
    return (filters or Filters()).where(kind=kind)


def count_events(
    engine: sa.Engine, filters: Filters | None = None, *, kind: str | None = None
) -> int:
    """How many events ``export_events`` would write with the same arguments."""
    query = sa.select(sa.func.count()).select_from(events).where(_condition(filters, kind))
    with connect(engine) as conn:
        return int(conn.execute(query).scalar_one())


def _rows(
    engine: sa.Engine, filters: Filters | None, kind: str | None
) -> Iterator[Sequence[sa.Row[Any]]]:
    query = (
        sa.select(events)
        .where(_condition(filters, kind))
        .order_by(events.c.occurred_at, events.c.event_id)
    )
    with connect(engine) as conn:
        # server-side cursor on PostgreSQL; on SQLite rows are read from the cursor as we go
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(query)
        yield from result.partitions(_CHUNK)


def export_events(
    engine: sa.Engine,
    out: IO[str],
    fmt: Literal["csv", "jsonl"],
    filters: Filters | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    kind: str | None = None,
) -> int:
    """Write every matching event to ``out`` (oldest first); return how many were written."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"fmt must be 'csv' or 'jsonl', got {fmt!r}")
    written = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    for chunk in _rows(engine, filters, kind):
        if writer is not None:
            writer.writerows([csv_value(v) for v in row] for row in chunk)
        else:
            out.write(
                "".join(
                    orjson.dumps(dict(zip(COLUMNS, map(json_value, row), strict=True))).decode()
                    + "\n"
                    for row in chunk
                )
            )
        written += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return written
