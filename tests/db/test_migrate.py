"""Migrations: upgrade cleanly on SQLite and PostgreSQL and match the models exactly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mimamori.db import migrate
from mimamori.db.models import Base, Provider, Sensor, Tenant
from mimamori.db.session import make_engine


def test_upgrade_from_empty_matches_models(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        assert migrate.current(engine) is None
        migrate.upgrade(engine)
        assert migrate.current(engine) == migrate.head()
        tables = set(inspect(engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        assert migrate.check(engine) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_downgrade_reverses_it(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # already at head: nothing to do
        migrate.downgrade(engine, "base")
        assert migrate.current(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert migrate.check(engine) == []
    finally:
        engine.dispose()


def test_check_reports_an_unmigrated_database(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        problems = migrate.check(engine)
    finally:
        engine.dispose()
    assert problems[0] == f"database is at revision <none>, newest is {migrate.head()}"
    assert "add_table tenant" in problems


def test_db_url_fixture_is_migrated(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate.current(engine) == migrate.head()
        assert migrate.check(engine) == []
    finally:
        engine.dispose()


def test_pg_url_is_a_real_postgresql(request: pytest.FixtureRequest, pg_url: str) -> None:
    assert request.node.get_closest_marker("postgres") is not None  # added by tests/pg.py
    engine = make_engine(pg_url)
    try:
        assert engine.dialect.name == "postgresql"
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_check_reports_drift_from_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE asset ADD COLUMN extra INTEGER"))
            conn.execute(text("DROP INDEX ix_asset_tenant_mac"))
        assert sorted(migrate.check(engine)) == [
            "add_index asset.ix_asset_tenant_mac (tenant_id, mac)",
            "remove_column asset.extra",
        ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_table_rebuilds_keep_child_rows(db_engine: Engine) -> None:
    # Batch mode on SQLite copies a table and drops the original; with foreign keys on, that
    # DROP would cascade into the children. Migrations run with them off, then back on.
    with Session(db_engine) as session:
        session.add(Tenant(id="t1", name="T1", provider=Provider(name="p")))
        session.commit()
        session.add(Sensor(tenant_id="t1", name="fw1", source="fortigate"))
        session.commit()

    with migrate.migration_connection(db_engine) as conn:
        ops = Operations(MigrationContext.configure(conn))
        with ops.batch_alter_table("tenant", recreate="always") as batch:
            batch.alter_column("name", type_=sa.String(300))

    with Session(db_engine) as session:
        assert session.scalars(select(Sensor.name)).all() == ["fw1"]
        assert session.scalar(text("PRAGMA foreign_keys")) == 1
        session.add(Sensor(tenant_id="missing", name="fw2", source="fortigate"))
        with pytest.raises(IntegrityError):
            session.flush()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_migration_refuses_to_leave_dangling_keys(db_engine: Engine) -> None:
    orphan = text(
        "INSERT INTO sensor (tenant_id, name, source, revoked, created_at)"
        " VALUES ('missing', 'fw1', 'x', 0, '2025-01-01 00:00:00')"
    )
    with (
        pytest.raises(migrate.MigrationError, match="dangling foreign keys"),
        migrate.migration_connection(db_engine) as conn,
    ):
        conn.execute(orphan)
    with db_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM sensor")) == 0


def test_upgrade_refuses_tables_without_migration_history(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        Base.metadata.create_all(engine)  # what the pre-migration placeholder did
        with pytest.raises(migrate.MigrationError, match="no migration history"):
            migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_concurrent_upgrades_on_postgresql_take_turns(pg_url: str) -> None:
    # The CLI, the API and the pipeline all migrate on start; started together they must queue.
    code = (
        "import sys; from mimamori.db import migrate, session;"
        " migrate.upgrade(session.make_engine(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    engine = make_engine(pg_url)
    try:
        assert migrate.check(engine) == []
    finally:
        engine.dispose()
