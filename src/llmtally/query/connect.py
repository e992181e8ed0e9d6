"""The query layer's one way to the database, and its error boundary.

Every report and export reads through ``connect(engine)``: one read transaction, tuned
for rollup range scans on PostgreSQL, and driver or SQLAlchemy errors turned into
``StoreError`` (the URL's password hidden, the original as ``__cause__``), so views
never see a driver's exception types.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from llmtally.errors import StoreError


@contextlib.contextmanager
def connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for one report (read-only work, one transaction)."""
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Rollup rows are stored in bucket order, so an index range over a window
                # reads few pages; PostgreSQL's default random_page_cost (4, tuned for
                # spinning disks) picks a sequential scan of the whole table instead.
                # SET LOCAL lasts for this transaction only (safe behind poolers).
                conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise store_error(engine, exc) from exc


def store_error(engine: sa.Engine, exc: sa.exc.SQLAlchemyError) -> StoreError:
    """The ``StoreError`` for a database error met while reading ``engine``."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else type(cause).__name__
    return StoreError(
        f"the database could not be read: {first}",
        url=engine.url.render_as_string(hide_password=True),
    )
