"""The PostgreSQL test infrastructure itself (tests/pgserver.py and the conftest fixtures)."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa

import pgserver


@pytest.mark.postgres
def test_pg_url_connects_and_is_empty(pg_admin_url: str, pg_url: str) -> None:
    dbname = pgserver.url_info(pg_url)["dbname"]
    assert dbname.startswith(pgserver.TEST_DATABASE_PREFIX)
    assert pg_url.startswith("postgresql://")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (dbname,)
        count = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public'"
        ).fetchone()
        assert count == (0,)
    # SQLAlchemy accepts the same URL (2.1 maps postgresql:// to psycopg).
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_db_url_sqlite_or_postgres(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_app_role_has_dml_but_no_ddl(pg_admin_url: str, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as owner:
        owner.execute("CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL)")
        owner.execute("INSERT INTO items (name) VALUES ('from owner')")

    role_url = pgserver.create_app_role(pg_admin_url, pg_url)
    role = pgserver.url_info(role_url)["user"]
    assert role.startswith(pgserver.APP_ROLE_PREFIX)
    try:
        with psycopg.connect(role_url, autocommit=True) as app:
            assert app.execute("SELECT current_user").fetchone() == (role,)
            app.execute("INSERT INTO items (name) VALUES ('from app')")  # uses the sequence
            app.execute("UPDATE items SET name = upper(name) WHERE name = 'from app'")
            names = [r[0] for r in app.execute("SELECT name FROM items ORDER BY id")]
            assert names == ["from owner", "FROM APP"]
            app.execute("DELETE FROM items WHERE name = 'FROM APP'")
            # TEMPORARY on the database: COPY staging tables work.
            app.execute("CREATE TEMP TABLE staging (LIKE items)")
            with app.cursor().copy("COPY staging (id, name) FROM STDIN") as copy:
                copy.write_row((10, "copied"))
            app.execute("INSERT INTO items SELECT * FROM staging")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("CREATE TABLE nope (id int)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("DROP TABLE items")
    finally:
        pgserver.drop_role(pg_admin_url, role_url)
    with psycopg.connect(pg_admin_url) as admin:
        row = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        assert row is None


@pytest.mark.postgres
def test_embedded_server_starts_and_stops() -> None:
    server = pgserver.start_embedded()
    try:
        assert server.url.startswith("postgresql://postgres@/postgres?host=/")
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # The database and role helpers work over the unix socket too.
        db_url = pgserver.create_database(server.url)
        assert "?host=/" in db_url
        role_url = pgserver.create_app_role(server.url, db_url)
        with psycopg.connect(role_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (
                pgserver.url_info(db_url)["dbname"],
            )
        pgserver.drop_role(server.url, role_url)
        pgserver.drop_database(server.url, db_url)
    finally:
        server.stop()
    assert not server.data_dir.exists()


@pytest.mark.parametrize(
    ("info", "url"),
    [
        (
            {"user": "postgres", "host": "127.0.0.1", "port": "5432", "dbname": "d"},
            "postgresql://postgres@127.0.0.1:5432/d",
        ),
        (
            {"user": "postgres", "host": "/tmp/x y", "port": "5432", "dbname": "d"},
            "postgresql://postgres@/d?host=/tmp/x%20y&port=5432",
        ),
        (
            {"user": "u", "password": "p@ss", "host": "::1", "dbname": "d"},
            "postgresql://u:p%40ss@[::1]/d",
        ),
    ],
)
def test_make_url_round_trips(info: dict[str, str], url: str) -> None:
    assert pgserver.make_url(info) == url
    assert pgserver.url_info(url) == info
