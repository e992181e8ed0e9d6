"""One recorded SDK request, sync or async, and the resource proxy that routes calls to it.

An ``Endpoint`` says how to read a request (its sampling parameters, its prompt for an
estimate, whether to ask for stream usage) and how to read its stream. ``call_sync`` /
``call_async`` open the event, send the request, and finish the event from the response,
or hand back a recording stream, or record the exception and re-raise it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmtally.capture.instrument._core import (
    Binding,
    Proxy,
    RawResponse,
    finish_error,
    finish_response,
    text_chars,
)
from llmtally.capture.instrument._streams import (
    AsyncStream,
    Observer,
    StreamHelperShim,
    StreamManager,
    SyncStream,
)
from llmtally.capture.track import Call


def _no_change(kwargs: dict[str, Any]) -> bool:
    return False


def _model(kwargs: Mapping[str, Any]) -> Any:
    return kwargs.get("model")


class Endpoint:
    """How one kind of request is recorded."""

    __slots__ = ("model", "observer", "params", "prepare", "prompt_keys", "streams")

    def __init__(
        self,
        params: Callable[[Mapping[str, Any]], dict[str, Any]],
        observer: Callable[[bool], Observer],
        prompt_keys: tuple[str, ...],
        prepare: Callable[[dict[str, Any]], bool] = _no_change,
        *,
        streams: bool = False,
        model: Callable[[Mapping[str, Any]], Any] = _model,
    ) -> None:
        self.params = params  # request kwargs -> temperature, max_tokens, top_p, stream
        self.observer = observer  # (usage was requested by llmtally) -> stream observer
        self.prompt_keys = prompt_keys  # request kwargs holding the prompt (for estimates)
        self.prepare = prepare  # may edit the request; True if it asked for stream usage
        self.streams = streams  # always returns a stream (Gemini's generate_content_stream)
        self.model = model  # the requested model name

    def prompt_chars(self, kwargs: Mapping[str, Any]) -> Callable[[], int]:
        """Characters of prompt in the request, computed only if an estimate is needed."""
        keys = self.prompt_keys
        return lambda: sum(text_chars(kwargs.get(key)) for key in keys)


def _parsed(raw: Any) -> Any:
    """The body of a raw response (cached by the SDK, so the caller's parse() is free)."""
    try:
        return raw.parse()
    except Exception:
        return None  # the caller's own parse() will raise; recorded without usage


def _result(
    binding: Binding,
    endpoint: Endpoint,
    call: Call,
    result: Any,
    raw: bool,
    injected: bool,
    kwargs: dict[str, Any],
    stream_cls: type[SyncStream] | type[AsyncStream],
) -> Any:
    parsed = _parsed(result) if raw else result
    if (endpoint.streams or kwargs.get("stream") is True) and parsed is not None:
        stream = stream_cls(
            parsed, binding, call, endpoint.observer(injected), endpoint.prompt_chars(kwargs)
        )
        return RawResponse(result, binding, stream) if raw else stream
    finish_response(binding, call, parsed)
    return result


def call_sync(
    binding: Binding,
    endpoint: Endpoint,
    send: Callable[..., Any],
    raw: bool,
    kwargs: dict[str, Any],
) -> Any:
    """Send one request through ``send(**kwargs)`` and record it."""
    injected = endpoint.prepare(kwargs)
    call = binding.start(endpoint.model(kwargs), endpoint.params(kwargs))
    try:
        result = send(**kwargs)
    except BaseException as exc:
        finish_error(call, exc)
        raise
    return _result(binding, endpoint, call, result, raw, injected, kwargs, SyncStream)


async def call_async(
    binding: Binding,
    endpoint: Endpoint,
    send: Callable[..., Any],
    raw: bool,
    kwargs: dict[str, Any],
) -> Any:
    """Send one request through ``await send(**kwargs)`` and record it."""
    injected = endpoint.prepare(kwargs)
    call = binding.start(endpoint.model(kwargs), endpoint.params(kwargs))
    try:
        result = await send(**kwargs)
    except BaseException as exc:
        finish_error(call, exc)
        raise
    return _result(binding, endpoint, call, result, raw, injected, kwargs, AsyncStream)


class RecordedResource(Proxy):
    """A proxied SDK resource whose ``create``/``parse`` (and raw variants) are recorded.

    Subclasses set ``endpoint`` and ``is_async``; ``helper_hooks`` names the methods an
    SDK ``stream()`` helper sends its request through.
    """

    __slots__ = ()
    endpoint: Endpoint
    is_async = False
    raw = False
    helper_hooks: tuple[str, ...] = ("create",)

    def create(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``create``, recorded."""
        target = self._llmtally_target
        if args:  # the SDKs take keywords only; let the SDK raise its own error
            return target.create(*args, **kwargs)
        runner = call_async if self.is_async else call_sync
        return runner(self._llmtally_binding, self.endpoint, target.create, self.raw, kwargs)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``parse``, recorded."""
        target = self._llmtally_target
        if args:
            return target.parse(*args, **kwargs)
        runner = call_async if self.is_async else call_sync
        return runner(self._llmtally_binding, self.endpoint, target.parse, self.raw, kwargs)

    @property
    def with_raw_response(self) -> Any:
        """``with_raw_response``: the same calls, recorded, returning the raw response."""
        cls = raw_class(type(self))
        return self._llmtally_child("with_raw_response", cls)

    def _llmtally_post(self, path: str, **options: Any) -> Any:
        """``_post`` for helpers that build the request body themselves (Anthropic)."""
        body = options.pop("body", None)
        target = self._llmtally_target
        if not isinstance(body, dict):
            return target._post(path, body=body, **options)

        def send(**request: Any) -> Any:
            return target._post(path, body=request, **options)

        runner = call_async if self.is_async else call_sync
        return runner(self._llmtally_binding, self.endpoint, send, False, dict(body))

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``stream()`` helper, reading a recorded stream."""
        target = self._llmtally_target
        binding = self._llmtally_binding
        hooks = {
            name: (self._llmtally_post if name == "_post" else getattr(self, name))
            for name in self.helper_hooks
        }
        shim = StreamHelperShim(target, binding, hooks)
        # run the SDK's own helper with the shim as ``self``: it only builds the request
        # and sends it through ``self.create`` / ``self._post``, which now record
        manager = type(target).stream(shim, *args, **kwargs)
        return StreamManager(manager, binding, shim)


_RAW_CLASSES: dict[type[RecordedResource], type[RecordedResource]] = {}


def raw_class(cls: type[RecordedResource]) -> type[RecordedResource]:
    """The ``with_raw_response`` variant of a resource proxy class (made once)."""
    made = _RAW_CLASSES.get(cls)
    if made is None:
        made = _RAW_CLASSES[cls] = type(
            f"Raw{cls.__name__}", (cls,), {"__slots__": (), "raw": True}
        )
    return made
