"""Alembic environment: llmtally always hands over an open connection (see store/migrate.py)."""

from __future__ import annotations

from alembic import context

from llmtally.store.migrate import VERSION_TABLE
from llmtally.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # sqlite-utils style: each migration commits on its own, so a failure leaves the
    # database at the last good migration
    transaction_per_migration=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
