"""End-to-end costs: provider responses → Tally → store, against genai-prices, independently.

The expected figure comes from genai-prices' own usage extractor applied to the same JSON
(``extract_usage(...).calc_price()``), so our token normalization and our pricing are
checked against an implementation we do not own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price, extract_usage

import llmtally
from dbutil import rows
from payloads import ANTHROPIC, GEMINI, OPENAI_CHAT, OPENAI_REASONING

WHEN = datetime(2026, 9, 15, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("response", "provider", "flavor"),
    [
        (OPENAI_REASONING, "openai", "chat"),
        (OPENAI_CHAT, "openai", "chat"),
        (ANTHROPIC, "anthropic", "default"),
        (GEMINI, "google", "default"),
    ],
    ids=["openai-reasoning", "openai-cached", "anthropic-cache", "gemini-thoughts"],
)
def test_cost_equals_genai_prices(
    db_url: str, response: dict[str, Any], provider: str, flavor: str
) -> None:
    model = response.get("model") or response["modelVersion"]
    with llmtally.Tally(db_url) as tally:
        with tally.track(model=model, provider=provider, occurred_at=WHEN) as call:
            call.record_response(response)
        assert tally.flush(10)
    (row,) = rows(db_url)
    extracted = extract_usage(response, provider_id=provider, api_flavor=flavor)
    expected = extracted.calc_price(genai_request_timestamp=WHEN).total_price
    assert row["cost_usd"] == pytest.approx(float(expected), rel=1e-12, abs=0)
    assert row["cost_usd"] > 0
    assert row["input_tokens"] == extracted.usage.input_tokens
    assert row["output_tokens"] == extracted.usage.output_tokens
    assert (row["cache_read_tokens"] or 0) == (extracted.usage.cache_read_tokens or 0)


def test_anthropic_one_hour_cache_writes_are_priced_at_their_rate(db_url: str) -> None:
    usage = {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    response = {"type": "message", "model": "claude-sonnet-4-20250514", "usage": usage}
    with llmtally.Tally(db_url) as tally:
        with tally.track(
            model="claude-sonnet-4-20250514", provider="anthropic", occurred_at=WHEN
        ) as call:
            call.record_response(response)
        assert tally.flush(10)
    (row,) = rows(db_url)
    expected = calc_price(
        Usage(
            input_tokens=5100,
            output_tokens=50,
            cache_read_tokens=2000,
            cache_write_tokens=3000,
            cache_write_1h_tokens=2000,
        ),
        model_ref="claude-sonnet-4-20250514",
        provider_id="anthropic",
        genai_request_timestamp=WHEN,
    ).total_price
    # by hand: 100×$3 + 2000×$0.30 + 1000×$3.75 + 2000×$6 + 50×$15, per million
    assert float(expected) == pytest.approx((300 + 600 + 3750 + 12000 + 750) / 1e6)
    assert row["cost_usd"] == pytest.approx(float(expected), rel=1e-12, abs=0)


def test_custom_priced_model_and_recompute_after_adding_a_price(db_url: str) -> None:
    pricing = {"acme-llm-7b": {"input": 0.5, "output": 1.5, "cache_read": 0.05}}
    with llmtally.Tally(db_url, custom_pricing=pricing) as tally:
        tally.record_call(
            model="acme-llm-7b",
            input_tokens=1_000_000,
            cache_read_tokens=400_000,
            output_tokens=200_000,
            occurred_at=WHEN,
        )
        tally.record_call(
            model="house-model-x", input_tokens=1000, output_tokens=1000, occurred_at=WHEN
        )
        assert tally.flush(10)
    got = {r["model"]: r["cost_usd"] for r in rows(db_url)}
    # 600k×$0.5 + 400k×$0.05 + 200k×$1.5, per million
    assert got["acme-llm-7b"] == pytest.approx(0.3 + 0.02 + 0.3, rel=1e-12)
    assert got["house-model-x"] is None

    from llmtally.capture.pricing import PriceBook
    from llmtally.store.base import open_store
    from llmtally.store.maintenance import recompute_costs

    store = open_store(db_url)
    try:
        book = PriceBook(custom_pricing={"house-model-x": {"input": 2.0, "output": 4.0}})
        assert recompute_costs(store.engine, book) == 1
        assert recompute_costs(store.engine, book) == 0  # nothing left without a cost
    finally:
        store.close()
    got = {r["model"]: r["cost_usd"] for r in rows(db_url)}
    assert got["house-model-x"] == pytest.approx(0.006, rel=1e-12)
    registry = {r["model"]: r for r in rows(db_url, "SELECT * FROM models")}
    assert registry["house-model-x"]["price_source"] == "custom"
    assert not registry["house-model-x"]["is_placeholder"]


def test_price_in_force_at_the_call_is_charged(sqlite_url: str) -> None:
    # o3's input price fell from $10 to $2 per million on 2025-06-10 (genai-prices history)
    before, after = datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    with llmtally.Tally(sqlite_url) as tally:
        for when in (before, after):
            tally.record_call(
                model="o3",
                provider="openai",
                input_tokens=1_000_000,
                output_tokens=0,
                occurred_at=when,
            )
        assert tally.flush(10)
    got = sorted((r["occurred_at"], r["cost_usd"]) for r in rows(sqlite_url))
    for when, cost in got:
        expected = calc_price(
            Usage(input_tokens=1_000_000, output_tokens=0),
            model_ref="o3",
            provider_id="openai",
            genai_request_timestamp=when,
        ).total_price
        assert cost == pytest.approx(float(expected), rel=1e-12)
    assert got[0][1] > got[1][1]
