"""The edge that reads the config file and the environment: only the CLI and server call it.

The library itself (``llmtally.Tally``) takes keyword arguments and never reads the
environment. Applications that want the CLI's behaviour write
``llmtally.Tally(**llmtally.config.from_env())``.

What can be set, and how, is derived from ``llmtally.settings`` (``python -m
llmtally.settings`` prints the table; the README shows it): every ``Tally`` setting is a
top-level key of the TOML file named by ``LLMTALLY_CONFIG`` and an environment variable
``LLMTALLY_<NAME>``; the environment wins over the file. Besides the settings the file
has sections for the views, accepted here and checked by the code that uses them::

    [server]          # llmtally serve: host, port, keys… (a table)
    [[alerts]]        # alert and budget rules (an array of tables)

Any other top-level key is an error naming it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from llmtally import settings
from llmtally.errors import ConfigError

CONFIG_FILE: Final = settings.CONFIG_ENV
DATABASE_URL: Final = settings.SETTINGS_BY_NAME["database_url"].env
DEFAULT_DATABASE_URL: Final = "sqlite:///llmtally.db"
#: sections of the file that are not Tally settings: name -> TOML shape
SECTIONS: Final = {"server": "table", "alerts": "array of tables"}


@dataclass(frozen=True, slots=True)
class Config:
    """What the file and the environment say: Tally keyword arguments and the views' sections."""

    tally: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None  # the config file read, if any


def load_file(path: str | Path) -> dict[str, Any]:
    """A TOML config file's contents, each setting checked; unknown keys are errors naming them."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(CONFIG_FILE, f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(CONFIG_FILE, f"{path} is not valid TOML: {exc}") from exc
    for key in sorted(data):
        value = data[key]
        spec = settings.SETTINGS_BY_NAME.get(key)
        if key in SECTIONS:
            _check_section(key, value, path)
        elif spec is None or not spec.configurable:
            what = "is code only" if spec else "is not a llmtally setting"
            raise ConfigError(key, f"{what} (in {path})")
        else:
            try:
                data[key] = settings.check(key, value)
            except ConfigError as exc:
                raise ConfigError(key, f"{exc.reason} (in {path})") from None
    return data


def _check_section(key: str, value: Any, path: str | Path) -> None:
    ok = isinstance(value, dict)
    if SECTIONS[key] == "array of tables":
        ok = isinstance(value, list) and all(isinstance(item, dict) for item in value)
    if not ok:
        hint = f"[[{key}]]" if SECTIONS[key] == "array of tables" else f"[{key}]"
        raise ConfigError(key, f"must be an {SECTIONS[key]} ({hint}) (in {path})")


def load(environ: Mapping[str, str] | None = None) -> Config:
    """The config file (``LLMTALLY_CONFIG``) and the ``LLMTALLY_*`` variables, checked."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    path = Path(env[CONFIG_FILE]) if env.get(CONFIG_FILE) else None
    if path is not None:
        data = load_file(path)
    server = data.pop("server", {})
    alerts = data.pop("alerts", [])
    for spec in settings.SETTINGS:
        text = env.get(spec.env)
        if spec.configurable and text:  # an empty variable counts as unset
            data[spec.name] = settings.from_text(spec.name, text)
    return Config(tally=data, server=server, alerts=alerts, path=path)


def from_env(
    environ: Mapping[str, str] | None = None, *, default_database: bool = False
) -> dict[str, Any]:
    """Keyword arguments for ``Tally`` from the config file and environment variables."""
    kwargs = load(environ).tally
    if default_database:
        kwargs.setdefault("database_url", DEFAULT_DATABASE_URL)
    return kwargs
