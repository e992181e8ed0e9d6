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

from typing import Any


def _get(obj: Any, *names: str) -> Any:
    """First non-None attribute or key among ``names`` (SDK objects and dicts alike)."""
    if obj is None:
        return None
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _enum_text(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", None)
    text = name if isinstance(name, str) else str(value)
    return text.lower() or None


def from_openai_chat(usage: Any) -> dict[str, int]:
    """Normalized tokens from an OpenAI Chat Completions ``usage`` (also LiteLLM's ``Usage``)."""
    prompt = _get(usage, "prompt_tokens_details")
    completion = _get(usage, "completion_tokens_details")
    # LiteLLM folds Anthropic cache reads/writes into prompt_tokens and reports them as
    # cached_tokens / cache_creation_tokens (plus the raw Anthropic names on the object)
    read = _int(_get(prompt, "cached_tokens")) or _int(_get(usage, "cache_read_input_tokens"))
    write = _int(_get(prompt, "cache_write_tokens", "cache_creation_tokens")) or _int(
        _get(usage, "cache_creation_input_tokens")
    )
    fields = {
        "input_tokens": _int(_get(usage, "prompt_tokens")),
        "output_tokens": _int(_get(usage, "completion_tokens")),
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "reasoning_tokens": _int(_get(completion, "reasoning_tokens")),
    }
    write_1h = _int(_get(_get(prompt, "cache_creation_token_details"), "ephemeral_1h_input_tokens"))
    if write_1h:
        fields["cache_write_1h_tokens"] = min(write_1h, write)
    return fields


def from_openai_responses(usage: Any) -> dict[str, int]:
    """Normalized tokens from an OpenAI Responses API ``usage``."""
    details_in = _get(usage, "input_tokens_details")
    details_out = _get(usage, "output_tokens_details")
    return {
        "input_tokens": _int(_get(usage, "input_tokens")),
        "output_tokens": _int(_get(usage, "output_tokens")),
        "cache_read_tokens": _int(_get(details_in, "cached_tokens")),
        "cache_write_tokens": _int(_get(details_in, "cache_write_tokens")),
        "reasoning_tokens": _int(_get(details_out, "reasoning_tokens")),
    }


def from_anthropic(usage: Any) -> dict[str, int]:
    """Normalized tokens from an Anthropic ``usage`` (adds cache reads/writes to input)."""
    read = _int(_get(usage, "cache_read_input_tokens"))
    write = _int(_get(usage, "cache_creation_input_tokens"))
    split = _get(usage, "cache_creation")
    write_1h = _int(_get(split, "ephemeral_1h_input_tokens"))
    if split is not None and not write:
        write = _int(_get(split, "ephemeral_5m_input_tokens")) + write_1h
    thinking = _int(_get(_get(usage, "output_tokens_details"), "thinking_tokens"))
    return {
        "input_tokens": _int(_get(usage, "input_tokens")) + read + write,
        "output_tokens": _int(_get(usage, "output_tokens")),
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "cache_write_1h_tokens": min(write_1h, write),
        "reasoning_tokens": thinking,
    }


def from_gemini(usage: Any) -> dict[str, int]:
    """Normalized tokens from a Gemini ``usage_metadata`` (adds thoughts to output)."""
    thoughts = _int(_get(usage, "thoughts_token_count", "thoughtsTokenCount"))
    return {
        "input_tokens": _int(_get(usage, "prompt_token_count", "promptTokenCount"))
        + _int(_get(usage, "tool_use_prompt_token_count", "toolUsePromptTokenCount")),
        "output_tokens": _int(_get(usage, "candidates_token_count", "candidatesTokenCount"))
        + thoughts,
        "cache_read_tokens": _int(
            _get(usage, "cached_content_token_count", "cachedContentTokenCount")
        ),
        "reasoning_tokens": thoughts,
    }


def from_response(response: Any) -> dict[str, Any]:
    """Fields (tokens, model, provider, finish_reason) read from any supported response."""
    fields: dict[str, Any] = {}
    gemini_usage = _get(response, "usage_metadata", "usageMetadata")
    if gemini_usage is not None:
        fields.update(from_gemini(gemini_usage))
        fields["provider"] = "google"
        fields["model"] = _get(response, "model_version", "modelVersion")
        candidates = _get(response, "candidates") or []
        if candidates:
            fields["finish_reason"] = _enum_text(
                _get(candidates[0], "finish_reason", "finishReason")
            )
        return _clean(fields)
    usage = _get(response, "usage")
    model = _get(response, "model")
    if usage is not None:
        # prompt_tokens first: LiteLLM's usage also carries Anthropic's cache attribute
        # names, but its prompt_tokens already include the cache (adding would double count)
        if _get(usage, "prompt_tokens") is not None:
            fields.update(from_openai_chat(usage))
            fields["provider"] = "openai"
            choices = _get(response, "choices") or []
            if choices:
                fields["finish_reason"] = _enum_text(_get(choices[0], "finish_reason"))
            if type(usage).__name__ == "UnreportedUsage":
                fields["usage_estimated"] = True  # LiteLLM's own count when the API gave none
        elif _get(usage, "cache_read_input_tokens", "cache_creation_input_tokens") is not None or (
            _get(response, "type") == "message"
        ):
            fields.update(from_anthropic(usage))
            fields["provider"] = "anthropic"
            fields["finish_reason"] = _enum_text(_get(response, "stop_reason"))
        elif _get(usage, "input_tokens") is not None:
            fields.update(from_openai_responses(usage))
            fields["provider"] = "openai"
            incomplete = _get(response, "incomplete_details")
            reason = _get(incomplete, "reason") if incomplete is not None else None
            fields["finish_reason"] = _enum_text(reason or _get(response, "status"))
    if isinstance(model, str):
        fields["model"] = model
    return _clean(fields)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}
