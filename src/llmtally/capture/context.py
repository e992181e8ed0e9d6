"""Attribution context: ``with tally.context(feature=..., actor=...)`` and ``last_call_id()``.

Attributes live in a ``ContextVar``, so they follow the code that runs inside the block:
asyncio tasks created inside it inherit them (tasks copy the context), concurrent
requests in other tasks or threads never see them. Nested blocks merge, the inner value
wins. Every call recorded inside the block picks them up (``track``, ``record_call``,
feedback, product events and instrumented clients); a value given explicitly to the
call wins over the context. The context is the code's, not a ``Tally``'s: every Tally in
the process sees it.

Plain threads do not inherit context variables before Python 3.14. So that threads
*started inside* a block are attributed too, the first ``context()`` ever entered wraps
``threading.Thread.start`` (a thread started while attributes are active runs with
them) and ``ThreadPoolExecutor.submit`` (each task runs with the submitter's attributes,
so a pool worker started inside one block never carries them into unrelated tasks).
Nothing else is changed, and threads started outside any block are left alone.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Final, TypeVar

from llmtally.capture.event import validate_fields
from llmtally.errors import InvalidEventError

T = TypeVar("T")

_EMPTY: Final[Mapping[str, Any]] = {}
_ATTRS: ContextVar[Mapping[str, Any]] = ContextVar("llmtally_attributes", default=_EMPTY)
_LAST_CALL: ContextVar[str | None] = ContextVar("llmtally_last_call_id", default=None)

# who/where attribution only: what a call measures (tokens, latency…) is never inherited
CONTEXT_FIELDS: Final = frozenset(
    {
        "feature",
        "actor_id",
        "actor_type",
        "session_id",
        "trace_id",
        "parent_id",
        "routing_strategy",
        "project",
        "metadata",
    }
)


def check_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate attribution keywords (``actor`` aliases ``actor_id``); None values are dropped."""
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        if value is None:
            continue
        key = "actor_id" if name == "actor" else name
        if key not in CONTEXT_FIELDS:
            allowed = ", ".join(sorted(CONTEXT_FIELDS | {"actor"}))
            raise InvalidEventError(name, f"is not an attribution field (one of {allowed})")
        if key in out and out[key] != value:
            raise InvalidEventError(name, "given twice with different values (actor and actor_id)")
        out[key] = dict(value) if key == "metadata" and isinstance(value, Mapping) else value
    validate_fields(out, {})  # fail at the `with` line, naming the field, not at each call
    return out


#: ``current_attributes()``: the attribution in force here (merged over every enclosing
#: ``context()``). The context variable's own method: no Python frame on the hot path.
current_attributes: Final[Callable[[], Mapping[str, Any]]] = _ATTRS.get


def last_call_id() -> str | None:
    """Id of the last LLM call recorded in the current context (task or thread), or None."""
    return _LAST_CALL.get()


#: ``set_last_call_id(call_id)``: remember ``call_id`` as the current context's last call
#: (the context variable's own method, as above; its token is not needed).
set_last_call_id: Final[Callable[[str], object]] = _LAST_CALL.set


def merge(base: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` overlaid with the non-None values of ``fields`` (explicit values win)."""
    out = dict(base)
    if fields.get("actor") is not None and "actor_id" not in fields:
        out.pop("actor_id", None)  # the call names its actor: the context's one gives way
    for name, value in fields.items():
        if value is not None:
            out[name] = value
    return out


def with_context(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the current context's attributes filled in where not given.

    Outside any ``context()`` block this is ``fields`` itself (no copy); inside one, a
    new dict.
    """
    attrs = _ATTRS.get()
    return merge(attrs, fields) if attrs else fields


class AttributionContext:
    """Sync (and async) context manager setting attribution for the code inside it."""

    __slots__ = ("_attrs", "_tokens")

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        self._attrs = check_attributes(attrs)
        self._tokens: list[Token[Mapping[str, Any]]] = []

    def __enter__(self) -> AttributionContext:
        _install_thread_propagation()
        outer = _ATTRS.get()
        self._tokens.append(_ATTRS.set({**outer, **self._attrs} if outer else self._attrs))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _ATTRS.reset(self._tokens.pop())

    async def __aenter__(self) -> AttributionContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The attributes this block sets (validated)."""
        return self._attrs


def context(**attrs: Any) -> AttributionContext:
    """Attribute every call recorded inside the block (feature, actor, session_id, trace_id…)."""
    return AttributionContext(attrs)


# -- threads -------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed = False


def _run_with(attrs: Mapping[str, Any], fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        token = _ATTRS.set(attrs)
        try:
            return fn(*args, **kwargs)
        finally:
            _ATTRS.reset(token)

    return run


def _install_thread_propagation() -> None:
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        original_start = threading.Thread.start
        original_submit: Any = ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            attrs = _ATTRS.get()
            if attrs:  # only threads started inside a block are touched
                self.run = _run_with(attrs, self.run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(
            self: ThreadPoolExecutor, fn: Callable[..., T], /, *args: Any, **kwargs: Any
        ) -> Future[T]:
            # always set (even to empty): a worker may have been started inside some block
            future: Future[T] = original_submit(self, _run_with(_ATTRS.get(), fn), *args, **kwargs)
            return future

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
        _installed = True
