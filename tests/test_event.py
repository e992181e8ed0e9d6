"""Validation of events at the public API: clear errors naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import llmtally
from llmtally.capture.build import build, build_from_mapping
from llmtally.capture.event import COLUMN_NAMES, FIELDS, to_epoch
from llmtally.capture.ids import is_uuid, new_event_id


def call(**fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "gpt-4o")
    return build(fields, kind="llm_call", project="p", require_model=True)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"input_tokens": "12"}, "input_tokens", "must be an integer"),
        ({"input_tokens": 12.0}, "input_tokens", "must be an integer"),
        ({"input_tokens": True}, "input_tokens", "must be an integer"),
        ({"output_tokens": -1}, "output_tokens", "must be >= 0"),
        ({"status": "ok"}, "status", "must be one of error, success"),
        ({"latency_ms": math.nan}, "latency_ms", "finite"),
        ({"latency_ms": math.inf}, "latency_ms", "finite"),
        ({"latency_ms": "fast"}, "latency_ms", "must be a number"),
        ({"ttft_ms": -3.0}, "ttft_ms", ">= 0"),
        ({"top_p": 1.5}, "top_p", "<= 1"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"metadata": {"blob": "x" * 1_000_000}}, "metadata", "at most 65,536"),
        ({"metadata": [1, 2]}, "metadata", "JSON object"),
        ({"metadata": {"when": object()}}, "metadata", "not JSON-serializable"),
        ({"feature": ""}, "feature", "must not be empty"),
        ({"feature": "f" * 201}, "feature", "at most 200"),
        ({"feature": 7}, "feature", "must be a string"),
        ({"event_id": "not-a-uuid"}, "event_id", "UUID"),
        ({"occurred_at": "yesterday"}, "occurred_at", "ISO-8601"),
        ({"occurred_at": -5}, "occurred_at", "plausible"),
        ({"actor_type": "robot"}, "actor_type", "human"),
        ({"colour": "blue"}, "colour", "not an event field"),
        ({"schema_version": 3}, "schema_version", "set by llmtally"),
        (
            {"input_tokens": 10, "cache_read_tokens": 8, "cache_write_tokens": 5},
            "cache_read_tokens",
            "exceed input_tokens",
        ),
        ({"output_tokens": 10, "reasoning_tokens": 11}, "reasoning_tokens", "exceed output_tokens"),
        (
            {"input_tokens": 10, "cache_write_tokens": 2, "cache_write_1h_tokens": 3},
            "cache_write_1h_tokens",
            "exceeds cache_write_tokens",
        ),
    ],
)
def test_bad_fields_raise_naming_the_field(fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(llmtally.InvalidEventError) as info:
        call(**fields)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_model_is_required_for_calls() -> None:
    with pytest.raises(llmtally.InvalidEventError, match="model: is required"):
        build({"input_tokens": 1}, kind="llm_call", project="p", require_model=True)


def test_defaults_and_normal_values() -> None:
    event = call(input_tokens=3, latency_ms=12, top_p=1, actor="U1")
    assert is_uuid(event["event_id"])
    assert event["project"] == "p" and event["kind"] == "llm_call"
    assert event["schema_version"] == llmtally.SCHEMA_VERSION
    assert event["actor_id"] == "U1"
    assert isinstance(event["latency_ms"], int | float)


def test_event_ids_are_time_ordered_and_unique() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(is_uuid(i) for i in ids[:100])
    assert ids[0][14] == "7"  # version nibble
    assert ids[0][:13] <= ids[-1][:13]  # millisecond prefix never goes back


def test_occurred_at_forms_agree() -> None:
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    expected = moment.timestamp()
    assert to_epoch(moment) == expected
    assert to_epoch(moment.replace(tzinfo=None)) == expected  # naive is UTC
    assert to_epoch("2026-03-01T12:30:00Z") == expected
    assert to_epoch(moment.astimezone(timezone(timedelta(hours=5)))) == expected
    assert to_epoch(expected) == expected


def test_batch_mapping_path_checks_kind_and_version() -> None:
    good = build_from_mapping({"model": "m", "input_tokens": 1}, project="p")
    assert good["kind"] == "llm_call"
    product = build_from_mapping({"kind": "product", "name": "signup"}, project="p")
    assert product["kind"] == "product"
    with pytest.raises(llmtally.InvalidEventError, match="kind"):
        build_from_mapping({"kind": "weird", "model": "m"}, project="p")
    with pytest.raises(llmtally.InvalidEventError, match="schema_version"):
        build_from_mapping({"model": "m", "schema_version": 99}, project="p")
    with pytest.raises(llmtally.InvalidEventError, match="event"):
        build_from_mapping(["not", "a", "dict"], project="p")  # type: ignore[arg-type]


def test_every_field_is_a_column() -> None:
    assert tuple(FIELDS) == COLUMN_NAMES
    assert {"event_id", "cost_usd", "ttft_ms", "cache_read_tokens"} <= set(COLUMN_NAMES)
