"""A month of plausible LLM traffic, recorded through the real ``Tally`` pipeline.

Every event goes through the public capture API (``record_call``, ``record_feedback``,
``record_event``, ``record_tool_call``, ``identify``) with ``occurred_at`` backfilled, so
the demo exercises validation, pricing, redaction and the batch writer exactly as an
application would. ``track()`` is not used: it measures the wall-clock latency of its
block, which cannot be backfilled.

The traffic (tables in ``demodata``) has a working-hours and weekday rhythm with slow
growth, multi-turn chat sessions with prompt caching, reasoning models, streaming, 3–5%
errors (and one rate-limit incident), feedback and product events. Same seed and same
``now``, same traffic.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

from llmtally.cli.demodata import (
    AGENTS,
    COMMENTS,
    ERROR_RATE,
    ERRORS,
    FEATURES,
    FIRST_NAMES,
    HOURLY,
    LAST_NAMES,
    MODELS,
    OVERLOADED,
    TIMEZONES,
    TOOLS,
    WEEKEND,
    FeatureSpec,
    ModelSpec,
)
from llmtally.tally import Tally

_LAST_START_BEFORE_NOW: Final = 45 * 60  # a session (and its feedback) ends well before now
_ID_CHARS: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def _slack_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices(_ID_CHARS, k=10))


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class Generator:
    """Writes one demo month into a ``Tally``; ``counts`` tallies what was recorded by kind."""

    def __init__(self, tally: Tally, *, days: int, calls: int, seed: int, now: float) -> None:
        self.tally = tally
        self.days = days
        self.calls = calls
        self.now = now
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.humans = [_slack_id(self.rng, "U0") for _ in range(max(20, min(400, calls // 60)))]
        # a few power users do most of the work (Zipf-like)
        self._human_cum = _cumulative([1 / (i + 1) ** 0.9 for i in range(len(self.humans))])
        self._feature_cum = _cumulative([f.weight for f in FEATURES])
        self._error_cum = _cumulative([e[1] for e in ERRORS])
        self._seen: set[str] = set()
        # the incident: Anthropic overloaded for two and a half hours one afternoon
        day = now - days * 86_400 + int(days * 0.6) * 86_400
        begin = day - day % 86_400 + 14 * 3600
        self.incident = (begin, begin + 2.5 * 3600)

    # -- plan --------------------------------------------------------------------------

    def _plan(self) -> list[tuple[FeatureSpec, int]]:
        rng, plan, total = self.rng, [], 0
        while total < self.calls:
            feature = rng.choices(FEATURES, cum_weights=self._feature_cum)[0]
            turns = min(rng.randint(*feature.turns), self.calls - total)
            plan.append((feature, turns))
            total += turns
        return plan

    def _start_times(self, n: int) -> list[float]:
        """Session starts with a daily and weekly rhythm and ~30% growth over the period."""
        rng = self.rng
        first = self.now - self.days * 86_400
        last = self.now - _LAST_START_BEFORE_NOW
        hours = max(1, int((last - first) // 3600))
        weights = []
        for h in range(hours):
            at = first + h * 3600
            day = int(at // 86_400)
            weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 5 and 6 are the weekend
            growth = 1 + 0.3 * h / hours
            weights.append(
                HOURLY[int(at % 86_400) // 3600] * (WEEKEND if weekday >= 5 else 1) * growth
            )
        chosen = rng.choices(range(hours), cum_weights=_cumulative(weights), k=n)
        return sorted(min(last, first + (h + rng.random()) * 3600) for h in chosen)

    # -- recording ---------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> Counter[str]:
        """Record everything; ``progress`` gets the number of LLM calls done since its last call."""
        self._identify()
        plan = self._plan()
        reported = 0
        for (feature, turns), start in zip(plan, self._start_times(len(plan)), strict=True):
            self._session(feature, turns, start)
            if progress is not None and self.counts["llm_call"] - reported >= 250:
                progress(self.counts["llm_call"] - reported)
                reported = self.counts["llm_call"]
        if progress is not None:
            progress(self.counts["llm_call"] - reported)
        return self.counts

    def _identify(self) -> None:
        rng = self.rng
        for i, actor in enumerate(self.humans[:24]):
            first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
            self.tally.identify(
                actor,
                display_name=f"{first.lower()}.{last.lower()}",
                real_name=f"{first} {last}",
                timezone=rng.choice(TIMEZONES),
            )
        for actor, name in AGENTS:
            self.tally.identify(actor, actor_type="agent", display_name=name)

    def _event(self, name: str, at: float, actor: str, **properties: Any) -> None:
        self.tally.record_event(
            name, actor=actor, actor_type="human", occurred_at=at, properties=properties
        )
        self.counts["product"] += 1

    def _session(self, feature: FeatureSpec, turns: int, start: float) -> None:
        rng = self.rng
        if feature.agent:
            actor, actor_type = rng.choice(AGENTS)[0], "agent"
        else:
            actor = rng.choices(self.humans, cum_weights=self._human_cum)[0]
            actor_type = "human"
            if actor not in self._seen:
                self._seen.add(actor)
                if rng.random() < 0.3:
                    self._event("user_joined_channel", start - 90, actor, channel="support")
        model = MODELS[_weighted(rng, feature.models)]
        session_id = f"s_{rng.getrandbits(64):016x}"
        channel = "dm" if rng.random() < 0.4 else "channel"
        if feature.name == "chat":
            self._event("new_conversation", start, actor, channel_type=channel)
        at, history, previous_input = start, 0, 0
        for turn in range(turns):
            if self.counts["llm_call"] >= self.calls:
                return  # fallbacks during the incident used up the budget
            fields: dict[str, Any] = {
                "actor": actor,
                "actor_type": actor_type,
                "session_id": session_id,
                "trace_id": f"{rng.getrandbits(128):032x}",
                "feature": feature.name,
                "temperature": feature.temperature,
                "max_tokens": feature.max_tokens,
                "metadata": {"prompt_template": f"{feature.name}_v3", "channel_type": channel},
            }
            call_id, end, input_tokens, ok = self._call(
                model, feature, fields, at, turn, history, previous_input
            )
            if not ok and model.provider == "anthropic" and self._in_incident(at):
                # the router falls back to OpenAI while Anthropic is overloaded
                fields["routing_strategy"] = "fallback"
                call_id, end, input_tokens, ok = self._call(
                    MODELS["gpt-4o"], feature, fields, end + 50, turn, history, 0
                )
            previous_input = input_tokens
            history += int(rng.lognormvariate(math.log(feature.output_median + 60), 0.4))
            if ok:
                self._after_call(feature, call_id, actor, end, channel)
            if feature.agent and turn < turns - 1:
                end = self._tools(call_id, fields, end)
            at = end + (rng.uniform(1, 4) if feature.agent else rng.uniform(12, 170))

    def _in_incident(self, at: float) -> bool:
        return self.incident[0] <= at < self.incident[1]

    def _call(
        self,
        model: ModelSpec,
        feature: FeatureSpec,
        fields: dict[str, Any],
        at: float,
        turn: int,
        history: int,
        previous_input: int,
    ) -> tuple[str, float, int, bool]:
        rng = self.rng
        fields = dict(fields, provider=model.provider, model=model.model, occurred_at=at)
        if model.version:
            fields["model_version"] = model.version
        fields.setdefault("routing_strategy", "primary")
        stream = rng.random() < feature.stream_p
        fields["stream"] = stream
        inputs = (
            feature.system_tokens
            + history
            + int(rng.lognormvariate(math.log(feature.input_median), 0.55))
        )
        error_p = ERROR_RATE
        if self._in_incident(at) and model.provider == "anthropic":
            error_p = 0.45
        self.counts["llm_call"] += 1
        if rng.random() < error_p:
            latency = self._fail(model, fields, inputs, at)
            return self.tally.record_call(**fields), at + latency / 1000, inputs, False
        cached = self._cache(model, feature, inputs, turn, previous_input, fields)
        outputs = min(
            feature.max_tokens, int(rng.lognormvariate(math.log(feature.output_median), 0.6)) + 3
        )
        reasoning = 0
        if model.reasoning is not None and rng.random() < model.reasoning_p:
            # thinking is a share of everything generated; the visible answer is the rest
            total = min(feature.max_tokens, int(outputs / (1 - rng.uniform(*model.reasoning))))
            reasoning, outputs = total - outputs, total
            fields["reasoning_tokens"] = reasoning
        fields["input_tokens"] = inputs
        fields["output_tokens"] = outputs
        ttft = model.first_token_ms * rng.lognormvariate(0, 0.3) + (inputs - cached) * 0.012
        ttft += reasoning * model.ms_per_token
        latency = ttft + (outputs - reasoning) * model.ms_per_token * rng.lognormvariate(0, 0.2)
        if rng.random() < 0.02:
            latency *= rng.uniform(2, 5)  # the slow tail every provider has
        fields["latency_ms"] = round(latency, 1)
        if stream:
            fields["ttft_ms"] = round(ttft, 1)
            fields["stream_chunks"] = max(1, (outputs - reasoning) // rng.randint(3, 5))
        if outputs >= feature.max_tokens:
            fields["finish_reason"] = "length"
        elif feature.agent:
            fields["finish_reason"] = "tool_calls"
        else:
            fields["finish_reason"] = "stop"
        return self.tally.record_call(**fields), at + latency / 1000, inputs, True

    def _fail(self, model: ModelSpec, fields: dict[str, Any], inputs: int, at: float) -> float:
        rng = self.rng
        error_type, _, (low, high), message = rng.choices(ERRORS, cum_weights=self._error_cum)[0]
        if model.provider == "anthropic" and (self._in_incident(at) or rng.random() < 0.3):
            error_type, message, (low, high) = "InternalServerError", OVERLOADED, (200, 1_500)
        elif error_type == "BadRequestError":
            inputs = rng.randint(128_001, 190_000)
        latency = rng.uniform(low, high)
        fields.update(
            status="error",
            error_type=error_type,
            error_message=message.replace("{model}", model.model).replace("{n}", str(inputs)),
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
        fields: dict[str, Any],
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
            fields["cache_read_tokens"] = read
        if write:
            fields["cache_write_tokens"] = write
        return read

    def _after_call(
        self, feature: FeatureSpec, call_id: str, actor: str, end: float, channel: str
    ) -> None:
        rng = self.rng
        if feature.name == "smart_reply":
            self._event("new_reply", end + 0.2, actor, channel_type=channel)
        if rng.random() >= feature.feedback_p:
            return
        at = end + rng.uniform(4, 150)
        up = rng.random() < 0.72
        regenerated = not up and rng.random() < 0.4
        edited = feature.name == "smart_reply" and rng.random() < 0.3
        self.tally.record_feedback(
            call_id,
            rating="up" if up else "down",
            regenerated=regenerated,
            edited=edited,
            comment=rng.choice(COMMENTS) if rng.random() < 0.1 else None,
            actor=actor,
            actor_type="human",
            feature=feature.name,
            occurred_at=at,
        )
        self.counts["feedback"] += 1
        self._event("thumbs_up" if up else "thumbs_down", at, actor, feature=feature.name)

    def _tools(self, call_id: str, fields: dict[str, Any], at: float) -> float:
        rng = self.rng
        for _ in range(rng.randint(1, 2)):
            latency = rng.lognormvariate(math.log(350), 0.8)
            failed = rng.random() < 0.03
            self.tally.record_tool_call(
                rng.choice(TOOLS),
                occurred_at=at,
                parent_id=call_id,
                actor=fields["actor"],
                actor_type="agent",
                session_id=fields["session_id"],
                trace_id=fields["trace_id"],
                feature=fields["feature"],
                latency_ms=round(latency, 1),
                status="error" if failed else "success",
                error_type="ToolTimeout" if failed else None,
            )
            self.counts["tool_call"] += 1
            at += latency / 1000 + 0.05
        return at


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in options], weights=[w for _, w in options])[0]
