"""Parse the time arguments every report takes: ``7d``, ``24h``, ``90m``, ``2w``, ISO dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from llmtally.errors import QueryError

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, argument: str = "duration") -> timedelta:
    """``7d`` → 7 days; raise QueryError naming ``argument`` otherwise."""
    match = _RELATIVE.match(text)
    if not match:
        raise QueryError(argument, f"expected a duration like 30m, 24h, 7d or 2w, got {text!r}")
    amount, unit = float(match.group(1)), match.group(2).lower()
    return timedelta(**{_UNITS[unit]: amount})


def parse_time(
    value: str | datetime | None, argument: str, *, now: datetime | None = None
) -> datetime | None:
    """A relative duration (ago from now), an ISO date/time, or a datetime → aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = value.strip()
    if not text:
        return None
    now = now or datetime.now(UTC)
    if _RELATIVE.match(text):
        return now - parse_duration(text, argument)
    if text.lower() == "now":
        return now
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            argument, f"expected a duration like 7d or 24h, or an ISO date, got {text!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
