"""The recorder protocol: what ``Call`` and the instrumented clients need from a recorder.

``track()`` calls (``capture.track.Call``) and instrumented SDK clients
(``capture.instrument``) build and validate their events themselves; from whoever
records them they need only:

* ``project``: the project of events that name none;
* ``enqueue(event)``: take one finished, validated event (it must not block or raise);
* ``invalid_event(exc, kind)``: the invalid-event policy — raise ``exc``, or count and
  log it and return a fresh event id;
* ``gate``: None, or a callable asked with the ``CallScope`` of every call before it
  starts (before a ``with tally.track(...)`` body runs, before an instrumented client
  contacts its provider). It raises to stop the call; the exception reaches the caller
  unchanged and the call is not recorded. It must be a cached, in-memory check — it
  runs on the caller's thread for every call — never a query.

``llmtally.Tally`` implements it; anything else that does (a test's recorder, a
forwarding recorder in a server) can be handed to ``instrument(client, tally=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llmtally.errors import InvalidEventError


@dataclass(frozen=True, slots=True)
class CallScope:
    """Who and what a call is about, as a gate sees it before the call starts."""

    project: str | None
    feature: str | None
    model: str | None
    provider: str | None
    actor: str | None  # the event's actor_id
    session_id: str | None

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> CallScope:
        """The scope of an event being built (fields not known yet are None)."""
        get = event.get
        return cls(
            get("project"),
            get("feature"),
            get("model"),
            get("provider"),
            get("actor_id"),
            get("session_id"),
        )


#: A pre-call gate: returns to let the call go on, raises to stop it.
Gate = Callable[[CallScope], None]


@runtime_checkable
class Recorder(Protocol):
    """What ``Call`` and instrumented clients record through (``llmtally.Tally`` is one)."""

    project: str
    gate: Gate | None

    def enqueue(self, event: dict[str, Any]) -> None:
        """Take one finished, validated event; never block or raise."""
        ...

    def invalid_event(self, exc: InvalidEventError, kind: str) -> str:
        """Apply the invalid-event policy: raise ``exc``, or log and count it and return an id."""
        ...


def check_gate(recorder: Recorder, event: Mapping[str, Any]) -> None:
    """Ask the recorder's gate about the call ``event`` opens (nothing when it has none)."""
    gate = recorder.gate
    if gate is not None:
        gate(CallScope.of(event))
