"""Record a range of demo traffic into a ``Tally``, through its public capture API.

Events go in with ``Tally.ingest`` (the HTTP collector's path: validation, pricing,
redaction, the batch writer) and profiles with ``Tally.identify``, exactly as an
application's would. ``track()`` is not used: it measures the wall-clock latency of its
block, which cannot be backfilled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from llmtally.demo.catalog import AGENTS
from llmtally.demo.traffic import DAY, Traffic
from llmtally.tally import Tally

_BATCH: Final = 500
_PROGRESS_EVERY: Final = 250  # LLM calls between progress reports


def demo_population(calls: int) -> int:
    """How many people the demo's ``calls`` LLM calls come from."""
    return max(20, min(400, calls // 60))


class Generator:
    """Records ``days`` of demo traffic ending at ``now`` into ``tally`` (its project)."""

    def __init__(self, tally: Tally, *, days: int, calls: int, seed: int, now: float) -> None:
        self.tally = tally
        self.start, self.end, self.calls = now - days * DAY, now, calls
        self.traffic = Traffic(
            seed=seed, humans=demo_population(calls), agents=len(AGENTS), project=tally.project
        )
        self.counts: Counter[str] = Counter()  # recorded events by kind
        self.rejected: list[dict[str, Any]] = []  # what ingest refused (a bug if any)

    def run(self, progress: Callable[[int], None] | None = None) -> Counter[str]:
        """Record everything; ``progress`` gets the number of LLM calls done since its last call."""
        for profile in self.traffic.profiles():
            self.tally.identify(
                profile.actor_id,
                actor_type=profile.actor_type,
                display_name=profile.display_name,
                real_name=profile.real_name,
                timezone=profile.timezone,
            )
        batch: list[dict[str, Any]] = []
        reported = 0
        for event in self.traffic.events(self.start, self.end, self.calls):
            batch.append(event)
            if len(batch) == _BATCH:
                self._ingest(batch)
                batch = []
                if progress is not None and self.counts["llm_call"] - reported >= _PROGRESS_EVERY:
                    progress(self.counts["llm_call"] - reported)
                    reported = self.counts["llm_call"]
        self._ingest(batch)
        if progress is not None:
            progress(self.counts["llm_call"] - reported)
        return self.counts

    def _ingest(self, batch: list[dict[str, Any]]) -> None:
        result = self.tally.ingest(batch)
        refused = {row["index"] for row in result.rejected}
        self.counts.update(e["kind"] for i, e in enumerate(batch) if i not in refused)
        self.rejected += result.rejected
