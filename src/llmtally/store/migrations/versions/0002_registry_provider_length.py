"""registry provider as long as the event's provider (200)

Revision ID: 0002_registry_provider_length
Revises: 0001_initial

An event may name a provider of up to 200 characters, but the registry's key column
held 100, so registering such a model failed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_registry_provider_length"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.alter_column(
            "provider", existing_type=sa.String(100), type_=sa.String(200), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.alter_column(
            "provider", existing_type=sa.String(200), type_=sa.String(100), existing_nullable=False
        )
