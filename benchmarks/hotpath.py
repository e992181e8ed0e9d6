"""(a) Caller cost: ns per record_call / empty track() vs a bare queue put and posthog's capture."""

from __future__ import annotations

import queue
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import llmtally
from benchmarks._common import CALL, percentiles_ns, table

# a fuller call: the 8 fields of CALL plus 12 more (20 keyword arguments)
CALL20 = {
    **CALL,
    "trace_id": "t-123",
    "parent_id": "p-456",
    "model_version": "gpt-4o-2024-08-06",
    "routing_strategy": "primary",
    "finish_reason": "stop",
    "cache_read_tokens": 1024,
    "reasoning_tokens": 0,
    "ttft_ms": 210.5,
    "temperature": 0.2,
    "max_tokens": 512,
    "top_p": 0.9,
    "stream": False,
}


class _Sink(BaseHTTPRequestHandler):
    """Answers posthog's batch POSTs like its ingestion API would, instantly."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"status": 1}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def run(n: int) -> dict[str, Any]:
    """Measure and print; return the figures."""
    results: dict[str, tuple[float, float]] = {}
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    results["SimpleQueue.put(dict)"] = percentiles_ns(lambda: q.put(dict(CALL)), n)

    with tempfile.TemporaryDirectory() as tmp:
        tally = llmtally.Tally(
            f"sqlite:///{Path(tmp) / 'bench.db'}", spool_dir=Path(tmp) / "spool", queue_size=n * 3
        )
        tally.flush(30)  # store opened and migrated before timing
        results["llmtally record_call"] = percentiles_ns(lambda: tally.record_call(**CALL), n)
        results["llmtally record_call, 20 fields"] = percentiles_ns(
            lambda: tally.record_call(**CALL20), n
        )

        def empty_track() -> None:
            with tally.track(model="gpt-4o", provider="openai", feature="chat", actor="U1"):
                pass

        results["llmtally track (empty body)"] = percentiles_ns(empty_track, n)
        tally.close(120)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import posthog

        client = posthog.Posthog(
            "phc_benchmark_key",
            host=f"http://127.0.0.1:{server.server_port}",
            max_queue_size=n * 3,
        )
        props = {k: v for k, v in CALL.items() if k != "actor"}
        results["posthog capture"] = percentiles_ns(
            lambda: client.capture("llm_call", distinct_id="U1", properties=props), n
        )
        props20 = {k: v for k, v in CALL20.items() if k != "actor"}
        results["posthog capture, 20 properties"] = percentiles_ns(
            lambda: client.capture("llm_call", distinct_id="U1", properties=props20), n
        )
        client.shutdown()
    except ImportError:
        pass
    finally:
        server.shutdown()

    ours = results["llmtally record_call"][0]
    rows = []
    for name, (median, p99) in results.items():
        rows.append([name, f"{median:,.0f}", f"{p99:,.0f}", f"{median / ours:.2f}x"])
    table(
        f"(a) caller cost per event, {n:,} calls each (ns; ratio to record_call's median)",
        ["operation", "median ns", "p99 ns", "vs record_call"],
        rows,
    )
    return {name: {"median_ns": m, "p99_ns": p} for name, (m, p) in results.items()}
