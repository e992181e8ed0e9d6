"""Rendering report rows as a Rich table, JSON or CSV: one function every command uses.

JSON is one document, a list of flat objects with the report's snake_case keys and
numbers as numbers. CSV is a header and one line per row. Tables are for people: money
with sensible precision, shares as percentages, latencies in milliseconds.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click
import orjson

from llmtally.query.registry import Column, Unit
from llmtally.query.values import csv_value, iso_utc, json_value

if TYPE_CHECKING:
    # Rich is imported when something is printed: `llmtally --help` does without it
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

FORMATS: Final = ("table", "json", "csv")
NONE: Final = "—"
TEXT_MIN_WIDTH: Final = 24
F = TypeVar("F", bound=Callable[..., Any])

Row = Mapping[str, Any]


_FORMAT_DECLS: Final = ("--format", "fmt")
_FORMAT_ATTRS: Final[dict[str, Any]] = {
    "type": click.Choice(FORMATS),
    "default": "table",
    "show_default": True,
    "help": "Output format: a table for people, JSON (a list of objects) or CSV for machines.",
}


def format_param() -> click.Option:
    """The ``--format table|json|csv`` option (passed as ``fmt``)."""
    return click.Option(list(_FORMAT_DECLS), **_FORMAT_ATTRS)


def output_options(fn: F) -> F:
    """Give a command ``--format table|json|csv`` (passed as ``fmt``)."""
    return click.option(*_FORMAT_DECLS, **_FORMAT_ATTRS)(fn)


def console(*, stderr: bool = False) -> Console:
    """A Rich console on click's current stdout/stderr; wide when writing to a file or pipe."""
    from rich.console import Console

    # sys.stdout looked up now: click's test runner swaps it per invocation
    stream = sys.stderr if stderr else sys.stdout
    out = Console(file=stream, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # a table in a file or a pipe is read later: do not squeeze it to 80 columns
        out.width = 200
    return out


def format_money(value: float | Decimal | None) -> str:
    """``$1,234.56`` from $1 up, four significant digits below (``$0.004720``), ``—`` for None."""
    if value is None:
        return NONE
    amount = float(value)
    if amount == 0:
        return "$0.00"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = min(10, max(2, 3 - math.floor(math.log10(amount))))
    return f"{sign}${amount:.{decimals}f}"


def format_ms(value: float | None) -> str:
    """Latency in ms: one decimal under 100 ms, none above."""
    if value is None:
        return NONE
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def format_share(value: float | None) -> str:
    """A 0–1 fraction as a percentage."""
    if value is None:
        return NONE
    return f"{value * 100:.2f}%" if value < 0.001 and value > 0 else f"{value * 100:.1f}%"


def format_duration(seconds: float | None) -> str:
    """A duration for people: ``42.0s``, ``12m 05s``, ``18h 12m``, ``3d 04h``."""
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def format_change(value: float | None) -> str:
    """A relative change as a signed percentage: 0.12 → ``+12%``, -0.05 → ``-5%``."""
    if value is None:
        return NONE
    percent = value * 100
    return f"{percent:+.1f}%" if 0 < abs(percent) < 10 else f"{percent:+,.0f}%"


def format_number(value: Any) -> str:
    """A number, bool, time or text by its type: ``1,234``, ``0.1235``, ``yes``, ISO time."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        number = float(value)
        return f"{number:,.2f}" if abs(number) >= 100 else f"{number:,.4g}"
    if isinstance(value, datetime):
        return iso_utc(value)[:19].replace("T", " ")
    return str(value)


_FORMATTERS: Final[dict[str, Callable[[float], str]]] = {
    "usd": format_money,
    "usd_per_mtok": format_money,
    "change": format_change,
    "ratio": format_share,
    "ms": format_ms,
    "seconds": format_duration,
}


def format_cell(unit: Unit, value: Any) -> str:
    """One value as a table shows it, by its column's unit (``—`` for None)."""
    if value is None:
        return NONE
    formatter = _FORMATTERS.get(unit)
    numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if formatter is not None and numeric:
        return formatter(float(value))
    return format_number(value)


_UNIT_LABELS: Final = {
    "usd": ("_usd", " ($)"),
    "usd_per_mtok": ("_per_mtok", " ($/M tok)"),
    "ms": ("_ms", " (ms)"),
    "seconds": ("_s", ""),
}


def label(column: Column) -> str:
    """A column's header: ``cost_usd`` → ``cost ($)``, ``p50_latency_ms`` → ``… (ms)``."""
    name = column.name
    suffix, mark = _UNIT_LABELS.get(column.unit, ("", ""))
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    return name.replace("_", " ") + mark


def columns(*specs: str | tuple[str, Unit]) -> tuple[Column, ...]:
    """Columns of a command's own rows: a name (text, formatted by type) or (name, unit)."""
    return tuple(
        Column(spec, "text", "") if isinstance(spec, str) else Column(spec[0], spec[1], "")
        for spec in specs
    )


def _numeric(key: str, rows: Sequence[Row]) -> bool:
    values = [row.get(key) for row in rows if row.get(key) is not None]
    return bool(values) and all(
        isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in values
    )


def _clip(value: Any, width: int | None) -> Any:
    if width is not None and isinstance(value, str) and len(value) > width:
        return value[: width - 1] + "…"
    return value


def render(
    rows: Sequence[Row],
    fmt: str,
    *,
    columns: Sequence[Column],
    title: str | None = None,
    right: Collection[str] = (),
) -> None:
    """Print ``rows`` as a table, JSON or CSV on stdout, with exactly ``columns``.

    ``right`` names text columns to align right in a table (numbers already are).
    """
    keys = [column.name for column in columns]
    if fmt == "json":
        data = [{key: json_value(row.get(key)) for key in keys} for row in rows]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    if fmt == "csv":
        out = sys.stdout
        writer = csv.writer(out, lineterminator="\n")
        if keys:
            writer.writerow(keys)
        for row in rows:
            writer.writerow([csv_value(row.get(k)) for k in keys])
        out.flush()
        return
    cells = [
        [format_cell(c.unit, _clip(row.get(c.name), c.width)) for c in columns] for row in rows
    ]
    right_aligned = [
        _numeric(c.name, rows) or c.unit in ("usd", "usd_per_mtok") or c.name in right
        for c in columns
    ]
    out = console()
    labels = [label(column) for column in columns]
    shown = len(keys)
    table = _table(labels, cells, right_aligned, shown)
    if out.is_terminal or "COLUMNS" in os.environ:
        # too many columns for the terminal: drop some from the right rather than crush all
        while shown > 1 and _too_wide(table, out.width):
            shown -= 1
            table = _table(labels, cells, right_aligned, shown)
    _print_table(table, title)
    if shown < len(keys):
        hidden = ", ".join(keys[shown:])
        out.print(
            _text(f"not shown: {hidden} (a wider terminal, --format csv or json)", style="dim")
        )


def _too_wide(table: Table, width: int) -> bool:
    """Whether Rich, squeezing ``table`` into ``width`` columns, would still have to crop it."""
    from rich.console import Console

    buffer = io.StringIO()
    probe = Console(file=buffer, width=width, color_system=None)
    probe.print(table, crop=False)
    return any(len(line) > width for line in buffer.getvalue().splitlines())


def _table(
    labels: Sequence[str], cells: Sequence[Sequence[str]], right: Sequence[bool], shown: int
) -> Table:
    from rich.table import Table

    table = Table()
    for i, header in enumerate(labels[:shown]):
        # numbers hold no spaces, so they never wrap; their headers may, onto two lines
        widest = max((len(line[i]) for line in cells), default=0)
        table.add_column(
            header,
            justify="right" if right[i] else "left",
            min_width=None if right[i] else min(widest, TEXT_MIN_WIDTH),
        )
    for line in cells:
        table.add_row(*line[:shown])
    return table


def render_pairs(
    row: Row, fmt: str, *, columns: Sequence[Column], title: str | None = None
) -> None:
    """Print one record: a two-column metric/value table, or like ``render`` for JSON/CSV."""
    if fmt != "table":
        render([row], fmt, columns=columns, title=title)
        return
    from rich.table import Table

    table = Table(show_header=False)
    table.add_column("metric", style="bold")
    # numbers line up on the right; a column holding text reads better from the left
    numeric = all(_numeric(c.name, [row]) or row.get(c.name) is None for c in columns)
    table.add_column("value", justify="right" if numeric else "left")
    for column in columns:
        table.add_row(label(column), format_cell(column.unit, row.get(column.name)))
    _print_table(table, title)


def _text(text: str, style: str) -> Text:
    from rich.text import Text

    return Text(text, style=style)


def _print_table(table: Table, title: str | None) -> None:
    from rich.measure import Measurement

    out = console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # in a file or a pipe, as wide as the table wants: nothing squeezed or wrapped
        wanted = Measurement.get(out, out.options.update_width(10_000), table).maximum
        out.width = max(out.width, wanted)
    if title:
        # above the table rather than in it: a narrow table would wrap a long title
        out.print(_text(title, style="bold"))
    out.print(table)
