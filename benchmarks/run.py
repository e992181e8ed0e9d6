"""Run every benchmark: ``python benchmarks/run.py [--quick] [--only hotpath,reports,…]``.

Sections: hotpath, throughput, backfill, memory, reports, overhead, tail, cli (all by default).

Figures go to stdout and to ``benchmarks/results/latest.json`` (the reports section also
to ``benchmarks/results/reports.json``). Set ``LLMTALLY_BENCH_POSTGRES_URL`` for
PostgreSQL (default postgresql://postgres@127.0.0.1:5432). The reports section works on
a generated dataset of ``--events`` events (default 10,000,000; 200,000 with
``--quick``), cached under ``benchmarks/results/reports-cache/`` and in the PostgreSQL
database ``llmtally_bench_reports_n<N>``; ``--regenerate`` builds it again.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import backfill, cli_start, hotpath, memory, overhead, reports, tail, throughput
from benchmarks._common import console


def main() -> None:
    """Parse arguments and run the chosen sections."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only", default="hotpath,throughput,backfill,memory,reports,overhead,tail,cli"
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events in the reports dataset (default 10,000,000; 200,000 with --quick)",
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="rebuild the cached reports dataset"
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    results: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if "hotpath" in sections:
        results["hotpath"] = hotpath.run(50_000 if args.quick else 200_000)
    if "throughput" in sections:
        results["throughput"] = throughput.run(50_000 if args.quick else 200_000)
    if "backfill" in sections:
        results["backfill"] = backfill.run(20_000 if args.quick else 50_000)
    if "memory" in sections:
        results["memory"] = memory.run(200_000 if args.quick else 1_000_000)
    if "reports" in sections:
        events = args.events or (200_000 if args.quick else 10_000_000)
        results["reports"] = reports.run(events, regenerate=args.regenerate)
    if "overhead" in sections:
        results["overhead"] = overhead.run(calls=500 if args.quick else 3000)
    if "cli" in sections:
        results["cli"] = cli_start.run(5 if args.quick else 15)
    if "tail" in sections:
        results["tail"] = tail.run(50_000 if args.quick else 200_000)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results written to {out / 'latest.json'}")


if __name__ == "__main__":
    main()
