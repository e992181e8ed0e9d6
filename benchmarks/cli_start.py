"""(h) CLI start: wall time of fresh ``llmtally`` processes, against ``python -c pass``.

``python benchmarks/run.py --only cli``. Each command runs ``runs`` times in a new
process (the venv's console script, stdout to /dev/null); the median and the best are
reported with the interpreter's own start as the baseline measured in the same run.
Targets (issue 10): ``llmtally --help`` ≤ 150 ms, a report on a small database ≤ 300 ms.
The database is a SQLite file at head holding 2,000 recorded calls.

The processes may write bytecode (into a temporary ``PYTHONPYCACHEPREFIX``), as an
installed package has: with ``PYTHONDONTWRITEBYTECODE`` set, as on this project's
machines, every start would compile llmtally's modules again (an editable install has
no ``.pyc`` of its own), which is not what a user's ``pip install`` pays.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import console, table

TARGETS_MS = {"--help": 150.0, "report": 300.0}


def _script() -> str:
    """The ``llmtally`` console script next to this interpreter."""
    return str(Path(sys.executable).with_name("llmtally"))


def _time(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Median and best wall time in ms of ``argv`` in a fresh process."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env
        )
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times)


def _small_database(path: Path) -> str:
    import llmtally

    url = f"sqlite:///{path}"
    tally = llmtally.Tally(url, project="bench", spool_dir=path.parent / "spool")
    for i in range(2_000):
        tally.record_call(
            model=("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")[i % 3],
            provider="openai" if i % 3 < 2 else "anthropic",
            feature=("chat", "search", "summarize")[i % 3],
            actor=f"U{i % 50}",
            input_tokens=800 + i % 400,
            output_tokens=120 + i % 80,
            latency_ms=300.0 + i % 900,
        )
    assert tally.flush(timeout=60)
    tally.close()
    return url


def run(runs: int = 15) -> dict[str, Any]:
    """Time the commands; print and return the figures."""
    script = _script()
    with tempfile.TemporaryDirectory() as tmp:
        db = _small_database(Path(tmp) / "small.db")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        commands: list[tuple[str, str, list[str]]] = [
            ("python -c pass", "", [sys.executable, "-c", "pass"]),
            ("llmtally --help", "--help", [script, "--help"]),
            ("llmtally costs --help", "--help", [script, "costs", "--help"]),
            ("llmtally overview", "report", [script, "overview", "--db", db]),
            (
                "llmtally costs breakdown --format json",
                "report",
                [script, "costs", "breakdown", "--db", db, "--format", "json"],
            ),
            ("llmtally requests list", "report", [script, "requests", "list", "--db", db]),
        ]
        for _, _, argv in commands:  # compile once, warm the OS caches of the venv's files
            _time(argv, 1, env)
        rows, out = [], {}
        baseline = None
        for name, kind, argv in commands:
            median, best = _time(argv, runs, env)
            baseline = baseline if baseline is not None else median
            target = TARGETS_MS.get(kind)
            verdict = "" if target is None else ("ok" if median <= target else "MISS")
            out[name] = {"median_ms": round(median, 1), "best_ms": round(best, 1)}
            rows.append([name, f"{median:.0f}", f"{best:.0f}", f"{median - baseline:.0f}",
                         f"{target:.0f}" if target else "", verdict])  # fmt: skip
    table(
        f"(h) CLI start, fresh process, {runs} runs each (ms)",
        ["command", "median", "best", "over python", "target", ""],
        rows,
    )
    console.print()
    return out


if __name__ == "__main__":
    run()
