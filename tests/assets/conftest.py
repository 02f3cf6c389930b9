"""Fixtures for inventory tests: a tenant in a migrated database, a pinned clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from mimamori.db.models import Provider, Tenant
from mimamori.events.schema import conform
from mimamori.sources import get_parser, read_batches

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    with Session(db_engine, expire_on_commit=False) as s:
        s.add(Tenant(id="acme", name="Acme", provider=Provider(name="prov"), networks=["192.168.1.0/24"]))
        s.commit()
        yield s


def zeek_batches(path: Path) -> list[pl.DataFrame]:
    parser = get_parser("zeek")
    ctx: dict[str, object] = {}
    return [parser.parse(b, ctx).events for b in read_batches(path) if b.n_lines]


def events(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Crafted events: ECS fields by name, ``@timestamp`` as datetimes."""
    return conform(pl.DataFrame(rows))
