"""What the demo traffic is made of: models, features, errors, rhythm and (fictional) people.

``demo.sessions`` draws from these tables. All content is synthetic: actor ids look like
Slack ids, names are obviously fictional, and there are no e-mail addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PROJECT: Final = "demo"
# priced by the demo's own custom_pricing, like an in-house model would be
CUSTOM_PRICING: Final = {"acme-llm-8b": {"input": 0.05, "output": 0.10}}
UNPRICED_MODEL: Final = "caption-vision-beta"
SONNET: Final = "claude-sonnet-4-20250514"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How a model behaves: speed, prompt caching style, reasoning share of the output."""

    provider: str
    model: str
    version: str | None
    first_token_ms: float
    ms_per_token: float
    cache: str | None  # "openai" (automatic), "anthropic" (explicit writes), "gemini" (implicit)
    reasoning: tuple[float, float] | None = None
    reasoning_p: float = 1.0


MODELS: Final = {
    spec.model: spec
    for spec in (
        ModelSpec("openai", "gpt-4o", "gpt-4o-2024-08-06", 420, 13, "openai"),
        ModelSpec("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 280, 7, "openai"),
        ModelSpec("openai", "o4-mini", "o4-mini-2025-04-16", 900, 8, "openai", (0.55, 0.85)),
        ModelSpec("anthropic", SONNET, None, 650, 15, "anthropic"),
        ModelSpec(
            "anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 330, 6, "anthropic"
        ),
        ModelSpec("google", "gemini-2.5-flash", None, 380, 4, "gemini", (0.2, 0.6), 0.6),
        ModelSpec("google", "gemini-2.5-pro", None, 800, 9, "gemini", (0.4, 0.8)),
        ModelSpec("self-hosted", "acme-llm-8b", None, 110, 5, None),
        ModelSpec("internal", UNPRICED_MODEL, None, 700, 11, None),
    )
}
# the model the router falls back to while Anthropic is overloaded
FALLBACK_MODEL: Final = "gpt-4o"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One product feature: its models, conversation shape, prompt sizes and habits."""

    name: str
    project: str  # the feature's project when traffic spans several projects
    weight: float  # share of sessions
    models: tuple[tuple[str, float], ...]
    turns: tuple[int, int]
    system_tokens: int  # the stable prompt prefix that caches
    input_median: int
    output_median: int
    stream_p: float
    feedback_p: float
    temperature: float
    max_tokens: int
    agent_p: float = 0.0  # share of sessions run by an agent rather than a person
    tools: tuple[str, ...] = ()
    tool_p: float = 0.0  # chance that a person's call is followed by a tool call


# fmt: off
FEATURES: Final = (
    # name, project, weight, (model, share)…
    #   turns, system_tokens, input_median, output_median, stream_p, feedback_p, temp, max_tokens
    FeatureSpec("chat", "web", 0.22, (("gpt-4o", 0.45), (SONNET, 0.35), ("gpt-4o-mini", 0.2)),
                (2, 8), 1_600, 220, 260, 0.92, 0.12, 0.7, 1_024,
                tools=("web_search", "lookup_account"), tool_p=0.06),
    FeatureSpec("smart_reply", "support", 0.38,
                (("gpt-4o-mini", 0.75), ("claude-haiku-4-5", 0.25)),
                (1, 1), 1_100, 350, 55, 0.0, 0.16, 0.4, 256),
    FeatureSpec("summarize", "web", 0.14,
                (("gemini-2.5-flash", 0.55), (SONNET, 0.3), ("gemini-2.5-pro", 0.15)),
                (1, 2), 900, 5_500, 320, 0.3, 0.08, 0.2, 800),
    FeatureSpec("translate", "mobile", 0.13, (("gemini-2.5-flash", 0.5), ("acme-llm-8b", 0.5)),
                (1, 1), 300, 380, 410, 0.0, 0.03, 0.1, 1_500),
    FeatureSpec("agent_planner", "platform", 0.05, (("o4-mini", 0.7), ("gemini-2.5-pro", 0.3)),
                (3, 6), 2_400, 1_200, 260, 0.0, 0.0, 1.0, 4_000, agent_p=1.0,
                tools=("search_tickets", "read_file", "run_sql", "open_pull_request",
                       "post_message")),
    FeatureSpec("code_review", "platform", 0.04, ((SONNET, 0.6), ("gpt-4o", 0.4)),
                (1, 4), 3_000, 4_000, 600, 0.5, 0.1, 0.3, 2_000, agent_p=0.5,
                tools=("read_file", "run_tests", "post_comment"), tool_p=0.3),
    FeatureSpec("image_caption", "mobile", 0.08, (("gpt-4o", 0.6), (UNPRICED_MODEL, 0.4)),
                (1, 1), 0, 1_100, 38, 0.0, 0.05, 0.3, 120),
)

# (error_type, weight, latency range ms, message); {model} and {n} are filled in
ERRORS: Final = (
    ("RateLimitError", 0.4, (60, 400),
     "Error code: 429 - Rate limit reached for {model} on tokens per min (TPM): "
     "Limit 800000, Used 799412, Requested {n}. Please try again in 1.2s."),
    ("APITimeoutError", 0.25, (30_000, 60_000), "Request timed out."),
    ("InternalServerError", 0.2, (250, 4_000),
     "Error code: 500 - The server had an error while processing your request. "
     "Sorry about that!"),
    ("BadRequestError", 0.15, (90, 600),
     "Error code: 400 - This model's maximum context length is 128000 tokens. However, your "
     "messages resulted in {n} tokens. Please reduce the length of the messages."),
)
OVERLOADED: Final = (
    "Error code: 529 - {'type': 'error', 'error': "
    "{'type': 'overloaded_error', 'message': 'Overloaded'}}"
)
ERROR_RATE: Final = 0.04  # mid 3–5%: a small demo still lands inside it
INCIDENT_ERROR_RATE: Final = 0.45  # Anthropic calls during the incident
INCIDENT_HOURS: Final = 2.5
TOOL_ERRORS: Final = (
    ("ToolTimeout", "tool timed out after 30s"),
    ("ToolError", "tool raised an exception"),
)
TOOL_ERROR_RATE: Final = 0.03
# hour-of-day (UTC) activity: a working day with a lunch dip and a quiet night
HOURLY: Final = (
    0.12, 0.08, 0.06, 0.06, 0.08, 0.14, 0.3, 0.55, 0.85, 1.0, 1.0, 0.95,
    0.8, 0.92, 1.0, 0.96, 0.85, 0.68, 0.5, 0.4, 0.34, 0.28, 0.22, 0.16,
)
# fmt: on
WEEKEND: Final = 0.35
GROWTH: Final = 0.3  # traffic over a time range grows by this much from start to end
TIMEZONES: Final = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/London",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Los_Angeles",
)
FIRST_NAMES: Final = ("Avery", "Jun", "Robin", "Sasha", "Kai", "Noor", "Teo", "Mika", "Rene", "Ola")
LAST_NAMES: Final = ("Example", "Sample", "Fixture", "Placeholder", "Testwell", "Mockridge")
NAMED_HUMANS: Final = 24  # people with a profile (display name, real name, time zone)
AGENTS: Final = (
    ("agent:release-planner", "Release planner"),
    ("agent:triage-bot", "Ticket triage"),
    ("agent:nightly-digest", "Nightly digest"),
)
# roles of the agents beyond the named ones, in larger populations
AGENT_ROLES: Final = ("planner", "triage", "digest", "reviewer", "migrator", "scheduler")
COMMENTS: Final = (
    "too long",
    "wrong tone",
    "not what I asked",
    "great summary",
    "missed the point",
)
