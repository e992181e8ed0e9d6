"""PII redaction: each kind, the look-alikes it must leave alone, metadata JSON, config."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtally.capture.redact import Redactor, prompt_fingerprint
from llmtally.errors import ConfigError

R = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contact bob.smith+tag@example.co.uk now", "contact [EMAIL] now"),
        ("<alice_99@mail.example.org>", "<[EMAIL]>"),
        ("from josé@exämple.de.", "from [EMAIL]."),
        ("call +1 555 123 4567 today", "call [PHONE] today"),
        ("+44 (0)20 7946 0958", "[PHONE]"),
        ("+33 6 12 34 56 78", "[PHONE]"),
        ("tel:+14155552671", "tel:[PHONE]"),
        ("(555) 123-4567", "[PHONE]"),
        ("555.123.4567", "[PHONE]"),
        ("dial 1-800-555-1234.", "dial [PHONE]."),
        ("Tel. 030 1234567", "Tel. [PHONE]"),
        ("06 12 34 56 78", "[PHONE]"),
        ("089/12345678", "[PHONE]"),
        ("card 4111 1111 1111 1111 declined", "card [CARD] declined"),
        ("4111-1111-1111-1111", "[CARD]"),
        ("4111111111111111", "[CARD]"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("5555555555554444,", "[CARD],"),
        ("ssn 123-45-6789", "ssn [SSN]"),
        ("connect to 192.168.1.20:8080 failed", "connect to [IP]:8080 failed"),
        ("from 8.8.8.8/32", "from [IP]/32"),
        ("a@b.io and 123-45-6789 and 10.1.2.3", "[EMAIL] and [SSN] and [IP]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert R.text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "request 550e8400-e29b-41d4-a716-446655440000 failed",
        "12345678-1234-1234-1234-123456789012",
        "at 2024-11-21T15:30:05.123456789+00:00",
        "2024-11-21 15:30:05Z and 05/11/2024 15:30 and 01.02.2024",
        "version 1.2.3, build 10.0.19041.1",
        "v1.2.3.4",
        "price 0.00472 USD, total $1234.56",
        "ts 1732200000000 (ms), 1732200000 (s), 1732200000123456789 (ns)",
        "input_tokens 128000 output 4096 total 132096",
        "4111111111111112",  # 16 digits, fails Luhn
        "4111 1111 1111 1112",
        "order 7111111111111111",  # Luhn-valid but no card network starts with 7
        "ECONNREFUSED 127.0.0.1:5432 and 0.0.0.0",
        "user@localhost",
        "HTTP 429 after 3 retries; +5 bonus; offset +05:30",
        "gpt-4o-2024-08-06 claude-3-5-sonnet-20241022",
    ],
)
def test_leaves_lookalikes(text: str) -> None:
    assert R.text(text) == text


def test_unchanged_text_is_the_same_object() -> None:
    plain = "no pii here, just 42 tokens"
    assert R.text(plain) is plain
    assert R.text("") == ""


def test_rejected_candidate_does_not_hide_a_later_match() -> None:
    # the 16-digit run fails Luhn; scanning must resume inside it, not after it
    assert R.text("4111 1111 1111 1112 bob@x.io") == "4111 1111 1111 1112 [EMAIL]"
    assert R.text("x 127.0.0.1 10.0.0.7") == "x 127.0.0.1 [IP]"


def _meta(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


def test_json_nested_strings_redacted_other_values_untouched() -> None:
    data = {
        "user": {"email": "bob@example.com", "age": 41, "vip": True, "score": 0.5},
        "contacts": ["+1 555 123 4567", {"ssn": "123-45-6789"}, None, 4111111111111111],
        "note": "card 4111 1111 1111 1111 on file",
        "bob@example.com": "key is redacted too",
        "count": 1732200000000,
    }
    out = R.json_bytes(_meta(data))
    assert orjson.loads(out) == {
        "user": {"email": "[EMAIL]", "age": 41, "vip": True, "score": 0.5},
        "contacts": ["[PHONE]", {"ssn": "[SSN]"}, None, 4111111111111111],
        "note": "card [CARD] on file",
        "[EMAIL]": "key is redacted too",
        "count": 1732200000000,
    }


def test_json_strings_with_escapes_are_redacted() -> None:
    # escapes defeat the raw-text pre-check, so these take the parsing path
    data = {"msg": 'line1\nbob@x.io\t"quoted 123-45-6789"', "path": "C:\\tmp\\555-123-4567"}
    out = orjson.loads(R.json_bytes(_meta(data)))
    assert out == {"msg": 'line1\n[EMAIL]\t"quoted [SSN]"', "path": "C:\\tmp\\[PHONE]"}


@pytest.mark.parametrize(
    "data",
    [
        {"route": "/v1/chat", "latency": 0.53, "retries": 2, "ok": True, "tags": ["a", "b"]},
        {"ts": "2024-11-21T15:30:05Z", "id": "550e8400-e29b-41d4-a716-446655440000"},
        {"card_like_number": 4111111111111111, "phone_like": 5551234567},
        {"ip": "127.0.0.1", "emoji": "ünïcødé ✓"},
        {},
    ],
)
def test_json_without_pii_returns_the_same_bytes_object(data: dict[str, Any]) -> None:
    raw = _meta(data)
    assert R.json_bytes(raw) is raw


def test_json_colliding_keys_collapse() -> None:
    out = orjson.loads(R.json_bytes(_meta({"a@x.io": 1, "b@y.io": 2})))
    assert out == {"[EMAIL]": 2}


def test_extra_patterns() -> None:
    red = Redactor(extra_patterns={"api_key": r"sk-[A-Za-z0-9]{20,}", "acct": r"ACCT-\d+"})
    key = "sk-" + "a1B2" * 6
    assert red.text(f"key {key} for ACCT-991 bob@x.io") == "key [API_KEY] for [ACCT] [EMAIL]"
    out = orjson.loads(red.json_bytes(_meta({"k": key, "n": [1, "ACCT-7"]})))
    assert out == {"k": "[API_KEY]", "n": [1, "[ACCT]"]}
    clean = _meta({"k": "sk-short"})
    assert red.json_bytes(clean) is clean


def test_anchored_extra_pattern_applies_to_whole_json_strings() -> None:
    red = Redactor(extra_patterns={"token": r"^tok_[a-z]+$"})
    out = orjson.loads(red.json_bytes(_meta({"t": "tok_abc", "u": "x tok_abc"})))
    assert out == {"t": "[TOKEN]", "u": "x tok_abc"}


def test_bad_extra_patterns_raise_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Redactor(extra_patterns={"broken": "([a-z"})
    assert info.value.setting == "redact_patterns.broken"
    with pytest.raises(ConfigError, match="empty string"):
        Redactor(extra_patterns={"everything": "x*"})
    with pytest.raises(ConfigError):
        Redactor(extra_patterns={"": "abc"})


def test_disabled_returns_input_unchanged() -> None:
    off = Redactor(enabled=False, extra_patterns={"x": "secret"})
    text = "bob@x.io 4111 1111 1111 1111 secret"
    raw = _meta({"email": "bob@x.io"})
    assert off.text(text) is text
    assert off.json_bytes(raw) is raw


def test_prompt_fingerprint() -> None:
    assert prompt_fingerprint("hello") == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        5,
    )
    digest, length = prompt_fingerprint("héllo ✓")
    assert digest == hashlib.sha256("héllo ✓".encode()).hexdigest()
    assert length == 7
    assert prompt_fingerprint("bad \ud800 surrogate")[1] == 15


_LOCAL = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,30}", fullmatch=True)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,15}[a-z0-9])?", fullmatch=True)
_EMAILS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _LOCAL,
    st.lists(_LABEL, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,10}", fullmatch=True),
)


def _with_luhn(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


@st.composite
def _cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("23456"))
    rest = draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    digits = _with_luhn(first + rest)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


@given(_EMAILS, st.text(max_size=40), st.text(max_size=40))
def test_property_email_never_survives(email: str, before: str, after: str) -> None:
    assert email not in R.text(f"{before} {email} {after}")


@given(_cards(), st.text(max_size=40), st.text(max_size=40))
def test_property_card_never_survives(card: str, before: str, after: str) -> None:
    assert card not in R.text(f"{before} {card} {after}")


@given(st.text(alphabet=st.characters(exclude_characters="0123456789@")))
def test_property_text_without_digits_or_at_is_untouched(text: str) -> None:
    assert R.text(text) is text


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text("abcdefgh", min_size=1, max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def _shape(value: Any) -> Any:
    if isinstance(value, str):
        return str
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return value


@given(st.dictionaries(st.text("xyz", min_size=1, max_size=3), _JSON, max_size=5))
def test_property_json_keeps_structure(data: dict[str, Any]) -> None:
    out = orjson.loads(R.json_bytes(_meta(data)))
    assert _shape(out) == _shape(orjson.loads(_meta(data)))
