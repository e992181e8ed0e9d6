"""Shared fixtures. Keep this file to fixtures; helpers live in modules such as pgserver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llmtally
import pgserver
from fakeprovider import FakeProvider, running
from llmtally.settings import ENV_NAMES


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Admin (superuser) URL of a PostgreSQL server; fails, never skips, if there is none."""
    try:
        return pgserver.server_url()
    except pgserver.PostgresUnavailableError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside `except`: no chained traceback


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = pgserver.create_database(pg_admin_url)
    try:
        yield url
    finally:
        pgserver.drop_database(pg_admin_url, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a (not yet created) SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'llmtally.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once per backend; PostgreSQL is only started when needed."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture(autouse=True, scope="session")
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep default spool directories (under the user data dir) out of the real home."""
    import os

    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    yield
    if old is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = old


@pytest.fixture(autouse=True)
def _no_llmtally_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the variables llmtally's edges read (``settings.ENV_NAMES``).

    A ``LLMTALLY_DATABASE_URL`` or ``LLMTALLY_CONFIG`` in the developer's shell must not
    reach the CLI's subprocesses or ``config.from_env()``; tests set what they need.
    """
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    """The fake provider HTTP server (``tests/fakeprovider.py``), one per test session."""
    with running() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeProvider) -> FakeProvider:
    """The fake provider with its queued responses and recorded requests cleared."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def tally(tmp_path: Path) -> Iterator[llmtally.Tally]:
    """A Tally on a fresh SQLite file with its own spool (modules may override it)."""
    with llmtally.Tally(f"sqlite:///{tmp_path}/t.db", spool_dir=tmp_path / "spool") as t:
        yield t
