"""Operations commands: ``db migrate|status`` and ``status``."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa

from llmtally.cli.common import CliGroup, db_option, opened_store
from llmtally.cli.output import console, output_options, render, render_pairs
from llmtally.store import migrate
from llmtally.store.schema import events, models


@click.group("db", cls=CliGroup)
def db_group() -> None:
    """Database schema: apply migrations, show which are applied."""


@db_group.command("migrate")
@db_option
def db_migrate(db: str) -> None:
    """Apply every pending schema migration (run once by a role allowed to change the schema)."""
    with opened_store(db, migrate=False) as store:
        applied = store.migrate()
        where = store.safe_url
    if applied:
        click.echo(f"Applied {', '.join(applied)} to {where}.")
    else:
        click.echo(f"Already up to date ({migrate.head_revision()}): {where}.")


@db_group.command("status")
@db_option
@output_options
def db_status(db: str, fmt: str) -> None:
    """Every shipped migration and whether the database has it."""
    with opened_store(db, migrate=False) as store:
        revisions = migrate.status(store.engine)
    rows = [
        {"revision": r.revision, "description": r.description, "applied": r.applied}
        for r in revisions
    ]
    render(rows, fmt, title="Schema migrations", columns=("revision", "description", "applied"))


def _facts(engine: sa.Engine) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    # TODO(query): a Reports.status()/models() report should own these queries
    with engine.connect() as conn:
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
        placeholders: list[dict[str, Any]] = []
        if current is None:
            return facts, placeholders
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
        m = models.c
        for found in conn.execute(
            sa.select(m.provider, m.model, m.first_seen, m.last_seen)
            .where(m.is_placeholder.is_(True))
            .order_by(m.model, m.provider)
        ):
            placeholders.append(
                {
                    "provider": found.provider or None,
                    "model": found.model,
                    "first_seen": found.first_seen,
                    "last_seen": found.last_seen,
                }
            )
    return facts, placeholders


@click.command()
@db_option
@output_options
def status(db: str, fmt: str) -> None:
    """Database, schema revision, event counts and models without a known price."""
    with opened_store(db, migrate=False) as store:
        facts, placeholders = _facts(store.engine)
        row = {"database_url": store.safe_url, **facts}
    row["unpriced_models"] = ", ".join(p["model"] for p in placeholders) or None
    if fmt != "table":
        render([row], fmt)
        return
    render_pairs(
        {k: v for k, v in row.items() if k != "unpriced_models"}, fmt, title="llmtally status"
    )
    if not row["up_to_date"]:
        console().print("[yellow]The schema is behind: run `llmtally db migrate`.[/yellow]")
    if placeholders:
        render(placeholders, fmt, title="Models without a known price (their cost is null)")
        click.echo(
            "Add them to [custom_pricing] in the config file, then run `llmtally prices recompute`."
        )
