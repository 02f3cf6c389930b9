"""Alembic environment for the control plane, driven by ``mimamori.db.migrate``.

``migrate`` hands over an open connection in ``config.attributes["connection"]``; without
one (the plain ``alembic`` CLI with your own ini) the URL comes from ``sqlalchemy.url`` or
the mimamori settings (``MIMAMORI_DATABASE_URL``).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from mimamori.db.migrate import context_options, migration_connection


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from mimamori.config import Settings

    return Settings.load().database_url


def _skip_empty(ctx: Any, _revision: Any, directives: list[Any]) -> None:
    # An autogenerate that found nothing should not leave an empty revision behind.
    script = directives[0]
    if script.upgrade_ops.is_empty():
        directives[:] = []


def _run(connection: Connection) -> None:
    opts = context_options()
    if context.config.attributes.get("skip_empty"):
        opts["process_revision_directives"] = _skip_empty
    context.configure(connection=connection, **opts)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **context_options())
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from mimamori.db.session import make_engine

    engine = make_engine(_url())
    try:
        with migration_connection(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
