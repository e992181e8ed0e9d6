"""How report and event values are written out: JSON values, CSV fields, UTC timestamps.

One place for every view (CLI, export, the HTTP API): timestamps are ISO-8601 UTC with
a ``Z`` suffix, Decimals are floats, NULL is an empty CSV field, booleans are
``true``/``false`` in CSV and JSON values are JSON text in CSV. Imports nothing heavy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson


def iso_utc(value: datetime) -> str:
    """``2026-11-22T06:17:46.906471Z`` (naive values are taken as UTC, as the store writes them)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def json_value(value: Any) -> Any:
    """A column value as it goes into JSON (timestamps as ISO text, Decimals as floats)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def csv_value(value: Any) -> Any:
    """A column value as a CSV field: NULL empty, booleans true/false, JSON values as JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return json_value(value)
