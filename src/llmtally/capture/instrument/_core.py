"""What every provider wrapper shares: the binding to a recorder, proxies, call bookkeeping.

The hot path of a wrapped call is: merge attribution, validate a dozen fields into an
event (``build``), ask the recorder's gate, call the SDK, read usage from the response
(``from_response``), put the event on the pipeline's queue. Pricing, redaction and I/O
happen on the writer thread. Nothing here may raise into the application: a failure to
record is logged and the SDK's own result or exception goes back to the caller
unchanged. The one exception is the gate's own: a gate that raises stops the call
before the provider is contacted, and the call is not recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from llmtally.capture.build import build, checked
from llmtally.capture.context import current_attributes, set_last_call_id
from llmtally.capture.event import FIELDS, validate_fields
from llmtally.capture.recorder import CallScope, Recorder
from llmtally.capture.track import Call
from llmtally.capture.usage import from_response
from llmtally.errors import InvalidEventError
from llmtally.event import event_id_at

log = logging.getLogger("llmtally")

# ~4 characters per token: the usual rule of thumb for English text and code in
# BPE tokenizers; used only when a provider reported no usage (usage_estimated=True)
CHARS_PER_TOKEN: Final = 4
_TEXT_KEYS: Final = frozenset(
    {"messages", "content", "text", "input", "instructions", "system", "contents", "parts"}
)
_warned: set[str] = set()
_MODEL_MAX: Final = FIELDS["model"].max_len
_NO_TEMPLATE: Final[dict[str, Any]] = {}  # a wrapped call is never used as a decorator


def warn_once(key: str, message: str, *args: Any) -> None:
    """Log a recording problem once per kind, never raise it."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args, exc_info=True)


def number(value: Any) -> float | int | None:
    """``value`` if it is a plain int or float (not bool, not the SDKs' omit sentinels)."""
    kind = type(value)
    return value if kind is float or kind is int else None


def integer(value: Any) -> int | None:
    """``value`` if it is a plain int (not bool)."""
    return value if type(value) is int else None


def estimate_tokens(chars: int) -> int:
    """Token estimate for ``chars`` characters of text (rounded up)."""
    return -(-chars // CHARS_PER_TOKEN)


def text_chars(value: Any, depth: int = 0) -> int:
    """Characters of text in a prompt structure (strings, message dicts, SDK content objects)."""
    if isinstance(value, str):
        return len(value)
    if depth > 8 or value is None:
        return 0
    if isinstance(value, Mapping):
        return sum(text_chars(v, depth + 1) for k, v in value.items() if k in _TEXT_KEYS)
    if isinstance(value, (list, tuple)):
        return sum(text_chars(v, depth + 1) for v in value)
    total = 0
    for name in ("text", "parts", "content"):  # google-genai Content/Part and similar objects
        attr = getattr(value, name, None)
        if attr is not None and not callable(attr):
            total += text_chars(attr, depth + 1)
    return total


def checked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` validated for an event (None values dropped), by ``build()``'s rules.

    Values of the usual types pass the inline checks of ``capture.build``; anything else
    goes to its field's full checker, which converts it or raises InvalidEventError
    naming the field.
    """
    return checked(fields)


def consistent(event: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
    """Whether ``event`` overlaid with ``update`` keeps cached ⊆ input, reasoning ⊆ output."""

    def get(name: str) -> int:
        value = update.get(name)
        return (event.get(name) or 0) if value is None else value

    has_input = "input_tokens" in update or "input_tokens" in event
    if has_input and get("cache_read_tokens") + get("cache_write_tokens") > get("input_tokens"):
        return False
    if get("cache_write_1h_tokens") > get("cache_write_tokens"):
        return False
    has_output = "output_tokens" in update or "output_tokens" in event
    return not (has_output and get("reasoning_tokens") > get("output_tokens"))


class Binding:
    """What an instrumented client records with: the recorder, its attributes and provider."""

    __slots__ = ("attrs", "provider", "recorder", "template")

    def __init__(self, recorder: Recorder, attrs: Mapping[str, Any], provider: str) -> None:
        self.recorder = recorder
        self.attrs = dict(attrs)
        self.provider = provider
        # what every call of this client shares, validated once (build() raises here, at
        # instrument() time, for a bad attribute); per call only what varies is checked
        template = build({**self.attrs, "provider": provider}, "llm_call", recorder.project)
        del template["event_id"], template["occurred_at"]
        self.template = template

    def start(self, model: Any, params: Mapping[str, Any], provider: str | None = None) -> Call:
        """Open the event of one call (attribution: instrument() < context < this call).

        Asks the recorder's gate before the caller sends the request; its exception
        propagates and nothing is recorded.
        """
        event = self.template.copy()
        ctx = current_attributes()
        if ctx:
            validate_fields(ctx, event)  # checked at the `with` line already: cannot fail
        if type(model) is str and 0 < len(model) <= _MODEL_MAX:
            event["model"] = model
        if provider and len(provider) <= _MODEL_MAX:
            event["provider"] = provider
        try:
            event.update(checked_fields(params))
        except InvalidEventError:
            # an odd request parameter must not cost the call its record, nor raise
            warn_once("start", "llmtally: dropped request parameters it could not record")
        gate = self.recorder.gate
        if gate is not None:  # without a gate: one attribute, one test
            gate(CallScope.of(event))  # raises to stop the call: not recorded
        now = time.time()
        event["event_id"] = event_id_at(now)
        event["occurred_at"] = now
        call = Call(self.recorder, event, _NO_TEMPLATE)
        set_last_call_id(call.id)
        return call

    def fields_of(self, response: Any) -> dict[str, Any]:
        """Normalized fields of a provider response (provider name stays the binding's)."""
        fields = from_response(response)
        fields.pop("provider", None)
        return fields


def finish_ok(call: Call, fields: Mapping[str, Any]) -> None:
    """Record what the response said and hand the event to the pipeline."""
    try:
        checked = checked_fields(fields)
        event = call._event  # same package: the Call's event, filled before it is queued
        if consistent(event, checked):
            event.update(checked)
        else:
            warn_once("usage", "llmtally: a response's token counts contradict each other")
    except Exception:
        warn_once("usage", "llmtally: could not record a response's usage")
    call.finish()


def finish_response(binding: Binding, call: Call, response: Any) -> None:
    """Read usage from ``response`` and finish the call."""
    try:
        fields = binding.fields_of(response)
    except Exception:
        warn_once("response", "llmtally: could not read a provider response")
        fields = {}
    finish_ok(call, fields)


# google-genai raises one class per status family (ClientError, ServerError); name the
# status the way the OpenAI and Anthropic SDKs do, so one error vocabulary spans providers
_STATUS_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


def error_type(exc: BaseException) -> str:
    """A stable error type: the SDK exception class, or the status's usual name for SDKs
    whose classes only say client or server error."""
    name = type(exc).__name__
    if name in ("ClientError", "ServerError", "APIError") and type(exc).__module__.startswith(
        "google."
    ):
        code = getattr(exc, "code", None)
        if isinstance(code, int):
            if code >= 500:
                return "InternalServerError"
            return _STATUS_TYPES.get(code, name)
    return name


def finish_error(call: Call, exc: BaseException) -> None:
    """Record a failed call (status=error, stable error type, message) and finish it."""
    try:
        call.fail(exc, error_type=error_type(exc))
        call.finish()
    except Exception:
        warn_once("error", "llmtally: could not record a failed call")


class Proxy:
    """Forwards every attribute to the wrapped SDK object; subclasses override a few.

    ``isinstance(proxy, SDKClass)`` stays true (``__class__`` reports the target's class),
    so code that checks client or stream types keeps working.
    """

    __slots__ = ("_llmtally_binding", "_llmtally_children", "_llmtally_target")

    def __init__(self, target: Any, binding: Binding) -> None:
        object.__setattr__(self, "_llmtally_target", target)
        object.__setattr__(self, "_llmtally_binding", binding)
        object.__setattr__(self, "_llmtally_children", {})

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_llmtally_target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_llmtally_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._llmtally_target, name, value)

    def __dir__(self) -> list[str]:
        return dir(self._llmtally_target)

    def __repr__(self) -> str:
        return f"<llmtally instrumented {self._llmtally_target!r}>"

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._llmtally_target)

    def _llmtally_child(self, name: str, make: Callable[[Any, Binding], Any]) -> Any:
        """The proxy of attribute ``name``, made once."""
        children = self._llmtally_children
        child = children.get(name)
        if child is None:
            child = children[name] = make(
                getattr(self._llmtally_target, name), self._llmtally_binding
            )
        return child


class ClientProxy(Proxy):
    """A proxied SDK client: also usable as ``with client:`` / ``async with client:``."""

    __slots__ = ()

    def __enter__(self) -> ClientProxy:
        self._llmtally_target.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._llmtally_target.__exit__(*exc)

    async def __aenter__(self) -> ClientProxy:
        await self._llmtally_target.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> Any:
        return await self._llmtally_target.__aexit__(*exc)


class RawResponse(Proxy):
    """A ``with_raw_response`` result whose ``parse()`` hands out the recording stream."""

    __slots__ = ("_llmtally_parsed",)

    def __init__(self, target: Any, binding: Binding, parsed: Any) -> None:
        super().__init__(target, binding)
        object.__setattr__(self, "_llmtally_parsed", parsed)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        """The parsed body; for streams, the recording stream."""
        if args or kwargs:
            return self._llmtally_target.parse(*args, **kwargs)
        return self._llmtally_parsed
