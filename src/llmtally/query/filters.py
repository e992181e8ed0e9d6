"""The filters every report takes, and how a time window splits into rollup and raw parts."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from llmtally.errors import QueryError
from llmtally.query.timeparse import parse_time
from llmtally.query.vocabulary import DIMENSION_COLUMNS as DIMENSIONS
from llmtally.query.vocabulary import EQUALITY_FILTERS as _EQUALS
from llmtally.query.vocabulary import STATUSES
from llmtally.store.schema import ROLLUP_DIMENSIONS, events

# dimensions also in rollup_hourly: those can be served from it
ROLLUP_DIMS = frozenset(name for name, column in DIMENSIONS.items() if column in ROLLUP_DIMENSIONS)


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters every report takes (``since`` inclusive, ``until`` exclusive, UTC)."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    feature: str | None = None
    model: str | None = None
    provider: str | None = None
    actor: str | None = None
    status: str | None = None

    @classmethod
    def parse(
        cls,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        **equals: str | None,
    ) -> Filters:
        """Build filters from user input (``since="7d"``…); bad values raise QueryError."""
        now = datetime.now(UTC)
        start = parse_time(since, "since", now=now)
        end = parse_time(until, "until", now=now)
        if start is not None and end is not None and start >= end:
            raise QueryError("since", "must be before --until")
        unknown = set(equals) - set(_EQUALS)
        if unknown:
            raise QueryError(sorted(unknown)[0], "is not a filter")
        if equals.get("status") is not None and equals["status"] not in STATUSES:
            raise QueryError("status", "must be success or error")
        return cls(
            since=start.astimezone(UTC) if start else None,
            until=end.astimezone(UTC) if end else None,
            **equals,
        )

    def with_project(self, project: str | None) -> Filters:
        """These filters, limited to ``project`` unless one is set already."""
        if project is None or self.project is not None:
            return self
        return replace(self, project=project)

    def window(self, since: datetime | None, until: datetime | None) -> Filters:
        """The same filters over another time window."""
        return replace(self, since=since, until=until)

    def previous(self) -> Filters | None:
        """The period of equal length just before this one (needs ``since``)."""
        if self.since is None:
            return None
        end = self.until or datetime.now(UTC)
        return self.window(self.since - (end - self.since), self.since)

    def equals(self) -> dict[str, str]:
        """The equality filters that are set, by dimension name."""
        return {name: getattr(self, name) for name in _EQUALS if getattr(self, name) is not None}

    def rollup_ok(self) -> bool:
        """Whether rollups can answer under these filters (actor is not rolled up)."""
        return self.actor is None

    def project_and_time_only(self) -> bool:
        """Whether only project and time are filtered (what per-actor, session and
        active-actor tables are keyed by)."""
        return all(getattr(self, name) is None for name in _EQUALS if name != "project")

    def where(self, kind: str | None = "llm_call") -> sa.ColumnElement[bool]:
        """Condition on the events table for the whole window (``kind`` None: every kind)."""
        kinds = (kind,) if kind is not None else None
        return self._condition(events, "occurred_at", kinds, self.since, self.until)

    def raw_where(
        self,
        kinds: tuple[str, ...],
        since: datetime | None,
        until: datetime | None,
        table: sa.FromClause = events,
    ) -> sa.ColumnElement[bool]:
        """Condition on the events table (or an alias of it) for a sub-window."""
        return self._condition(table, "occurred_at", kinds, since, until)

    def rollup_where(
        self,
        table: sa.Table,
        kinds: tuple[str, ...] | None,
        since: datetime | None,
        until: datetime | None,
    ) -> sa.ColumnElement[bool]:
        """Condition on a rollup table for whole buckets in [since, until)."""
        return self._condition(table, "bucket", kinds, since, until)

    def _condition(
        self,
        table: sa.FromClause,
        time_column: str,
        kinds: tuple[str, ...] | None,
        since: datetime | None,
        until: datetime | None,
    ) -> sa.ColumnElement[bool]:
        c = table.c
        parts: list[sa.ColumnElement[bool]] = [sa.true()]
        if kinds is not None:
            parts.append(c.kind.in_(kinds))
        if since is not None:
            parts.append(c[time_column] >= since)
        if until is not None:
            parts.append(c[time_column] < until)
        for name, value in self.equals().items():
            parts.append(c[DIMENSIONS[name]] == value)
        return sa.and_(*parts)


def as_dict(filters: Filters) -> dict[str, Any]:
    """Field values of a Filters object."""
    return {f.name: getattr(filters, f.name) for f in fields(filters)}


def hour_floor(moment: datetime) -> datetime:
    """Start of the hour containing ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    """Start of the first whole hour at or after ``moment``."""
    floor = hour_floor(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def day_floor(moment: datetime) -> datetime:
    """Start of the UTC day containing ``moment``."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def day_ceil(moment: datetime) -> datetime:
    """Start of the first whole UTC day at or after ``moment``."""
    floor = day_floor(moment)
    return floor if floor == moment else floor + timedelta(days=1)


Window = tuple[datetime | None, datetime | None]


@dataclass(frozen=True, slots=True)
class Split:
    """A window cut into whole days, whole hours and raw-event edges."""

    daily: Window | None
    hourly: tuple[Window, ...]
    raw: tuple[Window, ...]


def split(since: datetime | None, until: datetime | None) -> Split:
    """Whole days from daily rollups, other whole hours from hourly ones, the rest raw."""
    start = hour_ceil(since) if since is not None else None
    end = hour_floor(until) if until is not None else None
    if start is not None and end is not None and start >= end:
        return Split(None, (), ((since, until),))
    raw: list[Window] = []
    if since is not None and start != since:
        raw.append((since, start))
    if until is not None and end != until:
        raw.append((end, until))
    day_start = day_ceil(start) if start is not None else None
    day_end = day_floor(end) if end is not None else None
    if day_start is not None and day_end is not None and day_start >= day_end:
        return Split(None, ((start, end),), tuple(raw))
    hourly: list[Window] = []
    if start is not None and day_start != start:
        hourly.append((start, day_start))
    if end is not None and day_end != end:
        hourly.append((day_end, end))
    return Split((day_start, day_end), tuple(hourly), tuple(raw))


def five_min_floor(moment: datetime) -> datetime:
    """Start of the 5 minutes containing ``moment``."""
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)


def five_min_ceil(moment: datetime) -> datetime:
    """Start of the first whole 5 minutes at or after ``moment``."""
    floor = five_min_floor(moment)
    return floor if floor == moment else floor + timedelta(minutes=5)


def refine(window: Window) -> tuple[Window | None, tuple[Window, ...]]:
    """A raw (sub-hour, bounded) window as whole 5-minute buckets and what is left raw."""
    since, until = window
    if since is None or until is None:
        return None, (window,)
    start, end = five_min_ceil(since), five_min_floor(until)
    if start >= end:
        return None, (window,)
    rest = tuple(w for w in ((since, start), (end, until)) if w[0] != w[1])
    return (start, end), rest
