"""instrument(litellm): completion/acompletion routed by LiteLLM to the fake provider.

LiteLLM answers in the OpenAI format for every provider; for Anthropic its prompt_tokens
already include cache reads and writes while the usage object also carries Anthropic's
cache fields, the classic double count that the cost check below would catch.
"""

from __future__ import annotations

import asyncio
import os
from types import ModuleType
from typing import Any

import pytest
from genai_prices import extract_usage

import llmtally
from fakeprovider import FakeProvider, only, stored

OPENAI_USAGE = {
    "prompt_tokens": 5200,
    "completion_tokens": 1800,
    "total_tokens": 7000,
    "prompt_tokens_details": {"cached_tokens": 4096},
    "completion_tokens_details": {"reasoning_tokens": 1500},
}
ANTHROPIC_USAGE = {
    "input_tokens": 3000,
    "output_tokens": 500,
    "cache_read_input_tokens": 6000,
    "cache_creation_input_tokens": 1000,
    "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400},
}
CLAUDE = "claude-sonnet-4-20250514"
MESSAGES = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    # the bundled price map: no download at import (there is no network here)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


def openai_truth(row: dict[str, Any]) -> float:
    payload = {"model": "gpt-4o", "usage": OPENAI_USAGE}
    extracted = extract_usage(payload, provider_id="openai", api_flavor="chat")
    return float(extracted.calc_price(genai_request_timestamp=row["occurred_at"]).total_price)


def anthropic_truth(row: dict[str, Any]) -> float:
    extracted = extract_usage({"model": CLAUDE, "usage": ANTHROPIC_USAGE}, provider_id="anthropic")
    return float(extracted.calc_price(genai_request_timestamp=row["occurred_at"]).total_price)


def test_completion_openai_cached_and_reasoning(
    litellm: ModuleType, fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=OPENAI_USAGE)
    lite = llmtally.instrument(litellm, tally=tally, feature="lite")
    response = lite.completion(
        "openai/gpt-4o", MESSAGES, api_base=fake.url + "/v1", api_key="x", temperature=0.1
    )
    assert response.choices[0].message.content == fake.current().text
    assert lite.get_llm_provider is litellm.get_llm_provider  # everything else: the module's
    row = only(tally)
    assert (row["model"], row["provider"], row["feature"]) == ("gpt-4o", "openai", "lite")
    assert (row["input_tokens"], row["cache_read_tokens"]) == (5200, 4096)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (1800, 1500)
    assert row["temperature"] == 0.1
    assert row["cost_usd"] == pytest.approx(openai_truth(row), rel=1e-12)


def test_completion_anthropic_cache_is_not_double_counted(
    litellm: ModuleType, fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=ANTHROPIC_USAGE)
    lite = llmtally.instrument(litellm, tally=tally)
    lite.completion(model=f"anthropic/{CLAUDE}", messages=MESSAGES, api_base=fake.url, api_key="x")
    row = only(tally)
    assert (row["model"], row["provider"]) == (CLAUDE, "anthropic")
    assert row["input_tokens"] == 10_000 and row["cache_read_tokens"] == 6000
    assert row["cache_write_tokens"] == 1000 and row["cache_write_1h_tokens"] == 400
    assert row["cost_usd"] == pytest.approx(anthropic_truth(row), rel=1e-12)


def test_stream_and_acompletion(
    litellm: ModuleType, fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(usage=OPENAI_USAGE)
    lite = llmtally.instrument(litellm, tally=tally)
    chunks = list(
        lite.completion(
            model="openai/gpt-4o",
            messages=MESSAGES,
            api_base=fake.url + "/v1",
            api_key="x",
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.current().text
    assert fake.last("/chat").body["stream_options"] == {"include_usage": True}

    async def main() -> None:
        await lite.acompletion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=fake.url + "/v1", api_key="x"
        )
        stream = await lite.acompletion(
            model="openai/gpt-4o",
            messages=MESSAGES,
            api_base=fake.url + "/v1",
            api_key="x",
            stream=True,
        )
        async for _ in stream:
            pass

    asyncio.run(main())
    rows = stored(tally)
    assert [r["stream"] for r in rows] == [1, 0, 1]
    for row in rows:
        assert row["input_tokens"] == 5200 and not row["usage_estimated"]
        assert row["cost_usd"] == pytest.approx(openai_truth(row), rel=1e-12)
    assert rows[0]["stream_chunks"] >= 3 and rows[0]["ttft_ms"] < rows[0]["latency_ms"]


def test_errors_are_recorded_with_litellms_class(
    litellm: ModuleType, fake: FakeProvider, tally: llmtally.Tally
) -> None:
    fake.reply(status=429, error="too many")
    lite = llmtally.instrument(litellm, tally=tally)
    with pytest.raises(litellm.RateLimitError):
        lite.completion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=fake.url + "/v1", api_key="x"
        )
    row = only(tally)
    assert (row["status"], row["error_type"], row["model"]) == ("error", "RateLimitError", "gpt-4o")
    assert "too many" in row["error_message"]
