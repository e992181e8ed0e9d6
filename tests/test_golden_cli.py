"""Every report command prints exactly what it printed before the registry (issue 10).

``tests/golden/outputs-<engine>.json`` hold the JSON and CSV the CLI printed, before its commands
were generated from the report registry, for a fixed dataset (``tests/golden/``). The
dataset is replayed into a fresh SQLite file and PostgreSQL database and each command
must print the same bytes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import regenerate

# a float literal: rollup sums are added batch by batch, and where the writer cuts batches
# depends on timing, so the last binary digit of a float sum may differ between loads
_FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")


def _floats_to_12_digits(text: str) -> str:
    return _FLOAT.sub(lambda m: f"{float(m.group()):.12g}", text)


def test_every_report_prints_what_it_printed_before(db_url: str) -> None:
    """Byte-identical JSON and CSV for every golden command, on both engines (floats to
    12 significant digits: their last bits follow the write batching, not the CLI)."""
    engine = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    saved = dict(json.loads(regenerate.OUTPUTS[engine].read_text()))
    regenerate.load(db_url)
    now = regenerate.run_all(db_url)
    assert sorted(now) == sorted(saved)
    different = [
        name
        for name in saved
        if _floats_to_12_digits(now[name]) != _floats_to_12_digits(saved[name])
    ]
    assert not different, f"{len(different)} outputs changed, first: {different[0]}\n" + (
        f"--- before\n{saved[different[0]][:2000]}\n--- now\n{now[different[0]][:2000]}"
    )
