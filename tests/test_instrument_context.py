"""tally.context(): attribution across nesting, asyncio tasks and threads; last_call_id();
feedback linking; instrument() configuration errors."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

import llmtally
from fakeprovider import FakeProvider, only, stored

MESSAGES = [{"role": "user", "content": "Say hi"}]


def client(fake: FakeProvider, tally: llmtally.Tally, **attrs: Any) -> Any:
    sdk = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    return llmtally.instrument(sdk, tally=tally, **attrs)


def ask(chat: Any, model: str = "gpt-4o") -> str:
    chat.chat.completions.create(model=model, messages=MESSAGES)
    call_id = llmtally.last_call_id()
    assert call_id is not None
    return call_id


def by_model(tally: llmtally.Tally) -> dict[str, dict[str, Any]]:
    return {row["model"]: row for row in stored(tally)}


def test_nested_contexts_merge_inner_wins_and_beat_instrument_defaults(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    chat = client(fake, tally, feature="default-feature", actor="svc")
    ask(chat, "m0")
    with tally.context(feature="support", session_id="s1", trace_id="t1"):
        ask(chat, "m1")
        with tally.context(actor="U42", feature="escalation"):
            ask(chat, "m2")
        ask(chat, "m3")
    ask(chat, "m4")
    rows = by_model(tally)
    pick = ("feature", "actor_id", "session_id", "trace_id")
    assert [tuple(rows[m][k] for k in pick) for m in ("m0", "m1", "m2", "m3", "m4")] == [
        ("default-feature", "svc", None, None),
        ("support", "svc", "s1", "t1"),
        ("escalation", "U42", "s1", "t1"),
        ("support", "svc", "s1", "t1"),
        ("default-feature", "svc", None, None),
    ]


def test_track_and_record_call_use_the_context_but_explicit_values_win(
    tally: llmtally.Tally,
) -> None:
    with tally.context(feature="ctx", actor="U1", session_id="s9"):
        with tally.track(model="track-ctx"):
            pass
        with tally.track(model="track-explicit", feature="mine", actor="U2"):
            pass
        tally.record_call(model="record-ctx", input_tokens=1, output_tokens=1)
        recorded = tally.record_call(model="record-explicit", feature="own")
        assert llmtally.last_call_id() == recorded
        feedback = tally.record_feedback(recorded, rating="up")
    rows = by_model(tally)
    assert (rows["track-ctx"]["feature"], rows["track-ctx"]["actor_id"]) == ("ctx", "U1")
    assert (rows["track-explicit"]["feature"], rows["track-explicit"]["actor_id"]) == ("mine", "U2")
    assert rows["record-ctx"]["session_id"] == "s9"
    assert rows["record-explicit"]["feature"] == "own"
    fb = only(tally, "kind = 'feedback'")
    assert fb["event_id"] == feedback
    assert (fb["parent_id"], fb["actor_id"], fb["session_id"]) == (recorded, "U1", "s9")


def test_asyncio_tasks_keep_their_own_attribution_and_last_call(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    sdk = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    chat = llmtally.instrument(sdk, tally=tally)

    async def user(name: str) -> tuple[str, str | None]:
        with tally.context(actor=name, session_id=f"s-{name}"):
            await asyncio.sleep(0)  # interleave the tasks
            await chat.chat.completions.create(model=f"m-{name}", messages=MESSAGES)
            await asyncio.sleep(0)
            return name, llmtally.last_call_id()

    async def main() -> list[tuple[str, str | None]]:
        with tally.context(feature="async-feature"):  # inherited by the tasks created inside
            return await asyncio.gather(*(user(n) for n in ("ann", "bob", "cy")))

    results = asyncio.run(main())
    rows = by_model(tally)
    for name, call_id in results:
        row = rows[f"m-{name}"]
        assert (row["actor_id"], row["session_id"], row["feature"]) == (
            name,
            f"s-{name}",
            "async-feature",
        )
        assert row["event_id"] == call_id  # each task saw its own last call


def test_threads_started_inside_inherit_and_others_do_not(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    chat = client(fake, tally)
    ids: dict[str, str] = {}

    def work(model: str) -> None:
        ids[model] = ask(chat, model)

    with ThreadPoolExecutor(max_workers=1) as pool:
        with tally.context(feature="threaded", actor="T1"):
            thread = threading.Thread(target=work, args=("in-thread",))
            thread.start()
            thread.join()
            pool.submit(work, "in-pool").result()  # the worker is started inside the block
        pool.submit(work, "pool-after").result()  # same worker, submitted outside: no leak
    outside = threading.Thread(target=work, args=("outside",))
    outside.start()
    outside.join()
    rows = by_model(tally)
    assert (rows["in-thread"]["feature"], rows["in-thread"]["actor_id"]) == ("threaded", "T1")
    assert rows["in-pool"]["feature"] == "threaded"
    assert rows["pool-after"]["feature"] is None and rows["pool-after"]["actor_id"] is None
    assert rows["outside"]["feature"] is None
    assert all(rows[m]["event_id"] == ids[m] for m in ids)


def test_feedback_links_to_a_wrapped_call(fake: FakeProvider, tally: llmtally.Tally) -> None:
    call_id = ask(client(fake, tally, feature="reply"))
    tally.record_feedback(call_id, rating="down", regenerated=True, actor="U7")
    feedback = only(tally, "kind = 'feedback'")
    assert feedback["parent_id"] == call_id == only(tally)["event_id"]


def test_bad_context_and_instrument_arguments_fail_clearly(tally: llmtally.Tally) -> None:
    with pytest.raises(llmtally.InvalidEventError, match="input_tokens"):
        tally.context(input_tokens=5)
    with pytest.raises(llmtally.InvalidEventError, match="session_id"):
        tally.context(session_id=42)
    with pytest.raises(llmtally.ConfigError, match="client"):
        llmtally.instrument(object(), tally=tally)
    with pytest.raises(llmtally.ConfigError, match="tally"):
        llmtally.instrument(openai.OpenAI(api_key="x"), tally="nope")  # type: ignore[arg-type]
    with pytest.raises(llmtally.InvalidEventError, match="feature"):
        llmtally.instrument(openai.OpenAI(api_key="x"), tally=tally, feature="")


def test_reinstrumenting_wraps_the_sdk_client_once(
    fake: FakeProvider, tally: llmtally.Tally
) -> None:
    first = client(fake, tally, feature="a")
    second = llmtally.instrument(first, tally=tally, feature="b")
    ask(second)
    assert only(tally)["feature"] == "b"  # one event, not two


def test_disabled_tally_still_passes_calls_through(fake: FakeProvider) -> None:
    with llmtally.Tally(None) as disabled:
        chat = client(fake, disabled)
        resp = chat.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert resp.choices[0].message.content
        assert llmtally.last_call_id() is not None
