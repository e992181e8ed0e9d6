"""The feedback report: ratings, regenerations, edits and implicit quality per feature/model.

Feedback counts where its call counts: the window and the filters apply to the rated
call. Whole hours and days come from the feedback rollups (``store.feedback``), the
partial hours at the ends from a join of feedback events to their calls. The implicit
quality score of a call is ``QualityWeights.score`` of its signals (any feedback said
regenerated / edited; slower than ``slow_ms``); a group's score is the mean over its
rated calls. An actor filter, or a slow threshold other than the rollups' one, is
answered by the join over the whole window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llmtally.errors import QueryError
from llmtally.query.filters import Filters, split
from llmtally.store import feedback as store_feedback
from llmtally.store.schema import (
    FEEDBACK_SUMS,
    events,
    rollup_feedback_daily,
    rollup_feedback_hourly,
)

Row = dict[str, Any]
_N = len(FEEDBACK_SUMS)
_RATED = FEEDBACK_SUMS.index("rated_0")


@dataclass(frozen=True, slots=True)
class QualityWeights:
    """Weights of the implicit quality score (defaults: seed 003's)."""

    regenerated_penalty: float = 0.3
    edited_penalty: float = 0.15
    slow_ms: float = store_feedback.SLOW_MS
    slow_factor: float = 0.6

    def __post_init__(self) -> None:
        for name in ("regenerated_penalty", "edited_penalty", "slow_factor"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise QueryError(name, f"must be between 0 and 1, got {value!r}")
        if not isinstance(self.slow_ms, (int, float)) or self.slow_ms <= 0:
            raise QueryError("slow_ms", f"must be a positive number, got {self.slow_ms!r}")

    @classmethod
    def of(cls, value: QualityWeights | Mapping[str, float] | None) -> QualityWeights:
        """Weights from an instance, a mapping of field names, or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, QualityWeights):
            return value
        unknown = set(value) - {"regenerated_penalty", "edited_penalty", "slow_ms",
                                "slow_factor"}  # fmt: skip
        if unknown:
            raise QueryError(sorted(unknown)[0], "is not a quality weight")
        return cls(**value)

    def score(self, regenerated: bool, edited: bool, slow: bool) -> float:
        """Implicit quality of one call, in [0, 1]."""
        value = 1.0 - (self.regenerated_penalty if regenerated else 0.0)
        value -= self.edited_penalty if edited else 0.0
        if slow:
            value *= self.slow_factor
        return max(0.0, min(1.0, value))


def sums(conn: sa.Connection, f: Filters, by: str, weights: QualityWeights) -> dict[Any, list[int]]:
    """``FEEDBACK_SUMS`` per value of ``by`` over the window."""
    out: dict[Any, list[int]] = {}
    if f.actor is not None or weights.slow_ms != store_feedback.SLOW_MS:
        _raw(conn, f, by, f.since, f.until, weights.slow_ms, out)
        return out
    cut = split(f.since, f.until)
    tables: list[tuple[sa.Table, datetime | None, datetime | None]] = []
    if cut.daily is not None:
        tables.append((rollup_feedback_daily, *cut.daily))
    tables.extend((rollup_feedback_hourly, *w) for w in cut.hourly)
    for table, since, until in tables:
        r = table.c
        where = f.rollup_where(table, None, since, until)
        query = sa.select(r[by], *[sa.func.sum(r[n]) for n in FEEDBACK_SUMS]).where(where)
        for key, *values in conn.execute(query.group_by(r[by])):
            _add(out, key or None, values)
    for since, until in cut.raw:
        _raw(conn, f, by, since, until, weights.slow_ms, out)
    return out


def _add(out: dict[Any, list[int]], key: Any, values: Any) -> None:
    d = out.get(key)
    if d is None:
        d = out[key] = [0] * _N
    for i, v in enumerate(values):
        d[i] += int(v or 0)


def _raw(
    conn: sa.Connection,
    f: Filters,
    by: str,
    since: datetime | None,
    until: datetime | None,
    slow_ms: float,
    out: dict[Any, list[int]],
) -> None:
    call = events.alias("call")
    fb = events.alias("fb")
    query = (
        sa.select(call.c.event_id, call.c[by], call.c.latency_ms, fb.c.rating, fb.c.regenerated,
                  fb.c.edited)
        # parent_id is free text (a caller's own ids are allowed); event_id is a uuid on
        # PostgreSQL, so compare as text
        .select_from(fb.join(call, sa.cast(call.c.event_id, sa.String(36)) == fb.c.parent_id))
        .where(fb.c.kind == "feedback")
        .where(f.raw_where(("llm_call",), since, until, table=call))
    )  # fmt: skip
    per_call: dict[Any, tuple[Any, Any, list[store_feedback.Signal]]] = {}
    for call_id, key, latency, rating, regenerated, edited in conn.execute(query):
        d = out.get(key)
        if d is None:
            d = out[key] = [0] * _N
        d[0] += 1
        d[1] += rating == "up"
        d[2] += rating == "down"
        d[3] += bool(regenerated)
        d[4] += bool(edited)
        per_call.setdefault(call_id, (key, latency, []))[2].append((rating, regenerated, edited))
    for key, latency, signals in per_call.values():
        out[key][_RATED + store_feedback.category(signals, latency, slow_ms)] += 1


def rows(
    groups: dict[Any, list[int]], calls: dict[Any, float], by: str, weights: QualityWeights
) -> list[Row]:
    """Report rows from feedback sums and call counts per group."""
    out = []
    for key in set(groups) | {k for k, n in calls.items() if n}:
        d = groups.get(key, [0] * _N)
        n_calls = int(calls.get(key, 0))
        feedback, up, down, regenerated, edited = d[:5]
        rated = d[_RATED:]
        n_rated = sum(rated)
        quality = None
        if n_rated:
            quality = (
                sum(
                    count * weights.score(bool(k & 1), bool(k & 2), bool(k & 4))
                    for k, count in enumerate(rated)
                )
                / n_rated
            )
        out.append(
            {
                by: key,
                "calls": n_calls,
                "feedback": feedback,
                "up": up,
                "down": down,
                "up_ratio": up / (up + down) if up + down else None,
                "regenerated": regenerated,
                "edited": edited,
                "regenerated_rate": regenerated / n_calls if n_calls else 0.0,
                "edited_rate": edited / n_calls if n_calls else 0.0,
                "quality_score": quality,
            }
        )
    out.sort(key=lambda r: (-r["feedback"], -r["calls"], str(r[by])))
    return out
