"""Small text helpers shared by validation, the pipeline and the stores."""

from __future__ import annotations

import re
from typing import Any, Final

_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (which UTF-8, and so no store, can hold) as U+FFFD.

    Returns ``text`` itself when it is clean (the common case costs one ``isascii``).
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def short_repr(value: Any) -> str:
    """A short repr for messages; never raises (a broken ``__repr__``, a huge int)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"<{value.bit_length()}-bit int>"  # repr() refuses over 4300 digits
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 60 else text[:57] + "..."


def exception_text(exc: BaseException) -> str:
    """``Type: message`` of an exception raised by a caller's object; never raises."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__
