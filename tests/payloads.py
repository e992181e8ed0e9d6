"""Provider response payloads (JSON as the APIs send it) shared by the tests."""

from __future__ import annotations

from typing import Any

OPENAI_CHAT: dict[str, Any] = {
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "hi"}}],
    "usage": {
        "prompt_tokens": 2000,
        "completion_tokens": 300,
        "total_tokens": 2300,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 200},
    },
}
OPENAI_REASONING: dict[str, Any] = {
    "model": "o4-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "ok"}}],
    "usage": {
        "prompt_tokens": 5200,
        "completion_tokens": 1800,
        "total_tokens": 7000,
        "prompt_tokens_details": {"cached_tokens": 4096},
        "completion_tokens_details": {"reasoning_tokens": 1500},
    },
}
# Anthropic input_tokens exclude cache reads and writes
ANTHROPIC: dict[str, Any] = {
    "type": "message",
    "model": "claude-sonnet-4-20250514",
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 3000,
        "output_tokens": 500,
        "cache_read_input_tokens": 6000,
        "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400},
    },
}
# Gemini output excludes thoughts; prompt includes cached content
GEMINI: dict[str, Any] = {
    "modelVersion": "gemini-2.5-flash",
    "candidates": [{"finishReason": "STOP"}],
    "usageMetadata": {
        "promptTokenCount": 12000,
        "candidatesTokenCount": 700,
        "cachedContentTokenCount": 8000,
        "thoughtsTokenCount": 900,
        "totalTokenCount": 13600,
    },
}
