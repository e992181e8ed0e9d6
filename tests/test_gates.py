"""Pre-call gates: asked before every ``track()`` body and every instrumented provider call.

The real SDK clients (OpenAI, Anthropic, google-genai, LiteLLM; sync, async, streams,
stream helpers and raw responses) against the fake provider: a gate that raises stops
the call before the provider receives anything, its exception reaches the caller
unchanged and nothing is recorded; a gate that lets calls through changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import llmtally
from fakeprovider import FakeProvider, only, stored
from llmtally.capture.recorder import CallScope

MESSAGES = [{"role": "user", "content": "Say hi"}]
CLAUDE = "claude-sonnet-4-20250514"
GEMINI = "gemini-2.5-flash"
ATTRS = {"feature": "chat", "actor": "U7", "session_id": "s9"}


class Stop(Exception):
    """What the test's gate raises (stands in for BudgetExceeded)."""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def openai_client(fake: FakeProvider, tally: llmtally.Tally) -> Any:
    sdk = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    return llmtally.instrument(sdk, tally=tally, **ATTRS)


def openai_async(fake: FakeProvider, tally: llmtally.Tally) -> Any:
    sdk = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    return llmtally.instrument(sdk, tally=tally, **ATTRS)


def anthropic_client(fake: FakeProvider, tally: llmtally.Tally) -> Any:
    sdk = anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0)
    return llmtally.instrument(sdk, tally=tally, **ATTRS)


def anthropic_async(fake: FakeProvider, tally: llmtally.Tally) -> Any:
    sdk = anthropic.AsyncAnthropic(base_url=fake.url, api_key="x", max_retries=0)
    return llmtally.instrument(sdk, tally=tally, **ATTRS)


def gemini_client(fake: FakeProvider, tally: llmtally.Tally) -> Any:
    http = types.HttpOptions(base_url=fake.url, api_version="v1beta")
    return llmtally.instrument(genai.Client(api_key="x", http_options=http), tally=tally, **ATTRS)


def lite(tally: llmtally.Tally) -> Any:
    # the bundled price map: no download at import (there is no network here)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return llmtally.instrument(litellm, tally=tally, **ATTRS)


def openai_chat(fake: FakeProvider, tally: llmtally.Tally) -> None:
    openai_client(fake, tally).chat.completions.create(model="gpt-4o", messages=MESSAGES)


def openai_chat_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = openai_client(fake, tally)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))


def openai_stream_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = openai_client(fake, tally)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        list(stream)


def openai_raw(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = openai_client(fake, tally)
    client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES).parse()


def openai_responses(fake: FakeProvider, tally: llmtally.Tally) -> None:
    openai_client(fake, tally).responses.create(model="gpt-4o", input="Say hi")


def openai_async_chat(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = openai_async(fake, tally)
    run(client.chat.completions.create(model="gpt-4o", messages=MESSAGES))


def openai_async_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = openai_async(fake, tally)

    async def main() -> None:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass

    run(main())


def anthropic_create(fake: FakeProvider, tally: llmtally.Tally) -> None:
    anthropic_client(fake, tally).messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES)


def anthropic_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = anthropic_client(fake, tally)
    list(client.messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES, stream=True))


def anthropic_stream_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = anthropic_client(fake, tally)
    with client.messages.stream(model=CLAUDE, max_tokens=9, messages=MESSAGES) as stream:
        "".join(stream.text_stream)


def anthropic_async_create(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = anthropic_async(fake, tally)
    run(client.messages.create(model=CLAUDE, max_tokens=9, messages=MESSAGES))


def anthropic_async_helper(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = anthropic_async(fake, tally)

    async def main() -> None:
        async with client.messages.stream(model=CLAUDE, max_tokens=9, messages=MESSAGES) as s:
            await s.get_final_message()

    run(main())


# the genai Client closes its HTTP client when collected: each call keeps it referenced


def gemini_generate(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = gemini_client(fake, tally)
    client.models.generate_content(model=GEMINI, contents="hi")


def gemini_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = gemini_client(fake, tally)
    list(client.models.generate_content_stream(model=GEMINI, contents="hi"))


def gemini_async(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = gemini_client(fake, tally)
    run(client.aio.models.generate_content(model=GEMINI, contents="hi"))


def gemini_async_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    client = gemini_client(fake, tally)

    async def main() -> None:
        async for _ in await client.aio.models.generate_content_stream(model=GEMINI, contents="hi"):
            pass

    run(main())


def litellm_completion(fake: FakeProvider, tally: llmtally.Tally) -> None:
    base = fake.url + "/v1"
    lite(tally).completion("openai/gpt-4o", MESSAGES, api_base=base, api_key="x")


def litellm_stream(fake: FakeProvider, tally: llmtally.Tally) -> None:
    base = fake.url + "/v1"
    list(lite(tally).completion("openai/gpt-4o", MESSAGES, api_base=base, api_key="x", stream=True))


def litellm_async(fake: FakeProvider, tally: llmtally.Tally) -> None:
    base = fake.url + "/v1"
    run(
        lite(tally).acompletion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=base, api_key="x"
        )
    )


# (call, the model and provider its scope names)
CALLS: list[tuple[Callable[[FakeProvider, llmtally.Tally], None], str, str]] = [
    (openai_chat, "gpt-4o", "openai"),
    (openai_chat_stream, "gpt-4o", "openai"),
    (openai_stream_helper, "gpt-4o", "openai"),
    (openai_raw, "gpt-4o", "openai"),
    (openai_responses, "gpt-4o", "openai"),
    (openai_async_chat, "gpt-4o", "openai"),
    (openai_async_stream, "gpt-4o", "openai"),
    (anthropic_create, CLAUDE, "anthropic"),
    (anthropic_stream, CLAUDE, "anthropic"),
    (anthropic_stream_helper, CLAUDE, "anthropic"),
    (anthropic_async_create, CLAUDE, "anthropic"),
    (anthropic_async_helper, CLAUDE, "anthropic"),
    (gemini_generate, GEMINI, "google"),
    (gemini_stream, GEMINI, "google"),
    (gemini_async, GEMINI, "google"),
    (gemini_async_stream, GEMINI, "google"),
    (litellm_completion, "gpt-4o", "openai"),
    (litellm_stream, "gpt-4o", "openai"),
    (litellm_async, "gpt-4o", "openai"),
]
IDS = [call.__name__ for call, _, _ in CALLS]


@pytest.mark.parametrize(("call", "model", "provider"), CALLS, ids=IDS)
def test_a_gate_that_raises_stops_the_call_before_the_provider(
    fake: FakeProvider,
    tally: llmtally.Tally,
    call: Callable[[FakeProvider, llmtally.Tally], None],
    model: str,
    provider: str,
) -> None:
    stop = Stop("paused")
    scopes: list[CallScope] = []

    def gate(scope: CallScope) -> None:
        scopes.append(scope)
        raise stop

    tally.add_gate(gate)
    with pytest.raises(Stop) as raised:
        call(fake, tally)
    assert raised.value is stop  # unchanged: the very exception the gate raised
    assert fake.requests == []  # the provider was never contacted
    assert stored(tally) == []  # a blocked call is not recorded
    assert tally.stats()["blocked"] == 1
    assert scopes == [CallScope("default", "chat", model, provider, "U7", "s9")]


@pytest.mark.parametrize(("call", "model", "provider"), CALLS, ids=IDS)
def test_a_gate_that_allows_changes_nothing(
    fake: FakeProvider,
    tally: llmtally.Tally,
    call: Callable[[FakeProvider, llmtally.Tally], None],
    model: str,
    provider: str,
) -> None:
    scopes: list[CallScope] = []
    tally.add_gate(scopes.append)
    call(fake, tally)
    assert len(fake.requests) == 1
    row = only(tally)
    assert (row["model"], row["provider"], row["feature"]) == (model, provider, "chat")
    assert (row["actor_id"], row["session_id"], row["status"]) == ("U7", "s9", "success")
    assert row["input_tokens"] > 0
    assert scopes == [CallScope("default", "chat", model, provider, "U7", "s9")]
    assert tally.stats()["blocked"] == 0


def test_track_gated_sync_async_and_decorated(tally: llmtally.Tally) -> None:
    seen: list[CallScope] = []
    blocked: set[str] = {"blocked"}

    def gate(scope: CallScope) -> None:
        seen.append(scope)
        if scope.feature in blocked:
            raise Stop(scope.feature)

    tally.add_gate(gate)
    ran: list[str] = []
    with pytest.raises(Stop), tally.track(model="m", provider="p", feature="blocked"):
        ran.append("sync body")
    with tally.track(model="m", provider="p", feature="ok", actor="A", session_id="S"):
        ran.append("allowed")

    async def main() -> None:
        with pytest.raises(Stop):
            async with tally.track(model="m", feature="blocked"):
                ran.append("async body")

    asyncio.run(main())

    @tally.track(model="m", feature="blocked")
    def decorated() -> str:
        ran.append("decorated body")
        return "x"

    @tally.track(model="m", feature="blocked")
    async def decorated_async() -> str:
        ran.append("async decorated body")
        return "x"

    with pytest.raises(Stop):
        decorated()
    with pytest.raises(Stop):
        asyncio.run(decorated_async())
    assert ran == ["allowed"]
    rows = stored(tally)
    assert [r["feature"] for r in rows] == ["ok"]
    assert seen[1] == CallScope("default", "ok", "m", "p", "A", "S")
    assert tally.stats()["blocked"] == 4


def test_gates_argument_order_and_removal(tmp_path: Path) -> None:
    order: list[str] = []
    first = lambda scope: order.append("first")  # noqa: E731
    second = lambda scope: order.append("second")  # noqa: E731
    with llmtally.Tally(
        f"sqlite:///{tmp_path}/g.db", spool_dir=tmp_path / "s", gates=[first, second]
    ) as tally:
        with tally.track(model="m"):
            pass
        assert order == ["first", "second"]
        tally.remove_gate(first)
        tally.remove_gate(second)
        assert tally.gate is None  # no gate: the hot path's single test
        with tally.track(model="m"):
            pass
        assert order == ["first", "second"]
        assert len(stored(tally)) == 2
    with pytest.raises(llmtally.ConfigError) as bad:
        llmtally.Tally(gates=["not callable"])  # type: ignore[list-item]
    assert bad.value.field == "gates"


def test_record_call_is_not_gated(tally: llmtally.Tally) -> None:
    def gate(scope: CallScope) -> None:
        raise Stop("no")

    tally.add_gate(gate)
    tally.record_call(model="gpt-4o", input_tokens=1)  # already happened: recorded
    assert only(tally)["input_tokens"] == 1
