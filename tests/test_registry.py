"""The report registry (issue 10): every report is declared once and every view comes from it.

These tests enumerate the registry, so a report added without a command, help, a valid
JSON Schema or oracle coverage fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from llmtally.cli.main import cli
from llmtally.errors import QueryError
from llmtally.query import registry
from llmtally.query.reports import Reports
from llmtally.query.vocabulary import GROUP_BY, INTERVALS
from llmtally.store.base import open_store

REPORTS = registry.all_reports()
NAMES = [report.name for report in REPORTS]
ORACLE = (Path(__file__).parent / "test_reports_oracle.py").read_text()


def _sample(report: registry.Report) -> dict[str, Any]:
    """Parameter values for a report: its defaults, plus a value for each required one."""
    values: dict[str, Any] = {}
    for p in report.parameters():
        values[p.name] = "t-1" if p.required else p.default
    return values


def test_names_are_unique_and_dotted_paths() -> None:
    """One report per name; names are ``word`` or ``group.word``, groups are declared."""
    assert len(NAMES) == len(set(NAMES)) >= 14
    for report in REPORTS:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", report.name), report.name
        if len(report.path) == 2:
            assert report.path[0] in registry.groups()


@pytest.mark.parametrize("name", NAMES)
def test_every_report_has_a_command_with_help(name: str) -> None:
    """``llmtally <path> --help`` exists, shows the report's doc and every parameter."""
    report = registry.get(name)
    result = CliRunner().invoke(cli, [*report.path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert report.summary in " ".join(result.output.split())
    for p in report.parameters():
        shown = p.name.upper() if p.argument else f"--{p.name.replace('_', '-')}"
        assert shown in result.output, (name, shown)
        if p.choices:
            assert "|".join(p.choices) in result.output.replace("\n", "")


@pytest.mark.parametrize("name", NAMES)
def test_every_report_has_a_json_schema_that_validates_its_defaults(name: str) -> None:
    """The parameters' JSON Schema accepts the defaults and refuses what the CLI refuses."""
    report = registry.get(name)
    schema = report.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(_sample(report), schema)
    assert schema["title"] == name and schema["description"] == report.summary
    for p in report.parameters():
        prop = schema["properties"][p.name]
        assert prop["description"] == p.doc
        if p.choices:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate({**_sample(report), p.name: "no-such-choice"}, schema)
        if p.minimum is not None:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate({**_sample(report), p.name: p.minimum - 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**_sample(report), "no_such_parameter": 1}, schema)


@pytest.mark.parametrize("name", NAMES)
def test_every_report_has_oracle_coverage(name: str) -> None:
    """tests/test_reports_oracle.py checks each report against plain Python over the events."""
    assert f"def test_{name.replace('.', '_')}(" in ORACLE


@pytest.mark.parametrize("name", NAMES)
def test_every_report_declares_columns_with_units_and_docs(name: str) -> None:
    """Columns are unique, documented and have a unit from the registry's list."""
    report = registry.get(name)
    names = [c.name for c in report.columns]
    assert len(names) == len(set(names))
    for column in report.columns:
        assert column.unit in registry.UNITS and column.doc, (name, column)
        assert column.when is None or column.when in {p.name for p in report.parameters()}
    if report.table_columns is not None:
        assert set(report.table_columns) <= set(names)


def test_an_empty_result_still_has_its_header(sqlite_url: str) -> None:
    """On an empty database a report returns no rows (a record: its zeros) but its columns."""
    store = open_store(sqlite_url)
    store.migrate()
    reports = Reports(store.engine)
    try:
        for report in REPORTS:
            params = report.parse(_sample(report))
            result = report.run(reports, params)
            # the overview and cost summary are one record of zeros; the rest have no rows
            assert all(row["calls"] == 0 for row in result.rows), report.name
            assert len(result.rows) <= (1 if report.is_record(params) else 0), report.name
            expected = report.columns_for(params)
            assert result.columns == expected and len(expected) >= 5, report.name
        result = reports.run("costs.breakdown", by="feature", since="7d")
        assert result.names[0] == "feature" and result.rows == []
        assert result.report.title_for(result.params) == "Cost by feature"
        with pytest.raises(QueryError) as info:
            reports.run("costs.breakdown", by="planet")
        assert info.value.argument == "by"
    finally:
        store.close()


@pytest.mark.parametrize("name", NAMES)
def test_every_report_has_a_title(name: str) -> None:
    """A heading for tables and dashboard panels, filled from the parameters."""
    report = registry.get(name)
    heading = report.title_for(report.parse(_sample(report)))
    assert heading and "{" not in heading


def test_columns_follow_the_parameters() -> None:
    """``{by}`` becomes the dimension; previous-period columns need ``since``."""
    breakdown = registry.get("costs.breakdown")
    assert breakdown.columns_for(breakdown.params(by="feature"))[0].name == "feature"
    overview = registry.get("overview")
    with_since = [c.name for c in overview.columns_for(overview.params())]
    without = [c.name for c in overview.columns_for(overview.params(since=None))]
    assert "prev_calls" in with_since and "prev_calls" not in without
    stats = registry.get("requests.stats")
    assert stats.columns_for(stats.params())[0].name == "calls"
    assert stats.columns_for(stats.params(by="model"))[0].name == "model"


def test_parse_converts_loose_values_and_names_the_bad_field() -> None:
    """Query-string values are converted; bad ones raise QueryError naming the parameter."""
    listing = registry.get("requests.list")
    params = listing.parse({"limit": "5", "offset": "2", "feature": "chat"})
    assert (params.limit, params.offset, params.feature) == (5, 2, "chat")
    for values, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "maybe"}, "status"),
        ({"bogus": "1"}, "bogus"),
    ):
        with pytest.raises(QueryError) as info:
            listing.parse(values)
        assert info.value.argument == field, values
    with pytest.raises(QueryError) as info:
        registry.get("costs.breakdown").parse({"by": "planet"})
    assert info.value.argument == "by"
    with pytest.raises(QueryError) as info:
        registry.get("no.such.report")
    assert info.value.argument == "report"


def test_choices_come_from_the_vocabulary() -> None:
    """The CLI's --by and --interval offer exactly the query layer's dimensions and sizes."""
    by = next(p for p in registry.get("costs.breakdown").parameters() if p.name == "by")
    interval = next(p for p in registry.get("costs.trends").parameters() if p.name == "interval")
    assert by.choices == GROUP_BY and interval.choices == INTERVALS
    defaults = registry.get("costs.breakdown").defaults()
    assert dataclasses.asdict(defaults)["since"] == "30d"


def test_describe_lists_parameters_and_columns() -> None:
    """``describe()`` (the future ``GET /v1/reports``) carries schema and columns."""
    described = registry.get("errors").describe()
    assert described["name"] == "errors"
    assert "limit" in described["parameters"]["properties"]
    assert [c["name"] for c in described["columns"]][:3] == ["error_type", "feature", "model"]
    assert {c["unit"] for c in described["columns"]} >= {"count", "ratio", "text"}


def test_a_report_on_an_unreachable_database_raises_store_error() -> None:
    """The query boundary: a driver error leaves as StoreError, the password hidden."""
    from llmtally.errors import StoreError
    from llmtally.store.postgres import PostgresStore

    # a port nobody listens on: the connection is refused at once
    url = "postgresql://reader:s3cret@127.0.0.1:9/llmtally?connect_timeout=2"
    engine = PostgresStore(url).engine
    reports = Reports(engine)
    for call in (reports.overview, reports.requests_list, lambda: reports.trace("t")):
        with pytest.raises(StoreError) as info:
            call()
        assert "s3cret" not in str(info.value) and "***" in str(info.value.url)
        assert isinstance(info.value.__cause__, Exception) and info.value.reason
    engine.dispose()
