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
    check_value,
    checker_failed,
)
from llmtally.capture.ids import new_event_id
from llmtally.capture.text import exception_text, short_repr
from llmtally.errors import InvalidEventError

# keys that carry raw text to the writer, where it is hashed (and stored only when enabled)
PROMPT_KEY = "_prompt"
COMPLETION_KEY = "_completion"

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
        elif spec.column in ("int", "float"):
            # the inline check uses the field's own bounds: whatever passes it is in range
            assert spec.maximum is not None, name
            table[name] = (_INT if spec.column == "int" else _FLOAT, spec.maximum, spec, check)
        else:
            table[name] = (_OTHER, None, spec, check)
    return table


_FAST = _fast_table()
_ACTOR_SPEC, _ACTOR_CHECK = VALIDATORS["actor_id"]
_KIND_SPEC, _KIND_CHECK = VALIDATORS["kind"]


def _special(name: Any, value: Any, event: dict[str, Any]) -> None:
    """A key that is not a settable field: raw text for the writer, or a mistake."""
    if name in ("prompt", "completion"):
        if not isinstance(value, str):
            raise InvalidEventError(
                name, f"must be a string, got {type(value).__name__} {short_repr(value)}"
            )
        event[PROMPT_KEY if name == "prompt" else COMPLETION_KEY] = str.__str__(value)
    elif type(name) is not str:
        raise InvalidEventError("event", f"has a non-string key {short_repr(name)}")
    elif name in FIELDS:
        raise InvalidEventError(name, "is set by llmtally and cannot be given")
    else:
        raise InvalidEventError(name, "is not an event field")


def _set_actor(actor: Any, event: dict[str, Any]) -> None:
    """``actor=`` is an alias of ``actor_id``; both at once must agree (compared once checked)."""
    if type(actor) is str and 0 < len(actor) <= _ACTOR_SPEC.max_len:
        value = actor
    else:
        value = check_value(_ACTOR_SPEC, _ACTOR_CHECK, actor)
    known = event.get("actor_id")
    if known is not None and known != value:
        raise InvalidEventError("actor", "given together with a different actor_id")
    event["actor_id"] = value


def build(
    fields: Mapping[str, Any], kind: str, project: str, require_model: bool = False
) -> dict[str, Any]:
    """Validate keyword fields into a queued event (one pass; the caller's mapping is not changed).

    Common values pass inline checks; anything else goes to the full checker of its
    field, which converts it or raises InvalidEventError naming the field.
    """
    event: dict[str, Any] = {}
    fast = _FAST
    actor = None
    for name, value in fields.items():
        entry = fast.get(name)
        if entry is None:
            if value is not None:
                if name == "actor":
                    actor = value  # resolved after the loop, against a checked actor_id
                else:
                    _special(name, value, event)
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
            # an int here is exact (the limits are far below 2**53): stored as a float
            if (tp is float or tp is int) and 0.0 <= value <= limit:
                event[name] = value
                continue
        elif how == 3 and tp is str and value in limit:  # type first: a list is unhashable
            event[name] = value
            continue
        if value is not None:  # None means "not given"; it fails every fast check above
            try:  # inline rather than check_value(): one call less for metadata
                event[name] = check(spec, value)
            except InvalidEventError:
                raise
            except Exception as exc:  # the caller's object raised: still the contract's error
                raise checker_failed(spec, value, exc) from None
    if actor is not None:
        _set_actor(actor, event)
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


def build_update(fields: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Validate fields to merge into an event already built (``Call.set``): build()'s rules.

    No defaults are filled in and nothing is required; ``actor`` aliases ``actor_id``.
    """
    event: dict[str, Any] = {}
    actor = None
    for name, value in fields.items():
        if value is None:
            continue
        entry = _FAST.get(name)
        if entry is None:
            if name == "actor":
                actor = value
            else:
                _special(name, value, event)
            continue
        _, _, spec, check = entry
        event[name] = check_value(spec, check, value)
    if actor is not None:
        _set_actor(actor, event)
    if event.get("kind", kind) != kind:
        raise InvalidEventError("kind", f"must be {kind!r} here, got {event['kind']!r}")
    return event


def build_from_mapping(raw: Mapping[str, Any], *, project: str) -> dict[str, Any]:
    """Validate one event of a batch (HTTP ingest, import); ``kind`` defaults to ``llm_call``."""
    if not isinstance(raw, Mapping):
        raise InvalidEventError(
            "event", f"must be a JSON object (a mapping), got {type(raw).__name__}"
        )
    try:
        fields = dict(raw)  # a custom Mapping runs the caller's code: it may raise anything
    except Exception as exc:
        raise InvalidEventError("event", f"could not be read ({exception_text(exc)})") from None
    if not all(type(key) is str for key in fields):
        fields = _plain_keys(fields)
    kind = fields.pop("kind", None)
    kind = "llm_call" if kind is None else check_value(_KIND_SPEC, _KIND_CHECK, kind)
    version = fields.pop("schema_version", None)
    if version is not None and (type(version) is not int or version != SCHEMA_VERSION):
        raise InvalidEventError(
            "schema_version",
            f"{short_repr(version)} is not supported (this llmtally writes {SCHEMA_VERSION})",
            version,
        )
    return build(fields, kind, project, kind == "llm_call")


def _plain_keys(fields: dict[Any, Any]) -> dict[str, Any]:
    """``fields`` with str-subclass keys (a StrEnum) as plain str; any other key is refused."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(key, str):
            raise InvalidEventError("event", f"has a non-string key {short_repr(key)}")
        out[str.__str__(key)] = value
    return out


def known_field(name: str) -> bool:
    """Whether ``name`` is an event field."""
    return name in FIELDS
