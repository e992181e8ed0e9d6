"""Sessions of plausible LLM traffic, as event field mappings.

``SessionMaker.hour`` makes the sessions that start in one hour, drawing only from the
hour's own RNG, so any hour can be made on its own (in parallel, or late in a live
stream) and a seed always gives the same traffic. A session picks a feature (tables in
``catalog``), an actor (a person, or an agent for agent features), a model and a number
of turns; each turn is one LLM call with prompt caching the way its provider caches,
reasoning tokens, streaming, 3–5% errors (and many more for Anthropic during the
incident, where the router falls back to OpenAI), then maybe feedback with its thumbs
product event, tool calls linked to the call, and product events of the feature.

Each event is a complete mapping in the form capture queues it: ``event_id`` (a UUIDv7
of the event's time, from the RNG), ``occurred_at`` in Unix seconds, ``project``,
``kind``, ``schema_version`` and only the fields that are set. ``Tally.ingest`` (or the
HTTP collector) takes it as it is, and a ``pipeline.process.Processor`` turns it into
the row the store would write.
"""

from __future__ import annotations

import itertools
import math
import random
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, Final

from llmtally.demo.catalog import (
    AGENT_ROLES,
    AGENTS,
    COMMENTS,
    ERROR_RATE,
    ERRORS,
    FALLBACK_MODEL,
    FEATURES,
    INCIDENT_ERROR_RATE,
    MODELS,
    OVERLOADED,
    TOOL_ERROR_RATE,
    TOOL_ERRORS,
    FeatureSpec,
    ModelSpec,
)
from llmtally.event import SCHEMA_VERSION

Event = dict[str, Any]

_LOW_62: Final = (1 << 62) - 1
_LOW_48: Final = (1 << 48) - 1
_JOIN_P: Final = 0.3  # people seen for the first time who first join the support channel
_LOG_TOOL_MS: Final = math.log(350)


def cumulative(weights: Iterable[float]) -> list[float]:
    """Running sums of ``weights``, for picking with ``bisect`` on one uniform draw."""
    return list(itertools.accumulate(weights))


def event_id(at: float, bits: int) -> str:
    """A UUIDv7 (RFC 9562) for time ``at`` whose 74 random bits are ``bits``.

    Time-ordered like the ids capture mints (inserts stay append-mostly), but drawn
    from the traffic's RNG: the same seed gives the same ids, so replaying a demo
    range is idempotent.
    """
    ms = int(at * 1000)
    low = bits & _LOW_62
    return "%08x-%04x-7%03x-%04x-%012x" % (  # noqa: UP031 - the fastest formatting here
        ms >> 16,
        ms & 0xFFFF,
        bits >> 62,
        0x8000 | (low >> 48),
        low & _LOW_48,
    )


class Population:
    """Who uses the product: people and agents, a few of them doing most of the work."""

    def __init__(self, seed: int, *, humans: int, agents: int) -> None:
        rng = random.Random(seed)
        chars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
        self.humans = ["U0" + "".join(rng.choices(chars, k=10)) for _ in range(humans)]
        named = [actor for actor, _ in AGENTS[:agents]]
        self.agents = named + [
            f"agent:{AGENT_ROLES[i % len(AGENT_ROLES)]}-{i:03d}" for i in range(agents - len(named))
        ]
        # Zipf-like activity: power users and busy agents
        self._human_cum = cumulative(1 / (i + 1) ** 0.9 for i in range(len(self.humans)))
        self._agent_cum = cumulative(1 / (i + 1) ** 0.6 for i in range(len(self.agents)))
        self._rng_state = rng.getstate()  # profiles continue from here

    def human(self, u: float) -> str:
        """The person picked by the uniform draw ``u``."""
        return self.humans[bisect_right(self._human_cum, u * self._human_cum[-1])]

    def agent(self, u: float) -> str:
        """The agent picked by the uniform draw ``u``."""
        return self.agents[bisect_right(self._agent_cum, u * self._agent_cum[-1])]

    def profile_rng(self) -> random.Random:
        """The RNG that draws profiles: always the same sequence for a seed."""
        rng = random.Random()
        rng.setstate(self._rng_state)
        return rng


class SessionMaker:
    """Makes the sessions of one stream, an hour at a time (see the module docstring)."""

    def __init__(
        self,
        population: Population,
        *,
        project: str | None,
        incident: tuple[float, float] | None,
        end: float | None,
        ids: int = 0,
    ) -> None:
        self.population = population
        self._ids = ids  # mixed into every id's random bits: another range, other ids
        self.project = project
        self.incident = incident or (0.0, 0.0)
        # nothing happens at or after the end of a range, however long a session runs
        self._last = math.inf if end is None else end - 0.001
        self.seen: set[str] = set()  # people who already had a session in this stream
        self._feature_cum = cumulative(f.weight for f in FEATURES)
        self._models = [
            ([MODELS[name] for name, _ in f.models], cumulative(w for _, w in f.models))
            for f in FEATURES
        ]
        self._templates = [f"{f.name}_v3" for f in FEATURES]
        # medians of the log-normal sizes, as logs: (input, output, history growth)
        self._logs = {
            f.name: (math.log(f.input_median), math.log(f.output_median),
                     math.log(f.output_median + 60))
            for f in FEATURES
        }  # fmt: skip
        self._error_cum = cumulative(e[1] for e in ERRORS)
        self._messages = {
            (error[0], model): error[3].replace("{model}", model)
            for error in ERRORS
            for model in MODELS
        }
        self.rng = random.Random(0)
        self.events: list[Event] = []
        self.calls = 0
        self.budget = 0
        self._lo = 0.0

    def hour(self, rng: random.Random, lo: float, hi: float, calls: int) -> list[Event]:
        """The events of sessions starting in ``[lo, hi)`` holding exactly ``calls`` LLM calls."""
        self.rng, self.events, self.calls, self.budget, self._lo = rng, [], 0, calls, lo
        rnd = rng.random
        while self.calls < calls:
            self._session(lo + rnd() * (hi - lo))
        return self.events

    # -- one session -------------------------------------------------------------------

    def _session(self, start: float) -> None:
        rng = self.rng
        rnd = rng.random
        fi = bisect_right(self._feature_cum, rnd() * self._feature_cum[-1])
        feature = FEATURES[fi]
        agent = feature.agent_p > 0 and rnd() < feature.agent_p
        if agent:
            actor, actor_type = self.population.agent(rnd()), "agent"
        else:
            actor, actor_type = self.population.human(rnd()), "human"
        base = {
            "project": self.project or feature.project,
            "actor_id": actor,
            "actor_type": actor_type,
            "session_id": "s_%016x" % rng.getrandbits(64),  # noqa: UP031
            "feature": feature.name,
        }
        if not agent:
            # drawn every time (the event's id bits too): the draws never depend on `seen`
            joins, bits = rnd() < _JOIN_P, rng.getrandbits(74)
            if actor not in self.seen:
                self.seen.add(actor)
                if joins:
                    at = max(self._lo, start - 90)
                    self._product("user_joined_channel", at, base, {"channel": "support"}, bits)
        models, cum = self._models[fi]
        model = models[bisect_right(cum, rnd() * cum[-1])]
        channel = "dm" if rnd() < 0.4 else "channel"
        meta = {"prompt_template": self._templates[fi], "channel_type": channel}
        if feature.name == "chat":
            self._product("new_conversation", start, base, {"channel_type": channel})
        # a person's turns are separate requests; an agent's run is one request chain
        trace = "%032x" % rng.getrandbits(128)  # noqa: UP031
        turns = rng.randint(*feature.turns)
        at, history, previous_input = start, 0, 0
        for turn in range(turns):
            if self.calls >= self.budget:
                return  # the hour's calls are used up (fallbacks count too)
            if not agent and turn:
                trace = "%032x" % rng.getrandbits(128)  # noqa: UP031
            tools = 0
            if agent and turn < turns - 1:
                tools = rng.randint(1, 2)
            elif feature.tool_p and rnd() < feature.tool_p:
                tools = 1
            call_id, end, inputs, ok = self._call(
                model, feature, base, trace, meta, at, turn, history, previous_input, tools
            )
            if (
                not ok
                and model.provider == "anthropic"
                and self._in_incident(at)
                and self.calls < self.budget
            ):
                # the router falls back to OpenAI while Anthropic is overloaded
                call_id, end, inputs, ok = self._call(
                    MODELS[FALLBACK_MODEL], feature, base, trace, meta, end + 0.05, turn,
                    history, 0, tools, "fallback",
                )  # fmt: skip
            previous_input = inputs
            history += int(math.exp(rng.gauss(self._logs[feature.name][2], 0.4)))
            if ok:
                if feature.name == "smart_reply":
                    self._product("new_reply", end + 0.2, base, {"channel_type": channel})
                if not agent and rnd() < feature.feedback_p:
                    self._feedback(feature, base, trace, call_id, end)
                if tools:
                    end = self._tools(feature.tools, base, trace, call_id, end, tools)
            at = end + (rng.uniform(1, 4) if agent else rng.uniform(12, 170))

    def _in_incident(self, at: float) -> bool:
        return self.incident[0] <= at < self.incident[1]

    def _call(
        self,
        model: ModelSpec,
        feature: FeatureSpec,
        base: Event,
        trace: str,
        meta: dict[str, str],
        at: float,
        turn: int,
        history: int,
        previous_input: int,
        tools: int,
        routing: str = "primary",
    ) -> tuple[str, float, int, bool]:
        """One LLM call; (its id, when it ended, its input tokens, whether it succeeded)."""
        rng = self.rng
        rnd = rng.random
        last = self._last
        t = at if at < last else last
        call_id = event_id(t, rng.getrandbits(74) ^ self._ids)
        event = {
            "event_id": call_id,
            "occurred_at": t,
            "kind": "llm_call",
            "schema_version": SCHEMA_VERSION,
            **base,
            "trace_id": trace,
            "provider": model.provider,
            "model": model.model,
            "routing_strategy": routing,
            "stream": rnd() < feature.stream_p,
            "temperature": feature.temperature,
            "max_tokens": feature.max_tokens,
            "metadata": dict(meta),
        }
        if model.version:
            event["model_version"] = model.version
        self.events.append(event)
        self.calls += 1
        # log-normal sizes and times: exp() of a gauss() draw, the fastest way to one
        exp, gauss = math.exp, rng.gauss
        log_input, log_output, _ = self._logs[feature.name]
        inputs = feature.system_tokens + history + int(exp(gauss(log_input, 0.55)))
        anthropic_down = model.provider == "anthropic" and self._in_incident(at)
        if rnd() < (INCIDENT_ERROR_RATE if anthropic_down else ERROR_RATE):
            latency = self._fail(model, event, inputs, anthropic_down)
            return call_id, at + latency / 1000, inputs, False
        event["status"] = "success"
        cached = self._cache(model, feature, inputs, turn, previous_input, event)
        outputs = min(feature.max_tokens, int(exp(gauss(log_output, 0.6))) + 3)
        reasoning = 0
        if model.reasoning is not None and rnd() < model.reasoning_p:
            # thinking is a share of everything generated; the visible answer is the rest
            total = min(feature.max_tokens, int(outputs / (1 - rng.uniform(*model.reasoning))))
            reasoning, outputs = total - outputs, total
            event["reasoning_tokens"] = reasoning
        event["input_tokens"] = inputs
        event["output_tokens"] = outputs
        ttft = model.first_token_ms * exp(gauss(0.0, 0.3)) + (inputs - cached) * 0.012
        ttft += reasoning * model.ms_per_token
        latency = ttft + (outputs - reasoning) * model.ms_per_token * exp(gauss(0.0, 0.2))
        if rnd() < 0.02:
            latency *= rng.uniform(2, 5)  # the slow tail every provider has
        event["latency_ms"] = round(latency, 1)
        if event["stream"]:
            event["ttft_ms"] = round(ttft, 1)
            event["stream_chunks"] = max(1, (outputs - reasoning) // rng.randint(3, 5))
        if outputs >= feature.max_tokens:
            event["finish_reason"] = "length"
        else:
            event["finish_reason"] = "tool_calls" if tools else "stop"
        return call_id, at + latency / 1000, inputs, True

    def _fail(self, model: ModelSpec, event: Event, inputs: int, anthropic_down: bool) -> float:
        """Make ``event`` a failed call; return its latency in ms."""
        rng = self.rng
        pick = bisect_right(self._error_cum, rng.random() * self._error_cum[-1])
        error_type, _, (low, high), _ = ERRORS[pick]
        message = self._messages[error_type, model.model]
        if model.provider == "anthropic" and (anthropic_down or rng.random() < 0.3):
            error_type, message, (low, high) = "InternalServerError", OVERLOADED, (200, 1_500)
        elif error_type == "BadRequestError":
            inputs = rng.randint(128_001, 190_000)
        latency = rng.uniform(low, high)
        event.update(
            status="error",
            error_type=error_type,
            error_message=message.replace("{n}", str(inputs)),
            latency_ms=round(latency, 1),
        )
        return latency

    def _cache(
        self,
        model: ModelSpec,
        feature: FeatureSpec,
        inputs: int,
        turn: int,
        previous_input: int,
        event: Event,
    ) -> int:
        """Set cache token counts the way each provider caches; return the cached reads."""
        rng = self.rng
        read = write = 0
        if model.cache == "openai" and inputs >= 1024 and rng.random() < 0.7:
            # automatic caching in 128-token steps of a prefix seen before
            prefix = previous_input if turn else feature.system_tokens
            read = min(prefix, inputs - 1) // 128 * 128
        elif model.cache == "anthropic" and feature.system_tokens:
            if turn == 0 and rng.random() < 0.25:
                write = min(feature.system_tokens, inputs)  # cache expired: write it again
            else:
                read = min(previous_input if turn else feature.system_tokens, inputs)
                write = min(inputs - read, int(rng.uniform(0.5, 1.0) * (inputs - read)))
        elif model.cache == "gemini" and inputs >= 2048 and rng.random() < 0.35:
            read = int(inputs * rng.uniform(0.3, 0.7))
        if read:
            event["cache_read_tokens"] = read
        if write:
            event["cache_write_tokens"] = write
        return read

    # -- what follows a call -----------------------------------------------------------

    def _feedback(
        self, feature: FeatureSpec, base: Event, trace: str, call_id: str, end: float
    ) -> None:
        rng = self.rng
        rnd = rng.random
        at = end + rng.uniform(4, 150)
        t = at if at < self._last else self._last
        up = rnd() < 0.72
        event = {
            "event_id": event_id(t, rng.getrandbits(74) ^ self._ids),
            "occurred_at": t,
            "kind": "feedback",
            "schema_version": SCHEMA_VERSION,
            **base,
            "trace_id": trace,
            "parent_id": call_id,
            "rating": "up" if up else "down",
            "regenerated": not up and rnd() < 0.4,
            "edited": feature.name == "smart_reply" and rnd() < 0.3,
        }
        if rnd() < 0.1:
            event["comment"] = COMMENTS[int(rnd() * len(COMMENTS))]
        self.events.append(event)
        self._product("thumbs_up" if up else "thumbs_down", at, base, {"feature": feature.name})

    def _tools(
        self,
        names: Sequence[str],
        base: Event,
        trace: str,
        call_id: str,
        at: float,
        count: int,
    ) -> float:
        """``count`` tool calls after the call ``call_id``; return when the last one ended."""
        rng = self.rng
        rnd = rng.random
        for _ in range(count):
            latency = math.exp(rng.gauss(_LOG_TOOL_MS, 0.8))
            t = at if at < self._last else self._last
            event = {
                "event_id": event_id(t, rng.getrandbits(74) ^ self._ids),
                "occurred_at": t,
                "kind": "tool_call",
                "schema_version": SCHEMA_VERSION,
                **base,
                "trace_id": trace,
                "parent_id": call_id,
                "name": names[int(rnd() * len(names))],
                "latency_ms": round(latency, 1),
                "status": "success",
            }
            if rnd() < TOOL_ERROR_RATE:
                error_type, message = TOOL_ERRORS[int(rnd() * len(TOOL_ERRORS))]
                event.update(status="error", error_type=error_type, error_message=message)
            self.events.append(event)
            at += latency / 1000 + 0.05
        return at

    def _product(
        self,
        name: str,
        at: float,
        base: Event,
        properties: dict[str, str],
        outside_bits: int | None = None,
    ) -> None:
        """A product event of the session's person; ``properties`` are stored as metadata.

        With ``outside_bits`` (its id's random bits) it is not part of the session.
        """
        t = at if at < self._last else self._last
        bits = self.rng.getrandbits(74) if outside_bits is None else outside_bits
        event = {
            "event_id": event_id(t, bits ^ self._ids),
            "occurred_at": t,
            "kind": "product",
            "schema_version": SCHEMA_VERSION,
            "project": base["project"],
            "name": name,
            "actor_id": base["actor_id"],
            "actor_type": "human",
            "metadata": properties,
        }
        if outside_bits is None:
            event["session_id"] = base["session_id"]
        self.events.append(event)
