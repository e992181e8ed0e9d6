"""The ``llmtally`` command: reports, export, retention, prices, schema and the demo.

Every report takes ``--since/--until``, filters, ``--format table|json|csv`` and
``--db URL`` (default ``$LLMTALLY_DATABASE_URL`` or ``sqlite:///llmtally.db``).
"""

from __future__ import annotations

import click

from llmtally import __version__
from llmtally.cli.admin import db_group, status
from llmtally.cli.common import CliGroup
from llmtally.cli.data import cleanup, export
from llmtally.cli.demo import demo
from llmtally.cli.prices import prices
from llmtally.cli.reports import report_commands


@click.group(
    cls=CliGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="llmtally")
def cli() -> None:
    """llmtally: what your LLM calls cost, how fast they were, what failed.

    Start with `llmtally demo` to fill ./llmtally.db with a month of sample traffic.
    """


for command in (
    *report_commands(),
    export,
    cleanup,
    prices,
    db_group,
    status,
    demo,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``llmtally`` console script."""
    cli.main(prog_name="llmtally")
