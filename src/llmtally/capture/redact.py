"""PII redaction for the free text llmtally stores.

The writer applies :class:`Redactor` to ``error_message``, ``comment`` and every string
inside ``metadata`` (keys too: a user's e-mail is a common dict key).
:func:`prompt_fingerprint` gives the ``prompt_hash`` / ``prompt_length`` pair.

What is replaced:

* ``[EMAIL]`` — ``local@domain.tld``: a local part of 1–64 letters, digits or
  ``. _ % + -`` and a domain whose last label is letters only.
* ``[PHONE]`` — ``+``, a country code and 8–15 digits in all, grouped by spaces, dots,
  dashes or a parenthesised part (``+44 (0)20 7946 0958``, ``+14155552671``); North
  American numbers with separators (``(555) 123-4567``, ``1-800-555-1234``); European
  national numbers: trunk ``0``, one repeated separator (space, dot, slash or dash) and
  9–12 digits (``030 1234567``, ``06 12 34 56 78``, ``089/12345678``).
* ``[CARD]`` — 13–19 digits starting 2–6 (Visa, Mastercard, Amex, Discover, JCB,
  UnionPay, Maestro), unbroken or in space/dash groups led by four digits, and only
  when the Luhn checksum holds.
* ``[SSN]`` — any ``ddd-dd-dddd``.
* ``[IP]`` — dotted-quad IPv4 addresses (octets 0–255), except loopback ``127.x.x.x``
  and ``0.0.0.0``, which identify no one and help read connection errors.
* ``[NAME]`` — matches of each ``extra_patterns`` entry (name upper-cased), applied
  after the built-in kinds.

A digit run that continues an identifier, decimal, version, date or time (a letter,
dot, dash, slash or ``12:`` before it; such a separator and a digit after it) is never
a candidate, so UUIDs, ISO timestamps, versions such as ``1.2.3``, prices such as
``0.00472`` and integers such as token counts or ``1732200000000`` stay as they are.

Known limits. *Not* redacted: names, postal addresses, IPv6 addresses, bare digit runs
that may be phone numbers (``4155552671`` cannot be told from an integer),
``00``-prefixed international numbers, 7-digit local numbers, SSNs without dashes,
cards starting 1/7/8/9 or grouped otherwise, quoted or exotic e-mail local parts and
domains without a dot (``user@localhost``). Redacted although not PII: four-part
versions with small parts (``1.2.3.4`` reads as an address), about one in ten 13–19
digit runs starting 2–6 (Luhn holds by chance) and ``+``-signed numbers of 8–15
digits. Metadata keys that redact to the same text collapse into one (the last value
wins). A Redactor holds no mutable state and may be shared between threads.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from llmtally.errors import ConfigError

# Numeric candidates must start a run: not after a word character, dot, sign, slash or
# dash (UUID parts, decimals, versions, dates), nor right after "12:" (clock times).
_L: Final = r"(?<![\w.+/-])(?<![0-9]:)"
# ...and must end one: no word character or ".5", ":5", "/5", "-5" continuing the number.
_R: Final = r"(?!\w|[.:/-][0-9])"
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"

_EMAIL: Final = r"(?P<email>(?<![\w.%+-])[\w.%+-]{1,64}@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,})"
# Alternatives are tried left to right at each position; every inner group but "sep"
# is non-capturing so that ``lastgroup`` names the kind that matched. The leading
# lookahead lets most positions fail on one test instead of six.
_NUMBERS: Final = rf"""(?=[0-9+(])(?:
    (?P<phone_intl>(?<![\w+])\+[1-9](?:[ .-]?(?:\([0-9]{{1,4}}\)|[0-9])){{6,20}}(?!\w))
    |(?P<ssn>{_L}[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}{_R})
    |(?P<card>{_L}[2-6](?:[0-9]{{12,18}}|[0-9]{{3}}(?:[ -][0-9]{{3,6}}){{1,3}}[ -][0-9]{{1,6}}){_R})
    |(?P<ip>(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.[0-9]))
    |(?P<phone_us>{_L}(?:1[ .-])?(?:\([0-9]{{3}}\)[ .-]?|[0-9]{{3}}[ .-])
        [0-9]{{3}}[ .-][0-9]{{4}}{_R})
    |(?P<phone_eu>{_L}0[1-9][0-9]{{0,4}}(?P<sep>[ ./-])
        [0-9]{{2,8}}(?:(?P=sep)[0-9]{{2,8}}){{0,3}}{_R})
    )"""
# The e-mail branch is slow on prose, so it is only searched for when an "@" is present.
_ALL: Final = re.compile(f"{_EMAIL}|{_NUMBERS}", re.VERBOSE)
_NUMERIC: Final = re.compile(_NUMBERS, re.VERBOSE)
# Every numeric kind needs a digit: text without one (or an "@") skips the scan.
_DIGIT: Final = re.compile(r"[0-9]")
_NOT_DIGIT: Final = re.compile(r"[^0-9]")
_LABELS: Final = {
    "email": "[EMAIL]",
    "ssn": "[SSN]",
    "card": "[CARD]",
    "ip": "[IP]",
    "phone_intl": "[PHONE]",
    "phone_us": "[PHONE]",  # its shape alone fixes ten or eleven digits
    "phone_eu": "[PHONE]",
}
# Kinds whose pattern only outlines a digit group sequence: the digit count decides.
_DIGIT_BOUNDS: Final = {"card": (13, 19), "phone_intl": (8, 15), "phone_eu": (9, 12)}
# Anchors and lookarounds behave differently on raw JSON than inside one string value.
_CONTEXT_SENSITIVE: Final = re.compile(r"\^|\$|\\[AZz]|\(\?<|\(\?=|\(\?!")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _label(match: re.Match[str]) -> tuple[str, int] | None:
    """The placeholder and end of an accepted candidate, or None when validation rejects it."""
    kind = match.lastgroup or ""
    found = match.group()
    if kind == "ip" and (found.startswith("127.") or found == "0.0.0.0"):
        return None
    bounds = _DIGIT_BOUNDS.get(kind)
    if bounds is None:
        return _LABELS[kind], match.end()
    low, high = bounds
    end = len(found)
    while end > 0:
        digits = _NOT_DIGIT.sub("", found[:end])
        if len(digits) < low:
            return None
        if len(digits) <= high and (kind != "card" or _luhn(digits)):
            return _LABELS[kind], match.start() + end
        # the greedy match may have swallowed a following number ("… 1111 5 items"):
        # retry without its last group before giving up
        end = max(found.rfind(sep, 0, end) for sep in " -./")
    return None


def _scan(value: str, pattern: re.Pattern[str]) -> str:
    parts: list[str] = []
    last = pos = 0
    search = pattern.search
    while (match := search(value, pos)) is not None:
        accepted = _label(match)
        if accepted is None:
            # searching on (not slicing) keeps lookbehinds honest; a later kind or a
            # shorter run starting inside the rejected one still gets its chance
            pos = match.start() + 1
            continue
        parts.append(value[last : match.start()])
        parts.append(accepted[0])
        last = pos = accepted[1]
    if not parts:
        return value
    parts.append(value[last:])
    return "".join(parts)


class Redactor:
    """Replaces PII in free text and in metadata JSON with ``[KIND]`` placeholders."""

    __slots__ = ("_enabled", "_extra", "_raw_safe")

    def __init__(
        self, *, enabled: bool = True, extra_patterns: Mapping[str, str] | None = None
    ) -> None:
        self._enabled = enabled
        self._extra: list[tuple[re.Pattern[str], str]] = []
        self._raw_safe = True
        for name, source in (extra_patterns or {}).items():
            setting = f"redact_patterns.{name}"
            if not isinstance(name, str) or not name:
                raise ConfigError(setting, "the pattern name must be a non-empty string")
            if not isinstance(source, str):
                raise ConfigError(setting, f"must be a regex string, got {type(source).__name__}")
            try:
                pattern = re.compile(source)
            except re.error as exc:
                raise ConfigError(setting, f"is not a valid regular expression: {exc}") from None
            if pattern.match("") is not None:
                raise ConfigError(setting, "matches the empty string, so it would match everywhere")
            # the label is a sub() template: only backslashes are special in it
            self._extra.append((pattern, f"[{name.upper()}]".replace("\\", "\\\\")))
            self._raw_safe = self._raw_safe and _CONTEXT_SENSITIVE.search(source) is None

    def text(self, value: str) -> str:
        """Return ``value`` with PII replaced (the same object when nothing matched)."""
        if not self._enabled:
            return value
        if "@" in value:
            value = _scan(value, _ALL)
        elif _DIGIT.search(value) is not None:
            value = _scan(value, _NUMERIC)
        for pattern, label in self._extra:
            value = pattern.sub(label, value)
        return value

    def json_bytes(self, data: bytes) -> bytes:
        """Redact every string key and value of a JSON document; ``data`` itself if none changed."""
        if not self._enabled or not self._may_match(data):
            return data
        redacted = orjson.dumps(self._walk(orjson.loads(data)))
        return data if redacted == data else redacted

    def _may_match(self, data: bytes) -> bool:
        # Without a backslash no string holds an escape, so each one appears verbatim
        # between quotes, and a quote looks like a string edge to every built-in
        # boundary: no match on the raw text means no match in any string.
        if b"\\" in data or not self._raw_safe:
            return True
        raw = data.decode("utf-8")
        if (_ALL if b"@" in data else _NUMERIC).search(raw) is not None:
            return True
        return any(pattern.search(raw) is not None for pattern, _ in self._extra)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self._walk(item) for key, item in value.items()}
        return value


def prompt_fingerprint(text: str) -> tuple[str, int]:
    """Return the sha256 hex digest of ``text`` (UTF-8) and its length in characters."""
    # surrogatepass: a lone surrogate from a broken decode must not fail the capture
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest, len(text)
