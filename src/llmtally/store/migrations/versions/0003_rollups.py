"""hourly rollups for instant reports, and an index for trace look-ups

Revision ID: 0003_rollups
Revises: 0002_registry_provider_length

``rollup_hourly`` (and ``rollup_daily``, per UTC day) holds, per hour and per (project,
kind, feature, model, provider, status, error_type, name), the counts, token and cost sums
and latency/TTFT histograms
of ``llm_call`` and ``tool_call`` events. The write path keeps it current; existing
events are rolled up by the one rebuild that runs at head (revision 0005 marks the
tables it finds empty beside events as stale): a migration never calls live code.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rollups"
down_revision = "0002_registry_provider_length"
branch_labels = None
depends_on = None

DIMENSIONS = ("project", "kind", "feature", "model", "provider", "status", "error_type", "name")


def upgrade() -> None:
    for table in ("rollup_hourly", "rollup_daily"):
        op.create_table(
            table,
            sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
            *(sa.Column(name, sa.String(200), primary_key=True) for name in DIMENSIONS),
            sa.Column("calls", sa.BigInteger(), nullable=False),
            sa.Column("errors", sa.BigInteger(), nullable=False),
            sa.Column("cost_usd", sa.Double(), nullable=False),
            sa.Column("priced_calls", sa.BigInteger(), nullable=False),
            sa.Column("input_tokens", sa.BigInteger(), nullable=False),
            sa.Column("output_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
            sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
            sa.Column("latency_sum", sa.Double(), nullable=False),
            sa.Column("latency_count", sa.BigInteger(), nullable=False),
            sa.Column("ttft_sum", sa.Double(), nullable=False),
            sa.Column("ttft_count", sa.BigInteger(), nullable=False),
            sa.Column("input_count", sa.BigInteger(), nullable=False),
            sa.Column("output_count", sa.BigInteger(), nullable=False),
            sa.Column("example_error", sa.Text()),
            sa.Column("latency_hist", sa.LargeBinary()),
            sa.Column("ttft_hist", sa.LargeBinary()),
        )
    op.create_index("ix_events_trace_id", "events", ["trace_id"])


def downgrade() -> None:
    op.drop_table("rollup_daily")
    op.drop_index("ix_events_trace_id", "events")
    op.drop_table("rollup_hourly")
