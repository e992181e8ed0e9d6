"""Anthropic: ``messages.create`` (plain and ``stream=True``), ``parse``, ``with_raw_response``
and the ``messages.stream()`` helper, sync and async.

Anthropic's ``input_tokens`` exclude cache reads and writes; ``capture.usage.from_anthropic``
adds them (the normalized rule). In a stream, ``message_start`` carries the input and
cache counts and ``message_delta`` carries *cumulative* counts: each field takes its
latest value, never a sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmtally.capture.instrument._calls import Endpoint, RecordedResource
from llmtally.capture.instrument._core import ClientProxy, integer, number
from llmtally.capture.instrument._streams import CONTENT, Observer
from llmtally.capture.usage import from_anthropic

_USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "output_tokens_details",
)


def _params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    # SDK 2.x dropped temperature/top_p from the signature: callers send them in extra_body
    extra = kwargs.get("extra_body")
    sampling = extra if isinstance(extra, Mapping) else kwargs
    return {
        "temperature": number(kwargs.get("temperature") or sampling.get("temperature")),
        "top_p": number(kwargs.get("top_p") or sampling.get("top_p")),
        "max_tokens": integer(kwargs.get("max_tokens")),
        "stream": kwargs.get("stream") is True,
    }


class MessagesObserver(Observer):
    """Raw stream events: ``message_start``, ``content_block_delta``, ``message_delta``…"""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        super().__init__()
        self.usage: dict[str, Any] = {}  # latest value of each usage field

    def _take_usage(self, usage: Any) -> None:
        if usage is None:
            return
        merged = self.usage
        for name in _USAGE_FIELDS:
            value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
            if value is not None:
                merged[name] = value  # cumulative: the later value replaces
        self.tokens = dict(from_anthropic(merged))

    def feed(self, item: Any) -> int:
        """Take one raw stream event."""
        kind = getattr(item, "type", None)
        if kind == "content_block_delta":
            delta = getattr(item, "delta", None)
            for name in ("text", "thinking", "partial_json"):
                piece = getattr(delta, name, None)
                if isinstance(piece, str):
                    self.chars += len(piece)
                    break
            return CONTENT
        if kind == "message_start":
            message = getattr(item, "message", None)
            self.model = getattr(message, "model", None) or self.model
            self._take_usage(getattr(message, "usage", None))
        elif kind == "message_delta":
            self._take_usage(getattr(item, "usage", None))
            reason = getattr(getattr(item, "delta", None), "stop_reason", None)
            if reason:
                self.finish_reason = str(reason)
            self.final = True
        return 0


MESSAGES: Final = Endpoint(_params, lambda _: MessagesObserver(), ("system", "messages"))


class Messages(RecordedResource):
    """``client.messages``."""

    __slots__ = ()
    endpoint = MESSAGES
    helper_hooks = ("_post",)


class AsyncMessages(Messages):
    """``AsyncAnthropic().messages``."""

    __slots__ = ()
    is_async = True


class AnthropicClient(ClientProxy):
    """An instrumented ``anthropic.Anthropic``: same interface, calls recorded."""

    __slots__ = ()
    messages_cls: type[Messages] = Messages

    @property
    def messages(self) -> Any:
        """``client.messages``."""
        return self._llmtally_child("messages", self.messages_cls)

    def with_options(self, *args: Any, **kwargs: Any) -> Any:
        """A copy of the client with other options, still instrumented."""
        return type(self)(
            self._llmtally_target.with_options(*args, **kwargs), self._llmtally_binding
        )

    copy = with_options


class AsyncAnthropicClient(AnthropicClient):
    """An instrumented ``anthropic.AsyncAnthropic``."""

    __slots__ = ()
    messages_cls = AsyncMessages
