"""PriceBook against genai-prices itself: every expected value comes from calc_price or by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtally.capture.pricing import CustomPrice, PriceBook, parse_custom_pricing
from llmtally.errors import ConfigError

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def library(
    provider: str | None,
    model: str,
    at: float,
    *,
    inp: int = 0,
    out: int = 0,
    cr: int = 0,
    cw: int = 0,
    c1h: int = 0,
    rsn: int = 0,
) -> float:
    """The reference: genai-prices' full calculation with our token mapping."""
    usage = Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        cache_write_1h_tokens=c1h,
        output_reasoning_tokens=rsn,
    )
    when = datetime.fromtimestamp(at, UTC)
    result = calc_price(usage, model_ref=model, provider_id=provider, genai_request_timestamp=when)
    return float(result.total_price)


def ours(
    book: PriceBook, provider: str | None, model: str, at: float, **tokens: int
) -> float | None:
    names = {"inp": "input", "out": "output", "cr": "cache_read", "cw": "cache_write"}
    names |= {"c1h": "cache_write_1h", "rsn": "reasoning"}
    return book.cost(provider, model, at, **{f"{names[k]}_tokens": v for k, v in tokens.items()})


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_openai_gpt4o_cached_tokens(book: PriceBook) -> None:
    tokens = {"inp": 2000, "cr": 1024, "out": 100}
    expected = library("openai", "gpt-4o-2024-08-06", NOW, **tokens)
    assert expected == 0.00472  # 976×$2.5/M + 1024×$1.25/M + 100×$10/M
    assert ours(book, "openai", "gpt-4o-2024-08-06", NOW, **tokens) == expected


def test_openai_reasoning_model_cached_and_reasoning(book: PriceBook) -> None:
    tokens = {"inp": 12_345, "cr": 8_000, "out": 4_321, "rsn": 3_000}
    for model in ("o4-mini", "o3"):
        assert ours(book, "openai", model, NOW, **tokens) == library("openai", model, NOW, **tokens)


def test_anthropic_cache_read_5m_and_1h_writes(book: PriceBook) -> None:
    tokens = {"inp": 10_000, "cr": 6_000, "cw": 1_000, "c1h": 400, "out": 500}
    model = "claude-sonnet-4-20250514"
    expected = library("anthropic", model, NOW, **tokens)
    # 3000×$3 + 6000×$0.3 + 600×$3.75 (5m) + 400×$6 (1h) + 500×$15, per million
    assert expected == 0.02295
    assert ours(book, "anthropic", model, NOW, **tokens) == expected


@pytest.mark.parametrize(
    "provider", ["google", "gemini", "gcp.gemini", "vertex_ai", "google-genai"]
)
def test_gemini_cached_and_thoughts(book: PriceBook, provider: str) -> None:
    tokens = {"inp": 50_000, "cr": 30_000, "out": 2_000, "rsn": 1_500}
    for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
        expected = library("google", model, NOW, **tokens)
        assert ours(book, provider, model, NOW, **tokens) == expected
        assert book.info(provider, model, NOW).provider == "google"


def test_date_based_price_change(book: PriceBook) -> None:
    # o3's input price dropped from $10 to $2 per million on 2025-06-10 (UTC)
    tokens = {"inp": 100_000, "out": 1_000}
    change = ts("2025-06-10T00:00:00")
    before = ours(book, "openai", "o3", change - 1, **tokens)
    after = ours(book, "openai", "o3", change, **tokens)
    assert before == library("openai", "o3", change - 1, **tokens)
    assert after == library("openai", "o3", change, **tokens)
    assert before is not None and after is not None and before > after
    assert ours(book, "openai", "o3", ts("2024-01-01T00:00:00"), **tokens) == before
    assert ours(book, "openai", "o3", NOW, **tokens) == after
    assert book.info("openai", "o3", change - 1).input_per_mtok == 10.0
    assert book.info("openai", "o3", change).input_per_mtok == 2.0


@pytest.mark.parametrize("inp", [0, 1, 199_999, 200_000, 200_001, 1_000_000])
def test_tiered_cliff_pricing(book: PriceBook, inp: int) -> None:
    tokens = {"inp": inp, "cr": inp // 3, "out": 777}
    assert ours(book, "google", "gemini-2.5-pro", NOW, **tokens) == library(
        "google", "gemini-2.5-pro", NOW, **tokens
    )


def test_tiered_cliff_is_real(book: PriceBook) -> None:
    low = ours(book, "google", "gemini-2.5-pro", NOW, inp=200_000)
    high = ours(book, "google", "gemini-2.5-pro", NOW, inp=200_001)
    assert low == 0.25 and high is not None and high > 0.5  # the whole request moves up a tier


@pytest.mark.parametrize("day", ["2026-03-12T23:59:59", "2026-03-13T00:00:00"])
def test_tiered_then_flat_after_date(book: PriceBook, day: str) -> None:
    tokens = {"inp": 300_000, "cr": 10_000, "cw": 5_000, "c1h": 1_000, "out": 2_000}
    at = ts(day)
    expected = library("anthropic", "claude-sonnet-4-6", at, **tokens)
    assert ours(book, "anthropic", "claude-sonnet-4-6", at, **tokens) == expected


@pytest.mark.parametrize("hour", [3, 20])
def test_time_of_day_pricing(book: PriceBook, hour: int) -> None:
    at = datetime(2025, 7, 1, hour, tzinfo=UTC).timestamp()
    tokens = {"inp": 10_000, "cr": 2_000, "out": 1_000}
    assert ours(book, "deepseek", "deepseek-chat", at, **tokens) == library(
        "deepseek", "deepseek-chat", at, **tokens
    )


def test_custom_model_hand_computed() -> None:
    book = PriceBook(custom_pricing={"my-model": {"input": 1.5, "output": 6, "cache_read": 0.15}})
    # 6000×1.5 + 4000×0.15 + 500×6 = 12,600 µ$
    assert ours(book, None, "my-model", NOW, inp=10_000, cr=4_000, out=500) == 0.0126
    # cache writes without a write price are billed at the input price
    assert ours(book, "acme", "My-Model", NOW, inp=1_000, cw=1_000) == 0.0015
    info = book.info(None, "my-model", NOW)
    assert (info.source, info.input_per_mtok, info.cache_read_per_mtok) == ("custom", 1.5, 0.15)


def test_custom_cache_writes_and_reasoning() -> None:
    price = {"input": 3, "output": 15, "cache_write": 3.75, "cache_write_1h": 6}
    book = PriceBook(custom_pricing={"house/llm": price})
    tokens = {"inp": 10_000, "cr": 2_000, "cw": 1_000, "c1h": 400, "out": 1_000, "rsn": 200}
    # 7000×3 + 2000×3 (read at input) + 600×3.75 + 400×6 + 1000×15 (reasoning inside output)
    assert ours(book, "house", "llm", NOW, **tokens) == 0.04665
    assert ours(book, None, "llm", NOW, **tokens) is None  # key names the provider


def test_per_1k_prices_converted_exactly() -> None:
    parsed = parse_custom_pricing({"M": {"input_per_1k": 0.0015, "output_per_mtok": 2}})
    assert parsed == {"m": [CustomPrice(input=1.5, output=2.0)]}


def test_custom_overrides_known_model(book: PriceBook) -> None:
    custom = PriceBook(custom_pricing={"gpt-4o": CustomPrice(input=1, output=1)})
    assert ours(custom, "openai", "GPT-4o", NOW, inp=1_000_000) == 1.0
    assert custom.info("openai", "gpt-4o", NOW).source == "custom"
    scoped = PriceBook(custom_pricing={"azure/gpt-4o": {"input": 1, "output": 1}})
    assert ours(scoped, "azure", "gpt-4o", NOW, inp=1_000_000) == 1.0
    assert ours(scoped, "openai", "gpt-4o", NOW, inp=1_000_000) == library(
        "openai", "gpt-4o", NOW, inp=1_000_000
    )


def test_custom_price_history() -> None:
    history = [
        {"input": 2, "output": 2, "effective_from": "2025-06-01T00:00:00Z"},
        {"input": 1, "output": 1, "effective_from": datetime(2025, 1, 1)},
    ]
    book = PriceBook(custom_pricing={"my-model": history, "gpt-4o": history})
    m = 1_000_000
    assert ours(book, None, "my-model", ts("2024-12-31T23:59:59"), inp=m) is None
    assert ours(book, None, "my-model", ts("2025-01-01T00:00:00"), inp=m) == 1.0
    assert ours(book, None, "my-model", ts("2025-05-31T23:59:59"), inp=m) == 1.0
    assert ours(book, None, "my-model", ts("2025-06-01T00:00:00"), inp=m) == 2.0
    # before its first custom price a known model keeps the genai-prices price
    early = ts("2024-06-01T00:00:00")
    assert ours(book, "openai", "gpt-4o", early, inp=m) == library("openai", "gpt-4o", early, inp=m)
    assert book.info("openai", "gpt-4o", early).source == "genai-prices"
    assert ours(book, "openai", "gpt-4o", NOW, inp=m) == 2.0


def test_unknown_model_is_none_not_zero(book: PriceBook) -> None:
    assert ours(book, "openai", "totally-made-up-model", NOW, inp=1_000, out=10) is None
    assert ours(book, None, "totally-made-up-model", NOW) is None
    assert ours(book, "no-such-provider", "also-made-up", NOW, inp=5) is None
    info = book.info("openai", "totally-made-up-model")
    assert (info.source, info.matched_model, info.input_per_mtok) == ("unknown", None, None)


def test_unknown_provider_resolves_by_model(book: PriceBook) -> None:
    tokens = {"inp": 3_000, "cr": 1_000, "out": 200}
    expected = library(None, "gpt-4o", NOW, **tokens)
    assert ours(book, "my-internal-gateway", "gpt-4o", NOW, **tokens) == expected
    info = book.info("my-internal-gateway", "gpt-4o-2024-11-20", NOW)
    assert (info.provider, info.matched_model, info.source) == ("openai", "gpt-4o", "genai-prices")
    assert info.input_per_mtok == 2.5 and info.cache_read_per_mtok == 1.25


def test_litellm_style_refs(book: PriceBook) -> None:
    expected = library("litellm", "anthropic/claude-sonnet-4-20250514", NOW, inp=1_000, out=100)
    assert (
        ours(book, None, "anthropic/claude-sonnet-4-20250514", NOW, inp=1_000, out=100) == expected
    )
    assert ours(book, "litellm", "openai/gpt-4o", NOW, inp=1_000) == library(
        "litellm", "openai/gpt-4o", NOW, inp=1_000
    )


def test_inconsistent_counts_give_none(book: PriceBook) -> None:
    assert ours(book, "openai", "gpt-4o", NOW, inp=10, cr=11) is None
    assert ours(book, "anthropic", "claude-sonnet-4-0", NOW, inp=10, cw=5, c1h=6) is None
    assert ours(book, "openai", "o3", NOW, out=10, rsn=11) is None


@pytest.mark.parametrize(
    ("config", "setting", "words"),
    [
        ({"my-model": {"input": -1, "output": 2}}, "custom_pricing.my-model.input", ">= 0"),
        ({"my-model": {"input": "1", "output": 2}}, "custom_pricing.my-model.input", "number"),
        ({"m": {"input": 1, "output": True}}, "custom_pricing.m.output", "number"),
        ({"m": {"input": 1, "output": float("nan")}}, "custom_pricing.m.output", "finite"),
        ({"m": {"input": 1}}, "custom_pricing.m.output", "required"),
        ({"m": {"input": 1, "output": 1, "inptu": 3}}, "custom_pricing.m.inptu", "unknown"),
        (
            {"m": {"input": 1, "input_per_1k": 1, "output": 1}},
            "custom_pricing.m.input_per_1k",
            "dup",
        ),
        (
            {"m": [{"input": 1, "output": 1}, {"input": 1}]},
            "custom_pricing.m[1].output",
            "required",
        ),
        (
            {"m": {"input": 1, "output": 1, "effective_from": "soon"}},
            "custom_pricing.m.effective_from",
            "ISO",
        ),
        ({"m": []}, "custom_pricing.m", "empty"),
        ({"m": 3.0}, "custom_pricing.m", "mapping"),
        (
            {"m": {"input": 1, "output": 1}, "M": {"input": 1, "output": 1}},
            "custom_pricing.M",
            "twice",
        ),
        ({"m": CustomPrice(input=-2, output=1)}, "custom_pricing.m.input", ">= 0"),
    ],
)
def test_bad_custom_pricing_names_the_setting(config: Any, setting: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PriceBook(custom_pricing=config)
    assert caught.value.setting == setting
    assert words in str(caught.value)


def test_bad_custom_pricing_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="custom_pricing"):
        parse_custom_pricing(["gpt-4o"])  # type: ignore[arg-type]


def _sample_models() -> list[tuple[str, str]]:
    every = [(p.id, m.id) for p in get_snapshot().providers for m in p.models]
    chosen = random.Random(20261110).sample(every, 40)
    # make sure tiered, dated, tiered-then-flat and time-of-day prices are all in the sample
    chosen += [("google", "gemini-2.5-pro"), ("openai", "o3"), ("anthropic", "claude-sonnet-4-6")]
    chosen += [("deepseek", "deepseek-chat"), ("anthropic", "claude-sonnet-4-0")]
    usable = []
    for provider, model in chosen:
        try:
            library(provider, model, NOW, inp=1)
        except LookupError:
            continue
        usable.append((provider, model))
    return usable


SAMPLE = _sample_models()
TIER_EDGES = [0, 1, 32_000, 128_000, 128_001, 200_000, 200_001, 256_000, 272_001, 1_000_001]


@st.composite
def usages(draw: st.DrawFn) -> dict[str, int]:
    inp = draw(st.one_of(st.integers(0, 2_000_000), st.sampled_from(TIER_EDGES)))
    cr = draw(st.integers(0, inp))
    cw = draw(st.integers(0, inp - cr))
    out = draw(st.integers(0, 300_000))
    return {
        "inp": inp,
        "cr": cr,
        "cw": cw,
        "c1h": draw(st.integers(0, cw)),
        "out": out,
        "rsn": draw(st.integers(0, out)),
    }


def test_sample_is_broad() -> None:
    assert len(SAMPLE) >= 30


@settings(max_examples=1500, deadline=None)
@given(
    pick=st.sampled_from(SAMPLE),
    tokens=usages(),
    at=st.floats(ts("2024-01-01T00:00:00"), ts("2027-06-01T00:00:00")),
)
def test_fast_path_equals_library(pick: tuple[str, str], tokens: dict[str, int], at: float) -> None:
    provider, model = pick
    assert ours(BOOK, provider, model, at, **tokens) == library(provider, model, at, **tokens)


BOOK = PriceBook()
