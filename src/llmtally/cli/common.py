"""Options and plumbing shared by every command: the database, report filters, errors.

The CLI is where configuration is read (``llmtally.config``); the library below it
only takes arguments. Errors a user can fix by changing the command line (a bad
``--since``, a bad config value) exit with status 2 and one line on stderr; a database
that cannot be reached exits with status 1.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from llmtally import config
from llmtally.errors import (
    ConfigError,
    InvalidEventError,
    LlmtallyError,
    QueryError,
    UnsupportedDatabaseError,
)
from llmtally.query import registry

if TYPE_CHECKING:
    from rich.progress import Progress

    from llmtally.query.reports import Reports
    from llmtally.store.base import Store

F = TypeVar("F", bound=Callable[..., Any])


def _option_names() -> frozenset[str]:
    """Report parameters spelled as options on the command line (``--since``…)."""
    return frozenset(
        p.name for report in registry.all_reports() for p in report.parameters() if not p.argument
    )


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
        name = f"--{exc.argument}" if exc.argument in _option_names() else exc.argument
        return UsageFailure(f"{name}: {exc.reason}")
    if isinstance(exc, ConfigError | InvalidEventError | UnsupportedDatabaseError):
        return UsageFailure(_first_line(exc))
    if isinstance(exc, LlmtallyError):  # StoreError, MigrationError…
        return StoreFailure(_first_line(exc))
    # an SQLAlchemy error exists only once SQLAlchemy is imported: `--help` need not import it
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError):
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
    """Config file and environment settings (``LLMTALLY_CONFIG``, ``LLMTALLY_DATABASE_URL``…).

    Read once per command: kept in the click context, so the database URL, the prices and
    the quality weights of one command come from one reading of the file.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return config.from_env(default_database=True)
    meta = ctx.find_root().meta
    if "llmtally.settings" not in meta:
        meta["llmtally.settings"] = config.from_env(default_database=True)
    found: dict[str, Any] = meta["llmtally.settings"]
    return found


def database_url(given: str | None) -> str:
    """``--db`` if given, else the configured URL, else ``sqlite:///llmtally.db``."""
    if given:
        return given
    return str(settings()["database_url"])


_DB_DECLS: Final = ("--db",)
_DB_ATTRS: Final[dict[str, Any]] = {
    "metavar": "URL",
    "default": None,
    "help": "Database URL (sqlite:///path or postgresql://…); default: $LLMTALLY_DATABASE_URL "
    "or sqlite:///llmtally.db.",
}


def db_param() -> click.Option:
    """The ``--db URL`` option (the command resolves it with ``database_url``)."""
    return click.Option(list(_DB_DECLS), **_DB_ATTRS)


def db_option(fn: F) -> F:
    """Give a command ``--db URL``; the command receives the resolved URL as ``db``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, db: str | None, **kwargs: Any) -> Any:
        return fn(*args, db=database_url(db), **kwargs)

    return click.option(*_DB_DECLS, **_DB_ATTRS)(wrapper)  # type: ignore[return-value]


@contextlib.contextmanager
def opened_store(url: str, *, migrate: bool = True) -> Iterator[Store]:
    """Open (and by default migrate) the store for ``url``; closed on exit."""
    from llmtally.store.base import open_store

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
    from llmtally.query.reports import Reports

    weights = settings().get("quality_weights")
    with opened_store(url) as store:
        yield Reports(store.engine, quality_weights=weights)


def progress_bar() -> Progress:
    """A Rich progress bar on stderr (stdout stays clean for data); hidden when not a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from llmtally.cli.output import console

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
