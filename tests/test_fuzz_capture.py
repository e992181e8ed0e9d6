"""Fuzzing every capture entry point against the validation contract (``capture.event``).

For any input a capture call either refuses it with ``InvalidEventError`` naming a field
that is really wrong (never another exception, and nothing is stored), or accepts it and
the store holds exactly what was given, up to the documented normalizations:

* capture: str subclasses become plain str, numbers in float fields floats, ``uuid.UUID``
  and upper-case ids lower-case strings, free text is cut to its limit, every time form
  Unix seconds; in metadata lone surrogates become U+FFFD, datetimes ISO strings, enums
  their values, tuples lists, numpy scalars numbers;
* writer: lone surrogates in any string become U+FFFD; NUL becomes U+FFFD on PostgreSQL;
* store: PostgreSQL ``jsonb`` keeps no key order and may read a whole float back as an int.

One Tally per test: each hypothesis example calls the entry point and, when the call was
accepted, records what the store must hold under the returned event id; the database is
read once at the end. ``oracle`` below is written from the contract, not from the code.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import fractions
import json
import math
import operator
import re
import time
import types
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmtally
from dbutil import rows
from llmtally.capture.metadata import MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from llmtally.event import (
    ACTOR_TEXT_LIMITS,
    COLUMN_NAMES,
    FIELDS,
    MAX_EPOCH,
    MIN_EPOCH,
    TOKEN_FIELDS,
)

PROJECT = "fuzz"
SETTINGS = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
EPOCH = datetime(1970, 1, 1)
EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
SURROGATE = re.compile("[\ud800-\udfff]")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ANY = object()  # a column whose value the test does not predict (measured latency…)
SET_BY_LLMTALLY = ("schema_version", "input_text", "output_text")


# -- odd objects ---------------------------------------------------------------------------


class BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("no float today")


class BadIndex:
    def __index__(self) -> int:
        raise ZeroDivisionError("no index today")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")

    def __float__(self) -> float:
        return 0.5


class BadTz(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("no offset today")

    def tzname(self, dt: datetime | None) -> str:
        return "bad"

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


class Choice(enum.StrEnum):
    HUMAN = "human"
    AGENT = "agent"
    UP = "up"
    SUCCESS = "success"
    ERROR = "error"
    FEEDBACK = "feedback"
    LLM_CALL = "llm_call"


class Count(enum.IntEnum):
    FIVE = 5
    HUGE = 2**40


class Text(str):
    """A str subclass that lies about itself."""

    def __str__(self) -> str:
        return "lie"


class BadMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["model"])

    def __len__(self) -> int:
        return 1


@dataclasses.dataclass
class Point:
    x: float
    y: int = 2


def bad_time() -> datetime:
    """A datetime whose time zone raises (built per example: even hashing it raises)."""
    return datetime(2026, 1, 1, tzinfo=BadTz())


def nested(depth: int) -> dict[str, Any]:
    """A mapping ``depth`` containers deep, the top one included."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


def circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


# -- strategies ----------------------------------------------------------------------------

CHARS = st.characters(exclude_categories=())  # every code point, lone surrogates and NUL too
ODD_TEXT = st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "x\x00y", "\ud83d\ude00", "😀", "\ufffd", " ", "\n"]
)
TEXT = st.one_of(st.text(CHARS, max_size=8), ODD_TEXT)
KEY_TEXT = st.one_of(
    st.text(st.characters(exclude_characters="\x00\ufffd", exclude_categories=()), max_size=6),
    st.sampled_from(["\ud800", "k\udc00", "null", ""]),
)
OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-(24 * 60 - 1), 24 * 60 - 1)
)
ANY_DATETIME = st.one_of(
    st.datetimes(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS),
)
PLAUSIBLE_DATETIME = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30)),
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30), timezones=OFFSETS
    ),
)
ODD_OBJECTS = st.sampled_from(
    [
        BadFloat(),
        BadIndex(),
        BadRepr(),
        decimal.Decimal("1.5"),
        decimal.Decimal("NaN"),
        decimal.Decimal("sNaN"),
        decimal.Decimal("1e400"),
        fractions.Fraction(1, 3),
        np.int64(7),
        np.int64(-3),
        np.float64(2.5),
        np.float32(0.5),
        np.bool_(True),
        Count.FIVE,
        Count.HUGE,
        Choice.HUMAN,
        Choice.LLM_CALL,
        Text("model"),
        complex(1, 0),
        b"bytes",
        bytearray(b"x"),
        frozenset({1}),
        types.SimpleNamespace(a=1),
        object(),
        Point(1.0),
        uuid.UUID(int=1),
        dtime(12, 30),
    ]
)
BAD_TIME = st.builds(bad_time)
WILD = st.one_of(
    st.none(),
    BAD_TIME,
    st.booleans(),
    st.integers(),
    st.sampled_from(
        [-1, 0, 1, 2**31, 2**32, 2**32 + 1, 2**53, 2**63, 2**64, 10**400, -(10**400), 10**5000]
    ),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e308, 1e9, 1e6, 100.0, 1.0]),
    TEXT,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.tuples(st.integers()),
    st.sets(st.integers(), max_size=2),
    ODD_OBJECTS,
    st.uuids(),
    ANY_DATETIME,
    st.dates(),
)

JSON_SCALARS = st.one_of(
    st.none(),
    BAD_TIME,
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(),
    TEXT,
    st.sampled_from(
        [
            2**64 - 1,
            2**64,
            -(2**63),
            -(2**63) - 1,
            datetime(2026, 1, 1, 12, 0, 0, 5),
            datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, seconds=7))),
            date(2026, 1, 1),
            dtime(1, 2, 3),
            uuid.UUID(int=7),
            Count.FIVE,
            Choice.UP,
            np.float64(1.5),
            np.float64("nan"),
            np.int64(3),
            decimal.Decimal("1"),
            b"x",
            {1, 2},
            object(),
            Point(0.25),
            Point(math.inf),
        ]
    ),
)
JSON_KEYS = st.one_of(KEY_TEXT, KEY_TEXT, KEY_TEXT, st.sampled_from([1, None, (1, 2), Choice.UP]))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children),
        st.dictionaries(JSON_KEYS, children, max_size=3),
        st.builds(types.MappingProxyType, st.dictionaries(KEY_TEXT, children, max_size=2)),
    ),
    max_leaves=8,
)
METADATA = st.one_of(
    st.dictionaries(JSON_KEYS, JSON_VALUES, max_size=4),
    st.dictionaries(KEY_TEXT, st.one_of(st.integers(-5, 5), st.text(max_size=5)), max_size=4),
    st.sampled_from(
        [
            {},
            {1: "a", "1": "b"},
            {"a": math.nan},
            {"x": {"y": [1, math.inf]}},
            {"k": "\ud800", "\ud800": 1},
            dict([("\ud800", 1), ("\udc00", 2)]),  # equal once cleaned
            {Choice.UP: 1},
            {"big": "x" * (MAX_METADATA_BYTES + 1)},
            {"big": "x" * (MAX_METADATA_BYTES - 20)},
            nested(MAX_METADATA_DEPTH),
            nested(MAX_METADATA_DEPTH + 1),
            circular(),
            OrderedDict(a=1),
        ]
    ),
    st.builds(types.MappingProxyType, st.dictionaries(KEY_TEXT, JSON_SCALARS, max_size=3)),
    st.just(BadMapping()),
)


PLAUSIBLE_TIMES = st.one_of(
    st.floats(min_value=MIN_EPOCH, max_value=MAX_EPOCH, exclude_max=True),
    st.integers(min_value=0, max_value=int(MAX_EPOCH) - 1),
    PLAUSIBLE_DATETIME,
    PLAUSIBLE_DATETIME.map(lambda d: d.isoformat()),
    st.dates(min_value=date(1970, 1, 1), max_value=date(2999, 12, 31)),
)
ODD_TIMES = st.one_of(
    BAD_TIME,
    ANY_DATETIME,
    ANY_DATETIME.map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.dates(),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "0999-06-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "2999-12-31T23:59:59.999999+00:00",
            "3000-01-01T00:00:00Z",
            "2026-02-30",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00\x00",
            "yesterday",
            "",
            0,
            -1,
            -1e-9,
            MAX_EPOCH,
            MAX_EPOCH - 1e-3,
            True,
            datetime(1970, 1, 1),
            datetime(1969, 12, 31, 23, 59, 59, 999999),
            datetime(2999, 12, 31, 23, 59, 59, 999999),
            datetime(3000, 1, 1),
            datetime(2999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),
            datetime(1970, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            np.float64(1.7e9),
        ]
    ),
)
SIMPLE_METADATA = st.dictionaries(
    KEY_TEXT,
    st.one_of(
        st.integers(-5, 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(CHARS, max_size=5),
        st.booleans(),
        st.none(),
        st.lists(st.integers(0, 9), max_size=3),
    ),
    max_size=4,
)


def good_values(name: str) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(the usual valid values, the edges) of a field: its boundaries and convertible forms."""
    spec = FIELDS[name]
    kind = spec.column
    if kind == "str" and spec.choices is not None:
        members = [m for m in Choice if m.value in spec.choices]
        return st.sampled_from(sorted(spec.choices)), st.one_of(
            st.sampled_from(members or [""]), st.text(max_size=6)
        )
    if kind == "str":
        return st.one_of(st.text(CHARS, min_size=1, max_size=12), ODD_TEXT), st.sampled_from(
            ["", "x" * spec.max_len, "x" * (spec.max_len + 1), Text("t"), "\x00"]
        )
    if kind == "text":
        return st.one_of(st.text(CHARS, max_size=40), ODD_TEXT), st.sampled_from(
            ["", "y" * (spec.max_len + 3), Text("why")]
        )
    if kind == "int":
        return st.integers(min_value=0, max_value=2000), st.one_of(
            st.integers(min_value=0, max_value=2**32),
            st.sampled_from([0, 2**32, 2**32 + 1, 5.0, np.int64(5), Count.FIVE, Count.HUGE]),
        )
    if kind == "float":
        top = spec.maximum
        assert top is not None
        return st.floats(min_value=0.0, max_value=top), st.one_of(
            st.integers(min_value=0, max_value=int(top)),
            st.sampled_from(
                [
                    top,
                    math.nextafter(top, math.inf),
                    int(top) + 1,
                    -0.0,
                    5e-324,
                    decimal.Decimal("0.5"),
                    fractions.Fraction(1, 4),
                    np.float64(0.25),
                ]
            ),
        )
    if kind == "bool":
        return st.booleans(), st.sampled_from([np.bool_(False), 0, 1])
    if kind == "ts":
        return PLAUSIBLE_TIMES, ODD_TIMES
    if kind == "id":
        return st.one_of(st.uuids(), st.uuids().map(str)), st.one_of(
            st.uuids().map(lambda u: str(u).upper()),
            st.uuids().map(lambda u: str(u) + "\n"),
            st.uuids().map(lambda u: "{" + str(u) + "}"),
            st.uuids().map(lambda u: u.hex),
            st.uuids().map(lambda u: Text(str(u))),
            TEXT,
        )
    return SIMPLE_METADATA, METADATA


def value_of(name: str, wild: int = 5) -> st.SearchStrategy[Any]:
    """The field's usual values; one time in ``wild`` anything at all, and as often an edge."""
    name = {"actor": "actor_id", "prompt": "comment", "completion": "comment"}.get(name, name)
    if name not in FIELDS:
        return WILD
    valid, edges = good_values(name)
    values = st.integers(1, wild).flatmap(lambda n: WILD if n == 1 else edges if n == 2 else valid)
    return values


def fields_of(
    names: list[str], max_size: int = 7, wild: int = 5
) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of some of ``names`` with values drawn for each."""
    return st.lists(st.sampled_from(names), unique=True, max_size=max_size).flatmap(
        lambda chosen: st.fixed_dictionaries({n: value_of(n, wild) for n in chosen})
    )


CALL_FIELDS = [n for n in FIELDS if n not in SET_BY_LLMTALLY and n not in ("rating", "comment")]
EXTRA_FIELDS = [
    "event_id",
    "occurred_at",
    "project",
    "kind",
    "feature",
    "session_id",
    "trace_id",
    "actor_type",
    "latency_ms",
    "status",
    "error_type",
    "error_message",
    "quality_score",
    "metadata",
]


# -- the oracle ----------------------------------------------------------------------------


class Refused(Exception):
    """The contract says the value must be refused."""


def expect_text(spec_name: str, value: Any) -> str:
    spec = FIELDS[spec_name]
    if not isinstance(value, str):
        raise Refused
    text = str.__str__(value)
    if spec.column == "text":
        return text[: spec.max_len]
    if not text or len(text) > spec.max_len:
        raise Refused
    if spec.choices is not None and text not in spec.choices:
        raise Refused
    return text


def expect_epoch(value: Any) -> float:
    if isinstance(value, bool):
        raise Refused
    if isinstance(value, int | float):
        seconds: float = value
    elif isinstance(value, str | datetime | date):
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except Exception:
                raise Refused from None
        if not isinstance(value, datetime):
            value = datetime.combine(value, dtime())
        try:
            if value.utcoffset() is None:
                seconds = (value.replace(tzinfo=None) - EPOCH).total_seconds()
            else:
                seconds = (value - EPOCH_UTC).total_seconds()
        except Exception:
            raise Refused from None
    else:
        raise Refused
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise Refused
    if not MIN_EPOCH <= seconds < MAX_EPOCH:
        raise Refused
    return float(seconds)


def clean(text: str) -> str:
    return SURROGATE.sub("\ufffd", text)


def expect_json_value(value: Any, depth: int) -> Any:
    if value is None or type(value) is bool:
        return value
    if isinstance(value, enum.Enum):
        return expect_json_value(value.value, depth)
    if isinstance(value, str):
        return clean(str.__str__(value))
    if isinstance(value, int):
        if not -(2**63) <= value <= 2**64 - 1:
            raise Refused
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refused
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | dtime):
        try:
            return value.isoformat()
        except Exception:
            raise Refused from None
    if isinstance(value, np.generic):
        return expect_json_value(value.item(), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple | Mapping) and depth > MAX_METADATA_DEPTH:
        raise Refused
    if isinstance(value, list | tuple):
        return [expect_json_value(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        try:
            items = list(value.items())
        except Exception:
            raise Refused from None
        for key, item in items:
            if not isinstance(key, str):
                raise Refused
            key = clean(str.__str__(key))
            if key in out:
                raise Refused
            out[key] = expect_json_value(item, depth + 1)
        return out
    raise Refused


def expect_metadata(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise Refused
    out = expect_json_value(value, 1)
    if len(orjson.dumps(out)) > MAX_METADATA_BYTES:
        raise Refused
    return out


def expect_value(name: str, value: Any) -> Any:
    """What the store must hold for ``value`` given as field ``name``; Refused if it must not."""
    spec = FIELDS[name]
    kind = spec.column
    if kind in ("str", "text"):
        return expect_text(name, value)
    if kind == "int":
        if isinstance(value, bool | float):
            raise Refused
        try:
            number = operator.index(value)
        except Exception:
            raise Refused from None
        if not 0 <= number <= 2**32:
            raise Refused
        return number
    if kind == "float":
        if isinstance(value, bool | str | bytes | bytearray):
            raise Refused
        if isinstance(value, int):
            if not 0 <= value <= spec.maximum:  # type: ignore[operator]
                raise Refused
            return float(value)
        try:
            real = float(value)
        except Exception:
            raise Refused from None
        if not (math.isfinite(real) and 0 <= real <= spec.maximum):  # type: ignore[operator]
            raise Refused
        return real
    if kind == "bool":
        if type(value) is bool:
            return value
        if type(value) is np.bool_:
            return bool(value)
        raise Refused
    if kind == "id":
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str) and UUID_RE.fullmatch(value):
            return str.__str__(value).lower()
        raise Refused
    if kind == "ts":
        return expect_epoch(value)
    return expect_metadata(value)


def check_fields(fields: Mapping[str, Any], kind: str) -> dict[str, Any] | set[str]:
    """Each field checked alone (``actor`` resolved last), or the names an error may give."""
    bad: set[str] = set()
    event: dict[str, Any] = {}
    actor: Any = None
    for name, value in fields.items():
        if value is None:
            continue
        if name == "actor":
            actor = value
        elif name in ("prompt", "completion"):
            if isinstance(value, str):
                event[name] = str.__str__(value)
            else:
                bad.add(name)
        elif name not in FIELDS or name in SET_BY_LLMTALLY:
            bad.add(name)
        else:
            try:
                event[name] = expect_value(name, value)
            except Refused:
                bad.add(name)
    if actor is not None:
        try:
            checked = expect_value("actor_id", actor)
        except Refused:
            bad.add("actor_id")
        else:
            if event.get("actor_id", checked) != checked:
                bad.add("actor")
            event["actor_id"] = checked
    if bad:
        return bad
    if event.get("kind", kind) != kind:
        return {"kind"}
    return event


def inconsistent(event: Mapping[str, Any]) -> set[str]:
    """The cross-field rules: cached tokens within input, reasoning within output."""
    get = event.get
    if "input_tokens" in event and (get("cache_read_tokens") or 0) + (
        get("cache_write_tokens") or 0
    ) > get("input_tokens"):
        return {"cache_read_tokens"}
    if (get("cache_write_1h_tokens") or 0) > (get("cache_write_tokens") or 0):
        return {"cache_write_1h_tokens"}
    if "output_tokens" in event and (get("reasoning_tokens") or 0) > get("output_tokens"):
        return {"reasoning_tokens"}
    return set()


def oracle(
    fields: Mapping[str, Any], kind: str, *, require_model: bool | None = None
) -> dict[str, Any] | set[str]:
    """The event the store must hold for these fields, or the names an error may give."""
    event = check_fields(fields, kind)
    if isinstance(event, set):
        return event
    if (kind == "llm_call" if require_model is None else require_model) and "model" not in event:
        return {"model"}
    return inconsistent(event) or event


def update_oracle(event: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any] | set[str]:
    """What ``Call.record_usage(**fields)`` adds to ``event``, or the names its error may give."""
    update = check_fields(fields, "llm_call")
    if isinstance(update, set):
        return update
    return (inconsistent({**event, **update}) or update) if update else update


def mapping_oracle(raw: Any) -> tuple[str, dict[str, Any]] | set[str]:
    """``oracle`` for one row of ``ingest``: (kind, event) or the names an error may give."""
    if not isinstance(raw, Mapping):
        return {"event"}
    try:
        fields = dict(raw)
    except Exception:
        return {"event"}
    if not all(isinstance(key, str) for key in fields):
        return {"event"}
    fields = {str.__str__(key): value for key, value in fields.items()}
    kind = fields.pop("kind", None)
    if kind is None:
        kind = "llm_call"
    else:
        try:
            kind = expect_value("kind", kind)
        except Refused:
            return {"kind"}
    version = fields.pop("schema_version", None)
    if version is not None and not (type(version) is int and version == 1):
        return {"schema_version"}
    expected = oracle(fields, kind)
    return expected if isinstance(expected, set) else (kind, expected)


# -- the store's side ------------------------------------------------------------------------


def stored_text(text: str, backend: str) -> str:
    """A string as the store holds it: the writer's normalizations."""
    text = clean(text)
    return text.replace("\x00", "\ufffd") if backend == "postgres" else text


def stored_json(value: Any, backend: str) -> Any:
    if isinstance(value, str):
        return stored_text(value, backend)
    if isinstance(value, list):
        return [stored_json(item, backend) for item in value]
    if isinstance(value, dict):
        return {stored_text(k, backend): stored_json(v, backend) for k, v in value.items()}
    return value


def json_equal(want: Any, got: Any) -> bool:
    """JSON equality that lets a whole float come back as an int (PostgreSQL jsonb)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    if isinstance(want, int | float) and isinstance(got, int | float):
        return float(want) == float(got) if isinstance(want, float) else want == got
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and want.keys() == got.keys()
            and all(json_equal(want[k], got[k]) for k in want)
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(want) == len(got)
            and all(json_equal(a, b) for a, b in zip(want, got, strict=True))
        )
    return bool(want == got)


def expected_row(event: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Every column of the row an accepted event must become."""
    row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row.update({k: v for k, v in event.items() if k in FIELDS})
    row["kind"] = kind
    row["schema_version"] = 1
    row["project"] = event.get("project", PROJECT)
    if kind in ("llm_call", "tool_call") and row["status"] is None:
        row["status"] = "success"
    inp, out = row["input_tokens"], row["output_tokens"]
    if row["total_tokens"] is None and (inp is not None or out is not None):
        row["total_tokens"] = (inp or 0) + (out or 0)
    if kind == "llm_call" and "cost_usd" not in event:
        row["cost_usd"] = ANY  # priced by the writer
    if "occurred_at" not in event:
        row["occurred_at"] = ANY
    prompt = event.get("prompt")
    if prompt is not None:
        row["prompt_hash"] = ANY  # of the raw or the cleaned text (if it was journaled)
        row["prompt_length"] = len(prompt)
    return row


def same(column: str, want: Any, got: Any, backend: str) -> bool:
    if want is ANY:
        return True
    if want is None:
        return got is None
    kind = FIELDS[column].column
    if kind in ("str", "text"):
        return bool(got == stored_text(want, backend))
    if kind == "int":
        return type(got) is int and got == want
    if kind == "float":
        return isinstance(got, float) and got == want
    if kind == "bool":
        return got in (0, 1) and bool(got) == want
    if kind == "id":
        return str(got).lower() == want
    if kind == "ts":
        return isinstance(got, datetime) and abs(got.timestamp() - want) <= 2e-5
    parsed = json.loads(got) if isinstance(got, str) else got
    return json_equal(stored_json(want, backend), parsed)


class Fuzz:
    """One Tally under fuzz: calls entry points, checks their answers, remembers what to read."""

    def __init__(self, url: str, spool: Path, *, raise_invalid: bool = True) -> None:
        self.url = url
        self.backend = "postgres" if url.startswith("postgresql") else "sqlite"
        self.raise_invalid = raise_invalid
        self.tally = llmtally.Tally(
            url,
            project=PROJECT,
            redact_pii=False,  # random text must not look like an e-mail or phone number
            spool_dir=spool,
            on_invalid="raise" if raise_invalid else "warn",
        )
        self.expected: dict[str, tuple[dict[str, Any], Any]] = {}  # id -> (row, inputs)
        self.duplicates: set[str] = set()
        self.actors: dict[tuple[str, str], dict[str, Any]] = {}
        self.started = time.time()
        self.accepted_calls = 0
        self.refused_calls = 0

    def close(self) -> None:
        self.tally.close(60)

    # -- the checks around one call ----------------------------------------------------------

    def attempt(self, expected: Mapping[str, Any] | set[str], call: Callable[[], Any]) -> Any:
        """Run ``call``: an error exactly where the oracle refuses, naming a refused field.

        In warn mode a refusal is logged and counted instead; the call's result is returned.
        """
        invalid = self.tally.stats()["invalid"]
        if isinstance(expected, set):
            self.refused_calls += 1
            if self.raise_invalid:
                with pytest.raises(llmtally.InvalidEventError) as info:
                    call()
                assert info.value.field in expected, (info.value, expected)
                assert str(info.value).startswith(f"{info.value.field}: ")
                return None
            result = call()
            assert self.tally.stats()["invalid"] == invalid + 1, expected
            return result
        self.accepted_calls += 1
        result = call()
        assert self.tally.stats()["invalid"] == invalid
        return result

    def accepted(self, event_id: Any, row: dict[str, Any], inputs: Any) -> None:
        """Remember the row that ``event_id`` must have in the store."""
        assert isinstance(event_id, str) and UUID_RE.fullmatch(event_id), event_id
        if row["event_id"] is None:
            row["event_id"] = event_id
        assert event_id == row["event_id"], (event_id, row["event_id"])
        if event_id in self.expected:
            self.duplicates.add(event_id)  # the store keeps one of them: only check it exists
        self.expected[event_id] = (row, inputs)

    # -- entry points ------------------------------------------------------------------------

    def record_call(self, fields: dict[str, Any]) -> None:
        expected = oracle(fields, "llm_call")
        event_id = self.attempt(expected, lambda: self.tally.record_call(**fields))
        if not isinstance(expected, set):
            self.accepted(event_id, expected_row(expected, "llm_call"), fields)

    def record_tool_call(self, name: Any, fields: dict[str, Any]) -> None:
        expected = oracle({**fields, "name": name}, "tool_call")
        event_id = self.attempt(expected, lambda: self.tally.record_tool_call(name, **fields))
        if not isinstance(expected, set):
            self.accepted(event_id, expected_row(expected, "tool_call"), (name, fields))

    def record_feedback(self, call_id: Any, named: dict[str, Any], fields: dict[str, Any]) -> None:
        expected = oracle({**fields, "parent_id": call_id, **named}, "feedback")
        event_id = self.attempt(
            expected, lambda: self.tally.record_feedback(call_id, **named, **fields)
        )
        if not isinstance(expected, set):
            self.accepted(event_id, expected_row(expected, "feedback"), (call_id, named, fields))

    def record_event(self, name: Any, actor: Any, properties: Any, fields: dict[str, Any]) -> None:
        given = {**fields, "name": name, "actor": actor}
        if properties is not None:
            given["metadata"] = properties
        expected = oracle(given, "product")
        if isinstance(expected, set) and properties is not None and "metadata" in expected:
            expected = (expected - {"metadata"}) | {"properties"}  # named as the caller did
        event_id = self.attempt(
            expected,
            lambda: self.tally.record_event(name, actor=actor, properties=properties, **fields),
        )
        if not isinstance(expected, set):
            self.accepted(event_id, expected_row(expected, "product"), (name, properties, fields))

    def track(self, template: dict[str, Any], usage: dict[str, Any] | None, response: Any) -> None:
        expected = oracle(template, "llm_call", require_model=False)
        call = self.attempt(expected, lambda: self.tally.track(**template))
        if isinstance(expected, set):
            if self.raise_invalid:
                return
            expected = {}  # warn mode: the call is still timed, without the bad template
        event = dict(expected)
        with call:
            if usage is not None:
                update = update_oracle(event, usage)
                self.attempt(update, lambda: call.record_usage(**usage))
                if not isinstance(update, set):
                    event.update(update)
            if response is not None:
                invalid = self.tally.stats()["invalid"]
                try:
                    call.record_response(response)
                except llmtally.InvalidEventError:
                    assert self.raise_invalid  # warn mode never raises
                else:
                    assert self.tally.stats()["invalid"] <= invalid + 1
                # what the response gave is not predicted here: it must be stored as queued
                event = _from_queue(call._event)
        event.setdefault("model", "unknown")
        event.setdefault("status", "success")
        row = expected_row(event, "llm_call")
        row["latency_ms"] = ANY  # measured
        self.accepted(call.id, row, (template, usage, response))

    def ingest(self, events: Any) -> None:
        if isinstance(events, Mapping | str | bytes) or not isinstance(events, list | tuple):
            self.attempt({"events"}, lambda: self.tally.ingest(events))
            return
        wanted = [mapping_oracle(raw) for raw in events]
        result = self.attempt({}, lambda: self.tally.ingest(events))
        good = [i for i, want in enumerate(wanted) if not isinstance(want, set)]
        rejected = {entry["index"]: entry for entry in result.rejected}
        assert sorted(rejected) == [i for i in range(len(events)) if i not in good], (
            result.rejected,
            wanted,
        )
        for index, entry in rejected.items():
            want = wanted[index]
            assert isinstance(want, set) and entry["field"] in want, (entry, want)
            assert entry["error"].startswith(f"{entry['field']}: ")
        assert result.accepted == len(good) == len(result.event_ids)
        for index, event_id in zip(good, result.event_ids, strict=True):
            kind, event = wanted[index]  # type: ignore[misc]
            self.accepted(event_id, expected_row(event, kind), events[index])

    def identify(self, actor_id: Any, actor_type: Any, names: dict[str, Any]) -> None:
        bad: set[str] = set()
        who: dict[str, Any] = {}
        for field, value in (("actor_id", actor_id), ("actor_type", actor_type)):
            try:
                who[field] = expect_value(field, value)
            except Refused:
                bad.add(field)
        for field, value in names.items():
            if value is not None and (
                not isinstance(value, str) or len(value) > ACTOR_TEXT_LIMITS[field]
            ):
                bad.add(field)
        self.attempt(
            bad or {}, lambda: self.tally.identify(actor_id, actor_type=actor_type, **names)
        )
        if bad:
            return
        key = (who["actor_type"], stored_text(who["actor_id"], self.backend))
        known = self.actors.setdefault(key, dict.fromkeys(ACTOR_TEXT_LIMITS))
        for field, value in names.items():
            if value is not None:
                known[field] = stored_text(str.__str__(value), self.backend)

    # -- reading back ------------------------------------------------------------------------

    def verify(self) -> None:
        """Flush once, then compare every accepted event (and actor) with the database."""
        assert self.accepted_calls and self.refused_calls, "the fuzz must exercise both outcomes"
        assert self.tally.flush(60)
        stored = {str(r["event_id"]).lower(): r for r in rows(self.url)}
        assert set(stored) == set(self.expected), (
            "missing:",
            set(self.expected) - set(stored),
            "unexpected:",
            set(stored) - set(self.expected),
        )
        finished = time.time()
        problems = []
        for event_id, (want, inputs) in self.expected.items():
            if event_id in self.duplicates:
                continue
            got = stored[event_id]
            if want["occurred_at"] is ANY:
                assert self.started - 1 <= got["occurred_at"].timestamp() <= finished + 1
            for column in COLUMN_NAMES:
                if not same(column, want[column], got[column], self.backend):
                    problems.append((column, want[column], got[column], inputs))
        assert not problems, problems[:5]
        actors = {
            (r["actor_type"], r["actor_id"]): r for r in rows(self.url, "SELECT * FROM actors")
        }
        for key, names in self.actors.items():
            assert key in actors, (key, sorted(actors), self.tally.stats())
            for field, value in names.items():
                assert actors[key][field] == value, (key, field, value, actors[key][field])

    def still_writes(self) -> None:
        """After the fuzz the writer takes a normal call and has rejected nothing."""
        event_id = self.tally.record_call(model="gpt-4o", input_tokens=10, output_tokens=2)
        assert self.tally.flush(60)
        assert rows(self.url, "SELECT event_id FROM events WHERE event_id = :i", i=event_id)
        assert self.tally.stats()["rejected"] == 0


def _from_queue(item: Mapping[str, Any]) -> dict[str, Any]:
    """A queued event dict in the oracle's terms (metadata parsed, raw text renamed)."""
    event = {k: v for k, v in item.items() if k in FIELDS}
    if isinstance(event.get("metadata"), bytes):
        event["metadata"] = orjson.loads(event["metadata"])
    if "_prompt" in item:
        event["prompt"] = item["_prompt"]
    for name in ("kind", "schema_version"):
        event.pop(name, None)
    return event


# -- the tests -----------------------------------------------------------------------------

RECORD_CALL_NAMES = [
    *(n for n in FIELDS if n not in SET_BY_LLMTALLY),
    "actor",
    "prompt",
    "completion",
    "colour",
    *SET_BY_LLMTALLY,
]
USAGE_NAMES = [
    *TOKEN_FIELDS,
    "finish_reason",
    "model",
    "actor",
    "kind",
    "cost_usd",
    "metadata",
    "colour",
]
NAME = value_of("name")
ACTOR = st.one_of(st.none(), value_of("actor_id"))


def token_counts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=0, max_value=5000),
        st.sampled_from([2**32, 2**32 + 1, 10**400, -1, "12", None, 1.5]),
    )


RESPONSES = st.one_of(
    st.fixed_dictionaries(
        {
            "model": st.one_of(st.text(max_size=8), WILD),
            "usage": st.fixed_dictionaries(
                {"prompt_tokens": token_counts(), "completion_tokens": token_counts()},
                optional={
                    "prompt_tokens_details": st.fixed_dictionaries(
                        {"cached_tokens": token_counts()}
                    )
                },
            ),
        },
        optional={"choices": st.one_of(WILD, st.just([{"finish_reason": "stop"}]))},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("message"),
            "stop_reason": st.one_of(st.text(max_size=8), WILD),
            "usage": st.fixed_dictionaries(
                {"input_tokens": token_counts(), "output_tokens": token_counts()},
                optional={"cache_read_input_tokens": token_counts()},
            ),
        }
    ),
    WILD,
)


class FailingRows:
    """An iterable of rows that breaks half way."""

    def __iter__(self) -> Iterator[Any]:
        yield {"model": "m"}
        raise RuntimeError("the feed broke")


INGEST_ROW_NAMES = [*RECORD_CALL_NAMES, "kind"]
INGEST_ROWS = st.one_of(
    fields_of(INGEST_ROW_NAMES),
    fields_of(INGEST_ROW_NAMES).map(lambda f: {"model": "m", **f}),
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["product", "feedback", "tool_call", Choice.FEEDBACK])},
    ).flatmap(lambda k: fields_of(EXTRA_FIELDS).map(lambda f: {**f, **k})),
    st.fixed_dictionaries(
        {"model": st.just("m"), "schema_version": st.sampled_from([1, 2, True, 1.0, "1"])}
    ),
    st.sampled_from(
        [5, None, "row", ["model", "m"], BadMapping(), types.MappingProxyType({"model": "m"})]
    ),
    st.dictionaries(st.sampled_from([1, Choice.LLM_CALL, Text("model"), "model"]), st.just("m")),
)
INGEST_ARGS = st.one_of(
    st.lists(INGEST_ROWS, max_size=5),
    st.lists(INGEST_ROWS, max_size=3).map(tuple),
    st.sampled_from([5, None, "rows", b"rows", {"model": "m"}, FailingRows(), object()]),
)


@pytest.fixture
def fuzz(db_url: str, tmp_path: Path) -> Iterator[Fuzz]:
    """A Tally under fuzz on each backend; closed after the test."""
    under_fuzz = Fuzz(db_url, tmp_path / "spool")
    try:
        yield under_fuzz
    finally:
        under_fuzz.close()


def odd_values(name: str) -> st.SearchStrategy[Any]:
    """Mostly the field's edges and anything at all, sometimes a usual value."""
    valid, edges = good_values(name)
    values = st.one_of(edges, edges, WILD, valid)
    return values


def field_of_column(column: str) -> st.SearchStrategy[tuple[str, Any]]:
    """A field of one storage kind with an odd value for it."""
    names = [n for n, spec in FIELDS.items() if spec.column == column and n not in SET_BY_LLMTALLY]
    return st.sampled_from(names).flatmap(lambda n: st.tuples(st.just(n), odd_values(n)))


COLUMN_KINDS = sorted({spec.column for spec in FIELDS.values()})


def test_record_call(fuzz: Fuzz) -> None:
    @SETTINGS
    @given(fields_of(RECORD_CALL_NAMES, max_size=8, wild=12), st.booleans())
    def run(fields: dict[str, Any], with_model: bool) -> None:
        fuzz.record_call({"model": "gpt-4o", **fields} if with_model else fields)

    run()
    for column in COLUMN_KINDS:
        # every storage kind on its own, its edges and wrong types (the model given)

        @settings(SETTINGS, max_examples=150)
        @given(field_of_column(column))
        def one_value(field: tuple[str, Any]) -> None:
            name, value = field
            fuzz.record_call({"model": "m", name: value} if name != "model" else {name: value})

        one_value()
    fuzz.verify()
    fuzz.still_writes()


def test_track_and_call_updates(fuzz: Fuzz) -> None:
    @SETTINGS
    @given(
        fields_of(RECORD_CALL_NAMES),
        st.one_of(st.none(), fields_of(USAGE_NAMES, max_size=5)),
        st.one_of(st.none(), RESPONSES),
    )
    def run(template: dict[str, Any], usage: dict[str, Any] | None, response: Any) -> None:
        fuzz.track(template, usage, response)

    run()
    fuzz.verify()
    fuzz.still_writes()


def test_feedback_product_and_tool_events(fuzz: Fuzz) -> None:
    @SETTINGS
    @given(
        value_of("parent_id"),
        st.fixed_dictionaries(
            {},
            optional={
                "rating": value_of("rating"),
                "regenerated": value_of("regenerated"),
                "edited": value_of("edited"),
                "comment": value_of("comment"),
                "actor": value_of("actor_id"),
            },
        ),
        fields_of(EXTRA_FIELDS, max_size=4),
    )
    def feedback(call_id: Any, named: dict[str, Any], fields: dict[str, Any]) -> None:
        fuzz.record_feedback(call_id, named, fields)

    @SETTINGS
    @given(
        NAME,
        ACTOR,
        st.one_of(st.none(), METADATA, WILD),
        fields_of([n for n in EXTRA_FIELDS if n != "metadata"], max_size=4),
    )
    def product(name: Any, actor: Any, properties: Any, fields: dict[str, Any]) -> None:
        fuzz.record_event(name, actor, properties, fields)

    @SETTINGS
    @given(NAME, fields_of(EXTRA_FIELDS, max_size=5))
    def tool(name: Any, fields: dict[str, Any]) -> None:
        fuzz.record_tool_call(name, fields)

    feedback()
    product()
    tool()
    fuzz.verify()
    fuzz.still_writes()


def test_ingest_and_identify(fuzz: Fuzz) -> None:
    @SETTINGS
    @given(INGEST_ARGS)
    def ingest(events: Any) -> None:
        fuzz.ingest(events)

    names = st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(
                st.text(CHARS, max_size=12),
                st.sampled_from(["", "n" * limit, "n" * (limit + 1), Text("t"), Choice.UP]),
                WILD,
            )
            for name, limit in ACTOR_TEXT_LIMITS.items()
        },
    )

    @SETTINGS
    @given(
        st.one_of(st.sampled_from(["U1", "U2", "bot-1"]), value_of("actor_id")),
        st.one_of(st.sampled_from(["human", "agent"]), value_of("actor_type")),
        names,
    )
    def identify(actor_id: Any, actor_type: Any, names: dict[str, Any]) -> None:
        fuzz.identify(actor_id, actor_type, names)

    ingest()
    identify()
    fuzz.verify()
    fuzz.still_writes()


def test_warn_mode_logs_and_counts_the_same_cases(db_url: str, tmp_path: Path) -> None:
    fuzz = Fuzz(db_url, tmp_path / "spool", raise_invalid=False)
    try:

        @settings(SETTINGS, max_examples=100)
        @given(
            fields_of(RECORD_CALL_NAMES),
            st.one_of(st.none(), fields_of(USAGE_NAMES, max_size=4)),
            NAME,
            st.one_of(st.none(), METADATA, WILD),
            st.one_of(st.sampled_from(["U1", "bot-1"]), value_of("actor_id")),
            value_of("actor_type"),
        )
        def run(
            fields: dict[str, Any],
            usage: dict[str, Any] | None,
            name: Any,
            properties: Any,
            actor_id: Any,
            actor_type: Any,
        ) -> None:
            fuzz.record_call(fields)
            fuzz.track(fields, usage, None)
            fuzz.record_event(name, None, properties, {})
            fuzz.identify(actor_id, actor_type, {})

        run()
        fuzz.ingest(5)
        fuzz.verify()
        fuzz.still_writes()
    finally:
        fuzz.close()


def test_odd_actor_ids_keep_the_actors_table(db_url: str, tmp_path: Path) -> None:
    backend = "postgres" if db_url.startswith("postgresql") else "sqlite"
    with llmtally.Tally(db_url, spool_dir=tmp_path / "spool", redact_pii=False) as tally:
        tally.identify("U-good", display_name="Ada")
        tally.record_call(model="m", actor="bad\ud800")
        tally.record_call(model="m", actor="nul\x00")
        tally.identify("id\udfff", actor_type="agent", display_name="S\x00")
        assert tally.flush(30)
    actors = {(r["actor_type"], r["actor_id"]): r for r in rows(db_url, "SELECT * FROM actors")}
    assert actors[("human", "U-good")]["display_name"] == "Ada"
    assert ("human", "bad\ufffd") in actors
    assert ("human", stored_text("nul\x00", backend)) in actors
    assert actors[("agent", "id\ufffd")]["display_name"] == stored_text("S\x00", backend)
