"""instrument(openai client): the real SDK against the fake provider, rows read back with SQL.

Costs are checked against genai-prices' own usage extractor applied to the JSON the fake
sent (``extract_usage(...).calc_price()``), independently of llmtally's normalization.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import openai
import pytest
from genai_prices import extract_usage

import llmtally
from fakeprovider import FakeProvider, only, stored

CACHED_REASONING = {
    "prompt_tokens": 5200,
    "completion_tokens": 1800,
    "total_tokens": 7000,
    "prompt_tokens_details": {"cached_tokens": 4096},
    "completion_tokens_details": {"reasoning_tokens": 1500},
}
RESPONSES_USAGE = {
    "input_tokens": 5200,
    "input_tokens_details": {"cached_tokens": 4096},
    "output_tokens": 1800,
    "output_tokens_details": {"reasoning_tokens": 1500},
    "total_tokens": 7000,
}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


def sdk(fake: FakeProvider, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0, **options)


def async_sdk(fake: FakeProvider, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0, **options)


def truth(model: str, usage: dict[str, Any], flavor: str, row: dict[str, Any]) -> float:
    extracted = extract_usage(
        {"model": model, "usage": usage}, provider_id="openai", api_flavor=flavor
    )
    return float(extracted.calc_price(genai_request_timestamp=row["occurred_at"]).total_price)


def test_chat_cached_and_reasoning_tokens_and_exact_cost(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=CACHED_REASONING, model="o4-mini-2025-04-16")
    client = llmtally.instrument(sdk(fake), tally=tally, feature="chat", actor="U1")
    assert isinstance(client, openai.OpenAI)
    resp = client.chat.completions.create(
        model="o4-mini", messages=MESSAGES, temperature=0.3, top_p=0.9, max_completion_tokens=64
    )
    assert resp.choices[0].message.content == fake.current().text
    assert llmtally.last_call_id() is not None
    row = only(tally)
    assert row["event_id"] == llmtally.last_call_id()
    assert row["model"] == "o4-mini-2025-04-16"  # the response's model
    assert (row["provider"], row["feature"], row["actor_id"]) == ("openai", "chat", "U1")
    assert row["input_tokens"] == 5200 and row["cache_read_tokens"] == 4096
    assert row["output_tokens"] == 1800 and row["reasoning_tokens"] == 1500
    assert (row["temperature"], row["top_p"], row["max_tokens"]) == (0.3, 0.9, 64)
    assert row["finish_reason"] == "stop" and row["status"] == "success"
    assert not row["stream"] and row["latency_ms"] > 0
    assert row["cost_usd"] == pytest.approx(
        truth("o4-mini", CACHED_REASONING, "chat", row), rel=1e-12
    )
    assert row["cost_usd"] > 0


def test_stream_gets_usage_turned_on_and_the_usage_chunk_stays_hidden(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=CACHED_REASONING, model="gpt-4o-2024-08-06", chunks=4, chunk_delay=0.01)
    client = llmtally.instrument(sdk(fake), tally=tally)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert fake.last("/chat").body["stream_options"] == {"include_usage": True}
    # the caller sees the stream it asked for: no usage-only chunk without choices
    assert all(chunk.choices for chunk in chunks) and all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == fake.current().text
    row = only(tally)
    assert row["stream"] and row["stream_chunks"] == len(chunks) == 6  # role, 4 pieces, finish
    assert (row["input_tokens"], row["output_tokens"]) == (5200, 1800)
    assert row["cache_read_tokens"] == 4096 and row["reasoning_tokens"] == 1500
    assert not row["usage_estimated"]
    assert 10 <= row["ttft_ms"] < row["latency_ms"]
    assert row["cost_usd"] == pytest.approx(
        truth("gpt-4o", CACHED_REASONING, "chat", row), rel=1e-12
    )


def test_stream_with_callers_stream_options_is_left_alone(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=CACHED_REASONING)
    client = llmtally.instrument(sdk(fake), tally=tally)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and not chunks[-1].choices  # theirs: delivered
    row = only(tally)
    assert row["input_tokens"] == 5200 and not row["usage_estimated"]
    assert row["stream_chunks"] == len(chunks)


def test_stream_without_usage_is_estimated_and_marked(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    text = "x" * 41
    fake.reply(text=text, usage=CACHED_REASONING)
    client = llmtally.instrument(sdk(fake), tally=tally)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
    )
    assert [c for c in stream]
    assert fake.last("/chat").body["stream_options"] == {"include_usage": False}
    row = only(tally)
    assert row["usage_estimated"] == 1
    prompt_chars = len("Be brief.") + len("Say hi")
    assert row["input_tokens"] == -(-prompt_chars // 4)
    assert row["output_tokens"] == -(-len(text) // 4)
    assert row["cost_usd"] is not None  # priced, flagged as an estimate


def test_abandoned_and_closed_streams_record_what_was_seen(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(text="abcdefghijklmnopqrstuvwxyz" * 4, chunks=8)
    client = llmtally.instrument(sdk(fake), tally=tally, feature="abandon")
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    del stream
    gc.collect()
    (row,) = stored(tally)
    assert row["status"] == "success" and row["stream_chunks"] == 3
    assert row["usage_estimated"] == 1 and row["output_tokens"] >= 1
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(stream)
    stream.close()  # recorded at close, not at garbage collection
    rows = stored(tally)
    assert len(rows) == 2 and rows[1]["stream_chunks"] == 1


def test_error_inside_a_stream_is_recorded_and_raised(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(stream_error_after=2, error="upstream died", chunks=5)
    client = llmtally.instrument(sdk(fake), tally=tally)
    seen = 0
    with pytest.raises(openai.APIError, match="upstream died"):
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            seen += 1
    row = only(tally)
    assert row["status"] == "error" and row["error_type"] == "APIError"
    assert row["stream_chunks"] == seen == 3


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "RateLimitError"), (500, "InternalServerError"), (400, "BadRequestError")],
)
def test_provider_errors_are_recorded_and_reraised(
    fake: FakeProvider, tally: llmtally.Tally, status: int, error_type: str
) -> None:
    fake.reply(status=status, error=f"failure {status} for ada@example.com")
    client = llmtally.instrument(sdk(fake), tally=tally)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(raised.value).__name__ == error_type and raised.value.status_code == status
    row = only(tally)
    assert (row["status"], row["error_type"]) == ("error", error_type)
    assert f"failure {status}" in row["error_message"]
    assert "ada@example.com" not in row["error_message"]  # redacted by the writer
    assert row["cost_usd"] == 0


def test_client_timeout_is_recorded(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(delay=0.6)
    client = llmtally.instrument(sdk(fake, timeout=0.1), tally=tally)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    row = only(tally)
    assert (row["status"], row["error_type"]) == ("error", "APITimeoutError")
    assert 90 <= row["latency_ms"] < 600


def test_with_raw_response_plain_and_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED_REASONING)
    client = llmtally.instrument(sdk(fake), tally=tally)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers["content-type"] == "application/json"
    assert raw.parse().usage.prompt_tokens == 5200
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    assert raw.http_response.status_code == 200
    assert len(list(raw.parse())) == 5
    rows = stored(tally)
    assert [r["stream"] for r in rows] == [0, 1]
    assert all(r["input_tokens"] == 5200 and not r["usage_estimated"] for r in rows)


def test_chat_stream_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED_REASONING)
    client = llmtally.instrument(sdk(fake), tally=tally, feature="helper")
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in kinds and final.choices[0].message.content == fake.current().text
    row = only(tally)
    assert row["feature"] == "helper" and row["stream"] and row["stream_chunks"] == 5
    assert (row["input_tokens"], row["output_tokens"]) == (5200, 1800)
    assert row["cost_usd"] == pytest.approx(
        truth("gpt-4o", CACHED_REASONING, "chat", row), rel=1e-12
    )


def test_stream_helper_left_early_is_recorded_when_its_block_ends(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(chunks=6)
    client = llmtally.instrument(sdk(fake), tally=tally)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
        kept = stream  # still referenced: only the end of the block can record it
    row = only(tally)
    assert row["stream_chunks"] == 1 and row["usage_estimated"] == 1  # the role chunk
    assert kept is not None


def test_responses_plain_stream_and_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=RESPONSES_USAGE, model="o4-mini-2025-04-16")
    client = llmtally.instrument(sdk(fake), tally=tally)
    resp = client.responses.create(model="o4-mini", input="Say hi", max_output_tokens=99)
    assert resp.output_text == fake.current().text
    events = list(client.responses.create(model="o4-mini", input="Say hi", stream=True))
    with client.responses.stream(model="o4-mini", input="Say hi") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().usage.input_tokens == 5200
    rows = stored(tally)
    assert [r["stream"] for r in rows] == [0, 1, 1]
    assert rows[0]["max_tokens"] == 99 and rows[1]["stream_chunks"] == len(events)
    for row in rows:
        assert row["model"] == "o4-mini-2025-04-16"
        assert (row["input_tokens"], row["cache_read_tokens"]) == (5200, 4096)
        assert (row["output_tokens"], row["reasoning_tokens"]) == (1800, 1500)
        expected = truth("o4-mini", RESPONSES_USAGE, "responses", row)
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
        assert row["ttft_ms"] is None or row["ttft_ms"] < row["latency_ms"]


def test_embeddings(fake: FakeProvider, tally: llmtally.Tally) -> None:
    usage = {"prompt_tokens": 1234, "total_tokens": 1234}
    fake.reply(usage=usage)
    client = llmtally.instrument(sdk(fake), tally=tally, feature="search")
    out = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(out.data) == 2
    row = only(tally)
    assert (row["input_tokens"], row["output_tokens"], row["feature"]) == (1234, 0, "search")
    expected = truth("text-embedding-3-small", usage, "embeddings", row)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12) and expected > 0


def test_async_client(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED_REASONING)
    client = llmtally.instrument(async_sdk(fake), tally=tally, feature="async")
    assert isinstance(client, openai.AsyncOpenAI)

    async def main() -> list[str]:
        ids = []
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        ids.append(llmtally.last_call_id())
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        assert len([c async for c in stream]) == 5
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
        assert raw.parse().usage.prompt_tokens == 5200
        async with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as helper:
            async for _ in helper:
                pass
        fake.reply(usage=RESPONSES_USAGE)
        await client.responses.create(model="gpt-4o", input="hi")
        async with client.responses.stream(model="gpt-4o", input="hi") as rstream:
            await rstream.get_final_response()
        fake.reply(status=429, error="slow down")
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return [i for i in ids if i]

    ids = asyncio.run(main())
    rows = stored(tally)
    assert len(rows) == 7 and {r["feature"] for r in rows} == {"async"}
    assert rows[0]["event_id"] == ids[0]
    assert [r["stream"] for r in rows] == [0, 1, 0, 1, 0, 1, 0]
    assert all(r["input_tokens"] == 5200 and not r["usage_estimated"] for r in rows[:6])
    assert rows[6]["error_type"] == "RateLimitError"


def test_unknown_model_is_stored_with_null_cost(fake: FakeProvider, tally: llmtally.Tally) -> None:
    fake.reply(usage=CACHED_REASONING)
    client = llmtally.instrument(sdk(fake), tally=tally)
    client.chat.completions.create(model="house-model-x", messages=MESSAGES)
    row = only(tally)
    assert row["model"] == "house-model-x" and row["input_tokens"] == 5200
    assert row["cost_usd"] is None


def test_custom_priced_model_costs_exactly(fake: FakeProvider, tmp_path: Path) -> None:
    pricing = {"acme-llm-7b": {"input": 0.5, "output": 1.5, "cache_read": 0.05}}
    fake.reply(usage=CACHED_REASONING)
    with llmtally.Tally(
        f"sqlite:///{tmp_path}/c.db", spool_dir=tmp_path / "spool", custom_pricing=pricing
    ) as tally:
        client = llmtally.instrument(sdk(fake), tally=tally)
        client.chat.completions.create(model="acme-llm-7b", messages=MESSAGES)
        row = only(tally)
    # (5200-4096)×$0.5 + 4096×$0.05 + 1800×$1.5, per million
    assert row["cost_usd"] == pytest.approx(
        (1104 * 0.5 + 4096 * 0.05 + 1800 * 1.5) / 1e6, rel=1e-12
    )


def test_with_options_stays_instrumented(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = llmtally.instrument(sdk(fake), tally=tally, feature="opts")
    client.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert only(tally)["feature"] == "opts"


def test_client_as_context_manager(fake: FakeProvider, tally: llmtally.Tally) -> None:
    with llmtally.instrument(sdk(fake), tally=tally, feature="cm") as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert client.is_closed()  # the SDK client was closed by the block
    assert only(tally)["feature"] == "cm"
