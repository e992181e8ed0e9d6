"""The query layer's one way to the database, and its error boundary.

Every report and export reads through ``connect(engine)``: one read transaction, tuned
for rollup range scans on PostgreSQL, inside the store's own error boundary
(``store.boundary``: driver and SQLAlchemy errors become ``StoreError`` with the URL's
password hidden and the original as ``__cause__``), so views never see a driver's
exception types.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from llmtally.store.boundary import store_errors


@contextlib.contextmanager
def connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for one report (read-only work, one transaction)."""
    with store_errors(engine, "reading the database"), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Rollup rows are stored in bucket order, so an index range over a window
            # reads few pages; PostgreSQL's default random_page_cost (4, tuned for
            # spinning disks) picks a sequential scan of the whole table instead.
            # SET LOCAL lasts for this transaction only (safe behind poolers).
            conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
        yield conn
