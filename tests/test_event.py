"""Validation of events at the public API: clear errors naming the field."""

from __future__ import annotations

import decimal
import enum
import fractions
import json
import math
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

import llmtally
from dbutil import rows
from llmtally.capture.build import build, build_from_mapping
from llmtally.capture.event import to_epoch
from llmtally.capture.metadata import MAX_METADATA_DEPTH
from llmtally.cli.main import cli
from llmtally.event import (
    ACTOR_TEXT_LIMITS,
    COLUMN_NAMES,
    FIELDS,
    MAX_COST_USD,
    MAX_COUNT,
    MAX_DURATION_MS,
    MAX_EPOCH,
    MIN_EPOCH,
    is_uuid,
    new_event_id,
)
from llmtally.store import schema


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


# -- the validation contract: InvalidEventError naming the field, never another error -----


class _BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("no float")


class _BadIndex:
    def __index__(self) -> int:
        raise ZeroDivisionError("no index")


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _BadTz(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("no offset")


class _Role(enum.StrEnum):
    AGENT = "agent"
    ERROR = "error"


@pytest.fixture
def tally(tmp_path: Path) -> Iterator[llmtally.Tally]:
    with llmtally.Tally(
        f"sqlite:///{tmp_path}/t.db", spool_dir=tmp_path / "spool", redact_pii=False
    ) as t:
        yield t


def _stored(tally: llmtally.Tally, where: str = "1=1") -> list[dict[str, Any]]:
    assert tally.flush(10)
    assert tally.database_url is not None
    return rows(tally.database_url, f"SELECT * FROM events WHERE {where}")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (lambda t: t.record_call(model="m", status=[]), "status"),
        (lambda t: t.record_call(model="m", kind={}), "kind"),
        (lambda t: t.record_call(model="m", actor_type=["human"]), "actor_type"),
        (lambda t: t.record_feedback("c1", rating=[]), "rating"),
        (lambda t: t.record_call(model="m", latency_ms=10**400), "latency_ms"),
        (lambda t: t.record_call(model="m", cost_usd=-(10**400)), "cost_usd"),
        (lambda t: t.record_call(model="m", input_tokens=10**5000), "input_tokens"),
        (lambda t: t.record_event("x", properties=5), "properties"),
        (lambda t: t.record_event("x", properties={"a": math.nan}), "properties"),
        (lambda t: t.record_call(model="m", latency_ms=_BadFloat()), "latency_ms"),
        (lambda t: t.record_call(model="m", ttft_ms=decimal.Decimal("sNaN")), "ttft_ms"),
        (lambda t: t.record_call(model="m", output_tokens=_BadIndex()), "output_tokens"),
        (lambda t: t.record_call(model="m", feature=_BadRepr()), "feature"),
        (
            lambda t: t.record_call(model="m", occurred_at=datetime(2026, 1, 1, tzinfo=_BadTz())),
            "occurred_at",
        ),
        (
            lambda t: t.record_call(
                model="m", metadata={"t": datetime(2026, 1, 1, tzinfo=_BadTz())}
            ),
            "metadata",
        ),
        (lambda t: t.record_tool_call([]), "name"),
        (lambda t: t.identify([]), "actor_id"),
        (lambda t: t.identify("U1", actor_type=[]), "actor_type"),
        (lambda t: t.identify("U1", display_name=5), "display_name"),
        (lambda t: t.identify("U1", timezone="x" * 65), "timezone"),
        (lambda t: t.identify("U1", email=b"a@b"), "email"),
        (lambda t: t.ingest(5), "events"),
        (lambda t: t.ingest({"model": "m"}), "events"),
    ],
)
def test_bad_values_raise_invalid_event_error_only(
    tally: llmtally.Tally, record: Any, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[Any] = []
    monkeypatch.setattr(tally._writer, "put", handed.append)
    with pytest.raises(llmtally.InvalidEventError) as info:
        record(tally)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert handed == []  # nothing reached the writer


def test_warn_mode_counts_what_raise_mode_raises(tmp_path: Path) -> None:
    with llmtally.Tally(
        f"sqlite:///{tmp_path}/t.db", spool_dir=tmp_path / "spool", on_invalid="warn"
    ) as tally:
        tally.record_call(model="m", status=[])
        tally.record_event("x", properties=5)
        tally.identify("U1", display_name=5)
        assert tally.ingest(5).accepted == 0
        with tally.track(model="m") as call:
            call.record_usage(input_tokens=-1)
            call.record_response(object())
        assert tally.stats()["invalid"] == 5
        assert [r["model"] for r in _stored(tally)] == ["m"]


def test_ingest_is_all_or_nothing_per_row(tally: llmtally.Tally) -> None:
    result = tally.ingest(
        [
            {"model": "m", "input_tokens": 5},
            {"model": "m", "status": []},
            7,
            None,
            {1: "x"},
            {"model": "m", "kind": ["llm_call"]},
            {"model": "m", "schema_version": True},
            {"model": "m", "latency_ms": 10**400},
            {"kind": "product", "name": "signup", "metadata": {"a": 1}},
        ]
    )
    assert result.accepted == 2 and len(result.event_ids) == 2
    assert [(r["index"], r["field"]) for r in result.rejected] == [
        (1, "status"),
        (2, "event"),
        (3, "event"),
        (4, "event"),
        (5, "kind"),
        (6, "schema_version"),
        (7, "latency_ms"),
    ]
    assert all(r["error"].startswith(f"{r['field']}: ") for r in result.rejected)
    assert sorted(r["event_id"] for r in _stored(tally)) == sorted(result.event_ids)


def test_ingest_reads_the_whole_batch_before_queueing(tally: llmtally.Tally) -> None:
    def feed() -> Iterator[dict[str, Any]]:
        yield {"model": "m"}
        raise RuntimeError("the feed broke")

    with pytest.raises(llmtally.InvalidEventError, match=r"events: .*the feed broke"):
        tally.ingest(feed())
    assert _stored(tally) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input_tokens": 2**32 + 1}, "input_tokens"),
        ({"stream_chunks": 2**63}, "stream_chunks"),
        ({"max_tokens": 5.0}, "max_tokens"),
        ({"prompt_length": np.int64(-1)}, "prompt_length"),
        ({"latency_ms": 1e9 + 1}, "latency_ms"),
        ({"ttft_ms": 10**9 + 1}, "ttft_ms"),
        ({"cost_usd": 1e6 * (1 + 1e-15)}, "cost_usd"),
        ({"temperature": 100.5}, "temperature"),
        ({"quality_score": 1.01}, "quality_score"),
        ({"stream": 1}, "stream"),
        ({"stream": np.float64(1.0)}, "stream"),
        ({"event_id": str(uuid.uuid4()) + "\n"}, "event_id"),
        ({"event_id": uuid.uuid4().hex}, "event_id"),
        ({"feature": b"chat"}, "feature"),
        ({"status": "SUCCESS"}, "status"),
    ],
)
def test_limits(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(llmtally.InvalidEventError) as info:
        call(**fields)
    assert info.value.field == field


def test_limits_are_inclusive_and_numbers_normalized() -> None:
    event = call(
        input_tokens=2**32,
        output_tokens=np.int64(7),
        latency_ms=10**9,
        ttft_ms=np.float32(0.5),
        cost_usd=1e6,
        temperature=decimal.Decimal("0.5"),
        top_p=fractions.Fraction(1, 4),
        stream=np.bool_(True),
        status=_Role.ERROR,
        actor_type=_Role.AGENT,
        event_id=uuid.UUID("0190B2A4-0000-7000-8000-000000000001"),
    )
    assert event["input_tokens"] == 2**32
    assert type(event["output_tokens"]) is int and event["output_tokens"] == 7
    assert event["latency_ms"] in (1e9, 10**9)  # an exact int may stay an int until stored
    assert type(event["ttft_ms"]) is float and type(event["temperature"]) is float
    assert event["top_p"] == 0.25 and event["stream"] is True
    assert type(event["status"]) is str and event["status"] == "error"
    assert type(event["actor_type"]) is str and event["actor_type"] == "agent"
    assert event["event_id"] == "0190b2a4-0000-7000-8000-000000000001"
    big = call(latency_ms=_IntLike(5))
    assert type(big["latency_ms"]) is float


class _IntLike(int):
    pass


def test_ints_in_float_fields_are_stored_as_floats(tally: llmtally.Tally) -> None:
    tally.record_call(model="m", latency_ms=812, cost_usd=2, temperature=1)
    (row,) = _stored(tally)
    assert [type(row[c]) for c in ("latency_ms", "cost_usd", "temperature")] == [float] * 3


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "0999-06-01T00:00:00Z",
        "1969-12-31T23:59:59.999999Z",
        "3000-01-01T00:00:00Z",
        "2999-12-31T23:00:00-02:00",
        datetime(999, 6, 1),
        datetime(1969, 12, 31, 23, 59, 59),
        datetime(3000, 1, 1),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        date(1969, 12, 31),
        -1,
        -1e-6,
        32503680000,
        10**400,
        math.nan,
        True,
        datetime(2026, 1, 1, tzinfo=_BadTz()),
    ],
)
def test_occurred_at_out_of_range_is_refused_in_every_form(value: Any) -> None:
    with pytest.raises(llmtally.InvalidEventError) as info:
        to_epoch(value)
    assert info.value.field == "occurred_at"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        (datetime(1970, 1, 1), 0.0),
        (date(1970, 1, 1), 0.0),
        (0, 0.0),
        ("2999-12-31T23:59:59.999+00:00", 32503679999.999),
        ("2999-12-31T23:00:00-00:59", 32503679940.0),
        ("1970-01-01T01:00:00+01:00", 0.0),
        (date(2026, 3, 1), datetime(2026, 3, 1, tzinfo=UTC).timestamp()),
        (np.float64(1.5), 1.5),
    ],
)
def test_occurred_at_bounds_are_inclusive_below_exclusive_above(
    value: Any, expected: float
) -> None:
    assert to_epoch(value) == expected
    assert MIN_EPOCH == 0.0 and datetime.fromtimestamp(MAX_EPOCH, UTC) == datetime(
        3000, 1, 1, tzinfo=UTC
    )


def test_bounds_are_the_documented_constants() -> None:
    assert MAX_COUNT == 2**32 and MAX_DURATION_MS == 1e9 and MAX_COST_USD == 1e6
    # an int64 rollup sum of events at the maximum holds for 2**31 - 1 of them
    assert MAX_COUNT * (2**31 - 1) <= 2**63 - 1
    for name, spec in FIELDS.items():
        if spec.column in ("int", "float"):
            assert spec.maximum is not None, name
    assert FIELDS["latency_ms"].maximum == FIELDS["ttft_ms"].maximum == MAX_DURATION_MS
    widths = {c.name: c.type.length for c in schema.actors.columns if c.name in ACTOR_TEXT_LIMITS}
    assert widths == dict(ACTOR_TEXT_LIMITS)


def test_strings_store_the_plain_value(tally: llmtally.Tally) -> None:
    class Feature(enum.StrEnum):
        CHAT = "chat"

    class Liar(str):
        def __str__(self) -> str:
            return "lie"

    tally.record_call(model=Liar("gpt-4o"), feature=Feature.CHAT, status=_Role.ERROR)
    event = call(model=Liar("gpt-4o"), feature=Feature.CHAT)
    assert type(event["model"]) is str and event["model"] == "gpt-4o"
    assert type(event["feature"]) is str and event["feature"] == "chat"
    (row,) = _stored(tally)
    assert (row["model"], row["feature"], row["status"]) == ("gpt-4o", "chat", "error")


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({1: "a", "1": "b"}, "non-string key 1"),
        ({"a": {"b": {(1, 2): 3}}}, "non-string key (1, 2); JSON keys are strings (at a.b)"),
        ({"a": [1, {"b": math.nan}]}, "NaN or infinity, which JSON cannot represent (at a[1].b)"),
        ({"x": math.inf}, "(at x)"),
        ({"n": 2**64}, "integer beyond 64 bits (at n)"),
        ({"n": -(2**63) - 1}, "integer beyond 64 bits"),
        ({"s": {1, 2}}, "not JSON-serializable: holds a set (at s)"),
        ({"b": b"x"}, "not JSON-serializable"),
        ({"d": decimal.Decimal("1")}, "not JSON-serializable"),
        (dict([("\ud800", 1), ("\udc00", 2)]), "equal once lone surrogates are replaced"),
        ({"big": "x" * 70_000}, "at most 65,536"),
        ("{}", "JSON object"),
    ],
)
def test_bad_metadata_names_the_key(metadata: Any, words: str) -> None:
    with pytest.raises(llmtally.InvalidEventError) as info:
        call(metadata=metadata)
    assert info.value.field == "metadata"
    assert words in str(info.value)


def test_metadata_nesting_and_cycles() -> None:
    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {"leaf": 1}
        for _ in range(depth - 1):
            value = {"d": value}
        return value

    assert call(metadata=nested(MAX_METADATA_DEPTH))["metadata"].count(b"{") == MAX_METADATA_DEPTH
    with pytest.raises(llmtally.InvalidEventError, match="deeper than 254"):
        call(metadata=nested(MAX_METADATA_DEPTH + 1))
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(llmtally.InvalidEventError, match=r"metadata: .*circular"):
        call(metadata=loop)


def test_metadata_normalizations(tally: llmtally.Tally) -> None:
    moment = datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=5, seconds=7)))
    given = {
        "when": moment,
        "day": date(2026, 1, 1),
        "id": uuid.UUID(int=1),
        "role": _Role.AGENT,
        "pair": (1, 2),
        "np": np.float64(1.5),
        "n": np.int64(3),
        "view": types.MappingProxyType({"k": "v"}),
        "broken": "a\ud800b",
        "\udfffkey": None,
        "nul": "x\x00y",
    }
    expected = {
        "when": moment.isoformat(),
        "day": "2026-01-01",
        "id": "00000000-0000-0000-0000-000000000001",
        "role": "agent",
        "pair": [1, 2],
        "np": 1.5,
        "n": 3,
        "view": {"k": "v"},
        "broken": "a\ufffdb",
        "\ufffdkey": None,
        "nul": "x\x00y",
    }
    assert orjson.loads(call(metadata=given)["metadata"]) == expected
    assert orjson.loads(call(metadata=types.MappingProxyType({"a": 1}))["metadata"]) == {"a": 1}
    tally.record_event("x", properties=given)
    (row,) = _stored(tally)
    assert json.loads(row["metadata"]) == expected


def test_metadata_is_copied_at_the_call(tally: llmtally.Tally) -> None:
    meta: dict[str, Any] = {"a": [1]}
    tally.record_call(model="m", metadata=meta)
    meta["a"].append(2)
    meta["b"] = 1
    (row,) = _stored(tally)
    assert json.loads(row["metadata"]) == {"a": [1]}


def test_identify_validates_and_stores_plain_values(tally: llmtally.Tally) -> None:
    tally.identify(_Role.AGENT, actor_type=_Role.AGENT, display_name="n" * 200, email="e" * 320)
    for bad in ({"display_name": "n" * 201}, {"real_name": 5}, {"email": "e" * 321}):
        with pytest.raises(llmtally.InvalidEventError) as info:
            tally.identify("U2", **bad)
        assert info.value.field == next(iter(bad))
    assert tally.flush(10)
    assert tally.database_url is not None
    (actor,) = rows(tally.database_url, "SELECT * FROM actors")
    assert (actor["actor_type"], actor["actor_id"]) == ("agent", "agent")
    assert actor["display_name"] == "n" * 200 and actor["email"] == "e" * 320


def test_call_updates_are_all_or_nothing(tally: llmtally.Tally) -> None:
    with tally.track(model="m") as call_:
        call_.record_usage(input_tokens=10, output_tokens=5)
        with pytest.raises(llmtally.InvalidEventError, match="cache_read_tokens"):
            call_.record_usage(input_tokens=1, cache_read_tokens=8)
        with pytest.raises(llmtally.InvalidEventError, match="output_tokens"):
            call_.record_usage(reasoning_tokens=1, output_tokens=2**40)
        with pytest.raises(llmtally.InvalidEventError, match="schema_version"):
            call_.set(schema_version=2)
        with pytest.raises(llmtally.InvalidEventError, match="kind"):
            call_.set(kind="feedback")
        with pytest.raises(llmtally.InvalidEventError, match="response: could not be read"):
            call_.record_response({"usage": {"prompt_tokens": 1}, "choices": 5})
    (row,) = _stored(tally)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (10, 5, None)
    assert row["reasoning_tokens"] is None and row["schema_version"] == 1


def test_a_failing_block_is_recorded_whatever_the_exception(tally: llmtally.Tally) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    Long = type("E" * 300, (Exception,), {})
    for error in (Unprintable(), Long("boom")):
        with pytest.raises(type(error)), tally.track(model="m"):
            raise error
    first, second = sorted(_stored(tally), key=lambda r: r["occurred_at"])
    assert first["status"] == "error" and first["error_type"] == "Unprintable"
    assert "str() of the exception failed" in first["error_message"]
    assert second["error_type"] == "E" * 200 and second["error_message"] == "boom"


def test_export_works_at_the_date_bounds(db_url: str, tmp_path: Path) -> None:
    with llmtally.Tally(db_url, spool_dir=tmp_path / "spool") as tally:
        with pytest.raises(llmtally.InvalidEventError, match="occurred_at"):
            tally.record_call(model="m", occurred_at="0999-06-01T00:00:00Z")
        with pytest.raises(llmtally.InvalidEventError, match="occurred_at"):
            tally.record_call(model="m", occurred_at="9999-12-31T23:59:59-14:00")
        first = tally.record_call(model="m", occurred_at="1970-01-01T00:00:00Z")
        last = tally.record_call(model="m", occurred_at="2999-12-31T23:59:59.999Z")
        assert tally.flush(10)
    target = tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        cli, ["export", "--db", db_url, "--format", "jsonl", "--output", str(target)]
    )
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["event_id"] for e in exported] == [first, last]
    assert exported[0]["occurred_at"].startswith("1970-01-01T00:00:00")
    assert exported[1]["occurred_at"].startswith("2999-12-31T23:59:59.999")
