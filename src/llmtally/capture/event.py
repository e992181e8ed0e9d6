"""Validation of events against the one event definition (``llmtally.event``).

The definition (fields, kinds, limits, ``SCHEMA_VERSION``) lives in ``llmtally.event``,
which the store and query layers import without loading capture; it is re-exported here
for older imports. This module holds the checks every capture entry point runs.

The validation contract (every capture entry point): a value is either stored as given,
up to the normalizations below, or refused with ``InvalidEventError`` naming the field,
never another exception. The bounds keep every accepted value storable on SQLite and
PostgreSQL, and every rollup sum of accepted values inside int64:

* integer fields (token counts, ``stream_chunks``, ``max_tokens``, ``prompt_length``):
  ``0 <= v <= MAX_COUNT`` (2**32; an int64 sum holds 2**31 - 1 events at the maximum).
  ``int`` subclasses and numpy-like integers (``__index__``) convert; floats are refused
  even when whole, to catch unit mix-ups.
* ``latency_ms``, ``ttft_ms``: ``0 <= v <= MAX_DURATION_MS`` (1e9 ms, 11.6 days);
  ``cost_usd``: ``0 <= v <= MAX_COST_USD`` (1e6); ``temperature`` <= 100; ``top_p`` and
  ``quality_score`` <= 1. Numbers in float fields are stored as floats; NaN and infinity
  are refused.
* ``occurred_at``: ``MIN_EPOCH <= t < MAX_EPOCH`` (1970-01-01 to 3000-01-01 UTC) in every
  form: Unix seconds, aware or naive (= UTC) datetime, date, ISO-8601 string.
* strings: ``str`` or a subclass (a ``StrEnum`` member is stored as its plain value),
  non-empty, at most ``max_len`` characters (free text such as ``error_message`` is cut
  to its limit instead); ``kind``/``status``/``actor_type``/``rating`` one of their
  choices. ``event_id``: a UUID string or ``uuid.UUID`` (stored lower-case).
* booleans: ``bool`` only (numpy ``bool_`` converts).
* ``metadata``: a mapping with string keys at every depth, at most
  ``MAX_METADATA_DEPTH`` containers deep and ``MAX_METADATA_BYTES`` as JSON; no NaN or
  infinity, integers within 64 bits. Normalizations: lone surrogates in keys and values
  become U+FFFD; datetimes, dates and times become ISO-8601 strings (``isoformat()``),
  UUIDs strings, enums their value, dataclasses objects, tuples arrays, numpy scalars
  numbers, other mappings objects.
"""

from __future__ import annotations

import math
import operator
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Final

from llmtally.capture import metadata
from llmtally.capture.text import exception_text, short_repr
from llmtally.errors import InvalidEventError
from llmtally.event import (
    ACTOR_TEXT_LIMITS,
    ACTOR_TYPES,
    COLUMN_NAMES,
    FIELDS,
    KINDS,
    MAX_COST_USD,
    MAX_COUNT,
    MAX_DURATION_MS,
    MAX_EPOCH,
    MAX_TEXT,
    MIN_EPOCH,
    RATINGS,
    SCHEMA_VERSION,
    STATUSES,
    TOKEN_FIELDS,
    CallFields,
    ColumnKind,
    FieldSpec,
    Kind,
    epoch_to_datetime,
    is_uuid,
)

__all__ = [  # the definition, re-exported for imports that predate llmtally.event
    "ACTOR_TEXT_LIMITS",
    "ACTOR_TYPES",
    "COLUMN_NAMES",
    "FIELDS",
    "KINDS",
    "MAX_COST_USD",
    "MAX_COUNT",
    "MAX_DURATION_MS",
    "MAX_EPOCH",
    "MAX_TEXT",
    "MIN_EPOCH",
    "RATINGS",
    "SCHEMA_VERSION",
    "STATUSES",
    "TOKEN_FIELDS",
    "VALIDATORS",
    "CallFields",
    "ColumnKind",
    "FieldSpec",
    "Kind",
    "check_consistency",
    "check_value",
    "checker_failed",
    "epoch_to_datetime",
    "to_epoch",
    "validate_fields",
]


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {short_repr(value)}"


def check_value(spec: FieldSpec, check: Callable[[FieldSpec, Any], Any], value: Any) -> Any:
    """``check(spec, value)``, with anything but InvalidEventError turned into one.

    The checkers call the caller's objects (``__float__``, ``__index__``, ``utcoffset``,
    mapping methods…), which may raise anything: the contract is InvalidEventError.
    """
    try:
        return check(spec, value)
    except InvalidEventError:
        raise
    except Exception as exc:
        raise checker_failed(spec, value, exc) from None


def checker_failed(spec: FieldSpec, value: Any, exc: Exception) -> InvalidEventError:
    """The InvalidEventError for a checker that met an exception from the caller's object."""
    return InvalidEventError(
        spec.name, f"could not be checked ({exception_text(exc)}) for {_describe(value)}", value
    )


def _check_str(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not str:
        if not isinstance(value, str):
            raise InvalidEventError(spec.name, f"must be a string, got {_describe(value)}", value)
        value = str.__str__(value)  # a StrEnum member or other subclass: its plain text
    if spec.column == "str":
        if not value:
            raise InvalidEventError(spec.name, "must not be empty", value)
        if len(value) > spec.max_len:
            raise InvalidEventError(
                spec.name, f"is {len(value)} characters; at most {spec.max_len} allowed"
            )
        if spec.choices is not None and value not in spec.choices:
            allowed = ", ".join(sorted(spec.choices))
            raise InvalidEventError(
                spec.name, f"must be one of {allowed}, got {short_repr(value)}", value
            )
    elif len(value) > spec.max_len:
        # free text (error messages, comments): keep the start rather than reject the event
        return value[: spec.max_len]
    return value


def _check_int(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not int:
        # int subclasses (IntEnum) and numpy integers convert; floats are refused even
        # when whole, to catch unit mix-ups (seconds for milliseconds, cost for tokens)
        if isinstance(value, (bool, float)) or not hasattr(type(value), "__index__"):
            raise InvalidEventError(spec.name, f"must be an integer, got {_describe(value)}", value)
        value = operator.index(value)
    if value < 0:
        raise InvalidEventError(spec.name, f"must be >= 0, got {short_repr(value)}", value)
    if value > spec.maximum:
        raise InvalidEventError(
            spec.name, f"must be <= {spec.maximum:,}, got {short_repr(value)}", value
        )
    return value


def _check_float(spec: FieldSpec, value: Any) -> Any:
    maximum: float = spec.maximum  # type: ignore[assignment]
    if type(value) is not float:
        if isinstance(value, bool | str | bytes | bytearray):
            raise InvalidEventError(spec.name, f"must be a number, got {_describe(value)}", value)
        if isinstance(value, int):
            # compared as an int first: float(10**400) would overflow
            value = int(value)
            if value < 0:
                raise InvalidEventError(spec.name, f"must be >= 0, got {short_repr(value)}", value)
            if value > maximum:
                raise InvalidEventError(
                    spec.name, f"must be <= {_bound(maximum)}, got {short_repr(value)}", value
                )
            return float(value)
        kind = type(value)
        if not (hasattr(kind, "__float__") or hasattr(kind, "__index__")):
            raise InvalidEventError(spec.name, f"must be a number, got {_describe(value)}", value)
        # float subclasses, Decimal, Fraction, numpy numbers…
        value = float(value)
    if not math.isfinite(value):
        raise InvalidEventError(spec.name, f"must be a finite number, got {value}", value)
    if value < 0:
        raise InvalidEventError(spec.name, f"must be >= 0, got {value}", value)
    if value > maximum:
        raise InvalidEventError(spec.name, f"must be <= {_bound(maximum)}, got {value}", value)
    return value


def _bound(limit: float) -> str:
    return f"{int(limit):,}" if limit == int(limit) else f"{limit:g}"


def _check_bool(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not bool:
        kind = type(value)
        # numpy's boolean scalar: numpy.bool_, named "bool" since numpy 2
        if kind.__name__ in ("bool_", "bool") and kind.__module__ == "numpy":
            return bool(value)
        raise InvalidEventError(spec.name, f"must be true or false, got {_describe(value)}", value)
    return value


def _check_id(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return uuid.UUID.__str__(value)
    if isinstance(value, str):
        text = str.__str__(value)
        # the length too: the pattern's ``$`` also matches before a trailing newline
        if len(text) == 36 and is_uuid(text):
            return text.lower()
    raise InvalidEventError(spec.name, f"must be a UUID string, got {short_repr(value)}", value)


def _check_ts(spec: FieldSpec, value: Any) -> Any:
    return to_epoch(value, spec.name)


# -- occurred_at ---------------------------------------------------------------------------


def to_epoch(value: Any, field: str = "occurred_at") -> float:
    """Convert a datetime (naive = UTC), date, ISO-8601 string or Unix seconds to Unix seconds.

    Every form is held to ``MIN_EPOCH <= t < MAX_EPOCH``; anything else raises
    InvalidEventError naming ``field``.
    """
    kind = type(value)
    if kind is float or kind is int:
        seconds = value
    elif isinstance(value, bool):
        raise InvalidEventError(field, f"must be a datetime, not a boolean ({value})", value)
    elif isinstance(value, int | float):
        seconds = int(value) if isinstance(value, int) else float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(str.__str__(value))
        except Exception:
            raise InvalidEventError(
                field, f"is not an ISO-8601 timestamp: {short_repr(value)}", value
            ) from None
        seconds = _datetime_epoch(parsed, field)
    elif isinstance(value, datetime):
        seconds = _datetime_epoch(value, field)
    elif isinstance(value, date):
        seconds = (datetime(value.year, value.month, value.day) - _EPOCH_NAIVE).total_seconds()
    else:
        raise InvalidEventError(
            field,
            f"must be a datetime, ISO-8601 string or Unix seconds, got {_describe(value)}",
            value,
        )
    # ints are compared before float(): float(10**400) would overflow
    if not (MIN_EPOCH <= seconds < MAX_EPOCH):
        raise InvalidEventError(
            field,
            f"is not a plausible time (from 1970-01-01T00:00:00Z to before "
            f"3000-01-01T00:00:00Z): {short_repr(value)}",
            value,
        )
    return float(seconds)


_EPOCH_NAIVE: Final = datetime(1970, 1, 1)


def _datetime_epoch(value: datetime, field: str) -> float:
    try:
        offset = value.utcoffset()  # a custom tzinfo may raise or answer nonsense
        naive = value.replace(tzinfo=None)
        if offset is not None:
            # exact arithmetic on the naive value: never overflows at year 1 or 9999
            return (naive - _EPOCH_NAIVE - offset).total_seconds()
        return (naive - _EPOCH_NAIVE).total_seconds()  # naive means UTC
    except InvalidEventError:
        raise
    except Exception as exc:
        raise InvalidEventError(
            field, f"has a time zone that cannot be read ({exception_text(exc)})", value
        ) from None


def _check_json(spec: FieldSpec, value: Any) -> bytes:
    return metadata.encode(value, spec.name)


_CHECKERS: Final[dict[str, Callable[[FieldSpec, Any], Any]]] = {
    "id": _check_id,
    "ts": _check_ts,
    "str": _check_str,
    "text": _check_str,
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "json": _check_json,
}
VALIDATORS: Final[dict[str, tuple[FieldSpec, Callable[[FieldSpec, Any], Any]]]] = {
    spec.name: (spec, _CHECKERS[spec.column]) for spec in FIELDS.values()
}


def validate_fields(fields: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """Validate ``fields`` into ``out`` (None skipped); the first bad one raises."""
    validators = VALIDATORS
    for name, value in fields.items():
        if value is None:
            continue
        entry = validators.get(name) if type(name) is str else None
        if entry is None:
            raise InvalidEventError(
                name if type(name) is str else short_repr(name), "is not an event field"
            )
        spec, check = entry
        out[name] = check_value(spec, check, value)
    return out


def check_consistency(event: Mapping[str, Any]) -> None:
    """Cross-field rules: cached parts within input, reasoning within output."""
    get = event.get
    inp = get("input_tokens")
    if inp is not None:
        cached = (get("cache_read_tokens") or 0) + (get("cache_write_tokens") or 0)
        if cached > inp:
            raise InvalidEventError(
                "cache_read_tokens",
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens ({inp}); "
                "input_tokens must include cached tokens (for Anthropic usage add "
                "cache_read_input_tokens and cache_creation_input_tokens to input_tokens, "
                "or pass the response to record_response())",
            )
    c1h = get("cache_write_1h_tokens")
    if c1h is not None and c1h > (get("cache_write_tokens") or 0):
        raise InvalidEventError(
            "cache_write_1h_tokens", "exceeds cache_write_tokens (it is a part of them)"
        )
    out = get("output_tokens")
    reasoning = get("reasoning_tokens")
    if out is not None and reasoning is not None and reasoning > out:
        raise InvalidEventError(
            "reasoning_tokens",
            f"({reasoning}) exceed output_tokens ({out}); output_tokens must include reasoning",
        )
