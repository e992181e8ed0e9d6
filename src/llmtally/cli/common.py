"""Options and plumbing shared by every command: the database, report filters, errors.

The CLI is where configuration is read (``llmtally.config``); the library below it
only takes arguments. Errors a user can fix by changing the command line (a bad
``--since``, a bad config value) exit with status 2 and one line on stderr; a database
that cannot be reached exits with status 1.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

import click
import sqlalchemy as sa
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llmtally import config
from llmtally.cli.output import console
from llmtally.errors import (
    ConfigError,
    InvalidEventError,
    LlmtallyError,
    QueryError,
    UnsupportedDatabaseError,
)
from llmtally.query.reports import DIMENSIONS, Filters, Reports
from llmtally.store.base import Store, open_store

F = TypeVar("F", bound=Callable[..., Any])

FILTER_NAMES: Final = ("project", "feature", "model", "provider", "actor")
# QueryError arguments that are spelled as options on the command line
_OPTION_ARGUMENTS: Final = frozenset(
    {"since", "until", "status", "by", "interval", "limit", "offset", *FILTER_NAMES}
)
INTERVALS: Final = ("hour", "day", "week")


class UsageFailure(click.ClickException):
    """A bad argument or setting: ``Error: <message>`` on one line, exit status 2."""

    exit_code = 2


class StoreFailure(click.ClickException):
    """The database could not be opened or read: one line, exit status 1."""

    exit_code = 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate_errors(exc: Exception) -> click.ClickException | None:
    """The click exception to show for an llmtally or database error, or None to re-raise."""
    if isinstance(exc, click.UsageError) and not isinstance(
        exc, click.exceptions.NoArgsIsHelpError
    ):
        # click prints usage, a hint and a blank line before the message: keep only the message
        lines = exc.format_message().strip().splitlines()
        return UsageFailure(lines[0] if lines else "bad usage")
    if isinstance(exc, QueryError):
        name = f"--{exc.argument}" if exc.argument in _OPTION_ARGUMENTS else exc.argument
        return UsageFailure(f"{name}: {str(exc).split(': ', 1)[-1]}")
    if isinstance(exc, ConfigError | InvalidEventError | UnsupportedDatabaseError):
        return UsageFailure(_first_line(exc))
    if isinstance(exc, LlmtallyError):  # StoreError, MigrationError…
        return StoreFailure(_first_line(exc))
    if isinstance(exc, sa.exc.SQLAlchemyError):
        # the driver's message; SQLAlchemy's own adds a multi-line background link
        cause = getattr(exc, "orig", None) or exc
        return StoreFailure(f"database error: {_first_line(cause)}")
    return None


class CliGroup(click.Group):
    """A click group whose commands' llmtally errors become one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, translating expected errors (tracebacks are for bugs only)."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            failure = translate_errors(exc)
            if failure is None:
                raise
            raise failure from None


def settings() -> dict[str, Any]:
    """Config file and environment settings (``LLMTALLY_CONFIG``, ``LLMTALLY_DATABASE_URL``…)."""
    return config.from_env(default_database=True)


def database_url(given: str | None) -> str:
    """``--db`` if given, else the configured URL, else ``sqlite:///llmtally.db``."""
    if given:
        return given
    return str(settings()["database_url"])


def db_option(fn: F) -> F:
    """Give a command ``--db URL``; the command receives the resolved URL as ``db``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, db: str | None, **kwargs: Any) -> Any:
        return fn(*args, db=database_url(db), **kwargs)

    option = click.option(
        "--db",
        metavar="URL",
        default=None,
        help="Database URL (sqlite:///path or postgresql://…); default: $LLMTALLY_DATABASE_URL "
        "or sqlite:///llmtally.db.",
    )
    return option(wrapper)  # type: ignore[return-value]


def filter_options(fn: F) -> F:
    """Give a report ``--since/--until`` and the equality filters; it receives ``filters``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in ("since", "until", "status", *FILTER_NAMES)}
        return fn(*args, filters=Filters.parse(**values), **kwargs)

    options = [
        click.option(
            "--since",
            default="30d",
            show_default=True,
            help="Start: a duration ago (30m, 24h, 7d, 2w) or an ISO date/time (UTC if no offset).",
        ),
        click.option("--until", default=None, help="End (exclusive), same forms; default: now."),
        *(
            click.option(f"--{name}", default=None, help=f"Only this {name}.")
            for name in FILTER_NAMES
        ),
        click.option(
            "--status",
            type=click.Choice(["success", "error"]),
            default=None,
            help="Only ok or failed calls.",
        ),
    ]
    decorated: Callable[..., Any] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[return-value]


def report_options(fn: F) -> F:
    """``filter_options`` plus ``--db``: what every report command takes."""
    return db_option(filter_options(fn))


@contextlib.contextmanager
def opened_store(url: str, *, migrate: bool = True) -> Iterator[Store]:
    """Open (and by default migrate) the store for ``url``; closed on exit."""
    store = open_store(url)
    try:
        if migrate:
            store.migrate()
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def opened_reports(url: str) -> Iterator[Reports]:
    """Reports over ``url``; a database that does not exist yet is created empty."""
    weights = config.from_env().get("quality_weights")
    with opened_store(url) as store:
        yield Reports(store.engine, quality_weights=weights)


def dimension_choice() -> click.Choice[str]:
    """The dimensions a breakdown can group by."""
    return click.Choice(list(DIMENSIONS))


def interval_option(default: str) -> Callable[[F], F]:
    """``--interval hour|day|week`` for the trend reports."""
    return click.option(
        "--interval",
        type=click.Choice(INTERVALS),
        default=default,
        show_default=True,
        help="Bucket size: hour, day or ISO week (UTC).",
    )


def limit_option(default: int | None, what: str = "rows") -> Callable[[F], F]:
    """``--limit N`` (a positive integer; no limit when ``default`` is None and none given)."""
    return click.option(
        "--limit",
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        help=f"Show at most this many {what}.",
    )


def progress_bar() -> Progress:
    """A Rich progress bar on stderr (stdout stays clean for data); hidden when not a terminal."""
    err = console(stderr=True)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
