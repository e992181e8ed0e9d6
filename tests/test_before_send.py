"""``Tally(before_send=fn)``: change or drop events on the writer thread, through the real
pipeline into a real SQLite file. A hook that breaks a field makes a dead letter naming
before_send and the field; a hook that raises keeps the event unmodified."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import llmtally
from dbutil import rows
from llmtally.capture.redact import prompt_fingerprint
from llmtally.pipeline import deadletter

Hook = Callable[[dict[str, Any]], Mapping[str, Any] | None]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[[Hook], llmtally.Tally]]:
    made: list[llmtally.Tally] = []

    def make_tally(hook: Hook) -> llmtally.Tally:
        tally = llmtally.Tally(
            f"sqlite:///{tmp_path}/t.db",
            spool_dir=tmp_path / "spool",
            before_send=hook,
            capture_content=True,
        )
        made.append(tally)
        return tally

    yield make_tally
    for tally in made:
        tally.close()


def stored(tally: llmtally.Tally) -> list[dict[str, Any]]:
    assert tally.flush(30), "the pipeline did not drain"
    assert tally.database_url is not None
    return rows(tally.database_url, "SELECT * FROM events ORDER BY occurred_at, event_id")


def test_the_hook_changes_events_off_the_callers_thread(
    make: Callable[[Hook], llmtally.Tally],
) -> None:
    seen: list[dict[str, Any]] = []
    threads: set[int] = set()

    def redact(event: dict[str, Any]) -> dict[str, Any]:
        threads.add(threading.get_ident())
        seen.append(dict(event))
        event["metadata"] = {k: v for k, v in event.get("metadata", {}).items() if k != "secret"}
        if "prompt" in event:
            event["prompt"] = event["prompt"].replace("Alice", "[name]")
        event["feature"] = "redacted-" + event.get("feature", "none")
        return event

    tally = make(redact)
    raw_text: dict[str, Any] = {"prompt": "Hi, I am Alice"}  # not in CallFields: raw text
    call_id = tally.record_call(
        model="gpt-4o",
        feature="chat",
        input_tokens=10,
        metadata={"secret": "s3cr3t", "keep": 1},
        **raw_text,
    )
    tally.record_event("signup", actor="U1", properties={"plan": "pro"})
    call, product = stored(tally)
    assert threading.get_ident() not in threads  # the writer thread ran it
    assert call["event_id"] == call_id and call["feature"] == "redacted-chat"
    assert call["metadata"] == '{"keep":1}'
    assert call["input_text"] == "Hi, I am [name]"  # stored only with capture_content
    assert call["prompt_hash"] == prompt_fingerprint("Hi, I am [name]")[0]
    assert call["cost_usd"] is not None  # priced after the hook, as usual
    assert product["feature"] == "redacted-none" and product["name"] == "signup"
    # what the hook saw: public forms (metadata a dict, time as Unix seconds, raw prompt)
    first = seen[0]
    assert first["metadata"] == {"secret": "s3cr3t", "keep": 1}
    assert first["prompt"] == "Hi, I am Alice" and isinstance(first["occurred_at"], float)
    assert first["kind"] == "llm_call" and first["event_id"] == call_id


def test_returning_none_drops_the_event_and_counts_it(
    make: Callable[[Hook], llmtally.Tally],
) -> None:
    tally = make(lambda e: None if e.get("feature") == "internal" else e)
    for feature in ("chat", "internal", "chat", "internal", "internal"):
        tally.record_call(model="m", feature=feature)
    assert [r["feature"] for r in stored(tally)] == ["chat", "chat"]
    stats = tally.stats()
    assert stats["before_send_dropped"] == 3 and stats["written"] == 2


def test_a_hook_that_breaks_a_field_makes_a_dead_letter_naming_it(
    make: Callable[[Hook], llmtally.Tally], tmp_path: Path
) -> None:
    def hook(event: dict[str, Any]) -> Any:
        if event.get("feature") == "neg":
            event["latency_ms"] = -5.0
        elif event.get("feature") == "list":
            return ["not", "an", "event"]
        elif event.get("feature") == "unknown":
            event["colour"] = "blue"
        return event

    tally = make(hook)
    for feature in ("ok", "neg", "list", "unknown", "ok2"):
        tally.record_call(model="m", feature=feature, latency_ms=12.0)
    assert [r["feature"] for r in stored(tally)] == ["ok", "ok2"]  # the writer kept going
    letters = list(deadletter.read(tmp_path / "spool"))
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons == [
        "before_send: colour: is not an event field",
        "before_send: event: must be a JSON object (a mapping), got list",
        "before_send: latency_ms: must be >= 0, got -5.0",
    ]
    # the event as recorded is kept, so it can be fixed and sent again
    assert sorted(letter["event"]["feature"] for letter in letters) == ["list", "neg", "unknown"]
    stats = tally.stats()
    assert stats["before_send_invalid"] == 3 and stats["dead_letters"] == 3
    tally.record_call(model="m", feature="after")
    assert [r["feature"] for r in stored(tally)] == ["ok", "ok2", "after"]


def test_a_hook_that_raises_keeps_events_unmodified_and_logs_once(
    make: Callable[[Hook], llmtally.Tally], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        event["feature"] = "half-changed"  # on the hook's own copy: never reaches the store
        raise RuntimeError("hook bug")

    tally = make(broken)
    with caplog.at_level(logging.WARNING, logger="llmtally"):
        for _ in range(3):
            tally.record_call(model="m", feature="chat", metadata={"a": 1})
        found = stored(tally)
    assert [(r["feature"], r["metadata"]) for r in found] == [("chat", '{"a":1}')] * 3
    messages = [r.getMessage() for r in caplog.records if "before_send" in r.getMessage()]
    assert len(messages) == 1 and caplog.records[0].exc_info is not None
    assert tally.stats()["before_send_errors"] == 3


def test_before_send_must_be_callable() -> None:
    with pytest.raises(llmtally.ConfigError) as raised:
        llmtally.Tally(before_send="redact")  # type: ignore[arg-type]
    assert raised.value.field == "before_send"
