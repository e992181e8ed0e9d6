"""An independent oracle for the query layer (``llmtally.query.reports``).

Random datasets (Hypothesis strategies) are recorded through the real capture pipeline,
read back as raw rows with plain SQLAlchemy (``dbutil.rows``), and every report is
recomputed here in Python from those rows, following docs of the reports contract only:
nothing in this module imports or mirrors ``llmtally.query``.

Expected values that the contract leaves open are sentinels: ``NO_COST`` (a cost sum over
no priced call: 0 or None) and ``UNDEFINED`` (a ratio over nothing: 0 or None).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

# --------------------------------------------------------------------------- constants

REF = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # a Wednesday, noon UTC
US = 1_000_000
DAY_US = 86_400 * US
HOUR_US = 3_600 * US

MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("google", "gemini-2.5-flash"),
    ("acme", "acme-unknown-model"),  # no price: cost_usd NULL
)
PROJECTS = ("alpha", "beta", "gamma")
FEATURES = ("chat", "search", "summarize", None)
ACTORS = (
    ("u1", "human"),
    ("u2", "human"),
    ("u3", "human"),
    ("agent-a", "agent"),
    ("agent-b", "agent"),
    ("agent-c", "agent"),
    (None, None),
)
TRACES = ("trace-a", "trace-b", "trace-c", "trace-d", "trace-e", None)
ERRORS = {
    "RateLimitError": ("rate limit exceeded, retry later", "too many requests for this key"),
    "APITimeoutError": ("request timed out", "upstream read timed out"),
    "BadRequestError": ("invalid request: bad schema", "context window exceeded"),
}
TOOLS = ("web_search", "sql_query", "calculator")
PRODUCT_EVENTS = ("new_conversation", "thumbs_up", "user_joined")

# windows (since, until): whole or binary-fraction seconds, exact as float Unix seconds
WINDOWS: dict[str, tuple[datetime | None, datetime | None]] = {
    "all": (None, None),
    "w1": (
        REF - timedelta(days=3, hours=5, minutes=17),
        REF + timedelta(days=2, hours=7, minutes=41, seconds=13.5),
    ),
    "w2": (
        REF - timedelta(hours=26, minutes=43, seconds=7.25),
        REF + timedelta(hours=5, minutes=12),
    ),
    "days": (REF - timedelta(days=2, hours=12), REF + timedelta(days=2, hours=12)),
    "in_hour": (REF + timedelta(minutes=10), REF + timedelta(minutes=50)),
    "cross_hour": (REF - timedelta(minutes=20), REF + timedelta(minutes=20, seconds=0.5)),
}
# events are sometimes placed exactly on (or a microsecond off) a window edge
SPECIAL_TIMES: tuple[datetime, ...] = tuple(
    sorted(
        {t for pair in WINDOWS.values() for t in pair if t is not None}
        | {REF, REF - timedelta(hours=1), REF + timedelta(hours=1), REF - timedelta(days=1)}
    )
)

# --------------------------------------------------------------------------- datasets


@dataclass
class CallSpec:
    fields: dict[str, Any]
    feedback: dict[str, Any] | None = None


@dataclass
class Dataset:
    calls: list[CallSpec]
    tools: list[dict[str, Any]]
    products: list[dict[str, Any]]
    drawn_window: tuple[datetime, datetime]
    orphan_feedback: bool

    def summary(self) -> str:
        errors = sum(1 for c in self.calls if c.fields.get("status") == "error")
        feedback = sum(1 for c in self.calls if c.feedback)
        return (
            f"{len(self.calls)} calls ({errors} errors, {feedback} with feedback), "
            f"{len(self.tools)} tool calls, {len(self.products)} product events"
        )


def _occurred_at() -> st.SearchStrategy[datetime]:
    def at(us: int) -> datetime:
        return REF + timedelta(microseconds=us)

    return st.one_of(
        st.integers(-5 * DAY_US, 5 * DAY_US).map(at),
        st.integers(-3 * HOUR_US, 3 * HOUR_US).map(at),  # dense around REF
        st.sampled_from(SPECIAL_TIMES),
        st.sampled_from(SPECIAL_TIMES).map(lambda t: t - timedelta(microseconds=1)),
    )


def _latency() -> st.SearchStrategy[float | None]:
    return st.one_of(
        st.none(),
        st.just(3000.0),  # the quality-score threshold (not > 3000)
        st.floats(math.log(5.0), math.log(60_000.0)).map(math.exp),
        st.floats(math.log(5.0), math.log(60_000.0)).map(math.exp),
        st.floats(math.log(5.0), math.log(60_000.0)).map(math.exp),
    )


@st.composite
def call_specs(draw: st.DrawFn) -> CallSpec:
    provider, model = draw(st.sampled_from(MODELS))
    provider = draw(st.sampled_from((provider, provider, provider, None)))
    actor_id, actor_type = draw(st.sampled_from(ACTORS))
    project = draw(st.sampled_from(PROJECTS))
    session = None
    if actor_id is not None and draw(st.integers(0, 3)) > 0:
        # a session belongs to one project (llmtally keys sessions by project)
        session = f"{project}/{actor_id}/s{draw(st.integers(0, 2))}"
    status = draw(st.sampled_from(("success", "success", "success", "error")))
    fields: dict[str, Any] = {
        "occurred_at": draw(_occurred_at()),
        "project": project,
        "feature": draw(st.sampled_from(FEATURES)),
        "provider": provider,
        "model": model,
        "actor_id": actor_id,
        "actor_type": actor_type,
        "session_id": session,
        "trace_id": draw(st.sampled_from(TRACES)),
        "status": status,
    }
    if status == "error":
        error_type = draw(st.sampled_from(sorted(ERRORS)))
        fields["error_type"] = error_type
        fields["error_message"] = draw(st.sampled_from((*ERRORS[error_type], None)))
    no_usage = status == "error" and draw(st.booleans())
    if not no_usage:
        inp = draw(st.one_of(st.none(), st.integers(0, 20_000)))
        out = draw(st.one_of(st.none(), st.integers(0, 4_000)))
        fields["input_tokens"] = inp
        fields["output_tokens"] = out
        if inp and draw(st.booleans()):
            fields["cache_read_tokens"] = draw(st.integers(0, inp))
        if inp and provider == "anthropic" and draw(st.booleans()):
            fields["cache_write_tokens"] = draw(
                st.integers(0, inp - (fields.get("cache_read_tokens") or 0))
            )
        if out and provider != "anthropic" and draw(st.booleans()):
            fields["reasoning_tokens"] = draw(st.integers(0, out))
    latency = draw(_latency())
    fields["latency_ms"] = latency
    if latency is not None and draw(st.booleans()):
        fields["ttft_ms"] = latency * draw(st.floats(0.01, 1.0))
        fields["stream"] = True
    else:
        fields["stream"] = draw(st.sampled_from((None, False)))
    feedback = None
    if draw(st.integers(0, 9)) < 4:
        feedback = {
            "rating": draw(st.sampled_from(("up", "down", None))),
            "regenerated": draw(st.sampled_from((True, False, None))),
            "edited": draw(st.sampled_from((True, False, None))),
            "delay_us": draw(st.integers(0, 2 * HOUR_US)),
            "same_trace": draw(st.booleans()),
        }
        if all(feedback[k] is None for k in ("rating", "regenerated", "edited")):
            feedback["rating"] = "up"
    return CallSpec(fields, feedback)


@st.composite
def tool_specs(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(("success", "success", "error")))
    actor_id, actor_type = draw(st.sampled_from(ACTORS))
    return {
        "name": draw(st.sampled_from(TOOLS)),
        "occurred_at": draw(_occurred_at()),
        "project": draw(st.sampled_from(PROJECTS)),
        "feature": draw(st.sampled_from(FEATURES)),
        "actor_id": actor_id,
        "actor_type": actor_type,
        "trace_id": draw(st.sampled_from(TRACES)),
        "status": status,
        "error_type": "ToolError" if status == "error" else None,
        "latency_ms": draw(_latency()),
        "parent": draw(st.one_of(st.none(), st.integers(0, 10_000))),
    }


@st.composite
def product_specs(draw: st.DrawFn) -> dict[str, Any]:
    actor_id, actor_type = draw(st.sampled_from(ACTORS))
    return {
        "name": draw(st.sampled_from(PRODUCT_EVENTS)),
        "occurred_at": draw(_occurred_at()),
        "project": draw(st.sampled_from(PROJECTS)),
        "feature": draw(st.sampled_from(FEATURES)),  # product events never count as calls
        "actor_id": actor_id,
        "actor_type": actor_type,
        "trace_id": draw(st.sampled_from(TRACES)),
    }


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    big = draw(st.sampled_from((False, True, True, True)))
    calls = draw(st.lists(call_specs(), min_size=50 if big else 0, max_size=110 if big else 8))
    tools = draw(st.lists(tool_specs(), min_size=10 if big else 0, max_size=30 if big else 4))
    products = draw(st.lists(product_specs(), max_size=8))
    start = REF + timedelta(microseconds=draw(st.integers(-6 * DAY_US, 5 * DAY_US)))
    length = timedelta(microseconds=draw(st.integers(60 * US, 7 * DAY_US)))
    return Dataset(calls, tools, products, (start, start + length), draw(st.booleans()))


def _given(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def record(tally: Any, ds: Dataset) -> None:
    """Record a dataset through the public capture API."""
    ids = [tally.record_call(**_given(c.fields)) for c in ds.calls]
    for call, call_id in zip(ds.calls, ids, strict=True):
        fb = call.feedback
        if fb is None:
            continue
        tally.record_feedback(
            call_id,
            rating=fb["rating"],
            regenerated=fb["regenerated"],
            edited=fb["edited"],
            occurred_at=call.fields["occurred_at"] + timedelta(microseconds=fb["delay_us"]),
            project=call.fields["project"],
            trace_id=call.fields["trace_id"] if fb["same_trace"] else None,
        )
    if ds.orphan_feedback:  # rates no stored call: must be ignored
        tally.record_feedback(
            "00000000-0000-4000-8000-000000000001", rating="down", occurred_at=REF, regenerated=True
        )
    for tool in ds.tools:
        fields = dict(tool)
        name = fields.pop("name")
        parent = fields.pop("parent")
        if parent is not None and ids:
            fields["parent_id"] = ids[parent % len(ids)]
        tally.record_tool_call(name, **_given(fields))
    for product in ds.products:
        fields = dict(product)
        name = fields.pop("name")
        tally.record_event(name, **_given(fields))


BOOL_COLUMNS = ("stream", "regenerated", "edited", "usage_estimated")


def normalize(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw ``events`` rows (``dbutil.rows``) with booleans as bools."""
    for row in raw:
        for name in BOOL_COLUMNS:
            if row.get(name) is not None:
                row[name] = bool(row[name])
    return raw


# --------------------------------------------------------------------------- scenarios


FILTER_COLUMNS = {
    "project": "project",
    "feature": "feature",
    "model": "model",
    "provider": "provider",
    "actor": "actor_id",
    "status": "status",
}
DIMENSIONS = {
    "model": "model",
    "provider": "provider",
    "feature": "feature",
    "actor": "actor_id",
    "session": "session_id",
    "project": "project",
    "status": "status",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    since: datetime | None
    until: datetime | None
    filters: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.filters)
        if self.since is not None:
            out["since"] = self.since
        if self.until is not None:
            out["until"] = self.until
        return out

    def previous(self) -> Scenario | None:
        if self.since is None or self.until is None:
            return None
        length = self.until - self.since
        return Scenario(self.name + ":prev", self.since - length, self.since, self.filters)

    def __str__(self) -> str:
        parts = [f"since={self.since.isoformat() if self.since else None}"]
        parts.append(f"until={self.until.isoformat() if self.until else None}")
        parts += [f"{k}={v}" for k, v in self.filters.items()]
        return f"{self.name}({', '.join(parts)})"


def scenarios(ds: Dataset) -> list[Scenario]:
    """Every window without filters, then each filter (and one pair) on some window."""
    out = [Scenario(name, since, until) for name, (since, until) in WINDOWS.items()]
    out.append(Scenario("drawn", *ds.drawn_window))
    w1, w2, drawn = WINDOWS["w1"], WINDOWS["w2"], ds.drawn_window
    out += [
        Scenario("w1+project", *w1, {"project": "alpha"}),
        Scenario("all+feature", None, None, {"feature": "chat"}),
        Scenario("w2+model", *w2, {"model": "gpt-4o"}),
        Scenario("w1+provider", *w1, {"provider": "anthropic"}),
        Scenario("all+actor", None, None, {"actor": "agent-a"}),
        Scenario("w1+actor", *w1, {"actor": "u1"}),
        Scenario("w1+status", *w1, {"status": "error"}),
        Scenario("all+status", None, None, {"status": "success"}),
        Scenario("drawn+project+feature", *drawn, {"project": "beta", "feature": "search"}),
    ]
    return out


def select(events: Iterable[dict[str, Any]], sc: Scenario, kind: str | None = "llm_call") -> list:
    out = []
    for e in events:
        if kind is not None and e["kind"] != kind:
            continue
        if sc.since is not None and e["occurred_at"] < sc.since:
            continue
        if sc.until is not None and e["occurred_at"] >= sc.until:
            continue
        if any(e[FILTER_COLUMNS[k]] != v for k, v in sc.filters.items()):
            continue
        out.append(e)
    return out


# --------------------------------------------------------------------------- arithmetic


class _Sentinel:
    def __init__(self, name: str, accepted: tuple[Any, ...]) -> None:
        self.name = name
        self.accepted = accepted

    def __repr__(self) -> str:
        return self.name


NO_COST = _Sentinel("NO_COST(0 or None)", (None, 0))
UNDEFINED = _Sentinel("UNDEFINED(0 or None)", (None, 0))


def percentile(values: Sequence[float], q: float) -> float | None:
    """percentile_cont: linear interpolation between order statistics, pos = q*(n-1)."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def ratio(num: float, den: float) -> float | _Sentinel:
    return num / den if den else UNDEFINED


def cost_sum(evs: Iterable[dict[str, Any]]) -> float | _Sentinel:
    costs = [e["cost_usd"] for e in evs if e["cost_usd"] is not None]
    return math.fsum(costs) if costs else NO_COST


def cost_value(cost: float | _Sentinel) -> float:
    return 0.0 if isinstance(cost, _Sentinel) else cost


def _nn(evs: Iterable[dict[str, Any]], col: str) -> list[Any]:
    return [e[col] for e in evs if e[col] is not None]


def _sum(evs: Iterable[dict[str, Any]], col: str) -> int:
    return sum(_nn(evs, col))


def aggregate(evs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every per-group figure a call report may show."""
    lat, ttft = _nn(evs, "latency_ms"), _nn(evs, "ttft_ms")
    errors = sum(1 for e in evs if e["status"] == "error")
    priced = _nn(evs, "cost_usd")
    return {
        "calls": len(evs),
        "errors": errors,
        "error_rate": ratio(errors, len(evs)),
        "cost_usd": cost_sum(evs),
        "unpriced_calls": sum(1 for e in evs if e["cost_usd"] is None),
        "avg_cost_usd": mean(priced),
        **{
            f"{t}_tokens": _sum(evs, f"{t}_tokens")
            for t in ("input", "output", "cache_read", "cache_write", "reasoning")
        },
        "active_actors": len({e["actor_id"] for e in evs if e["actor_id"] is not None}),
        "avg_latency_ms": mean(lat),
        "p50_latency_ms": percentile(lat, 0.5),
        "p95_latency_ms": percentile(lat, 0.95),
        "p99_latency_ms": percentile(lat, 0.99),
        "avg_ttft_ms": mean(ttft),
        "p50_ttft_ms": percentile(ttft, 0.5),
        "p95_ttft_ms": percentile(ttft, 0.95),
        "avg_input_tokens": mean(_nn(evs, "input_tokens")),
        "avg_output_tokens": mean(_nn(evs, "output_tokens")),
    }


def group(evs: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, list]:
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in evs:
        out[key(e)].append(e)
    return dict(out)


def floor_bucket(t: datetime, interval: str) -> datetime:
    t = t.astimezone(UTC)
    if interval == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    assert interval == "week"
    return day - timedelta(days=day.weekday())


def top_keys(costs: dict[Any, float | _Sentinel]) -> set[Any] | None:
    """Keys of maximal cost (ties within 1e-9); None when there is no cost at all."""
    values = {k: cost_value(v) for k, v in costs.items()}
    best = max(values.values(), default=0.0)
    if best <= 0:
        return None
    return {k for k, v in values.items() if v >= best * (1 - 1e-9)}


# --------------------------------------------------------------------------- expectations

SUMMARY_FIELDS = (
    "calls",
    "errors",
    "error_rate",
    "cost_usd",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "active_actors",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
)


def exp_overview(events: list[dict[str, Any]], sc: Scenario) -> dict[str, Any]:
    evs = select(events, sc)
    agg = aggregate(evs)
    row = {k: agg[k] for k in SUMMARY_FIELDS}
    row["p95_ttft_ms"] = agg["p95_ttft_ms"]
    row["top_model"] = top_keys(
        {k: cost_sum(v) for k, v in group(evs, lambda e: e["model"]).items()}
    )
    features = {k: cost_sum(v) for k, v in group(evs, lambda e: e["feature"]).items()}
    row["top_feature"] = top_keys(features)
    if row["top_feature"] is not None and None in row["top_feature"]:
        # calls without a feature cost most: None, or the best named feature, will do
        named = top_keys({k: v for k, v in features.items() if k is not None})
        row["top_feature"] |= named or set()
    prev_sc = sc.previous()
    if prev_sc is not None:
        prev = aggregate(select(events, prev_sc))
        row["prev_calls"] = prev["calls"]
        row["prev_cost_usd"] = prev["cost_usd"]
        row["prev_error_rate"] = prev["error_rate"]
        row["prev_p95_latency_ms"] = prev["p95_latency_ms"]
        row["calls_change"] = (
            (agg["calls"] - prev["calls"]) / prev["calls"] if prev["calls"] else None
        )
        prev_cost, cost = cost_value(prev["cost_usd"]), cost_value(agg["cost_usd"])
        row["cost_change"] = (cost - prev_cost) / prev_cost if prev_cost else None
    return row


def exp_costs_summary(events: list[dict[str, Any]], sc: Scenario) -> dict[str, Any]:
    evs = select(events, sc)
    cost = cost_sum(evs)
    priced = _nn(evs, "cost_usd")
    return {
        "calls": len(evs),
        "cost_usd": cost,
        # contract: "Averages are arithmetic means over non-null values"
        "avg_cost_per_call_usd": mean(priced),
    }


TREND_COST_FIELDS = ("calls", "errors", "cost_usd", "input_tokens", "output_tokens")
TREND_REQUEST_FIELDS = ("calls", "errors", "error_rate", "avg_latency_ms", "p95_latency_ms")


def exp_trends(
    events: list[dict[str, Any]], sc: Scenario, interval: str, fields: Sequence[str]
) -> list[dict[str, Any]]:
    buckets = group(select(events, sc), lambda e: floor_bucket(e["occurred_at"], interval))
    out = []
    for bucket in sorted(buckets):
        agg = aggregate(buckets[bucket])
        out.append({"bucket": bucket, **{k: agg[k] for k in fields}})
    return out


BREAKDOWN_FIELDS = (
    "calls",
    "cost_usd",
    "cost_share",
    "unpriced_calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
)


def exp_breakdown(events: list[dict[str, Any]], sc: Scenario, by: str) -> dict[Any, dict]:
    evs = select(events, sc)
    total = cost_value(cost_sum(evs))
    out = {}
    for key, grp in group(evs, lambda e: e[DIMENSIONS[by]]).items():
        if by == "session" and key is None:
            continue  # calls without a session are no session
        agg = aggregate(grp)
        row = {k: agg[k] for k in (*BREAKDOWN_FIELDS, "avg_cost_usd") if k != "cost_share"}
        row["cost_share"] = ratio(cost_value(agg["cost_usd"]), total)
        out[key] = row
    return out


STATS_FIELDS = (
    "calls",
    "errors",
    "error_rate",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "avg_ttft_ms",
    "p50_ttft_ms",
    "p95_ttft_ms",
    "avg_input_tokens",
    "avg_output_tokens",
)


def exp_requests_stats(
    events: list[dict[str, Any]], sc: Scenario, by: str | None
) -> dict[Any, dict[str, Any]]:
    evs = select(events, sc)
    if by is None:
        agg = aggregate(evs)
        return {None: {k: agg[k] for k in STATS_FIELDS}}
    out = {}
    for key, grp in group(evs, lambda e: e[DIMENSIONS[by]]).items():
        agg = aggregate(grp)
        out[key] = {k: agg[k] for k in STATS_FIELDS}
    return out


LIST_FIELDS = (
    "event_id",
    "occurred_at",
    "project",
    "feature",
    "model",
    "provider",
    "actor_id",
    "session_id",
    "trace_id",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "stream",
)


def exp_requests_list(events: list[dict[str, Any]], sc: Scenario) -> list[dict[str, Any]]:
    evs = sorted(select(events, sc), key=lambda e: e["occurred_at"], reverse=True)
    return [{k: e[k] for k in LIST_FIELDS} for e in evs]


MODELS_FIELDS = (
    "calls",
    "errors",
    "error_rate",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "avg_latency_ms",
    "p95_latency_ms",
)


def exp_requests_models(events: list[dict[str, Any]], sc: Scenario) -> dict[Any, dict]:
    out = {}
    for key, grp in group(select(events, sc), lambda e: (e["model"], e["provider"])).items():
        agg = aggregate(grp)
        out[key] = {k: agg[k] for k in MODELS_FIELDS}
    return out


def exp_errors(events: list[dict[str, Any]], sc: Scenario) -> dict[Any, dict[str, Any]]:
    evs = select(events, sc)
    calls = Counter((e["feature"], e["model"]) for e in evs)
    errs = [e for e in evs if e["status"] == "error"]
    out = {}
    for (etype, feature, model), grp in group(
        errs, lambda e: (e["error_type"], e["feature"], e["model"])
    ).items():
        out[(etype, feature, model)] = {
            "count": len(grp),
            "share": len(grp) / len(errs),
            "error_rate": len(grp) / calls[(feature, model)],
            "example_message": {e["error_message"] for e in grp},
        }
    return out


def quality(call: dict[str, Any], fb: dict[str, Any]) -> float:
    q = 1.0
    if fb["regenerated"]:
        q -= 0.3
    if fb["edited"]:
        q -= 0.15
    if call["latency_ms"] is not None and call["latency_ms"] > 3000:
        q *= 0.6
    return min(1.0, max(0.0, q))


FEEDBACK_FIELDS = (
    "calls",
    "feedback",
    "up",
    "down",
    "up_ratio",
    "regenerated",
    "edited",
    "regenerated_rate",
    "edited_rate",
    "quality_score",
)


def exp_feedback(events: list[dict[str, Any]], sc: Scenario, by: str) -> dict[Any, dict]:
    fbs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["kind"] == "feedback" and e["parent_id"] is not None:
            fbs[e["parent_id"]].append(e)
    out = {}
    for key, grp in group(select(events, sc), lambda e: e[by]).items():
        rated = [(c, f) for c in grp for f in fbs.get(c["event_id"], [])]
        up = sum(1 for _, f in rated if f["rating"] == "up")
        down = sum(1 for _, f in rated if f["rating"] == "down")
        regenerated = sum(1 for _, f in rated if f["regenerated"])
        edited = sum(1 for _, f in rated if f["edited"])
        out[key] = {
            "calls": len(grp),
            "feedback": len(rated),
            "up": up,
            "down": down,
            "up_ratio": up / (up + down) if up + down else None,
            "regenerated": regenerated,
            "edited": edited,
            "regenerated_rate": regenerated / len(grp),
            "edited_rate": edited / len(grp),
            "quality_score": mean([quality(c, f) for c, f in rated]),
        }
    return out


SESSION_FIELDS = (
    "actor_id",
    "turns",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "errors",
    "first_at",
    "last_at",
    "duration_s",
)


def exp_sessions(events: list[dict[str, Any]], sc: Scenario) -> dict[Any, dict[str, Any]]:
    evs = [e for e in select(events, sc) if e["session_id"] is not None]
    out = {}
    for key, grp in group(evs, lambda e: e["session_id"]).items():
        agg = aggregate(grp)
        actors = {e["actor_id"] for e in grp}
        assert len(actors) == 1, "datasets give each session one actor"
        first = min(e["occurred_at"] for e in grp)
        last = max(e["occurred_at"] for e in grp)
        out[key] = {
            "actor_id": actors.pop(),
            "turns": len(grp),
            "cost_usd": agg["cost_usd"],
            "input_tokens": agg["input_tokens"],
            "output_tokens": agg["output_tokens"],
            "errors": agg["errors"],
            "first_at": first,
            "last_at": last,
            "duration_s": (last - first).total_seconds(),
        }
    return out


AGENT_FIELDS = ("calls", "errors", "error_rate", "cost_usd", "avg_latency_ms", "p95_latency_ms")


def exp_agents(events: list[dict[str, Any]], sc: Scenario) -> dict[Any, dict[str, Any]]:
    evs = [e for e in select(events, sc) if e["actor_type"] == "agent"]
    out = {}
    for key, grp in group(evs, lambda e: e["actor_id"]).items():
        agg = aggregate(grp)
        out[key] = {k: agg[k] for k in AGENT_FIELDS}
    return out


TOOL_FIELDS = ("calls", "errors", "error_rate", "avg_latency_ms", "p95_latency_ms")


def exp_tools(events: list[dict[str, Any]], sc: Scenario) -> dict[Any, dict[str, Any]]:
    out = {}
    for key, grp in group(select(events, sc, kind="tool_call"), lambda e: e["name"]).items():
        agg = aggregate(grp)
        out[key] = {k: agg[k] for k in TOOL_FIELDS}
    return out


TRACE_FIELDS = (
    "event_id",
    "occurred_at",
    "kind",
    "name",
    "feature",
    "model",
    "provider",
    "status",
    "error_type",
    "latency_ms",
    "cost_usd",
    "parent_id",
    "actor_id",
)


def exp_trace(events: list[dict[str, Any]], trace_id: str) -> list[dict[str, Any]]:
    evs = sorted((e for e in events if e["trace_id"] == trace_id), key=lambda e: e["occurred_at"])
    return [{k: e[k] for k in TRACE_FIELDS} for e in evs]


# --------------------------------------------------------------------------- comparison

INT_FIELDS = frozenset(
    {
        "calls",
        "errors",
        "unpriced_calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "active_actors",
        "prev_calls",
        "count",
        "feedback",
        "up",
        "down",
        "regenerated",
        "edited",
        "turns",
    }
)
COST_FIELDS = frozenset({"cost_usd", "prev_cost_usd"})
PCT_FIELDS = frozenset(
    {
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "p50_ttft_ms",
        "p95_ttft_ms",
        "prev_p95_latency_ms",
    }
)
DATETIME_FIELDS = frozenset({"bucket", "occurred_at", "first_at", "last_at"})
PCT_REL = 0.01
REL = 1e-9


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(got: float, exp: float, rel: float, abs_: float = 0.0) -> bool:
    return abs(got - exp) <= max(rel * abs(exp), abs_)


class Checker:
    """Collects every mismatch (soft assertions) with the context it was found in."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.problems: list[tuple[str, str]] = []
        self._ctx: list[str] = []
        self.checked = 0

    @contextmanager
    def context(self, label: str) -> Iterator[None]:
        self._ctx.append(label)
        try:
            yield
        finally:
            self._ctx.pop()

    def fail(self, message: str) -> None:
        self.problems.append((" | ".join(self._ctx), message))

    def report(self, limit: int = 60) -> str | None:
        """Mismatches, each distinct message once (with how often and where first seen)."""
        if not self.problems:
            return None
        seen: dict[str, list[str]] = {}
        for where, message in self.problems:
            seen.setdefault(message, []).append(where)
        lines = [f"[x{len(wheres)}] {wheres[0]} | {message}" for message, wheres in seen.items()]
        shown = "\n".join(lines[:limit])
        more = len(lines) - limit
        tail = f"\n... and {more} more distinct mismatches" if more > 0 else ""
        return f"{self.header}\n{len(self.problems)} mismatches:\n{shown}{tail}"

    # -- values

    def value(self, name: str, got: Any, exp: Any) -> None:
        self.checked += 1
        ok = self._value_ok(name, got, exp)
        if not ok:
            self.fail(f"{name}: expected {exp!r}, got {got!r}")

    def _value_ok(self, name: str, got: Any, exp: Any) -> bool:
        if isinstance(exp, _Sentinel):
            return got is None or (_is_number(got) and got == 0)
        if isinstance(exp, set):  # any of these
            return got in exp
        if exp is None:
            return got is None
        if name in DATETIME_FIELDS:
            return (
                isinstance(got, datetime)
                and got.tzinfo is not None
                and got.utcoffset() == timedelta(0)
                and got == exp
            )
        if isinstance(exp, (bool, str)):
            return type(got) is type(exp) and got == exp
        if name in INT_FIELDS:
            return isinstance(got, int) and not isinstance(got, bool) and got == exp
        if isinstance(exp, (int, float)):
            if not _is_number(got):
                return False
            if name in PCT_FIELDS:
                return _close(got, exp, PCT_REL)
            if name in COST_FIELDS:
                return _close(got, exp, REL, 1e-12)
            return _close(got, exp, REL, 1e-12 if exp == 0 else 0.0)
        return bool(got == exp)

    def row(self, got: Any, exp: dict[str, Any], fields: Iterable[str]) -> None:
        if not isinstance(got, dict):
            self.fail(f"row is not a dict: {got!r}")
            return
        for name in fields:
            if name not in got:
                self.fail(f"missing key {name!r} (keys: {sorted(got)})")
                continue
            self.value(name, got[name], exp[name])

    # -- row sets

    def rows_list(self, got: Any) -> list[dict[str, Any]] | None:
        if not isinstance(got, list) or not all(isinstance(r, dict) for r in got):
            self.fail(f"report did not return a list of dicts: {got!r}"[:300])
            return None
        return got

    def grouped(
        self,
        got: Any,
        expected: dict[Any, dict[str, Any]],
        key_of: Callable[[dict[str, Any]], Any],
        fields: Sequence[str],
        order: Callable[[dict[str, Any]], float] | None,
        limit: int | None = None,
    ) -> None:
        """Rows keyed by group: same groups, same figures, descending by ``order``.

        Rows whose order values tie may come in any order; with ``limit`` the rows kept
        must be a top-``limit`` (ties at the cut in any way).
        """
        rows = self.rows_list(got)
        if rows is None:
            return
        keys = []
        for r in rows:
            try:
                keys.append(key_of(r))
            except KeyError as exc:
                self.fail(f"row without key column {exc}: {r!r}")
                return
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        if dupes:
            self.fail(f"duplicate groups {dupes!r}")
        unexpected = [k for k in keys if k not in expected]
        if unexpected:
            self.fail(f"unexpected groups {unexpected!r} (expected {sorted(expected, key=repr)})")
        if limit is None:
            missing = [k for k in expected if k not in keys]
            if missing:
                self.fail(f"missing groups {missing!r} (got {keys!r})")
        else:
            if len(rows) != min(limit, len(expected)):
                self.fail(f"limit={limit}: {len(rows)} rows, expected {min(limit, len(expected))}")
            if order is not None and rows and not unexpected:
                floor = min(order(expected[k]) for k in keys)
                better = [
                    k
                    for k in expected
                    if k not in keys and order(expected[k]) > floor + _tol(floor)
                ]
                if better:
                    self.fail(f"limit={limit}: left out {better!r}, which rank above kept rows")
        for key, r in zip(keys, rows, strict=True):
            if key in expected:
                with self.context(f"group {key!r}"):
                    self.row(r, expected[key], fields)
        if order is not None and not unexpected:
            values = [order(expected[k]) for k in keys]
            for i in range(len(values) - 1):
                if values[i] < values[i + 1] - _tol(values[i + 1]):
                    self.fail(
                        f"order: {keys[i]!r} ({values[i]!r}) comes before "
                        f"{keys[i + 1]!r} ({values[i + 1]!r}); expected descending"
                    )
                    break


def _tol(value: float) -> float:
    return abs(value) * 1e-9 + 1e-12


def by_cost(row: dict[str, Any]) -> float:
    return cost_value(row["cost_usd"])


def by_calls(row: dict[str, Any]) -> float:
    return float(row["calls"])


def by_count(row: dict[str, Any]) -> float:
    return float(row["count"])
