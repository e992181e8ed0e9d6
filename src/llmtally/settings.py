"""Every ``Tally`` setting, defined once: type, default, group and a one-line doc.

``TallySettings`` is the definition. Everything else is derived from it:

* ``Tally(...)``'s keyword arguments are checked by it (``Tally.__init__`` spells the
  same parameters out so that type checkers and IDEs see them; a test keeps the two
  identical: names, order, defaults and annotations);
* the config file's keys are the setting names (``sample_rate = 0.1``; the mappings are
  tables: ``[custom_pricing]``, ``[quality_weights]``, ``[redact_patterns]``);
* the environment variables are ``LLMTALLY_<NAME>`` (``LLMTALLY_SAMPLE_RATE=0.1``;
  flags take 1/0, true/false, yes/no, on/off; tables take a JSON object; ``sample_kinds``
  takes a comma-separated list);
* the README's configuration table (``python -m llmtally.settings`` prints it, a test
  compares) and the test fixtures that clear the environment (``ENV_NAMES``).

The library itself never reads the environment: ``llmtally.config`` is the edge that
reads the file and the environment through this model, for the CLI and the server.
This module imports nothing heavy (the CLI's start-up reads it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from llmtally.errors import ConfigError
from llmtally.event import KINDS

if TYPE_CHECKING:
    from llmtally.capture.recorder import Gate
    from llmtally.pipeline.process import BeforeSendHook

ENV_PREFIX: Final = "LLMTALLY_"
GROUPS: Final = {
    "store": "Store and connection",
    "pricing": "Pricing",
    "privacy": "Privacy",
    "validation": "Bad input",
    "sampling": "Sampling",
    "quality": "Quality score",
    "pipeline": "Pipeline limits",
    "journal": "Local journal (spool)",
    "hooks": "Hooks (code only)",
}

# -- kinds: how a value is checked, parsed from an environment string, and described ---
# (plain slotted classes: creating a dataclass costs ~0.5 ms and the CLI imports this)


class Flag:
    """``True``/``False``."""

    __slots__ = ()

    def check(self, name: str, value: Any) -> Any:
        """The value, or ConfigError naming ``name``."""
        if not isinstance(value, bool):
            raise ConfigError(name, f"must be true or false, got {value!r}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text."""
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"expected 1/0, true/false, yes/no or on/off, got {text!r}")

    def describe(self) -> str:
        """The type as the README shows it."""
        return "bool"


class Text:
    """A non-empty string; None allowed when ``optional``."""

    __slots__ = ("optional",)

    def __init__(self, *, optional: bool = False) -> None:
        self.optional = optional

    def check(self, name: str, value: Any) -> Any:
        """The value, or ConfigError naming ``name``."""
        if value is None and self.optional:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(name, f"must be a non-empty string, got {value!r}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text."""
        return text

    def describe(self) -> str:
        """The type as the README shows it."""
        return "str or None" if self.optional else "str"


class Number:
    """An int (``integer``) or a finite number within bounds; None allowed when ``optional``."""

    __slots__ = ("above", "integer", "maximum", "minimum", "optional")

    def __init__(
        self,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,  # an exclusive lower bound
        integer: bool = False,
        optional: bool = False,
    ) -> None:
        self.minimum, self.maximum, self.above = minimum, maximum, above
        self.integer, self.optional = integer, optional

    def check(self, name: str, value: Any) -> Any:
        """The value (ints stay ints), or ConfigError naming ``name``."""
        if value is None and self.optional:
            return None
        wrong_type = (
            not isinstance(value, int) if self.integer else not isinstance(value, int | float)
        )
        if isinstance(value, bool) or wrong_type:
            noun = "a whole number" if self.integer else "a number"
            raise ConfigError(name, f"must be {noun} {self._bounds()}, got {value!r}")
        number = float(value)
        if not math.isfinite(number) or not self._within(number):
            raise ConfigError(name, f"must be {self._bounds()}, got {value!r}")
        return value

    def _within(self, value: float) -> bool:
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
        )

    def _bounds(self) -> str:
        low = f">= {self.minimum:g}" if self.minimum is not None else None
        if self.above is not None:
            low = f"> {self.above:g}"
        high = f"<= {self.maximum:g}" if self.maximum is not None else None
        return " and ".join(b for b in (low, high) if b) or "finite"

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text."""
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            noun = "a whole number" if self.integer else "a number"
            raise ConfigError(name, f"must be {noun}, got {text!r}") from None

    def describe(self) -> str:
        """The type as the README shows it."""
        text = f"{'int' if self.integer else 'float'} {self._bounds()}"
        return f"{text} or None" if self.optional else text


class Choice:
    """One of a fixed set of strings."""

    __slots__ = ("options",)

    def __init__(self, options: tuple[str, ...]) -> None:
        self.options = options

    def check(self, name: str, value: Any) -> Any:
        """The value, or ConfigError naming ``name``."""
        if value not in self.options:
            raise ConfigError(name, f"must be {self._listed()}, got {value!r}")
        return value

    def _listed(self) -> str:
        return " or ".join(repr(option) for option in self.options)

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text."""
        return text.strip()

    def describe(self) -> str:
        """The type as the README shows it."""
        return " \\| ".join(f'`"{option}"`' for option in self.options)


class PathKind:
    """A filesystem path (str or path-like), or None."""

    __slots__ = ()

    def check(self, name: str, value: Any) -> Any:
        """The value, or ConfigError naming ``name``."""
        if value is None or isinstance(value, Path):
            return value
        if isinstance(value, str | os.PathLike) and os.fspath(value):
            return value
        raise ConfigError(name, f"must be a path, got {value!r}")

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text."""
        return text

    def describe(self) -> str:
        """The type as the README shows it."""
        return "path or None"


class Table:
    """A mapping with string keys (a TOML table, a JSON object in the environment).

    Its entries are checked by the object that uses them (``PriceBook``, ``Redactor``,
    ``QualityWeights``), which names the bad one as ``<setting>.<key>``.
    """

    __slots__ = ()

    def check(self, name: str, value: Any) -> Any:
        """The value, or ConfigError naming ``name``."""
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(name, f"must be a table with string keys, got {value!r}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text (a JSON object)."""
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(name, f"must be a JSON object: {exc}") from None

    def describe(self) -> str:
        """The type as the README shows it."""
        return "table or None"


class KindList:
    """Event kinds: an iterable of names from ``llmtally.event.KINDS``, kept as a tuple."""

    __slots__ = ()

    def check(self, name: str, value: Any) -> Any:
        """The value as a tuple, or ConfigError naming ``name``."""
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ConfigError(name, f"must be a list of event kinds, got {value!r}")
        kinds = tuple(value)
        unknown = sorted({str(k) for k in kinds} - KINDS)
        if unknown or not all(isinstance(k, str) for k in kinds):
            raise ConfigError(name, f"unknown kinds {unknown}; expected some of {sorted(KINDS)}")
        return kinds

    def parse(self, name: str, text: str) -> Any:
        """A value from an environment variable's text (comma-separated)."""
        return tuple(part.strip() for part in text.split(",") if part.strip())

    def describe(self) -> str:
        """The type as the README shows it."""
        return "list of kinds"


class Hook:
    """Code: a callable (or, with ``many``, an iterable of them kept as a tuple).

    Hooks have no config key or environment variable: a function is not a string.
    """

    __slots__ = ("many",)

    def __init__(self, *, many: bool = False) -> None:
        self.many = many

    def check(self, name: str, value: Any) -> Any:
        """The value, or ConfigError naming ``name``."""
        if not self.many:
            if value is not None and not callable(value):
                raise ConfigError(name, f"must be callable, got {type(value).__name__}")
            return value
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ConfigError(name, f"must be a list of callables, got {type(value).__name__}")
        hooks = tuple(value)
        for hook in hooks:
            if not callable(hook):
                raise ConfigError(name, f"must hold callables, got {type(hook).__name__}")
        return hooks

    def parse(self, name: str, text: str) -> Any:
        """Never: hooks are code only."""
        raise ConfigError(name, "is a function: pass it to Tally(...) in code")

    def describe(self) -> str:
        """The type as the README shows it."""
        return "callables" if self.many else "callable or None"


Kind = Flag | Text | Number | Choice | PathKind | Table | KindList | Hook


def _setting(default: Any, kind: Kind, group: str, doc: str) -> Any:
    """One field of ``TallySettings`` with its kind, group and one-line doc."""
    assert group in GROUPS, group
    return dataclasses.field(default=default, metadata={"kind": kind, "group": group, "doc": doc})


# -- the definition ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TallySettings:
    """The arguments of ``llmtally.Tally``, checked; one field per setting, in signature order."""

    database_url: str | None = _setting(
        None, Text(optional=True), "store",
        "`sqlite:///path.db` or `postgresql://user@host/db`; `None` disables tracking "
        "(a no-op that still returns ids); the CLI defaults to `sqlite:///llmtally.db`",
    )  # fmt: skip
    project: str = _setting("default", Text(), "store", "project/app/bot the events belong to")
    custom_pricing: Mapping[str, Any] | None = _setting(
        None, Table(), "pricing",
        '`{"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1, "cache_write": 1.25}}` '
        "in USD per million tokens (`input_per_1k` style keys also accepted; a list of "
        "entries with `effective_from` gives price history); overrides genai-prices",
    )  # fmt: skip
    capture_content: bool = _setting(
        False, Flag(), "privacy",
        "store raw prompts/completions (redacted); otherwise only a sha256 hash and the length",
    )  # fmt: skip
    redact_pii: bool = _setting(
        True, Flag(), "privacy",
        "redact emails, phone numbers, card numbers (Luhn-checked), SSN-like ids and IP "
        "addresses from error messages, comments and metadata strings",
    )  # fmt: skip
    redact_patterns: Mapping[str, str] | None = _setting(
        None, Table(), "privacy", "extra `{name: regex}` to redact as `[NAME]`"
    )
    retention_days: int | None = _setting(
        None, Number(minimum=1, integer=True, optional=True), "store",
        "delete events older than this many days when the writer starts",
    )  # fmt: skip
    on_invalid: Literal["raise", "warn"] = _setting(
        "raise", Choice(("raise", "warn")), "validation",
        '`"warn"` logs and counts bad events instead of raising `InvalidEventError`',
    )  # fmt: skip
    queue_size: int = _setting(
        10_000, Number(minimum=1, integer=True), "pipeline",
        "events held in memory before callers append to the journal themselves",
    )  # fmt: skip
    batch_size: int = _setting(
        1_000, Number(minimum=1, integer=True), "pipeline", "events per store write"
    )
    flush_interval: float = _setting(
        0.5, Number(above=0), "pipeline", "seconds a partial batch waits before it is written"
    )
    spool_interval: float = _setting(
        0.2, Number(above=0, maximum=1), "journal",
        "seconds a batch may stay uncommitted before it is journaled",
    )  # fmt: skip
    exit_timeout: float = _setting(
        2.0, Number(minimum=0), "pipeline",
        "seconds the interpreter's exit waits for pending events (the rest stay journaled)",
    )  # fmt: skip
    connect_timeout: float = _setting(
        10.0, Number(above=0), "store", "seconds to wait for the database to answer"
    )
    spool_dir: str | Path | None = _setting(
        None, PathKind(), "journal",
        "the journal's directory; `None`: one per database under the user data dir",
    )  # fmt: skip
    fsync_interval: float | None = _setting(
        None, Number(minimum=0, optional=True), "journal",
        "seconds between fsyncs of the journal (survives power loss); `None`: never, "
        "the OS page cache survives the process being killed",
    )  # fmt: skip
    spool_max_bytes: int = _setting(
        1 << 30, Number(minimum=1, integer=True), "journal",
        "the journal's size limit in bytes; past it new events are counted as dropped",
    )  # fmt: skip
    max_backoff: float = _setting(
        30.0, Number(above=0), "store", "longest wait in seconds between retries of the store"
    )
    sample_rate: float = _setting(
        1.0, Number(minimum=0, maximum=1), "sampling", "keep this share of `sample_kinds`"
    )
    sample_kinds: Iterable[str] = _setting(
        ("product", "tool_call"), KindList(), "sampling",
        "the event kinds `sample_rate` applies to (user-facing calls stay at 100%)",
    )  # fmt: skip
    quality_weights: Mapping[str, float] | None = _setting(
        None, Table(), "quality",
        '`{"regenerated_penalty": 0.3, "edited_penalty": 0.15, "slow_ms": 3000, '
        '"slow_factor": 0.6}` (seed 003\'s): the implicit quality score of feedback reports',
    )  # fmt: skip
    gc_freeze: bool = _setting(
        True, Flag(), "pipeline",
        "`gc.freeze()` the objects alive once the first writer of the process opened its "
        "store (see Tail latency)",
    )  # fmt: skip
    gates: Iterable[Gate] = _setting(
        (), Hook(many=True), "hooks",
        "`gate(scope)` asked before every `track()` body and instrumented call; raising "
        "stops the call before the provider is contacted (see `Tally.add_gate`)",
    )  # fmt: skip
    before_send: BeforeSendHook | None = _setting(
        None, Hook(), "hooks",
        "`before_send(event)` on the writer thread returns the event to store (changed or "
        "not) or None to drop it: custom redaction",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for spec in SETTINGS:
            value = spec.kind.check(spec.name, getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)  # normalized (sample_kinds → tuple)

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> TallySettings:
        """Check a Tally's arguments (its ``locals()``: other names are ignored)."""
        return cls(**{name: arguments[name] for name in SETTINGS_BY_NAME if name in arguments})


class Setting:
    """One setting as the edges see it: name, kind, default, group, doc, env name."""

    __slots__ = ("default", "doc", "group", "kind", "name")

    def __init__(self, name: str, kind: Kind, default: Any, group: str, doc: str) -> None:
        self.name, self.kind, self.default, self.group, self.doc = name, kind, default, group, doc

    def __repr__(self) -> str:
        return f"Setting({self.name!r})"

    @property
    def env(self) -> str:
        """Its environment variable."""
        return ENV_PREFIX + self.name.upper()

    @property
    def configurable(self) -> bool:
        """Whether the config file and the environment can set it (hooks are code only)."""
        return not isinstance(self.kind, Hook)


SETTINGS: Final = tuple(
    Setting(f.name, f.metadata["kind"], f.default, f.metadata["group"], f.metadata["doc"])
    for f in dataclasses.fields(TallySettings)
)
SETTINGS_BY_NAME: Final = {s.name: s for s in SETTINGS}
for _spec in SETTINGS:  # every default must pass its own check
    _spec.kind.check(_spec.name, _spec.default)


def _describe_all() -> str:
    """Each setting on one line, grouped: what ``help(Tally)`` and ``help(TallySettings)`` show."""
    lines = []
    for group, title in GROUPS.items():
        lines += ["", f"{title}:"]
        for spec in (s for s in SETTINGS if s.group == group):
            lines.append(f"    {spec.name} ({spec.kind.describe()}, {spec.default!r}): {spec.doc}")
    return "\n".join(lines)


ARGUMENTS_DOC: Final = _describe_all()
if TallySettings.__doc__ is not None:  # None under python -OO
    TallySettings.__doc__ += "\n" + ARGUMENTS_DOC

#: every environment variable llmtally's edges read (tests clear exactly these)
CONFIG_ENV: Final = ENV_PREFIX + "CONFIG"
ENV_NAMES: Final = (*(s.env for s in SETTINGS if s.configurable), CONFIG_ENV)


def check(name: str, value: Any, *, label: str | None = None) -> Any:
    """``value`` checked (and normalized) as setting ``name``; errors say ``label`` or the name."""
    return SETTINGS_BY_NAME[name].kind.check(label or name, value)


def from_text(name: str, text: str, *, label: str | None = None) -> Any:
    """Setting ``name`` from an environment variable's text, checked."""
    kind = SETTINGS_BY_NAME[name].kind
    label = label or SETTINGS_BY_NAME[name].env
    return kind.check(label, kind.parse(label, text))


def markdown_table() -> str:
    """The README's configuration table, grouped, one row per setting."""
    lines = [
        "| argument = config key | environment | type | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for group, title in GROUPS.items():
        lines.append(f"| **{title}** | | | | |")
        for spec in (s for s in SETTINGS if s.group == group):
            env = f"`{spec.env}`" if spec.configurable else "code only"
            lines.append(
                f"| `{spec.name}` | {env} | {spec.kind.describe()} | "
                f"{_show(spec.default)} | {spec.doc} |"
            )
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value == ():
        return "`()`"
    if isinstance(value, tuple):
        return "`(" + ", ".join(f'"{v}"' for v in value) + ")`"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 30:
        return f"{value / (1 << 30):g} GiB"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"`{value!r}`".replace("'", '"')


if __name__ == "__main__":  # pragma: no cover - `python -m llmtally.settings`
    print(markdown_table())
