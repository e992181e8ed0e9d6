"""LiteLLM: ``instrument(litellm, tally=...)`` returns a namespace whose ``completion`` and
``acompletion`` are recorded (every other attribute is the module's own).

LiteLLM answers in the OpenAI format whatever the provider; its ``prompt_tokens``
already include Anthropic's cache reads and writes, which it also reports under
Anthropic's names, so they are never added again (``capture.usage.from_openai_chat``).
The provider is LiteLLM's routing of the model name (``anthropic/claude-…`` →
``anthropic``), so calls are priced at that provider's prices. Streams get
``stream_options.include_usage`` unless the caller passed ``stream_options``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from llmtally.capture.instrument._core import (
    Proxy,
    finish_error,
    finish_response,
    integer,
    number,
    text_chars,
)
from llmtally.capture.instrument._openai import ChatObserver
from llmtally.capture.instrument._streams import AsyncStream, SyncStream
from llmtally.capture.track import Call

_POSITIONAL: Final = ("model", "messages")


def _request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword form of a ``completion(model, messages, ...)`` call."""
    for name, value in zip(_POSITIONAL, args, strict=False):
        kwargs[name] = value
    return kwargs


def _params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "temperature": number(kwargs.get("temperature")),
        "top_p": number(kwargs.get("top_p")),
        "max_tokens": integer(kwargs.get("max_completion_tokens"))
        or integer(kwargs.get("max_tokens")),
        "stream": kwargs.get("stream") is True,
    }


class LiteLLM(Proxy):
    """The ``litellm`` module with ``completion``/``acompletion`` recorded."""

    __slots__ = ()

    def _llmtally_start(self, kwargs: dict[str, Any]) -> tuple[Call, bool]:
        injected = False
        if kwargs.get("stream") is True and not kwargs.get("stream_options"):
            kwargs["stream_options"] = {"include_usage": True}
            injected = True
        model = kwargs.get("model")
        provider = None
        # LiteLLM's own routing: "anthropic/claude-x" -> ("claude-x", "anthropic"); on a
        # name it cannot route, LiteLLM raises its own error for the call itself
        with contextlib.suppress(Exception):
            model, provider, _, _ = self._llmtally_target.get_llm_provider(
                model=model,
                custom_llm_provider=kwargs.get("custom_llm_provider"),
                api_base=kwargs.get("api_base"),
            )
        call = self._llmtally_binding.start(model, _params(kwargs), provider)
        return call, injected

    def _llmtally_stream(self, result: Any, call: Call, injected: bool, kwargs: Any) -> Any:
        chars = lambda: text_chars(kwargs.get("messages"))  # noqa: E731
        return SyncStream(result, self._llmtally_binding, call, ChatObserver(injected), chars)

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        """``litellm.completion``, recorded."""
        kwargs = _request(args, kwargs)
        call, injected = self._llmtally_start(kwargs)
        try:
            result = self._llmtally_target.completion(**kwargs)
        except BaseException as exc:
            finish_error(call, exc)
            raise
        if kwargs.get("stream") is True:
            return self._llmtally_stream(result, call, injected, kwargs)
        finish_response(self._llmtally_binding, call, result)
        return result

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        """``litellm.acompletion``, recorded."""
        kwargs = _request(args, kwargs)
        call, injected = self._llmtally_start(kwargs)
        try:
            result = await self._llmtally_target.acompletion(**kwargs)
        except BaseException as exc:
            finish_error(call, exc)
            raise
        if kwargs.get("stream") is True:
            chars = lambda: text_chars(kwargs.get("messages"))  # noqa: E731
            return AsyncStream(result, self._llmtally_binding, call, ChatObserver(injected), chars)
        finish_response(self._llmtally_binding, call, result)
        return result
