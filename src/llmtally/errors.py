"""Every exception llmtally raises, in one place.

The tree::

    LlmtallyError                      base of everything llmtally raises on purpose
    ├── InvalidEventError (ValueError)  a field of an event is missing, mistyped or out of range
    ├── ConfigError (ValueError)        a constructor argument or configuration value is wrong
    ├── QueryError (ValueError)         bad report arguments (a bad --since, an unknown dimension…)
    └── StoreError                      the database could not be opened, migrated, read or written
        ├── UnsupportedDatabaseError    the URL names an engine llmtally does not support
        └── MigrationError              a migration failed (the database stays at the last good one)

Only ``InvalidEventError`` and ``ConfigError`` ever reach application code from the
capture API (bad input is a programming error and must be visible); store failures on
the capture path are logged once and absorbed, never raised into the caller.
"""

from __future__ import annotations

from typing import Any


class LlmtallyError(Exception):
    """Base class of all llmtally errors."""


class InvalidEventError(LlmtallyError, ValueError):
    """An event field is missing, of the wrong type, or out of range.

    ``field`` names the offending field (dotted for nested values, e.g.
    ``metadata``), ``value`` carries a short repr of what was given.
    """

    def __init__(self, field: str, message: str, value: Any = None) -> None:
        self.field = field
        self.value = value
        self.reason = message
        super().__init__(f"{field}: {message}")


class ConfigError(LlmtallyError, ValueError):
    """A configuration value (constructor argument, env var, config file entry) is wrong."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class QueryError(LlmtallyError, ValueError):
    """A report was requested with arguments it cannot answer."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class StoreError(LlmtallyError):
    """The event store failed; ``url`` is the database URL with any password masked."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(f"{message} ({url})" if url else message)


class UnsupportedDatabaseError(StoreError):
    """The database URL names an engine llmtally cannot use."""


class MigrationError(StoreError):
    """A schema migration failed; ``revision`` names it."""

    def __init__(self, message: str, *, revision: str | None = None, url: str | None = None):
        self.revision = revision
        super().__init__(f"{message} [revision {revision}]" if revision else message, url=url)
