"""`llmtally export` and `query.export`: every column round-trips, read back with sqlite3."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import llmtally
from llmtally.cli.main import cli
from llmtally.query.export import count_events, export_events
from llmtally.query.reports import Filters

NOW = datetime.now(UTC)
BOOLEANS = {"stream", "usage_estimated", "regenerated", "edited"}


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


@pytest.fixture
def recorded(sqlite_url: str) -> dict[str, str]:
    """A few events of every kind, with metadata, booleans, floats and NULLs."""
    with llmtally.Tally(sqlite_url, project="shop") as tally:
        ids = {
            "call": tally.record_call(
                model="claude-sonnet-4-20250514",
                provider="anthropic",
                feature="summarize",
                actor="U0EXPORT01",
                session_id="s-1",
                trace_id="t-1",
                input_tokens=10_000,
                cache_read_tokens=6_000,
                cache_write_tokens=1_000,
                output_tokens=500,
                latency_ms=1234.5,
                ttft_ms=310.25,
                stream=True,
                stream_chunks=120,
                temperature=0.2,
                max_tokens=800,
                finish_reason="stop",
                prompt="Summarize the ticket thread",
                metadata={"tier": "pro", "retries": 0, "nested": {"a": [1, 2]}, "ok": True},
                occurred_at=NOW - timedelta(days=1),
            ),
            "error": tally.record_call(
                model="gpt-4o",
                provider="openai",
                status="error",
                error_type="APITimeoutError",
                error_message="Request timed out.",
                latency_ms=30_000.0,
                stream=False,
                occurred_at=NOW - timedelta(days=2),
            ),
            "old": tally.record_call(
                model="gpt-4o-mini",
                input_tokens=10,
                output_tokens=2,
                occurred_at=NOW - timedelta(days=10),
            ),
        }
        ids["feedback"] = tally.record_feedback(
            ids["call"],
            rating="down",
            regenerated=True,
            edited=False,
            comment="too long",
            actor="U0EXPORT01",
            occurred_at=NOW - timedelta(hours=20),
        )
        ids["product"] = tally.record_event(
            "new_conversation",
            actor="U0EXPORT01",
            properties={"channel_type": "dm"},
            occurred_at=NOW - timedelta(hours=30),
        )
        assert tally.flush(10)
    return ids


def db_rows(url: str, where: str = "1 = 1") -> list[dict[str, Any]]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.row_factory = sqlite3.Row
    query = f"SELECT * FROM events WHERE {where} ORDER BY occurred_at, event_id"
    return [dict(row) for row in conn.execute(query)]


def iso(text: str) -> str:
    """The store's SQLite text timestamp (UTC) as the export writes it."""
    return text.replace(" ", "T") + "Z"


def expected_csv(row: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in row.items():
        if value is None:
            out[key] = ""
        elif key in BOOLEANS:
            out[key] = "true" if value else "false"
        elif key == "occurred_at":
            out[key] = iso(value)
        else:
            out[key] = str(value)
    return out


def expected_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["occurred_at"] = iso(row["occurred_at"])
    out["metadata"] = None if row["metadata"] is None else json.loads(row["metadata"])
    for key in BOOLEANS:
        out[key] = None if row[key] is None else bool(row[key])
    return out


def test_csv_round_trips_every_column(
    sqlite_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "events.csv"
    result = run("export", "--db", sqlite_url, "--format", "csv", "--output", str(target))
    assert "Exported 5 events" in result.stderr
    rows = list(csv.DictReader(target.open(newline="")))
    stored = db_rows(sqlite_url)
    assert len(rows) == 5 and list(rows[0]) == list(stored[0])
    for row, want in zip(rows, stored, strict=True):
        got = dict(row)
        metadata = got.pop("metadata")
        expected = expected_csv(want)
        stored_metadata = expected.pop("metadata")
        assert got == expected
        assert (json.loads(metadata) if metadata else None) == (
            json.loads(stored_metadata) if stored_metadata else None
        )
    call = next(r for r in rows if r["event_id"] == recorded["call"])
    assert call["stream"] == "true" and call["ttft_ms"] == "310.25" and call["cost_usd"]
    assert json.loads(call["metadata"]) == {
        "tier": "pro",
        "retries": 0,
        "nested": {"a": [1, 2]},
        "ok": True,
    }
    assert call["prompt_hash"] and call["input_text"] == ""  # content capture is off
    assert call["occurred_at"].endswith("Z")


def test_jsonl_round_trips_every_column(
    sqlite_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "events.jsonl"  # the format follows the file name
    run("export", "--db", sqlite_url, "-o", str(target))
    lines = target.read_text().splitlines()
    got = [json.loads(line) for line in lines]
    assert got == [expected_json(row) for row in db_rows(sqlite_url)]
    by_id = {row["event_id"]: row for row in got}
    assert by_id[recorded["feedback"]]["parent_id"] == recorded["call"]
    assert by_id[recorded["feedback"]]["regenerated"] is True
    assert by_id[recorded["product"]]["metadata"] == {"channel_type": "dm"}
    assert by_id[recorded["error"]]["input_tokens"] is None
    assert isinstance(by_id[recorded["call"]]["latency_ms"], float)


def test_days_kind_project_and_stdout(sqlite_url: str, recorded: dict[str, str]) -> None:
    out = run("export", "--db", sqlite_url, "--days", "7", "--format", "jsonl").stdout
    ids = {json.loads(line)["event_id"] for line in out.splitlines()}
    assert ids == set(recorded.values()) - {recorded["old"]}
    out = run(
        "export", "--db", sqlite_url, "--since", "30d", "--kind", "llm_call", "-o", "-"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["event_id"] for r in rows} == {recorded["call"], recorded["error"], recorded["old"]}
    assert [r["occurred_at"] for r in rows] == sorted(r["occurred_at"] for r in rows)
    out = run("export", "--db", sqlite_url, "--project", "nope").stdout
    assert out.splitlines() == [",".join(db_rows(sqlite_url)[0])]  # header only
    result = CliRunner().invoke(cli, ["export", "--db", sqlite_url, "--days", "1", "--since", "2d"])
    assert result.exit_code == 2


def test_export_events_api_reports_progress(sqlite_url: str, recorded: dict[str, str]) -> None:
    engine = sa.create_engine(sqlite_url)
    seen: list[int] = []
    out = io.StringIO()
    filters = Filters.parse(since="7d", project="shop")
    written = export_events(engine, out, "jsonl", filters, seen.append, kind=None)
    assert written == sum(seen) == count_events(engine, filters) == 4
    assert len(out.getvalue().splitlines()) == 4
    with pytest.raises(ValueError, match="fmt"):
        export_events(engine, out, "xml", None)  # type: ignore[arg-type]
    engine.dispose()
