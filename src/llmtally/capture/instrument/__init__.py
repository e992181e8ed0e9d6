"""``llmtally.instrument(client, tally=..., feature=...)``: provider clients that record every call.

Supported: ``openai.OpenAI``/``AsyncOpenAI`` (and ``AzureOpenAI``), ``anthropic.Anthropic``/
``AsyncAnthropic``, ``google.genai.Client`` (its ``.aio`` too) and the ``litellm``
module. The result is a proxy with the client's interface (``isinstance`` still holds);
nothing is patched globally and llmtally never imports an SDK the application did not.

Attribution of each call: ``instrument()``'s keywords, overridden by an enclosing
``tally.context(...)`` (closer to the call). Per SDK, see the ``_openai``, ``_anthropic``,
``_gemini`` and ``_litellm`` modules.
"""

from __future__ import annotations

import sys
import types
from typing import Any, TypeVar

from llmtally.capture.context import check_attributes
from llmtally.capture.instrument._core import Binding, Proxy
from llmtally.capture.recorder import Recorder
from llmtally.errors import ConfigError

__all__ = ["instrument"]

C = TypeVar("C")


def _provider_for_url(url: Any, default: str) -> str:
    """genai-prices' provider whose API URL pattern matches ``url`` (an OpenAI-compatible
    endpoint such as DeepSeek or Groq), else ``default``."""
    import re

    from genai_prices.data_snapshot import get_snapshot

    text = str(url or "")
    if not text:
        return default
    for provider in get_snapshot().providers:
        if re.match(provider.api_pattern, text):
            return str(provider.id)
    return default


def _sdk(name: str) -> Any:
    # only an SDK the application already imported can have made ``client``
    return sys.modules.get(name)


def instrument(client: C, *, tally: Recorder, **attrs: Any) -> C:
    """Return ``client`` with every LLM call recorded into ``tally``.

    ``tally`` is a ``llmtally.Tally`` or any other ``capture.recorder.Recorder``. Its
    gate is asked before each call reaches the provider. ``attrs`` attribute the calls:
    ``feature``, ``actor``, ``session_id``, ``trace_id``, ``project``, ``metadata``…,
    plus ``provider`` to override the provider name used for pricing (e.g. ``"azure"``).
    Raises ``ConfigError`` for an unsupported ``client``.
    """
    if not isinstance(tally, Recorder):
        raise ConfigError(
            "tally",
            f"must be a llmtally.Tally (or a Recorder), got {type(tally).__name__}",
        )
    if isinstance(client, Proxy):  # re-instrumenting: wrap the SDK client, not the proxy
        client = client._llmtally_target
    provider = attrs.pop("provider", None)
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise ConfigError("provider", "must be a non-empty string")
    checked = check_attributes(attrs)
    made = _wrap(client, tally, checked, provider)
    if made is None:
        raise ConfigError(
            "client",
            f"cannot instrument a {type(client).__module__}.{type(client).__qualname__}; "
            "supported: openai.OpenAI/AsyncOpenAI, anthropic.Anthropic/AsyncAnthropic, "
            "google.genai.Client (or its .aio) and the litellm module",
        )
    result: C = made
    return result


def _wrap(client: Any, tally: Recorder, attrs: dict[str, Any], provider: str | None) -> Any:
    openai = _sdk("openai")
    if openai is not None and isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        from llmtally.capture.instrument import _openai

        azure = isinstance(client, (openai.AzureOpenAI, openai.AsyncAzureOpenAI))
        name = provider or ("azure" if azure else _provider_for_url(client.base_url, "openai"))
        cls = (
            _openai.AsyncOpenAIClient
            if isinstance(client, openai.AsyncOpenAI)
            else _openai.OpenAIClient
        )
        return cls(client, Binding(tally, attrs, name))
    anthropic = _sdk("anthropic")
    if anthropic is not None and isinstance(
        client, (anthropic.Anthropic, anthropic.AsyncAnthropic)
    ):
        from llmtally.capture.instrument import _anthropic

        is_async = isinstance(client, anthropic.AsyncAnthropic)
        anth = _anthropic.AsyncAnthropicClient if is_async else _anthropic.AnthropicClient
        return anth(client, Binding(tally, attrs, provider or "anthropic"))
    genai = _sdk("google.genai")
    if genai is not None:
        from google.genai import client as genai_client

        if isinstance(client, (genai_client.Client, genai_client.AsyncClient)):
            from llmtally.capture.instrument import _gemini

            return _gemini.wrap(client, Binding(tally, attrs, provider or "google"))
    if isinstance(client, types.ModuleType) and client.__name__ == "litellm":
        from llmtally.capture.instrument import _litellm

        return _litellm.LiteLLM(client, Binding(tally, attrs, provider or "litellm"))
    return None
