"""A month of realistic events, fast, into a migrated SQLite file and PostgreSQL database.

``python benchmarks/gen.py [--events N] [--regenerate]``. Used by ``benchmarks/reports.py``.

Rows are built directly as tuples in ``COLUMN_NAMES`` order (no capture pipeline), in
parallel, one process per core, each process a run of clock hours written to a pickle
chunk file in time order. The chunks are then loaded with the raw drivers (SQLite
500-row ``INSERT``s, one transaction per 50k rows; PostgreSQL text ``COPY``) and the
rollups are built by ``llmtally.store.rollups.rebuild(engine)``. Generation, load and
rebuild are timed separately.

The traffic: 30 days ending at generation time, a working-hours and weekday rhythm
with slow growth, 6 features in 4 projects, 7 priced models over 3 providers, ~5k
actors (10% agents, Zipf-like activity), multi-turn sessions, one trace per human turn
and per agent run, 3–5% errors (and an Anthropic overload incident), log-normal
latencies, TTFT on streams, ~10% feedback events and ~5% tool calls (``parent_id`` = the
call). Costs use one linear price per model (from ``PriceBook``, at 100k tokens).

Databases are cached under ``benchmarks/results/reports-cache/n<N>/`` (the SQLite file
and ``meta.json``) and in the PostgreSQL database ``llmtally_bench_reports_n<N>``, kept
between runs. A cached database is migrated to head and its rollups rebuilt when the
rollup code or migrations changed since they were built; ``--regenerate`` starts over.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import pickle
import random
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import sqlalchemy as sa

from benchmarks._common import console, postgres_admin_url, table
from llmtally.capture.pricing import PriceBook
from llmtally.event import COLUMN_NAMES
from llmtally.store.base import ACTOR_COLUMNS, MODEL_COLUMNS, open_store

CACHE: Final = Path(__file__).parent / "results" / "reports-cache"
DAYS: Final = 30
SEED: Final = 20_261_122
CHUNK_HOURS: Final = 6
ROWS_PER_STATEMENT: Final = 500
ROWS_PER_TRANSACTION: Final = 50_000
SHARE_CALLS, SHARE_FEEDBACK, SHARE_TOOLS = 0.85, 0.10, 0.05

# the tuple literals below are written against this exact layout
_LAYOUT: Final = [
    "event_id",
    "occurred_at",
    "project",
    "kind",
    "name",
    "actor_id",
    "actor_type",
    "session_id",
    "trace_id",
    "parent_id",
    "feature",
    "provider",
    "model",
    "model_version",
    "routing_strategy",
    "status",
    "error_type",
    "error_message",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "total_tokens",
    "latency_ms",
    "ttft_ms",
    "stream",
    "stream_chunks",
    "temperature",
    "max_tokens",
    "top_p",
    "cost_usd",
    "usage_estimated",
    "rating",
    "regenerated",
    "edited",
    "quality_score",
    "comment",
    "prompt_hash",
    "prompt_length",
    "input_text",
    "output_text",
    "schema_version",
    "metadata",
]


@dataclass(frozen=True, slots=True)
class Model:
    """Speed and caching behaviour of one model."""

    provider: str
    name: str
    version: str | None
    first_token_ms: float
    ms_per_token: float
    cache: str  # openai (automatic), anthropic (explicit writes), gemini (implicit)
    reasoning: tuple[float, float] | None = None


MODELS: Final = (
    Model("openai", "gpt-4o", "gpt-4o-2024-08-06", 420, 13, "openai"),
    Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 280, 7, "openai"),
    Model("openai", "o4-mini", "o4-mini-2025-04-16", 900, 8, "openai", (0.55, 0.85)),
    Model("anthropic", "claude-sonnet-4-20250514", None, 650, 15, "anthropic"),
    Model("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", 330, 6, "anthropic"),
    Model("google", "gemini-2.5-flash", None, 380, 4, "gemini", (0.2, 0.6)),
    Model("google", "gemini-2.5-pro", None, 800, 9, "gemini", (0.4, 0.8)),
)
_M = {m.name: i for i, m in enumerate(MODELS)}


@dataclass(frozen=True, slots=True)
class Feature:
    """One product feature: models, conversation shape, sizes, feedback and tool habits."""

    name: str
    project: str
    weight: float  # share of sessions
    models: tuple[tuple[str, float], ...]
    turns: tuple[int, int]
    system: int  # stable prompt prefix (cacheable)
    input_median: int
    output_median: int
    stream_p: float
    feedback_p: float  # relative; scaled to ~10% of all events
    tools_per_call: float  # relative; scaled to ~5% of all events
    temperature: float
    max_tokens: int
    agent_p: float = 0.0
    tools: tuple[str, ...] = ()


# fmt: off
FEATURES: Final = (
    Feature("chat", "web", 0.24, (("gpt-4o", 0.4), ("claude-sonnet-4-20250514", 0.35),
            ("gpt-4o-mini", 0.25)), (2, 8), 1_600, 260, 280, 0.9, 0.16, 0.06, 0.7, 1_024,
            tools=("web_search", "lookup_account")),
    Feature("smart_reply", "support", 0.36, (("gpt-4o-mini", 0.7),
            ("claude-3-5-haiku-latest", 0.3)), (1, 1), 1_100, 350, 60, 0.0, 0.14, 0.0, 0.4, 256),
    Feature("summarize", "web", 0.14, (("gemini-2.5-flash", 0.6),
            ("claude-sonnet-4-20250514", 0.25), ("gemini-2.5-pro", 0.15)), (1, 2), 900, 5_500,
            320, 0.3, 0.08, 0.0, 0.2, 800),
    Feature("translate", "mobile", 0.14, (("gemini-2.5-flash", 0.6), ("gpt-4o-mini", 0.4)),
            (1, 1), 300, 380, 410, 0.0, 0.03, 0.0, 0.1, 1_500),
    Feature("agent_planner", "platform", 0.06, (("o4-mini", 0.6), ("gemini-2.5-pro", 0.4)),
            (3, 10), 2_400, 1_200, 260, 0.0, 0.0, 1.3, 1.0, 4_000, agent_p=1.0,
            tools=("search_tickets", "read_file", "run_sql", "open_pull_request")),
    Feature("code_review", "platform", 0.06, (("claude-sonnet-4-20250514", 0.6), ("gpt-4o", 0.4)),
            (1, 4), 3_000, 4_000, 600, 0.5, 0.1, 0.6, 0.3, 2_000, agent_p=0.5,
            tools=("read_file", "run_tests", "post_comment")),
)
# error_type, weight, latency range ms, message
ERRORS: Final = (
    ("RateLimitError", 0.4, (60, 400), "Error code: 429 - Rate limit reached for {model} on "
     "tokens per min (TPM): Limit 800000. Please try again in 1.2s."),
    ("APITimeoutError", 0.2, (30_000, 60_000), "Request timed out."),
    ("InternalServerError", 0.25, (250, 4_000), "Error code: 500 - The server had an error "
     "while processing your request."),
    ("BadRequestError", 0.15, (90, 600), "Error code: 400 - This model's maximum context "
     "length is 128000 tokens."),
)
OVERLOADED: Final = ("OverloadedError", (200, 2_000), "Error code: 529 - Overloaded")
TOOL_ERRORS: Final = (("ToolTimeout", "tool timed out after 30s"),
                      ("ToolError", "tool raised an exception"))
HOURLY: Final = (
    0.12, 0.08, 0.06, 0.06, 0.08, 0.14, 0.3, 0.55, 0.85, 1.0, 1.0, 0.95,
    0.8, 0.92, 1.0, 0.96, 0.85, 0.68, 0.5, 0.4, 0.34, 0.28, 0.22, 0.16,
)
# fmt: on
WEEKEND: Final = 0.35
HUMANS, AGENTS = 4_500, 500
COMMENTS: Final = ("too long", "wrong tone", "not what I asked", "great answer", "missed it")
_AGENT_NAMES: Final = ("planner", "triage", "digest", "reviewer", "migrator", "scheduler")
_ID_CHARS: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def _check_layout() -> None:
    if tuple(_LAYOUT) != COLUMN_NAMES:
        raise SystemExit(
            "benchmarks/gen.py builds rows for another events layout; update its tuples:\n"
            f"  expected {_LAYOUT}\n  got      {COLUMN_NAMES}"
        )


def _actors(seed: int) -> tuple[list[str], list[float], list[str], list[float]]:
    """Human and agent ids with Zipf-like cumulative activity weights."""
    rng = random.Random(seed)
    humans = ["U0" + "".join(rng.choices(_ID_CHARS, k=9)) for _ in range(HUMANS)]
    agents = [f"agent:{_AGENT_NAMES[i % len(_AGENT_NAMES)]}-{i:03d}" for i in range(AGENTS)]
    human_cum = list(itertools.accumulate(1 / (i + 1) ** 0.8 for i in range(HUMANS)))
    agent_cum = list(itertools.accumulate(1 / (i + 1) ** 0.6 for i in range(AGENTS)))
    return humans, human_cum, agents, agent_cum


def linear_prices() -> list[tuple[float, float, float, float]]:
    """(input, output, cache read, cache write) USD per token for every model."""
    book, at, n = PriceBook(), time.time(), 100_000
    out = []
    for m in MODELS:

        def per(**tokens: int) -> float:
            cost = book.cost(m.provider, m.name, at, **tokens)  # noqa: B023
            assert cost is not None, m.name  # noqa: B023
            return cost / n

        out.append(
            (
                per(input_tokens=n),
                per(output_tokens=n),
                per(input_tokens=n, cache_read_tokens=n),
                per(input_tokens=n, cache_write_tokens=n),
            )
        )
    return out


def _scales() -> tuple[float, float]:
    """Multipliers on the per-feature feedback / tool habits that give the target shares."""
    total = sum(f.weight * sum(f.turns) / 2 for f in FEATURES)
    feedback = sum(
        f.weight * sum(f.turns) / 2 / total * f.feedback_p * 0.96 * (1 - f.agent_p)
        for f in FEATURES
    )
    tools = sum(f.weight * sum(f.turns) / 2 / total * f.tools_per_call for f in FEATURES)
    return SHARE_FEEDBACK / SHARE_CALLS / feedback, SHARE_TOOLS / SHARE_CALLS / tools


# -- one chunk (runs in a worker process) ---------------------------------------------


def _chunk(job: tuple[Any, ...]) -> dict[str, Any]:
    """Generate the events of a run of clock hours; pickle them, time-ordered, to ``path``."""
    index, c0, hours, end_us, incident, seed, prices, path = job
    fb_scale, tool_scale = _scales()
    rng = random.Random(seed * 1_000_003 + index)
    rnd, gauss, bits, exp = rng.random, rng.gauss, rng.getrandbits, math.exp
    bisect_right = bisect.bisect_right
    humans, human_cum, agents, agent_cum = _actors(seed)
    h_total, a_total = human_cum[-1], agent_cum[-1]
    f_cum = list(itertools.accumulate(f.weight for f in FEATURES))
    f_total = f_cum[-1]
    e_cum = list(itertools.accumulate(e[1] for e in ERRORS))
    feature_models = [
        ([_M[name] for name, _ in f.models], list(itertools.accumulate(s for _, s in f.models)))
        for f in FEATURES
    ]
    messages = {(e[0], m.name): e[3].format(model=m.name) for e in ERRORS for m in MODELS}
    n_hours = (end_us // 3_600_000_000) + 2
    prefixes = [time.strftime("%Y-%m-%d %H:", time.gmtime(c0 + 3600 * h)) for h in range(n_hours)]
    c0_ms = c0 * 1000
    mid = "-7%03x-%04x-%08x" % (bits(12), 0x8000 | bits(14), bits(32))  # noqa: UP031
    counter = itertools.count(bits(16))

    def stamp(t_us: int) -> tuple[str, str]:
        """(UUIDv7-like event id, ISO text) for a time in µs since the chunk start."""
        h, r = divmod(t_us, 3_600_000_000)
        m, r = divmod(r, 60_000_000)
        s, us = divmod(r, 1_000_000)
        ms = c0_ms + t_us // 1000
        return (
            "%08x-%04x%s%04x" % (ms >> 16, ms & 0xFFFF, mid, next(counter) & 0xFFFF),  # noqa: UP031
            f"{prefixes[h]}{m:02d}:{s:02d}.{us:06d}",
        )

    rows: list[tuple[Any, ...]] = []
    add = rows.append
    seen: dict[str, str] = {}
    best_trace: tuple[int, str] = (0, "")
    calls = errors = feedback = tools = 0
    for lo, hi, target, err_p in hours:
        made = 0
        while made < target:
            fi = bisect_right(f_cum, rnd() * f_total)
            f = FEATURES[fi]
            project, fname = f.project, f.name
            if f.agent_p and rnd() < f.agent_p:
                actor, atype = agents[bisect_right(agent_cum, rnd() * a_total)], "agent"
            else:
                actor, atype = humans[bisect_right(human_cum, rnd() * h_total)], "human"
            seen[actor] = atype
            ids, cum = feature_models[fi]
            mi = ids[bisect_right(cum, rnd() * cum[-1])]
            model = MODELS[mi]
            mname, provider, version = model.name, model.provider, model.version
            p_in, p_out, p_read, p_write = prices[mi]
            turns = rng.randint(*f.turns)
            session = "%016x" % bits(64)  # noqa: UP031
            stream = rnd() < f.stream_p
            t = lo + int(rnd() * (hi - lo))
            trace = "%032x" % bits(128)  # noqa: UP031
            trace_events = 0
            system = f.system
            for turn in range(turns):
                if t >= end_us:
                    break
                if atype == "human" and turn:
                    trace = "%032x" % bits(128)  # noqa: UP031
                    trace_events = 0
                eid, ts = stamp(t)
                made += 1
                calls += 1
                trace_events += 1
                p_err = err_p
                overloaded = provider == "anthropic" and incident[0] <= t < incident[1]
                if overloaded:
                    p_err = 0.35
                if rnd() < p_err:
                    errors += 1
                    if overloaded and rnd() < 0.8:
                        etype, (l_lo, l_hi), emsg = OVERLOADED
                    else:
                        e = ERRORS[bisect_right(e_cum, rnd() * e_cum[-1])]
                        etype, (l_lo, l_hi), emsg = e[0], e[2], messages[e[0], mname]
                    latency = round(l_lo + (l_hi - l_lo) * rnd(), 1)
                    add(
                        (eid, ts, project, "llm_call", None, actor, atype, session, trace,
                         None, fname, provider, mname, version, None, "error", etype, emsg,
                         None, None, None, None, None, None, None, None, latency, None, stream,
                         None, f.temperature, f.max_tokens, None, 0.0, None, None, None, None,
                         None, None, None, None, None, None, 1, None)
                    )  # fmt: skip
                    t += int(exp(gauss(16.5, 1.0)))  # ~15 s to the retry / next turn
                    continue
                inp = system + turn * 320 + int(f.input_median * exp(gauss(0.0, 0.6)))
                out = 1 + int(f.output_median * exp(gauss(0.0, 0.7)))
                finish = "stop"
                if out >= f.max_tokens:
                    out, finish = f.max_tokens, "length"
                reasoning = None
                if model.reasoning is not None:
                    r_lo, r_hi = model.reasoning
                    reasoning = int(out * (r_lo + (r_hi - r_lo) * rnd()))
                    out += reasoning
                read = write = 0
                if model.cache == "openai":
                    if system >= 1024 and (turn or rnd() < 0.6):
                        read = system - system % 128
                elif model.cache == "anthropic":
                    if turn or rnd() < 0.7:
                        read = system
                    else:
                        write = system
                elif rnd() < 0.5:
                    read = system * 3 // 4
                first = model.first_token_ms * exp(gauss(0.0, 0.35)) * (1 + inp / 40_000)
                latency = round(first + out * model.ms_per_token * exp(gauss(0.0, 0.25)), 1)
                cost = p_in * (inp - read - write) + p_read * read + p_write * write + p_out * out
                add(
                    (eid, ts, project, "llm_call", None, actor, atype, session, trace, None,
                     fname, provider, mname, version, None, "success", None, None,
                     "tool_calls" if f.tools and atype == "agent" else finish, inp, out,
                     read, write, None, reasoning, inp + out, latency,
                     round(first, 1) if stream else None, stream,
                     out // 4 + 1 if stream else None, f.temperature, f.max_tokens, None, cost,
                     None, None, None, None, None, None, None, inp * 4, None, None, 1, None)
                )  # fmt: skip
                done = t + int(latency * 1000)
                expect = f.tools_per_call * tool_scale
                k = int(expect) + (rnd() < expect - int(expect))
                for j in range(k):
                    at = done + (j + 1) * 50_000
                    if at >= end_us:
                        break
                    tid, tts = stamp(at)
                    tl = round(150 * exp(gauss(0.0, 0.9)), 1)
                    tools += 1
                    trace_events += 1
                    name = f.tools[int(rnd() * len(f.tools))]
                    if rnd() < 0.04:
                        te, tm = TOOL_ERRORS[int(rnd() * 2)]
                        status = "error"
                    else:
                        te = tm = None
                        status = "success"
                    add(
                        (tid, tts, project, "tool_call", name, actor, atype, session, trace,
                         eid, fname, None, None, None, None, status, te, tm, None, None, None,
                         None, None, None, None, None, tl, None, None, None, None, None, None,
                         None, None, None, None, None, None, None, None, None, None, None, 1,
                         None)
                    )  # fmt: skip
                if atype == "human" and rnd() < f.feedback_p * fb_scale:
                    at = done + int(exp(gauss(16.8, 1.0)))  # ~20 s after the answer
                    if at < end_us:
                        fid, fts = stamp(at)
                        feedback += 1
                        trace_events += 1
                        r = rnd()
                        rating = "up" if r < 0.62 else "down" if r < 0.85 else None
                        regenerated = rnd() < (0.25 if latency > 3000 else 0.08)
                        edited = rnd() < 0.06
                        comment = COMMENTS[int(rnd() * 5)] if rnd() < 0.05 else None
                        add(
                            (fid, fts, project, "feedback", None, actor, atype, session, trace,
                             eid, fname, None, None, None, None, None, None, None, None, None,
                             None, None, None, None, None, None, None, None, None, None, None,
                             None, None, None, None, rating, regenerated, edited, None,
                             comment, None, None, None, None, 1, None)
                        )  # fmt: skip
                if trace_events > best_trace[0]:
                    best_trace = (trace_events, trace)
                gap = 3.0 if atype == "agent" else 45.0
                t = done + int(gap * 1_000_000 * exp(gauss(0.0, 0.8)))
    rows.sort(key=lambda row: row[1])
    with open(path, "wb") as fh:
        pickle.dump(rows, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {
        "index": index,
        "rows": len(rows),
        "llm_call": calls,
        "errors": errors,
        "feedback": feedback,
        "tool_call": tools,
        "actors": seen,
        "trace": best_trace,
        "last": rows[-1][1] if rows else None,
    }


# -- planning -------------------------------------------------------------------------


def _plan(n: int, end: float, seed: int, chunks: Path) -> list[tuple[Any, ...]]:
    """Jobs: runs of CHUNK_HOURS clock hours, each with its calls per hour."""
    end_s = math.floor(end)
    start = end_s - DAYS * 86_400
    first_hour = start - start % 3600
    hours = []
    for h0 in range(first_hour, end_s, 3600):
        lo, hi = max(h0, start), min(h0 + 3600, end_s)
        dt = datetime.fromtimestamp(h0, UTC)
        weight = HOURLY[dt.hour] * (WEEKEND if dt.weekday() >= 5 else 1.0)
        weight *= (1 + 0.3 * (h0 - start) / (end_s - start)) * (hi - lo) / 3600
        hours.append((h0, lo, hi, weight))
    total = sum(w for *_, w in hours)
    calls = round(n * SHARE_CALLS)
    rng = random.Random(seed)
    jobs, acc, given = [], 0.0, 0
    prices = linear_prices()
    # the incident: Anthropic overloaded for two and a half hours, 60% into the month
    mid = start + int(DAYS * 0.6) * 86_400
    incident_s = (mid - mid % 86_400 + 14 * 3600, mid - mid % 86_400 + 14 * 3600 + 9_000)
    for i in range(0, len(hours), CHUNK_HOURS):
        c0 = hours[i][0]
        run = []
        for _, lo, hi, w in hours[i : i + CHUNK_HOURS]:
            acc += calls * w / total
            target = round(acc) - given
            given += target
            err_p = 0.03 + 0.02 * rng.random()  # 3–5% per hour
            run.append(((lo - c0) * 1_000_000, (hi - c0) * 1_000_000, target, err_p))
        chunk_end = min(c0 + CHUNK_HOURS * 3600, end_s)
        incident = tuple((x - c0) * 1_000_000 for x in incident_s)
        jobs.append(
            (
                i // CHUNK_HOURS,
                c0,
                run,
                (chunk_end - c0) * 1_000_000,
                incident,
                seed,
                prices,
                str(chunks / f"chunk-{i // CHUNK_HOURS:05d}.pkl"),
            )
        )
    return jobs


def generate(n: int, end: float, seed: int, chunks: Path, workers: int) -> dict[str, Any]:
    """Write the chunk files; return counts and timing."""
    _check_layout()
    chunks.mkdir(parents=True, exist_ok=True)
    jobs = _plan(n, end, seed, chunks)
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = sorted(pool.imap_unordered(_chunk, jobs), key=lambda r: r["index"])
    elapsed = time.perf_counter() - start
    actors: dict[str, str] = {}
    for r in results:
        actors.update(r.pop("actors"))
    kinds = {k: sum(r[k] for r in results) for k in ("llm_call", "feedback", "tool_call")}
    rows = sum(r["rows"] for r in results)
    # the richest trace of the last full day: what `trace` is timed on
    trace = max((r["trace"] for r in results[-5:-1] or results), key=lambda t: t[0])
    return {
        "events": rows,
        "by_kind": kinds,
        "errors": sum(r["errors"] for r in results),
        "actors": actors,
        "sample_trace": trace[1],
        "sample_trace_events": trace[0],
        "chunks": [j[-1] for j in jobs],
        "generate_s": elapsed,
    }


# -- loading --------------------------------------------------------------------------


def _read(path: str) -> list[tuple[Any, ...]]:
    with open(path, "rb") as fh:
        rows: list[tuple[Any, ...]] = pickle.load(fh)
    return rows


def _registry(meta: dict[str, Any], ts: Any) -> tuple[list[tuple[Any, ...]], list[tuple]]:
    """actors and models rows (first/last seen: the dataset's span)."""
    first, last = ts(meta["start"]), ts(meta["end"])
    actors = [
        (atype, actor, None, None, None, None, first, last)
        for actor, atype in sorted(meta["actors"].items())
    ]
    book = PriceBook()
    models = []
    for m in MODELS:
        info = book.info(m.provider, m.name, meta["end"])
        models.append(
            (
                m.provider,
                m.name,
                info.source,
                info.matched_model,
                info.input_per_mtok,
                info.output_per_mtok,
                info.cache_read_per_mtok,
                info.cache_write_per_mtok,
                info.source == "unknown",
                first,
                last,
            )
        )
    return actors, models


def _sqlite_ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(path: Path, chunks: list[str], meta: dict[str, Any]) -> float:
    """Insert every chunk into a migrated SQLite file; seconds taken."""
    cols = ", ".join(COLUMN_NAMES)
    row = "({})".format(", ".join("?" * len(COLUMN_NAMES)))
    sql = f"INSERT INTO events ({cols}) VALUES " + ", ".join([row] * ROWS_PER_STATEMENT)
    flat = itertools.chain.from_iterable
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -2097152")  # 2 GB while loading
    start = time.perf_counter()
    per = ROWS_PER_STATEMENT
    for chunk in chunks:
        rows = _read(chunk)
        for t0 in range(0, len(rows), ROWS_PER_TRANSACTION):
            part = rows[t0 : t0 + ROWS_PER_TRANSACTION]
            full = len(part) - len(part) % per
            conn.execute("BEGIN")
            if full:
                conn.executemany(sql, [list(flat(part[i : i + per])) for i in range(0, full, per)])
            if full < len(part):
                rest = part[full:]
                conn.execute(
                    f"INSERT INTO events ({cols}) VALUES " + ", ".join([row] * len(rest)),
                    list(flat(rest)),
                )
            conn.execute("COMMIT")
    actors, models = _registry(meta, _sqlite_ts)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO actors ({}) VALUES ({})".format(
            ", ".join(ACTOR_COLUMNS), ", ".join("?" * len(ACTOR_COLUMNS))
        ),
        actors,
    )
    conn.executemany(
        "INSERT OR REPLACE INTO models ({}) VALUES ({})".format(
            ", ".join(MODEL_COLUMNS), ", ".join("?" * len(MODEL_COLUMNS))
        ),
        models,
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def load_postgres(url: str, chunks: list[str], meta: dict[str, Any]) -> tuple[float, float]:
    """COPY every chunk into a migrated database, then VACUUM ANALYZE; (load s, analyze s)."""
    copy_sql = "COPY events ({}) FROM STDIN".format(", ".join(COLUMN_NAMES))
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")  # occurred_at arrives as UTC text
        conn.execute("SET synchronous_commit = off")
        start = time.perf_counter()
        for chunk in chunks:
            rows = _read(chunk)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
            conn.commit()
        actors, models = _registry(meta, lambda e: datetime.fromtimestamp(e, UTC))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO actors ({}) VALUES ({})".format(
                    ", ".join(ACTOR_COLUMNS), ", ".join(["%s"] * len(ACTOR_COLUMNS))
                ),
                actors,
            )
            cur.execute("DELETE FROM models")
            cur.executemany(
                "INSERT INTO models ({}) VALUES ({})".format(
                    ", ".join(MODEL_COLUMNS), ", ".join(["%s"] * len(MODEL_COLUMNS))
                ),
                models,
            )
        conn.commit()
        loaded = time.perf_counter() - start
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        # what autovacuum would do after a bulk load, done now so runs are comparable
        conn.execute("VACUUM ANALYZE")
    return loaded, time.perf_counter() - start


# -- the cache ------------------------------------------------------------------------


def _fingerprint() -> str:
    """Changes when the rollup code or the migrations change: rollups must be rebuilt."""
    src = Path(__file__).resolve().parent.parent / "src" / "llmtally" / "store"
    digest = hashlib.sha256()
    code = [src / name for name in ("rollups.py", "actor_rollups.py", "feedback.py")]
    for path in sorted([*code, *(src / "migrations" / "versions").glob("*.py")]):
        if path.exists():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def rollups_available() -> bool:
    """Whether ``llmtally.store.rollups.rebuild`` exists yet."""
    try:
        from llmtally.store import rollups
    except ImportError:
        return False
    return hasattr(rollups, "rebuild")


def _rebuild(url: str) -> tuple[float, float, list[str]]:
    """Migrate to head, reconcile, rebuild the rollups; (migrate s, rebuild s, schema notes)."""
    from llmtally.store import rollups

    store = open_store(url)
    try:
        start = time.perf_counter()
        applied = store.migrate()
        with store.engine.begin() as conn:
            notes = _reconcile(conn)
        migrated = time.perf_counter() - start
        if applied and not notes:
            # the migrations that add derived tables roll the whole table up themselves
            return migrated, 0.0, [f"migrated to {applied[-1]} (rolled up there)"]
        start = time.perf_counter()
        rollups.rebuild(store.engine)
        return migrated, time.perf_counter() - start, notes
    finally:
        store.close()


def _reconcile(conn: sa.Connection) -> list[str]:
    """Bring a cached database to the schema a fresh migration gives today.

    A migration edited in place (same revision) is not re-applied to a database that
    has it, so compare with the metadata: create missing tables and indexes, drop
    indexes no longer declared, recreate rollup tables whose columns changed (they are
    derived data, rebuilt next).
    """
    from llmtally.store import schema

    notes = []
    inspector = sa.inspect(conn)
    for tbl in schema.metadata.sorted_tables:
        if not inspector.has_table(tbl.name):
            tbl.create(conn)
            notes.append(f"created {tbl.name}")
            continue
        have = {c["name"] for c in inspector.get_columns(tbl.name)}
        if have != set(tbl.c.keys()):
            if not tbl.name.startswith("rollup_"):
                raise SystemExit(f"{tbl.name} has other columns: run with --regenerate")
            tbl.drop(conn)
            tbl.create(conn)
            notes.append(f"recreated {tbl.name}")
            continue
        existing = {i["name"] for i in inspector.get_indexes(tbl.name)}
        for index in tbl.indexes:
            if index.name not in existing:
                index.create(conn)
                notes.append(f"created index {index.name}")
        for name in existing - {i.name for i in tbl.indexes}:
            if name and name.startswith("ix_"):
                conn.execute(sa.text(f"DROP INDEX {name}"))
                notes.append(f"dropped index {name}")
    return notes


def _migrate(url: str) -> None:
    store = open_store(url)
    try:
        store.migrate()
    finally:
        store.close()


@dataclass
class Dataset:
    """A generated month in each available engine."""

    n: int
    meta: dict[str, Any]
    urls: dict[str, str]  # engine -> URL (sqlite, postgresql)

    @property
    def end(self) -> datetime:
        """When the data ends (generation time)."""
        return datetime.fromtimestamp(self.meta["end"], UTC)


def pg_database(n: int) -> str:
    """The cached PostgreSQL database for ``n`` events."""
    return f"llmtally_bench_reports_n{n}"


def _pg_exists(admin: str, name: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def _pg_recreate(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    return f"{base}/{name}"


def ensure(
    n: int,
    *,
    regenerate: bool = False,
    rebuild: bool = False,
    postgres: bool = True,
    workers: int | None = None,
) -> Dataset:
    """The cached dataset for ``n`` events, generated, loaded and rolled up as needed."""
    _check_layout()
    workers = workers or max(1, os.cpu_count() or 1)
    folder = CACHE / f"n{n}"
    meta_path = folder / "meta.json"
    admin = postgres_admin_url() if postgres else None
    if admin is None and postgres:
        console.print("PostgreSQL: no server answers; set LLMTALLY_BENCH_POSTGRES_URL")
    meta: dict[str, Any] = {}
    if meta_path.exists() and not regenerate:
        meta = json.loads(meta_path.read_text())
        if meta.get("columns") != list(COLUMN_NAMES) or meta.get("version") != 1:
            console.print("cached dataset has another events layout: regenerating")
            meta = {}
    if not meta:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        end = time.time()
        meta = {
            "version": 1,
            "n": n,
            "seed": SEED,
            "start": math.floor(end) - DAYS * 86_400,
            "end": math.floor(end),
            "columns": list(COLUMN_NAMES),
            "engines": {},
        }
    engines: dict[str, dict[str, Any]] = meta["engines"]
    if regenerate or meta.get("events") is None:
        engines.clear()
    urls = {"sqlite": f"sqlite:///{folder / 'events.db'}"}
    if admin is not None:
        base, _, _ = admin.rpartition("/")
        urls["postgresql"] = f"{base}/{pg_database(n)}"
        if "postgresql" in engines and not _pg_exists(admin, pg_database(n)):
            del engines["postgresql"]
    if "sqlite" in engines and not (folder / "events.db").exists():
        del engines["sqlite"]
    missing = [e for e in urls if e not in engines]
    chunks_dir = folder / "chunks"
    phases: list[list[Any]] = []
    if missing:
        info = generate(n, meta["end"], meta["seed"], chunks_dir, workers)
        chunks = info.pop("chunks")
        meta.update({k: v for k, v in info.items()})
        meta["generate_events_per_s"] = info["events"] / info["generate_s"]
        phases.append(["generate", f"{workers} processes", f"{info['generate_s']:.1f}",
                       f"{info['events'] / info['generate_s']:,.0f}"])  # fmt: skip
        for engine in missing:
            if engine == "sqlite":
                path = folder / "events.db"
                for suffix in ("", "-wal", "-shm", ".migrate-lock"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                _migrate(urls["sqlite"])
                seconds = load_sqlite(path, chunks, meta)
                engines["sqlite"] = {"load_s": seconds}
                phases.append(["load SQLite", "500-row INSERTs", f"{seconds:.1f}",
                               f"{meta['events'] / seconds:,.0f}"])  # fmt: skip
            else:
                assert admin is not None
                url = _pg_recreate(admin, pg_database(n))
                _migrate(url)
                seconds, analyze = load_postgres(url, chunks, meta)
                engines["postgresql"] = {"load_s": seconds, "analyze_s": analyze}
                phases.append(["load PostgreSQL", "COPY", f"{seconds:.1f}",
                               f"{meta['events'] / seconds:,.0f}"])  # fmt: skip
                phases.append(["VACUUM ANALYZE", "PostgreSQL", f"{analyze:.1f}",
                               f"{meta['events'] / analyze:,.0f}"])  # fmt: skip
            meta_path.write_text(json.dumps(meta, indent=1))
        shutil.rmtree(chunks_dir, ignore_errors=True)
    fingerprint = _fingerprint()
    if rollups_available():
        for engine, url in urls.items():
            state = engines[engine]
            if rebuild or state.get("rollups") != fingerprint:
                migrate_s, seconds, notes = _rebuild(url)
                if notes:
                    console.print(f"{engine}: schema brought to today's migrations: {notes}")
                state.update(rollups=fingerprint, rebuild_s=seconds, migrate_s=migrate_s)
                label = "SQLite" if engine == "sqlite" else "PostgreSQL"
                phases.append([f"rebuild {label}", "rollups.rebuild" if seconds else "migration",
                               f"{seconds or migrate_s:.1f}",
                               f"{meta['events'] / (seconds or migrate_s):,.0f}"])  # fmt: skip
                meta_path.write_text(json.dumps(meta, indent=1))
    else:
        console.print("[yellow]llmtally.store.rollups.rebuild does not exist yet: no rollups")
        for state in engines.values():
            state.pop("rollups", None)
    meta_path.write_text(json.dumps(meta, indent=1))
    if phases:
        table(
            f"dataset n={n:,}: {meta['events']:,} events "
            f"({', '.join(f'{k} {v:,}' for k, v in meta['by_kind'].items())}, "
            f"{meta['errors']:,} call errors, {len(meta['actors']):,} actors)",
            ["phase", "how", "s", "events/s"],
            phases,
        )
    else:
        console.print(f"dataset n={n:,}: cached ({meta['events']:,} events in {folder})")
    return Dataset(n=n, meta=meta, urls=urls)


def main() -> None:
    """Generate (or refresh) the cached dataset."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="rebuild rollups even if current")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    ensure(
        args.events,
        regenerate=args.regenerate,
        rebuild=args.rebuild,
        postgres=not args.no_postgres,
    )


if __name__ == "__main__":
    main()
