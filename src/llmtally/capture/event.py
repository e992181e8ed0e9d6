"""The event: one flat record shared by every layer, and its validation.

``FIELDS`` is the single source of truth for what an event may carry. Capture validates
against it, the store derives its ``events`` columns from it (``store.schema``), and
exports and reports use its names.

Token semantics (normalized once, here in capture):

* ``input_tokens`` counts **every** prompt token, cached or not: OpenAI's
  ``prompt_tokens`` and Gemini's ``prompt_token_count`` as given; for Anthropic,
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``. This is the
  OpenTelemetry GenAI rule too.
* ``cache_read_tokens`` and ``cache_write_tokens`` are the cached parts of
  ``input_tokens`` (so they never exceed it); ``cache_write_1h_tokens`` is the part of
  ``cache_write_tokens`` written with a one-hour TTL (Anthropic).
* ``output_tokens`` counts every generated token including reasoning/thinking
  tokens; ``reasoning_tokens`` is the reasoning part of it.
* ``total_tokens`` is ``input_tokens + output_tokens`` unless given explicitly.

In the queue an event is a plain ``dict`` holding only the fields that were set, with
``occurred_at`` as float Unix seconds; the writer fills the rest.

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
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, TypedDict

from llmtally.capture import metadata
from llmtally.capture.ids import is_uuid
from llmtally.capture.text import exception_text, short_repr
from llmtally.errors import InvalidEventError

SCHEMA_VERSION: Final = 1
MAX_TEXT: Final = 1_000_000  # raw prompt/completion, when content capture is enabled
MAX_COUNT: Final = 2**32  # every integer field
MAX_DURATION_MS: Final = 1e9  # latency_ms, ttft_ms: 11.6 days
MAX_COST_USD: Final = 1e6
MIN_EPOCH: Final = 0.0  # 1970-01-01T00:00:00Z, included
MAX_EPOCH: Final = 32503680000.0  # 3000-01-01T00:00:00Z, excluded
# identify(): the actors table's column widths (store.schema.actors)
ACTOR_TEXT_LIMITS: Final[Mapping[str, int]] = {
    "display_name": 200,
    "real_name": 200,
    "timezone": 64,
    "email": 320,
}

Kind = Literal["llm_call", "feedback", "product", "tool_call"]
KINDS: Final = frozenset({"llm_call", "feedback", "product", "tool_call"})
STATUSES: Final = frozenset({"success", "error"})
ACTOR_TYPES: Final = frozenset({"human", "agent"})
RATINGS: Final = frozenset({"up", "down"})

# column kinds: "id" (uuid text), "ts", "str", "text", "int", "float", "bool", "json"
ColumnKind = Literal["id", "ts", "str", "text", "int", "float", "bool", "json"]


class FieldSpec:
    """One event field: its storage kind, limits and documentation."""

    __slots__ = ("choices", "column", "doc", "max_len", "maximum", "name")

    def __init__(
        self,
        name: str,
        column: ColumnKind,
        doc: str,
        *,
        max_len: int = 200,
        choices: frozenset[str] | None = None,
        maximum: float | None = None,
    ) -> None:
        self.name = name
        self.column = column
        self.doc = doc
        self.max_len = max_len
        self.choices = choices
        # every number has an upper bound: integers share one, floats name theirs
        self.maximum = MAX_COUNT if maximum is None and column == "int" else maximum


_SPECS: Final = (
    FieldSpec("event_id", "id", "UUID; the idempotency key (time-ordered UUIDv7 when generated)"),
    FieldSpec("occurred_at", "ts", "when the call started (UTC)"),
    FieldSpec("project", "str", "project / application / bot id"),
    FieldSpec("kind", "str", "llm_call, feedback, product or tool_call", choices=KINDS),
    FieldSpec("name", "str", "product event name or tool name"),
    FieldSpec("actor_id", "str", "stable id of the human or agent who triggered the call"),
    FieldSpec("actor_type", "str", "human or agent", choices=ACTOR_TYPES),
    FieldSpec("session_id", "str", "conversation / session id"),
    FieldSpec("trace_id", "str", "links every event of one request chain"),
    FieldSpec("parent_id", "str", "parent event (feedback: the call it rates)"),
    FieldSpec("feature", "str", "product feature that made the call"),
    FieldSpec("provider", "str", "openai, anthropic, google, …"),
    FieldSpec("model", "str", "model name as sent or as answered"),
    FieldSpec("model_version", "str", "exact model version/snapshot"),
    FieldSpec("routing_strategy", "str", "primary, fallback, cache, …"),
    FieldSpec("status", "str", "success or error", choices=STATUSES),
    FieldSpec("error_type", "str", "stable error class, e.g. RateLimitError"),
    FieldSpec("error_message", "text", "error message (PII-redacted)", max_len=4000),
    FieldSpec("finish_reason", "str", "stop, length, tool_calls, …"),
    FieldSpec("input_tokens", "int", "all prompt tokens including cache reads and writes"),
    FieldSpec("output_tokens", "int", "all generated tokens including reasoning"),
    FieldSpec("cache_read_tokens", "int", "prompt tokens read from cache (part of input)"),
    FieldSpec("cache_write_tokens", "int", "prompt tokens written to cache (part of input)"),
    FieldSpec(
        "cache_write_1h_tokens", "int", "cache writes with a 1-hour TTL (part of cache_write)"
    ),
    FieldSpec("reasoning_tokens", "int", "reasoning/thinking tokens (part of output)"),
    FieldSpec("total_tokens", "int", "input + output unless given"),
    FieldSpec(
        "latency_ms", "float", "wall-clock duration in milliseconds", maximum=MAX_DURATION_MS
    ),
    FieldSpec(
        "ttft_ms",
        "float",
        "time to first token in milliseconds (streams)",
        maximum=MAX_DURATION_MS,
    ),
    FieldSpec("stream", "bool", "whether the response was streamed"),
    FieldSpec("stream_chunks", "int", "chunks received on a stream"),
    FieldSpec("temperature", "float", "sampling temperature", maximum=100.0),
    FieldSpec("max_tokens", "int", "requested output cap"),
    FieldSpec("top_p", "float", "nucleus sampling", maximum=1.0),
    FieldSpec(
        "cost_usd", "float", "cost in USD; null when the price is unknown", maximum=MAX_COST_USD
    ),
    FieldSpec("usage_estimated", "bool", "tokens were estimated, not reported by the provider"),
    FieldSpec("rating", "str", "feedback: up or down", choices=RATINGS),
    FieldSpec("regenerated", "bool", "feedback: the user asked for another answer"),
    FieldSpec("edited", "bool", "feedback: the user edited the answer"),
    FieldSpec("quality_score", "float", "implicit quality score, 0–1", maximum=1.0),
    FieldSpec("comment", "text", "feedback comment (PII-redacted)", max_len=4000),
    FieldSpec("prompt_hash", "str", "sha256 of the prompt text", max_len=64),
    FieldSpec("prompt_length", "int", "prompt length in characters"),
    FieldSpec(
        "input_text", "text", "raw prompt (only with capture_content=True)", max_len=MAX_TEXT
    ),
    FieldSpec(
        "output_text", "text", "raw completion (only with capture_content=True)", max_len=MAX_TEXT
    ),
    FieldSpec("schema_version", "int", "event schema version"),
    FieldSpec("metadata", "json", "JSON object of extra attributes (strings PII-redacted)"),
)

FIELDS: Final[Mapping[str, FieldSpec]] = {spec.name: spec for spec in _SPECS}
COLUMN_NAMES: Final = tuple(spec.name for spec in _SPECS)
TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "total_tokens",
)


class CallFields(TypedDict, total=False):
    """Keyword arguments accepted by ``Tally.record_call`` (all optional but ``model``)."""

    event_id: str
    occurred_at: datetime | float | str
    project: str
    name: str
    actor_id: str
    actor_type: Literal["human", "agent"]
    session_id: str
    trace_id: str
    parent_id: str
    feature: str
    provider: str
    model: str
    model_version: str
    routing_strategy: str
    status: Literal["success", "error"]
    error_type: str
    error_message: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int
    total_tokens: int
    latency_ms: float
    ttft_ms: float
    stream: bool
    stream_chunks: int
    temperature: float
    max_tokens: int
    top_p: float
    cost_usd: float
    usage_estimated: bool
    quality_score: float
    prompt_hash: str
    prompt_length: int
    metadata: dict[str, Any]


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
    spec.name: (spec, _CHECKERS[spec.column]) for spec in _SPECS
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


def epoch_to_datetime(seconds: float) -> datetime:
    """Unix seconds → aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
