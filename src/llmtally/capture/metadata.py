"""Metadata (and product-event properties): a mapping checked and encoded to JSON once.

The common case is one orjson call; only a value orjson refuses, or one it may have
changed silently (NaN and infinity become ``null``), is walked, to normalize it or to name
the key that is wrong. See ``capture.event`` for the contract and its normalizations.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any, Final

import orjson

from llmtally.capture.text import clean_text, exception_text, short_repr
from llmtally.errors import InvalidEventError

MAX_METADATA_BYTES: Final = 64 * 1024
MAX_METADATA_DEPTH: Final = 254  # nested containers, top level included: orjson's own limit

_JSON_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1  # orjson writes unsigned 64-bit integers too


def _json_default(value: Any) -> Any:
    """orjson's fallback for the types it does not write itself (or must not: see below)."""
    # datetimes are passed through to here: orjson crashes the process on a tzinfo whose
    # utcoffset() raises, and drops the seconds of an offset
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, float):  # a float subclass (numpy.float64)
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()  # numpy scalars
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def encode(value: Any, field: str) -> bytes:
    """``value`` (a mapping) as the JSON bytes the writer stores; bad content names ``field``.

    The common case is one orjson call. Only when orjson refuses the value (a non-string
    key, a lone surrogate, a huge int, an unknown type, too deep) or writes ``null``
    (which NaN and infinity silently become) is the value walked, to normalize it or to
    name the key that is wrong.
    """
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            got = f"{type(value).__name__} {short_repr(value)}"
            raise InvalidEventError(field, f"must be a JSON object (a mapping), got {got}", value)
        value = dict(value)
    try:
        encoded = orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        encoded = _encode_slowly(value, field)
    else:
        if encoded.find(b"null") >= 0:  # faster than `in` on bytes (3.11)
            where = _nonfinite_at(value, "", 0)
            if where is not None:
                where = where or "the top level"
                raise InvalidEventError(
                    field, f"holds NaN or infinity, which JSON cannot represent (at {where})"
                )
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidEventError(
            field,
            f"is {len(encoded):,} bytes as JSON; at most {MAX_METADATA_BYTES:,} allowed",
        )
    # the writer stores these bytes: later mutation of the caller's dict cannot leak in
    return encoded


def _encode_slowly(value: dict[str, Any], field: str) -> bytes:
    clean = _Normalizer(field).value(value, "", 1)
    try:
        return orjson.dumps(clean)
    except TypeError as exc:
        raise InvalidEventError(field, f"is not JSON-serializable: {exc}") from None


def _nonfinite_at(value: Any, path: str, depth: int) -> str | None:
    """Path of the first NaN or infinity in a value orjson has written (None if none)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if depth > MAX_METADATA_DEPTH:
        return None  # orjson accepted it: deeper than this it cannot be
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _nonfinite_at(item, f"{path}.{key}" if path else str(key), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nonfinite_at(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
    elif isinstance(value, enum.Enum):
        return _nonfinite_at(value.value, path, depth)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _nonfinite_at(_json_default(value), path, depth)
    elif type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _nonfinite_at(value.item(), path, depth)
    return None


class _Normalizer:
    """Builds the JSON-ready copy of a value orjson refused, or names what is wrong in it."""

    __slots__ = ("field",)

    def __init__(self, field: str) -> None:
        self.field = field

    def fail(self, path: str, message: str) -> InvalidEventError:
        return InvalidEventError(self.field, f"{message} (at {path or 'the top level'})")

    def value(self, value: Any, path: str, depth: int) -> Any:
        if value is None or type(value) is bool:
            return value
        if isinstance(value, enum.Enum):  # before str and int: orjson writes an enum's value
            return self.value(value.value, path, depth)
        if isinstance(value, str):
            return clean_text(str.__str__(value))
        if isinstance(value, int):
            number = int(value)
            if not _INT64_MIN <= number <= _UINT64_MAX:
                raise self.fail(path, "holds an integer beyond 64 bits")
            return number
        if isinstance(value, float):
            real = float(value)
            if not math.isfinite(real):
                raise self.fail(path, f"holds {real}, which JSON cannot represent")
            return real
        if isinstance(value, uuid.UUID):
            return uuid.UUID.__str__(value)
        if isinstance(value, Mapping | list | tuple) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)
        ):
            if depth > MAX_METADATA_DEPTH:
                raise self.fail(
                    path, f"is nested deeper than {MAX_METADATA_DEPTH} levels (or circular)"
                )
            if isinstance(value, list | tuple):
                return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            return self.mapping(
                _json_default(value) if not isinstance(value, Mapping) else value, path, depth
            )
        if isinstance(value, datetime | date | time) or (
            type(value).__module__ == "numpy" and hasattr(value, "item")
        ):
            try:
                converted = _json_default(value)
            except Exception as exc:
                problem = exception_text(exc)
                raise self.fail(
                    path, f"holds a {type(value).__name__} that cannot be written ({problem})"
                ) from None
            return self.value(converted, path, depth)
        raise self.fail(path, f"is not JSON-serializable: holds a {type(value).__name__}")

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise self.fail(
                        path, f"has a non-string key {short_repr(key)}; JSON keys are strings"
                    )
                key = str.__str__(key)
            clean = clean_text(key)
            if clean in out:
                raise self.fail(
                    path,
                    f"has two keys equal once lone surrogates are replaced ({short_repr(clean)})",
                )
            out[clean] = self.value(item, f"{path}.{clean}" if path else clean, depth + 1)
        return out
