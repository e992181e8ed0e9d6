"""llmtally: record every LLM call your application makes and answer what it cost.

Quick start::

    import llmtally
    tally = llmtally.Tally("sqlite:///llmtally.db", project="my-app")
    with tally.track(model="gpt-4o", provider="openai", feature="chat", actor="U123") as call:
        resp = client.chat.completions.create(...)
        call.record_response(resp)
    tally.reports.costs_breakdown(by="model", since="7d")

    client = llmtally.instrument(openai.OpenAI(), tally=tally, feature="chat")  # all recorded
"""

from __future__ import annotations

from llmtally.capture.context import last_call_id
from llmtally.capture.event import FIELDS, SCHEMA_VERSION
from llmtally.capture.instrument import instrument
from llmtally.capture.track import Call
from llmtally.errors import (
    ConfigError,
    InvalidEventError,
    LlmtallyError,
    MigrationError,
    QueryError,
    StoreError,
    UnsupportedDatabaseError,
)
from llmtally.tally import Tally

__version__ = "0.1.0"

__all__ = [
    "FIELDS",
    "SCHEMA_VERSION",
    "Call",
    "ConfigError",
    "InvalidEventError",
    "LlmtallyError",
    "MigrationError",
    "QueryError",
    "StoreError",
    "Tally",
    "UnsupportedDatabaseError",
    "__version__",
    "instrument",
    "last_call_id",
]
