"""The `llmtally` command line against real SQLite files (events recorded through Tally)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import llmtally
from llmtally.cli.main import cli
from llmtally.cli.output import format_cell, format_money, format_ms
from llmtally.store import migrate

NOW = datetime.now(UTC)


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    result = run(*args, env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def as_json(result: Result) -> list[dict[str, Any]]:
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


@pytest.fixture(autouse=True)
def in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default database lands in tmp_path (conftest clears the LLMTALLY_ settings)."""
    monkeypatch.chdir(tmp_path)


def record(url: str, *calls: dict[str, Any], project: str = "app") -> list[str]:
    with llmtally.Tally(url, project=project) as tally:
        ids = [tally.record_call(**call) for call in calls]
        assert tally.flush(10)
    return ids


def call(days_ago: float = 1, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "gpt-4o",
        "provider": "openai",
        "feature": "chat",
        "actor": "U0TEST0001",
        "input_tokens": 2000,
        "cache_read_tokens": 1024,
        "output_tokens": 100,
        "latency_ms": 850.0,
        "occurred_at": NOW - timedelta(days=days_ago),
    }
    base.update(fields)
    return base


@pytest.fixture
def filled(sqlite_url: str) -> str:
    record(
        sqlite_url,
        call(1),
        call(2, model="gpt-4o-mini", feature="smart_reply", latency_ms=300.0),
        call(
            3,
            status="error",
            error_type="RateLimitError",
            input_tokens=None,
            cache_read_tokens=None,
            output_tokens=None,
            latency_ms=120.0,
        ),
        call(200, feature="old"),
    )
    return sqlite_url


def db_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def test_overview_csv_and_json(filled: str) -> None:
    rows = list(
        csv.DictReader(io.StringIO(ok("overview", "--db", filled, "--format", "csv").stdout))
    )
    assert len(rows) == 1
    assert rows[0]["calls"] == "3"  # the 200-day-old call is outside the default 30d
    assert rows[0]["errors"] == "1"
    (overview,) = as_json(ok("overview", "--db", filled, "--format", "json"))
    # 976×$2.5/M + 1024×$1.25/M + 100×$10/M for gpt-4o (see genai-prices); mini is cheaper
    assert overview["cost_usd"] == pytest.approx(
        0.00472 + 976 * 0.15e-6 + 1024 * 0.075e-6 + 100 * 0.6e-6
    )
    assert overview["error_rate"] == pytest.approx(1 / 3)


def test_overview_table_shows_money_and_top_lists(filled: str) -> None:
    out = ok("overview", "--db", filled).stdout
    assert "Overview" in out and "$0.00" in out
    assert "Cost by model" in out and "gpt-4o-mini" in out
    assert "Cost by feature" in out and "smart_reply" in out


def test_breakdown_filters_and_limit(filled: str) -> None:
    rows = as_json(ok("costs", "breakdown", "--db", filled, "--by", "feature", "--format", "json"))
    assert [r["feature"] for r in rows] == ["chat", "smart_reply"]
    assert sum(r["cost_share"] for r in rows) == pytest.approx(1.0)
    top = as_json(ok("costs", "breakdown", "--db", filled, "--limit", "1", "--format", "json"))
    assert len(top) == 1 and top[0]["cost_share"] < 1.0  # shares stay shares of the whole
    errors = as_json(
        ok("costs", "breakdown", "--db", filled, "--status", "error", "--format", "json")
    )
    assert [(r["model"], r["calls"], r["cost_usd"]) for r in errors] == [("gpt-4o", 1, 0.0)]
    old = as_json(
        ok(
            "costs",
            "breakdown",
            "--db",
            filled,
            "--since",
            "365d",
            "--until",
            "100d",
            "--format",
            "json",
            "--by",
            "feature",
        )
    )
    assert [r["feature"] for r in old] == ["old"]


def test_costs_summary(filled: str) -> None:
    (row,) = as_json(ok("costs", "summary", "--db", filled, "--since", "7d", "--format", "json"))
    assert row["calls"] == 3
    assert row["avg_cost_per_call_usd"] == pytest.approx(row["cost_usd"] / 3)


def test_empty_database_gives_empty_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'empty.db'}"
    assert as_json(ok("costs", "breakdown", "--db", url, "--format", "json")) == []
    header = ok("costs", "breakdown", "--db", url, "--by", "actor", "--format", "csv").stdout
    assert header.splitlines() == [
        "actor,calls,cost_usd,cost_share,avg_cost_usd,unpriced_calls,errors,input_tokens,"
        "output_tokens,cache_read_tokens"
    ]
    assert "model" in ok("costs", "breakdown", "--db", url).stdout
    (overview,) = as_json(ok("overview", "--db", url, "--format", "json"))
    assert overview["calls"] == 0 and overview["p95_latency_ms"] is None


def test_default_database_is_llmtally_db_in_cwd_or_env(tmp_path: Path) -> None:
    record(f"sqlite:///{tmp_path / 'llmtally.db'}", call(1))
    (row,) = as_json(ok("overview", "--format", "json"))
    assert row["calls"] == 1
    other = tmp_path / "other.db"
    record(f"sqlite:///{other}", call(1), call(2))
    (row,) = as_json(
        ok("overview", "--format", "json", env={"LLMTALLY_DATABASE_URL": f"sqlite:///{other}"})
    )
    assert row["calls"] == 2


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_bad_time_is_a_one_line_usage_error(sqlite_url: str, option: str) -> None:
    result = run("overview", "--db", sqlite_url, option, "xyz")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and option in lines[0]


def test_since_after_until_and_bad_dimension(sqlite_url: str) -> None:
    result = run("overview", "--db", sqlite_url, "--since", "1d", "--until", "7d")
    assert result.exit_code == 2 and "--since" in result.stderr
    result = run("costs", "breakdown", "--db", sqlite_url, "--by", "nonsense")
    assert result.exit_code == 2 and "nonsense" in result.stderr


def test_bad_settings_and_databases(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    result = run("overview", env={"LLMTALLY_CONFIG": str(bad)})
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"Error: colour: is not a llmtally setting (in {bad})"
    )
    result = run("overview", "--db", "mysql://db.example/x")
    assert result.exit_code == 2 and "unsupported database URL scheme" in result.stderr
    result = run("status", "--db", "postgresql://someone:s3cret@127.0.0.1:1/x")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "s3cret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cleanup_deletes_only_old_events(filled: str) -> None:
    record(filled, call(250, feature="other-project-old"), project="keep")
    result = run("cleanup", "--db", filled, "--older-than", "180d", input="n\n")
    assert result.exit_code == 1  # declined: nothing happens
    conn = sqlite3.connect(db_path(filled))
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
    out = ok("cleanup", "--db", filled, "--older-than", "180d", "--project", "app", "--yes").stdout
    assert "Deleted 1 events" in out
    assert {f for (f,) in conn.execute("SELECT feature FROM events")} == {
        "chat",
        "smart_reply",
        "other-project-old",
    }
    assert "Deleted 1 events" in ok("cleanup", "--db", filled, "--older-than", "180d", "-y").stdout
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    result = run("cleanup", "--db", filled, "--older-than", "soon", "--yes")
    assert result.exit_code == 2 and "--older-than" in result.stderr


def test_prices_show_gpt_4o(filled: str) -> None:
    (row,) = as_json(ok("prices", "show", "gpt-4o", "--db", filled, "--format", "json"))
    assert row["source"] == "genai-prices" and row["provider"] == "openai"
    assert (row["input_per_mtok"], row["output_per_mtok"], row["cache_read_per_mtok"]) == (
        2.5,
        10.0,
        1.25,
    )
    assert "$2.5/input MTok" in row["genai_prices"]
    assert row["in_registry"] is True and row["registry_placeholder"] is False
    assert row["first_seen"].endswith("Z")
    table = ok("prices", "show", "gpt-4o", "--db", filled).stdout
    assert "$2.50" in table and "$10.00" in table


def test_prices_list_search_and_custom(tmp_path: Path) -> None:
    rows = as_json(
        ok("prices", "list", "--provider", "openai", "--search", "gpt-4o-mini", "--format", "json")
    )
    mini = next(r for r in rows if r["model"] == "gpt-4o-mini")
    assert mini["input_per_mtok"] == 0.15 and mini["source"] == "genai-prices"
    assert all("gpt-4o-mini" in r["model"] or "gpt-4o-mini" in (r["name"] or "") for r in rows)
    config = tmp_path / "llmtally.toml"
    config.write_text('[custom_pricing]\n"acme/inhouse-7b" = { input = 0.2, output = 0.4 }\n')
    rows = as_json(
        ok(
            "prices",
            "list",
            "--search",
            "inhouse",
            "--format",
            "json",
            env={"LLMTALLY_CONFIG": str(config)},
        )
    )
    assert rows == [
        {
            "provider": "acme",
            "model": "inhouse-7b",
            "name": None,
            "input_per_mtok": 0.2,
            "output_per_mtok": 0.4,
            "cache_read_per_mtok": None,
            "cache_write_per_mtok": None,
            "source": "custom",
        }
    ]


def test_prices_recompute_fills_cost_from_config(sqlite_url: str, tmp_path: Path) -> None:
    (event_id,) = record(
        sqlite_url,
        call(
            2,
            model="inhouse-x",
            provider="acme",
            cache_read_tokens=None,
            input_tokens=1000,
            output_tokens=500,
        ),
    )
    conn = sqlite3.connect(db_path(sqlite_url))
    cost = "SELECT cost_usd FROM events WHERE event_id = ?"
    assert conn.execute(cost, (event_id,)).fetchone()[0] is None
    status = as_json(ok("status", "--db", sqlite_url, "--format", "json"))[0]
    assert status["unpriced_models"] == "inhouse-x" and status["unpriced_calls"] == 1
    config = tmp_path / "prices.toml"
    config.write_text("[custom_pricing]\ninhouse-x = { input = 1.0, output = 2.0 }\n")
    env = {"LLMTALLY_CONFIG": str(config)}
    out = ok("prices", "recompute", "--db", sqlite_url, env=env).stdout
    assert "1 got a new cost" in out
    assert conn.execute(cost, (event_id,)).fetchone()[0] == pytest.approx(1000 * 1e-6 + 500 * 2e-6)
    placeholder = "SELECT is_placeholder FROM models WHERE model = 'inhouse-x'"
    assert conn.execute(placeholder).fetchone()[0] == 0
    (shown,) = as_json(
        ok("prices", "show", "inhouse-x", "--db", sqlite_url, "--format", "json", env=env)
    )
    assert shown["source"] == "custom" and shown["in_registry"] is True


def test_db_migrate_and_status(sqlite_url: str) -> None:
    before = as_json(ok("db", "status", "--db", sqlite_url, "--format", "json"))
    assert before[0]["revision"] == "0001_initial" and before[0]["applied"] is False
    assert "Applied 0001_initial" in ok("db", "migrate", "--db", sqlite_url).stdout
    assert "Already up to date" in ok("db", "migrate", "--db", sqlite_url).stdout
    after = as_json(ok("db", "status", "--db", sqlite_url, "--format", "json"))
    assert {"revision": "0001_initial", "applied": True}.items() <= after[0].items()
    assert "0001_initial" in ok("db", "status", "--db", sqlite_url).stdout


def test_status(filled: str) -> None:
    (row,) = as_json(ok("status", "--db", filled, "--format", "json"))
    assert row["database_url"] == filled
    assert row["schema_revision"] == row["head_revision"] == migrate.head_revision()
    assert row["up_to_date"]
    assert row["events"] == 4 and row["llm_calls"] == 4 and row["unpriced_models"] is None
    assert row["first_event_at"] < row["last_event_at"]
    assert "schema revision" in ok("status", "--db", filled).stdout


def test_table_formatting() -> None:
    assert format_money(1234.5) == "$1,234.50"
    assert format_money(0.00472) == "$0.004720"
    assert format_money(0) == "$0.00"
    assert format_money(None) == "—"
    assert format_ms(12.345) == "12.3" and format_ms(1234.5) == "1,234"
    assert format_cell("ratio", 0.25) == "25.0%"
    assert format_cell("count", 1234567) == "1,234,567"
    assert format_cell("bool", True) == "yes"
    assert format_cell("usd", None) == "—"
    assert format_cell("usd", 0.00472) == "$0.004720"


def test_help_lists_every_command() -> None:
    out = ok("--help").stdout
    for name in ("overview", "costs", "export", "cleanup", "prices", "db", "status", "demo"):
        assert name in out
    assert llmtally.__version__ in ok("--version").stdout
