"""Schema migrations: Alembic revisions shipped in the package, applied in order.

Each revision runs in its own transaction and is recorded in ``llmtally_schema_migrations``
(Alembic's version table). ``upgrade`` is safe when several processes start at once: it
takes a cross-process lock (an advisory lock on PostgreSQL, a lock file beside the
SQLite database) and re-checks before applying anything. When the database is already
at head nothing is locked and no DDL is issued, so a least-privilege runtime role
(SELECT/INSERT/UPDATE/DELETE only) starts fine after ``llmtally db migrate`` was run
by an owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

from llmtally._locks import file_lock
from llmtally.errors import MigrationError

VERSION_TABLE = "llmtally_schema_migrations"
# the newest revision shipped (tests check it against Alembic's view of the scripts): a start
# on a database already at head then never imports Alembic, which with its dependencies adds
# ~17,000 objects for the garbage collector to walk in every full collection of the app
HEAD = "0005_derived_state"
_SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")
_PG_LOCK_KEY = 0x6C6C6D74616C6C  # "llmtall": arbitrary, constant across versions


@dataclass(frozen=True, slots=True)
class Revision:
    """One migration and whether the database has it."""

    revision: str
    description: str
    applied: bool


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(_SCRIPT_LOCATION)


def head_revision() -> str:
    """The newest revision shipped with this version of llmtally."""
    return HEAD


def current_revision(conn: sa.Connection) -> str | None:
    """The revision the database is at, or None for a blank database."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])


def status(engine: sa.Engine) -> list[Revision]:
    """Every shipped revision, oldest first, with whether it is applied."""
    with engine.connect() as conn:
        current = current_revision(conn)
    script = _script()
    ordered = list(reversed(list(script.walk_revisions())))
    applied: set[str] = set()
    if current is not None:
        applied = {rev.revision for rev in script.iterate_revisions(current, "base")}
    return [
        Revision(rev.revision, (rev.doc or "").strip(), rev.revision in applied) for rev in ordered
    ]


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[sa.Connection | None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock_conn:
            lock_conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield lock_conn
            finally:
                lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                lock_conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield None
        return
    # a portable lock (no fcntl on Windows): waits for another process's migration
    with file_lock(database + ".migrate-lock", mode=0o644):
        yield None


def upgrade(engine: sa.Engine, target: str = "head") -> list[str]:
    """Apply every missing migration up to ``target``; return the revisions applied."""
    wanted = HEAD if target == "head" else target
    with engine.connect() as conn:
        if current_revision(conn) == wanted:
            return []
    from alembic import command
    from alembic.config import Config

    with _migration_lock(engine), engine.connect() as conn:
        before = current_revision(conn)
        conn.rollback()
        if before == wanted:
            return []
        cfg = Config()
        cfg.set_main_option("script_location", _SCRIPT_LOCATION)
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, target)
        except Exception as exc:
            conn.rollback()
            raise MigrationError(
                f"schema migration failed: {exc}",
                revision=current_revision(conn) or "base",
                url=engine.url.render_as_string(hide_password=True),
            ) from exc
        conn.commit()
    return _applied_between(before, wanted)


def _applied_between(before: str | None, after: str) -> list[str]:
    script = _script()
    revs = [rev.revision for rev in script.iterate_revisions(after, before or "base")]
    return list(reversed(revs))
