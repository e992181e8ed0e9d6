"""Settings read from the environment and config files: only the CLI and server call this.

The library itself (``llmtally.Tally``) takes keyword arguments and never reads the
environment. Applications that want the same behaviour as the CLI can write
``llmtally.Tally(**llmtally.config.from_env())``.

Environment variables (all optional):

=============================  =====================================================
``LLMTALLY_DATABASE_URL``      database URL (``sqlite:///path`` or ``postgresql://…``);
                               the CLI defaults to ``sqlite:///llmtally.db``
``LLMTALLY_PROJECT``           default project name (``default``)
``LLMTALLY_RETENTION_DAYS``    delete events older than this many days
``LLMTALLY_CAPTURE_CONTENT``   ``1`` to store raw prompts/completions (off by default)
``LLMTALLY_REDACT_PII``        ``0`` to turn PII redaction off (on by default)
``LLMTALLY_CONFIG``            path of a TOML file with the same keys in lower case
                               (``database_url``, ``project``, ``retention_days``,
                               ``capture_content``, ``redact_pii``), a
                               ``[custom_pricing]`` table and a ``[quality_weights]``
                               table (``regenerated_penalty``, ``edited_penalty``,
                               ``slow_ms``, ``slow_factor``)
=============================  =====================================================

Environment variables override the config file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmtally.errors import ConfigError

DATABASE_URL = "LLMTALLY_DATABASE_URL"
PROJECT = "LLMTALLY_PROJECT"
RETENTION_DAYS = "LLMTALLY_RETENTION_DAYS"
CAPTURE_CONTENT = "LLMTALLY_CAPTURE_CONTENT"
REDACT_PII = "LLMTALLY_REDACT_PII"
CONFIG_FILE = "LLMTALLY_CONFIG"
DEFAULT_DATABASE_URL = "sqlite:///llmtally.db"

_FILE_KEYS = {
    "database_url",
    "project",
    "retention_days",
    "capture_content",
    "redact_pii",
    "custom_pricing",
    "quality_weights",
}


def _flag(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are an error naming the key."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(CONFIG_FILE, f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(CONFIG_FILE, f"{path} is not valid TOML: {exc}") from exc
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"is not a llmtally setting (in {path})")
    return data


def from_env(
    environ: Mapping[str, str] | None = None, *, default_database: bool = False
) -> dict[str, Any]:
    """Keyword arguments for ``Tally`` from the config file and environment variables."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    if env.get(CONFIG_FILE):
        settings.update(load_file(env[CONFIG_FILE]))
    if env.get(DATABASE_URL):
        settings["database_url"] = env[DATABASE_URL]
    if env.get(PROJECT):
        settings["project"] = env[PROJECT]
    if env.get(RETENTION_DAYS):
        try:
            settings["retention_days"] = int(env[RETENTION_DAYS])
        except ValueError:
            raise ConfigError(
                RETENTION_DAYS, f"must be a whole number, got {env[RETENTION_DAYS]!r}"
            ) from None
    if env.get(CAPTURE_CONTENT):
        settings["capture_content"] = _flag(CAPTURE_CONTENT, env[CAPTURE_CONTENT])
    if env.get(REDACT_PII):
        settings["redact_pii"] = _flag(REDACT_PII, env[REDACT_PII])
    if default_database:
        settings.setdefault("database_url", DEFAULT_DATABASE_URL)
    return settings
