"""The package: its public names, a lazy import, one version, and a wheel that ships py.typed."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import llmtally
from llmtally import _version

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "genai_prices", "numpy", "psycopg", "rich", "filelock", "alembic")


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_all_is_pinned() -> None:
    # a change here is a change of the public API: on purpose, and in the changelog
    assert llmtally.__all__ == [
        "FIELDS",
        "SCHEMA_VERSION",
        "Call",
        "ConfigError",
        "InvalidEventError",
        "LlmtallyError",
        "MigrationError",
        "QueryError",
        "StoreError",
        "Tally",
        "UnsupportedDatabaseError",
        "__version__",
        "instrument",
        "last_call_id",
    ]


def test_import_loads_no_heavy_dependency_and_every_public_name_resolves() -> None:
    out = python(
        "import json, sys\n"
        "import llmtally, llmtally.config, llmtally.settings, llmtally.errors\n"
        f"before = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "names = {n: type(getattr(llmtally, n)).__name__ for n in llmtally.__all__}\n"
        "print(json.dumps({'before': before, 'names': names, 'dir': dir(llmtally)}))\n"
    )
    result = json.loads(out)
    assert result["before"] == []
    assert set(result["names"]) == set(llmtally.__all__)
    assert result["names"]["Tally"] == "type"
    assert result["names"]["instrument"] == "function"
    assert set(llmtally.__all__) <= set(result["dir"])


def test_unknown_names_are_attribute_errors() -> None:
    try:
        llmtally.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown attribute resolved")
    assert llmtally.config.from_env({}) == {}  # a submodule reachable after `import llmtally`


def test_one_version_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/llmtally/_version.py"
    assert llmtally.__version__ == _version.__version__
    assert importlib.metadata.version("llmtally") == llmtally.__version__
    out = python(
        "from llmtally.cli.main import main; import sys; sys.argv[1:] = ['--version']\nmain()"
    )
    assert out.split()[-1] == llmtally.__version__


def test_the_wheel_ships_py_typed_and_the_version(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("llmtally-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"llmtally-{llmtally.__version__}.dist-info/METADATA").decode()
    assert "llmtally/py.typed" in names
    assert "llmtally/_version.py" in names
    assert f"\nVersion: {llmtally.__version__}\n" in metadata
    assert "Requires-Dist: filelock" in metadata
