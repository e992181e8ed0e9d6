"""derived tables are rebuilt at head, never by a migration; actor rollups gain two sums

Revision ID: 0005_derived_state
Revises: 0004_activity_rollups

``llmtally_derived_state`` lists the derived tables a migration changed or created
empty beside existing events: after the last migration, the store rebuilds them once
from the events with the code of the head revision, and deletes the marks. Migrations
themselves only change the schema and mark tables here (plain SQL, no llmtally code).

This revision marks every derived table that earlier revisions created empty while
events existed (they no longer roll anything up themselves), and adds
``cache_write_tokens`` and ``reasoning_tokens`` to the actor rollups, whose existing rows
are then stale.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_derived_state"
down_revision = "0004_activity_rollups"
branch_labels = None
depends_on = None

STATE = "llmtally_derived_state"
ROLLED = "kind IN ('llm_call', 'tool_call')"
# a derived table is stale when it is empty although events it rolls up exist
STALE_IF_EMPTY = {
    "rollup_5min": ROLLED,
    "rollup_hourly": ROLLED,
    "rollup_daily": ROLLED,
    "rollup_feedback_hourly": "kind = 'feedback'",
    "rollup_actor_bits": "kind = 'llm_call' AND actor_id IS NOT NULL",
    "session_totals": "kind = 'llm_call' AND session_id IS NOT NULL",
}
NEW_ACTOR_SUMS = ("cache_write_tokens", "reasoning_tokens")
ACTOR_TABLES = ("rollup_actor_hourly", "rollup_actor_daily")


def _mark(table: str, reason: str, condition: str) -> None:
    op.execute(f"INSERT INTO {STATE} (name, reason) SELECT '{table}', '{reason}' WHERE {condition}")


def upgrade() -> None:
    op.create_table(
        STATE,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(200)),
    )
    for table, rolled in STALE_IF_EMPTY.items():
        _mark(
            table,
            "created empty beside existing events",
            f"EXISTS (SELECT 1 FROM events WHERE {rolled}) AND NOT EXISTS (SELECT 1 FROM {table})",
        )
    for table in ACTOR_TABLES:
        with op.batch_alter_table(table) as batch:
            for name in NEW_ACTOR_SUMS:
                batch.add_column(
                    sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
                )
        _mark(
            table,
            "gained cache_write_tokens and reasoning_tokens",
            "EXISTS (SELECT 1 FROM events WHERE kind = 'llm_call')",
        )


def downgrade() -> None:
    for table in ACTOR_TABLES:
        with op.batch_alter_table(table) as batch:
            for name in NEW_ACTOR_SUMS:
                batch.drop_column(name)
    op.drop_table(STATE)
