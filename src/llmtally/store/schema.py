"""Table definitions (SQLAlchemy Core) for every engine.

The ``events`` columns are derived from ``capture.event.FIELDS`` so that the event spec
stays the one source of truth; migrations freeze them (``store/migrations``) and a test
checks that a migrated database equals this metadata.

Storage choices:

* ``occurred_at`` is ``timestamptz`` on PostgreSQL and ISO text ``YYYY-MM-DD
  HH:MM:SS.ffffff`` (UTC) on SQLite: sortable, readable, and what SQLAlchemy's SQLite
  ``DateTime`` reads back.
* ``cost_usd`` is a double: a per-event cost has at most ~11 significant digits (a price
  with ≤4 digits times a token count), far inside a double's 15–17.
* ``metadata`` is ``jsonb`` on PostgreSQL and JSON text on SQLite.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmtally.event import FIELDS, FieldSpec

metadata = sa.MetaData()

NOT_NULL = frozenset({"event_id", "occurred_at", "project", "kind", "schema_version"})


class _Uuid(sa.types.TypeDecorator[str]):
    """UUID on PostgreSQL, 36-character text elsewhere."""

    impl = sa.String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        """The PostgreSQL type only on PostgreSQL: importing SQLAlchemy's PostgreSQL
        dialect costs a SQLite report's start ~40 ms."""
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return dialect.type_descriptor(postgresql.UUID(as_uuid=False))
        return dialect.type_descriptor(sa.String(36))


class _Json(sa.types.TypeDecorator[Any]):
    """jsonb on PostgreSQL, JSON text elsewhere."""

    impl = sa.JSON()
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        """jsonb only on PostgreSQL (see ``_Uuid``)."""
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())


def uuid_type() -> sa.types.TypeEngine[Any]:
    """UUID on PostgreSQL, 36-character text elsewhere."""
    return _Uuid()


def json_type() -> sa.types.TypeEngine[Any]:
    """jsonb on PostgreSQL, JSON text elsewhere."""
    return _Json()


def column_type(spec: FieldSpec) -> sa.types.TypeEngine[Any]:
    """The SQL type of one event field."""
    kind = spec.column
    if kind == "id":
        return uuid_type()
    if kind == "ts":
        return sa.DateTime(timezone=True)
    if kind == "str":
        return sa.String(spec.max_len)
    if kind == "text":
        return sa.Text()
    if kind == "int":
        return sa.BigInteger()
    if kind == "float":
        return sa.Double()
    if kind == "bool":
        return sa.Boolean()
    return json_type()


events = sa.Table(
    "events",
    metadata,
    *(
        sa.Column(
            spec.name,
            column_type(spec),
            primary_key=spec.name == "event_id",
            nullable=spec.name not in NOT_NULL,
        )
        for spec in FIELDS.values()
    ),
    sa.Index("ix_events_occurred_at", "occurred_at"),
    sa.Index("ix_events_project_occurred_at", "project", "occurred_at"),
    sa.Index("ix_events_parent_id", "parent_id"),
    sa.Index("ix_events_trace_id", "trace_id"),
)

actors = sa.Table(
    "actors",
    metadata,
    sa.Column("actor_type", sa.String(16), primary_key=True),
    sa.Column("actor_id", sa.String(200), primary_key=True),
    sa.Column("display_name", sa.String(200)),
    sa.Column("real_name", sa.String(200)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("email", sa.String(320)),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

models = sa.Table(
    "models",
    metadata,
    # provider "" when unknown: primary-key columns cannot be NULL
    sa.Column("provider", sa.String(200), primary_key=True),
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

# Hourly rollups of llm_call and tool_call events (see store/rollups.py). Missing
# dimensions are stored as "" because primary-key columns cannot be NULL.
ROLLUP_DIMENSIONS = (
    "project",
    "kind",
    "feature",
    "model",
    "provider",
    "status",
    "error_type",
    "name",
)
ROLLUP_SUMS = (
    "calls",
    "errors",
    "cost_usd",
    "priced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_sum",
    "latency_count",
    "ttft_sum",
    "ttft_count",
    "input_count",  # calls that reported input tokens: averages are over these
    "output_count",
)
_FLOAT_SUMS = frozenset({"cost_usd", "latency_sum", "ttft_sum"})


def _rollup_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        *(sa.Column(dim, sa.String(200), primary_key=True) for dim in ROLLUP_DIMENSIONS),
        *(
            sa.Column(col, sa.Double() if col in _FLOAT_SUMS else sa.BigInteger(), nullable=False)
            for col in ROLLUP_SUMS
        ),
        sa.Column("example_error", sa.Text()),
        sa.Column("latency_hist", sa.LargeBinary()),
        sa.Column("ttft_hist", sa.LargeBinary()),
    )


# per hour, per UTC day (fewer rows to merge for long windows) and per 5 minutes (so
# that a window's ragged ends read at most 5 minutes of raw events)
rollup_hourly = _rollup_table("rollup_hourly")
rollup_daily = _rollup_table("rollup_daily")
rollup_5min = _rollup_table("rollup_5min")

# Per actor (see store/activity.py): llm_call sums per hour/day and actor; the latency
# histogram is kept for agents only (the agents report), so human rows never need a
# read-modify-write.
ACTOR_SUMS = (
    "calls",
    "errors",
    "cost_usd",
    "priced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "latency_sum",
    "latency_count",
    "cache_write_tokens",  # since 0005 (rebuilt by the rebuild at head)
    "reasoning_tokens",
)
_ACTOR_FLOATS = frozenset({"cost_usd", "latency_sum"})


def _actor_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("actor_type", sa.String(200), primary_key=True),
        sa.Column("actor_id", sa.String(200), primary_key=True),
        *(
            sa.Column(col, sa.Double() if col in _ACTOR_FLOATS else sa.BigInteger(), nullable=False)
            for col in ACTOR_SUMS
        ),
        sa.Column("latency_hist", sa.LargeBinary()),
    )


rollup_actor_hourly = _actor_table("rollup_actor_hourly")
rollup_actor_daily = _actor_table("rollup_actor_daily")

# One row per (project, session): llm_call totals and the first and last call's time.
SESSION_SUMS = (
    "turns",
    "errors",
    "cost_usd",
    "priced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
)
session_totals = sa.Table(
    "session_totals",
    metadata,
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("session_id", sa.String(200), primary_key=True),
    sa.Column("actor_id", sa.String(200)),
    sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    *(
        sa.Column(col, sa.Double() if col == "cost_usd" else sa.BigInteger(), nullable=False)
        for col in SESSION_SUMS
    ),
    sa.Index("ix_session_totals_first_at", "first_at"),
    sa.Index("ix_session_totals_cost", "cost_usd"),
)
# one row (id 1): the longest session seen, in µs; bounds the search for straddlers
session_bounds = sa.Table(
    "session_bounds",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("max_duration_us", sa.BigInteger(), nullable=False),
)

# Feedback rolled onto the hour and dimensions of the call it rates (store/feedback.py).
# ``rated_<k>`` counts rated calls by signal combination k = regenerated | edited << 1 |
# slow << 2, so the quality score's weights can change at query time.
FEEDBACK_DIMENSIONS = ("project", "feature", "model", "provider", "status")
FEEDBACK_SUMS = (
    "feedback",
    "up",
    "down",
    "regenerated",
    "edited",
    *(f"rated_{k}" for k in range(8)),
)


def _feedback_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        *(sa.Column(dim, sa.String(200), primary_key=True) for dim in FEEDBACK_DIMENSIONS),
        *(sa.Column(col, sa.BigInteger(), nullable=False) for col in FEEDBACK_SUMS),
    )


rollup_feedback_hourly = _feedback_table("rollup_feedback_hourly")
rollup_feedback_daily = _feedback_table("rollup_feedback_daily")

# Feedback whose call was not stored yet: rolled up when the call arrives.
feedback_orphans = sa.Table(
    "feedback_orphans",
    metadata,
    sa.Column("call_id", sa.String(200), primary_key=True),
)

# Active actors as bitmaps (store/actor_bits.py): every actor gets a small number; per
# project and 5-minute / hour / day bucket ("m", "h", "d"), the set of actors with a call
# is a zlib-compressed little-endian bitmap. Distinct actors over any window are then
# the population count of an OR of a few dozen blobs.
actor_numbers = sa.Table(
    "actor_numbers",
    metadata,
    sa.Column("actor_id", sa.String(200), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False, unique=True),
)
rollup_actor_bits = sa.Table(
    "rollup_actor_bits",
    metadata,
    sa.Column("level", sa.String(1), primary_key=True),
    sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("project", sa.String(200), primary_key=True),
    sa.Column("bits", sa.LargeBinary(), nullable=False),
)

# Derived tables a migration changed (or created empty) and that must be rebuilt from the
# events: migrations only mark them here; ``Store.migrate()`` runs one rebuild at head
# (``rollups.rebuild_stale``), so no migration ever runs live code.
derived_state = sa.Table(
    "llmtally_derived_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(200)),
)
