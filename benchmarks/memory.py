"""(c) Peak RSS during a burst of events while the store cannot keep up."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

from benchmarks._common import table

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import llmtally
    from pathlib import Path

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    tmp, n, queue_size, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    call = dict(model="gpt-4o", provider="openai", feature="chat", actor="U1",
                session_id="s1", output_tokens=300, latency_ms=812.5)
    if mode == "unbounded":
        # the reference: what holding the burst in memory would cost
        base = rss_mb()
        kept = [dict(call, input_tokens=i) for i in range(n)]
        print(json.dumps({"baseline_mb": base, "peak_mb": rss_mb()}))
        sys.exit(0)
    tally = llmtally.Tally(f"sqlite:///{tmp / 'burst.db'}", spool_dir=tmp / "spool",
                           queue_size=queue_size)
    tally.flush(60)
    base = peak = rss_mb()
    start = time.perf_counter()
    for i in range(n):
        tally.record_call(**call, input_tokens=i)
        if i % 5000 == 0:
            peak = max(peak, rss_mb())
    burst = time.perf_counter() - start
    while not tally.flush(timeout=1.0):
        peak = max(peak, rss_mb())
    stats = tally.stats()
    tally.close(60)
    peak = max(peak, rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)
    print(json.dumps({"baseline_mb": base, "peak_mb": peak, "burst_s": burst,
                      "written": stats["written"], "spooled": stats["spooled"],
                      "overflowed": stats["overflowed"]}))
    """
)


def _child(tmp: str, n: int, queue_size: int, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, tmp, str(n), str(queue_size), mode],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(n: int, queue_size: int = 10_000) -> dict[str, Any]:
    """Measure and print; return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        ours = _child(tmp, n, queue_size, "pipeline")
    with tempfile.TemporaryDirectory() as tmp:
        unbounded = _child(tmp, n, queue_size, "unbounded")
    ours_growth = ours["peak_mb"] - ours["baseline_mb"]
    held_growth = unbounded["peak_mb"] - unbounded["baseline_mb"]
    table(
        f"(c) memory during a {n:,}-event burst (queue_size={queue_size:,})",
        ["", "baseline MB", "peak MB", "growth MB"],
        [
            [
                "llmtally pipeline",
                f"{ours['baseline_mb']:.0f}",
                f"{ours['peak_mb']:.0f}",
                f"{ours_growth:.0f}",
            ],
            [
                "the burst held in a list",
                f"{unbounded['baseline_mb']:.0f}",
                f"{unbounded['peak_mb']:.0f}",
                f"{held_growth:.0f}",
            ],
        ],
    )
    print(
        f"burst recorded in {ours['burst_s']:.1f}s; written {ours['written']:,}; "
        f"read back from the spool {ours['spooled']:,}; journaled by callers {ours['overflowed']:,}"
    )
    return {"pipeline": ours, "unbounded_reference": unbounded}
