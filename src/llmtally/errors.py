"""Every exception llmtally raises on purpose, in one place.

The tree::

    LlmtallyError                        base of everything below; .field, .reason
    ├── InvalidEventError (ValueError)   capture refused an event: a field is missing,
    │                                    mistyped or out of range        .field .value
    ├── ConfigError (ValueError)         a Tally argument, environment variable or config
    │                                    file entry is wrong              .setting (= .field)
    ├── QueryError (ValueError)          a report was asked for with arguments it cannot
    │                                    answer (a bad since, an unknown dimension)
    │                                                                     .argument (= .field)
    ├── StoreError                       the database could not be opened, migrated, read
    │   │                                or written; driver and SQLAlchemy errors are
    │   │                                wrapped into it at the store and query boundary
    │   │                                                                 .url (password masked)
    │   ├── UnsupportedDatabaseError     the URL names an engine llmtally cannot use
    │   │                                                                 .field = "database_url"
    │   ├── MigrationError               a migration failed; the schema stays at the last
    │   │                                good revision                    .revision
    │   └── DataRejected                 the database refused rows because of their data
    │                                    (not a fault to retry)           .reason
    └── BudgetExceeded                   reserved for budgets (issue 13): a paused rule
                                         stops a call before the provider is called

Two kinds of rejected data, and where each ends:

* ``InvalidEventError`` is raised by capture before an event is queued. With
  ``on_invalid="raise"`` (the default) it reaches the caller, because bad input is a
  programming error and must be visible; with ``"warn"`` it is logged and counted.
  ``Tally.ingest`` never raises it: each refused row is reported in the result's
  ``rejected`` list with its index, field and error, and the rest of the batch goes on.
* ``DataRejected`` is raised by a store engine when the database refuses a batch
  because of what is in it (a value the column cannot hold). It never reaches
  application code: the writer isolates the refusing rows by bisection and keeps them
  as dead letters with the reason (``llmtally status`` shows them).

Store failures on the capture path (``StoreError`` and the driver errors under it) are
retried, journaled and logged, never raised into the caller; reports, the CLI and the
other views see them as ``StoreError``.

Every error carries ``reason``, its message without the ``field: `` prefix, and
``field``, the field, setting or argument it is about (``None`` when it is about none),
so views build their own messages and never parse ``str(exc)``. The errors pickle
(they cross process boundaries in worker pools).
"""

from __future__ import annotations

from typing import Any


def _restore(cls: type[LlmtallyError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Rebuild an unpickled error without calling its (keyword-only) constructor."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class LlmtallyError(Exception):
    """Base class of all llmtally errors: ``field`` (or None) and ``reason``."""

    #: the event field, setting or report argument at fault; None when it is about none
    field: str | None = None
    #: the message without the ``field: `` prefix
    reason: str

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field
        self.reason = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, self.__dict__))


class InvalidEventError(LlmtallyError, ValueError):
    """An event field is missing, of the wrong type, or out of range.

    ``field`` names the offending field (dotted for nested values, e.g.
    ``metadata``), ``value`` carries what was given, ``reason`` says what is wrong.
    """

    def __init__(self, field: str, message: str, value: Any = None) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.value = value
        self.reason = message


class ConfigError(LlmtallyError, ValueError):
    """A configuration value (constructor argument, env var, config file entry) is wrong.

    ``setting`` (also ``field``) names it as the user wrote it: ``sample_rate``,
    ``LLMTALLY_SAMPLE_RATE`` or ``quality_weights.slow_ms``.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}", field=setting)
        self.setting = setting
        self.reason = message


class QueryError(LlmtallyError, ValueError):
    """A report was requested with arguments it cannot answer; ``argument`` (= ``field``)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}", field=argument)
        self.argument = argument
        self.reason = message


class StoreError(LlmtallyError):
    """The event store failed; ``url`` is the database URL with any password masked.

    ``reason`` is the message without the URL; ``field`` is set when a setting is at
    fault (``database_url``, ``connect_timeout``).
    """

    def __init__(self, message: str, *, url: str | None = None, field: str | None = None) -> None:
        super().__init__(f"{message} ({url})" if url else message, field=field)
        self.url = url
        self.reason = message


class UnsupportedDatabaseError(StoreError):
    """The database URL names an engine llmtally cannot use (``field`` is ``database_url``)."""

    field = "database_url"


class MigrationError(StoreError):
    """A schema migration failed; ``revision`` names it."""

    def __init__(
        self, message: str, *, revision: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(f"{message} [revision {revision}]" if revision else message, url=url)
        self.revision = revision
        self.reason = message


class DataRejected(StoreError):
    """The database refused a batch because of its data; retrying it cannot succeed."""
