"""Turn public-API arguments or a raw mapping into one validated event dict.

This runs on the caller's thread, so it does only what must fail loudly there:
type/range checks and cross-field rules. Pricing, redaction, hashing and row building
happen on the writer thread (``pipeline.process``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from llmtally.capture.event import (
    FIELDS,
    SCHEMA_VERSION,
    VALIDATORS,
    FieldSpec,
    check_consistency,
)
from llmtally.capture.ids import new_event_id
from llmtally.errors import InvalidEventError

# keys that carry raw text to the writer, where it is hashed (and stored only when enabled)
PROMPT_KEY = "_prompt"
COMPLETION_KEY = "_completion"

_MAX_INT = 2**53
_MAX_FLOAT = 1.7976931348623157e308
# fast-path kinds, compared as literals in build()'s loop: 0 str, 1 int, 2 float, 3 choice
_STR, _INT, _FLOAT, _CHOICE, _OTHER = range(5)


_Entry = tuple[int, Any, FieldSpec, Callable[[FieldSpec, Any], Any]]


def _fast_table() -> dict[str, _Entry]:
    """Per public field: fast-path kind, its limit, the spec and the full checker."""
    table: dict[str, _Entry] = {}
    for name, (spec, check) in VALIDATORS.items():
        if name in ("schema_version", "input_text", "output_text"):
            continue  # set by the pipeline only
        if spec.choices is not None:
            table[name] = (_CHOICE, spec.choices, spec, check)
        elif spec.column in ("str", "text"):
            table[name] = (_STR, spec.max_len, spec, check)
        elif spec.column == "int":
            table[name] = (_INT, _MAX_INT, spec, check)
        elif spec.column == "float":
            table[name] = (_FLOAT, spec.maximum or _MAX_FLOAT, spec, check)
        else:
            table[name] = (_OTHER, None, spec, check)
    return table


_FAST = _fast_table()


def _special(name: str, value: Any, fields: Mapping[str, Any], event: dict[str, Any]) -> None:
    if name == "actor":
        if fields.get("actor_id") not in (None, value):
            raise InvalidEventError("actor", "given together with a different actor_id")
        _, _, spec, check = _FAST["actor_id"]
        event["actor_id"] = check(spec, value)
    elif name in ("prompt", "completion"):
        if not isinstance(value, str):
            raise InvalidEventError(name, f"must be a string, got {type(value).__name__}")
        event[PROMPT_KEY if name == "prompt" else COMPLETION_KEY] = value
    elif name in FIELDS:
        raise InvalidEventError(name, "is set by llmtally and cannot be given")
    else:
        raise InvalidEventError(name, "is not an event field")


def build(
    fields: Mapping[str, Any], kind: str, project: str, require_model: bool = False
) -> dict[str, Any]:
    """Validate keyword fields into a queued event (one pass; the caller's mapping is not changed).

    Common values pass inline checks; anything else goes to the full checker of its
    field, which converts it or raises InvalidEventError naming the field.
    """
    event: dict[str, Any] = {}
    fast = _FAST
    for name, value in fields.items():
        entry = fast.get(name)
        if entry is None:
            if value is not None:
                _special(name, value, fields, event)
            continue
        how, limit, spec, check = entry
        tp = type(value)
        if how == 0:
            if tp is str and 0 < len(value) <= limit:
                event[name] = value
                continue
        elif how == 1:
            if tp is int and 0 <= value <= limit:
                event[name] = value
                continue
        elif how == 2:
            if (tp is float or tp is int) and 0.0 <= value <= limit:
                event[name] = value
                continue
        elif how == 3 and value in limit:
            event[name] = value
            continue
        if value is not None:  # None means "not given"; it fails every fast check above
            event[name] = check(spec, value)
    if event.get("kind", kind) != kind:
        raise InvalidEventError("kind", f"must be {kind!r} here, got {event['kind']!r}")
    if require_model and "model" not in event:
        raise InvalidEventError("model", "is required for an LLM call")
    if (
        "cache_read_tokens" in event
        or "cache_write_tokens" in event
        or "reasoning_tokens" in event
        or "cache_write_1h_tokens" in event
    ):
        check_consistency(event)
    if "event_id" not in event:
        event["event_id"] = new_event_id()
    if "occurred_at" not in event:
        event["occurred_at"] = time.time()
    if "project" not in event:
        event["project"] = project
    if "status" not in event and (kind == "llm_call" or kind == "tool_call"):
        event["status"] = "success"
    event["kind"] = kind
    event["schema_version"] = SCHEMA_VERSION
    return event


def build_from_mapping(raw: Mapping[str, Any], *, project: str) -> dict[str, Any]:
    """Validate one event of a batch (HTTP ingest, import); ``kind`` defaults to ``llm_call``."""
    if not isinstance(raw, Mapping):
        raise InvalidEventError("event", f"must be a JSON object, got {type(raw).__name__}")
    fields = dict(raw)
    kind = fields.pop("kind", "llm_call")
    if kind not in ("llm_call", "feedback", "product", "tool_call"):
        raise InvalidEventError(
            "kind", f"must be one of feedback, llm_call, product, tool_call, got {kind!r}"
        )
    version = fields.pop("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidEventError(
            "schema_version",
            f"{version!r} is not supported (this llmtally writes {SCHEMA_VERSION})",
        )
    return build(fields, kind, project, kind == "llm_call")


def known_field(name: str) -> bool:
    """Whether ``name`` is an event field."""
    return name in FIELDS
