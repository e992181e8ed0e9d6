"""Retention and re-pricing: whole-table maintenance run by the writer, the CLI or cron.

Database failures leave these functions as ``StoreError`` (``store.boundary``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from llmtally.capture.pricing import PriceBook
from llmtally.store import rollups
from llmtally.store.boundary import store_errors
from llmtally.store.schema import events, models, session_totals

_CHUNK = 5_000


def delete_older_than(
    engine: sa.Engine,
    *,
    days: float | None = None,
    cutoff: datetime | None = None,
    project: str | None = None,
) -> int:
    """Delete events that occurred before the cutoff (``days`` ago); return how many."""
    if cutoff is None:
        if days is None:
            raise ValueError("give days or cutoff")
        cutoff = datetime.now(UTC) - timedelta(days=days)
    condition = events.c.occurred_at < cutoff
    if project is not None:
        condition = condition & (events.c.project == project)
    with store_errors(engine, "deleting old events"), engine.begin() as conn:
        result = conn.execute(sa.delete(events).where(condition))
        deleted = int(result.rowcount or 0)
        if deleted:
            # whole days before the cutoff go; the cutoff's own day is recomputed
            in_project = (lambda t: t.c.project == project) if project else (lambda t: sa.true())
            for table in rollups.BUCKET_TABLES:
                conn.execute(
                    sa.delete(table).where(
                        (table.c.bucket < rollups.datetime_day(cutoff)) & in_project(table)
                    )
                )
            conn.execute(
                sa.delete(session_totals).where(
                    (session_totals.c.last_at < rollups.datetime_day(cutoff))
                    & in_project(session_totals)
                )
            )
            rollups.rebuild_on(conn, since=cutoff, until=cutoff, project=project)
    return deleted


def _reprice_condition(
    since: datetime | None, until: datetime | None, only_missing: bool
) -> sa.ColumnElement[bool]:
    cols = events.c
    condition = (cols.kind == "llm_call") & cols.model.is_not(None)
    if since is not None:
        condition &= cols.occurred_at >= since
    if until is not None:
        condition &= cols.occurred_at < until
    if only_missing:
        condition &= cols.cost_usd.is_(None)
    return condition


def count_to_reprice(
    engine: sa.Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    only_missing: bool = True,
) -> int:
    """How many calls ``recompute_costs`` with the same arguments would examine."""
    condition = _reprice_condition(since, until, only_missing)
    with store_errors(engine, "counting calls to re-price"), engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(condition)).scalar_one())


def recompute_costs(
    engine: sa.Engine,
    prices: PriceBook,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    only_missing: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-price LLM calls (by default only those with no cost); return how many changed.

    Each call is priced at its own ``occurred_at``, so a later price change does not
    rewrite history unless the price table says it applied then.
    """
    cols = events.c
    condition = _reprice_condition(since, until, only_missing)
    query = sa.select(
        cols.event_id,
        cols.provider,
        cols.model,
        cols.occurred_at,
        cols.input_tokens,
        cols.output_tokens,
        cols.cache_read_tokens,
        cols.cache_write_tokens,
        cols.cache_write_1h_tokens,
        cols.reasoning_tokens,
        cols.cost_usd,
    ).where(condition)
    update = (
        sa.update(events)
        .where(cols.event_id == sa.bindparam("b_id"))
        .values(cost_usd=sa.bindparam("b_cost"))
    )
    changed = 0
    first: datetime | None = None
    last: datetime | None = None
    seen_models: set[tuple[str, str]] = set()
    with (
        store_errors(engine, "re-pricing calls"),
        engine.connect() as reader,
        engine.connect() as writer,
    ):
        result = reader.execution_options(stream_results=True, yield_per=_CHUNK).execute(query)
        for chunk in result.partitions(_CHUNK):
            updates = []
            for row in chunk:
                at = row.occurred_at
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                cost = prices.cost(
                    row.provider,
                    row.model,
                    at.timestamp(),
                    input_tokens=row.input_tokens or 0,
                    output_tokens=row.output_tokens or 0,
                    cache_read_tokens=row.cache_read_tokens or 0,
                    cache_write_tokens=row.cache_write_tokens or 0,
                    cache_write_1h_tokens=row.cache_write_1h_tokens or 0,
                    reasoning_tokens=row.reasoning_tokens or 0,
                )
                seen_models.add((row.provider or "", row.model))
                if cost is not None and cost != row.cost_usd:
                    updates.append({"b_id": row.event_id, "b_cost": cost})
                    first = at if first is None else min(first, at)
                    last = at if last is None else max(last, at)
            if updates:
                writer.execute(update, updates)
                writer.commit()
                changed += len(updates)
            if progress is not None:
                progress(len(chunk))
        _refresh_registry(writer, prices, seen_models)
        if first is not None and last is not None:
            # the cost sums of the hours that changed
            rollups.rebuild_on(writer, since=first, until=last + timedelta(microseconds=1))
        writer.commit()
    return changed


def _refresh_registry(conn: sa.Connection, prices: PriceBook, keys: set[tuple[str, str]]) -> None:
    """Update registry rows of re-priced models so placeholders become priced."""
    for provider, model in keys:
        info = prices.info(provider or None, model)
        conn.execute(
            sa.update(models)
            .where((models.c.provider == provider) & (models.c.model == model))
            .values(
                price_source=info.source,
                matched_model=info.matched_model,
                input_per_mtok=info.input_per_mtok,
                output_per_mtok=info.output_per_mtok,
                cache_read_per_mtok=info.cache_read_per_mtok,
                cache_write_per_mtok=info.cache_write_per_mtok,
                is_placeholder=info.source == "unknown",
            )
        )
