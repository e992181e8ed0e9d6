"""Operations commands: ``db migrate|status`` and ``status``."""

from __future__ import annotations

import click

from llmtally.cli.common import CliGroup, db_option, opened_store
from llmtally.cli.output import console, output_options, render, render_pairs
from llmtally.query import catalog
from llmtally.store import migrate


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


@click.command()
@db_option
@output_options
def status(db: str, fmt: str) -> None:
    """Database, schema revision, event counts and models without a known price."""
    with opened_store(db, migrate=False) as store:
        facts = catalog.database_status(store.engine)
        placeholders = catalog.unpriced_models(store.engine) if facts["schema_revision"] else []
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
