"""Every report command prints exactly what it printed before the registry (issue 10).

``tests/golden/outputs-<engine>.json`` hold the JSON and CSV the CLI printed, before its commands
were generated from the report registry, for a fixed dataset (``tests/golden/``). The
dataset is replayed into a fresh SQLite file and PostgreSQL database and each command
must print the same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import regenerate


def test_every_report_prints_what_it_printed_before(db_url: str) -> None:
    """Byte-identical JSON and CSV for every golden command, on both engines."""
    engine = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    saved = dict(json.loads(regenerate.OUTPUTS[engine].read_text()))
    regenerate.load(db_url)
    now = regenerate.run_all(db_url)
    assert sorted(now) == sorted(saved)
    different = [name for name in saved if now[name] != saved[name]]
    assert not different, f"{len(different)} outputs changed, first: {different[0]}\n" + (
        f"--- before\n{saved[different[0]][:2000]}\n--- now\n{now[different[0]][:2000]}"
    )
