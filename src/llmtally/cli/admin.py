"""Operations commands: ``db migrate|status`` and ``status``."""

from __future__ import annotations

from pathlib import Path

import click

from llmtally.cli.common import CliGroup, db_option, opened_store
from llmtally.cli.output import columns, console, output_options, render, render_pairs


@click.group("db", cls=CliGroup)
def db_group() -> None:
    """Database schema: apply migrations, show which are applied."""


@db_group.command("migrate")
@db_option
def db_migrate(db: str) -> None:
    """Apply every pending schema migration (run once by a role allowed to change the schema)."""
    from llmtally.store import migrate

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
    from llmtally.store import migrate

    with opened_store(db, migrate=False) as store:
        revisions = migrate.status(store.engine)
    rows = [
        {"revision": r.revision, "description": r.description, "applied": r.applied}
        for r in revisions
    ]
    render(
        rows, fmt, title="Schema migrations", columns=columns("revision", "description", "applied")
    )


_PIPELINE_KEYS = (
    "pid", "queued", "written", "duplicates", "spooled", "overflowed", "replayed", "rejected",
    "dead_letters", "dropped", "sampled_out", "invalid", "retries", "circuit_open", "pending",
    "queue_depth", "journal_bytes", "journal_segments", "journal_error", "last_error",
    "last_error_at",
)  # fmt: skip
_SUMMED = (
    "queued", "written", "spooled", "replayed", "rejected", "dropped", "retries", "pending",
    "journal_bytes",
)  # fmt: skip


@click.command()
@db_option
@click.option(
    "--spool-dir",
    default=None,
    help="Spool directory of the processes to report on (default: the one for this database).",
)
@output_options
def status(db: str, spool_dir: str | None, fmt: str) -> None:
    """Database, schema revision, event counts, unpriced models and live pipeline counters."""
    from llmtally.pipeline import deadletter
    from llmtally.pipeline.journal import spool_status
    from llmtally.query import catalog
    from llmtally.tally import default_spool_dir

    with opened_store(db, migrate=False) as store:
        facts = catalog.database_status(store.engine)
        placeholders = catalog.unpriced_models(store.engine) if facts["schema_revision"] else []
        row = {"database_url": store.safe_url, **facts}
    row["unpriced_models"] = ", ".join(p["model"] for p in placeholders) or None
    spool = Path(spool_dir) if spool_dir else default_spool_dir(db)
    live, orphaned = spool_status(spool)
    row["spool_dir"] = str(spool)
    row["spool_files_awaiting_recovery"] = len(orphaned)
    row["spool_bytes_awaiting_recovery"] = sum(_size(path) for path in orphaned)
    row["dead_letters"] = deadletter.count(spool)
    pipelines = [{key: p.get(key) for key in _PIPELINE_KEYS} for p in live]
    errors = [p for p in pipelines if p.get("last_error") or p.get("journal_error")]
    row["last_error"] = (
        (errors[0].get("last_error") or errors[0].get("journal_error")) if errors else None
    )
    if fmt != "table":
        # JSON/CSV stay one flat row: pipeline counters are summed over live processes
        for key in _SUMMED:
            row[f"pipeline_{key}"] = sum(int(p.get(key) or 0) for p in pipelines)
        row["pipelines"] = len(pipelines)
        render([row], fmt, columns=columns(*row))
        return
    shown = [key for key in row if key != "unpriced_models"]
    render_pairs(row, fmt, columns=columns(*shown), title="llmtally status")
    if not row["up_to_date"]:
        console().print("[yellow]The schema is behind: run `llmtally db migrate`.[/yellow]")
    if pipelines:
        render(
            pipelines,
            fmt,
            columns=columns(*_PIPELINE_KEYS),
            title="Live pipelines writing to this database",
        )
    if orphaned:
        console().print(
            f"[yellow]{len(orphaned)} spool file(s) of stopped processes await recovery; "
            "the next process that records to this database writes them.[/yellow]"
        )
    if row["dead_letters"]:
        console().print(
            f"[yellow]{row['dead_letters']} event(s) were refused by the store and are kept "
            f"in {spool}/dead-*.jsonl with the reason.[/yellow]"
        )
    if placeholders:
        render(
            placeholders,
            fmt,
            columns=columns(*placeholders[0]),
            title="Models without a known price (their cost is null)",
        )
        click.echo(
            "Add them to [custom_pricing] in the config file, then run `llmtally prices recompute`."
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
