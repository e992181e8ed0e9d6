"""``tally.track()``: a context manager (sync and async) and decorator around one LLM call.

The call's start time is ``occurred_at``; its wall-clock duration is ``latency_ms``.
An exception inside the block records ``status="error"`` with ``error_type`` (the
exception class name) and ``error_message`` (redacted later by the writer), then
propagates unchanged.

A ``Call`` records through a ``capture.recorder.Recorder`` (a ``Tally``). Entering the
block asks the recorder's gate first: a gate that raises stops the call before its body
runs, the exception propagates unchanged and nothing is recorded.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llmtally.capture.build import build, build_update
from llmtally.capture.context import set_last_call_id, with_context
from llmtally.capture.event import FIELDS, check_consistency
from llmtally.capture.recorder import CallScope, Gate, Recorder
from llmtally.capture.text import exception_text
from llmtally.capture.usage import from_response
from llmtally.errors import InvalidEventError

if TYPE_CHECKING:
    from types import TracebackType

F = TypeVar("F", bound=Callable[..., Any])
_ERROR_TYPE_MAX = FIELDS["error_type"].max_len


def open_call(recorder: Recorder, fields: dict[str, Any]) -> Call:
    """A ``Call`` for ``track(**fields)``; ``fields`` is kept, unchanged, as the decorator's
    template. A bad field goes to the recorder's invalid-event policy and, if that does
    not raise, the call is recorded without the given fields."""
    try:
        event = build(with_context(fields), "llm_call", recorder.project)
    except InvalidEventError as exc:
        recorder.invalid_event(exc, "llm_call")
        event = build({}, "llm_call", recorder.project)
    return Call(recorder, event, fields)


class Call:
    """One tracked LLM call. ``id`` is its event id (link feedback to it)."""

    __slots__ = ("_chunks", "_done", "_event", "_recorder", "_t0", "_template", "_ttft")

    def __init__(self, recorder: Recorder, event: dict[str, Any], template: dict[str, Any]) -> None:
        self._recorder = recorder
        self._event = event
        self._template = template
        self._t0 = time.perf_counter()
        self._ttft: float | None = None
        self._chunks = 0
        self._done = False

    @property
    def id(self) -> str:
        """The event id of this call."""
        return cast(str, self._event["event_id"])

    def set(self, **fields: Any) -> None:
        """Set or override event fields (validated now; bad input raises InvalidEventError)."""
        self._apply(fields)

    def record_usage(self, **tokens: Any) -> None:
        """Record token counts in llmtally's normalized form (see ``capture.event``)."""
        self._apply(tokens)

    def update(self, fields: Mapping[str, Any]) -> None:
        """Validate ``fields`` and merge them in one step: if any is bad, nothing changes."""
        self._apply(fields)

    def record_response(self, response: Any) -> None:
        """Read model, tokens and finish reason from an OpenAI, Anthropic or Gemini response."""
        try:
            fields = from_response(response)
        except Exception as exc:  # an object that only looks like a response
            self._invalid(
                InvalidEventError("response", f"could not be read ({exception_text(exc)})")
            )
            return
        if "provider" in fields and "provider" in self._event:
            fields.pop("provider")  # the caller's provider name wins (azure, vertex…)
        if "model" in self._event and "model" in fields:
            # keep the requested model; the answered snapshot is the version
            answered = fields.pop("model")
            if answered != self._event["model"]:
                fields.setdefault("model_version", answered)
        self._apply(fields)

    def _apply(self, fields: Mapping[str, Any]) -> None:
        """Validate and merge ``fields`` all or nothing: a bad one leaves the event unchanged."""
        try:
            checked = build_update(fields, "llm_call")
            if checked:
                check_consistency({**self._event, **checked})
        except InvalidEventError as exc:
            self._invalid(exc)
            return
        self._event.update(checked)

    def _invalid(self, exc: InvalidEventError) -> None:
        # raises, or (on_invalid="warn") logs and counts: the recorder's own rule
        self._recorder.invalid_event(exc, "llm_call")

    def first_token(self) -> None:
        """Mark the arrival of the first token (sets ``ttft_ms``)."""
        if self._ttft is None:
            self._ttft = (time.perf_counter() - self._t0) * 1000.0

    def chunk(self) -> None:
        """Count one streamed chunk; the first one also sets ``ttft_ms``."""
        if self._ttft is None:
            self._ttft = (time.perf_counter() - self._t0) * 1000.0
        self._chunks += 1

    def fail(self, error: BaseException | str, *, error_type: str | None = None) -> None:
        """Mark the call failed without raising (e.g. a refusal handled by the app)."""
        if isinstance(error, BaseException):
            # runs inside __exit__: nothing derived from the exception may raise there
            kind = type(error).__name__[:_ERROR_TYPE_MAX] or "Error"
            try:
                message: Any = str(error)
            except Exception as exc:
                message = f"<str() of the exception failed: {exception_text(exc)}>"
        else:
            kind, message = "Error", error
        if error_type is not None:
            kind = error_type  # the caller's: validated below like any field
        self._apply({"error_type": kind, "error_message": message})
        self._event["status"] = "error"  # also when (on_invalid="warn") the details were bad

    def finish(self, exc: BaseException | None = None) -> None:
        """Close the call and hand it to the pipeline (done by the context manager)."""
        if self._done:
            return
        self._done = True
        event = self._event
        event["latency_ms"] = (time.perf_counter() - self._t0) * 1000.0
        if exc is not None:
            self.fail(exc)
        event.setdefault("status", "success")
        if self._ttft is not None:
            event.setdefault("ttft_ms", self._ttft)
        if self._chunks:
            event.setdefault("stream_chunks", self._chunks)
            event.setdefault("stream", True)
        event.setdefault("model", "unknown")
        self._recorder.enqueue(event)

    def _gate(self, gate: Gate) -> None:
        """Ask the recorder's gate; a call it stops is never recorded."""
        try:
            gate(CallScope.of(self._event))
        except BaseException:
            self._done = True
            raise
        self._t0 = time.perf_counter()  # the call starts once the gate let it

    def __enter__(self) -> Call:
        gate = self._recorder.gate
        if gate is not None:  # the only cost without a gate: one attribute, one test
            self._gate(gate)
        set_last_call_id(self._event["event_id"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    async def __aenter__(self) -> Call:
        gate = self._recorder.gate
        if gate is not None:
            self._gate(gate)
        set_last_call_id(self._event["event_id"])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: every invocation of ``fn`` is one tracked call."""
        self._done = True  # the decorating instance itself is never recorded
        recorder, template = self._recorder, self._template

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with open_call(recorder, template) as call:
                    result = await fn(*args, **kwargs)
                    _maybe_record(call, result)
                    return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with open_call(recorder, template) as call:
                result = fn(*args, **kwargs)
                _maybe_record(call, result)
                return result

        return cast(F, wrapper)


def _maybe_record(call: Call, result: Any) -> None:
    if result is None:
        return
    if any(getattr(result, name, None) is not None for name in ("usage", "usage_metadata")) or (
        isinstance(result, dict) and ("usage" in result or "usageMetadata" in result)
    ):
        call.record_response(result)
