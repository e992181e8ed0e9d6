"""The error tree: one base, every error with ``field`` and ``reason``, documented in one place."""

from __future__ import annotations

import inspect
import pickle
import re

import pytest

import llmtally
from llmtally import errors
from llmtally.errors import (
    ConfigError,
    DataRejected,
    InvalidEventError,
    LlmtallyError,
    MigrationError,
    QueryError,
    StoreError,
    UnsupportedDatabaseError,
)

ERROR_CLASSES = [
    obj
    for obj in vars(errors).values()
    if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
]


def test_every_error_is_an_llmtally_error_and_drawn_in_the_tree() -> None:
    doc = errors.__doc__ or ""
    assert len(ERROR_CLASSES) >= 8
    for cls in ERROR_CLASSES:
        assert issubclass(cls, LlmtallyError), cls
        # each class appears in the tree under its parent (deeper indentation than the base)
        line = next((ln for ln in doc.splitlines() if re.search(rf"── {cls.__name__}\b", ln)), None)
        if cls is LlmtallyError:
            assert re.search(r"^\s+LlmtallyError\s", doc, re.MULTILINE)
            continue
        assert line is not None, f"{cls.__name__} is missing from the tree in errors.py"
        parent = cls.__mro__[1]
        parent_line = next(
            ln for ln in doc.splitlines() if re.search(rf"(── |^\s*){parent.__name__}\b", ln)
        )
        assert line.index(cls.__name__) > parent_line.index(parent.__name__), cls
    assert "BudgetExceeded" in doc  # the place issue 13 fills


@pytest.mark.parametrize(
    ("exc", "field", "reason", "text"),
    [
        (
            InvalidEventError("input_tokens", "must be >= 0, got -1", -1),
            "input_tokens",
            "must be >= 0, got -1",
            "input_tokens: must be >= 0, got -1",
        ),
        (
            ConfigError("sample_rate", "must be between 0 and 1"),
            "sample_rate",
            "must be between 0 and 1",
            "sample_rate: must be between 0 and 1",
        ),
        (
            QueryError("since", "cannot parse 'yesterdayish'"),
            "since",
            "cannot parse 'yesterdayish'",
            "since: cannot parse 'yesterdayish'",
        ),
        (
            StoreError("database not reachable", url="postgresql://u:***@h/db"),
            None,
            "database not reachable",
            "database not reachable (postgresql://u:***@h/db)",
        ),
        (
            UnsupportedDatabaseError("no engine for mysql://", url="mysql://h/db"),
            "database_url",
            "no engine for mysql://",
            "no engine for mysql:// (mysql://h/db)",
        ),
        (
            MigrationError("column exists", revision="0004", url="sqlite:///x.db"),
            None,
            "column exists",
            "column exists [revision 0004] (sqlite:///x.db)",
        ),
        (DataRejected("value too long"), None, "value too long", "value too long"),
    ],
)
def test_field_and_reason_without_parsing_the_message(
    exc: LlmtallyError, field: str | None, reason: str, text: str
) -> None:
    assert exc.field == field
    assert exc.reason == reason
    assert str(exc) == text
    again = pickle.loads(pickle.dumps(exc))  # worker pools send errors across processes
    assert type(again) is type(exc)
    assert (str(again), again.field, again.reason) == (text, field, reason)
    assert vars(again) == vars(exc)


def test_named_aliases_and_value_errors() -> None:
    assert ConfigError("project", "x").setting == "project"
    assert QueryError("by", "x").argument == "by"
    assert InvalidEventError("model", "x", 5).value == 5
    for cls in (InvalidEventError, ConfigError, QueryError):
        assert issubclass(cls, ValueError)
    assert not issubclass(StoreError, ValueError)  # a database fault is not bad input
    assert StoreError("boom", field="connect_timeout").field == "connect_timeout"


def test_store_error_keeps_its_signature() -> None:
    params = inspect.signature(StoreError).parameters
    assert list(params)[:2] == ["message", "url"]
    assert params["url"].kind is inspect.Parameter.KEYWORD_ONLY
    assert StoreError("plain").url is None


def test_data_rejected_is_the_stores_and_a_store_error() -> None:
    from llmtally.store.base import DataRejected as from_store

    assert from_store is DataRejected
    assert issubclass(DataRejected, StoreError)


def test_package_exports_the_public_errors() -> None:
    for cls in (ConfigError, InvalidEventError, LlmtallyError, QueryError, StoreError):
        assert getattr(llmtally, cls.__name__) is cls


def test_quality_weights_error_names_the_weight_with_the_reason() -> None:
    with pytest.raises(ConfigError) as info:
        llmtally.Tally(quality_weights={"slow_ms": -5})
    assert info.value.setting == "quality_weights.slow_ms"
    assert not info.value.reason.startswith("slow_ms")
    assert str(info.value) == f"quality_weights.slow_ms: {info.value.reason}"
