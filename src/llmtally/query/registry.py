"""The report registry: each report is declared once, and every view is generated from it.

A report has a name (``costs.breakdown``: the CLI command ``costs breakdown``, later the
HTTP route ``/v1/reports/costs.breakdown`` and the MCP tool ``costs_breakdown``), a doc,
typed parameters (a frozen dataclass whose fields carry defaults, choices as ``Literal``
types and descriptions), the columns of its rows with their units, and the function
computing the rows from ``Reports``. Views render a ``Result``, which knows its columns
even when it has no rows, so an empty result still has a header.

The declarations are in ``query.definitions``. This module and that one import nothing
heavy (no SQLAlchemy, no pydantic until a JSON Schema is asked for): the CLI builds its
commands and help from them without touching a database.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, get_args, get_origin

from llmtally.errors import QueryError
from llmtally.query.vocabulary import EQUALITY_FILTERS, Status

if TYPE_CHECKING:
    from llmtally.query.filters import Filters
    from llmtally.query.reports import Reports

Row = dict[str, Any]

# what a column's numbers mean; views format by unit, never by a column's name
Unit = Literal[
    "count",  # a whole number of things (calls, tokens, events)
    "number",  # any other number (averages, days, scores)
    "usd",  # US dollars
    "usd_per_mtok",  # a price: US dollars per million tokens
    "ms",  # milliseconds
    "seconds",  # a duration in seconds
    "ratio",  # a fraction 0–1 (shares, rates)
    "change",  # a relative change (0.12 = +12%)
    "time",  # an instant (UTC datetime; ISO-8601 with Z in JSON)
    "text",
    "bool",
]
UNITS: Final[tuple[str, ...]] = get_args(Unit)

BY_PLACEHOLDER: Final = "{by}"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a report's rows."""

    name: str
    unit: Unit
    doc: str
    # the column is present only when this parameter is set (e.g. the previous-period
    # columns of the overview need ``since``)
    when: str | None = None
    # tables cut longer text to this many characters (JSON and CSV keep it whole)
    width: int | None = None

    def describe(self) -> dict[str, Any]:
        """The column as JSON: name, unit and doc."""
        return {"name": self.name, "unit": self.unit, "doc": self.doc}


def param(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    minimum: int | None = None,
    argument: bool = False,
) -> Any:
    """A report parameter: its default, description and (for integers) lower bound.

    ``argument`` makes it positional on the command line (``llmtally trace ID``).
    """
    metadata = {"doc": doc, "minimum": minimum, "argument": argument}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class WindowParams:
    """The time window and filters every report over events takes."""

    since: str | None = param(
        "30d",
        doc="Start: a duration ago (30m, 24h, 7d, 2w) or an ISO date/time (UTC if no offset).",
    )
    until: str | None = param(None, doc="End (exclusive), same forms; default: now.")
    project: str | None = param(None, doc="Only this project.")
    feature: str | None = param(None, doc="Only this feature.")
    model: str | None = param(None, doc="Only this model.")
    provider: str | None = param(None, doc="Only this provider.")
    actor: str | None = param(None, doc="Only this actor.")
    status: Status | None = param(None, doc="Only ok or failed calls.")

    def filters(self) -> Filters:
        """The ``Filters`` these parameters select (bad times raise ``QueryError``)."""
        from llmtally.query.filters import Filters

        equals = {name: getattr(self, name) for name in EQUALITY_FILTERS}
        return Filters.parse(since=self.since, until=self.until, **equals)


@dataclass(frozen=True, slots=True)
class Parameter:
    """A report parameter as views see it (from the params dataclass's field)."""

    name: str
    annotation: Any  # the resolved type: str | None, int, Literal[...]…
    default: Any  # dataclasses.MISSING when required
    doc: str
    minimum: int | None
    argument: bool

    @property
    def required(self) -> bool:
        """Whether the parameter has no default."""
        return self.default is dataclasses.MISSING

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values of a ``Literal`` parameter, else None."""
        for part in _parts(self.annotation):
            if get_origin(part) is Literal:
                return tuple(str(value) for value in get_args(part))
        return None

    @property
    def kind(self) -> type:
        """``int`` or ``str``: what the value is, without ``None``."""
        for part in _parts(self.annotation):
            if part is int:
                return int
        return str


def _parts(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None``), or the annotation itself."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


@dataclass(frozen=True)
class Report:
    """One report: what it is called, takes, returns and how it is computed."""

    name: str
    doc: str
    # a heading for tables and panels; ``{parameter}`` fields are filled in
    # (``{by_suffix}``: `` by <by>`` when a ``by`` is given)
    title: str
    params: type[Any]
    columns: tuple[Column, ...]
    compute: Callable[[Reports, Any], list[Row]]
    # one row, shown as a metric/value table (a function of the parameters when it depends)
    record: bool | Callable[[Any], bool] = False
    # the columns a terminal table shows, when not all of them fit
    table_columns: tuple[str, ...] | None = None

    @property
    def summary(self) -> str:
        """The doc's first line (command lists, tool descriptions)."""
        return self.doc.strip().splitlines()[0]

    @property
    def path(self) -> tuple[str, ...]:
        """The command words: ``("costs", "breakdown")``."""
        return tuple(self.name.split("."))

    def parameters(self) -> tuple[Parameter, ...]:
        """The parameters, in declaration order (window and filters last)."""
        return _parameters(self.params)

    def columns_for(self, params: Any) -> tuple[Column, ...]:
        """The columns of a result for these parameters (``{by}`` replaced, ``when`` applied)."""
        out = []
        for column in self.columns:
            # an empty --since means "all time", like no --since at all
            if column.when is not None and getattr(params, column.when) in (None, ""):
                continue
            if column.name == BY_PLACEHOLDER:
                column = dataclasses.replace(column, name=str(params.by))
            out.append(column)
        return tuple(out)

    def title_for(self, params: Any) -> str:
        """The heading for a result with these parameters (``Cost by model``)."""
        values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
        by = values.get("by")
        values["by_suffix"] = f" by {by}" if by else ""
        return self.title.format(**values)

    def is_record(self, params: Any) -> bool:
        """Whether the result is one record (shown as metric/value pairs)."""
        return self.record(params) if callable(self.record) else self.record

    def defaults(self) -> Any:
        """The parameters with every default (a report without required ones)."""
        return self.params()

    def parse(self, values: Mapping[str, Any]) -> Any:
        """Parameters from loose values (a query string, a tool call); errors name the field."""
        from pydantic import TypeAdapter, ValidationError

        known = {p.name for p in self.parameters()}
        for name in values:
            if name not in known:
                raise QueryError(name, f"is not a parameter of {self.name}")
        try:
            params = TypeAdapter(self.params).validate_python(dict(values))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"] if isinstance(part, str))
            raise QueryError(where or "params", str(error["msg"])) from None
        self._check_bounds(params)
        return params

    def _check_bounds(self, params: Any) -> None:
        for p in self.parameters():
            value = getattr(params, p.name)
            if p.minimum is not None and value is not None and value < p.minimum:
                raise QueryError(p.name, f"must be a whole number >= {p.minimum}, got {value!r}")

    def json_schema(self) -> dict[str, Any]:
        """The parameters as a JSON Schema object (for OpenAPI and MCP tool definitions)."""
        return _json_schema(self)

    def run(self, reports: Reports, params: Any = None, **values: Any) -> Result:
        """Compute the report: ``params`` (a params instance) or loose ``values``."""
        if params is None:
            params = self.parse(values)
        elif values:
            raise QueryError("params", "give either a params object or keyword values")
        rows = self.compute(reports, params)
        columns = self.columns_for(params)
        if rows and list(rows[0]) != [column.name for column in columns]:
            # a report whose rows and declared columns disagree is a bug, never data to drop
            raise AssertionError(
                f"{self.name}: rows have {list(rows[0])}, declared {[c.name for c in columns]}"
            )
        return Result(report=self, params=params, columns=columns, rows=rows)

    def describe(self) -> dict[str, Any]:
        """The report as JSON: name, doc, parameters (JSON Schema) and columns."""
        return {
            "name": self.name,
            "doc": self.doc,
            "parameters": self.json_schema(),
            "columns": [column.describe() for column in self.columns],
        }


@dataclass(frozen=True)
class Result:
    """A computed report: its rows and the columns they have."""

    report: Report
    params: Any
    columns: tuple[Column, ...]
    rows: list[Row]

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        """One column by name."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


_PARAMETERS: dict[type[Any], tuple[Parameter, ...]] = {}


def _parameters(params: type[Any]) -> tuple[Parameter, ...]:
    found = _PARAMETERS.get(params)
    if found is None:
        found = _PARAMETERS[params] = _read_parameters(params)
    return found


def _read_parameters(params: type[Any]) -> tuple[Parameter, ...]:
    hints = typing.get_type_hints(params)
    own = [f for f in dataclasses.fields(params) if f.name not in _WINDOW_NAMES]
    window = [f for f in dataclasses.fields(params) if f.name in _WINDOW_NAMES]
    return tuple(
        Parameter(
            name=f.name,
            annotation=hints[f.name],
            default=f.default,
            doc=f.metadata.get("doc", ""),
            minimum=f.metadata.get("minimum"),
            argument=bool(f.metadata.get("argument")),
        )
        for f in (*own, *window)
    )


_WINDOW_NAMES: Final = frozenset(f.name for f in dataclasses.fields(WindowParams))


def _json_schema(report: Report) -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema: dict[str, Any] = TypeAdapter(report.params).json_schema()
    properties = schema.get("properties", {})
    for p in report.parameters():
        prop = properties[p.name]
        prop["description"] = p.doc
        if p.minimum is not None:
            # on the integer branch of an optional integer, else on the property itself
            branches = prop.get("anyOf", [prop])
            for branch in branches:
                if branch.get("type") == "integer":
                    branch["minimum"] = p.minimum
    schema["title"] = report.name
    schema["description"] = report.summary
    schema["additionalProperties"] = False
    return schema


def all_reports() -> Sequence[Report]:
    """Every report, in the order views list them."""
    from llmtally.query.definitions import REPORTS

    return REPORTS


def get(name: str) -> Report:
    """A report by name (``costs.breakdown``); an unknown name raises ``QueryError``."""
    for report in all_reports():
        if report.name == name:
            return report
    known = ", ".join(report.name for report in all_reports())
    raise QueryError("report", f"no report named {name!r} (known: {known})")


def groups() -> Mapping[str, str]:
    """The report groups (``costs``, ``requests``) and what each is about."""
    from llmtally.query.definitions import GROUPS

    return GROUPS
