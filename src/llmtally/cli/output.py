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
from typing import Any, Final, TypeVar

import click
import orjson
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from llmtally.query.export import csv_value, iso_utc, json_value

FORMATS: Final = ("table", "json", "csv")
NONE: Final = "—"
TEXT_MIN_WIDTH: Final = 24
F = TypeVar("F", bound=Callable[..., Any])

Row = Mapping[str, Any]


def output_options(fn: F) -> F:
    """Give a command ``--format table|json|csv`` (passed as ``fmt``)."""
    option = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format: a table for people, JSON (a list of objects) or CSV for machines.",
    )
    return option(fn)


def console(*, stderr: bool = False) -> Console:
    """A Rich console on click's current stdout/stderr; wide when writing to a file or pipe."""
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


def is_money(key: str, money_keys: Collection[str] = ()) -> bool:
    """Whether a column holds USD."""
    return key.endswith("_usd") or key in money_keys


def _is_share(key: str) -> bool:
    return key.endswith(("_share", "_rate", "_ratio")) or key == "share"


def format_cell(key: str, value: Any, money_keys: Collection[str] = ()) -> str:
    """One value as shown in a table, chosen by the column's name and the value's type."""
    if is_money(key, money_keys):
        return format_money(value)
    if value is None:
        return NONE
    if key.endswith("_change") and isinstance(value, (int, float)):
        return format_change(float(value))
    if _is_share(key) and isinstance(value, (int, float)):
        return format_share(float(value))
    if key.endswith("_ms") and isinstance(value, (int, float)):
        return format_ms(float(value))
    if key.endswith("_s") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_duration(float(value))
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


def label(key: str) -> str:
    """Column header for a key: ``cost_usd`` → ``cost ($)``, ``p50_latency_ms`` → ``… (ms)``."""
    units = (("_usd", " ($)"), ("_ms", " (ms)"), ("_per_mtok", " ($/M tok)"), ("_s", ""))
    for suffix, unit in units:
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " ") + unit
    return key.replace("_", " ")


def _keys(rows: Sequence[Row], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def _numeric(key: str, rows: Sequence[Row]) -> bool:
    values = [row.get(key) for row in rows if row.get(key) is not None]
    return bool(values) and all(
        isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in values
    )


def render(
    rows: Sequence[Row],
    fmt: str,
    title: str | None = None,
    money_keys: Collection[str] = (),
    columns: Sequence[str] | None = None,
    right: Collection[str] = (),
) -> None:
    """Print ``rows`` as a table, JSON or CSV on stdout; ``columns`` fixes the CSV/table header.

    ``right`` names text columns to align right in a table (numbers already are).
    """
    keys = _keys(rows, columns)
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
    cells = [[format_cell(key, row.get(key), money_keys) for key in keys] for row in rows]
    right_aligned = [
        _numeric(key, rows) or is_money(key, money_keys) or key in right for key in keys
    ]
    out = console()
    shown = len(keys)
    table = _table(keys, cells, right_aligned, shown)
    if out.is_terminal or "COLUMNS" in os.environ:
        # too many columns for the terminal: drop some from the right rather than crush all
        while shown > 1 and _too_wide(table, out.width):
            shown -= 1
            table = _table(keys, cells, right_aligned, shown)
    _print_table(table, title)
    if shown < len(keys):
        hidden = ", ".join(keys[shown:])
        out.print(
            Text(f"not shown: {hidden} (a wider terminal, --format csv or json)", style="dim")
        )


def _too_wide(table: Table, width: int) -> bool:
    """Whether Rich, squeezing ``table`` into ``width`` columns, would still have to crop it."""
    buffer = io.StringIO()
    probe = Console(file=buffer, width=width, color_system=None)
    probe.print(table, crop=False)
    return any(len(line) > width for line in buffer.getvalue().splitlines())


def _table(
    keys: Sequence[str], cells: Sequence[Sequence[str]], right: Sequence[bool], shown: int
) -> Table:
    table = Table()
    for i, key in enumerate(keys[:shown]):
        # numbers hold no spaces, so they never wrap; their headers may, onto two lines
        widest = max((len(line[i]) for line in cells), default=0)
        table.add_column(
            label(key),
            justify="right" if right[i] else "left",
            min_width=None if right[i] else min(widest, TEXT_MIN_WIDTH),
        )
    for line in cells:
        table.add_row(*line[:shown])
    return table


def render_pairs(
    row: Row, fmt: str, title: str | None = None, money_keys: Collection[str] = ()
) -> None:
    """Print one record: a two-column metric/value table, or like ``render`` for JSON/CSV."""
    if fmt != "table":
        render([row], fmt, title, money_keys)
        return
    table = Table(show_header=False)
    table.add_column("metric", style="bold")
    # numbers line up on the right; a column holding text reads better from the left
    numeric = all(_numeric(key, [row]) or row.get(key) is None for key in row)
    table.add_column("value", justify="right" if numeric else "left")
    for key, value in row.items():
        table.add_row(label(key), format_cell(key, value, money_keys))
    _print_table(table, title)


def _print_table(table: Table, title: str | None) -> None:
    out = console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # in a file or a pipe, as wide as the table wants: nothing squeezed or wrapped
        wanted = Measurement.get(out, out.options.update_width(10_000), table).maximum
        out.width = max(out.width, wanted)
    if title:
        # above the table rather than in it: a narrow table would wrap a long title
        out.print(Text(title, style="bold"))
    out.print(table)
