"""The store's error boundary: driver and SQLAlchemy errors become ``StoreError``.

Every public store operation (opening, migrating, pinging, retention, re-pricing, rebuilds)
runs inside ``store_errors``: a ``sqlalchemy.exc`` error, a ``sqlite3`` or ``psycopg``
error or an ``OSError`` (a file that cannot be created, a socket that cannot connect)
leaves it as a ``StoreError`` carrying the URL with the password masked, the original as
``__cause__``. llmtally's own errors pass through unchanged.

``Store.write`` is deliberately not wrapped: the writer classifies raw driver exceptions
(data errors are isolated, a lost connection is retried) and needs them as they are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from llmtally.errors import LlmtallyError, StoreError


def safe_url(engine_or_url: sa.Engine | sa.URL | str) -> str:
    """A URL for messages: the password masked."""
    if isinstance(engine_or_url, sa.Engine):
        url = engine_or_url.url
    elif isinstance(engine_or_url, str):
        try:
            url = sa.make_url(engine_or_url)
        except sa.exc.ArgumentError:
            # not a URL SQLAlchemy can parse: at least never show what precedes the host
            return engine_or_url.rsplit("@", 1)[-1]
    else:
        url = engine_or_url
    return url.render_as_string(hide_password=True)


def is_store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure the boundary turns into ``StoreError``."""
    if isinstance(exc, LlmtallyError):
        return False
    if isinstance(exc, (sa.exc.SQLAlchemyError, sqlite3.Error, OSError)):
        return True
    # psycopg is imported only when PostgreSQL is used: recognize its errors by module
    return any(cls.__module__.startswith("psycopg") for cls in type(exc).__mro__[:-2])


def describe(exc: BaseException) -> str:
    """The original error in one line: its class and the first line of its message."""
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


@contextmanager
def store_errors(where: sa.Engine | sa.URL | str, doing: str) -> Iterator[None]:
    """Re-raise database failures inside the block as ``StoreError("<doing> failed: …")``."""
    try:
        yield
    except Exception as exc:
        if not is_store_failure(exc):
            raise
        raise StoreError(f"{doing} failed: {describe(exc)}", url=safe_url(where)) from exc
