"""Writer-side processing: a queued event dict becomes a row, priced and redacted.

Runs on the writer thread, never on the caller's: pricing lookups, PII regexes,
prompt hashing, JSON and timestamp formatting all cost more than the caller should pay.
It also collects actor and model-registry upserts for the batch, and warns once per
model whose price is unknown, and runs the user's ``before_send`` hook (``BeforeSend``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmtally.capture.build import COMPLETION_KEY, PROMPT_KEY, build_from_mapping
from llmtally.capture.pricing import PriceBook, PriceInfo
from llmtally.capture.redact import Redactor, prompt_fingerprint
from llmtally.capture.text import clean_text
from llmtally.errors import InvalidEventError
from llmtally.event import COLUMN_NAMES, FIELDS
from llmtally.store.base import Batch

log = logging.getLogger("llmtally")

_REREGISTER = 3600.0
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
_N_COLUMNS = len(COLUMN_NAMES)
_ACTOR_ID = COLUMN_NAMES.index("actor_id")
_ACTOR_TYPE = COLUMN_NAMES.index("actor_type")
_TEXT_LIMITS = {name: spec.max_len for name, spec in FIELDS.items() if spec.column == "text"}


@dataclass(frozen=True, slots=True)
class Identify:
    """Actor enrichment queued by ``Tally.identify``."""

    actor_type: str
    actor_id: str
    display_name: str | None
    real_name: str | None
    timezone: str | None
    email: str | None
    at: float

    def names(self) -> tuple[str | None, ...]:
        """The enrichment values, in column order."""
        return (self.display_name, self.real_name, self.timezone, self.email)


#: ``Tally(before_send=fn)``: takes an event's fields, returns them (changed or not) or None
BeforeSendHook = Callable[[dict[str, Any]], "Mapping[str, Any] | None"]


class BeforeSend:
    """The user's ``before_send`` hook, run on the writer thread, with what it did counted.

    The hook sees a fresh dict of the event's fields: ``occurred_at`` as Unix seconds,
    ``metadata`` as a dict, and the raw ``prompt``/``completion`` text when it was given
    (hashed, and stored only with ``capture_content``, after the hook). What it returns
    is validated again like ``tally.ingest`` input; an invalid field makes the event a
    dead letter whose reason names ``before_send`` and the field. None drops the event
    (counted). A hook that raises is logged once and the event is kept unmodified: the
    hook can change or drop events, but its bugs never lose one.
    """

    __slots__ = ("dropped", "errors", "fn", "invalid")

    def __init__(self, fn: BeforeSendHook) -> None:
        self.fn = fn
        self.dropped = 0  # the hook returned None
        self.errors = 0  # the hook raised: the event was kept as it was
        self.invalid = 0  # the hook's output was refused: a dead letter

    def apply(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The event as the hook leaves it (validated), or None if it dropped it.

        Raises the InvalidEventError (naming the field) of a refused result.
        """
        try:
            out = self.fn(_hook_view(item))
        except Exception:
            self.errors += 1
            if self.errors == 1:
                log.exception("llmtally: before_send raised; events are stored unmodified")
            return item
        if out is None:
            self.dropped += 1
            return None
        try:
            return build_from_mapping(out, project=item.get("project") or "default")
        except InvalidEventError:
            self.invalid += 1
            raise


def _hook_view(item: dict[str, Any]) -> dict[str, Any]:
    """The hook's copy of a queued event, in the fields' public forms."""
    view = {key: value for key, value in item.items() if key in FIELDS}
    meta = view.get("metadata")
    if meta is not None:
        # bytes from validation; an object when read back from the journal, copied so that
        # a hook that edits it and then raises leaves the event unmodified
        view["metadata"] = orjson.loads(meta if isinstance(meta, bytes) else orjson.dumps(meta))
    prompt = item.get(PROMPT_KEY)
    if prompt is not None:
        view["prompt"] = prompt
    completion = item.get(COMPLETION_KEY)
    if completion is not None:
        view["completion"] = completion
    return view


def clean_item(item: Any) -> Any:
    """A copy of a queued item whose strings are all UTF-8 encodable; ``item`` if they are."""
    if isinstance(item, Identify):
        name, real, zone, email = (None if t is None else clean_text(t) for t in item.names())
        actor = clean_text(item.actor_id)
        return Identify(item.actor_type, actor, name, real, zone, email, item.at)
    if not isinstance(item, dict):
        return item
    dirty = [
        key for key, value in item.items() if type(value) is str and clean_text(value) is not value
    ]
    if not dirty:
        return item
    cleaned = dict(item)
    for key in dirty:
        cleaned[key] = clean_text(item[key])
    return cleaned


def json_default(value: Any) -> Any:
    """orjson's fallback for a queued item: metadata arrives as JSON bytes from validation."""
    if isinstance(value, bytes):
        return orjson.Fragment(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _needs_cleaning(items: list[Any]) -> bool:
    """Whether any string in ``items`` holds a lone surrogate (or anything odd at all).

    One orjson pass over the batch, which refuses exactly such strings, instead of a
    check per string per item: the common batch is clean, and this costs a fraction.
    """
    try:
        orjson.dumps(items, default=json_default)
    except TypeError:
        return True
    return False


class Processor:
    """Builds store batches from queued items (on the writer thread only)."""

    def __init__(
        self,
        *,
        prices: PriceBook,
        redactor: Redactor,
        capture_content: bool,
        ts: Callable[[float], Any],
        before_send: BeforeSend | None = None,
    ) -> None:
        self._prices = prices
        self._before_send = before_send
        self._redact = redactor
        self._capture_content = capture_content
        self._ts = ts
        self._registered: dict[tuple[str, str], float] = {}
        self._warned: set[tuple[str, str]] = set()
        self._rejected: list[tuple[Any, str]] = []

    def warm(self) -> None:
        """Load what the first batch would load (the price data), ahead of time."""
        self._prices.load()

    def take_rejected(self) -> list[tuple[Any, str]]:
        """The items refused since the last call, each with the reason."""
        taken, self._rejected = self._rejected, []
        return taken

    def batch(self, items: Iterable[dict[str, Any] | Identify]) -> Batch:
        """Turn queued items into one batch of rows and upserts."""
        batch = Batch()
        actors: dict[tuple[str, str], list[Any]] = {}
        ts = self._ts
        items = list(items)
        dirty = _needs_cleaning(items)
        for item in items:
            if isinstance(item, Identify):
                if dirty:
                    item = clean_item(item)
                key = (item.actor_type, item.actor_id)
                stamp = ts(item.at)
                known = actors.setdefault(
                    key, [item.actor_type, item.actor_id, None, None, None, None, stamp, stamp]
                )
                for index, value in enumerate(item.names(), start=2):
                    if value is not None:
                        known[index] = value
                known[6] = min(known[6], stamp)
                known[7] = max(known[7], stamp)
                continue
            hook = self._before_send
            if hook is not None and isinstance(item, dict):
                try:
                    hooked = hook.apply(item)
                except InvalidEventError as exc:
                    self._rejected.append((item, f"before_send: {exc}"))
                    log.warning("llmtally: event %s rejected: %s", _event_id(item), exc)
                    continue
                if hooked is None:
                    continue
                if hooked is not item:
                    item = clean_item(hooked)  # the hook's strings were not checked above
            try:
                row = self.row(clean_item(item) if dirty else item, batch)
            except Exception as exc:  # one bad event (a corrupt spool line) must not block the rest
                self._rejected.append((item, f"{type(exc).__name__}: {exc}"))
                log.warning("llmtally: event %s rejected: %s", _event_id(item), exc)
                continue
            batch.events.append(row)
            actor_id = row[_ACTOR_ID]  # as stored: lone surrogates replaced
            if actor_id is not None:
                key = (row[_ACTOR_TYPE] or "human", actor_id)
                stamp = row[1]
                seen = actors.get(key)
                if seen is None:
                    actors[key] = [key[0], actor_id, None, None, None, None, stamp, stamp]
                else:
                    seen[6] = min(seen[6], stamp)
                    seen[7] = max(seen[7], stamp)
        batch.actors = [tuple(values) for values in actors.values()]
        return batch

    def row(self, item: dict[str, Any], batch: Batch) -> tuple[Any, ...]:
        """One events row in ``COLUMN_NAMES`` order; ``item`` itself is left unchanged.

        The queued dict may be journaled by the spooler at the same time, so all work
        happens on a merged copy (which also puts the columns in order, in C).
        """
        event = {**_EMPTY_ROW, **item}
        if len(event) != _N_COLUMNS:
            self._take_text(event)
        redact = self._redact
        text = event["error_message"]
        if text is not None:
            event["error_message"] = redact.text(text)
        text = event["comment"]
        if text is not None:
            event["comment"] = redact.text(text)
        meta = event["metadata"]
        if meta is not None:
            if not isinstance(meta, bytes):  # read back from the spool as an object
                meta = orjson.dumps(meta, option=orjson.OPT_NON_STR_KEYS)
            event["metadata"] = redact.json_bytes(meta).decode()
        inp, out = event["input_tokens"], event["output_tokens"]
        if event["total_tokens"] is None and (inp is not None or out is not None):
            event["total_tokens"] = (inp or 0) + (out or 0)
        at = event["occurred_at"]
        if event["kind"] == "llm_call":
            self._price(event, at, batch)
        event["occurred_at"] = self._ts(at)
        return tuple(event.values())

    def _take_text(self, event: dict[str, Any]) -> None:
        """Move raw prompt/completion into hash, length and (when enabled) stored text."""
        prompt = event.pop(PROMPT_KEY, None)
        completion = event.pop(COMPLETION_KEY, None)
        for extra in [key for key in event if key not in _EMPTY_ROW]:
            del event[extra]  # unknown keys (a newer writer's spool): not columns here
        if prompt is not None:
            event["prompt_hash"], event["prompt_length"] = prompt_fingerprint(prompt)
            if self._capture_content:
                event["input_text"] = self._redact.text(prompt)[: _TEXT_LIMITS["input_text"]]
        if completion is not None and self._capture_content:
            event["output_text"] = self._redact.text(completion)[: _TEXT_LIMITS["output_text"]]

    def _price(self, event: dict[str, Any], at: float, batch: Batch) -> None:
        provider = event["provider"]
        model = event["model"]
        key = (provider or "", model)
        now = time.monotonic()
        if now - self._registered.get(key, -_REREGISTER) >= _REREGISTER:
            # once an hour per model is enough to keep the registry's last_seen current
            self._registered[key] = now
            batch.models.append(self._registry_row(self._prices.info(provider, model, at), key, at))
        if event["cost_usd"] is not None:
            return  # the caller's figure (e.g. from the provider's bill) wins
        inp, out = event["input_tokens"], event["output_tokens"]
        if inp is None and out is None:
            # no usage: a failed request is not billed; anything else is unknown, not $0
            if event["status"] == "error":
                event["cost_usd"] = 0.0
            return
        event["cost_usd"] = self._prices.cost(
            provider,
            model,
            at,
            input_tokens=inp or 0,
            output_tokens=out or 0,
            cache_read_tokens=event["cache_read_tokens"] or 0,
            cache_write_tokens=event["cache_write_tokens"] or 0,
            cache_write_1h_tokens=event["cache_write_1h_tokens"] or 0,
            reasoning_tokens=event["reasoning_tokens"] or 0,
        )

    def _registry_row(self, info: PriceInfo, key: tuple[str, str], at: float) -> tuple[Any, ...]:
        first = info.source == "unknown" and key not in self._warned
        self._warned.add(key)
        if first:
            log.warning(
                "llmtally: no price known for model %r (provider %r); its calls are stored with "
                "cost_usd = null. Add it to custom_pricing, then run "
                "`llmtally prices recompute`.",
                key[1],
                key[0] or None,
            )
        stamp = self._ts(at)
        return (
            key[0],
            key[1],
            info.source,
            info.matched_model,
            info.input_per_mtok,
            info.output_per_mtok,
            info.cache_read_per_mtok,
            info.cache_write_per_mtok,
            info.source == "unknown",
            stamp,
            stamp,
        )


def _event_id(item: Any) -> Any:
    return item.get("event_id") if isinstance(item, dict) else None
