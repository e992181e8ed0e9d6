"""The demo traffic model, shared by ``llmtally demo``, the benchmarks and a demo server.

``Traffic`` makes seeded, realistic events (features, models, people and agents,
sessions, traces, errors and an incident, feedback, tool calls, product events) as
plain event mappings; ``Generator`` records a range of them into a ``Tally``.
"""

from __future__ import annotations

from llmtally.demo.catalog import CUSTOM_PRICING, PROJECT, UNPRICED_MODEL
from llmtally.demo.record import Generator, demo_population
from llmtally.demo.sessions import Event
from llmtally.demo.traffic import Hour, Profile, Traffic

__all__ = [
    "CUSTOM_PRICING",
    "PROJECT",
    "UNPRICED_MODEL",
    "Event",
    "Generator",
    "Hour",
    "Profile",
    "Traffic",
    "demo_population",
]
