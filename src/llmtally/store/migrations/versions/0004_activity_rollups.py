"""5-minute rollups, per-actor rollups, session totals and feedback rollups

Revision ID: 0004_activity_rollups
Revises: 0003_rollups

``rollup_5min`` (the call rollups per 5 minutes, so that a window's ragged ends read at
most 5 minutes of raw events), ``rollup_actor_hourly``/``_daily`` (llm_call sums per
actor; latency histograms for agents), ``session_totals`` (one row per project and
session; ``session_bounds`` holds the longest session's duration),
``rollup_feedback_hourly``/``_daily`` (feedback on the call's hour and dimensions, rated
calls by signal combination), ``feedback_orphans`` (feedback waiting for its call) and
``actor_numbers``/``rollup_actor_bits`` (active actors as bitmaps).
Existing events are rolled up by the one rebuild that runs at head (revision 0005 marks
the tables it finds empty beside events as stale): a migration never calls live code.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_activity_rollups"
down_revision = "0003_rollups"
branch_labels = None
depends_on = None

ACTOR_SUMS = ("calls", "errors", "cost_usd", "priced_calls", "input_tokens", "output_tokens",
              "cache_read_tokens", "latency_sum", "latency_count")  # fmt: skip
SESSION_SUMS = ("turns", "errors", "cost_usd", "priced_calls", "input_tokens", "output_tokens",
                "cache_read_tokens")  # fmt: skip
FEEDBACK_DIMENSIONS = ("project", "feature", "model", "provider", "status")
FEEDBACK_SUMS = ("feedback", "up", "down", "regenerated", "edited",
                 *(f"rated_{k}" for k in range(8)))  # fmt: skip
DIMENSIONS = ("project", "kind", "feature", "model", "provider", "status", "error_type", "name")
ROLLUP_SUMS = ("calls", "errors", "cost_usd", "priced_calls", "input_tokens", "output_tokens",
               "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "latency_sum",
               "latency_count", "ttft_sum", "ttft_count", "input_count",
               "output_count")  # fmt: skip
FLOATS = frozenset({"cost_usd", "latency_sum", "ttft_sum"})


def _sum(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Double() if name in FLOATS else sa.BigInteger(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rollup_5min",
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        *(sa.Column(name, sa.String(200), primary_key=True) for name in DIMENSIONS),
        *(_sum(name) for name in ROLLUP_SUMS),
        sa.Column("example_error", sa.Text()),
        sa.Column("latency_hist", sa.LargeBinary()),
        sa.Column("ttft_hist", sa.LargeBinary()),
    )
    for table in ("rollup_actor_hourly", "rollup_actor_daily"):
        op.create_table(
            table,
            sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
            sa.Column("project", sa.String(200), primary_key=True),
            sa.Column("actor_type", sa.String(200), primary_key=True),
            sa.Column("actor_id", sa.String(200), primary_key=True),
            *(_sum(name) for name in ACTOR_SUMS),
            sa.Column("latency_hist", sa.LargeBinary()),
        )
    op.create_table(
        "session_totals",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("actor_id", sa.String(200)),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        *(_sum(name) for name in SESSION_SUMS),
    )
    op.create_index("ix_session_totals_first_at", "session_totals", ["first_at"])
    op.create_index("ix_session_totals_cost", "session_totals", ["cost_usd"])
    bounds = op.create_table(
        "session_bounds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("max_duration_us", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(bounds, [{"id": 1, "max_duration_us": 0}])
    for table in ("rollup_feedback_hourly", "rollup_feedback_daily"):
        op.create_table(
            table,
            sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
            *(sa.Column(name, sa.String(200), primary_key=True) for name in FEEDBACK_DIMENSIONS),
            *(sa.Column(name, sa.BigInteger(), nullable=False) for name in FEEDBACK_SUMS),
        )
    op.create_table("feedback_orphans", sa.Column("call_id", sa.String(200), primary_key=True))
    op.create_table(
        "actor_numbers",
        sa.Column("actor_id", sa.String(200), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False, unique=True),
    )
    op.create_table(
        "rollup_actor_bits",
        sa.Column("level", sa.String(1), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("bits", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in ("rollup_actor_bits", "actor_numbers", "feedback_orphans",
                  "rollup_feedback_daily", "rollup_feedback_hourly", "session_bounds",
                  "session_totals", "rollup_actor_daily", "rollup_actor_hourly",
                  "rollup_5min"):  # fmt: skip
        op.drop_table(table)
