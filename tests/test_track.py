"""track(): context manager (sync/async), decorator, errors, streams and provider responses."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import llmtally
from dbutil import rows
from payloads import ANTHROPIC, GEMINI, OPENAI_CHAT


@pytest.fixture
def tally(sqlite_url: str) -> Any:
    with llmtally.Tally(sqlite_url, project="t") as t:
        yield t


def only(url: str, where: str = "1=1") -> dict[str, Any]:
    (row,) = rows(url, f"SELECT * FROM events WHERE {where}")
    return row


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            OPENAI_CHAT,
            {
                "input_tokens": 2000,
                "output_tokens": 300,
                "cache_read_tokens": 1024,
                "reasoning_tokens": 200,
                "total_tokens": 2300,
                "finish_reason": "stop",
                "model_version": "gpt-4o-2024-08-06",
            },
        ),
        # Anthropic input excludes cache: normalized input = 3000 + 6000 + 1000
        (
            ANTHROPIC,
            {
                "input_tokens": 10000,
                "output_tokens": 500,
                "cache_read_tokens": 6000,
                "cache_write_tokens": 1000,
                "cache_write_1h_tokens": 400,
                "finish_reason": "end_turn",
            },
        ),
        # Gemini output excludes thoughts: normalized output = 700 + 900
        (
            GEMINI,
            {
                "input_tokens": 12000,
                "output_tokens": 1600,
                "cache_read_tokens": 8000,
                "reasoning_tokens": 900,
                "finish_reason": "stop",
            },
        ),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_record_response_normalizes_tokens(
    tally: llmtally.Tally, sqlite_url: str, response: dict[str, Any], expected: dict[str, Any]
) -> None:
    with tally.track(model="requested-model", feature="f") as call:
        call.record_response(response)
    assert tally.flush(10)
    row = only(sqlite_url)
    for key, value in expected.items():
        assert row[key] == value, key
    assert row["model"] == "requested-model"


def test_exception_is_recorded_and_reraised(tally: llmtally.Tally, sqlite_url: str) -> None:
    class RateLimitError(Exception):
        pass

    with pytest.raises(RateLimitError, match="slow down"), tally.track(model="gpt-4o"):
        raise RateLimitError("slow down")
    assert tally.flush(10)
    row = only(sqlite_url)
    assert row["status"] == "error"
    assert row["error_type"] == "RateLimitError"
    assert row["error_message"] == "slow down"
    assert row["latency_ms"] >= 0


def test_latency_and_stream_timing(tally: llmtally.Tally, sqlite_url: str) -> None:
    with tally.track(model="gpt-4o", stream=True) as call:
        time.sleep(0.03)
        for _ in range(5):
            call.chunk()
        time.sleep(0.02)
    assert tally.flush(10)
    row = only(sqlite_url)
    assert row["latency_ms"] >= 50
    assert 30 <= row["ttft_ms"] < row["latency_ms"]
    assert row["stream_chunks"] == 5 and bool(row["stream"]) is True
    assert row["status"] == "success"


def test_decorator_records_each_invocation(tally: llmtally.Tally, sqlite_url: str) -> None:
    @tally.track(model="gpt-4o", feature="decorated")
    def ask(question: str) -> dict[str, Any]:
        return OPENAI_CHAT

    assert ask("a") is OPENAI_CHAT
    ask("b")
    assert tally.flush(10)
    got = rows(sqlite_url, "SELECT * FROM events ORDER BY occurred_at")
    assert len(got) == 2
    assert {r["feature"] for r in got} == {"decorated"}
    assert all(r["input_tokens"] == 2000 for r in got)
    assert got[0]["event_id"] != got[1]["event_id"]


def test_async_context_manager_and_decorator(tally: llmtally.Tally, sqlite_url: str) -> None:
    @tally.track(model="gpt-4o", feature="async-decorated")
    async def ask() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return ANTHROPIC

    async def main() -> None:
        async with tally.track(model="gpt-4o", feature="async-cm") as call:
            await asyncio.sleep(0.01)
            call.record_usage(input_tokens=10, output_tokens=2)
        await asyncio.gather(*(ask() for _ in range(3)))
        with pytest.raises(ValueError):
            async with tally.track(model="gpt-4o", feature="async-error"):
                raise ValueError("bad")

    asyncio.run(main())
    assert tally.flush(10)
    features = [r["feature"] for r in rows(sqlite_url)]
    assert sorted(features) == [
        "async-cm",
        "async-decorated",
        "async-decorated",
        "async-decorated",
        "async-error",
    ]
    assert only(sqlite_url, "feature = 'async-error'")["status"] == "error"


def test_call_id_links_feedback(tally: llmtally.Tally, sqlite_url: str) -> None:
    with tally.track(model="gpt-4o") as call:
        pass
    tally.record_feedback(call.id, rating="up", actor="U1")
    assert tally.flush(10)
    assert only(sqlite_url, "kind = 'feedback'")["parent_id"] == call.id


def test_bad_fields_in_track_raise_before_the_call(tally: llmtally.Tally) -> None:
    with pytest.raises(llmtally.InvalidEventError, match="temperature"):
        tally.track(model="gpt-4o", temperature="hot")
    with tally.track(model="gpt-4o") as call, pytest.raises(llmtally.InvalidEventError):
        call.record_usage(input_tokens=-1)


def test_warn_mode_never_raises(sqlite_url: str) -> None:
    with llmtally.Tally(sqlite_url, on_invalid="warn") as tally:
        event_id = tally.record_call(model="gpt-4o", input_tokens="many")  # type: ignore[typeddict-item]
        assert isinstance(event_id, str)
        assert tally.stats()["invalid"] == 1
