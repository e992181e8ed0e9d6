"""llmtally: record every LLM call your application makes and answer what it cost.

Quick start::

    import llmtally
    tally = llmtally.Tally("sqlite:///llmtally.db", project="my-app")
    with tally.track(model="gpt-4o", provider="openai", feature="chat", actor="U123") as call:
        resp = client.chat.completions.create(...)
        call.record_response(resp)
    tally.reports.costs_breakdown(by="model", since="7d")

    client = llmtally.instrument(openai.OpenAI(), tally=tally, feature="chat")  # all recorded

Importing the package is cheap: the names below are loaded on first use (PEP 562), so
``import llmtally`` (and the CLI's ``--help``) never pays for SQLAlchemy, numpy, the price
data, psycopg or Rich. The errors are plain classes and load with the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmtally._version import __version__
from llmtally.errors import (
    ConfigError,
    InvalidEventError,
    LlmtallyError,
    MigrationError,
    QueryError,
    StoreError,
    UnsupportedDatabaseError,
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from llmtally import config as config
    from llmtally import settings as settings
    from llmtally.capture.context import last_call_id
    from llmtally.capture.instrument import instrument
    from llmtally.capture.track import Call
    from llmtally.event import FIELDS, SCHEMA_VERSION
    from llmtally.tally import Tally

# name -> module that defines it; read by __getattr__ on first access
_LAZY: dict[str, str] = {
    "FIELDS": "llmtally.event",
    "SCHEMA_VERSION": "llmtally.event",
    "Call": "llmtally.capture.track",
    "Tally": "llmtally.tally",
    "instrument": "llmtally.capture.instrument",
    "last_call_id": "llmtally.capture.context",
}
# submodules reachable as attributes after a bare ``import llmtally`` (the README's
# ``llmtally.Tally(**llmtally.config.from_env())``)
_SUBMODULES = frozenset({"config", "settings"})

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


def __getattr__(name: str) -> Any:
    """Load a public name from its module the first time it is used (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"llmtally.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmtally' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """Module attributes including the not yet loaded public names."""
    return sorted({*globals(), *__all__})
