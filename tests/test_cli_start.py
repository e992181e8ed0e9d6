"""The CLI starts fast: commands import what they need only when they run (issue 10).

Timing belongs in ``benchmarks/cli_start.py``; this test pins the cause, in a fresh
interpreter: building every command and printing ``--help`` loads none of the heavy
libraries, and a report loads the store but not the capture pipeline or price data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llmtally.store.base import open_store

HEAVY = ("sqlalchemy", "rich", "pydantic", "numpy", "genai_prices", "psycopg", "alembic")
PROBE = """
import json, sys
from click.testing import CliRunner
from llmtally.cli.main import cli
result = CliRunner().invoke(cli, sys.argv[1:])
assert result.exit_code == 0, result.output
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _loaded(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_loads_no_heavy_library() -> None:
    """``llmtally --help`` and a group's help build every command without those imports."""
    for args in (["--help"], ["costs", "--help"], ["costs", "breakdown", "--help"]):
        loaded = _loaded(*args)
        assert not loaded & set(HEAVY), (args, loaded & set(HEAVY))


def test_a_report_does_not_load_capture_or_prices(tmp_path: Path) -> None:
    """On a database at head a report opens the store and reads: the pipeline, Alembic,
    genai-prices and numpy (no histogram to merge) stay unloaded."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(db)
    store.migrate()
    store.close()
    loaded = _loaded("costs", "breakdown", "--db", db, "--format", "json")
    assert "sqlalchemy" in loaded
    assert not loaded & {"genai_prices", "alembic", "numpy", "pydantic"}, loaded
