"""Run the control-plane Alembic migrations programmatically (no alembic.ini needed).

The migration scripts ship inside the package (``mimamori/db/migrations``); every entry point
here takes an ``Engine`` and runs Alembic on one of its connections, so the CLI, the web app
and the tests all migrate the same way. ``check`` is the drift test: it compares a migrated
database with ``models.Base.metadata`` and lists what a new revision would have to change.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from mimamori.db.models import Base, UtcDateTime

__all__ = [
    "MIGRATIONS_DIR",
    "MigrationError",
    "check",
    "current",
    "downgrade",
    "head",
    "migration_connection",
    "revision",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_ID = 0x6D696D616D6F7269  # "mimamori": key of the advisory lock held while migrating
# Alembic runs env.py and the scripts through module-global proxies (alembic.context, op),
# so two migrations in one process must not overlap, whatever the databases.
_ALEMBIC = threading.Lock()


class MigrationError(Exception):
    """The migration scripts or a migration run are not in a usable state."""


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our ``UtcDateTime`` as a portable ``sa.DateTime(timezone=True)`` in migrations.

    Migration scripts must not import application types: they are frozen history, while
    ``models`` keeps changing.
    """
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def context_options() -> dict[str, Any]:
    """Options shared by ``env.py`` and ``check`` so that autogenerate and drift agree."""
    return {
        "target_metadata": Base.metadata,
        "render_item": render_item,
        # Batch mode renders ALTERs SQLite can replay (copy-and-move) and is a no-op elsewhere,
        # so a revision generated against either backend runs on both.
        "render_as_batch": True,
        "compare_type": True,
        "compare_server_default": False,
    }


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` against ``engine`` (default: the newest revision)."""
    with _ALEMBIC, migration_connection(engine) as conn:
        _refuse_unversioned_schema(conn)
        command.upgrade(_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """``alembic downgrade <revision>`` against ``engine`` (``"base"`` drops everything)."""
    with _ALEMBIC, migration_connection(engine) as conn:
        command.downgrade(_config(conn), revision)


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction; on SQLite with foreign keys off while migrating.

    SQLite batch mode rebuilds a table by copying it and dropping the original, and with
    ``foreign_keys=ON`` (see ``session.make_engine``) that DROP deletes every row first, which
    cascades into the child tables: altering ``tenant`` would empty ``sensor``. The pragma is
    ignored inside a transaction, so it is switched before BEGIN, and the result is checked
    with ``foreign_key_check`` before commit.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Processes starting together (CLI, API, pipeline) migrate one at a time.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})")
                yield conn
            return
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise MigrationError(f"migration left dangling foreign keys: {broken[:5]}")
        finally:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _refuse_unversioned_schema(conn: Connection) -> None:
    # Tables without alembic_version were made by hand or by the old create_all(): upgrading
    # would fail half-way on "table exists", and adopting them blindly could skip real drift.
    if MigrationContext.configure(conn).get_current_revision() is not None:
        return
    ours = set(inspect(conn).get_table_names()) & set(Base.metadata.tables)
    if ours:
        raise MigrationError(
            f"database has control-plane tables ({', '.join(sorted(ours)[:3])}, …) but no "
            "migration history; it predates migrations: recreate it (or move it aside)"
        )


def current(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` when it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    """The newest revision shipped with this version of mimamori."""
    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"expected one migration head, found {sorted(heads)}")
    return heads[0]


def check(engine: Engine) -> list[str]:
    """Differences between the database behind ``engine`` and the models; empty when in sync."""
    problems: list[str] = []
    at, newest = current(engine), head()
    if at != newest:
        problems.append(f"database is at revision {at or '<none>'}, newest is {newest}")
    with engine.connect() as conn:
        opts = context_options()
        metadata = opts.pop("target_metadata")
        ctx = MigrationContext.configure(conn, opts=opts)
        diffs = compare_metadata(ctx, metadata)
    problems.extend(_describe(diff) for diff in diffs)
    return problems


def revision(engine: Engine, message: str) -> Path | None:
    """Autogenerate a new revision from the models against a database at head.

    Review the generated file before committing it. Returns its path, or ``None`` when the
    models and the database already agree.
    """
    with _ALEMBIC, migration_connection(engine) as conn:
        cfg = _config(conn)
        cfg.attributes["skip_empty"] = True
        if importlib.util.find_spec("ruff") is not None:  # a dev dependency
            _ruff_hooks(cfg)
        scripts = command.revision(cfg, message=message, autogenerate=True)
    if isinstance(scripts, list):  # empty when the models and the database agree
        scripts = scripts[0] if scripts else None
    return Path(scripts.path) if scripts is not None else None


def _ruff_hooks(cfg: Config) -> None:
    section = "post_write_hooks"
    cfg.set_section_option(section, "hooks", "ruff_format, ruff_fix")
    for name, args in (("ruff_format", "format"), ("ruff_fix", "check --fix")):
        cfg.set_section_option(section, f"{name}.type", "module")
        cfg.set_section_option(section, f"{name}.module", "ruff")
        cfg.set_section_option(section, f"{name}.options", f"{args} REVISION_SCRIPT_FILENAME")


def _describe(diff: Any) -> str:
    """One line per autogenerate difference, e.g. ``add_index asset.ix_asset_tenant_mac (…)``."""
    if isinstance(diff, list):  # column modifications come grouped per column
        return "; ".join(_describe(item) for item in diff)
    op = diff[0]
    if op.startswith("modify_") and len(diff) == 7:
        _, _schema, table, column, _existing, old, new = diff
        return f"{op} {table}.{column}: {old!r} -> {new!r}"
    if op in ("add_column", "remove_column"):
        return f"{op} {diff[2]}.{diff[3].name}"
    obj = diff[1]
    table = getattr(obj, "table", None)
    if table is None:  # add_table / remove_table and table-level changes
        return f"{op} {getattr(obj, 'name', obj)}"
    columns = ", ".join(column.name for column in getattr(obj, "columns", ()))
    return f"{op} {table.name}.{obj.name or '<unnamed>'} ({columns})"
