"""Read usage from provider responses into llmtally's normalized token fields.

Works on SDK objects (OpenAI, Anthropic, google-genai) and on their JSON dicts alike.
The normalization rule is the one documented in ``capture.event``: input counts every
prompt token including cache reads and writes, output counts reasoning.

* OpenAI chat: ``prompt_tokens`` already include ``prompt_tokens_details.cached_tokens``;
  ``completion_tokens`` include ``completion_tokens_details.reasoning_tokens``.
* OpenAI Responses: the same with ``input_tokens``/``output_tokens``.
* Anthropic: ``input_tokens`` EXCLUDE cache reads and writes, so they are added;
  ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour part of the writes.
* Gemini: ``prompt_token_count`` includes ``cached_content_token_count``;
  ``candidates_token_count`` excludes ``thoughts_token_count``, so they are added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class _Attrs:
    """``.get(name)`` over the attributes of an object without instance ``__dict__``."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def get(self, name: str) -> Any:
        return getattr(self._obj, name, None)


_EMPTY: Mapping[str, Any] = {}


def _view(obj: Any) -> Mapping[str, Any] | _Attrs:
    """A ``.get(name)`` view of a response object or dict, made once per object.

    SDK responses are pydantic models: their fields live in the instance ``__dict__``
    (extras in ``__pydantic_extra__``), and a ``getattr`` of a *missing* name builds an
    AttributeError with a formatted message (~2 µs, a dozen per response). Reading the
    state directly keeps usage extraction cheap on the caller's thread.
    """
    if obj is None:
        return _EMPTY
    if isinstance(obj, dict):
        return obj
    state = getattr(obj, "__dict__", None)
    if state is None:
        return obj if isinstance(obj, Mapping) else _Attrs(obj)
    extra = getattr(obj, "__pydantic_extra__", None)
    return {**extra, **state} if extra else state


def _first(view: Mapping[str, Any] | _Attrs, *names: str) -> Any:
    """The first non-None value among ``names``."""
    for name in names:
        value = view.get(name)
        if value is not None:
            return value
    return None


def _int(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if value is None:
        return 0
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _enum_text(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", None)
    text = name if isinstance(name, str) else str(value)
    return text.lower() or None


def from_openai_chat(usage: Any) -> dict[str, int]:
    """Normalized tokens from an OpenAI Chat Completions ``usage`` (also LiteLLM's ``Usage``)."""
    u = _view(usage)
    prompt = _view(u.get("prompt_tokens_details"))
    # LiteLLM folds Anthropic cache reads/writes into prompt_tokens and reports them as
    # cached_tokens / cache_creation_tokens (plus the raw Anthropic names on the object)
    read = _int(prompt.get("cached_tokens")) or _int(u.get("cache_read_input_tokens"))
    write = _int(_first(prompt, "cache_write_tokens", "cache_creation_tokens")) or _int(
        u.get("cache_creation_input_tokens")
    )
    fields = {
        "input_tokens": _int(u.get("prompt_tokens")),
        "output_tokens": _int(u.get("completion_tokens")),
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "reasoning_tokens": _int(_view(u.get("completion_tokens_details")).get("reasoning_tokens")),
    }
    split = prompt.get("cache_creation_token_details")
    if split is not None:
        write_1h = _int(_view(split).get("ephemeral_1h_input_tokens"))
        if write_1h:
            fields["cache_write_1h_tokens"] = min(write_1h, write)
    return fields


def from_openai_responses(usage: Any) -> dict[str, int]:
    """Normalized tokens from an OpenAI Responses API ``usage``."""
    u = _view(usage)
    details_in = _view(u.get("input_tokens_details"))
    return {
        "input_tokens": _int(u.get("input_tokens")),
        "output_tokens": _int(u.get("output_tokens")),
        "cache_read_tokens": _int(details_in.get("cached_tokens")),
        "cache_write_tokens": _int(details_in.get("cache_write_tokens")),
        "reasoning_tokens": _int(_view(u.get("output_tokens_details")).get("reasoning_tokens")),
    }


def from_anthropic(usage: Any) -> dict[str, int]:
    """Normalized tokens from an Anthropic ``usage`` (adds cache reads/writes to input)."""
    u = _view(usage)
    read = _int(u.get("cache_read_input_tokens"))
    write = _int(u.get("cache_creation_input_tokens"))
    split = u.get("cache_creation")
    parts = _view(split)
    write_1h = _int(parts.get("ephemeral_1h_input_tokens"))
    if split is not None and not write:
        write = _int(parts.get("ephemeral_5m_input_tokens")) + write_1h
    thinking = _int(_view(u.get("output_tokens_details")).get("thinking_tokens"))
    return {
        "input_tokens": _int(u.get("input_tokens")) + read + write,
        "output_tokens": _int(u.get("output_tokens")),
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "cache_write_1h_tokens": min(write_1h, write),
        "reasoning_tokens": thinking,
    }


def from_gemini(usage: Any) -> dict[str, int]:
    """Normalized tokens from a Gemini ``usage_metadata`` (adds thoughts to output)."""
    u = _view(usage)
    thoughts = _int(_first(u, "thoughts_token_count", "thoughtsTokenCount"))
    return {
        "input_tokens": _int(_first(u, "prompt_token_count", "promptTokenCount"))
        + _int(_first(u, "tool_use_prompt_token_count", "toolUsePromptTokenCount")),
        "output_tokens": _int(_first(u, "candidates_token_count", "candidatesTokenCount"))
        + thoughts,
        "cache_read_tokens": _int(
            _first(u, "cached_content_token_count", "cachedContentTokenCount")
        ),
        "reasoning_tokens": thoughts,
    }


def from_response(response: Any) -> dict[str, Any]:
    """Fields (tokens, model, provider, finish_reason) read from any supported response."""
    fields: dict[str, Any] = {}
    r = _view(response)
    gemini_usage = _first(r, "usage_metadata", "usageMetadata")
    if gemini_usage is not None:
        fields.update(from_gemini(gemini_usage))
        fields["provider"] = "google"
        fields["model"] = _first(r, "model_version", "modelVersion")
        candidates = r.get("candidates") or []
        if candidates:
            fields["finish_reason"] = _enum_text(
                _first(_view(candidates[0]), "finish_reason", "finishReason")
            )
        return _clean(fields)
    usage = r.get("usage")
    model = r.get("model")
    if usage is not None:
        u = _view(usage)
        # prompt_tokens first: LiteLLM's usage also carries Anthropic's cache attribute
        # names, but its prompt_tokens already include the cache (adding would double count)
        if u.get("prompt_tokens") is not None:
            fields.update(from_openai_chat(usage))
            fields["provider"] = "openai"
            choices = r.get("choices") or []
            if choices:
                fields["finish_reason"] = _enum_text(_view(choices[0]).get("finish_reason"))
            if type(usage).__name__ == "UnreportedUsage":
                fields["usage_estimated"] = True  # LiteLLM's own count when the API gave none
        elif _first(u, "cache_read_input_tokens", "cache_creation_input_tokens") is not None or (
            r.get("type") == "message"
        ):
            fields.update(from_anthropic(usage))
            fields["provider"] = "anthropic"
            fields["finish_reason"] = _enum_text(r.get("stop_reason"))
        elif u.get("input_tokens") is not None:
            fields.update(from_openai_responses(usage))
            fields["provider"] = "openai"
            incomplete = r.get("incomplete_details")
            reason = _view(incomplete).get("reason") if incomplete is not None else None
            fields["finish_reason"] = _enum_text(reason or r.get("status"))
    if isinstance(model, str):
        fields["model"] = model
    return _clean(fields)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}
