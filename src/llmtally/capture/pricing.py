"""Cost of an LLM call in USD: genai-prices' bundled data, overridable by custom prices.

``PriceBook.cost`` runs once per event on the writer thread, so it must take about a
microsecond, while ``genai_prices.calc_price`` takes ~70 µs. For every price period of a
model we therefore ask the library's own ``ModelPrice.calc_price`` once, on basis usages,
for per-token coefficients, and scale them to integers sharing one power-of-ten
denominator. A call is then an integer dot product and one int/int division, which is
correctly rounded, so it equals ``float(calc_price(...).total_price)`` (also correctly
rounded from the exact Decimal sum) bit for bit.

Tiered ("cliff") prices depend only on total input tokens, so they get one coefficient
set per tier region. Date-based price changes (``StartDateConstraint``) split time into
periods found by bisecting UTC midnights; time-of-day prices (DeepSeek off-peak) resolve
the price per call through ``ModelInfo.get_prices``. The network is never used.
"""

from __future__ import annotations

import time as _time
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from copy import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any, Final, Literal, TypeGuard

from genai_prices import Usage
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from llmtally.errors import ConfigError

__all__ = ["CustomPrice", "PriceBook", "PriceInfo", "parse_custom_pricing"]

# Names users and SDK integrations give providers that genai-prices does not know by id.
_PROVIDER_ALIASES: Final = dict.fromkeys(
    ("gemini", "gcp.gemini", "google-genai", "google_genai", "vertex_ai", "vertexai"), "google"
) | {"fireworks_ai": "fireworks", "bedrock": "aws", "xai": "x-ai", "together_ai": "together"}
_PRICE_FIELDS: Final = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
# accepted key -> (field, multiplier to USD per million tokens)
_KEYS: Final = {
    name + suffix: (name, multiplier)
    for name in _PRICE_FIELDS
    for suffix, multiplier in (("", 1), ("_per_mtok", 1), ("_mtok", 1), ("_per_1k", 1000))
}
_MAX_ENTRIES: Final = 10_000  # bounds memory if callers invent model names

# (c0, input, output, cache_read, cache_write, cache_write_1h, reasoning, denominator):
# cost = (c0 + Σ coef·tokens) / denominator, all exact integers.
_Coef = tuple[int, int, int, int, int, int, int, int]
_Plan = tuple[tuple[int, ...], tuple[_Coef, ...]]  # (tier starts, one _Coef per tier region)


@dataclass(frozen=True, slots=True)
class CustomPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None  # None -> billed at input price
    cache_write: float | None = None  # None -> billed at input price
    cache_write_1h: float | None = None  # None -> billed at cache_write price
    effective_from: datetime | None = None  # aware UTC; None = always


@dataclass(frozen=True, slots=True)
class PriceInfo:
    """The price a model is billed at (per million tokens; None = not priced separately)."""

    provider: str | None
    model: str
    matched_model: str | None
    source: Literal["genai-prices", "custom", "unknown"]
    input_per_mtok: float | None
    output_per_mtok: float | None
    cache_read_per_mtok: float | None
    cache_write_per_mtok: float | None


def _price_value(setting: str, value: Any, multiplier: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ConfigError(setting, f"must be a number (USD per million tokens), got {value!r}")
    dec = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not dec.is_finite() or dec < 0:
        raise ConfigError(setting, f"must be a finite number >= 0, got {value!r}")
    # Decimal keeps 0.0015/1k -> 1.5/M exact instead of 1.5000000000000002
    return float(dec * multiplier)


def _effective_from(setting: str, value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(setting, f"is not an ISO-8601 timestamp: {value!r}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, dtime(), tzinfo=UTC)
    if value is not None:
        raise ConfigError(setting, f"must be an ISO-8601 string or datetime, got {value!r}")
    return None


def _parse_entry(setting: str, raw: Any) -> CustomPrice:
    if isinstance(raw, CustomPrice):
        raw = {name: getattr(raw, name) for name in (*_PRICE_FIELDS, "effective_from")}
    if not isinstance(raw, Mapping):
        raise ConfigError(setting, f"must be a mapping of prices or a list of them, got {raw!r}")
    prices: dict[str, float] = {}
    given: dict[str, str] = {}
    for key, value in raw.items():
        if key == "effective_from" or value is None:
            continue
        if key not in _KEYS:
            allowed = ", ".join((*_PRICE_FIELDS, "effective_from"))
            raise ConfigError(f"{setting}.{key}", f"unknown price key; expected one of {allowed}")
        name, multiplier = _KEYS[key]
        if name in given:
            raise ConfigError(f"{setting}.{key}", f"duplicates {given[name]!r}")
        given[name] = key
        prices[name] = _price_value(f"{setting}.{key}", value, multiplier)
    for required in ("input", "output"):
        if required not in prices:
            raise ConfigError(f"{setting}.{required}", "is required (USD per million tokens)")
    start = _effective_from(f"{setting}.effective_from", raw.get("effective_from"))
    return CustomPrice(**prices, effective_from=start)


def parse_custom_pricing(config: Mapping[str, Any] | None) -> dict[str, list[CustomPrice]]:
    """Validate ``custom_pricing`` into lower-cased keys -> price history (oldest first)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ConfigError(
            "custom_pricing", f"must be a mapping of model name to prices, got {config!r}"
        )
    result: dict[str, list[CustomPrice]] = {}
    for key, raw in config.items():
        setting = f"custom_pricing.{key}"
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(setting, "model name must be a non-empty string")
        norm = key.strip().lower()
        if norm in result:
            raise ConfigError(setting, "given twice (model names are case-insensitive)")
        if isinstance(raw, (list, tuple)):
            if not raw:
                raise ConfigError(setting, "price history must not be empty")
            entries = [_parse_entry(f"{setting}[{i}]", item) for i, item in enumerate(raw)]
        else:
            entries = [_parse_entry(setting, raw)]
        starts = [e.effective_from for e in entries]
        if starts.count(None) > 1 or len(set(starts)) != len(starts):
            raise ConfigError(setting, "two prices have the same effective_from")
        epoch = datetime.min.replace(tzinfo=UTC)
        result[norm] = sorted(entries, key=lambda e: e.effective_from or epoch)
    return result


_M: Final = 1_000_000
_BASIS: Final[tuple[dict[str, int], ...]] = (
    {},
    {"input_tokens": _M},
    {"input_tokens": _M, "cache_read_tokens": _M},
    {"input_tokens": _M, "cache_write_tokens": _M},
    {"input_tokens": _M, "cache_write_tokens": _M, "cache_write_1h_tokens": _M},
    {"output_tokens": _M},
    {"output_tokens": _M, "output_reasoning_tokens": _M},
)


def _scaled(value: Decimal, exponent: int) -> int:
    """``value * 10**exponent`` as an exact int (Decimal arithmetic would round at 28 digits)."""
    sign, digits, exp = value.normalize().as_tuple()
    assert isinstance(exp, int) and exp + exponent >= 0
    scale: int = 10 ** (exp + exponent)
    n = int("".join(map(str, digits)) or "0") * scale
    return -n if sign else n


def _exp(value: Decimal) -> int:
    exp = value.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    return exp


def _integer_coef(const: Decimal, per_mtok: tuple[Decimal, ...]) -> _Coef:
    # per-token coefficient = per_mtok / 10**6; pick the smallest power of ten making all integral
    k = max(0, -min(_exp(const), *(_exp(v) - 6 for v in per_mtok)))
    a = [_scaled(v, k - 6) for v in per_mtok]
    return (_scaled(const, k), a[0], a[1], a[2], a[3], a[4], a[5], 10**k)


def _linear_coef(mp: ModelPrice) -> _Coef:
    f = [mp.calc_price(Usage(**u))["total_price"] for u in _BASIS]
    per_mtok = (f[1] - f[0], f[5] - f[0], f[2] - f[1], f[3] - f[1], f[4] - f[3], f[6] - f[5])
    return _integer_coef(f[0], per_mtok)


def _plan_for(mp: ModelPrice) -> _Plan | None:
    """Coefficients for one ModelPrice, one set per tier region; None if the library rejects it."""
    tiered = {k: v for k, v in vars(mp).items() if isinstance(v, TieredPrices)}
    starts = tuple(sorted({tier.start for v in tiered.values() for tier in v.tiers}))
    coefs = []
    try:
        for region in range(len(starts) + 1):
            flat = copy(mp)
            # the library applies the highest tier whose start is < total input tokens
            n = starts[region - 1] + 1 if region else 0
            for key, tp in tiered.items():
                applied = next((t.price for t in reversed(tp.tiers) if n > t.start), tp.base)
                flat.__dict__[key] = applied
            coefs.append(_linear_coef(flat))
    except ValueError:
        return None
    return starts, tuple(coefs)


def _custom_plan(p: CustomPrice) -> _Plan:
    d_in, d_out = Decimal(repr(p.input)), Decimal(repr(p.output))
    d_read = Decimal(repr(p.cache_read)) if p.cache_read is not None else d_in
    d_write = Decimal(repr(p.cache_write)) if p.cache_write is not None else d_in
    d_1h = Decimal(repr(p.cache_write_1h)) if p.cache_write_1h is not None else d_write
    per_mtok = (d_in, d_out, d_read - d_in, d_write - d_in, d_1h - d_write, Decimal(0))
    return (), (_integer_coef(Decimal(0), per_mtok),)


def _num(value: Any) -> float | None:
    if isinstance(value, TieredPrices):
        value = value.base
    return float(value) if isinstance(value, Decimal) else None


def _genai_info(provider: str, model: str, info: ModelInfo, mp: ModelPrice) -> PriceInfo:
    keys = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    return PriceInfo(
        provider, model, info.id, "genai-prices", *(_num(getattr(mp, k)) for k in keys)
    )


def _dated(constraint: object) -> TypeGuard[StartDateConstraint]:
    return isinstance(constraint, StartDateConstraint)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, dtime(), tzinfo=UTC)


class _Entry:
    """Everything ``cost`` needs for one (provider, model): price periods and their plans."""

    __slots__ = ("bounds", "daily", "periods")

    def __init__(
        self,
        bounds: tuple[float, ...],
        periods: tuple[tuple[PriceInfo, _Plan | None], ...],
        daily: tuple[str, ModelInfo] | None = None,
    ) -> None:
        self.bounds = bounds  # period i covers bounds[i-1] <= at < bounds[i]
        self.periods = periods
        self.daily = daily  # time-of-day priced model: plan is resolved per call


class PriceBook:
    """Prices LLM calls from genai-prices' bundled data, with custom prices taking precedence."""

    def __init__(self, *, custom_pricing: Mapping[str, Any] | None = None) -> None:
        self._custom = parse_custom_pricing(custom_pricing)
        self._entries: dict[tuple[str | None, str], _Entry] = {}
        # keyed by id(); the ModelPrice is kept alive alongside so its id cannot be reused
        self._mp_plans: dict[int, tuple[ModelPrice, _Plan | None]] = {}

    def load(self) -> None:
        """Load genai-prices' data now (it is otherwise loaded by the first lookup)."""
        get_snapshot()

    def info(self, provider: str | None, model: str, at: float | None = None) -> PriceInfo:
        """The price in force for ``model`` at Unix time ``at`` (default now)."""
        at = _time.time() if at is None else at
        entry = self._entry(provider, model)
        info, plan = entry.periods[bisect_right(entry.bounds, at)]
        if plan is None and entry.daily is not None:
            pid, model_info = entry.daily
            mp = model_info.get_prices(datetime.fromtimestamp(at, UTC))
            return _genai_info(pid, model, model_info, mp)
        return info

    def cost(
        self,
        provider: str | None,
        model: str,
        at: float,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float | None:
        """Cost in USD, or None for an unknown model or inconsistent token counts."""
        entry = self._entries.get((provider, model))
        if entry is None:
            entry = self._entry(provider, model)
        bounds = entry.bounds
        plan = entry.periods[bisect_right(bounds, at) if bounds else 0][1]
        if plan is None and entry.daily is not None:
            plan = self._daily_plan(entry.daily[1], at)
        if plan is None:
            return None
        # inconsistent counts would make the library raise; such an event has no meaningful cost
        if (
            input_tokens < cache_read_tokens + cache_write_tokens
            or output_tokens < reasoning_tokens
            or cache_write_tokens < cache_write_1h_tokens
            or cache_read_tokens < 0
            or cache_write_1h_tokens < 0
            or reasoning_tokens < 0
        ):
            return None
        starts, coefs = plan
        c = coefs[bisect_left(starts, input_tokens)] if starts else coefs[0]
        return (
            c[0]
            + c[1] * input_tokens
            + c[2] * output_tokens
            + c[3] * cache_read_tokens
            + c[4] * cache_write_tokens
            + c[5] * cache_write_1h_tokens
            + c[6] * reasoning_tokens
        ) / c[7]

    def _daily_plan(self, model_info: ModelInfo, at: float) -> _Plan | None:
        mp = model_info.get_prices(datetime.fromtimestamp(at, UTC))
        cached = self._mp_plans.get(id(mp))
        if cached is None:
            cached = self._mp_plans[id(mp)] = (mp, _plan_for(mp))
        return cached[1]

    def _entry(self, provider: str | None, model: str) -> _Entry:
        entry = self._entries.get((provider, model))
        if entry is None:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            history = self._custom_history(provider, model)
            entry = self._genai_entry(provider, model)
            if history is not None:
                entry = self._custom_entry(provider, model, history, entry)
            self._entries[(provider, model)] = entry
        return entry

    def _custom_history(self, provider: str | None, model: str) -> list[CustomPrice] | None:
        name = model.strip().lower()
        keys = [name]
        if provider:
            given = provider.strip().lower()
            keys[:0] = [f"{given}/{name}", f"{_PROVIDER_ALIASES.get(given, given)}/{name}"]
        return next((self._custom[k] for k in keys if k in self._custom), None)

    def _lookup(self, provider: str | None, model: str) -> tuple[str, ModelInfo] | None:
        snapshot = get_snapshot()
        pid = provider.strip().lower() if provider else None
        pid = _PROVIDER_ALIASES.get(pid, pid) if pid else None
        attempts: list[str | None] = [pid]
        if pid and pid != "litellm" and not find_provider_by_id(snapshot.providers, pid):
            attempts.append(None)  # a provider genai-prices does not know: go by model name
        if "/" in model and None in attempts:
            attempts.append("litellm")  # genai-prices splits "openai/gpt-4o" refs only for it
        for attempt in attempts:
            try:
                found, model_info = snapshot.find_provider_model(model, None, attempt, None)
            except LookupError:
                continue
            return found.id, model_info
        return None

    def _genai_entry(self, provider: str | None, model: str) -> _Entry:
        found = self._lookup(provider, model)
        if found is None:
            unknown = PriceInfo(provider, model, None, "unknown", None, None, None, None)
            return _Entry((), ((unknown, None),))
        pid, model_info = found
        conditions = model_info.prices if isinstance(model_info.prices, list) else []
        if any(isinstance(c.constraint, TimeOfDateConstraint) for c in conditions):
            now = datetime.now(UTC)
            info = _genai_info(pid, model, model_info, model_info.get_prices(now))
            return _Entry((), ((info, None),), daily=(pid, model_info))
        days = sorted({c.constraint.start_date for c in conditions if _dated(c.constraint)})
        # an instant in each period: the day before the first change (if any), then each change
        moments = [_midnight((days[0] if days else date(2000, 1, 2)) - timedelta(days=1))]
        moments += [_midnight(day) for day in days]
        periods = []
        for moment in moments:
            mp = model_info.get_prices(moment)
            periods.append((_genai_info(pid, model, model_info, mp), _plan_for(mp)))
        return _Entry(tuple(m.timestamp() for m in moments[1:]), tuple(periods))

    def _custom_entry(
        self, provider: str | None, model: str, history: list[CustomPrice], fallback: _Entry
    ) -> _Entry:
        starts = [p.effective_from.timestamp() for p in history if p.effective_from is not None]
        bounds = starts
        if history[0].effective_from is not None:
            # before the first custom price the genai-prices one (if any) still applies
            bounds = sorted(set(starts) | set(fallback.bounds))
        periods: list[tuple[PriceInfo, _Plan | None]] = []
        for i in range(len(bounds) + 1):
            moment = bounds[i - 1] if i else (bounds[0] - 1.0 if bounds else 0.0)
            in_force = [
                p
                for p in history
                if p.effective_from is None or p.effective_from.timestamp() <= moment
            ]
            if in_force:
                p = in_force[-1]
                info = PriceInfo(
                    provider, model, None, "custom", p.input, p.output, p.cache_read, p.cache_write
                )
                periods.append((info, _custom_plan(p)))
            else:
                periods.append(fallback.periods[bisect_right(fallback.bounds, moment)])
        return _Entry(tuple(bounds), tuple(periods), daily=fallback.daily)
