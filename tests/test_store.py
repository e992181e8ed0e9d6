"""Round trips, idempotency and batch isolation on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from genai_prices import Usage, calc_price

import llmtally
from dbutil import count, rows

WHEN = datetime(2026, 10, 3, 14, 15, 16, 123456, tzinfo=UTC)

FULL_CALL: dict[str, Any] = {
    "event_id": "0192a3b4-c5d6-7e8f-9a0b-1c2d3e4f5a6b",
    "occurred_at": WHEN,
    "project": "proj-a",
    "name": "reply",
    "actor_id": "U123",
    "actor_type": "agent",
    "session_id": "sess-1",
    "trace_id": "trace-1",
    "parent_id": "parent-1",
    "feature": "smart_reply",
    "provider": "openai",
    "model": "gpt-4o",
    "model_version": "gpt-4o-2024-08-06",
    "routing_strategy": "fallback",
    "status": "error",
    "error_type": "RateLimitError",
    "error_message": "slow down",
    "finish_reason": "length",
    "input_tokens": 2000,
    "output_tokens": 300,
    "cache_read_tokens": 1024,
    "cache_write_tokens": 10,
    "cache_write_1h_tokens": 4,
    "reasoning_tokens": 120,
    "total_tokens": 2300,
    "latency_ms": 1234.5,
    "ttft_ms": 210.25,
    "stream": True,
    "stream_chunks": 42,
    "temperature": 0.7,
    "max_tokens": 512,
    "top_p": 0.9,
    "cost_usd": 0.0123,
    "usage_estimated": True,
    "quality_score": 0.75,
    "metadata": {"tier": "pro", "n": 3, "nested": {"list": [1, "two", None]}},
}


def test_every_field_round_trips(db_url: str) -> None:
    with llmtally.Tally(db_url) as tally:
        event_id = tally.record_call(**FULL_CALL, prompt="Hello there")
        assert tally.flush(10)
    assert event_id == FULL_CALL["event_id"]
    (row,) = rows(db_url)
    for name, value in FULL_CALL.items():
        got = row[name]
        if name == "metadata" and isinstance(got, str):
            got = json.loads(got)
        if name in ("stream", "usage_estimated"):
            got = bool(got)
        assert got == value, name
    assert row["kind"] == "llm_call"
    assert row["schema_version"] == llmtally.SCHEMA_VERSION
    assert row["prompt_hash"] == hashlib.sha256(b"Hello there").hexdigest()
    assert row["prompt_length"] == len("Hello there")
    assert row["input_text"] is None and row["output_text"] is None  # not stored by default


def test_feedback_product_and_tool_events_round_trip(db_url: str) -> None:
    with llmtally.Tally(db_url, project="bot-1") as tally:
        call_id = tally.record_call(model="gpt-4o-mini", input_tokens=5, output_tokens=2)
        tally.record_feedback(
            call_id,
            rating="down",
            regenerated=True,
            edited=False,
            actor="U9",
            comment="wrong answer",
        )
        tally.record_event(
            "new_conversation", actor="U9", properties={"message_length": 42}, session_id="s-9"
        )
        tally.record_tool_call("search_docs", status="success", latency_ms=20.0, trace_id="t")
        assert tally.flush(10)
    by_kind = {row["kind"]: row for row in rows(db_url)}
    assert set(by_kind) == {"llm_call", "feedback", "product", "tool_call"}
    feedback = by_kind["feedback"]
    assert feedback["parent_id"] == call_id and feedback["rating"] == "down"
    assert bool(feedback["regenerated"]) is True and bool(feedback["edited"]) is False
    assert feedback["comment"] == "wrong answer" and feedback["actor_id"] == "U9"
    product = by_kind["product"]
    assert product["name"] == "new_conversation" and product["project"] == "bot-1"
    meta = product["metadata"]
    assert (json.loads(meta) if isinstance(meta, str) else meta) == {"message_length": 42}
    assert by_kind["tool_call"]["name"] == "search_docs"


def test_same_event_id_is_stored_once(db_url: str) -> None:
    event_id = "0192a3b4-c5d6-7e8f-9a0b-000000000001"
    with llmtally.Tally(db_url) as tally:
        for _ in range(3):  # same batch
            tally.record_call(event_id=event_id, model="gpt-4o", input_tokens=1)
        assert tally.flush(10)
        tally.record_call(event_id=event_id, model="gpt-4o", input_tokens=1)  # later batch
        assert tally.flush(10)
        stats = tally.stats()
    with llmtally.Tally(db_url) as other:  # another process/instance
        other.record_call(event_id=event_id.upper(), model="gpt-4o", input_tokens=1)
        assert other.flush(10)
    assert count(db_url) == 1
    assert stats["written"] == 1 and stats["duplicates"] == 3


def test_bad_events_in_a_batch_are_rejected_alone(db_url: str) -> None:
    batch: list[Any] = [
        {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 2},
        {"model": "gpt-4o", "input_tokens": "ten"},
        {"model": "gpt-4o", "output_tokens": -4},
        {"model": "gpt-4o", "status": "maybe"},
        {"model": "gpt-4o", "metadata": {"blob": "x" * (1 << 20)}},
        {"model": "gpt-4o", "latency_ms": float("nan")},
        {"kind": "product", "name": "signup", "actor_id": "U1"},
        "not an object",
        {"model": "claude-3-5-haiku-latest", "latency_ms": 10.5},
    ]
    with llmtally.Tally(db_url) as tally:
        result = tally.ingest(batch)
        assert tally.flush(10)
    assert result.accepted == 3
    rejected = {r["index"]: r for r in result.rejected}
    assert set(rejected) == {1, 2, 3, 4, 5, 7}
    assert rejected[1]["field"] == "input_tokens"
    assert rejected[2]["field"] == "output_tokens"
    assert rejected[3]["field"] == "status"
    assert rejected[4]["field"] == "metadata" and "bytes" in rejected[4]["error"]
    assert rejected[5]["field"] == "latency_ms"
    assert rejected[7]["field"] == "event"
    assert count(db_url) == 3


def test_costs_are_priced_on_write(db_url: str) -> None:
    with llmtally.Tally(db_url) as tally:
        tally.record_call(
            model="gpt-4o",
            provider="openai",
            occurred_at=WHEN,
            input_tokens=2000,
            cache_read_tokens=1024,
            output_tokens=100,
        )
        tally.record_call(
            model="mystery-model-9000", provider="acme", input_tokens=10, output_tokens=10
        )
        tally.record_call(
            model="gpt-4o", provider="openai", status="error", error_type="APITimeoutError"
        )
        tally.record_call(model="gpt-4o", provider="openai")
        assert tally.flush(10)
    got = {(r["model"], r["status"], r["input_tokens"]): r["cost_usd"] for r in rows(db_url)}
    expected = float(
        calc_price(
            Usage(input_tokens=2000, cache_read_tokens=1024, output_tokens=100),
            model_ref="gpt-4o",
            provider_id="openai",
            genai_request_timestamp=WHEN,
        ).total_price
    )
    assert got[("gpt-4o", "success", 2000)] == pytest.approx(expected, rel=1e-12)
    assert got[("mystery-model-9000", "success", 10)] is None  # unknown: null, never 0
    assert got[("gpt-4o", "error", None)] == 0.0  # failed before usage: nothing billed
    assert got[("gpt-4o", "success", None)] is None  # no usage reported: unknown
    registry = {(r["provider"], r["model"]): r for r in rows(db_url, "SELECT * FROM models")}
    assert bool(registry[("acme", "mystery-model-9000")]["is_placeholder"]) is True
    assert registry[("acme", "mystery-model-9000")]["price_source"] == "unknown"
    assert registry[("openai", "gpt-4o")]["price_source"] == "genai-prices"
    assert registry[("openai", "gpt-4o")]["input_per_mtok"] == pytest.approx(2.5)


def test_unknown_model_warns_once(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmtally"), llmtally.Tally(sqlite_url) as tally:
        for _ in range(5):
            tally.record_call(model="never-heard-of-it", input_tokens=1, output_tokens=1)
        assert tally.flush(10)
        tally.record_call(model="never-heard-of-it", input_tokens=1, output_tokens=1)
        assert tally.flush(10)
    warnings = [r for r in caplog.records if "never-heard-of-it" in r.getMessage()]
    assert len(warnings) == 1
    assert count(sqlite_url) == 6


def test_actors_are_upserted_and_enriched(db_url: str) -> None:
    with llmtally.Tally(db_url) as tally:
        tally.record_call(model="gpt-4o", actor="U1", occurred_at=WHEN)
        tally.record_call(model="gpt-4o", actor="U1", occurred_at=WHEN + timedelta(hours=2))
        tally.record_call(model="gpt-4o", actor="deploy-bot", actor_type="agent", occurred_at=WHEN)
        tally.identify("U1", real_name="Ada Example", timezone="Europe/Paris")
        assert tally.flush(10)
        tally.identify("U1", display_name="ada")  # None fields keep earlier values
        assert tally.flush(10)
    actors = {(r["actor_type"], r["actor_id"]): r for r in rows(db_url, "SELECT * FROM actors")}
    assert set(actors) == {("human", "U1"), ("agent", "deploy-bot")}
    ada = actors[("human", "U1")]
    assert ada["real_name"] == "Ada Example" and ada["timezone"] == "Europe/Paris"
    assert ada["display_name"] == "ada"
    assert ada["first_seen"] == WHEN
    assert ada["last_seen"] >= WHEN + timedelta(hours=2)


def test_pii_is_redacted_and_content_only_stored_when_enabled(db_url: str) -> None:
    with llmtally.Tally(db_url) as tally:
        with pytest.raises(ConnectionError), tally.track(model="gpt-4o", provider="openai"):
            raise ConnectionError("refused for jane.doe@example.com, call +1 415 555 0132")
        tally.record_call(
            model="gpt-4o",
            metadata={"contact": "jane.doe@example.com", "n": 5},
            prompt="my card is 4111 1111 1111 1111",
        )
        assert tally.flush(10)
    text = json.dumps(rows(db_url), default=str)
    assert "jane.doe@example.com" not in text and "4111" not in text and "555" not in text
    assert "[EMAIL]" in text
    with llmtally.Tally(db_url, capture_content=True, project="c") as tally:
        tally.record_call(model="gpt-4o", prompt="summarize for bob@example.org", completion="done")
        assert tally.flush(10)
    (row,) = rows(db_url, "SELECT * FROM events WHERE project = 'c'")
    assert row["input_text"] == "summarize for [EMAIL]" and row["output_text"] == "done"


def test_nul_characters_are_kept_or_replaced_never_lost(db_url: str) -> None:
    with llmtally.Tally(db_url) as tally:
        tally.record_call(model="gpt-4o", feature="a\x00b", metadata={"k": "x\x00y"})
        tally.record_call(model="gpt-4o", feature="plain")
        assert tally.flush(10)
        assert tally.stats()["rejected"] == 0
    got = {r["feature"]: r for r in rows(db_url)}
    assert set(got) - {"plain"} <= {"a\x00b", "a\ufffdb"}  # SQLite keeps NUL; PostgreSQL cannot
    assert len(got) == 2


def test_open_store_is_a_scheme_registry(tmp_path: Any) -> None:
    from llmtally.store import base
    from llmtally.store.sqlite import SQLiteStore

    with pytest.raises(llmtally.UnsupportedDatabaseError) as info:
        base.open_store("clickhouse://default:secret@localhost/db")
    message = str(info.value)
    assert "'clickhouse'" in message and "postgresql, sqlite" in message
    assert "secret" not in message
    opened: list[tuple[str, float]] = []

    def factory(sa_url: str, timeout: float) -> base.Store:
        opened.append((sa_url, timeout))
        return SQLiteStore(sa_url)

    base.register_store("tallytest", factory, drivername="sqlite")
    try:
        store = base.open_store(f"tallytest:///{tmp_path / 'x.db'}", connect_timeout=3.0)
        store.migrate()
        store.ping()
        store.close()
        assert opened == [(f"sqlite:///{tmp_path / 'x.db'}", 3.0)]
        assert "tallytest" in base.store_schemes()
    finally:
        base._KINDS.pop("tallytest")


def test_database_failures_leave_the_store_as_store_errors(tmp_path: Any) -> None:
    import sqlite3

    import sqlalchemy as sa

    from llmtally.store.base import open_store
    from llmtally.store.maintenance import delete_older_than, recompute_costs
    from llmtally.store.rollups import rebuild

    # PostgreSQL that refuses connections: the password is masked, the cause kept
    store = open_store("postgresql://app:hunter2@127.0.0.1:9/x", connect_timeout=1)
    for operation in (store.ping, store.migrate):
        with pytest.raises(llmtally.StoreError) as info:
            operation()
        assert "hunter2" not in str(info.value) and "app:***@127.0.0.1:9/x" in str(info.value)
        assert info.value.url == "postgresql+psycopg://app:***@127.0.0.1:9/x"
        assert not isinstance(info.value.__cause__, llmtally.LlmtallyError)
    store.close()
    # a SQLite file that is not a database
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not a database file" * 100)
    store = open_store(f"sqlite:///{bad}")
    for name, operation in (
        ("migrating the schema", store.migrate),
        ("reaching the database", store.ping),
        ("deleting old events", lambda: delete_older_than(store.engine, days=1)),
        ("re-pricing calls", lambda: recompute_costs(store.engine, _prices())),
        ("rebuilding the derived tables", lambda: rebuild(store.engine)),
    ):
        with pytest.raises(llmtally.StoreError, match=name) as info:
            operation()
        assert isinstance(info.value.__cause__, (sa.exc.SQLAlchemyError, sqlite3.Error)), name
    store.close()


def _prices() -> Any:
    from llmtally.capture.pricing import PriceBook

    return PriceBook()
