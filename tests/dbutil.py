"""Test helpers that read a store back through SQLAlchemy, independently of llmtally's queries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from llmtally.store.base import normalize_url


def engine(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on the same database."""
    return sa.create_engine(normalize_url(url))


def rows(url: str, sql: str = "SELECT * FROM events", **params: Any) -> list[dict[str, Any]]:
    """Rows of a query as dicts, with timestamps as aware UTC datetimes."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            result = [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    finally:
        eng.dispose()
    for row in result:
        for key, value in row.items():
            if isinstance(value, str) and key in ("occurred_at", "first_seen", "last_seen"):
                row[key] = datetime.fromisoformat(value).replace(tzinfo=UTC)
            elif isinstance(value, uuid.UUID):
                row[key] = str(value)
            elif isinstance(value, datetime) and value.tzinfo is None:
                row[key] = value.replace(tzinfo=UTC)
    return result


def count(url: str, where: str = "1=1", **params: Any) -> int:
    """Number of events matching a SQL condition."""
    return int(rows(url, f"SELECT count(*) AS n FROM events WHERE {where}", **params)[0]["n"])
