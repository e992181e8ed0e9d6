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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, TypedDict

import orjson

from llmtally.capture.ids import is_uuid
from llmtally.errors import InvalidEventError

SCHEMA_VERSION: Final = 1
MAX_METADATA_BYTES: Final = 64 * 1024
MAX_TEXT: Final = 1_000_000  # raw prompt/completion, when content capture is enabled

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
        self.maximum = maximum


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
    FieldSpec("latency_ms", "float", "wall-clock duration in milliseconds"),
    FieldSpec("ttft_ms", "float", "time to first token in milliseconds (streams)"),
    FieldSpec("stream", "bool", "whether the response was streamed"),
    FieldSpec("stream_chunks", "int", "chunks received on a stream"),
    FieldSpec("temperature", "float", "sampling temperature", maximum=100.0),
    FieldSpec("max_tokens", "int", "requested output cap"),
    FieldSpec("top_p", "float", "nucleus sampling", maximum=1.0),
    FieldSpec("cost_usd", "float", "cost in USD; null when the price is unknown"),
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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_str(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not str:
        raise InvalidEventError(
            spec.name, f"must be a string, got {type(value).__name__} {_short(value)}", value
        )
    if spec.column == "str":
        if not value:
            raise InvalidEventError(spec.name, "must not be empty", value)
        if len(value) > spec.max_len:
            raise InvalidEventError(
                spec.name, f"is {len(value)} characters; at most {spec.max_len} allowed"
            )
        if spec.choices is not None and value not in spec.choices:
            allowed = ", ".join(sorted(spec.choices))
            raise InvalidEventError(spec.name, f"must be one of {allowed}, got {value!r}", value)
    elif len(value) > spec.max_len:
        # free text (error messages, comments): keep the start rather than reject the event
        return value[: spec.max_len]
    return value


def _check_int(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not int:
        if isinstance(value, bool) or not _is_integral(value):
            raise InvalidEventError(
                spec.name, f"must be an integer, got {type(value).__name__} {_short(value)}", value
            )
        value = int(value)
    if value < 0:
        raise InvalidEventError(spec.name, f"must be >= 0, got {value}", value)
    if value > 2**53:
        raise InvalidEventError(spec.name, f"is implausibly large ({value})", value)
    return value


def _is_integral(value: Any) -> bool:
    # numpy integers and the like; floats are refused even when whole, to catch unit mix-ups
    return hasattr(value, "__index__") and not isinstance(value, float)


def _check_float(spec: FieldSpec, value: Any) -> Any:
    kind = type(value)
    if kind is not float and kind is not int:
        # Decimal, numpy floats and the like convert; bools and strings are mistakes
        if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
            raise InvalidEventError(
                spec.name, f"must be a number, got {type(value).__name__} {_short(value)}", value
            )
        value = float(value)
    if not math.isfinite(value):
        raise InvalidEventError(spec.name, f"must be a finite number, got {value}", value)
    if value < 0:
        raise InvalidEventError(spec.name, f"must be >= 0, got {value}", value)
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidEventError(spec.name, f"must be <= {spec.maximum:g}, got {value}", value)
    return value


def _check_bool(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not bool:
        raise InvalidEventError(
            spec.name, f"must be true or false, got {type(value).__name__} {_short(value)}", value
        )
    return value


def _check_id(spec: FieldSpec, value: Any) -> Any:
    if type(value) is not str or not is_uuid(value):
        raise InvalidEventError(spec.name, f"must be a UUID string, got {_short(value)}", value)
    return value.lower()


def _check_ts(spec: FieldSpec, value: Any) -> Any:
    return to_epoch(value, spec.name)


def _check_json(spec: FieldSpec, value: Any) -> Any:
    if not isinstance(value, dict):
        raise InvalidEventError(
            spec.name, f"must be a JSON object (dict), got {type(value).__name__}", value
        )
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise InvalidEventError(spec.name, f"is not JSON-serializable: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidEventError(
            spec.name,
            f"is {len(encoded):,} bytes as JSON; at most {MAX_METADATA_BYTES:,} allowed",
        )
    # the writer stores these bytes: later mutation of the caller's dict cannot leak in
    return encoded


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


def to_epoch(value: Any, field: str = "occurred_at") -> float:
    """Convert a datetime (naive = UTC), ISO-8601 string or Unix seconds to Unix seconds."""
    if type(value) is float or type(value) is int:
        if not math.isfinite(value) or value < 0 or value > 32503680000:  # year 3000
            raise InvalidEventError(field, f"is not a plausible Unix time: {value}", value)
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEventError(field, f"is not an ISO-8601 timestamp: {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    raise InvalidEventError(
        field, f"must be a datetime, ISO-8601 string or Unix seconds, got {_short(value)}", value
    )


def validate_fields(fields: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """Validate ``fields`` into ``out`` (None skipped); the first bad one raises."""
    validators = VALIDATORS
    for name, value in fields.items():
        if value is None:
            continue
        entry = validators.get(name)
        if entry is None:
            raise InvalidEventError(name, "is not an event field")
        spec, check = entry
        out[name] = check(spec, value)
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
