"""``tally.ingest(events, project=P)``: a batch pinned to one project, on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from pathlib import Path

import pytest

import llmtally
from dbutil import rows


class Project(enum.StrEnum):
    ACME = "acme"


@pytest.fixture
def store_tally(db_url: str, tmp_path: Path) -> Iterator[llmtally.Tally]:
    with llmtally.Tally(db_url, project="home", spool_dir=tmp_path / "spool") as tally:
        yield tally


def stored(tally: llmtally.Tally) -> list[tuple[str, str]]:
    assert tally.flush(30)
    assert tally.database_url is not None
    found = rows(tally.database_url, "SELECT project, model FROM events ORDER BY model")
    return [(row["project"], row["model"]) for row in found]


def test_a_pinned_batch_cannot_write_into_another_project(store_tally: llmtally.Tally) -> None:
    result = store_tally.ingest(
        [
            {"model": "a-unnamed"},  # gets the pinned project
            {"model": "b-same", "project": "acme"},
            {"model": "c-other", "project": "victim"},  # refused, alone
            {"model": "d-enum", "project": Project.ACME},  # the same project, as a StrEnum
            {"model": "e-bad", "project": "victim", "input_tokens": -1},  # its own error first
            {"model": "f-empty", "project": ""},
        ],
        project="acme",
    )
    assert result.accepted == 3
    assert [(r["index"], r["field"]) for r in result.rejected] == [
        (2, "project"),
        (4, "input_tokens"),
        (5, "project"),
    ]
    assert "pinned" in result.rejected[0]["error"] and "'victim'" in result.rejected[0]["error"]
    assert stored(store_tally) == [("acme", "a-unnamed"), ("acme", "b-same"), ("acme", "d-enum")]


def test_without_a_pin_rows_keep_their_project(store_tally: llmtally.Tally) -> None:
    result = store_tally.ingest([{"model": "a"}, {"model": "b", "project": "other"}])
    assert result.accepted == 2 and result.rejected == []
    assert stored(store_tally) == [("home", "a"), ("other", "b")]


@pytest.mark.parametrize("bad", ["", 5, ["acme"]])
def test_the_pin_itself_is_checked(bad: object) -> None:
    with pytest.raises(llmtally.ConfigError) as raised:
        llmtally.Tally().ingest([{"model": "m"}], project=bad)  # type: ignore[arg-type]
    assert raised.value.field == "project"
