"""google-genai: ``models.generate_content`` and ``generate_content_stream``, sync (``client``)
and async (``client.aio``), and chat sessions made from the instrumented client.

Gemini's ``prompt_token_count`` includes cached content and ``candidates_token_count``
excludes thoughts (``capture.usage.from_gemini`` adds them). Every streamed chunk is a
full response whose usage is cumulative, so the last chunk that carries usage is the one
read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmtally.capture.instrument._calls import Endpoint, call_async, call_sync
from llmtally.capture.instrument._core import Binding, ClientProxy, Proxy, integer, number
from llmtally.capture.instrument._streams import CONTENT, Observer
from llmtally.capture.usage import from_response


def _config_value(config: Any, name: str) -> Any:
    if config is None:
        return None
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def _params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    config = kwargs.get("config")
    return {
        "temperature": number(_config_value(config, "temperature")),
        "top_p": number(_config_value(config, "top_p")),
        "max_tokens": integer(_config_value(config, "max_output_tokens")),
        "stream": False,
    }


def _stream_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = _params(kwargs)
    params["stream"] = True
    return params


def _model(kwargs: Mapping[str, Any]) -> Any:
    model = kwargs.get("model")
    # "models/gemini-2.5-flash" and "publishers/google/models/…" name the same model
    return model.rpartition("/")[2] if isinstance(model, str) else model


class ContentObserver(Observer):
    """Streamed ``GenerateContentResponse`` chunks with cumulative ``usage_metadata``."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        super().__init__()
        self.last: Any = None  # the latest chunk that carried usage

    def feed(self, item: Any) -> int:
        """Take one chunk."""
        flags = 0
        candidates = getattr(item, "candidates", None) or ()
        for candidate in candidates:
            content = getattr(candidate, "content", None)
            for part in getattr(content, "parts", None) or ():
                text = getattr(part, "text", None)
                if text:
                    self.chars += len(text)
                    flags = CONTENT
                elif getattr(part, "function_call", None) is not None:
                    flags = CONTENT
            if getattr(candidate, "finish_reason", None) is not None:
                self.final = True
        if getattr(item, "usage_metadata", None) is not None:
            self.last = item
        return flags

    def fields(self, prompt_chars: Any) -> dict[str, Any]:
        """Usage of the last chunk that had any; estimated without a finished one."""
        if self.last is not None:
            read = from_response(self.last)
            self.model = read.get("model") or self.model
            self.finish_reason = read.get("finish_reason") or self.finish_reason
            self.tokens = {k: v for k, v in read.items() if k.endswith("_tokens")}
        else:
            self.final = False
        return super().fields(prompt_chars)


_PROMPT: Final = ("contents",)
GENERATE: Final = Endpoint(_params, lambda _: ContentObserver(), _PROMPT, model=_model)
GENERATE_STREAM: Final = Endpoint(
    _stream_params, lambda _: ContentObserver(), _PROMPT, streams=True, model=_model
)


class Models(Proxy):
    """``client.models``."""

    __slots__ = ()

    def generate_content(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``generate_content``, recorded."""
        target = self._llmtally_target
        if args:
            return target.generate_content(*args, **kwargs)
        return call_sync(self._llmtally_binding, GENERATE, target.generate_content, False, kwargs)

    def generate_content_stream(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``generate_content_stream``, recorded."""
        target = self._llmtally_target
        if args:
            return target.generate_content_stream(*args, **kwargs)
        send = target.generate_content_stream
        return call_sync(self._llmtally_binding, GENERATE_STREAM, send, False, kwargs)


class AsyncModels(Proxy):
    """``client.aio.models``."""

    __slots__ = ()

    async def generate_content(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``generate_content``, recorded."""
        target = self._llmtally_target
        if args:
            return await target.generate_content(*args, **kwargs)
        send = target.generate_content
        return await call_async(self._llmtally_binding, GENERATE, send, False, kwargs)

    async def generate_content_stream(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's ``generate_content_stream`` (an awaitable async iterator), recorded."""
        target = self._llmtally_target
        if args:
            return await target.generate_content_stream(*args, **kwargs)
        send = target.generate_content_stream
        return await call_async(self._llmtally_binding, GENERATE_STREAM, send, False, kwargs)


class AsyncGeminiClient(ClientProxy):
    """An instrumented ``google.genai`` ``AsyncClient`` (``client.aio``)."""

    __slots__ = ()

    @property
    def models(self) -> Any:
        """``client.aio.models``."""
        return self._llmtally_child("models", AsyncModels)

    @property
    def chats(self) -> Any:
        """Chat sessions whose turns go through the recorded ``models``."""
        return type(self._llmtally_target.chats)(modules=self.models)


class GeminiClient(ClientProxy):
    """An instrumented ``google.genai.Client``: same interface, calls recorded."""

    __slots__ = ()

    @property
    def models(self) -> Any:
        """``client.models``."""
        return self._llmtally_child("models", Models)

    @property
    def aio(self) -> Any:
        """``client.aio``, instrumented the same way."""
        return self._llmtally_child("aio", AsyncGeminiClient)

    @property
    def chats(self) -> Any:
        """Chat sessions whose turns go through the recorded ``models``."""
        return type(self._llmtally_target.chats)(modules=self.models)


def wrap(client: Any, binding: Binding) -> Proxy:
    """Instrument a ``Client`` or an ``AsyncClient``."""
    from google.genai import client as genai_client

    if isinstance(client, genai_client.AsyncClient):
        return AsyncGeminiClient(client, binding)
    return GeminiClient(client, binding)
