"""initial: events, actors and the model price registry

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

UUID_TYPE = sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", UUID_TYPE, primary_key=True, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("actor_id", sa.String(200)),
        sa.Column("actor_type", sa.String(200)),
        sa.Column("session_id", sa.String(200)),
        sa.Column("trace_id", sa.String(200)),
        sa.Column("parent_id", sa.String(200)),
        sa.Column("feature", sa.String(200)),
        sa.Column("provider", sa.String(200)),
        sa.Column("model", sa.String(200)),
        sa.Column("model_version", sa.String(200)),
        sa.Column("routing_strategy", sa.String(200)),
        sa.Column("status", sa.String(200)),
        sa.Column("error_type", sa.String(200)),
        sa.Column("error_message", sa.Text()),
        sa.Column("finish_reason", sa.String(200)),
        sa.Column("input_tokens", sa.BigInteger()),
        sa.Column("output_tokens", sa.BigInteger()),
        sa.Column("cache_read_tokens", sa.BigInteger()),
        sa.Column("cache_write_tokens", sa.BigInteger()),
        sa.Column("cache_write_1h_tokens", sa.BigInteger()),
        sa.Column("reasoning_tokens", sa.BigInteger()),
        sa.Column("total_tokens", sa.BigInteger()),
        sa.Column("latency_ms", sa.Double()),
        sa.Column("ttft_ms", sa.Double()),
        sa.Column("stream", sa.Boolean()),
        sa.Column("stream_chunks", sa.BigInteger()),
        sa.Column("temperature", sa.Double()),
        sa.Column("max_tokens", sa.BigInteger()),
        sa.Column("top_p", sa.Double()),
        sa.Column("cost_usd", sa.Double()),
        sa.Column("usage_estimated", sa.Boolean()),
        sa.Column("rating", sa.String(200)),
        sa.Column("regenerated", sa.Boolean()),
        sa.Column("edited", sa.Boolean()),
        sa.Column("quality_score", sa.Double()),
        sa.Column("comment", sa.Text()),
        sa.Column("prompt_hash", sa.String(64)),
        sa.Column("prompt_length", sa.BigInteger()),
        sa.Column("input_text", sa.Text()),
        sa.Column("output_text", sa.Text()),
        sa.Column("schema_version", sa.BigInteger(), nullable=False),
        sa.Column("metadata", JSON_TYPE),
    )
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_index("ix_events_project_occurred_at", "events", ["project", "occurred_at"])
    op.create_index("ix_events_parent_id", "events", ["parent_id"])
    op.create_table(
        "actors",
        sa.Column("actor_type", sa.String(16), primary_key=True),
        sa.Column("actor_id", sa.String(200), primary_key=True),
        sa.Column("display_name", sa.String(200)),
        sa.Column("real_name", sa.String(200)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("email", sa.String(320)),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("provider", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("price_source", sa.String(20), nullable=False),
        sa.Column("matched_model", sa.String(200)),
        sa.Column("input_per_mtok", sa.Double()),
        sa.Column("output_per_mtok", sa.Double()),
        sa.Column("cache_read_per_mtok", sa.Double()),
        sa.Column("cache_write_per_mtok", sa.Double()),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("models")
    op.drop_table("actors")
    op.drop_table("events")
