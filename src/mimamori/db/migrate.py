"""Run Alembic migrations programmatically (placeholder until migrations land: create_all)."""

from __future__ import annotations

from sqlalchemy import Engine

from mimamori.db.models import Base


def upgrade(engine: Engine) -> None:
    Base.metadata.create_all(engine)
