"""Turn public-API arguments or a raw mapping into one validated event dict.

This runs on the caller's thread, so it does only what must fail loudly there:
type/range checks and cross-field rules. Pricing, redaction, hashing and row building
happen on the writer thread (``pipeline.process``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from llmtally.capture.event import (
    FIELDS,
    SCHEMA_VERSION,
    check_consistency,
    validate_fields,
)
from llmtally.capture.ids import new_event_id
from llmtally.errors import InvalidEventError

# fields the pipeline sets itself; callers cannot override them
_INTERNAL = frozenset(
    {"schema_version", "input_text", "output_text", "prompt_hash", "prompt_length"}
)
# keys that carry raw text to the writer, where it is hashed (and stored only when enabled)
PROMPT_KEY = "_prompt"
COMPLETION_KEY = "_completion"


def _alias_actor(fields: dict[str, Any]) -> None:
    actor = fields.pop("actor", None)
    if actor is not None:
        if fields.get("actor_id") not in (None, actor):
            raise InvalidEventError("actor", "given together with a different actor_id")
        fields["actor_id"] = actor


def _take_text(fields: dict[str, Any], key: str, out: dict[str, Any], slot: str) -> None:
    value = fields.pop(key, None)
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidEventError(key, f"must be a string, got {type(value).__name__}")
    out[slot] = value


def build(
    fields: dict[str, Any],
    *,
    kind: str,
    project: str,
    require_model: bool = False,
) -> dict[str, Any]:
    """Validate keyword fields into a queued event; ``fields`` is consumed."""
    event: dict[str, Any] = {}
    if "actor" in fields:
        _alias_actor(fields)
    if "prompt" in fields:
        _take_text(fields, "prompt", event, PROMPT_KEY)
    if "completion" in fields:
        _take_text(fields, "completion", event, COMPLETION_KEY)
    for name in _INTERNAL.intersection(fields):
        if name in ("prompt_hash", "prompt_length"):
            continue  # accepted from callers who hash themselves
        raise InvalidEventError(name, "is set by llmtally and cannot be given")
    validate_fields(fields, event)
    if event.get("kind", kind) != kind:
        raise InvalidEventError("kind", f"must be {kind!r} here, got {event['kind']!r}")
    if require_model and "model" not in event:
        raise InvalidEventError("model", "is required for an LLM call")
    check_consistency(event)
    if "event_id" not in event:
        event["event_id"] = new_event_id()
    if "occurred_at" not in event:
        event["occurred_at"] = time.time()
    event.setdefault("project", project)
    if kind == "llm_call" or kind == "tool_call":
        event.setdefault("status", "success")
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
    return build(fields, kind=kind, project=project, require_model=kind == "llm_call")


def known_field(name: str) -> bool:
    """Whether ``name`` is an event field."""
    return name in FIELDS
