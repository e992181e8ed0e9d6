"""OpenAI: chat.completions, responses and embeddings, sync and async.

Recorded: ``create`` (plain and ``stream=True``), ``parse``, ``with_raw_response.create``
/``.parse`` and the ``stream()`` helpers. Chat streams only carry usage when
``stream_options.include_usage`` is on, so it is turned on unless the caller passed
``stream_options``; the usage-only chunk that this adds is consumed here and never
reaches the caller, who sees exactly the stream they asked for. Responses streams
carry usage in ``response.completed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmtally.capture.instrument._calls import Endpoint, RecordedResource
from llmtally.capture.instrument._core import Binding, ClientProxy, Proxy, integer, number
from llmtally.capture.instrument._streams import CONTENT, HIDE, Observer
from llmtally.capture.usage import from_openai_chat, from_response

_PROMPT_KEYS: Final = ("messages", "input", "instructions")
_DONE_EVENTS: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _chat_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "temperature": number(kwargs.get("temperature")),
        "top_p": number(kwargs.get("top_p")),
        "max_tokens": integer(kwargs.get("max_completion_tokens"))
        or integer(kwargs.get("max_tokens")),
        "stream": kwargs.get("stream") is True,
    }


def _responses_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "temperature": number(kwargs.get("temperature")),
        "top_p": number(kwargs.get("top_p")),
        "max_tokens": integer(kwargs.get("max_output_tokens")),
        "stream": kwargs.get("stream") is True,
    }


def _embedding_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {}


class ChatObserver(Observer):
    """Chat Completions chunks: content in ``choices[].delta``, usage in a last chunk."""

    __slots__ = ("injected",)

    def __init__(self, injected: bool) -> None:
        super().__init__()
        self.injected = injected  # llmtally asked for the usage chunk: keep it from the caller

    def feed(self, item: Any) -> int:
        """Take one ``ChatCompletionChunk``."""
        flags = 0
        model = getattr(item, "model", None)
        if model:
            self.model = model
        choices = getattr(item, "choices", None)
        if choices:
            for choice in choices:
                delta = getattr(choice, "delta", None)
                if delta is not None:
                    text = getattr(delta, "content", None)
                    if text:
                        self.chars += len(text)
                        flags = CONTENT
                    elif getattr(delta, "tool_calls", None) or getattr(delta, "refusal", None):
                        flags = CONTENT
                reason = getattr(choice, "finish_reason", None)
                if reason:
                    self.finish_reason = str(reason)
        usage = getattr(item, "usage", None)
        if usage is not None:
            self.tokens = from_openai_chat(usage)
            self.final = True
            if self.injected and not choices:
                flags |= HIDE
        return flags


class ResponsesObserver(Observer):
    """Responses API events: deltas carry content, ``response.completed`` the usage."""

    __slots__ = ()

    def feed(self, item: Any) -> int:
        """Take one ``ResponseStreamEvent``."""
        kind = getattr(item, "type", None)
        if not isinstance(kind, str):
            return 0
        if kind.endswith(".delta"):
            delta = getattr(item, "delta", None)
            if isinstance(delta, str):
                self.chars += len(delta)
            return CONTENT
        if kind in _DONE_EVENTS or kind == "response.created":
            response = getattr(item, "response", None)
            if response is not None:
                fields = from_response(response)
                self.model = fields.get("model") or self.model
                if kind != "response.created":
                    self.tokens = {
                        k: v for k, v in fields.items() if k.endswith("_tokens") and v is not None
                    }
                    self.final = bool(self.tokens)
                    self.finish_reason = fields.get("finish_reason") or self.finish_reason
        return 0


def _prepare_chat(kwargs: dict[str, Any]) -> bool:
    """Turn on usage for a chat stream unless the caller chose stream_options."""
    if kwargs.get("stream") is True and not kwargs.get("stream_options"):
        kwargs["stream_options"] = {"include_usage": True}
        return True
    return False


CHAT: Final = Endpoint(_chat_params, ChatObserver, _PROMPT_KEYS, _prepare_chat)
RESPONSES: Final = Endpoint(_responses_params, lambda _: ResponsesObserver(), _PROMPT_KEYS)
EMBEDDINGS: Final = Endpoint(_embedding_params, lambda _: ResponsesObserver(), ("input",))


class _Resource(RecordedResource):
    __slots__ = ()
    endpoint = CHAT


class ChatCompletions(_Resource):
    """``client.chat.completions``."""

    __slots__ = ()


class AsyncChatCompletions(_Resource):
    """``AsyncOpenAI().chat.completions``."""

    __slots__ = ()
    is_async = True


class Responses(_Resource):
    """``client.responses``."""

    __slots__ = ()
    endpoint = RESPONSES


class AsyncResponses(_Resource):
    """``AsyncOpenAI().responses``."""

    __slots__ = ()
    endpoint = RESPONSES
    is_async = True


class Embeddings(_Resource):
    """``client.embeddings``."""

    __slots__ = ()
    endpoint = EMBEDDINGS


class AsyncEmbeddings(_Resource):
    """``AsyncOpenAI().embeddings``."""

    __slots__ = ()
    endpoint = EMBEDDINGS
    is_async = True


class _Chat(Proxy):
    __slots__ = ("completions",)
    completions_cls: type[_Resource] = ChatCompletions

    def __init__(self, target: Any, binding: Binding) -> None:
        super().__init__(target, binding)
        # made once, read as a plain slot: ``client.chat.completions`` is on every call
        object.__setattr__(self, "completions", self.completions_cls(target.completions, binding))


class _AsyncChat(_Chat):
    __slots__ = ()
    completions_cls = AsyncChatCompletions


class OpenAIClient(ClientProxy):
    """An instrumented ``openai.OpenAI`` (or ``AsyncOpenAI``): same interface, calls recorded."""

    __slots__ = ("chat", "embeddings", "responses")
    is_async = False

    def __init__(self, target: Any, binding: Binding) -> None:
        super().__init__(target, binding)
        is_async = self.is_async
        object.__setattr__(self, "chat", (_AsyncChat if is_async else _Chat)(target.chat, binding))
        responses = (AsyncResponses if is_async else Responses)(target.responses, binding)
        object.__setattr__(self, "responses", responses)
        embeddings = (AsyncEmbeddings if is_async else Embeddings)(target.embeddings, binding)
        object.__setattr__(self, "embeddings", embeddings)

    def with_options(self, *args: Any, **kwargs: Any) -> Any:
        """A copy of the client with other options, still instrumented."""
        return type(self)(
            self._llmtally_target.with_options(*args, **kwargs), self._llmtally_binding
        )

    copy = with_options


class AsyncOpenAIClient(OpenAIClient):
    """An instrumented ``openai.AsyncOpenAI``."""

    __slots__ = ()
    is_async = True
