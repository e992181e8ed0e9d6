"""instrument(google.genai.Client): the real SDK against the fake provider.

Gemini's prompt count includes cached content and its candidates count excludes
thoughts; streamed chunks carry cumulative usage (the fake grows the candidates count
chunk by chunk), so only the last one counts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from genai_prices import extract_usage
from google import genai
from google.genai import errors, types

import llmtally
from fakeprovider import FakeProvider, only, stored

MODEL = "gemini-2.5-flash"
USAGE = {
    "promptTokenCount": 12000,
    "candidatesTokenCount": 700,
    "cachedContentTokenCount": 8000,
    "thoughtsTokenCount": 900,
    "totalTokenCount": 13600,
}


def sdk(fake: FakeProvider, **options: Any) -> genai.Client:
    http = types.HttpOptions(base_url=fake.url, api_version="v1beta", **options)
    return genai.Client(api_key="x", http_options=http)


def truth(row: dict[str, Any]) -> float:
    # genai-prices reads the API's camelCase JSON, as the fake sent it
    payload = {"modelVersion": MODEL, "usageMetadata": USAGE}
    extracted = extract_usage(payload, provider_id="google")
    return float(extracted.calc_price(genai_request_timestamp=row["occurred_at"]).total_price)


def assert_row(row: dict[str, Any]) -> None:
    assert row["model"] == MODEL and row["provider"] == "google"
    assert (row["input_tokens"], row["cache_read_tokens"]) == (12000, 8000)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (1600, 900)  # 700 + 900 thoughts
    assert row["finish_reason"] == "stop" and not row["usage_estimated"]
    assert row["cost_usd"] == pytest.approx(truth(row), rel=1e-12) and row["cost_usd"] > 0


def test_generate_content_cached_and_thoughts(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=USAGE)
    client = llmtally.instrument(sdk(fake), tally=tally, feature="gem")
    assert isinstance(client, genai.Client)
    config = types.GenerateContentConfig(temperature=0.2, top_p=0.5, max_output_tokens=300)
    response = client.models.generate_content(model=f"models/{MODEL}", contents="hi", config=config)
    assert response.text == fake.current().text
    row = only(tally)
    assert_row(row)
    assert (row["temperature"], row["top_p"], row["max_tokens"]) == (0.2, 0.5, 300)
    assert row["feature"] == "gem" and not row["stream"]


def test_stream_reads_the_last_cumulative_usage(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=USAGE, chunks=4, chunk_delay=0.005)
    client = llmtally.instrument(sdk(fake), tally=tally)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert "".join(c.text or "" for c in chunks) == fake.current().text
    row = only(tally)
    assert_row(row)
    assert row["stream"] and row["stream_chunks"] == len(chunks) == 4
    assert 0 < row["ttft_ms"] < row["latency_ms"]


def test_stream_abandoned_keeps_the_usage_seen_and_marks_it(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=USAGE, chunks=4)
    client = llmtally.instrument(sdk(fake), tally=tally)
    stream = client.models.generate_content_stream(model=MODEL, contents="hi")
    next(stream)
    stream.close()
    row = only(tally)
    assert row["input_tokens"] == 12000 and row["usage_estimated"] == 1
    assert row["stream_chunks"] == 1


def test_async_generate_and_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=USAGE)
    client = llmtally.instrument(sdk(fake), tally=tally)

    async def main() -> None:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
        async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents="hi"):
            pass

    asyncio.run(main())
    rows = stored(tally)
    assert [r["stream"] for r in rows] == [0, 1]
    for row in rows:
        assert_row(row)


def test_aio_client_instrumented_directly(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=USAGE)
    client = llmtally.instrument(sdk(fake).aio, tally=tally, feature="aio")
    asyncio.run(client.models.generate_content(model=MODEL, contents="hi"))
    row = only(tally)
    assert_row(row)
    assert row["feature"] == "aio"


def test_chat_sessions_are_recorded(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=USAGE)
    client = llmtally.instrument(sdk(fake), tally=tally, feature="chat")
    chat = client.chats.create(model=MODEL)
    chat.send_message("hello")
    chat.send_message("again")
    rows = stored(tally)
    assert len(rows) == 2 and {r["feature"] for r in rows} == {"chat"}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "RateLimitError"), (500, "InternalServerError"), (400, "BadRequestError")],
)
def test_errors(fake: FakeProvider, tally: llmtally.Tally, status: int, error_type: str) -> None:
    fake.reply(status=status, error=f"gemini says {status}")
    client = llmtally.instrument(sdk(fake), tally=tally)
    with pytest.raises(errors.APIError) as raised:
        client.models.generate_content(model=MODEL, contents="hi")
    assert raised.value.code == status
    row = only(tally)
    assert (row["status"], row["error_type"]) == ("error", error_type)
    assert f"gemini says {status}" in row["error_message"]
