"""(e) Wrapper overhead: what ``llmtally.instrument`` adds to an OpenAI call, vs peers.

One run measures the same ``chat.completions.create`` call (plain, and streamed to the
end) through the unwrapped ``openai.OpenAI``, through ``llmtally.instrument(...)`` and
through posthog's ``posthog.ai.openai.OpenAI``, alternating call by call (the order
rotated) so that drift and background load hit every variant alike, against:

* ``http``: the fake provider of the tests (``tests/fakeprovider.py``), a real HTTP
  server on 127.0.0.1 in its own process (its threads must not share our GIL): the
  setting of the issue's ≤ 30 µs budget;
* ``in-process``: an ``httpx2.MockTransport`` returning the same bytes, without network
  or server jitter.

Every wrapper records into a real backend with its background sender running: llmtally
into SQLite, posthog and Langfuse into the fake server's sink endpoints. Two extra rows
split llmtally's figure: ``llmtally, no Tally`` runs the wrapper with a disabled Tally
(the wrapper's own work, no hand-off to the pipeline), and for streams
``openai+usage chunk`` is the unwrapped call asking for the usage chunk that llmtally
turns on (the SDK parsing one more chunk).

"added" is the median over rounds of (variant − unwrapped call of the same round), in
wall time (the budget's measure) and in the calling thread's CPU time, which does not
count waiting for a core: on a shared 2-core machine the wall figures move by tens of
µs from run to run, the CPU ones much less.

Langfuse's wrapper patches the ``openai`` module on import, so it runs in a child
process, alternating with the original (saved, unpatched) ``create`` of the same client.

Run: ``python benchmarks/run.py --only overhead`` (``--quick`` for fewer calls).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._common import console, table

ROOT = Path(__file__).resolve().parent.parent

MESSAGES = [{"role": "user", "content": "Say hi"}]
BUDGET_US = 30.0
_CHAT = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


def _sse_body(include_usage: bool) -> bytes:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    frames = [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in ("H", "i", "!")]
    frames.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        frames.append({**base, "choices": [], "usage": _CHAT["usage"]})
    text = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
    return text.encode()


def _mock_http_client() -> Any:
    """An httpx2 client answering like the provider, without a network."""
    import httpx2

    plain = json.dumps(_CHAT).encode()

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content or b"{}")
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            headers = {"content-type": "text/event-stream"}
            return httpx2.Response(200, headers=headers, content=_sse_body(usage))
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=plain)

    return httpx2.Client(transport=httpx2.MockTransport(handle))


def _calls(client: Any) -> dict[str, Callable[[], Any]]:
    create = client.chat.completions.create

    def plain() -> Any:
        return create(model="gpt-4o-mini", messages=MESSAGES)

    def stream() -> Any:
        for _ in create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass

    return {"plain": plain, "stream": stream}


Samples = dict[str, list[tuple[int, int]]]  # variant -> per round (wall ns, caller CPU ns)


def _measure(variants: dict[str, Callable[[], Any]], calls: int) -> Samples:
    """Time one call of each variant per round (order rotated), ``calls`` rounds.

    Wall time is the figure the budget is about; the calling thread's CPU time is kept
    too, as it does not count the time this process waits for a core on a busy machine.
    """
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    samples: Samples = {name: [] for name in variants}
    names = list(variants)
    for fn in variants.values():  # warm-up: connections, imports, lazy pydantic models
        for _ in range(30):
            fn()
    gc.collect()
    for i in range(calls):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            w0, c0 = wall(), cpu()
            variants[name]()
            c1, w1 = cpu(), wall()
            samples[name].append((w1 - w0, c1 - c0))
    return samples


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] / 1000.0


def _added(values: list[tuple[int, int]], base: list[tuple[int, int]], index: int) -> float:
    """Median over rounds of (variant − baseline) in the same round: drift cancels out."""
    return _median([v[index] - b[index] for v, b in zip(values, base, strict=True)])


@contextmanager
def _fake_provider() -> Iterator[str]:
    """The tests' fake provider in a child process; yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakeprovider.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def _options(kind: str, host: str) -> dict[str, Any]:
    extra = {"http_client": _mock_http_client()} if kind == "in-process" else {}
    return {"base_url": host + "/v1", "api_key": "x", "max_retries": 0, **extra}


def run(calls: int = 3000) -> dict[str, Any]:
    """Measure ``calls`` calls per variant and setting; print tables; return figures (µs)."""
    import openai

    import llmtally

    results: dict[str, Any] = {}
    with _fake_provider() as host, tempfile.TemporaryDirectory() as tmp:
        tally = llmtally.Tally(
            f"sqlite:///{Path(tmp) / 'overhead.db'}", spool_dir=Path(tmp) / "spool"
        )
        tally.flush(30)  # store opened and migrated before timing
        disabled = llmtally.Tally(None)
        posthog_client = _posthog(host)
        for kind in ("http", "in-process"):
            # one SDK client under the unwrapped and both llmtally rows: the differences
            # are the wrapper's alone (two identical clients differ by a few µs already)
            sdk = openai.OpenAI(**_options(kind, host))
            clients: dict[str, Any] = {
                "openai": sdk,
                "llmtally": llmtally.instrument(sdk, tally=tally, feature="bench"),
                "llmtally, no Tally": llmtally.instrument(sdk, tally=disabled, feature="bench"),
            }
            if posthog_client is not None:
                from posthog.ai.openai import OpenAI as PosthogOpenAI

                clients["posthog"] = PosthogOpenAI(
                    posthog_client=posthog_client, **_options(kind, host)
                )
            for call in ("plain", "stream"):
                variants = {name: _calls(c)[call] for name, c in clients.items()}
                if call == "stream":
                    variants["openai+usage chunk"] = _with_usage(sdk)
                samples = _measure(variants, calls)
                child = _langfuse_child(host, kind, call, calls)
                results[f"{kind}/{call}"] = _report(kind, call, samples, child, calls)
        tally.close(60)
        if posthog_client is not None:
            posthog_client.shutdown()
    return results


def _with_usage(client: Any) -> Callable[[], Any]:
    create = client.chat.completions.create

    def stream() -> None:
        options = {"include_usage": True}
        for _ in create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options=options
        ):
            pass

    return stream


def _posthog(host: str) -> Any:
    try:
        import posthog
    except ImportError:
        return None
    return posthog.Posthog("phc_benchmark_key", host=host, max_queue_size=1_000_000)


def _report(
    kind: str, call: str, samples: Samples, child: Samples | None, n: int
) -> dict[str, Any]:
    base = samples["openai"]
    entries = [(name, values, base) for name, values in samples.items()]
    if child:
        entries.append(("openai (2nd process)", child["baseline"], child["baseline"]))
        entries.append(("langfuse", child["langfuse"], child["baseline"]))
    rows, figures = [], {}
    for name, values, reference in entries:
        median = _median([w for w, _ in values])
        p99 = sorted(w for w, _ in values)[int(len(values) * 0.99)] / 1000.0
        added, added_cpu = _added(values, reference, 0), _added(values, reference, 1)
        ratio = median / _median([w for w, _ in reference])
        figures[name] = {
            "median_us": median,
            "p99_us": p99,
            "added_us": added,
            "added_cpu_us": added_cpu,
        }
        rows.append(
            [
                name,
                f"{median:,.1f}",
                f"{p99:,.1f}",
                f"{added:+,.1f}",
                f"{added_cpu:+,.1f}",
                f"{ratio:.3f}x",
            ]
        )
    table(
        f"(e) {call} chat.completions.create, {kind} fake provider, {n:,} rounds, µs. "
        "added: median over rounds of (variant − unwrapped openai call of the same round "
        "and process); CPU: the calling thread's; ratio: medians",
        ["client", "median", "p99", "added", "added CPU", "ratio"],
        rows,
    )
    ours = figures["llmtally"]["added_us"]
    if "openai+usage chunk" not in samples:
        verdict = "within" if ours <= BUDGET_US else "OVER"
        console.print(f"llmtally adds {ours:+.1f} µs: {verdict} the {BUDGET_US:.0f} µs budget")
        return figures
    # a stream's exact usage needs the usage chunk (the SDK parses one more chunk); what
    # llmtally adds beyond that unwrapped call is the wrapper's and the pipeline's share
    own = _added(samples["llmtally"], samples["openai+usage chunk"], 0)
    figures["llmtally"]["added_over_usage_chunk_us"] = own
    verdict = "within" if own <= BUDGET_US else "OVER"
    console.print(
        f"llmtally adds {ours:+.1f} µs, {own:+.1f} µs beyond the usage chunk it turns on: "
        f"{verdict} the {BUDGET_US:.0f} µs budget"
    )
    return figures


def _langfuse_child(host: str, kind: str, call: str, calls: int) -> Any:
    """Langfuse measured in its own process (its import patches openai globally)."""
    try:
        import langfuse  # noqa: F401
    except ImportError:
        return None
    env = {
        **os.environ,
        "LANGFUSE_PUBLIC_KEY": "pk-lf-bench",
        "LANGFUSE_SECRET_KEY": "sk-lf-bench",
        "LANGFUSE_BASE_URL": host,
        "LANGFUSE_HOST": host,
    }
    args = [sys.executable, "-m", "benchmarks.overhead", "--child", host, kind, call, str(calls)]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        console.print(f"[yellow]langfuse run failed:[/] {done.stderr.strip()[-500:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(host: str, kind: str, call: str, calls: int) -> None:
    """In the child: the original create vs Langfuse's patched one, alternating."""
    import openai
    from openai.resources.chat.completions import Completions

    original = Completions.create  # saved before langfuse wraps the class attribute
    from langfuse.openai import openai as lf_openai

    plain_client = openai.OpenAI(**_options(kind, host))
    wrapped = _calls(lf_openai.OpenAI(**_options(kind, host)))[call]
    resource = plain_client.chat.completions

    def baseline() -> None:
        if call == "plain":
            original(resource, model="gpt-4o-mini", messages=MESSAGES)
        else:
            for _ in original(resource, model="gpt-4o-mini", messages=MESSAGES, stream=True):
                pass

    samples = _measure({"baseline": baseline, "langfuse": wrapped}, calls)
    from langfuse import get_client

    get_client().flush()
    print(json.dumps(samples))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        run()
