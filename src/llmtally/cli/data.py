"""Data commands: ``export`` (CSV / JSON Lines, streamed) and ``cleanup`` (retention)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Literal, cast

import click

from llmtally.cli.common import UsageFailure, db_option, opened_store, progress_bar
from llmtally.cli.output import console
from llmtally.event import KINDS
from llmtally.query.timeparse import parse_duration

_KINDS = sorted(KINDS)


def _export_format(fmt: str | None, output: str) -> Literal["csv", "jsonl"]:
    if fmt is None:
        # the file name says what the user wants more often than not
        fmt = "jsonl" if output.lower().endswith((".jsonl", ".ndjson")) else "csv"
    return cast(Literal["csv", "jsonl"], fmt)


@contextlib.contextmanager
def _destination(output: str) -> Iterator[IO[str]]:
    if output == "-":
        yield sys.stdout
        return
    try:
        # newline="" lets the csv module write its own line endings
        handle = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise click.FileError(output, exc.strerror) from None
    with handle:
        yield handle


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="csv or jsonl (one JSON object per line); default: from the file name, else csv.",
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Only the last N days.",
)
@click.option("--since", default=None, help="Start: a duration ago (7d, 24h) or an ISO date.")
@click.option("--until", default=None, help="End (exclusive), same forms.")
@click.option("--project", default=None, help="Only this project.")
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Only this kind of event.")
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    metavar="FILE",
    help="File to write; - is stdout.",
)
@db_option
def export(
    fmt: str | None,
    days: float | None,
    since: str | None,
    until: str | None,
    project: str | None,
    kind: str | None,
    output: str,
    db: str,
) -> None:
    """Export raw events (every column) as CSV or JSON Lines, oldest first."""
    from llmtally.query.export import count_events, export_events
    from llmtally.query.filters import Filters

    if days is not None and since is not None:
        raise UsageFailure("give --days or --since, not both")
    filters = Filters.parse(
        since=f"{days}d" if days is not None else since, until=until, project=project
    )
    chosen = _export_format(fmt, output)
    with _destination(output) as out, opened_store(db) as store:
        total = count_events(store.engine, filters, kind=kind)
        with progress_bar() as progress:
            task = progress.add_task("Exporting", total=total)
            written = export_events(
                store.engine,
                out,
                chosen,
                filters,
                lambda n: progress.advance(task, n),
                kind=kind,
            )
    if output != "-":
        console(stderr=True).print(f"Exported {written:,} events to {output} ({chosen}).")
    else:
        sys.stdout.flush()


@click.command()
@click.option(
    "--older-than",
    "older_than",
    default="180d",
    show_default=True,
    help="Delete events that occurred longer ago than this (30d, 12w, 720h).",
)
@click.option("--project", default=None, help="Only this project's events.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_option
def cleanup(older_than: str, project: str | None, yes: bool, db: str) -> None:
    """Delete old events (retention)."""
    from llmtally.store.maintenance import delete_older_than

    cutoff = datetime.now(UTC) - parse_duration(older_than, "--older-than")
    scope = f" of project {project!r}" if project else ""
    when = cutoff.strftime("%Y-%m-%d %H:%M UTC")
    if not yes:
        click.confirm(
            f"Delete every event{scope} that occurred before {when}?", abort=True, err=True
        )
    with opened_store(db) as store:
        deleted = delete_older_than(store.engine, cutoff=cutoff, project=project)
    click.echo(f"Deleted {deleted:,} events{scope} older than {older_than} (before {when}).")
