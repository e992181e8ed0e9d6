"""One settings model: Tally's signature, the config file, the environment and the README agree."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmtally
from llmtally import config, settings
from llmtally.errors import ConfigError
from llmtally.settings import ENV_NAMES, SETTINGS, TallySettings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURABLE = [s for s in SETTINGS if s.configurable]

# one non-default value per configurable setting: (value Tally gets, TOML line(s), env text)
SAMPLES: dict[str, tuple[Any, str, str]] = {
    "database_url": ("sqlite:///x.db", 'database_url = "sqlite:///x.db"', "sqlite:///x.db"),
    "project": ("bot-2", 'project = "bot-2"', "bot-2"),
    "custom_pricing": (
        {"acme/m": {"input": 1.0, "output": 2.0}},
        '[custom_pricing]\n"acme/m" = { input = 1.0, output = 2.0 }',
        '{"acme/m": {"input": 1.0, "output": 2.0}}',
    ),
    "capture_content": (True, "capture_content = true", "yes"),
    "redact_pii": (False, "redact_pii = false", "0"),
    "redact_patterns": (
        {"ticket": "TCK-[0-9]+"},
        '[redact_patterns]\nticket = "TCK-[0-9]+"',
        '{"ticket": "TCK-[0-9]+"}',
    ),
    "retention_days": (180, "retention_days = 180", "180"),
    "on_invalid": ("warn", 'on_invalid = "warn"', "warn"),
    "queue_size": (5_000, "queue_size = 5_000", "5000"),
    "batch_size": (250, "batch_size = 250", "250"),
    "flush_interval": (0.25, "flush_interval = 0.25", "0.25"),
    "spool_interval": (0.5, "spool_interval = 0.5", "0.5"),
    "exit_timeout": (5.0, "exit_timeout = 5.0", "5"),
    "connect_timeout": (3.0, "connect_timeout = 3.0", "3"),
    "spool_dir": (
        "/tmp/llmtally-spool",
        'spool_dir = "/tmp/llmtally-spool"',
        "/tmp/llmtally-spool",
    ),
    "fsync_interval": (1.0, "fsync_interval = 1.0", "1"),
    "spool_max_bytes": (1 << 20, "spool_max_bytes = 1048576", "1048576"),
    "max_backoff": (5.0, "max_backoff = 5.0", "5"),
    "sample_rate": (0.25, "sample_rate = 0.25", "0.25"),
    "sample_kinds": (("product",), 'sample_kinds = ["product"]', "product"),
    "quality_weights": (
        {"slow_ms": 2000},
        "[quality_weights]\nslow_ms = 2000",
        '{"slow_ms": 2000}',
    ),
    "gc_freeze": (False, "gc_freeze = false", "off"),
}


def write(tmp_path: Path, text: str) -> dict[str, str]:
    """A config file with ``text``; the environment naming it."""
    path = tmp_path / "llmtally.toml"
    path.write_text(text + "\n")
    return {"LLMTALLY_CONFIG": str(path)}


def test_tallys_signature_is_the_model() -> None:
    """Names, order, kind, defaults and annotations of Tally(...) equal TallySettings'."""
    params = list(inspect.signature(llmtally.Tally.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [s.name for s in SETTINGS]
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD  # Tally(url, ...)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    annotations = TallySettings.__annotations__
    for param, spec in zip(params, SETTINGS, strict=True):
        assert param.default == spec.default, spec.name
        assert param.annotation == annotations[spec.name], spec.name  # the same spelling


def test_every_setting_is_documented_grouped_and_its_default_valid() -> None:
    for spec in SETTINGS:
        assert spec.group in settings.GROUPS
        assert spec.doc and "\n" not in spec.doc
        assert spec.kind.check(spec.name, spec.default) == spec.default
        assert spec.env == "LLMTALLY_" + spec.name.upper()
    assert [s.name for s in SETTINGS if not s.configurable] == ["gates", "before_send"]


def test_every_setting_has_a_sample_here() -> None:
    # a new setting must be shown settable from the file and the environment below
    assert set(SAMPLES) == {s.name for s in CONFIGURABLE}


@pytest.mark.parametrize("spec", CONFIGURABLE, ids=lambda s: s.name)
def test_every_setting_is_settable_from_the_file(spec: settings.Setting, tmp_path: Path) -> None:
    value, toml, _ = SAMPLES[spec.name]
    kwargs = config.from_env(write(tmp_path, toml))
    assert kwargs == {spec.name: value}
    assert getattr(TallySettings(**kwargs), spec.name) == value
    if spec.name != "database_url":  # a disabled Tally still checks everything
        tally = llmtally.Tally(**kwargs)
        assert getattr(tally.settings, spec.name) == value


@pytest.mark.parametrize("spec", CONFIGURABLE, ids=lambda s: s.name)
def test_every_setting_is_settable_from_the_environment(spec: settings.Setting) -> None:
    value, _, text = SAMPLES[spec.name]
    assert config.from_env({spec.env: text}) == {spec.name: value}


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    env = write(tmp_path, 'project = "from-file"\nsample_rate = 0.5')
    env["LLMTALLY_PROJECT"] = "from-env"
    env["LLMTALLY_SAMPLE_RATE"] = ""  # empty: unset, the file's value stays
    assert config.from_env(env) == {"project": "from-env", "sample_rate": 0.5}
    assert config.from_env(env, default_database=True)["database_url"] == "sqlite:///llmtally.db"
    assert config.from_env({"LLMTALLY_DATABASE_URL": "sqlite:///y.db"}, default_database=True) == {
        "database_url": "sqlite:///y.db"
    }


@pytest.mark.parametrize(
    ("toml", "setting", "words"),
    [
        ("sample_rate = 1.5", "sample_rate", "<= 1"),
        ("queue_size = 0", "queue_size", ">= 1"),
        ("queue_size = true", "queue_size", "whole number"),
        ("retention_days = 1.5", "retention_days", "whole number"),
        ('on_invalid = "ignore"', "on_invalid", "'raise' or 'warn'"),
        ('sample_kinds = ["everything"]', "sample_kinds", "unknown kinds ['everything']"),
        ("custom_pricing = 5", "custom_pricing", "table"),
        ('project = ""', "project", "non-empty"),
        ("nonsense = 1", "nonsense", "not a llmtally setting"),
        ('before_send = "x:y"', "before_send", "code only"),
        ("server = 1", "server", "[server]"),
        ("alerts = 5", "alerts", "[[alerts]]"),
        ('[alerts]\nname = "x"', "alerts", "[[alerts]]"),
    ],
)
def test_a_bad_file_names_the_key_and_the_file(
    tmp_path: Path, toml: str, setting: str, words: str
) -> None:
    env = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        config.from_env(env)
    assert info.value.setting == setting
    assert words in info.value.reason
    assert env["LLMTALLY_CONFIG"] in info.value.reason


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("LLMTALLY_SAMPLE_RATE", "half", "must be a number"),
        ("LLMTALLY_SAMPLE_RATE", "2", "<= 1"),
        ("LLMTALLY_RETENTION_DAYS", "soon", "whole number"),
        ("LLMTALLY_REDACT_PII", "maybe", "on/off"),
        ("LLMTALLY_QUALITY_WEIGHTS", "{nope", "JSON object"),
        ("LLMTALLY_QUALITY_WEIGHTS", "[1, 2]", "table"),
        ("LLMTALLY_SAMPLE_KINDS", "product,bogus", "unknown kinds ['bogus']"),
    ],
)
def test_a_bad_environment_variable_is_named(name: str, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.from_env({name: text})
    assert info.value.setting == name
    assert words in info.value.reason


def test_the_views_sections_are_passed_through(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        'project = "p"\n[server]\nport = 9000\n\n[[alerts]]\nname = "daily"\ntype = "daily_cost"\n'
        'threshold = 10.0\n\n[[alerts]]\nname = "errors"\ntype = "error_rate"\nthreshold = 0.1',
    )
    loaded = config.load(env)
    assert loaded.tally == {"project": "p"}  # Tally(**from_env()) never sees the sections
    assert loaded.server == {"port": 9000}
    assert [rule["name"] for rule in loaded.alerts] == ["daily", "errors"]
    assert loaded.path == Path(env["LLMTALLY_CONFIG"])
    assert config.from_env(env) == {"project": "p"}


def test_keyword_arguments_are_checked_by_the_model() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"sample_kinds": ("everything",)}, "sample_kinds"),
        ({"queue_size": 0}, "queue_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"spool_interval": 0}, "spool_interval"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"spool_max_bytes": 0}, "spool_max_bytes"),
        ({"fsync_interval": float("nan")}, "fsync_interval"),
        ({"project": ""}, "project"),
        ({"gc_freeze": "yes"}, "gc_freeze"),
        ({"gates": [1]}, "gates"),
        ({"before_send": "drop"}, "before_send"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ConfigError) as info:
            llmtally.Tally("sqlite:///never-opened.db", **kwargs)
        assert info.value.setting == name, kwargs
    kinds = iter(["product"])  # an iterator is read once and kept
    assert llmtally.Tally(sample_rate=0.5, sample_kinds=kinds).settings.sample_kinds == ("product",)


def test_the_readme_table_is_the_models() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings table:")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- end of settings table -->")
    assert readme[start:end].strip() == settings.markdown_table(), (
        "README's table is stale: paste the output of `python -m llmtally.settings`"
    )
    for spec in SETTINGS:
        assert f"| `{spec.name}` |" in readme


def test_the_test_environment_is_clean() -> None:
    assert not [name for name in ENV_NAMES if name in os.environ]


def test_the_conftest_fixture_clears_every_setting_variable() -> None:
    """Run the check above in a pytest whose environment sets every variable."""
    env = {**os.environ, **dict.fromkeys(ENV_NAMES, "set-in-the-shell")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{__file__}::test_the_test_environment_is_clean"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
