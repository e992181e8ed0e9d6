"""The event: what every layer knows about one record, and its ids.

``FIELDS`` is the single source of truth for what an event may carry: each field's
name, storage kind, limits and documentation, in column order (``COLUMN_NAMES``).
The store derives its ``events`` columns from it (``store.schema``), exports and
reports use its names, and capture validates against it (``capture.event`` holds the
checks). This module imports nothing from ``llmtally.capture``, so the store, the
query layer and a server can read the definition without loading capture.

Token semantics (normalized once, in capture):

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
``occurred_at`` as float Unix seconds; the writer fills the rest. The bounds of every field
(``MAX_*`` below) are explained with the validation contract in ``capture.event``.

Ids are time-ordered UUIDs (UUIDv7 layout) that cost well under a microsecond. Random
uuid4 keys scatter inserts across the primary-key index (SQLite ~65k vs ~104k rows/s,
PostgreSQL COPY ~116k vs ~208k rows/s on our machines); a UUIDv7 keeps the index
append-mostly. Layout (RFC 9562): 48-bit Unix milliseconds, version 7, 12 bits of
per-process randomness, variant, then 62 bits made of a per-process random node and a
counter, so ids minted in one process are unique without calling the OS RNG for each
one. After ``os.fork()`` the child draws a new node, so parent and child never mint the
same id.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypedDict

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


# -- ids -----------------------------------------------------------------------------------

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _new_node() -> tuple[int, int, itertools.count[int]]:
    rnd = int.from_bytes(os.urandom(8), "big")
    # 12 bits for rand_a, 46 bits of node, and a counter that fills the low 16 bits
    return rnd & 0xFFF, (rnd >> 12) & ((1 << 46) - 1), itertools.count(rnd >> 58)


_rand_a, _node, _counter = _new_node()
# the id prefix of the current millisecond, and that millisecond as a window of Unix
# seconds: comparing floats is cheaper than computing int(now * 1000) per id
_prefix = ""
_ms_start = 0.0
_ms_end = 0.0


def _reseed_after_fork() -> None:
    global _rand_a, _node, _counter, _ms_end
    _rand_a, _node, _counter = _new_node()
    _ms_end = 0.0  # the next id formats a prefix with the child's node


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)

# the last four hex digits of an id, two at a time: a table lookup is ~4x cheaper than
# formatting on the caller's thread
_HEX2: Final = tuple(f"{i:02x}" for i in range(256))


def _new_prefix(now: float) -> None:
    """Format the prefix of millisecond ``now`` (at most once a millisecond)."""
    global _prefix, _ms_start, _ms_end
    ms = int(now * 1000.0)
    _prefix = "%08x-%04x-7%03x-%04x-%08x" % (  # noqa: UP031 - fastest formatting here
        ms >> 16,
        ms & 0xFFFF,
        _rand_a,
        0x8000 | (_node >> 32),
        _node & 0xFFFFFFFF,
    )
    # float rounding may put ``now`` a hair outside [ms, ms + 1): widen to include it
    _ms_start = min(ms / 1000.0, now)
    _ms_end = max((ms + 1) / 1000.0, now)


def event_id_at(now: float) -> str:
    """Return a new time-ordered UUIDv7 string for Unix seconds ``now`` (the event's time)."""
    if not (_ms_start <= now < _ms_end):
        _new_prefix(now)
    n = next(_counter) & 0xFFFF
    return _prefix + _HEX2[n >> 8] + _HEX2[n & 0xFF]


def new_event_id() -> str:
    """Return a new time-ordered UUIDv7 string."""
    return event_id_at(time.time())


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a canonical lower- or upper-case UUID string."""
    return _UUID_RE.match(value.lower()) is not None


def epoch_to_datetime(seconds: float) -> datetime:
    """Unix seconds → aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
