"""``Call`` and the instrumented clients depend only on the recorder protocol.

``ListRecorder`` is a complete recorder of this test's own (no Tally, no pipeline, no
store): events land in a list. Tracked calls, decorated functions and a real OpenAI
client against the fake provider record through it; its invalid-event policy and gate
are the ones applied.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

import llmtally
from fakeprovider import FakeProvider
from llmtally.capture.recorder import CallScope, Gate, Recorder
from llmtally.capture.track import open_call
from llmtally.errors import InvalidEventError
from llmtally.event import new_event_id


class ListRecorder:
    """Keeps events in memory; counts invalid ones instead of raising."""

    def __init__(self, project: str = "rec", gate: Gate | None = None) -> None:
        self.project = project
        self.gate = gate
        self.events: list[dict[str, Any]] = []
        self.invalid: list[tuple[InvalidEventError, str]] = []

    def enqueue(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def invalid_event(self, exc: InvalidEventError, kind: str) -> str:
        self.invalid.append((exc, kind))
        return new_event_id()


def test_the_test_recorder_is_a_recorder() -> None:
    recorder: Recorder = ListRecorder()  # checked by mypy against the protocol
    assert isinstance(recorder, Recorder)
    assert isinstance(llmtally.Tally(), Recorder)  # a disabled Tally is one too


def test_track_and_decorators_record_through_the_protocol() -> None:
    rec = ListRecorder()
    with open_call(rec, {"model": "gpt-4o", "feature": "f"}) as call:
        call.record_usage(input_tokens=10, output_tokens=2)
        call.set(input_tokens=-1)  # refused by the recorder's own policy: no raise here
    with pytest.raises(KeyError), open_call(rec, {"model": "gpt-4o"}):
        raise KeyError("boom")

    @open_call(rec, {"model": "m", "feature": "deco"})
    def work() -> str:
        return "done"

    @open_call(rec, {"model": "m", "feature": "adeco"})
    async def awork() -> str:
        return "done"

    assert work() == work() == "done"
    assert asyncio.run(awork()) == "done"
    first, failed, *decorated = rec.events
    assert (first["project"], first["feature"], first["input_tokens"]) == ("rec", "f", 10)
    assert first["output_tokens"] == 2 and first["status"] == "success"
    assert (failed["status"], failed["error_type"]) == ("error", "KeyError")
    assert [e["feature"] for e in decorated] == ["deco", "deco", "adeco"]
    assert len({e["event_id"] for e in rec.events}) == 5
    [(exc, kind)] = rec.invalid
    assert (exc.field, kind) == ("input_tokens", "llm_call")


def test_gate_of_a_recorder() -> None:
    scopes: list[CallScope] = []
    rec = ListRecorder(gate=scopes.append)
    with open_call(rec, {"model": "m", "actor": "A", "provider": "p"}):
        pass
    assert scopes == [CallScope("rec", None, "m", "p", "A", None)]

    def refuse(scope: CallScope) -> None:
        raise PermissionError(scope.model)

    rec.gate = refuse
    with pytest.raises(PermissionError), open_call(rec, {"model": "m"}):
        pytest.fail("the body of a refused call ran")
    assert len(rec.events) == 1


def test_instrumented_client_records_through_the_protocol(fake: FakeProvider) -> None:
    rec = ListRecorder(project="elsewhere")
    sdk = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    client = llmtally.instrument(sdk, tally=rec, feature="chat")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    list(
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    plain, streamed = rec.events
    assert (plain["project"], plain["feature"], plain["provider"]) == (
        "elsewhere",
        "chat",
        "openai",
    )
    assert plain["input_tokens"] > 0 and not plain.get("stream")
    assert streamed["stream"] is True and streamed["stream_chunks"] >= 1
    assert rec.invalid == []


def test_instrument_refuses_what_is_not_a_recorder() -> None:
    sdk = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x")
    with pytest.raises(llmtally.ConfigError) as bad:
        llmtally.instrument(sdk, tally=object())  # type: ignore[arg-type]
    assert bad.value.field == "tally"
