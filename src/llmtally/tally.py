"""``Tally``: the library's front door. All configuration is keyword arguments.

A ``Tally`` never reads the environment (see ``llmtally.config`` for the edge helpers
that do). With no ``database_url`` it is disabled: every capture call is a no-op that
still returns an event id, so application code needs no ``if analytics:`` branches.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import Unpack

from llmtally.capture.build import build_from_mapping, build_owned
from llmtally.capture.context import (
    AttributionContext,
    current_attributes,
    merge,
    set_last_call_id,
    with_context,
)
from llmtally.capture.event import validate_fields
from llmtally.capture.pricing import PriceBook
from llmtally.capture.recorder import CallScope, Gate
from llmtally.capture.redact import Redactor
from llmtally.capture.text import exception_text, short_repr
from llmtally.capture.track import Call, open_call
from llmtally.errors import ConfigError, InvalidEventError, QueryError
from llmtally.event import ACTOR_TEXT_LIMITS, CallFields, new_event_id
from llmtally.pipeline.process import BeforeSend, BeforeSendHook, Identify, Processor
from llmtally.pipeline.writer import Writer
from llmtally.settings import TallySettings
from llmtally.store.base import Store, normalize_url, open_store

if TYPE_CHECKING:
    from llmtally.query.reports import Reports

log = logging.getLogger("llmtally")


def _actor_text(name: str, value: Any) -> str | None:
    """One identify() enrichment value: None, or a string that fits its column."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEventError(
            name, f"must be a string, got {type(value).__name__} {short_repr(value)}", value
        )
    text = str.__str__(value)  # a StrEnum member or other subclass: its plain text
    limit = ACTOR_TEXT_LIMITS[name]
    if len(text) > limit:
        raise InvalidEventError(name, f"is {len(text)} characters; at most {limit} allowed")
    return text


def default_spool_dir(database_url: str) -> Path:
    """Per-database spool directory under the user's data dir."""
    import platformdirs

    url = normalize_url(database_url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # the same file however it is named (relative to the app's or the CLI's cwd)
        url = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(platformdirs.user_data_dir("llmtally")) / "spool" / digest


@dataclass(slots=True)
class IngestResult:
    """Outcome of ``Tally.ingest``: how many events were accepted, which were rejected and why."""

    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)


class Tally:
    """Records LLM calls, feedback and product events into a store, off the caller's thread."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        project: str = "default",
        custom_pricing: Mapping[str, Any] | None = None,
        capture_content: bool = False,
        redact_pii: bool = True,
        redact_patterns: Mapping[str, str] | None = None,
        retention_days: int | None = None,
        on_invalid: Literal["raise", "warn"] = "raise",
        queue_size: int = 10_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.5,
        spool_interval: float = 0.2,
        exit_timeout: float = 2.0,
        connect_timeout: float = 10.0,
        spool_dir: str | Path | None = None,
        fsync_interval: float | None = None,
        spool_max_bytes: int = 1 << 30,
        max_backoff: float = 30.0,
        sample_rate: float = 1.0,
        sample_kinds: Iterable[str] = ("product", "tool_call"),
        quality_weights: Mapping[str, float] | None = None,
        gc_freeze: bool = True,
        # hooks: code-only settings (functions have no config key or environment variable)
        gates: Iterable[Gate] = (),
        before_send: BeforeSendHook | None = None,
    ) -> None:
        """Every argument is defined (type, default, doc) once, in ``llmtally.settings``."""
        # checked and normalized by that definition; a bad value is a ConfigError naming it
        self.settings = TallySettings.from_arguments(locals())
        kinds = frozenset(self.settings.sample_kinds)
        self.project = project
        self.database_url = database_url
        self.enabled = database_url is not None
        self.retention_days = retention_days
        self._raise_invalid = on_invalid == "raise"
        self._connect_timeout = connect_timeout
        # built eagerly so that bad pricing or patterns fail here, not on the writer thread
        self.prices = PriceBook(custom_pricing=custom_pricing)
        self._redactor = Redactor(enabled=redact_pii, extra_patterns=redact_patterns)
        self._capture_content = capture_content
        from llmtally.query.feedback import QualityWeights

        # checked here so that a bad weight fails at construction, naming it
        try:
            self._quality = QualityWeights.of(quality_weights)
        except QueryError as exc:
            raise ConfigError(f"quality_weights.{exc.argument}", exc.reason) from None
        self._invalid = 0
        # pre-call gates (add_gate) and the writer-side before_send hook
        self.gate: Gate | None = None
        self._gates: tuple[Gate, ...] = ()
        self._blocked = 0
        for gate in self.settings.gates:  # a tuple by now (``gates`` may be an iterator)
            self.add_gate(gate)
        self._before_send = BeforeSend(before_send) if before_send is not None else None
        # sampling only touches the configured kinds; user-facing calls stay at 100%
        self._sample_rate = float(sample_rate)
        self._sample_kinds = kinds if sample_rate < 1.0 else frozenset()
        self._sample_llm_calls = "llm_call" in self._sample_kinds
        self._reports: Reports | None = None
        self._reports_lock = threading.Lock()
        self._writer: Writer | None = None
        if database_url is not None:
            self.spool_dir = Path(spool_dir) if spool_dir else default_spool_dir(database_url)
            self._writer = Writer(
                open_store=self._open_store,
                make_processor=self._make_processor,
                spool_dir=self.spool_dir,
                queue_size=queue_size,
                batch_size=batch_size,
                spool_interval=spool_interval,
                flush_interval=flush_interval,
                exit_timeout=exit_timeout,
                fsync_interval=fsync_interval,
                max_backoff=max_backoff,
                spool_max_bytes=spool_max_bytes,
                on_ready=self._on_store_ready,
                gc_freeze=gc_freeze,
            )

    # -- capture API -------------------------------------------------------------------

    def record_call(self, **fields: Unpack[CallFields]) -> str:
        """Record one finished LLM call; return its id (``actor=`` aliases ``actor_id``)."""
        writer = self._writer
        if writer is None or self._sample_llm_calls:
            recorded = self._record(fields, "llm_call")  # type: ignore[arg-type]
            set_last_call_id(recorded)
            return recorded
        # the hot path, inlined: context attributes, validate, then one queue put; the
        # kwargs dict is this call's own, so it is validated in place into the event
        owned: dict[str, Any] = fields  # type: ignore[assignment]
        attrs = current_attributes()
        if attrs:
            owned = merge(attrs, owned)
        try:
            event = build_owned(owned, "llm_call", self.project, True)
        except InvalidEventError as exc:
            return self.invalid_event(exc, "llm_call")
        writer.put(event)
        event_id: str = event["event_id"]
        set_last_call_id(event_id)
        return event_id

    def record_tool_call(self, name: str, **fields: Any) -> str:
        """Record one tool/function execution (``kind="tool_call"``); returns its event id."""
        fields["name"] = name
        return self._record(fields, "tool_call")

    def record_feedback(
        self,
        call_id: str,
        *,
        rating: Literal["up", "down"] | None = None,
        regenerated: bool | None = None,
        edited: bool | None = None,
        comment: str | None = None,
        actor: str | None = None,
        **fields: Any,
    ) -> str:
        """Record user feedback on a call (``call_id`` from ``track``/``record_call``)."""
        fields.update(
            parent_id=call_id,
            rating=rating,
            regenerated=regenerated,
            edited=edited,
            comment=comment,
            actor=actor,
        )
        return self._record(fields, "feedback")

    def record_event(
        self,
        name: str,
        *,
        actor: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Record a product event (``new_conversation``, ``thumbs_up``, ``user_joined``…)."""
        fields.update(name=name, actor=actor)
        if properties is None:
            return self._record(fields, "product")
        fields["metadata"] = properties  # validated (and copied) like metadata
        return self._record(fields, "product", metadata_as="properties")

    def ingest(
        self, events: Iterable[Mapping[str, Any]], *, project: str | None = None
    ) -> IngestResult:
        """Record a batch of raw event mappings; bad ones are rejected alone, with the field named.

        Each mapping holds event fields (``kind`` defaults to ``llm_call``). This is the
        path of the HTTP collector and of imports. With ``project=P`` the batch is pinned
        to P: a row without ``project`` gets P and a row naming another project is
        rejected (field ``project``), so a payload cannot write into another project.
        Without it, a row's own ``project`` is kept and rows without one get this
        Tally's.
        """
        if project is not None and (type(project) is not str or not project):
            raise ConfigError("project", f"must be a non-empty string, got {project!r}")
        result = IngestResult()
        # read the whole batch first: an iterator failing half way must not leave its
        # first rows queued behind an exception
        try:
            if isinstance(events, Mapping | str | bytes | bytearray):
                raise TypeError(f"got a single {type(events).__name__}")
            rows = list(events)
        except Exception as exc:
            self.invalid_event(
                InvalidEventError(
                    "events",
                    f"must be an iterable of event mappings ({exception_text(exc)})",
                    events,
                ),
                "batch",
            )
            return result
        default = self.project if project is None else project
        for index, raw in enumerate(rows):
            try:
                event = build_from_mapping(raw, project=default)
                if project is not None and event["project"] != project:
                    raise InvalidEventError(
                        "project",
                        f"must be {project!r} (this batch is pinned to it), "
                        f"got {short_repr(event['project'])}",
                        event["project"],
                    )
            except InvalidEventError as exc:
                result.rejected.append({"index": index, "field": exc.field, "error": str(exc)})
                continue
            except Exception as exc:  # pragma: no cover - a bug; the batch still goes on
                log.exception("llmtally: ingest could not validate row %d", index)
                result.rejected.append(
                    {
                        "index": index,
                        "field": "event",
                        "error": f"event: internal error ({exception_text(exc)})",
                    }
                )
                continue
            if self._writer is not None:
                self._writer.put(event)
            result.accepted += 1
            result.event_ids.append(event["event_id"])
        return result

    def identify(
        self,
        actor_id: str,
        *,
        actor_type: Literal["human", "agent"] = "human",
        display_name: str | None = None,
        real_name: str | None = None,
        timezone: str | None = None,
        email: str | None = None,
    ) -> None:
        """Enrich an actor, upserted by ``(actor_type, actor_id)``; None keeps the stored value."""
        try:
            if actor_id is None:
                raise InvalidEventError("actor_id", "is required")
            if actor_type is None:
                raise InvalidEventError("actor_type", "must be human or agent, got None")
            who = validate_fields({"actor_id": actor_id, "actor_type": actor_type}, {})
            display_name = _actor_text("display_name", display_name)
            real_name = _actor_text("real_name", real_name)
            timezone = _actor_text("timezone", timezone)
            email = _actor_text("email", email)
        except InvalidEventError as exc:
            self.invalid_event(exc, "identify")
            return
        if self._writer is not None:
            self._writer.put(
                Identify(
                    who["actor_type"],
                    who["actor_id"],
                    display_name,
                    real_name,
                    timezone,
                    email,
                    time.time(),
                )
            )

    def track(self, **fields: Any) -> Call:
        """Context manager / decorator timing one LLM call; see ``Call``.

        Entering it asks the gates (``add_gate``) first; a gate that raises stops the
        call before the block runs, and nothing is recorded.
        """
        # build() leaves ``fields`` untouched: it doubles as the decorator's template
        return open_call(self, fields)

    def context(self, **attrs: Any) -> AttributionContext:
        """Attribute the calls recorded inside ``with tally.context(feature=..., actor=...)``.

        Takes ``feature``, ``actor``/``actor_id``, ``actor_type``, ``session_id``,
        ``trace_id``, ``parent_id``, ``routing_strategy``, ``project`` and ``metadata``.
        Nested blocks merge (inner wins); asyncio tasks and threads started inside
        inherit it; explicit arguments of a call win over it. See ``capture.context``.
        """
        return AttributionContext(attrs)

    # -- the recorder protocol (capture.recorder) and gates ----------------------------

    def invalid_event(self, exc: InvalidEventError, kind: str) -> str:
        """The invalid-event policy (``on_invalid``): raise ``exc``, or log it, count it in
        ``stats()["invalid"]`` and return a fresh event id."""
        if self._raise_invalid:
            raise exc
        if self._writer is not None:
            self._writer.counters.invalid += 1
        self._invalid += 1
        log.warning("llmtally: invalid %s event dropped: %s", kind, exc)
        return new_event_id()

    def enqueue(self, event: dict[str, Any]) -> None:
        """Hand one validated event (``capture.build``) to the pipeline; never blocks or raises.

        This is how ``track()`` calls and instrumented clients record.
        """
        if self._writer is not None:
            self._writer.put(event)

    def add_gate(self, gate: Gate) -> None:
        """Ask ``gate(scope)`` before every ``track()`` body and instrumented provider call.

        ``scope`` is a ``CallScope`` (project, feature, model, provider, actor,
        session_id). A gate returns to let the call go on or raises to stop it before the
        provider is contacted: the exception reaches the caller unchanged and the call is
        not recorded (``stats()["blocked"]`` counts it). Gates run on the caller's thread
        for every call, so a gate must be a cached, in-memory check, never a query.
        ``record_call`` (a call that already happened) is not gated.
        """
        if not callable(gate):
            raise ConfigError("gates", f"a gate must be callable, got {type(gate).__name__}")
        self._gates = (*self._gates, gate)
        self._set_gate()

    def remove_gate(self, gate: Gate) -> None:
        """Stop asking ``gate`` (added with ``add_gate`` or ``gates=``)."""
        self._gates = tuple(g for g in self._gates if g is not gate)
        self._set_gate()

    def _set_gate(self) -> None:
        # ``gate`` is what Call and the instrumented clients read: None costs them one
        # attribute test per call; otherwise one callable asking every gate in order
        self.gate = self._ask_gates if self._gates else None

    def _ask_gates(self, scope: CallScope) -> None:
        try:
            for gate in self._gates:
                gate(scope)
        except BaseException:
            self._blocked += 1
            raise

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything recorded so far is stored; False if ``timeout`` ran out."""
        return True if self._writer is None else self._writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (bounded) and stop the writer; the Tally records nothing afterwards."""
        ok = True if self._writer is None else self._writer.close(timeout)
        if self._reports is not None:
            self._reports.close()
        return ok

    def __enter__(self) -> Tally:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Pipeline counters: queued, written, duplicates, rejected, dropped, retries, invalid.

        Also ``blocked`` (calls a gate stopped) and, with a ``before_send`` hook,
        ``before_send_dropped``, ``before_send_errors`` and ``before_send_invalid``.
        """
        base: dict[str, Any] = {
            "enabled": self.enabled,
            "invalid": self._invalid,
            "blocked": self._blocked,  # calls a gate stopped
        }
        hook = self._before_send
        if hook is not None:
            base.update(
                before_send_dropped=hook.dropped,
                before_send_errors=hook.errors,
                before_send_invalid=hook.invalid,
            )
        if self._writer is not None:
            base.update(self._writer.stats())
        return base

    @property
    def reports(self) -> Reports:
        """The query layer over this Tally's database."""
        if self.database_url is None:
            raise ConfigError("database_url", "reports need a database; this Tally is disabled")
        with self._reports_lock:
            if self._reports is None:
                from llmtally.query.reports import Reports

                store = open_store(self.database_url, connect_timeout=self._connect_timeout)
                store.migrate()
                self._reports = Reports(store.engine, project=None, quality_weights=self._quality)
            return self._reports

    # -- internals ---------------------------------------------------------------------

    def _record(self, fields: dict[str, Any], kind: str, metadata_as: str | None = None) -> str:
        if self._writer is None:
            return new_event_id()  # disabled: a no-op that still hands back an id
        try:
            event = build_owned(with_context(fields), kind, self.project, kind == "llm_call")
        except InvalidEventError as exc:
            if metadata_as is not None and exc.field == "metadata":
                exc = InvalidEventError(metadata_as, exc.reason, exc.value)  # the caller's name
            return self.invalid_event(exc, kind)
        # validated before sampling: a bad call fails every time, not one time in N
        if kind in self._sample_kinds and random.random() >= self._sample_rate:
            self._writer.counters.sampled_out += 1
            return event["event_id"]  # type: ignore[no-any-return]
        self._writer.put(event)
        return event["event_id"]  # type: ignore[no-any-return]

    def _open_store(self) -> Store:
        assert self.database_url is not None
        return open_store(self.database_url, connect_timeout=self._connect_timeout)

    def _make_processor(self, store: Store) -> Processor:
        return Processor(
            prices=self.prices,
            redactor=self._redactor,
            capture_content=self._capture_content,
            ts=store.ts,
            before_send=self._before_send,
        )

    def _on_store_ready(self, store: Store) -> None:
        if self.retention_days is not None:
            from llmtally.store.maintenance import delete_older_than

            try:
                deleted = delete_older_than(store.engine, days=self.retention_days)
            except Exception as exc:  # retention must never stop event writing
                log.warning("llmtally: retention cleanup failed: %s", exc)
            else:
                if deleted:
                    log.info("llmtally: retention removed %d events", deleted)
