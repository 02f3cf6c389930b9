"""Fixtures for the intel tests: the threat-intel corpus (each file read once), a SQLite DB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mimamori.db.models import Base
from mimamori.db.session import make_engine
from mimamori.intel import READERS, ReadResult

DATA = Path(__file__).resolve().parents[1] / "data" / "intel"
#: Pinned "now" for expiry and storage: the day after the Feodo CSV snapshot.
NOW = datetime(2024, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="session")
def ti(corpus: Path) -> Path:
    return corpus / "threat-intel"


@pytest.fixture(scope="session")
def read_feed(ti: Path) -> Callable[[str, str], ReadResult]:
    """``read_feed(reader, path under threat-intel/)``, cached for the session (big files)."""
    cache: dict[tuple[str, str], ReadResult] = {}

    def read(reader: str, rel: str) -> ReadResult:
        key = (reader, rel)
        if key not in cache:
            cache[key] = READERS[reader].read(ti / rel)
        return cache[key]

    return read


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intel.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()
