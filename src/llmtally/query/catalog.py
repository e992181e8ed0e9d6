"""Facts about the database itself: schema state, event counts, the model price registry."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmtally.query.connect import connect
from llmtally.store import migrate
from llmtally.store.schema import events, models


def database_status(engine: sa.Engine) -> dict[str, Any]:
    """Schema revision vs head, event counts, first/last event time."""
    with connect(engine) as conn:
        current = migrate.current_revision(conn)
        head = migrate.head_revision()
        facts: dict[str, Any] = {
            "schema_revision": current,
            "head_revision": head,
            "up_to_date": current == head,
            "events": None,
            "llm_calls": None,
            "unpriced_calls": None,
            "first_event_at": None,
            "last_event_at": None,
        }
        if current is None:
            return facts
        c = events.c
        is_call = c.kind == "llm_call"
        row = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.sum(sa.case((is_call, 1), else_=0)),
                sa.func.sum(sa.case((is_call & c.cost_usd.is_(None), 1), else_=0)),
                sa.func.min(c.occurred_at),
                sa.func.max(c.occurred_at),
            )
        ).one()
    facts.update(
        events=int(row[0]),
        llm_calls=int(row[1] or 0),
        unpriced_calls=int(row[2] or 0),
        first_event_at=row[3],
        last_event_at=row[4],
    )
    return facts


def unpriced_models(engine: sa.Engine) -> list[dict[str, Any]]:
    """Registry rows of models seen without a known price (their calls cost null)."""
    m = models.c
    query = (
        sa.select(m.provider, m.model, m.first_seen, m.last_seen)
        .where(m.is_placeholder.is_(True))
        .order_by(m.model, m.provider)
    )
    with connect(engine) as conn:
        if not sa.inspect(conn).has_table("models"):
            return []
        return [
            {
                "provider": r.provider or None,
                "model": r.model,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
            }
            for r in conn.execute(query)
        ]


def registry_entry(
    engine: sa.Engine, model: str, provider: str | None = None
) -> dict[str, Any] | None:
    """The model registry row of ``model`` (first seen, placeholder or priced), if calls used it."""
    query = sa.select(models).where(models.c.model == model)
    if provider is not None:
        query = query.where(models.c.provider == provider)
    with connect(engine) as conn:
        if not sa.inspect(conn).has_table("models"):
            return None
        row = conn.execute(query.order_by(models.c.first_seen)).first()
    if row is None:
        return None
    return {
        "provider": row.provider or None,
        "model": row.model,
        "price_source": row.price_source,
        "is_placeholder": bool(row.is_placeholder),
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
    }
