"""instrument(anthropic client): the real SDK against the fake provider.

Anthropic's ``input_tokens`` exclude cache reads and writes, and its stream usage is
cumulative (``message_start`` then ``message_delta`` repeat the counts): the fake sends
both, so adding them instead of taking the last value would double every figure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from genai_prices import extract_usage

import llmtally
from fakeprovider import FakeProvider, only, stored

MODEL = "claude-sonnet-4-20250514"
CACHED = {
    "input_tokens": 3000,
    "output_tokens": 500,
    "cache_read_input_tokens": 6000,
    "cache_creation_input_tokens": 1000,
    "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400},
}
MESSAGES = [{"role": "user", "content": "Say hi"}]


def sdk(fake: FakeProvider, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0, **options)


def truth(usage: dict[str, Any], row: dict[str, Any]) -> float:
    extracted = extract_usage({"model": MODEL, "usage": usage}, provider_id="anthropic")
    return float(extracted.calc_price(genai_request_timestamp=row["occurred_at"]).total_price)


def assert_cached_row(row: dict[str, Any]) -> None:
    assert row["model"] == MODEL and row["provider"] == "anthropic"
    assert row["input_tokens"] == 10_000  # 3000 + 6000 read + 1000 written
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (6000, 1000)
    assert row["cache_write_1h_tokens"] == 400
    assert row["output_tokens"] == 500 and not row["usage_estimated"]
    assert row["finish_reason"] == "end_turn" and row["status"] == "success"
    # 3000×$3 + 6000×$0.30 + 600×$3.75 + 400×$6 + 500×$15, per million
    assert row["cost_usd"] == pytest.approx(truth(CACHED, row), rel=1e-12)
    assert row["cost_usd"] == pytest.approx((9000 + 1800 + 2250 + 2400 + 7500) / 1e6, rel=1e-12)


def test_create_with_cache_read_and_5m_1h_writes(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED)
    client = llmtally.instrument(sdk(fake), tally=tally, feature="summarize")
    assert isinstance(client, anthropic.Anthropic)
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=MESSAGES,
        system="Be brief.",
        extra_body={"temperature": 0.7},  # no longer a named parameter in anthropic 2.x
    )
    assert message.content[0].text == fake.current().text
    row = only(tally)
    assert_cached_row(row)
    assert (row["max_tokens"], row["temperature"], row["feature"]) == (256, 0.7, "summarize")
    assert row["event_id"] == llmtally.last_call_id()


def test_create_stream_takes_cumulative_usage_once(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=CACHED, chunks=4, chunk_delay=0.005)
    client = llmtally.instrument(sdk(fake), tally=tally)
    events = list(
        client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    )
    assert events[0].type == "message_start"
    row = only(tally)
    assert_cached_row(row)
    assert row["stream"] and row["stream_chunks"] == len(events) == 9  # the SDK drops pings
    assert 0 < row["ttft_ms"] < row["latency_ms"]


def test_stream_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED)
    client = llmtally.instrument(sdk(fake), tally=tally)
    with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == fake.current().text and final.usage.output_tokens == 500
    assert_cached_row(only(tally))


def test_stream_helper_left_early(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED, chunks=6)
    client = llmtally.instrument(sdk(fake), tally=tally)
    with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    row = only(tally)
    # message_start gave the input and cache counts; the output is an estimate
    assert row["input_tokens"] == 10_000 and row["cache_read_tokens"] == 6000
    assert row["usage_estimated"] == 1 and row["status"] == "success"
    assert row["stream_chunks"] == 3  # message_start, content_block_start, one delta


def test_with_raw_response(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED)
    client = llmtally.instrument(sdk(fake), tally=tally)
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=9, messages=MESSAGES)
    assert raw.parse().usage.input_tokens == 3000
    assert_cached_row(only(tally))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "RateLimitError"), (500, "InternalServerError"), (400, "BadRequestError")],
)
def test_errors(fake: FakeProvider, tally: llmtally.Tally, status: int, error_type: str) -> None:
    fake.reply(status=status, error=f"nope {status}")
    client = llmtally.instrument(sdk(fake), tally=tally)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=MODEL, max_tokens=9, messages=MESSAGES)
    assert type(raised.value).__name__ == error_type
    row = only(tally)
    assert (row["status"], row["error_type"]) == ("error", error_type)
    assert f"nope {status}" in row["error_message"]


def test_timeout(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(delay=0.6)
    client = llmtally.instrument(sdk(fake, timeout=0.1), tally=tally)
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model=MODEL, max_tokens=9, messages=MESSAGES)
    assert only(tally)["error_type"] == "APITimeoutError"


def test_async_create_stream_and_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED)
    client = llmtally.instrument(
        anthropic.AsyncAnthropic(base_url=fake.url, api_key="x", max_retries=0), tally=tally
    )
    assert isinstance(client, anthropic.AsyncAnthropic)

    async def main() -> None:
        await client.messages.create(model=MODEL, max_tokens=9, messages=MESSAGES)
        stream = await client.messages.create(
            model=MODEL, max_tokens=9, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass
        async with client.messages.stream(model=MODEL, max_tokens=9, messages=MESSAGES) as helper:
            message = await helper.get_final_message()
        assert message.usage.cache_read_input_tokens == 6000

    asyncio.run(main())
    rows = stored(tally)
    assert [r["stream"] for r in rows] == [0, 1, 1]
    for row in rows:
        assert_cached_row(row)
