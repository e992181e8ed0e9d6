"""Turn public-API arguments or a raw mapping into one validated event dict.

This runs on the caller's thread, so it does only what must fail loudly there:
type/range checks and cross-field rules. Pricing, redaction, hashing and row building
happen on the writer thread (``pipeline.process``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from llmtally.capture.event import (
    FIELDS,
    SCHEMA_VERSION,
    VALIDATORS,
    FieldSpec,
    check_consistency,
    check_value,
    checker_failed,
)
from llmtally.capture.text import exception_text, short_repr
from llmtally.errors import InvalidEventError
from llmtally.event import event_id_at

# keys that carry raw text to the writer, where it is hashed (and stored only when enabled)
PROMPT_KEY = "_prompt"
COMPLETION_KEY = "_completion"

# The per-field tables of the inline checks, built once from the event definition: a
# value of the usual type that passes its field's own bounds is stored as given; anything
# else goes to the full checker of ``capture.event``. Fields set by the pipeline only
# (schema_version, input_text, output_text) are in none of them.
_PIPELINE_ONLY: Final = frozenset({"schema_version", "input_text", "output_text"})
_SETTABLE: Final[dict[str, tuple[FieldSpec, Callable[[FieldSpec, Any], Any]]]] = {
    name: entry for name, entry in VALIDATORS.items() if name not in _PIPELINE_ONLY
}
# a str value: plain strings and free text (non-empty, within max_len). Read by subscript
# (a missing key raises KeyError, which sends the value to the full checker): cheaper than
# .get() per field. Choice fields and raw text are listed with limit 0 so that they go to
# the full checker without an exception; ``actor`` (alias of actor_id) passes as a string.
_STR_LIMITS: Final[dict[str, int]] = {
    **{
        name: 0 if spec.choices is not None else spec.max_len
        for name, (spec, _) in _SETTABLE.items()
        if spec.column in ("str", "text")
    },
    "prompt": 0,
    "completion": 0,
}
# an int value: integer fields, and float fields (an int there is exact: the limits are
# far below 2**53; the store keeps it as a float)
_INT_LIMITS: Final[dict[str, float]] = {
    name: spec.maximum
    for name, (spec, _) in _SETTABLE.items()
    if spec.column in ("int", "float") and spec.maximum is not None
}
# a float value: float fields (NaN fails the chained comparison, infinity the maximum)
_FLOAT_LIMITS: Final[dict[str, float]] = {
    name: spec.maximum
    for name, (spec, _) in _SETTABLE.items()
    if spec.column == "float" and spec.maximum is not None
}
assert set(_INT_LIMITS) == {
    name for name, (spec, _) in _SETTABLE.items() if spec.column in ("int", "float")
}, "every number field has its maximum"
_BOOLS: Final = frozenset(name for name, (spec, _) in _SETTABLE.items() if spec.column == "bool")
_ACTOR_SPEC, _ACTOR_CHECK = VALIDATORS["actor_id"]
_ACTOR_MAX: Final = _ACTOR_SPEC.max_len
_STR_LIMITS["actor"] = _ACTOR_MAX
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


def _full_check(name: Any, value: Any, event: dict[str, Any]) -> None:
    """A value an inline check did not pass (not the ``actor`` alias): checked in full
    into ``event``, or raw text moved for the writer, or refused."""
    entry = _SETTABLE.get(name) if type(name) is str else None
    if entry is None:
        _special(name, value, event)
        return
    spec, check = entry
    choices = spec.choices
    if choices is not None and type(value) is str and value in choices:
        event[name] = value  # type first: a list is unhashable
        return
    try:
        event[name] = check(spec, value)
    except InvalidEventError:
        raise
    except Exception as exc:  # the caller's object raised: still the contract's error
        raise checker_failed(spec, value, exc) from None


def _set_actor(actor: Any, event: dict[str, Any]) -> None:
    """``actor=`` is an alias of ``actor_id``; both at once must agree (compared once checked)."""
    if type(actor) is str and 0 < len(actor) <= _ACTOR_MAX:
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
    """Validate keyword fields into a queued event (the caller's mapping is not changed).

    Common values pass inline checks; anything else goes to the full checker of its
    field, which converts it or raises InvalidEventError naming the field.
    """
    return build_owned(dict(fields), kind, project, require_model)


def check_in_place(event: dict[str, Any]) -> None:
    """Validate ``event`` by build()'s rules, in place: values converted, None dropped,
    ``actor`` renamed to ``actor_id``, raw ``prompt``/``completion`` moved to the writer's
    keys; nothing filled in. The first bad field raises InvalidEventError."""
    str_limits, int_limits, float_limits = _STR_LIMITS, _INT_LIMITS, _FLOAT_LIMITS
    slow: list[Any] | None = None
    # the caller's thread pays for this loop: one type test and one table lookup per field
    for name, value in event.items():
        tp = type(value)
        try:
            if tp is str:
                if 0 < len(value) <= str_limits[name]:
                    continue
            elif tp is int:
                if 0 <= value <= int_limits[name]:
                    continue
            elif tp is float:
                if 0.0 <= value <= float_limits[name]:
                    continue
            elif tp is bool and name in _BOOLS:
                continue
        except KeyError:
            pass  # not a field of this type: the full checker decides
        if slow is None:
            slow = [name]
        else:
            slow.append(name)
    actor = None
    if slow is not None:
        # keys change here (None dropped, prompt moved), so not while iterating above
        for name in slow:
            value = event.pop(name)
            if value is None:
                continue  # None means "not given"
            if name == "actor":
                actor = value  # resolved below, against a checked actor_id
            else:
                _full_check(name, value, event)
    if actor is None:
        actor = event.pop("actor", None)  # a plain string that passed the loop
        if actor is None:
            return
    _set_actor(actor, event)


def build_owned(
    event: dict[str, Any], kind: str, project: str, require_model: bool = False
) -> dict[str, Any]:
    """``build()`` done in place on a dict nobody else holds (a call's ``**kwargs``).

    Checking in place spares the caller's thread a store per field: only values that
    are converted, renamed (``actor``), dropped (None) or moved (``prompt``) change.
    """
    check_in_place(event)
    if "kind" in event and event["kind"] != kind:
        raise InvalidEventError("kind", f"must be {kind!r} here, got {event['kind']!r}")
    if require_model and "model" not in event:
        raise InvalidEventError("model", "is required for an LLM call")
    if (
        "cache_read_tokens" in event
        or "reasoning_tokens" in event
        or "cache_write_tokens" in event
        or "cache_write_1h_tokens" in event
    ):
        check_consistency(event)
    now = time.time()
    if "event_id" not in event:
        event["event_id"] = event_id_at(now)
    if "occurred_at" not in event:
        event["occurred_at"] = now
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
    event = checked(fields)
    if event.get("kind", kind) != kind:
        raise InvalidEventError("kind", f"must be {kind!r} here, got {event['kind']!r}")
    return event


def checked(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` validated by build()'s rules into a new dict, None values dropped."""
    event = dict(fields)
    check_in_place(event)
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
