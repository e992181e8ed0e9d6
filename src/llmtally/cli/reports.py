"""The report commands, generated from the report registry (``query.registry``).

Each report becomes a command (``costs.breakdown`` → ``llmtally costs breakdown``) whose
options, choices, defaults and help come from the report's parameters, plus ``--db``
and ``--format``. Output is the report's ``Result``: JSON and CSV carry exactly its
columns; tables format each column by its unit. No SQL and no report knowledge here
beyond how a terminal shows a result (the overview's comparison and top lists).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import click

from llmtally.cli.common import CliGroup, database_url, db_param, opened_reports
from llmtally.cli.output import (
    columns,
    format_cell,
    format_change,
    format_param,
    label,
    render,
    render_pairs,
)
from llmtally.query import registry
from llmtally.query.registry import Parameter, Report, Result, WindowParams
from llmtally.query.values import iso_utc
from llmtally.query.vocabulary import EQUALITY_FILTERS

if TYPE_CHECKING:
    from llmtally.query.filters import Filters
    from llmtally.query.reports import Reports

# the previous period of equal length, shown under the overview in table mode:
# (metric, column now, column before, column of the relative change or None)
_COMPARISON: Final = (
    ("calls", "calls", "prev_calls", "calls_change"),
    ("cost_usd", "cost_usd", "prev_cost_usd", "cost_change"),
    ("error_rate", "error_rate", "prev_error_rate", None),
    ("p95_latency_ms", "p95_latency_ms", "prev_p95_latency_ms", None),
)
_TOP_COLUMNS: Final = ("calls", "cost_usd", "cost_share", "avg_cost_usd", "errors")
TOP_N: Final = 5


def describe(filters: Filters) -> str:
    """A short human description of a report's time range and filters, for table titles."""
    parts = []
    if filters.since is not None:
        parts.append(f"since {iso_utc(filters.since)[:16].replace('T', ' ')} UTC")
    if filters.until is not None:
        parts.append(f"until {iso_utc(filters.until)[:16].replace('T', ' ')} UTC")
    for name in EQUALITY_FILTERS:
        value = getattr(filters, name)
        if value is not None:
            parts.append(f"{name}={value}")
    return ", ".join(parts) if parts else "all time"


def title(result: Result, name: str | None = None) -> str:
    """The table title of a result: what it is, then its window and filters."""
    params = result.params
    text = name or result.report.title_for(params)
    if isinstance(params, WindowParams):
        text += f" ({describe(params.filters())})"
    return text


def show(reports: Reports, result: Result, fmt: str) -> None:
    """Print a result: a record as metric/value pairs, rows as a table; JSON/CSV as is."""
    view = TABLE_VIEWS.get(result.report.name)
    if fmt == "table" and view is not None:
        view(reports, result)
        return
    if fmt == "table" and result.report.is_record(result.params) and len(result.rows) == 1:
        render_pairs(result.rows[0], fmt, columns=result.columns, title=title(result))
        return
    shown = result.columns
    if fmt == "table" and result.report.table_columns is not None:
        shown = tuple(result.column(name) for name in result.report.table_columns)
    render(result.rows, fmt, columns=shown, title=title(result))


def show_overview(reports: Reports, result: Result, name: str = "Overview") -> None:
    """The overview as a table: the figures, the previous period, top models and features."""
    row = result.rows[0]
    derived = {before for _, _, before, _ in _COMPARISON} | {
        change for *_, change in _COMPARISON if change
    }
    render_pairs(
        row,
        "table",
        columns=[c for c in result.columns if c.name not in derived],
        title=title(result, name),
    )
    comparison = comparison_rows(result)
    if comparison:
        render(
            comparison,
            "table",
            columns=columns("metric", "now", "previous", "change"),
            title="Compared with the previous period of equal length",
            right=("now", "previous", "change"),
        )
    breakdown = registry.get("costs.breakdown")
    for by in ("model", "feature"):
        params = breakdown.params(
            **{f.name: getattr(result.params, f.name) for f in dataclasses.fields(WindowParams)},
            by=by,
            limit=TOP_N,
        )
        top = breakdown.run(reports, params)
        if top.rows:
            render(
                top.rows,
                "table",
                columns=(top.column(by), *(top.column(name) for name in _TOP_COLUMNS)),
                title=f"Cost by {by} (top {TOP_N})",
            )


def comparison_rows(result: Result) -> list[dict[str, str]]:
    """This period against the previous one, formatted (empty without a previous period)."""
    row = result.rows[0]
    if not any(c.when == "since" for c in result.columns):
        return []
    return [
        {
            "metric": label(result.column(now)),
            "now": format_cell(result.column(now).unit, row.get(now)),
            "previous": format_cell(result.column(now).unit, row.get(before)),
            "change": format_change(_number(row.get(change))) if change else "",
        }
        for _, now, before, change in _COMPARISON
    ]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


TABLE_VIEWS: Final[dict[str, Callable[[Reports, Result], None]]] = {"overview": show_overview}


def _option(p: Parameter) -> click.Parameter:
    """The click option (or argument) of one report parameter."""
    if p.argument:
        return click.Argument([p.name], required=p.required)
    choices = p.choices
    kind: Any
    if choices is not None:
        kind = click.Choice(list(choices))
    elif p.kind is int:
        kind = click.IntRange(min=p.minimum) if p.minimum is not None else int
    else:
        kind = str
    default = None if p.required else p.default
    return click.Option(
        [f"--{p.name.replace('_', '-')}", p.name],
        type=kind,
        default=default,
        required=p.required,
        show_default=default is not None,
        help=p.doc,
    )


def report_command(report: Report) -> click.Command:
    """The command of one report: its parameters as options, then ``--db`` and ``--format``."""

    def run(db: str | None, fmt: str, **values: Any) -> None:
        params = report.params(**values)
        with opened_reports(database_url(db)) as reports:
            show(reports, report.run(reports, params), fmt)

    return click.Command(
        report.path[-1],
        callback=run,
        params=[*(_option(p) for p in report.parameters()), db_param(), format_param()],
        help=report.doc,
        short_help=report.summary,
    )


def show_report(reports: Reports, name: str, fmt: str, **values: Any) -> None:
    """Compute a report by name with these parameter values and print it (``llmtally demo``)."""
    report = registry.get(name)
    show(reports, report.run(reports, report.params(**values)), fmt)


def report_commands() -> list[click.Command]:
    """Every report's command; reports named ``group.name`` come inside their group."""
    top: list[click.Command] = []
    groups: dict[str, click.Group] = {}
    for report in registry.all_reports():
        command = report_command(report)
        if len(report.path) == 1:
            top.append(command)
            continue
        group_name = report.path[0]
        if group_name not in groups:
            groups[group_name] = CliGroup(group_name, help=registry.groups()[group_name])
            top.append(groups[group_name])
        groups[group_name].add_command(command)
    return top
