"""The demo traffic model: a seeded population and a daily rhythm, as a stream of events.

``Traffic`` is shared by ``llmtally demo`` (a range of history recorded through a real
``Tally``), the reports benchmark's generator (the same range, tens of millions of
events, made in parallel and turned into store rows) and a live mode for a demo server
(``live``: endless traffic from now on, at a rate, each event when its time comes).

Time is cut into hours (``Hour``): each hour has its number of LLM calls, from a
working-hours and weekday rhythm (UTC) with slow growth over a range, and its own RNG
derived from the seed and the hour's place in its range, so an hour's traffic does not
depend on the hours made before it. Same seed, same range, same traffic — event ids
included, so recording a range twice stores it once. Another range (a demo run a
minute later) gets much the same sessions, but other event ids: the ids are salted with
the range, so that recording both keeps both.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Final, Literal

from llmtally.demo.catalog import (
    AGENTS,
    FIRST_NAMES,
    GROWTH,
    HOURLY,
    INCIDENT_HOURS,
    LAST_NAMES,
    NAMED_HUMANS,
    PROJECT,
    TIMEZONES,
    WEEKEND,
)
from llmtally.demo.sessions import Event, Population, SessionMaker

HOUR: Final = 3600.0
DAY: Final = 86_400.0
# sessions of a range start this long before its end (or 5% of it), so that they finish
# inside it; the rare one running longer has its last events at the end
_SESSION_MARGIN: Final = 45 * 60.0
_WEEKLY_MEAN: Final = sum(HOURLY) * (5 + 2 * WEEKEND) / (7 * 24)
_TIME: Final = itemgetter("occurred_at")


@dataclass(frozen=True, slots=True)
class Hour:
    """A stretch of at most an hour (``lo`` to ``hi``, Unix seconds) and its LLM calls.

    ``key`` names the hour for its RNG: its place in its range (or live stream).
    """

    lo: float
    hi: float
    calls: int
    key: str


@dataclass(frozen=True, slots=True)
class Profile:
    """What ``Tally.identify`` is told about an actor."""

    actor_id: str
    actor_type: Literal["human", "agent"]
    display_name: str
    real_name: str | None = None
    timezone: str | None = None


def rhythm(at: float) -> float:
    """Relative activity of the clock hour holding ``at``: time of day and weekday (UTC)."""
    day = int(at // DAY)
    weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday; 5 and 6 are the weekend
    return HOURLY[int(at % DAY) // 3600] * (WEEKEND if weekend else 1.0)


class Traffic:
    """The traffic of one product: who uses it, with which seed, into which project.

    ``project=None`` spreads the features over their own projects (web, support,
    mobile, platform) instead of one.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        humans: int = 400,
        agents: int = len(AGENTS),
        project: str | None = PROJECT,
    ) -> None:
        if humans < 1 or agents < 1:
            raise ValueError("traffic needs at least one person and one agent")
        self.seed = seed
        self.project = project
        self.population = Population(seed, humans=humans, agents=agents)

    # -- who ---------------------------------------------------------------------------

    def profiles(self) -> list[Profile]:
        """Profiles of the named people and of every agent (the rest stay bare ids)."""
        rng = self.population.profile_rng()
        out = []
        for i, actor in enumerate(self.population.humans[:NAMED_HUMANS]):
            first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
            out.append(
                Profile(
                    actor,
                    "human",
                    f"{first.lower()}.{last.lower()}",
                    f"{first} {last}",
                    rng.choice(TIMEZONES),
                )
            )
        names = dict(AGENTS)
        for actor in self.population.agents:
            # the agents beyond the named ones are "agent:<role>-<n>": shown as "Role n"
            plain = actor.removeprefix("agent:").replace("-", " ").capitalize()
            out.append(Profile(actor, "agent", names.get(actor) or plain))
        return out

    # -- when --------------------------------------------------------------------------

    def plan(self, start: float, end: float, calls: int) -> list[Hour]:
        """The hours of a range and their calls: exactly ``calls`` in all, by the rhythm."""
        if not start < end:
            raise ValueError("a range must end after it starts")
        last = end - min(_SESSION_MARGIN, (end - start) * 0.05)
        spans = []
        at = start - start % HOUR
        while at < last:
            lo, hi = max(at, start), min(at + HOUR, last)
            growth = 1 + GROWTH * (lo - start) / (last - start)
            spans.append((lo, hi, rhythm(at) * growth * (hi - lo) / HOUR))
            at += HOUR
        total = sum(weight for *_, weight in spans)
        hours, share, given = [], 0.0, 0
        for i, (lo, hi, weight) in enumerate(spans):
            share += calls * weight / total
            n = round(share) - given  # carried rounding: the hours add up to `calls`
            given += n
            hours.append(Hour(lo, hi, n, str(i)))
        return hours

    def incident(self, start: float, end: float) -> tuple[float, float]:
        """The range's incident: Anthropic overloaded from 14:00 UTC one day 60% into it."""
        day = start + int((end - start) / DAY * 0.6) * DAY
        begin = day - day % DAY + 14 * HOUR
        return begin, begin + INCIDENT_HOURS * HOUR

    def hours_from(self, start: float, calls_per_hour: float) -> Iterator[Hour]:
        """Endless hours from ``start`` averaging ``calls_per_hour`` over a week (no growth)."""
        share, given = 0.0, 0
        lo = start
        for i in itertools.count():
            hi = lo - lo % HOUR + HOUR
            share += calls_per_hour * rhythm(lo) / _WEEKLY_MEAN * (hi - lo) / HOUR
            n = round(share) - given
            given += n
            yield Hour(lo, hi, n, f"live/{i}")
            lo = hi

    # -- events ------------------------------------------------------------------------

    def events(
        self, start: float, end: float, calls: int, *, hours: slice | None = None
    ) -> Iterator[Event]:
        """The range's events in time order: exactly ``calls`` LLM calls, all before ``end``.

        ``hours``, a slice of ``plan(start, end, calls)``, makes only the sessions starting
        in those hours: one share of the range, the same events as in the whole (but for
        first meetings, see ``stream``), so shares can be made in parallel.
        """
        plan = self.plan(start, end, calls)
        return self.stream(
            plan if hours is None else plan[hours],
            incident=self.incident(start, end),
            end=end,
            ids=f"{start!r}-{end!r}",
        )

    def stream(
        self,
        hours: Iterable[Hour],
        *,
        incident: tuple[float, float] | None = None,
        end: float | None = None,
        ids: str = "",
    ) -> Iterator[Event]:
        """The events of sessions starting in ``hours`` (consecutive), in time order.

        Nothing is at or after ``end``; ``ids`` salts the event ids. People met for the
        first time in this stream may first join a channel: a stream over part of a range
        (a benchmark worker's share) therefore has its own first meetings.
        """
        salt = int.from_bytes(hashlib.sha256(ids.encode()).digest()[:10]) >> 6  # 74 bits
        maker = SessionMaker(
            self.population, project=self.project, incident=incident, end=end, ids=salt
        )
        pending: list[Event] = []
        for hour in hours:
            if hour.calls:
                rng = random.Random(f"{self.seed}:{hour.key}")  # a str seed hashes stably
                pending += maker.hour(rng, hour.lo, hour.hi, hour.calls)
                pending.sort(key=_TIME)
            # every later session starts at or after hour.hi: what comes before it is final
            cut = bisect_left(pending, hour.hi, key=_TIME)
            if cut:
                yield from pending[:cut]
                del pending[:cut]
        yield from pending

    def live(
        self,
        calls_per_hour: float,
        *,
        start: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[Event]:
        """Endless traffic from ``start`` (default: now), each event when its time comes.

        An event is yielded once ``clock`` reaches its ``occurred_at`` (for a call, its
        start: its latency is still ahead). A demo server feeds these to its ``Tally``.
        """
        begin = clock() if start is None else start
        hours = self.hours_from(begin, calls_per_hour)
        for event in self.stream(hours, ids=f"live {begin!r}"):
            wait = event["occurred_at"] - clock()
            if wait > 0:
                sleep(wait)
            yield event
